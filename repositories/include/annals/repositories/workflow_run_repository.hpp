#pragma once

// WorkflowRunRepository: the queries a workflow engine's API makes about runs, answered from the
// read table annals_workflow_runs, and the deletions it asks for, made as RunDeleted events.
//
//   annals::RepositoryFactory factory("sqlite:/data/events.db");
//   annals::WorkflowRunRepository runs = factory.create_workflow_run_repository();
//   auto page = runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20);
//   auto next = runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20,
//                                                page.data.back().id);
//   std::size_t gone = runs.delete_runs_by_ids("t-1", {"r-1", "r-2"});
//
// Every method takes the tenant and never returns, counts or changes another tenant's runs, not
// even when handed one of their ids. Every SQL value is bound, never spliced.
//
// Reads see the read tables as the WorkflowProjection left them: at once after a save when the
// projection runs inline (as RepositoryFactory sets up), after the runner caught up otherwise.
// Each query runs in one read transaction (one consistent snapshot).
//
// Thread-safety: a repository holds only shared_ptrs to the store; one object may be used from
// any number of threads at once. Copies share the store.
//
// The query methods are virtual so that a decorator (a cache) can derive from this class; an
// override should keep the default arguments.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/workflow_views.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/pagination.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

class WorkflowRunRepository {
 public:
  static constexpr std::size_t kMaxPageSize = 1000;

  // InvalidArgument if store is null. The read tables must exist (a WorkflowProjection was set up
  // on this database); a query on a database without them throws StoreError.
  explicit WorkflowRunRepository(std::shared_ptr<SqlEventStore> store);
  virtual ~WorkflowRunRepository() = default;
  WorkflowRunRepository(const WorkflowRunRepository&) = default;
  WorkflowRunRepository(WorkflowRunRepository&&) noexcept = default;
  WorkflowRunRepository& operator=(const WorkflowRunRepository&) = default;
  WorkflowRunRepository& operator=(WorkflowRunRepository&&) noexcept = default;

  // The tenant's runs of one app and trigger, newest first: ordered by (created_at DESC,
  // id DESC), so runs sharing a created_at each come exactly once. Without last_id, the first
  // page; with it, the page after the run with that id (keyset pagination: a deep page costs
  // what the first does, and runs created meanwhile never shift or repeat rows). Returns up to
  // `limit` runs; has_more is true if at least one more follows.
  // Throws InvalidArgument if limit is outside 1..1000 (naming it); NotFound if last_id is not a
  // current run of this tenant, app and trigger (unknown, deleted or someone else's).
  [[nodiscard]] virtual InfiniteScrollPagination<WorkflowRunView> get_paginated_workflow_runs(
      std::string_view tenant_id, std::string_view app_id, std::string_view triggered_from,
      std::size_t limit = 20, std::optional<std::string> last_id = std::nullopt) const;

  // The run, or nullopt if it does not exist, was deleted, or belongs to another tenant or app.
  [[nodiscard]] virtual std::optional<WorkflowRunView> get_workflow_run_by_id(
      std::string_view tenant_id, std::string_view app_id, std::string_view run_id) const;

  // The tenant's runs created strictly before `before`, oldest first (created_at, then id), at
  // most batch_size. InvalidArgument if batch_size is 0.
  [[nodiscard]] virtual std::vector<WorkflowRunView> get_expired_runs_batch(
      std::string_view tenant_id, Timestamp before, std::size_t batch_size = 1000) const;

  // Deletes the tenant's runs among run_ids: appends RunDeleted to each (the log keeps their
  // history; their rows leave the read tables) in one all-or-nothing batch append. Ids that are
  // unknown, already deleted, repeated or another tenant's are ignored. Returns how many runs
  // were deleted. If another writer changes one of the runs meanwhile, the whole call is
  // retried once from fresh state; a second clash throws ConcurrencyError and deletes nothing.
  virtual std::size_t delete_runs_by_ids(std::string_view tenant_id,
                                         const std::vector<std::string>& run_ids);

  // Deletes every run of the tenant's app, batch_size runs per batch append (each batch all or
  // nothing; batches committed before an error stay deleted). Runs created while it works may
  // be left. Returns how many runs were deleted. InvalidArgument if batch_size is 0.
  virtual std::size_t delete_runs_by_app(std::string_view tenant_id, std::string_view app_id,
                                         std::size_t batch_size = 1000);

  [[nodiscard]] const std::shared_ptr<SqlEventStore>& event_store() const noexcept {
    return store_;
  }

 private:
  // Deletes the tenant's runs among ids (distinct) in one batch append; returns the count.
  std::size_t delete_batch(std::string_view tenant_id, const std::vector<std::string>& ids);

  std::shared_ptr<SqlEventStore> store_;
  AggregateRepository<WorkflowRun> aggregates_;
};

// The read-model view of `run`, as the WorkflowProjection writes it (what a read after its
// save returns).
[[nodiscard]] WorkflowRunView workflow_run_view(const WorkflowRun& run);

}  // namespace annals
