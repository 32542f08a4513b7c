#include "annals/projections/workflow_projection.hpp"

#include <algorithm>
#include <optional>
#include <unordered_set>
#include <utility>
#include <variant>

#include "annals/events/error.hpp"
#include "annals/events/workflow_events.hpp"

namespace annals {

namespace {

constexpr std::string_view kStreamPrefix = "WorkflowRun-";
constexpr std::string_view kRunning = "running";  // to_string(RunStatus::running), as stored

// The run a stream belongs to, or nullopt for a stream that is not a WorkflowRun's.
std::optional<std::string> run_id_of(const std::string& stream_id) {
  if (stream_id.size() <= kStreamPrefix.size() || !stream_id.starts_with(kStreamPrefix)) {
    return std::nullopt;
  }
  return stream_id.substr(kStreamPrefix.size());
}

bool is_workflow_type(std::string_view type) {
  bool found = false;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    found = ((std::variant_alternative_t<I, WorkflowRunEvent>::kType == type) || ...);
  }
  (std::make_index_sequence<std::variant_size_v<WorkflowRunEvent>>{});
  return found;
}

// The aggregate keeps "none" as an empty string; the tables keep it as NULL.
SqlValue text_or_null(const std::string& text) {
  if (text.empty()) return nullptr;
  return text;
}

std::int64_t sql_int(std::uint64_t value) { return static_cast<std::int64_t>(value); }

// The statements Applier runs, for one set of physical table names. Built once per suffix
// and thread (live tables, or a rebuild's shadow): assembling them per event cost more than
// SQLite's lookup of the prepared statement.
struct Statements {
  explicit Statements(const ProjectionContext& ctx)
      : suffix(ctx.suffix()),
        runs(ctx.table(WorkflowProjection::kRunsTable)),
        nodes(ctx.table(WorkflowProjection::kNodeExecutionsTable)),
        // A second RunCreated in one stream (only a hand-made log has one) overwrites what it
        // sets, as WorkflowRun::apply does.
        run_created(
            "INSERT INTO " + runs +
            " (id, tenant_id, app_id, workflow_id, triggered_from, status, inputs,"
            " outputs, error, elapsed_time, total_tokens, total_steps, created_by,"
            " created_at, finished_at, version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, 0, 0, 0, $8, $9, NULL, $10)"
            " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id,"
            " app_id = excluded.app_id, workflow_id = excluded.workflow_id,"
            " triggered_from = excluded.triggered_from, status = excluded.status,"
            " inputs = excluded.inputs, created_by = excluded.created_by,"
            " created_at = excluded.created_at, version = excluded.version"),
        // The node row copies tenant, app and workflow from its run's row. A node execution id
        // the run already has keeps its first row, as the aggregate finds the first one.
        node_started(
            "INSERT INTO " + nodes +
            " (run_id, id, tenant_id, app_id, workflow_id, \"index\", node_id, node_type,"
            " title, predecessor_node_id, status, inputs, outputs, error, elapsed_time,"
            " total_tokens, created_at, finished_at)"
            " SELECT $1, $2, tenant_id, app_id, workflow_id, $3, $4, $5, $6, $7, $8, $9,"
            " NULL, NULL, 0, 0, $10, NULL FROM " +
            runs + " WHERE id = $1 ON CONFLICT (run_id, id) DO NOTHING"),
        node_completed("UPDATE " + nodes +
                       " SET status = $3, outputs = $4, elapsed_time = $5, total_tokens = $6,"
                       " finished_at = $7 WHERE run_id = $1 AND id = $2"),
        node_failed("UPDATE " + nodes +
                    " SET status = $3, error = $4, outputs = $5, elapsed_time = $6,"
                    " finished_at = $7 WHERE run_id = $1 AND id = $2"),
        delete_nodes("DELETE FROM " + nodes + " WHERE run_id = $1"),
        delete_run("DELETE FROM " + runs + " WHERE id = $1"),
        bump_version("UPDATE " + runs + " SET version = $2 WHERE id = $1"),
        // RunSucceeded leaves error as it was and RunFailed / RunStopped leave outputs, as the
        // aggregate does: a NULL argument keeps the column.
        finish_run("UPDATE " + runs +
                   " SET status = $2, outputs = COALESCE($3, outputs), error = COALESCE($4, "
                   "error), elapsed_time = $5, total_tokens = $6, total_steps = $7,"
                   " finished_at = $8, version = $9 WHERE id = $1"),
        stop_running_nodes("UPDATE " + nodes +
                           " SET status = $2, finished_at = $3 WHERE run_id = $1 AND status = $4") {}

  std::string suffix, runs, nodes;
  std::string run_created, node_started, node_completed, node_failed, delete_nodes, delete_run,
      bump_version, finish_run, stop_running_nodes;
};

const Statements& statements_for(const ProjectionContext& ctx) {
  // Usually one suffix per thread for long stretches (the live one; a rebuild's shadow).
  thread_local std::optional<Statements> last;
  if (!last || last->suffix != ctx.suffix()) last.emplace(ctx);
  return *last;
}

// Writes one decoded event's changes; every statement names its tables through the context.
class Applier {
 public:
  Applier(ProjectionContext& ctx, std::string run_id, std::uint64_t version)
      : sql_(ctx.sql()), q_(statements_for(ctx)), run_id_(std::move(run_id)),
        version_(sql_int(version)) {}

  void operator()(const RunCreated& e) {
    sql_.execute(q_.run_created,
                 {run_id_, e.tenant_id, e.app_id, e.workflow_id, e.triggered_from,
                  std::string(kRunning), e.inputs, e.created_by, to_micros(e.created_at),
                  version_});
  }

  void operator()(const NodeStarted& e) {
    sql_.execute(q_.node_started,
                 {run_id_, e.node_execution_id, static_cast<std::int64_t>(e.index), e.node_id,
                  e.node_type, e.title, e.predecessor_node_id, std::string(kRunning), e.inputs,
                  to_micros(e.started_at)});
    bump_version();
  }

  void operator()(const NodeCompleted& e) {
    sql_.execute(q_.node_completed,
                 {run_id_, e.node_execution_id, std::string("succeeded"), text_or_null(e.outputs),
                  e.elapsed_time, sql_int(e.total_tokens), to_micros(e.finished_at)});
    bump_version();
  }

  void operator()(const NodeFailed& e) {
    sql_.execute(q_.node_failed,
                 {run_id_, e.node_execution_id, std::string("failed"), text_or_null(e.error),
                  text_or_null(e.outputs), e.elapsed_time, to_micros(e.finished_at)});
    bump_version();
  }

  void operator()(const RunSucceeded& e) {
    finish_run("succeeded", text_or_null(e.outputs), nullptr, e.elapsed_time, e.total_tokens,
               e.total_steps, e.finished_at);
  }

  void operator()(const RunFailed& e) {
    stop_running_nodes(e.finished_at);
    finish_run("failed", nullptr, text_or_null(e.error), e.elapsed_time, e.total_tokens,
               e.total_steps, e.finished_at);
  }

  void operator()(const RunStopped& e) {
    stop_running_nodes(e.finished_at);
    finish_run("stopped", nullptr, nullptr, e.elapsed_time, e.total_tokens, e.total_steps,
               e.finished_at);
  }

  void operator()(const RunDeleted&) {
    sql_.execute(q_.delete_nodes, {run_id_});
    sql_.execute(q_.delete_run, {run_id_});
  }

 private:
  void bump_version() { sql_.execute(q_.bump_version, {run_id_, version_}); }

  void finish_run(std::string status, SqlValue outputs, SqlValue error, double elapsed_time,
                  std::uint64_t total_tokens, std::uint32_t total_steps, Timestamp finished_at) {
    sql_.execute(q_.finish_run,
                 {run_id_, std::move(status), std::move(outputs), std::move(error), elapsed_time,
                  sql_int(total_tokens), static_cast<std::int64_t>(total_steps),
                  to_micros(finished_at), version_});
  }

  void stop_running_nodes(Timestamp at) {
    sql_.execute(q_.stop_running_nodes,
                 {run_id_, std::string("stopped"), to_micros(at), std::string(kRunning)});
  }

  SqlSession& sql_;
  const Statements& q_;
  std::string run_id_;
  std::int64_t version_;
};

}  // namespace

WorkflowProjection::WorkflowProjection(EventTypeRegistry registry)
    : registry_(std::move(registry)) {}

std::vector<std::string> WorkflowProjection::handled_types() const {
  // The engine asks once per batch, i.e. once per inline append: built once, copied after.
  static const std::vector<std::string> kTypes = [] {
    std::vector<std::string> types;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (types.emplace_back(std::variant_alternative_t<I, WorkflowRunEvent>::kType), ...);
    }
    (std::make_index_sequence<std::variant_size_v<WorkflowRunEvent>>{});
    return types;
  }();
  return kTypes;
}

std::vector<ProjectionTable> WorkflowProjection::tables() const {
  return {{std::string(kRunsTable), {"id"}}, {std::string(kNodeExecutionsTable), {"run_id", "id"}}};
}

void WorkflowProjection::setup(ProjectionContext& ctx) {
  const std::string runs = ctx.table(kRunsTable);
  const std::string nodes = ctx.table(kNodeExecutionsTable);
  // Indexes are made only with their tables: after a rebuild the live tables carry the shadow's
  // index names, and creating the base names again would index every row twice.
  if (ctx.sql().table_exists(runs) && ctx.sql().table_exists(nodes)) return;
  // BIGINT and DOUBLE PRECISION read the same in SQLite and PostgreSQL. These stay rowid
  // tables although each keeps a separate index for its key: clustered on the key (WITHOUT
  // ROWID) every insert and update by key was one b-tree fewer, but the rows (inputs, outputs)
  // are far above SQLite's 1/20-page guideline for that, so the tree is deeper and a lookup
  // through a secondary index (every page, expiry batch and by-run read) got up to 3x slower.
  ctx.sql().execute_script("CREATE TABLE IF NOT EXISTS " + runs +
                           " ("
                           " id TEXT NOT NULL PRIMARY KEY,"
                           " tenant_id TEXT NOT NULL,"
                           " app_id TEXT NOT NULL,"
                           " workflow_id TEXT NOT NULL,"
                           " triggered_from TEXT NOT NULL,"
                           " status TEXT NOT NULL,"
                           " inputs TEXT NOT NULL,"
                           " outputs TEXT,"
                           " error TEXT,"
                           " elapsed_time DOUBLE PRECISION NOT NULL,"
                           " total_tokens BIGINT NOT NULL,"
                           " total_steps BIGINT NOT NULL,"
                           " created_by TEXT NOT NULL,"
                           " created_at BIGINT NOT NULL,"
                           " finished_at BIGINT,"
                           " version BIGINT NOT NULL);"
                           "CREATE INDEX IF NOT EXISTS " +
                           ctx.index("annals_workflow_runs_page") + " ON " + runs +
                           " (tenant_id, app_id, triggered_from, created_at DESC, id DESC);"
                           "CREATE INDEX IF NOT EXISTS " +
                           ctx.index("annals_workflow_runs_expiry") + " ON " + runs +
                           " (tenant_id, created_at, id);"
                           "CREATE TABLE IF NOT EXISTS " +
                           nodes +
                           " ("
                           " run_id TEXT NOT NULL,"
                           " id TEXT NOT NULL,"
                           " tenant_id TEXT NOT NULL,"
                           " app_id TEXT NOT NULL,"
                           " workflow_id TEXT NOT NULL,"
                           " \"index\" BIGINT NOT NULL,"
                           " node_id TEXT NOT NULL,"
                           " node_type TEXT NOT NULL,"
                           " title TEXT NOT NULL,"
                           " predecessor_node_id TEXT NOT NULL,"
                           " status TEXT NOT NULL,"
                           " inputs TEXT NOT NULL,"
                           " outputs TEXT,"
                           " error TEXT,"
                           " elapsed_time DOUBLE PRECISION NOT NULL,"
                           " total_tokens BIGINT NOT NULL,"
                           " created_at BIGINT NOT NULL,"
                           " finished_at BIGINT,"
                           " PRIMARY KEY (run_id, id));"
                           "CREATE INDEX IF NOT EXISTS " +
                           ctx.index("annals_node_executions_run") + " ON " + nodes +
                           " (tenant_id, run_id, \"index\", id);"
                           "CREATE INDEX IF NOT EXISTS " +
                           ctx.index("annals_node_executions_id") + " ON " + nodes +
                           " (tenant_id, id, created_at, run_id)");
}

void WorkflowProjection::apply(const RecordedEvent& event, ProjectionContext& ctx) {
  std::optional<std::string> run_id = run_id_of(event.stream_id);
  if (!run_id || !is_workflow_type(event.type)) return;
  const WorkflowRunEvent decoded = registry_.decode_variant<WorkflowRunEvent>(event);
  Applier applier(ctx, std::move(*run_id), event.version);
  std::visit(applier, decoded);
}

std::vector<std::string> WorkflowProjection::touched_runs(
    const std::vector<RecordedEvent>& events) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const RecordedEvent& e : events) {
    if (!is_workflow_type(e.type)) continue;
    std::optional<std::string> run_id = run_id_of(e.stream_id);
    if (run_id && seen.insert(*run_id).second) out.push_back(std::move(*run_id));
  }
  return out;
}

void WorkflowProjection::notify_runs(const std::map<std::uint64_t, RunsChangedListener>& which,
                                     const std::vector<RecordedEvent>& events) noexcept {
  try {
    std::vector<RunsChangedListener> listeners;
    {
      std::lock_guard lock(listeners_mutex_);
      if (which.empty()) return;
      for (const auto& [id, fn] : which) listeners.push_back(fn);
    }
    const std::vector<std::string> run_ids = touched_runs(events);
    if (run_ids.empty()) return;
    for (const auto& fn : listeners) {
      try {
        fn(run_ids);
      } catch (...) {  // a listener's failure must not reach the committing thread
      }
    }
  } catch (...) {  // out of memory while copying: nothing sensible left to do
  }
}

void WorkflowProjection::committing(const std::vector<RecordedEvent>& events) noexcept {
  notify_runs(runs_changing_, events);
}

void WorkflowProjection::committed(const std::vector<RecordedEvent>& events) noexcept {
  notify_runs(runs_changed_, events);
}

void WorkflowProjection::rolled_back(const std::vector<RecordedEvent>& events) noexcept {
  notify_runs(runs_abandoned_, events);
}

void WorkflowProjection::reset() noexcept {
  try {
    std::vector<ResetListener> listeners;
    {
      std::lock_guard lock(listeners_mutex_);
      for (const auto& [id, fn] : resets_) listeners.push_back(fn);
    }
    for (const auto& fn : listeners) {
      try {
        fn();
      } catch (...) {
      }
    }
  } catch (...) {
  }
}

std::uint64_t WorkflowProjection::on_runs_changed(RunsChangedListener fn) {
  if (!fn) throw InvalidArgument("WorkflowProjection::on_runs_changed: the listener is empty");
  std::lock_guard lock(listeners_mutex_);
  runs_changed_.emplace(++last_listener_id_, std::move(fn));
  return last_listener_id_;
}

std::uint64_t WorkflowProjection::on_runs_changing(RunsChangedListener fn) {
  if (!fn) throw InvalidArgument("WorkflowProjection::on_runs_changing: the listener is empty");
  std::lock_guard lock(listeners_mutex_);
  runs_changing_.emplace(++last_listener_id_, std::move(fn));
  return last_listener_id_;
}

std::uint64_t WorkflowProjection::on_runs_abandoned(RunsChangedListener fn) {
  if (!fn) throw InvalidArgument("WorkflowProjection::on_runs_abandoned: the listener is empty");
  std::lock_guard lock(listeners_mutex_);
  runs_abandoned_.emplace(++last_listener_id_, std::move(fn));
  return last_listener_id_;
}

std::uint64_t WorkflowProjection::on_reset(ResetListener fn) {
  if (!fn) throw InvalidArgument("WorkflowProjection::on_reset: the listener is empty");
  std::lock_guard lock(listeners_mutex_);
  resets_.emplace(++last_listener_id_, std::move(fn));
  return last_listener_id_;
}

void WorkflowProjection::remove_listener(std::uint64_t id) noexcept {
  std::lock_guard lock(listeners_mutex_);
  runs_changed_.erase(id);
  runs_changing_.erase(id);
  runs_abandoned_.erase(id);
  resets_.erase(id);
}

namespace workflow_sql {

std::string run_columns() {
  return "id, tenant_id, app_id, workflow_id, triggered_from, status, inputs, outputs, error,"
         " elapsed_time, total_tokens, total_steps, created_by, created_at, finished_at, version";
}

std::string node_execution_columns() {
  return "id, tenant_id, run_id, app_id, workflow_id, \"index\", node_id, node_type, title,"
         " predecessor_node_id, status, inputs, outputs, error, elapsed_time, total_tokens,"
         " created_at, finished_at";
}

namespace {
std::optional<Timestamp> optional_time(const SqlRow& row, std::size_t column) {
  if (auto micros = row.optional_integer(column)) return from_micros(*micros);
  return std::nullopt;
}
}  // namespace

WorkflowRunView run_from_row(const SqlRow& row) {
  WorkflowRunView v;
  v.id = row.text(0);
  v.tenant_id = row.text(1);
  v.app_id = row.text(2);
  v.workflow_id = row.text(3);
  v.triggered_from = row.text(4);
  v.status = row.text(5);
  v.inputs = row.text(6);
  v.outputs = row.optional_text(7);
  v.error = row.optional_text(8);
  v.elapsed_time = row.real(9);
  v.total_tokens = static_cast<std::uint64_t>(row.integer(10));
  v.total_steps = static_cast<std::uint32_t>(row.integer(11));
  v.created_by = row.text(12);
  v.created_at = from_micros(row.integer(13));
  v.finished_at = optional_time(row, 14);
  v.version = static_cast<std::uint64_t>(row.integer(15));
  return v;
}

NodeExecutionView node_execution_from_row(const SqlRow& row) {
  NodeExecutionView v;
  v.id = row.text(0);
  v.tenant_id = row.text(1);
  v.run_id = row.text(2);
  v.app_id = row.text(3);
  v.workflow_id = row.text(4);
  v.index = static_cast<std::uint32_t>(row.integer(5));
  v.node_id = row.text(6);
  v.node_type = row.text(7);
  v.title = row.text(8);
  v.predecessor_node_id = row.text(9);
  v.status = row.text(10);
  v.inputs = row.text(11);
  v.outputs = row.optional_text(12);
  v.error = row.optional_text(13);
  v.elapsed_time = row.real(14);
  v.total_tokens = static_cast<std::uint64_t>(row.integer(15));
  v.created_at = from_micros(row.integer(16));
  v.finished_at = optional_time(row, 17);
  return v;
}

std::string select_runs_page(bool after_cursor) {
  return "SELECT " + run_columns() + " FROM " + std::string(WorkflowProjection::kRunsTable) +
         " WHERE tenant_id = $1 AND app_id = $2 AND triggered_from = $3" +
         (after_cursor ? " AND (created_at, id) < ($4, $5)" : "") +
         " ORDER BY created_at DESC, id DESC LIMIT " + (after_cursor ? "$6" : "$4");
}

std::string select_expired_runs() {
  return "SELECT " + run_columns() + " FROM " + std::string(WorkflowProjection::kRunsTable) +
         " WHERE tenant_id = $1 AND created_at < $2 ORDER BY created_at, id LIMIT $3";
}

std::string select_node_executions_by_run() {
  return "SELECT " + node_execution_columns() + " FROM " +
         std::string(WorkflowProjection::kNodeExecutionsTable) +
         " WHERE tenant_id = $1 AND run_id = $2 ORDER BY \"index\", id";
}

std::string select_node_execution_by_id() {
  return "SELECT " + node_execution_columns() + " FROM " +
         std::string(WorkflowProjection::kNodeExecutionsTable) +
         " WHERE tenant_id = $1 AND id = $2 ORDER BY created_at, run_id LIMIT 1";
}

}  // namespace workflow_sql

}  // namespace annals
