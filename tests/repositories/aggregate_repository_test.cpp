#include "annals/repositories/aggregate_repository.hpp"

#include <catch2/catch.hpp>

#include "annals/aggregates/workflow_run.hpp"
#include "support/backends.hpp"
#include "support/faulty_store.hpp"

using namespace annals;
using Catch::Matchers::Contains;

namespace {

RunCreated created(const std::string& run_id) {
  return RunCreated{.run_id = run_id,
                    .tenant_id = "t-1",
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"q":"hello"})",
                    .created_at = from_micros(1'700'000'000'000'000)};
}

Timestamp at(int seconds) { return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL); }

}  // namespace

TEMPLATE_TEST_CASE("a saved run loads back equal, in either payload format", "[repositories]",
                   ANNALS_BACKENDS) {
  for (const char* options : {"payload=json", "payload=binary"}) {
    TestType backend;
    AggregateRepository<WorkflowRun> runs(backend.open(options));
    WorkflowRun run = WorkflowRun::create(created("r-1"));
    run.start_node({.node_execution_id = "n-1",
                    .node_id = "start",
                    .node_type = "start",
                    .inputs = "{}",
                    .started_at = at(1)});
    runs.save(run);
    CHECK(run.persisted_version() == 2);
    CHECK_FALSE(run.has_pending_events());
    run.complete_node({.node_execution_id = "n-1", .outputs = R"({"a":1})", .finished_at = at(2)});
    run.succeed({.outputs = R"({"a":1})", .finished_at = at(3)});
    runs.save(run);
    CHECK(run.version() == 4);

    const WorkflowRun loaded = runs.load("r-1");
    CHECK(loaded.state() == run.state());
    CHECK(loaded.version() == 4);
    CHECK(loaded.persisted_version() == 4);
    const auto history = backend.store->read_stream("WorkflowRun-r-1");
    REQUIRE(history.size() == 4);
    CHECK(history[0].type == "RunCreated");
    CHECK(history[0].payload_format == backend.store->payload_format());
    CHECK(history[0].metadata.tenant_id == "t-1");
    CHECK(history[0].event_id == history[0].event_id);
  }
}

TEST_CASE("find gives nullopt and load NotFound for a missing run", "[repositories]") {
  AggregateRepository<WorkflowRun> runs(open_event_store("memory:"));
  CHECK_FALSE(runs.find("nope").has_value());
  CHECK_THROWS_MATCHES(runs.load("nope"), NotFound,
                       Catch::Matchers::Predicate<NotFound>([](const NotFound& e) {
                         return std::string(e.what()).find("WorkflowRun-nope") != std::string::npos;
                       }));
  CHECK_THROWS_AS(runs.find(""), InvalidArgument);
  CHECK_THROWS_AS(AggregateRepository<WorkflowRun>(nullptr), InvalidArgument);
}

TEST_CASE("a lost race is a ConcurrencyError that keeps the loser's events for a retry",
          "[repositories][concurrency]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  AggregateRepository<WorkflowRun> runs(backend.open());
  WorkflowRun run = WorkflowRun::create(created("r-2"));
  runs.save(run);

  WorkflowRun first = runs.load("r-2");
  WorkflowRun second = runs.load("r-2");
  first.start_node(
      {.node_execution_id = "n-a", .node_id = "llm", .node_type = "llm", .started_at = at(1)});
  second.start_node(
      {.node_execution_id = "n-b", .node_id = "tool", .node_type = "tool", .started_at = at(1)});
  runs.save(first);
  CHECK_THROWS_WITH(runs.save(second), Contains("WorkflowRun-r-2") &&
                                           Contains("expected version 1, actual version 2"));
  CHECK(second.has_pending_events());
  CHECK(second.persisted_version() == 1);

  // Reload, decide again, save.
  WorkflowRun retry = runs.load("r-2");
  retry.start_node(
      {.node_execution_id = "n-b", .node_id = "tool", .node_type = "tool", .started_at = at(1)});
  runs.save(retry);
  const WorkflowRun final_run = runs.load("r-2");
  REQUIRE(final_run.node_executions().size() == 2);
  CHECK(final_run.node_executions()[0].id == "n-a");
  CHECK(final_run.node_executions()[1].id == "n-b");
}

TEST_CASE("pending events are cleared only after the append committed", "[repositories]") {
  auto inner = open_event_store("memory:");
  auto faulty = std::make_shared<annals::test::FaultyStore>(inner);
  AggregateRepository<WorkflowRun> runs(faulty);
  WorkflowRun run = WorkflowRun::create(created("r-3"));
  const auto event_id = run.pending_events().front().event_id;

  faulty->fail_next_appends(1);
  CHECK_THROWS_AS(runs.save(run), StoreError);
  REQUIRE(run.has_pending_events());
  CHECK(run.pending_events().front().event_id == event_id);
  CHECK(inner->head_position() == 0);

  runs.save(run);  // the retry writes the same event, once
  CHECK_FALSE(run.has_pending_events());
  const auto history = inner->read_stream("WorkflowRun-r-3");
  REQUIRE(history.size() == 1);
  CHECK(history[0].event_id == event_id);

  // A retry of an append that did commit (the caller saw an error, the commit happened) is
  // recognised by its event ids: it succeeds and writes nothing twice.
  WorkflowRun again = WorkflowRun::create(created("r-4"));
  WorkflowRun copy = again;
  runs.save(again);
  runs.save(copy);
  CHECK_FALSE(copy.has_pending_events());
  CHECK(copy.persisted_version() == 1);
  CHECK(inner->read_stream("WorkflowRun-r-4").size() == 1);
  // A different decision at the same version is still a conflict.
  WorkflowRun rival = WorkflowRun::create(created("r-4"));
  CHECK_THROWS_AS(runs.save(rival), ConcurrencyError);
}

TEST_CASE("a stream whose history names another run is an IntegrityError", "[repositories]") {
  auto store = open_event_store("memory:");
  AggregateRepository<WorkflowRun> runs(store);
  WorkflowRun other = WorkflowRun::create(created("r-43"));
  store->append("WorkflowRun-r-42", ExpectedVersion::no_stream(),
                other.encode_pending_events(PayloadFormat::json));
  CHECK_THROWS_WITH(runs.load("r-42"), Contains("WorkflowRun-r-42") && Contains("'r-43'"));
}

TEST_CASE("saving an aggregate with nothing pending writes nothing", "[repositories]") {
  auto store = open_event_store("memory:");
  AggregateRepository<WorkflowRun> runs(store);
  WorkflowRun run = WorkflowRun::create(created("r-5"));
  runs.save(run);
  runs.save(run);
  CHECK(store->head_position() == 1);
}
