#pragma once

// CachedWorkflowRunRepository: a WorkflowRunRepository whose by-id reads are served from a
// bounded LRU cache, kept correct by the WorkflowProjection telling it which runs changed.
//
//   annals::RepositoryFactory factory("sqlite:/data/events.db");
//   annals::CachedWorkflowRunRepository runs(factory.create_workflow_run_repository(),
//                                            factory.workflow_projection(), 10'000);
//   auto run = runs.get_workflow_run_by_id("t-1", "app-1", "r-1");   // miss, then hits
//   auto stats = runs.cache_stats();
//
// Only get_workflow_run_by_id() is cached, keyed by (tenant, app, run id); every other method is
// the plain repository's. An entry is dropped when the projection commits a change to its run
// (created, updated, deleted; also events an inline append caught up from other processes), and
// the whole cache when a rebuild replaces the tables. A run stops being served from the cache
// just before the transaction changing it commits (WorkflowProjection::on_runs_changing) and
// is served again, from a fresh read, only after that transaction committed or rolled back; a
// read that raced with a change is not cached. So no read returns a row older than one already
// committed to the read tables, from any thread. (After a rebuild's swap, until reset() has
// run, old entries may still be served for an instant.)
//
// Thread-safety: safe to use from any number of threads; copies share one cache.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/workflow_run_repository.hpp"

namespace annals {

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;      // entries pushed out by the capacity bound
  std::uint64_t invalidations = 0;  // entries dropped because their run changed
  std::size_t size = 0;
  std::size_t capacity = 0;
};

class CachedWorkflowRunRepository : public WorkflowRunRepository {
 public:
  // InvalidArgument if projection is null or capacity is 0. `projection` must be the one that
  // maintains the tables `inner` reads (RepositoryFactory::workflow_projection()).
  CachedWorkflowRunRepository(WorkflowRunRepository inner,
                              std::shared_ptr<WorkflowProjection> projection,
                              std::size_t capacity = 10'000);

  [[nodiscard]] std::optional<WorkflowRunView> get_workflow_run_by_id(
      std::string_view tenant_id, std::string_view app_id, std::string_view run_id) const override;

  [[nodiscard]] CacheStats cache_stats() const;
  // Drops every entry (counters are kept).
  void clear_cache();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace annals
