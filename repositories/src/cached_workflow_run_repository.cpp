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
    for (std::uint64_t id :
         {runs_listener, changing_listener, abandoned_listener, reset_listener}) {
      projection->remove_listener(id);
    }
  }

  // A transaction touching these runs is about to commit: stop serving and caching them.
  void begin_change(const std::vector<std::string>& run_ids) {
    std::lock_guard lock(mutex);
    for (const std::string& id : run_ids) ++in_flight[id];
    drop(run_ids);
  }

  // It committed (changed = true) or rolled back: serve them again, from fresh rows.
  void end_change(const std::vector<std::string>& run_ids, bool changed) {
    std::lock_guard lock(mutex);
    for (const std::string& id : run_ids) {
      if (auto it = in_flight.find(id); it != in_flight.end() && --it->second == 0) {
        in_flight.erase(it);
      }
    }
    if (changed) drop(run_ids);
  }

  // REQUIRES: mutex held.
  void drop(const std::vector<std::string>& run_ids) {
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
  std::uint64_t runs_listener = 0, changing_listener = 0, abandoned_listener = 0,
                reset_listener = 0;

  mutable std::mutex mutex;  // guards everything below
  // Entries are keyed by run id (a run has one tenant and app); a lookup naming another tenant
  // or app is a miss and goes to the table, which answers nullopt.
  std::unordered_map<std::string, Entry> entries;
  std::list<std::string> order;  // most recently used first
  std::uint64_t generation = 0;  // bumped by every invalidation
  // Runs a transaction is changing right now (count of such transactions): never served from
  // or put in the cache until it has committed or rolled back.
  std::unordered_map<std::string, int> in_flight;
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
  state_->changing_listener =
      state_->projection->on_runs_changing([weak](const std::vector<std::string>& run_ids) {
        if (auto state = weak.lock()) state->begin_change(run_ids);
      });
  state_->runs_listener =
      state_->projection->on_runs_changed([weak](const std::vector<std::string>& run_ids) {
        if (auto state = weak.lock()) state->end_change(run_ids, true);
      });
  state_->abandoned_listener =
      state_->projection->on_runs_abandoned([weak](const std::vector<std::string>& run_ids) {
        if (auto state = weak.lock()) state->end_change(run_ids, false);
      });
  state_->reset_listener = state_->projection->on_reset([weak] {
    if (auto state = weak.lock()) state->invalidate_all();
  });
}

std::optional<WorkflowRunView> CachedWorkflowRunRepository::get_workflow_run_by_id(
    std::string_view tenant_id, std::string_view app_id, std::string_view run_id) const {
  State& s = *state_;
  const std::string key(run_id);
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(s.mutex);
    // A run being changed right now is read from the table, never from the cache.
    if (!s.in_flight.contains(key)) {
      if (auto it = s.entries.find(key); it != s.entries.end()) {
        const WorkflowRunView& view = it->second.view;
        if (view.tenant_id == tenant_id && view.app_id == app_id) {
          s.order.splice(s.order.begin(), s.order, it->second.lru);
          ++s.stats.hits;
          return view;
        }
      }
    }
    ++s.stats.misses;
    generation = s.generation;
  }
  std::optional<WorkflowRunView> found =
      WorkflowRunRepository::get_workflow_run_by_id(tenant_id, app_id, run_id);
  if (!found) return found;

  std::lock_guard lock(s.mutex);
  // A change that began or ended while we read may make what we read old: cache nothing then.
  if (s.generation != generation || s.in_flight.contains(found->id) ||
      s.entries.contains(found->id)) {
    return found;
  }
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
