// NodeExecutionRepository: node executions as commands on their WorkflowRun, tenant-scoped reads.

#include "annals/repositories/node_execution_repository.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "annals/repositories/repository_factory.hpp"
#include "support/factories.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::MemoryFactory;
using annals::test::SqliteFactory;
using Catch::Matchers::Contains;

namespace {

Timestamp at(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

WorkflowRun save_run(RepositoryFactory& factory, const std::string& id,
                     const std::string& tenant = "t-1") {
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  WorkflowRun run = WorkflowRun::create(RunCreated{.run_id = id,
                                                   .tenant_id = tenant,
                                                   .app_id = "app-1",
                                                   .workflow_id = "wf-1",
                                                   .triggered_from = "debugging",
                                                   .created_by = "alice",
                                                   .inputs = "{}",
                                                   .created_at = at(0)});
  aggregates.save(run);
  return run;
}

}  // namespace

TEMPLATE_TEST_CASE("created node executions read back as saved, in execution order",
                   "[repositories]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  save_run(factory, "r-1");
  auto nodes = factory.create_node_execution_repository();

  const NodeExecutionView first =
      nodes.create_node_execution("t-1", "r-1", "start", "start", R"({"q":"hi"})");
  CHECK(first.status == "running");
  CHECK(first.index == 1);
  CHECK(first.tenant_id == "t-1");
  CHECK(first.run_id == "r-1");
  CHECK(first.app_id == "app-1");
  CHECK(first.workflow_id == "wf-1");
  CHECK(first.predecessor_node_id.empty());
  CHECK(first.inputs == R"({"q":"hi"})");
  CHECK_FALSE(first.outputs);
  CHECK_FALSE(first.finished_at);
  CHECK(first.id.size() == 36);                                     // a fresh UUID
  CHECK(nodes.get_node_execution_by_id("t-1", first.id) == first);  // read-your-writes

  const NodeExecutionView second = nodes.create_node_execution(
      "t-1", "r-1", "llm", "llm", "{}", std::string(R"({"answer":42})"), "succeeded");
  CHECK(second.status == "succeeded");
  CHECK(second.index == 2);
  CHECK(second.predecessor_node_id == "start");
  CHECK(second.outputs == std::optional<std::string>(R"({"answer":42})"));
  CHECK(second.finished_at);
  const NodeExecutionView third =
      nodes.create_node_execution("t-1", "r-1", "tool", "tool", "{}", std::nullopt, "failed");
  CHECK(third.status == "failed");
  CHECK(third.error == std::optional<std::string>("failed when created"));
  CHECK(third.index == 3);

  const auto all = nodes.get_node_executions_by_run_id("t-1", "r-1");
  REQUIRE(all.size() == 3);
  CHECK(all[0] == first);
  CHECK(all[1] == second);
  CHECK(all[2] == third);
  // The log holds the commands.
  const auto history = factory.event_store()->read_stream("WorkflowRun-r-1");
  REQUIRE(history.size() == 6);
  CHECK(history[1].type == "NodeStarted");
  CHECK(history[3].type == "NodeCompleted");
  CHECK(history[5].type == "NodeFailed");
}

TEMPLATE_TEST_CASE("update_node_execution finishes a node through its run", "[repositories]",
                   ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  save_run(factory, "r-1");
  auto nodes = factory.create_node_execution_repository();
  const auto a = nodes.create_node_execution("t-1", "r-1", "a", "llm", "{}");
  const auto b = nodes.create_node_execution("t-1", "r-1", "b", "llm", "{}");

  const auto done = nodes.update_node_execution(
      "t-1", a.id, {.status = "succeeded", .outputs = R"({"text":"ok"})"});
  REQUIRE(done);
  CHECK(done->status == "succeeded");
  CHECK(done->outputs == std::optional<std::string>(R"({"text":"ok"})"));
  CHECK(done->finished_at);
  CHECK(nodes.get_node_execution_by_id("t-1", a.id) == done);

  const auto failed =
      nodes.update_node_execution("t-1", b.id, {.status = "failed", .error = "rate limited"});
  REQUIRE(failed);
  CHECK(failed->status == "failed");
  CHECK(failed->error == std::optional<std::string>("rate limited"));
  CHECK(nodes.get_node_execution_by_id("t-1", b.id) == failed);

  // Finished nodes do not change again.
  CHECK_THROWS_WITH(nodes.update_node_execution("t-1", a.id, {.status = "failed", .error = "x"}),
                    Contains("already succeeded"));
}

TEST_CASE("node execution arguments that make no sense are clear InvalidArguments",
          "[repositories]") {
  RepositoryFactory factory("memory:");
  save_run(factory, "r-1");
  auto nodes = factory.create_node_execution_repository();
  const std::uint64_t head = factory.event_store()->head_position();
  CHECK_THROWS_WITH(
      nodes.create_node_execution("t-1", "r-1", "n", "llm", "{}", std::nullopt, "paused"),
      Contains("status 'paused' is not one of running, succeeded, failed"));
  CHECK_THROWS_WITH(nodes.create_node_execution("t-1", "r-1", "n", "llm", "{}", "{}", "running"),
                    Contains("outputs are given"));
  CHECK_THROWS_WITH(nodes.create_node_execution("t-1", "r-1", "n", "llm", "not json"),
                    Contains("is not JSON"));
  CHECK_THROWS_AS(nodes.create_node_execution("t-1", "r-1", "", "llm", "{}"), InvalidArgument);
  CHECK_THROWS_WITH(nodes.create_node_execution("t-1", "", "n", "llm", "{}"),
                    Contains("run_id is empty"));
  CHECK(factory.event_store()->head_position() == head);

  const auto n = nodes.create_node_execution("t-1", "r-1", "n", "llm", "{}");
  CHECK_THROWS_WITH(nodes.update_node_execution("t-1", n.id, {}), Contains("status is required"));
  CHECK_THROWS_WITH(nodes.update_node_execution("t-1", n.id, {.status = "running"}),
                    Contains("status 'running' is not succeeded or failed"));
  CHECK_THROWS_WITH(nodes.update_node_execution("t-1", n.id, {.status = "stopped"}),
                    Contains("status 'stopped'"));
  CHECK_THROWS_WITH(nodes.update_node_execution("t-1", n.id, {.status = "failed"}),
                    Contains("needs a non-empty error"));
  CHECK_THROWS_WITH(
      nodes.update_node_execution("t-1", n.id, {.status = "succeeded", .error = "what"}),
      Contains("an error is given"));
  CHECK(nodes.get_node_execution_by_id("t-1", n.id)->status == "running");

  // A finished run takes no new node executions.
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  WorkflowRun run = aggregates.load("r-1");
  run.stop({});
  aggregates.save(run);
  CHECK_THROWS_WITH(nodes.create_node_execution("t-1", "r-1", "late", "llm", "{}"),
                    Contains("already finished"));
  CHECK(nodes.get_node_execution_by_id("t-1", n.id)->status == "stopped");
}

TEMPLATE_TEST_CASE("another tenant's run and node execution ids reach nothing",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  save_run(factory, "theirs", "t-2");
  save_run(factory, "mine", "t-1");
  auto nodes = factory.create_node_execution_repository();
  const auto their_node = nodes.create_node_execution("t-2", "theirs", "n", "llm", "{}");
  const std::uint64_t head = factory.event_store()->head_position();

  CHECK_THROWS_AS(nodes.create_node_execution("t-1", "theirs", "n", "llm", "{}"), NotFound);
  CHECK_THROWS_AS(nodes.create_node_execution("t-1", "unknown", "n", "llm", "{}"), NotFound);
  CHECK_THROWS_AS(nodes.create_node_execution("t-1", std::string(3000, 'r'), "n", "llm", "{}"),
                  NotFound);
  CHECK_FALSE(nodes.get_node_execution_by_id("t-1", their_node.id));
  CHECK(nodes.get_node_executions_by_run_id("t-1", "theirs").empty());
  CHECK_FALSE(nodes.update_node_execution("t-1", their_node.id, {.status = "succeeded"}));
  CHECK_FALSE(nodes.update_node_execution("t-1", "unknown", {.status = "succeeded"}));
  // A run id where an execution id belongs, and the other way round.
  CHECK_FALSE(nodes.get_node_execution_by_id("t-1", "mine"));
  CHECK(nodes.get_node_executions_by_run_id("t-2", their_node.id).empty());
  CHECK(factory.event_store()->head_position() == head);
  CHECK(nodes.get_node_execution_by_id("t-2", their_node.id)->status == "running");

  // Deleted runs take nothing either.
  auto runs = factory.create_workflow_run_repository();
  REQUIRE(runs.delete_runs_by_ids("t-2", {"theirs"}) == 1);
  CHECK_THROWS_AS(nodes.create_node_execution("t-2", "theirs", "n", "llm", "{}"), NotFound);
  CHECK_FALSE(nodes.update_node_execution("t-2", their_node.id, {.status = "succeeded"}));
}

TEMPLATE_TEST_CASE(
    "SQL metacharacters in node execution arguments are stored and matched literally",
    "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  const std::vector<std::string> nasty = {
      "'; DROP TABLE annals_node_executions; --", "x' OR '1'='1", "%", "_", "\"q\"", "a\\b"};
  auto nodes = factory.create_node_execution_repository();
  for (const std::string& s : nasty) {
    INFO(s);
    save_run(factory, s, s);
    const std::string inputs = R"({"text":"'; DROP TABLE x; -- %_"})";
    const auto n = nodes.create_node_execution(s, s, s, s, inputs);
    CHECK(n.node_id == s);
    CHECK(n.node_type == s);
    CHECK(n.inputs == inputs);
    CHECK(nodes.get_node_execution_by_id(s, n.id) == n);
    const auto by_run = nodes.get_node_executions_by_run_id(s, s);
    REQUIRE(by_run.size() == 1);
    CHECK(by_run[0] == n);
    const auto done = nodes.update_node_execution(s, n.id, {.status = "failed", .error = s});
    REQUIRE(done);
    CHECK(done->error == s);
  }
  CHECK(nodes.get_node_executions_by_run_id("%", "_").empty());
  CHECK(nodes.get_node_executions_by_run_id("_", "%").empty());
}

TEST_CASE("concurrent node creations on one run never lose or duplicate a node execution",
          "[repositories][concurrency]") {
  annals::test::TempDir dir;
  RepositoryFactory factory(dir.sqlite_uri("events.db", "synchronous=normal"));
  save_run(factory, "r-1");
  std::atomic<int> created{0}, conflicts{0};
  auto work = [&] {
    auto nodes = factory.create_node_execution_repository();
    for (int i = 0; i < 25; ++i) {
      try {
        nodes.create_node_execution("t-1", "r-1", "n", "llm", "{}");
        ++created;
      } catch (const ConcurrencyError&) {
        ++conflicts;  // lost twice in a row: the caller decides
      }
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  CHECK(created + conflicts == 50);
  auto nodes = factory.create_node_execution_repository();
  const auto all = nodes.get_node_executions_by_run_id("t-1", "r-1");
  CHECK(all.size() == static_cast<std::size_t>(created.load()));
  std::set<std::string> ids;
  std::set<std::uint32_t> indexes;
  for (const auto& n : all) {
    ids.insert(n.id);
    indexes.insert(n.index);
  }
  CHECK(ids.size() == all.size());
  CHECK(indexes.size() == all.size());
  CHECK(created > 0);
}
