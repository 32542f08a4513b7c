// Inline and async projection give the same read tables, and the cache stays fresh with either.

#include <catch2/catch.hpp>
#include <thread>

#include "annals/projections/engine.hpp"
#include "annals/projections/projection_runner.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/cached_workflow_run_repository.hpp"
#include "support/backends.hpp"
#include "support/io_thread.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using namespace std::chrono_literals;

using annals::test::IoThread;

namespace {

Timestamp at(int seconds) { return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL); }

// Runs the same commands against every repository, saving each time: the logs then differ only
// in event ids and recorded_at, which no read table holds.
void drive(std::vector<AggregateRepository<WorkflowRun>>& repos, int runs) {
  for (int r = 0; r < runs; ++r) {
    const std::string id = "run-" + std::to_string((r * 37) % runs);
    for (auto& repo : repos) {
      WorkflowRun run = WorkflowRun::create({.run_id = id,
                                             .tenant_id = "t-" + std::to_string(r % 3),
                                             .app_id = "app",
                                             .workflow_id = "wf",
                                             .triggered_from = r % 2 ? "app-run" : "debugging",
                                             .created_by = "u",
                                             .inputs = "{}",
                                             .created_at = at(r / 4)});
      run.start_node({.node_execution_id = id + "-a",
                      .node_id = "a",
                      .node_type = "llm",
                      .started_at = at(r / 4 + 1)});
      repo.save(run);
      switch (r % 4) {
        case 0:
          run.complete_node({.node_execution_id = id + "-a",
                             .outputs = R"({"ok":true})",
                             .total_tokens = 5,
                             .finished_at = at(r / 4 + 2)});
          run.succeed({.outputs = R"({"ok":true})", .finished_at = at(r / 4 + 3)});
          break;
        case 1:
          run.fail_node(
              {.node_execution_id = id + "-a", .error = "boom", .finished_at = at(r / 4 + 2)});
          run.fail({.error = "node failed", .finished_at = at(r / 4 + 3)});
          break;
        case 2:
          run.stop({.stopped_by = "ops", .finished_at = at(r / 4 + 2)});
          break;
        default:
          run.mark_deleted({.deleted_by = "ops", .deleted_at = at(r / 4 + 2)});
      }
      repo.save(run);
    }
  }
}

std::vector<SqlRow> table(const SqlEventStore& store, const std::string& sql) {
  std::vector<SqlRow> rows;
  store.read_transaction([&](SqlSession& s) { rows = s.query(sql); });
  return rows;
}

}  // namespace

TEST_CASE("inline and async projection give identical workflow tables for the same commands",
          "[projections][runner][inline]" ANNALS_PG_TAG) {
  annals::test::StorePlace inline_dir;
  annals::test::StorePlace async_dir;
  auto inline_store =
      open_sql_event_store(annals::test::store_uri(inline_dir, "inline.db", "synchronous=normal"));
  auto async_store =
      open_sql_event_store(annals::test::store_uri(async_dir, "async.db", "synchronous=normal"));
  attach_inline_projections(*inline_store, {std::make_shared<WorkflowProjection>()});

  IoThread io;
  ProjectionRunner runner(io.io, async_store, std::make_shared<WorkflowProjection>(),
                          {.batch_size = 37, .poll_interval = 20ms});
  runner.start();
  std::vector<AggregateRepository<WorkflowRun>> repos{
      AggregateRepository<WorkflowRun>(inline_store),
      AggregateRepository<WorkflowRun>(async_store)};
  drive(repos, 120);
  REQUIRE(runner.wait_until_caught_up(10s));

  for (const char* sql : {"SELECT * FROM annals_workflow_runs ORDER BY id",
                          "SELECT * FROM annals_node_executions ORDER BY run_id, id"}) {
    const auto a = table(*inline_store, sql);
    const auto b = table(*async_store, sql);
    CHECK(a.size() > 0);
    CHECK(a == b);
  }
  CHECK(table(*inline_store, "SELECT count(*) FROM annals_workflow_runs").front().integer(0) == 90);
}

TEST_CASE("the cache serves no stale run once the async runner applied a change",
          "[repositories][cache][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store =
      open_sql_event_store(annals::test::store_uri(dir, "events.db", "synchronous=normal"));
  auto projection = std::make_shared<WorkflowProjection>();
  IoThread io;
  ProjectionRunner runner(io.io, store, projection, {.poll_interval = 20ms});
  runner.start();
  CachedWorkflowRunRepository cached(WorkflowRunRepository(store), projection);
  AggregateRepository<WorkflowRun> runs(store);

  WorkflowRun run = WorkflowRun::create({.run_id = "r-1",
                                         .tenant_id = "t",
                                         .app_id = "a",
                                         .workflow_id = "w",
                                         .triggered_from = "app-run",
                                         .created_at = at(0)});
  runs.save(run);
  REQUIRE(runner.wait_until_caught_up(10s));
  REQUIRE(cached.get_workflow_run_by_id("t", "a", "r-1")->status == "running");
  REQUIRE(cached.get_workflow_run_by_id("t", "a", "r-1")->status == "running");  // a hit
  CHECK(cached.cache_stats().hits == 1);

  for (int i = 0; i < 20; ++i) {  // many changes, each read right after the runner applied it
    run.start_node({.node_execution_id = "n-" + std::to_string(i),
                    .node_id = "x",
                    .node_type = "code",
                    .started_at = at(i + 1)});
    runs.save(run);
    REQUIRE(runner.wait_until_caught_up(10s));
    CHECK(cached.get_workflow_run_by_id("t", "a", "r-1")->version == run.version());
  }
  run.mark_deleted({.deleted_at = at(30)});
  runs.save(run);
  REQUIRE(runner.wait_until_caught_up(10s));
  CHECK_FALSE(cached.get_workflow_run_by_id("t", "a", "r-1").has_value());
}

namespace {
// A projection whose SQL is wrong: retrying cannot help.
class BrokenSql : public Projection {
 public:
  std::string name() const override { return "broken"; }
  std::uint32_t version() const override { return 1; }
  std::vector<std::string> handled_types() const override { return {}; }
  std::vector<ProjectionTable> tables() const override { return {}; }
  void setup(ProjectionContext&) override {}
  void apply(const RecordedEvent&, ProjectionContext& ctx) override {
    ctx.sql().execute("INSERT INTO annals_no_such_table (x) VALUES ($1)", {std::int64_t{1}});
  }
};
}  // namespace

TEST_CASE("a runner fails, not retries, when the projection's own SQL is wrong",
          "[projections][runner]") {
  auto store = open_sql_event_store("memory:");
  store->append("s", ExpectedVersion::any(), annals::test::make_events(2));
  IoThread io;
  ProjectionRunner runner(io.io, store, std::make_shared<BrokenSql>(), {.poll_interval = 20ms});
  runner.start();
  CHECK_THROWS_MATCHES(runner.wait_until_caught_up(10s), StoreError,
                       Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
                         return !e.transient() && std::string(e.what()).find(
                                                      "annals_no_such_table") != std::string::npos;
                       }));
  CHECK(runner.status().state == ProjectionRunnerState::failed);
}
