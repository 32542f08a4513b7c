// The workflow read tables: what WorkflowProjection writes for each workflow event, its change
// notifications, and the indexes behind the query repositories.

#include "annals/projections/workflow_projection.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/checkpoint.hpp"
#include "annals/projections/engine.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/node_execution_repository.hpp"
#include "annals/repositories/workflow_run_repository.hpp"
#include "support/backends.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using Catch::Matchers::Contains;

namespace {

Timestamp at(int seconds) { return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL); }

RunCreated created(const std::string& run_id, const std::string& tenant = "t-1") {
  return RunCreated{.run_id = run_id,
                    .tenant_id = tenant,
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"q":"hello"})",
                    .created_at = at(0)};
}

NodeStarted started(const std::string& id, int seconds, const std::string& predecessor = "") {
  return NodeStarted{.node_execution_id = id,
                     .node_id = "node-" + id,
                     .node_type = "llm",
                     .title = "Node " + id,
                     .predecessor_node_id = predecessor,
                     .inputs = R"({"x":1})",
                     .started_at = at(seconds)};
}

struct MemoryStore {
  static constexpr const char* kName = "memory";
  std::shared_ptr<SqlEventStore> open(const std::string& options = "") {
    return open_sql_event_store(options.empty() ? "memory:" : "memory:?" + options);
  }
};

struct SqliteStore {
  static constexpr const char* kName = "sqlite";
  std::shared_ptr<SqlEventStore> open(const std::string& options = "synchronous=normal") {
    return open_sql_event_store(dir.sqlite_uri("events.db", options));
  }
  annals::test::TempDir dir;
};

// ANNALS_BACKENDS' choice (support/backends.hpp), with these stores' names in annals_tests.
#ifdef ANNALS_TEST_PG_ONLY
#define STORES annals::test::PgBackend
#else
#define STORES MemoryStore, SqliteStore
#endif

std::vector<WorkflowRunView> run_rows(const SqlEventStore& store) {
  std::vector<WorkflowRunView> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT " + workflow_sql::run_columns() +
                                       " FROM annals_workflow_runs ORDER BY id")) {
      out.push_back(workflow_sql::run_from_row(row));
    }
  });
  return out;
}

std::vector<NodeExecutionView> node_rows(const SqlEventStore& store) {
  std::vector<NodeExecutionView> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT " + workflow_sql::node_execution_columns() +
                                       " FROM annals_node_executions"
                                       " ORDER BY run_id, \"index\", id")) {
      out.push_back(workflow_sql::node_execution_from_row(row));
    }
  });
  return out;
}

// What the tables must hold for these (saved) runs: the aggregate's own state.
void require_tables_match(const SqlEventStore& store, std::vector<const WorkflowRun*> runs) {
  std::sort(runs.begin(), runs.end(),
            [](const WorkflowRun* a, const WorkflowRun* b) { return a->id() < b->id(); });
  std::vector<WorkflowRunView> expected_runs;
  std::vector<NodeExecutionView> expected_nodes;
  for (const WorkflowRun* run : runs) {
    if (run->is_deleted()) continue;
    expected_runs.push_back(workflow_run_view(*run));
    for (const NodeExecution& n : run->node_executions()) {
      expected_nodes.push_back(node_execution_view(*run, n));
    }
  }
  CHECK(run_rows(store) == expected_runs);
  CHECK(node_rows(store) == expected_nodes);
}

std::vector<std::string> query_plan(const SqlEventStore& store, const std::string& sql,
                                    const std::vector<SqlValue>& params) {
  std::vector<std::string> details;
  store.read_transaction([&](SqlSession& session) {
    for (const SqlRow& row : session.query("EXPLAIN QUERY PLAN " + sql, params)) {
      details.push_back(row.text(3));
    }
  });
  return details;
}

// True if the plan reads `table` only through `index` and never sorts.
bool served_by_index(const std::vector<std::string>& plan, const std::string& index) {
  bool used = false;
  for (const std::string& step : plan) {
    if (step.find("TEMP B-TREE") != std::string::npos) return false;
    if (step.rfind("SCAN", 0) == 0) return false;
    if (step.find("INDEX " + index) != std::string::npos) used = true;
  }
  return used;
}

}  // namespace

TEMPLATE_TEST_CASE("the read tables equal the aggregate after every save", "[projections]",
                   STORES) {
  TestType backend;
  auto store = backend.open();
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  AggregateRepository<WorkflowRun> runs(store);

  WorkflowRun a = WorkflowRun::create(created("r-a"));
  runs.save(a);
  require_tables_match(*store, {&a});

  a.start_node(started("n-1", 1));
  a.start_node(started("n-2", 2, "node-n-1"));
  runs.save(a);
  require_tables_match(*store, {&a});

  a.complete_node({.node_execution_id = "n-1",
                   .outputs = R"({"y":2})",
                   .total_tokens = 17,
                   .finished_at = at(3)});
  a.fail_node({.node_execution_id = "n-2", .error = "timeout", .finished_at = at(4)});
  runs.save(a);
  require_tables_match(*store, {&a});

  WorkflowRun b = WorkflowRun::create(created("r-b", "t-2"));
  b.start_node(started("n-1", 1));  // the same node execution id in another run
  b.complete_node({.node_execution_id = "n-1", .finished_at = at(2)});
  b.succeed({.outputs = R"({"done":true})", .finished_at = at(5)});
  runs.save(b);
  a.fail({.error = "node n-2 failed", .finished_at = at(6)});
  runs.save(a);
  require_tables_match(*store, {&a, &b});

  const auto rows = run_rows(*store);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].status == "failed");
  CHECK(rows[0].error == std::optional<std::string>("node n-2 failed"));
  CHECK(rows[0].outputs == std::nullopt);
  CHECK(rows[0].total_steps == 2);
  CHECK(rows[0].total_tokens == 17);
  CHECK(rows[0].version == a.version());
  CHECK(rows[0].finished_at == at(6));
  CHECK(rows[1].status == "succeeded");
  CHECK(rows[1].outputs == std::optional<std::string>(R"({"done":true})"));
  CHECK(rows[1].tenant_id == "t-2");
}

TEMPLATE_TEST_CASE("a run that fails or stops marks its running node executions stopped",
                   "[projections]", STORES) {
  TestType backend;
  auto store = backend.open();
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  AggregateRepository<WorkflowRun> runs(store);

  WorkflowRun failed = WorkflowRun::create(created("r-failed"));
  failed.start_node(started("done", 1));
  failed.complete_node({.node_execution_id = "done", .finished_at = at(2)});
  failed.start_node(started("busy", 3));
  failed.fail({.error = "boom", .finished_at = at(9)});
  WorkflowRun stopped = WorkflowRun::create(created("r-stopped"));
  stopped.start_node(started("busy", 1));
  stopped.stop({.stopped_by = "bob", .finished_at = at(7)});
  runs.save(failed);
  runs.save(stopped);

  require_tables_match(*store, {&failed, &stopped});
  const auto nodes = node_rows(*store);
  REQUIRE(nodes.size() == 3);
  // ordered by run_id, index: r-failed/done, r-failed/busy, r-stopped/busy
  CHECK(nodes[0].status == "succeeded");
  CHECK(nodes[0].finished_at == at(2));
  CHECK(nodes[1].status == "stopped");
  CHECK(nodes[1].finished_at == at(9));
  CHECK(nodes[2].status == "stopped");
  CHECK(nodes[2].finished_at == at(7));
  CHECK(run_rows(*store)[1].status == "stopped");
}

TEMPLATE_TEST_CASE("RunDeleted removes the run's rows from both tables and the log keeps them",
                   "[projections]", STORES) {
  TestType backend;
  auto store = backend.open();
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  AggregateRepository<WorkflowRun> runs(store);
  WorkflowRun keep = WorkflowRun::create(created("r-keep"));
  keep.start_node(started("n-1", 1));
  WorkflowRun gone = WorkflowRun::create(created("r-gone"));
  gone.start_node(started("n-1", 1));
  gone.start_node(started("n-2", 2));
  runs.save(keep);
  runs.save(gone);
  REQUIRE(node_rows(*store).size() == 3);

  gone.mark_deleted({.deleted_by = "admin", .reason = "retention", .deleted_at = at(10)});
  runs.save(gone);

  require_tables_match(*store, {&keep, &gone});
  CHECK(run_rows(*store).size() == 1);
  CHECK(node_rows(*store).size() == 1);
  const auto history = store->read_stream("WorkflowRun-r-gone");
  REQUIRE(history.size() == 4);
  CHECK(history.back().type == "RunDeleted");
}

TEST_CASE("events outside WorkflowRun streams and other types are skipped", "[projections]") {
  auto store = open_sql_event_store("memory:");
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  NewEvent look_alike;
  look_alike.type = "RunCreated";
  look_alike.payload = R"({"not":"a run"})";
  store->append("Other-1", ExpectedVersion::any(), {look_alike});
  AggregateRepository<WorkflowRun> runs(store);
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  NewEvent note;
  note.type = "AuditNote";
  note.payload = R"({"text":"hi"})";
  store->append("WorkflowRun-r-1", ExpectedVersion::exactly(1), {note});

  const auto rows = run_rows(*store);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].id == "r-1");
  CHECK(rows[0].version == 1);  // the note is not a workflow event
}

TEST_CASE("a workflow event that does not decode rolls the append back", "[projections]") {
  auto store = open_sql_event_store("memory:");
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  NewEvent broken;
  broken.type = "RunCreated";
  broken.payload = R"({"run_id": 42})";
  CHECK_THROWS_AS(store->append("WorkflowRun-x", ExpectedVersion::no_stream(), {broken}),
                  SerializationError);
  CHECK(store->head_position() == 0);
  CHECK(run_rows(*store).empty());
}

TEST_CASE("catching up an existing log gives the tables inline projection gives",
          "[projections]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  const std::string uri =
      annals::test::store_uri(dir, "events.db", "payload=binary&synchronous=normal");
  std::vector<WorkflowRun> saved;
  {
    auto plain = open_sql_event_store(uri);  // no projection yet
    AggregateRepository<WorkflowRun> runs(plain);
    for (int i = 0; i < 30; ++i) {
      WorkflowRun run = WorkflowRun::create(created("r-" + std::to_string(i)));
      run.start_node(started("n", 1));
      if (i % 3 == 0) run.complete_node({.node_execution_id = "n", .finished_at = at(2)});
      if (i % 3 == 1) run.stop({.finished_at = at(3)});
      if (i % 5 == 0) run.mark_deleted({.deleted_at = at(4)});
      runs.save(run);
      saved.push_back(std::move(run));
    }
  }
  auto store = open_sql_event_store(uri);
  auto projection = std::make_shared<WorkflowProjection>();
  attach_inline_projections(*store, {projection});
  std::vector<const WorkflowRun*> pointers;
  for (const WorkflowRun& run : saved) pointers.push_back(&run);
  require_tables_match(*store, pointers);
  CHECK(run_rows(*store).size() == 24);
}

TEST_CASE("the projection creates its tables and indexes under the context's names",
          "[projections]") {
  auto store = open_sql_event_store("memory:");
  WorkflowProjection projection;
  store->write_transaction([&](SqlSession& sql) {
    ProjectionContext shadow(sql, "__shadow_7");
    projection.setup(shadow);
    projection.setup(shadow);  // IF NOT EXISTS: a second setup is harmless
  });
  std::set<std::string> names;
  store->read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT name FROM sqlite_master")) {
      if (row.text(0).rfind("annals_", 0) == 0) names.insert(row.text(0));
    }
  });
  for (const std::string& name : names) {
    if (name.rfind("annals_events", 0) == 0 || name.rfind("sqlite_", 0) == 0) continue;
    INFO(name);
    CHECK(name.size() > 10);
    CHECK(name.substr(name.size() - 10) == "__shadow_7");
  }
  CHECK(names.count("annals_workflow_runs__shadow_7") == 1);
  CHECK(names.count("annals_node_executions__shadow_7") == 1);
  CHECK(names.count("annals_workflow_runs_page__shadow_7") == 1);
  CHECK(names.count("annals_workflow_runs_expiry__shadow_7") == 1);
  CHECK(names.count("annals_node_executions_run__shadow_7") == 1);
  CHECK(names.count("annals_workflow_runs") == 0);
}

TEST_CASE("the pagination, expiry and by-run queries are served by their indexes",
          "[projections][repositories]") {
  annals::test::TempDir dir;
  auto store = open_sql_event_store(dir.sqlite_uri("events.db", "synchronous=normal"));
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  AggregateRepository<WorkflowRun> runs(store);
  std::vector<WorkflowRun> batch;
  for (int i = 0; i < 200; ++i) {
    RunCreated c = created("r-" + std::to_string(i), i % 2 ? "t-1" : "t-2");
    c.created_at = at(i % 10);
    batch.push_back(WorkflowRun::create(c));
    batch.back().start_node(started("n", 20));
  }
  std::vector<WorkflowRun*> pointers;
  for (WorkflowRun& run : batch) pointers.push_back(&run);
  runs.save_all(pointers);

  const std::string t = "t-1", a = "app-1", tr = "debugging";
  CHECK(served_by_index(
      query_plan(*store, workflow_sql::select_runs_page(false), {t, a, tr, std::int64_t{21}}),
      "annals_workflow_runs_page"));
  const auto deep = query_plan(*store, workflow_sql::select_runs_page(true),
                               {t, a, tr, to_micros(at(5)), std::string("r-9"), std::int64_t{21}});
  INFO(deep.front());
  CHECK(served_by_index(deep, "annals_workflow_runs_page"));
  // The keyset bound is part of the index search, not a filter over everything before it.
  CHECK_THAT(deep.front(), Contains("(created_at,id)<"));
  CHECK(served_by_index(query_plan(*store, workflow_sql::select_expired_runs(),
                                   {t, to_micros(at(5)), std::int64_t{1000}}),
                        "annals_workflow_runs_expiry"));
  CHECK(served_by_index(
      query_plan(*store, workflow_sql::select_node_executions_by_run(), {t, std::string("r-1")}),
      "annals_node_executions_run"));
  CHECK(served_by_index(
      query_plan(*store, workflow_sql::select_node_execution_by_id(), {t, std::string("n")}),
      "annals_node_executions_id"));
}

TEST_CASE("committed() tells listeners which runs changed and reset() tells reset listeners",
          "[projections]") {
  auto store = open_sql_event_store("memory:");
  auto projection = std::make_shared<WorkflowProjection>();
  attach_inline_projections(*store, {projection});
  std::mutex mutex;
  std::vector<std::vector<std::string>> calls;
  int resets = 0;
  const auto changed_id = projection->on_runs_changed([&](const std::vector<std::string>& ids) {
    std::lock_guard lock(mutex);
    calls.push_back(ids);
  });
  const auto reset_id = projection->on_reset([&] { ++resets; });
  CHECK(changed_id != reset_id);
  projection->on_runs_changed([](const std::vector<std::string>&) {
    throw std::runtime_error("a broken listener");  // must not reach the saving thread
  });

  AggregateRepository<WorkflowRun> runs(store);
  WorkflowRun a = WorkflowRun::create(created("r-a"));
  WorkflowRun b = WorkflowRun::create(created("r-b"));
  runs.save_all({&a, &b});
  a.start_node(started("n", 1));
  a.complete_node({.node_execution_id = "n", .finished_at = at(2)});
  runs.save(a);
  store->append("Other", ExpectedVersion::any(),
                {NewEvent{.type = "Thing", .payload = "{}"}});  // no run changed: no call
  b.mark_deleted({.deleted_at = at(3)});
  runs.save(b);

  {
    std::lock_guard lock(mutex);
    REQUIRE(calls.size() == 3);
    CHECK(calls[0] == std::vector<std::string>{"r-a", "r-b"});
    CHECK(calls[1] == std::vector<std::string>{"r-a"});
    CHECK(calls[2] == std::vector<std::string>{"r-b"});
  }
  projection->reset();
  CHECK(resets == 1);

  projection->remove_listener(changed_id);
  projection->remove_listener(reset_id);
  projection->remove_listener(12345);  // unknown: ignored
  WorkflowRun c = WorkflowRun::create(created("r-c"));
  runs.save(c);
  projection->reset();
  CHECK(calls.size() == 3);
  CHECK(resets == 1);
  CHECK_THROWS_AS(projection->on_runs_changed({}), InvalidArgument);
  CHECK_THROWS_AS(projection->on_reset({}), InvalidArgument);
}

TEST_CASE("touched_runs lists each workflow run once in first-seen order", "[projections]") {
  std::vector<RecordedEvent> events(5);
  events[0].stream_id = "WorkflowRun-b";
  events[0].type = "RunCreated";
  events[1].stream_id = "WorkflowRun-a";
  events[1].type = "NodeStarted";
  events[2].stream_id = "WorkflowRun-b";
  events[2].type = "RunDeleted";
  events[3].stream_id = "Other-c";
  events[3].type = "RunCreated";
  events[4].stream_id = "WorkflowRun-d";
  events[4].type = "Thing";
  CHECK(WorkflowProjection::touched_runs(events) == std::vector<std::string>{"b", "a"});
}

TEST_CASE("a rebuilt workflow table equals the incremental one and stays indexed after reopening",
          "[projections][rebuild]") {
  annals::test::TempDir dir;
  const std::string uri = dir.sqlite_uri("events.db", "synchronous=normal");
  std::vector<WorkflowRun> saved;
  {
    auto store = open_sql_event_store(uri);
    auto projection = std::make_shared<WorkflowProjection>();
    attach_inline_projections(*store, {projection});
    AggregateRepository<WorkflowRun> runs(store);
    for (int i = 0; i < 40; ++i) {
      WorkflowRun run =
          WorkflowRun::create(created("r-" + std::to_string(i), i % 2 ? "t-1" : "t-2"));
      run.start_node(started("n-1", 1));
      run.start_node(started("n-2", 2, "node-n-1"));
      if (i % 4 == 0) run.fail({.error = "boom", .finished_at = at(5)});
      if (i % 4 == 1) run.complete_node({.node_execution_id = "n-1", .finished_at = at(3)});
      if (i % 7 == 0) run.mark_deleted({.deleted_at = at(6)});
      runs.save(run);
      saved.push_back(std::move(run));
    }
    int resets = 0;
    projection->on_reset([&] { ++resets; });
    const RebuildReport report = rebuild(*store, *projection);
    CHECK(report.identical);
    CHECK(report.swapped);
    CHECK(resets == 1);
  }
  // Reopened: set up again on the swapped-in tables, caught up, still one index per query.
  auto store = open_sql_event_store(uri);
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  std::vector<const WorkflowRun*> pointers;
  for (const WorkflowRun& run : saved) pointers.push_back(&run);
  require_tables_match(*store, pointers);
  std::vector<std::string> indexes;
  store->read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row :
         sql.query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                   " ORDER BY name")) {
      indexes.push_back(row.text(0));
    }
  });
  CHECK(indexes == std::vector<std::string>{
                       "annals_node_executions_id__g1", "annals_node_executions_run__g1",
                       "annals_workflow_runs_expiry__g1", "annals_workflow_runs_page__g1"});
  CHECK(served_by_index(query_plan(*store, workflow_sql::select_runs_page(false),
                                   {std::string("t-1"), std::string("app-1"),
                                    std::string("debugging"), std::int64_t{21}}),
                        "annals_workflow_runs_page"));
}

namespace {

// The read tables and the checkpoint table as annals made them before the checkpoint table was
// clustered on its key (a rowid table then): stores made then must keep working.
constexpr const char* kRowidSchema =
    "CREATE TABLE annals_projections (name TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " position INTEGER NOT NULL, generation INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE annals_workflow_runs (id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL,"
    " app_id TEXT NOT NULL, workflow_id TEXT NOT NULL, triggered_from TEXT NOT NULL,"
    " status TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT, error TEXT,"
    " elapsed_time DOUBLE PRECISION NOT NULL, total_tokens BIGINT NOT NULL,"
    " total_steps BIGINT NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL,"
    " finished_at BIGINT, version BIGINT NOT NULL);"
    "CREATE INDEX annals_workflow_runs_page ON annals_workflow_runs"
    " (tenant_id, app_id, triggered_from, created_at DESC, id DESC);"
    "CREATE INDEX annals_workflow_runs_expiry ON annals_workflow_runs (tenant_id, created_at, id);"
    "CREATE TABLE annals_node_executions (run_id TEXT NOT NULL, id TEXT NOT NULL,"
    " tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, workflow_id TEXT NOT NULL,"
    " \"index\" BIGINT NOT NULL, node_id TEXT NOT NULL, node_type TEXT NOT NULL,"
    " title TEXT NOT NULL, predecessor_node_id TEXT NOT NULL, status TEXT NOT NULL,"
    " inputs TEXT NOT NULL, outputs TEXT, error TEXT, elapsed_time DOUBLE PRECISION NOT NULL,"
    " total_tokens BIGINT NOT NULL, created_at BIGINT NOT NULL, finished_at BIGINT,"
    " PRIMARY KEY (run_id, id));"
    "CREATE INDEX annals_node_executions_run ON annals_node_executions"
    " (tenant_id, run_id, \"index\", id);"
    "CREATE INDEX annals_node_executions_id ON annals_node_executions"
    " (tenant_id, id, created_at, run_id);"
    "INSERT INTO annals_projections VALUES ('workflow_runs', 1, 0, 0, 0);";

// The CREATE TABLE text of each of the tables, by name.
std::map<std::string, std::string> table_sql(const SqlEventStore& store) {
  std::map<std::string, std::string> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                                       " AND name NOT LIKE 'annals_events%'")) {
      out[row.text(0)] = row.text(1);
    }
  });
  return out;
}

}  // namespace

TEST_CASE("the checkpoint table is clustered on its key", "[projections]") {
  auto store = open_sql_event_store("memory:");
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  const auto tables = table_sql(*store);
  REQUIRE(tables.count("annals_projections") == 1);
  CHECK_THAT(tables.at("annals_projections"), Contains("WITHOUT ROWID"));
  // The read tables' rows are large (inputs, outputs): they stay rowid tables.
  CHECK_THAT(tables.at("annals_workflow_runs"), !Contains("WITHOUT ROWID"));
  CHECK_THAT(tables.at("annals_node_executions"), !Contains("WITHOUT ROWID"));
}

TEST_CASE("a checkpoint table made as a rowid table keeps working, through appends and a rebuild",
          "[projections][rebuild]") {
  annals::test::TempDir dir;
  const std::string uri = dir.sqlite_uri("events.db", "synchronous=normal");
  open_sql_event_store(uri)->write_transaction(
      [](SqlSession& sql) { sql.execute_script(kRowidSchema); });

  auto store = open_sql_event_store(uri);
  auto projection = std::make_shared<WorkflowProjection>();
  attach_inline_projections(*store, {projection});
  CHECK_THAT(table_sql(*store).at("annals_projections"), !Contains("WITHOUT ROWID"));
  AggregateRepository<WorkflowRun> runs(store);
  std::vector<WorkflowRun> saved;
  for (int i = 0; i < 12; ++i) {
    WorkflowRun run = WorkflowRun::create(created("r-" + std::to_string(i)));
    runs.save(run);
    run.start_node(started("n-1", 1));
    runs.save(run);
    run.complete_node({.node_execution_id = "n-1", .finished_at = at(2)});
    if (i % 3 == 0) run.start_node(started("n-2", 3, "node-n-1"));
    if (i % 4 == 1) run.stop({.finished_at = at(4)});
    runs.save(run);
    saved.push_back(std::move(run));
  }
  std::vector<const WorkflowRun*> pointers;
  for (const WorkflowRun& run : saved) pointers.push_back(&run);
  require_tables_match(*store, pointers);
  std::uint64_t position = 0;
  store->read_transaction([&](SqlSession& sql) {
    position = read_checkpoint(sql, WorkflowProjection::kName)->position;
  });
  CHECK(position == store->head_position());

  const RebuildReport report = rebuild(*store, *projection);
  CHECK(report.identical);
  CHECK(report.swapped);
  require_tables_match(*store, pointers);
  store->read_transaction([&](SqlSession& sql) {
    const auto cp = read_checkpoint(sql, WorkflowProjection::kName);
    REQUIRE(cp);
    CHECK(cp->position == store->head_position());
    CHECK(cp->generation == 1);
  });
}
