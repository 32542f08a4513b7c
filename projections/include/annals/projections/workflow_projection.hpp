#pragma once

// WorkflowProjection: the workflow read tables, annals_workflow_runs (one row per run) and
// annals_node_executions (one row per node execution), kept from the WorkflowRun streams.
//
//   auto store = annals::open_sql_event_store("sqlite:/data/events.db");
//   auto workflow = std::make_shared<annals::WorkflowProjection>();
//   auto id = workflow->on_runs_changed([&](const std::vector<std::string>& run_ids) {
//     for (const auto& run_id : run_ids) cache.erase(run_id);
//   });
//   annals::attach_inline_projections(*store, {workflow});   // or a ProjectionRunner
//
// Tables and indexes (live names; a rebuild builds the same under its shadow names):
//   annals_workflow_runs      id PRIMARY KEY, tenant_id, app_id, workflow_id, triggered_from,
//                             status, inputs, outputs, error, elapsed_time, total_tokens,
//                             total_steps, created_by, created_at, finished_at, version
//     _page index  (tenant_id, app_id, triggered_from, created_at DESC, id DESC): pagination
//     _expiry index (tenant_id, created_at, id): expired runs, oldest first
//   annals_node_executions    PRIMARY KEY (run_id, id), tenant_id, app_id, workflow_id, "index",
//                             node_id, node_type, title, predecessor_node_id, status, inputs,
//                             outputs, error, elapsed_time, total_tokens, created_at, finished_at
//     _run index   (tenant_id, run_id, "index", id): a run's node executions in order
//     _id index    (tenant_id, id, created_at, run_id): a node execution by id
// Indexes are created together with their tables only: after a rebuild the live tables keep the
// shadow's index names, and a later setup() does not add the base names a second time.
// Timestamps are integer microseconds since the epoch; an empty outputs/error is stored NULL.
//
// Events are read from streams named "WorkflowRun-<run id>" only (others are skipped), and the
// run id is taken from the stream name, as the aggregate does. The rows mirror
// WorkflowRun::apply: a run that fails or is stopped marks its still-running node executions
// "stopped" with the run's finished_at; RunDeleted removes the run's rows from both tables (the
// log keeps them). Every value is bound, never spliced into the SQL.
//
// Thread-safety: as Projection requires. apply()/setup() are called by the engine from one thread
// at a time; committed(), reset() and the listener functions may be called from any thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "annals/events/codec.hpp"
#include "annals/projections/projection.hpp"
#include "annals/projections/workflow_views.hpp"
#include "annals/store/sql.hpp"

namespace annals {

class WorkflowProjection : public Projection {
 public:
  static constexpr std::string_view kName = "workflow_runs";
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::string_view kRunsTable = "annals_workflow_runs";
  static constexpr std::string_view kNodeExecutionsTable = "annals_node_executions";

  // Called with the distinct run ids whose rows a committed transaction changed (created,
  // updated or deleted), in the order first touched.
  using RunsChangedListener = std::function<void(const std::vector<std::string>& run_ids)>;
  // Called after a rebuild replaced the tables: any row may have changed.
  using ResetListener = std::function<void()>;

  // `registry` decodes the events; give it the upcasters WorkflowRun's history needs. The
  // default reads every workflow event at its current schema version.
  explicit WorkflowProjection(EventTypeRegistry registry = {});

  [[nodiscard]] std::string name() const override { return std::string(kName); }
  [[nodiscard]] std::uint32_t version() const override { return kVersion; }
  // The eight workflow events.
  [[nodiscard]] std::vector<std::string> handled_types() const override;
  [[nodiscard]] std::vector<ProjectionTable> tables() const override;

  void setup(ProjectionContext& ctx) override;
  // Throws SerializationError if a workflow event's payload does not decode, StoreError if the
  // SQL fails; the engine then rolls the batch (or the append) back.
  void apply(const RecordedEvent& event, ProjectionContext& ctx) override;

  // Tells the runs-changing listeners which runs the transaction about to commit touches.
  void committing(const std::vector<RecordedEvent>& events) noexcept override;
  // Tells the runs-changed listeners which runs the committed events touched.
  void committed(const std::vector<RecordedEvent>& events) noexcept override;
  // Tells the runs-abandoned listeners which runs the rolled-back transaction had touched.
  void rolled_back(const std::vector<RecordedEvent>& events) noexcept override;
  // Tells the reset listeners.
  void reset() noexcept override;

  // Registers a listener; returns its id for remove_listener(). Listeners are called after the
  // transaction committed, outside any lock, on the thread that committed it (an appending
  // thread for inline projections, the runner's thread for async ones), so a read made in the
  // listener sees the new rows. They must be quick and must not throw (what they throw is
  // swallowed). InvalidArgument if fn is empty.
  std::uint64_t on_runs_changed(RunsChangedListener fn);
  // Before the commit (inside the transaction) and after a rollback, with the same run ids as
  // the committed() or rolled_back() call that follows: a cache stops serving those runs in
  // between, so not even another thread sees the old row once the new one is committed.
  std::uint64_t on_runs_changing(RunsChangedListener fn);
  std::uint64_t on_runs_abandoned(RunsChangedListener fn);
  std::uint64_t on_reset(ResetListener fn);
  // Removes a listener of either kind; unknown ids are ignored. A call already in progress on
  // another thread may still finish after this returns.
  void remove_listener(std::uint64_t id) noexcept;

  // The run ids that these events touch (workflow events of WorkflowRun streams), distinct, in
  // the order first seen.
  [[nodiscard]] static std::vector<std::string> touched_runs(
      const std::vector<RecordedEvent>& events);

 private:
  EventTypeRegistry registry_;
  std::mutex listeners_mutex_;
  std::uint64_t last_listener_id_ = 0;
  std::map<std::uint64_t, RunsChangedListener> runs_changed_, runs_changing_, runs_abandoned_;

  void notify_runs(const std::map<std::uint64_t, RunsChangedListener>& listeners,
                   const std::vector<RecordedEvent>& events) noexcept;
  std::map<std::uint64_t, ResetListener> resets_;
};

// The read queries the indexes above are built for, over the live tables. The query
// repositories run exactly these; tests EXPLAIN them.
namespace workflow_sql {

// The columns run_from_row() / node_execution_from_row() read, in order.
[[nodiscard]] std::string run_columns();
[[nodiscard]] std::string node_execution_columns();
[[nodiscard]] WorkflowRunView run_from_row(const SqlRow& row);
[[nodiscard]] NodeExecutionView node_execution_from_row(const SqlRow& row);

// A page of runs, newest first: $1 tenant, $2 app, $3 triggered_from; after_cursor adds the
// keyset bound ($4 created_at, $5 id of the last row seen, rows strictly after it); the limit
// is the last parameter ($4 or $6).
[[nodiscard]] std::string select_runs_page(bool after_cursor);
// A tenant's runs created before $2, oldest first, at most $3: $1 tenant.
[[nodiscard]] std::string select_expired_runs();
// A run's node executions in execution order: $1 tenant, $2 run id.
[[nodiscard]] std::string select_node_executions_by_run();
// One node execution: $1 tenant, $2 node execution id (the earliest, should two runs share it).
[[nodiscard]] std::string select_node_execution_by_id();

}  // namespace workflow_sql

}  // namespace annals
