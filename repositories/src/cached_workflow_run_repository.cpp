#include "annals/repositories/cached_workflow_run_repository.hpp"

#include <list>
#include <mutex>
#include <unordered_map>

namespace annals {

struct CachedWorkflowRunRepository::State {
  struct Entry {
    WorkflowRunView view;
    std::list<std::string>::iterator lru;  // position in `order`
  };

  State(std::shared_ptr<WorkflowProjection> p, std::size_t cap)
      : projection(std::move(p)), capacity(cap) {}

  ~State() {
    projection->remove_listener(runs_listener);
    projection->remove_listener(reset_listener);
  }

  void invalidate(const std::vector<std::string>& run_ids) {
    std::lock_guard lock(mutex);
    ++generation;
    for (const std::string& id : run_ids) {
      if (auto it = entries.find(id); it != entries.end()) {
        order.erase(it->second.lru);
        entries.erase(it);
        ++stats.invalidations;
      }
    }
  }

  void invalidate_all() {
    std::lock_guard lock(mutex);
    ++generation;
    stats.invalidations += entries.size();
    entries.clear();
    order.clear();
  }

  std::shared_ptr<WorkflowProjection> projection;
  const std::size_t capacity;
  std::uint64_t runs_listener = 0, reset_listener = 0;

  mutable std::mutex mutex;  // guards everything below
  // Entries are keyed by run id (a run has one tenant and app); a lookup naming another tenant
  // or app is a miss and goes to the table, which answers nullopt.
  std::unordered_map<std::string, Entry> entries;
  std::list<std::string> order;  // most recently used first
  std::uint64_t generation = 0;  // bumped by every invalidation
  CacheStats stats;
};

CachedWorkflowRunRepository::CachedWorkflowRunRepository(
    WorkflowRunRepository inner, std::shared_ptr<WorkflowProjection> projection,
    std::size_t capacity)
    : WorkflowRunRepository(std::move(inner)) {
  if (!projection) throw InvalidArgument("CachedWorkflowRunRepository: the projection is null");
  if (capacity == 0) throw InvalidArgument("CachedWorkflowRunRepository: capacity is 0");
  state_ = std::make_shared<State>(std::move(projection), capacity);
  std::weak_ptr<State> weak = state_;
  state_->runs_listener =
      state_->projection->on_runs_changed([weak](const std::vector<std::string>& run_ids) {
        if (auto state = weak.lock()) state->invalidate(run_ids);
      });
  state_->reset_listener = state_->projection->on_reset([weak] {
    if (auto state = weak.lock()) state->invalidate_all();
  });
}

std::optional<WorkflowRunView> CachedWorkflowRunRepository::get_workflow_run_by_id(
    std::string_view tenant_id, std::string_view app_id, std::string_view run_id) const {
  State& s = *state_;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(s.mutex);
    if (auto it = s.entries.find(std::string(run_id)); it != s.entries.end()) {
      const WorkflowRunView& view = it->second.view;
      if (view.tenant_id == tenant_id && view.app_id == app_id) {
        s.order.splice(s.order.begin(), s.order, it->second.lru);
        ++s.stats.hits;
        return view;
      }
    }
    ++s.stats.misses;
    generation = s.generation;
  }
  std::optional<WorkflowRunView> found =
      WorkflowRunRepository::get_workflow_run_by_id(tenant_id, app_id, run_id);
  if (!found) return found;

  std::lock_guard lock(s.mutex);
  // A change committed while we read may have been invalidated already; caching what we read
  // could then resurrect the old row.
  if (s.generation != generation || s.entries.contains(found->id)) return found;
  s.order.push_front(found->id);
  s.entries.emplace(found->id, State::Entry{*found, s.order.begin()});
  if (s.entries.size() > s.capacity) {
    s.entries.erase(s.order.back());
    s.order.pop_back();
    ++s.stats.evictions;
  }
  return found;
}

CacheStats CachedWorkflowRunRepository::cache_stats() const {
  std::lock_guard lock(state_->mutex);
  CacheStats out = state_->stats;
  out.size = state_->entries.size();
  out.capacity = state_->capacity;
  return out;
}

void CachedWorkflowRunRepository::clear_cache() {
  std::lock_guard lock(state_->mutex);
  ++state_->generation;
  state_->entries.clear();
  state_->order.clear();
}

}  // namespace annals
