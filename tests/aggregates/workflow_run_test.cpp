// WorkflowRun: its invariants (each violation throws InvalidArgument and changes nothing),
// metadata stamping, derived totals, rehydration and save bookkeeping.

#include "annals/aggregates/workflow_run.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/events/event.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/store/event_store.hpp"
#include "support/matchers.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000'000;  // 2023-11-14T22:13:20Z
constexpr std::int64_t kSecond = 1'000'000;

// kT0 plus an offset in microseconds.
Timestamp at(std::int64_t micros) { return from_micros(kT0 + micros); }

RunCreated created_event() {
  return RunCreated{.run_id = "r-1",
                    .tenant_id = "t-1",
                    .app_id = "a-1",
                    .workflow_id = "w-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"question":"hi"})",
                    .created_at = at(0)};
}

WorkflowRun new_run() { return WorkflowRun::create(created_event()); }

// A run with one completed node ("n-done", 10 tokens), one failed node ("n-failed") and one
// still running ("n-running", started at 3 s).
WorkflowRun run_with_nodes() {
  WorkflowRun run = new_run();
  run.start_node({.node_execution_id = "n-done",
                  .node_id = "start",
                  .node_type = "start",
                  .started_at = at(1 * kSecond)});
  run.complete_node({.node_execution_id = "n-done",
                     .outputs = R"({"x":1})",
                     .total_tokens = 10,
                     .finished_at = at(2 * kSecond)});
  run.start_node({.node_execution_id = "n-failed",
                  .node_id = "llm",
                  .node_type = "llm",
                  .started_at = at(2 * kSecond)});
  run.fail_node({.node_execution_id = "n-failed", .error = "boom", .finished_at = at(3 * kSecond)});
  run.start_node({.node_execution_id = "n-running",
                  .node_id = "code",
                  .node_type = "code",
                  .started_at = at(3 * kSecond)});
  return run;
}

std::vector<boost::uuids::uuid> pending_ids(const WorkflowRun& run) {
  std::vector<boost::uuids::uuid> ids;
  for (const auto& p : run.pending_events()) ids.push_back(p.event_id);
  return ids;
}

using Command = std::function<void(WorkflowRun&)>;

// The command throws InvalidArgument whose message contains `fragment`, and the run is
// exactly as it was before.
void require_rejected(WorkflowRun& run, const Command& command, const std::string& fragment) {
  const WorkflowRunState state_before = run.state();
  const std::uint64_t version_before = run.version();
  const std::uint64_t persisted_before = run.persisted_version();
  const std::size_t pending_before = run.pending_events().size();
  const std::vector<boost::uuids::uuid> ids_before = pending_ids(run);

  REQUIRE_THROWS_MATCHES(command(run), InvalidArgument, WhatContains(fragment));

  CHECK(run.state() == state_before);
  CHECK(run.version() == version_before);
  CHECK(run.persisted_version() == persisted_before);
  CHECK(run.pending_events().size() == pending_before);
  CHECK(pending_ids(run) == ids_before);
}

// Every command, each valid on a run built by run_with_nodes() (except where the run's state
// forbids it).
std::vector<std::pair<std::string, Command>> every_command() {
  return {
      {"start_node",
       [](WorkflowRun& r) {
         r.start_node({.node_execution_id = "n-new",
                       .node_id = "x",
                       .node_type = "llm",
                       .started_at = at(50 * kSecond)});
       }},
      {"complete_node",
       [](WorkflowRun& r) {
         r.complete_node({.node_execution_id = "n-running", .finished_at = at(50 * kSecond)});
       }},
      {"fail_node",
       [](WorkflowRun& r) {
         r.fail_node(
             {.node_execution_id = "n-running", .error = "late", .finished_at = at(50 * kSecond)});
       }},
      {"succeed", [](WorkflowRun& r) { r.succeed({.finished_at = at(50 * kSecond)}); }},
      {"fail",
       [](WorkflowRun& r) { r.fail({.error = "late failure", .finished_at = at(50 * kSecond)}); }},
      {"stop",
       [](WorkflowRun& r) { r.stop({.stopped_by = "bob", .finished_at = at(50 * kSecond)}); }},
  };
}

template <class E>
const E& pending_as(const WorkflowRun& run, std::size_t index) {
  REQUIRE(index < run.pending_events().size());
  const auto& event = run.pending_events()[index].event;
  REQUIRE(std::holds_alternative<E>(event));
  return std::get<E>(event);
}

const EventMetadata& last_metadata(const WorkflowRun& run) {
  REQUIRE(run.has_pending_events());
  return run.pending_events().back().metadata;
}

// The run's pending events as the store would hand them back, versions following
// persisted_version(), positions from first_position.
std::vector<RecordedEvent> as_history(const WorkflowRun& run, PayloadFormat format,
                                      std::uint64_t first_position = 1) {
  std::vector<RecordedEvent> history;
  std::uint64_t version = run.persisted_version();
  std::uint64_t position = first_position;
  for (NewEvent& e : run.encode_pending_events(format)) {
    ++version;
    history.push_back(RecordedEvent{.position = position++,
                                    .stream_id = run.stream_id(),
                                    .version = version,
                                    .event_id = e.event_id,
                                    .type = std::move(e.type),
                                    .schema_version = e.schema_version,
                                    .payload = std::move(e.payload),
                                    .metadata = std::move(e.metadata),
                                    .recorded_at = at(1000 * kSecond),
                                    .payload_format = e.payload_format});
  }
  return history;
}

const std::string kTricky =
    "say \"hi\" \\ h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x9A\x80\nline two\ttab";

// Many commands, odd timings (non-round elapsed times), tricky strings.
WorkflowRun rich_run(int ending) {
  WorkflowRun run =
      WorkflowRun::create(RunCreated{.run_id = "r-rich",
                                     .tenant_id = "t-1",
                                     .app_id = "a-1",
                                     .workflow_id = "w-1",
                                     .triggered_from = "app-run",
                                     .created_by = "alice " + kTricky,
                                     .inputs = R"({"q":"what is \"x\"?\n","n":[1,2.5]})",
                                     .created_at = at(123)},
                          EventMetadata{.actor = "api", .causation_id = "cmd-create"});
  run.start_node({.node_execution_id = "n-1",
                  .node_id = "start",
                  .node_type = "start",
                  .title = "Start " + kTricky,
                  .inputs = R"({"a":1})",
                  .started_at = at(1'234'567)});
  run.complete_node({.node_execution_id = "n-1",
                     .outputs = R"({"a":1})",
                     .total_tokens = 3,
                     .finished_at = at(2'345'679)});
  run.start_node({.node_execution_id = "n-2",
                  .index = 7,
                  .node_id = "llm",
                  .node_type = "llm",
                  .title = "Ask",
                  .predecessor_node_id = "start",
                  .inputs = "",
                  .started_at = at(2'345'680)});
  run.fail_node({.node_execution_id = "n-2",
                 .error = "rate limited: " + kTricky,
                 .outputs = R"({"partial":"\u00e9"})",
                 .finished_at = at(3'333'333)});
  run.start_node({.node_execution_id = "n-3",
                  .node_id = "llm",
                  .node_type = "llm",
                  .predecessor_node_id = "llm",
                  .started_at = at(3'333'334)});
  run.complete_node({.node_execution_id = "n-3",
                     .outputs = R"({"answer":"\"42\""})",
                     .elapsed_time = 0.1,
                     .total_tokens = 1'000'000'007,
                     .finished_at = at(9'876'543)});
  run.start_node({.node_execution_id = "n-4",
                  .node_id = "end",
                  .node_type = "end",
                  .predecessor_node_id = "llm",
                  .started_at = at(9'876'544)});
  switch (ending) {
    case 0:
      run.complete_node({.node_execution_id = "n-4", .finished_at = at(10'000'001)});
      run.succeed({.outputs = R"({"answer":42})", .finished_at = at(10'111'111)});
      break;
    case 1:
      run.fail({.error = "node n-4 timed out", .finished_at = at(11'111'111)});
      run.mark_deleted({.deleted_by = "carol", .reason = "cleanup", .deleted_at = at(12'000'000)});
      break;
    default:
      run.stop({.stopped_by = "bob",
                .reason = "user \"stop\"",
                .elapsed_time = 3.25,
                .total_tokens = 5,
                .total_steps = 2,
                .finished_at = at(13'131'313)});
      break;
  }
  return run;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------------------

TEST_CASE("create starts a running run at version 1 with one pending RunCreated", "[aggregates]") {
  const WorkflowRun run = new_run();
  CHECK(run.version() == 1);
  CHECK(run.persisted_version() == 0);
  REQUIRE(run.pending_events().size() == 1);
  CHECK(pending_as<RunCreated>(run, 0) == created_event());
  CHECK_FALSE(run.pending_events()[0].event_id.is_nil());
  CHECK(run.id() == "r-1");
  CHECK(run.stream_id() == "WorkflowRun-r-1");
  CHECK(WorkflowRun::stream_id_for("r-1") == "WorkflowRun-r-1");
  CHECK(run.status() == RunStatus::running);
  CHECK_FALSE(run.is_finished());
  CHECK_FALSE(run.is_deleted());
  CHECK(run.node_executions().empty());

  const WorkflowRunState& s = run.state();
  CHECK(s.run_id == "r-1");
  CHECK(s.tenant_id == "t-1");
  CHECK(s.app_id == "a-1");
  CHECK(s.workflow_id == "w-1");
  CHECK(s.triggered_from == "debugging");
  CHECK(s.created_by == "alice");
  CHECK(s.inputs == R"({"question":"hi"})");
  CHECK(s.created_at == at(0));
  CHECK_FALSE(s.finished_at.has_value());
}

TEST_CASE("create rejects a run without its ids or with non-JSON inputs", "[aggregates]") {
  RunCreated bad = created_event();
  std::string field;
  SECTION("run_id") {
    bad.run_id.clear();
    field = "run_id";
  }
  SECTION("tenant_id") {
    bad.tenant_id.clear();
    field = "tenant_id";
  }
  SECTION("app_id") {
    bad.app_id.clear();
    field = "app_id";
  }
  SECTION("workflow_id") {
    bad.workflow_id.clear();
    field = "workflow_id";
  }
  SECTION("triggered_from") {
    bad.triggered_from.clear();
    field = "triggered_from";
  }
  SECTION("inputs not JSON") {
    bad.inputs = "{not json";
    field = "inputs";
  }
  SECTION("inputs with trailing garbage") {
    bad.inputs = R"({"a":1} extra)";
    field = "inputs";
  }
  REQUIRE_THROWS_MATCHES(WorkflowRun::create(bad), InvalidArgument, WhatContains(field));
}

TEST_CASE("create accepts empty inputs and an empty created_by", "[aggregates]") {
  RunCreated e = created_event();
  e.inputs.clear();
  e.created_by.clear();
  const WorkflowRun run = WorkflowRun::create(e);
  CHECK(run.state().inputs.empty());
  CHECK(run.state().created_by.empty());
  CHECK(run.version() == 1);
}

TEST_CASE("create rejects metadata naming another tenant", "[aggregates]") {
  REQUIRE_THROWS_MATCHES(WorkflowRun::create(created_event(), {.tenant_id = "t-2"}),
                         InvalidArgument, WhatContains("t-2"));
  // The same tenant is fine.
  CHECK(WorkflowRun::create(created_event(), {.tenant_id = "t-1"}).state().tenant_id == "t-1");
}

// ---------------------------------------------------------------------------------------
// Node invariants
// ---------------------------------------------------------------------------------------

TEST_CASE("node executions start, complete and fail in order", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  CHECK(run.version() == 6);
  REQUIRE(run.node_executions().size() == 3);

  const NodeExecution* done = run.find_node_execution("n-done");
  REQUIRE(done != nullptr);
  CHECK(done->status == NodeStatus::succeeded);
  CHECK(done->index == 1);
  CHECK(done->outputs == R"({"x":1})");
  CHECK(done->total_tokens == 10);
  CHECK(done->elapsed_time == 1.0);  // derived: 1 s to 2 s
  CHECK(done->finished_at == at(2 * kSecond));

  const NodeExecution* failed = run.find_node_execution("n-failed");
  REQUIRE(failed != nullptr);
  CHECK(failed->status == NodeStatus::failed);
  CHECK(failed->index == 2);
  CHECK(failed->error == "boom");
  CHECK(failed->finished_at == at(3 * kSecond));

  const NodeExecution* running = run.find_node_execution("n-running");
  REQUIRE(running != nullptr);
  CHECK(running->status == NodeStatus::running);
  CHECK(running->index == 3);
  CHECK_FALSE(running->finished_at.has_value());

  CHECK(run.find_node_execution("n-unknown") == nullptr);
  CHECK(to_string(NodeStatus::running) == "running");
  CHECK(to_string(NodeStatus::succeeded) == "succeeded");
  CHECK(to_string(NodeStatus::failed) == "failed");

  // run_id left empty is filled in.
  CHECK(pending_as<NodeStarted>(run, 1).run_id == "r-1");
  CHECK(pending_as<NodeCompleted>(run, 2).run_id == "r-1");
  CHECK(pending_as<NodeFailed>(run, 4).run_id == "r-1");
}

TEST_CASE("start_node invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("the same node execution id twice (still running)") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-running",
                        .node_id = "x",
                        .node_type = "code",
                        .started_at = at(4 * kSecond)});
        },
        "n-running");
  }
  SECTION("the same node execution id twice (already completed)") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-done",
                        .node_id = "start",
                        .node_type = "start",
                        .started_at = at(4 * kSecond)});
        },
        "n-done");
  }
  SECTION("the same node execution id twice (already failed: no retry under the same id)") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-failed",
                        .node_id = "llm",
                        .node_type = "llm",
                        .started_at = at(4 * kSecond)});
        },
        "n-failed");
  }
  SECTION("empty node_execution_id") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_id = "x", .node_type = "code", .started_at = at(4 * kSecond)});
        },
        "node_execution_id");
  }
  SECTION("empty node_id") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node(
              {.node_execution_id = "n-x", .node_type = "code", .started_at = at(4 * kSecond)});
        },
        "node_id");
  }
  SECTION("empty node_type") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-x", .node_id = "x", .started_at = at(4 * kSecond)});
        },
        "node_type");
  }
  SECTION("inputs that are not JSON") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-x",
                        .node_id = "x",
                        .node_type = "code",
                        .inputs = "{'single':'quotes'}",
                        .started_at = at(4 * kSecond)});
        },
        "inputs");
  }
  SECTION("started before the run was created") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-x",
                        .node_id = "x",
                        .node_type = "code",
                        .started_at = at(-1)});
        },
        "started_at");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.run_id = "r-2",
                        .node_execution_id = "n-x",
                        .node_id = "x",
                        .node_type = "code",
                        .started_at = at(4 * kSecond)});
        },
        "r-2");
  }
  SECTION("metadata naming another tenant") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.start_node({.node_execution_id = "n-x",
                        .node_id = "x",
                        .node_type = "code",
                        .started_at = at(4 * kSecond)},
                       {.tenant_id = "t-2"});
        },
        "t-2");
  }
}

TEST_CASE("complete_node invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("a node never started") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-ghost", .finished_at = at(4 * kSecond)});
        },
        "n-ghost");
  }
  SECTION("a node completed twice") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-done", .finished_at = at(4 * kSecond)});
        },
        "n-done");
  }
  SECTION("a node that failed") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-failed", .finished_at = at(4 * kSecond)});
        },
        "n-failed");
  }
  SECTION("empty node_execution_id") {
    require_rejected(
        run, [](WorkflowRun& r) { r.complete_node({.finished_at = at(4 * kSecond)}); },
        "node_execution_id");
  }
  SECTION("outputs that are not JSON") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running",
                           .outputs = "plain text",
                           .finished_at = at(4 * kSecond)});
        },
        "outputs");
  }
  SECTION("finished before it started") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running", .finished_at = at(3 * kSecond - 1)});
        },
        "n-running");
  }
  SECTION("negative elapsed_time") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running",
                           .elapsed_time = -1,
                           .finished_at = at(4 * kSecond)});
        },
        "elapsed_time");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node(
              {.run_id = "r-2", .node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
        },
        "r-2");
  }
  SECTION("metadata naming another tenant") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)},
                          {.tenant_id = "t-2"});
        },
        "t-2");
  }
  SECTION("completing a running node works and then is final") {
    run.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
    CHECK(run.find_node_execution("n-running")->status == NodeStatus::succeeded);
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running", .finished_at = at(5 * kSecond)});
        },
        "n-running");
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-running", .error = "x", .finished_at = at(5 * kSecond)});
        },
        "n-running");
  }
}

TEST_CASE("fail_node invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("a node never started") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-ghost", .error = "x", .finished_at = at(4 * kSecond)});
        },
        "n-ghost");
  }
  SECTION("a node that completed") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-done", .error = "x", .finished_at = at(4 * kSecond)});
        },
        "n-done");
  }
  SECTION("a node failed twice") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-failed", .error = "x", .finished_at = at(4 * kSecond)});
        },
        "n-failed");
  }
  SECTION("no error") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
        },
        "error");
  }
  SECTION("outputs that are not JSON") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node({.node_execution_id = "n-running",
                       .error = "x",
                       .outputs = "{\"a\":",
                       .finished_at = at(4 * kSecond)});
        },
        "outputs");
  }
  SECTION("finished before it started") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-running", .error = "x", .finished_at = at(2 * kSecond)});
        },
        "n-running");
  }
  SECTION("negative elapsed_time") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node({.node_execution_id = "n-running",
                       .error = "x",
                       .elapsed_time = -0.5,
                       .finished_at = at(4 * kSecond)});
        },
        "elapsed_time");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node({.run_id = "r-2",
                       .node_execution_id = "n-running",
                       .error = "x",
                       .finished_at = at(4 * kSecond)});
        },
        "r-2");
  }
  SECTION("failing a running node works and then is final") {
    run.fail_node({.node_execution_id = "n-running", .error = "x", .finished_at = at(4 * kSecond)});
    CHECK(run.find_node_execution("n-running")->status == NodeStatus::failed);
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail_node(
              {.node_execution_id = "n-running", .error = "y", .finished_at = at(5 * kSecond)});
        },
        "n-running");
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running", .finished_at = at(5 * kSecond)});
        },
        "n-running");
  }
}

// ---------------------------------------------------------------------------------------
// Run invariants
// ---------------------------------------------------------------------------------------

TEST_CASE("succeed invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("while a node is still running") {
    require_rejected(
        run, [](WorkflowRun& r) { r.succeed({.finished_at = at(5 * kSecond)}); }, "n-running");
  }
  run.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
  SECTION("outputs that are not JSON") {
    require_rejected(
        run, [](WorkflowRun& r) { r.succeed({.outputs = "[1,2", .finished_at = at(5 * kSecond)}); },
        "outputs");
  }
  SECTION("finished before the run was created") {
    require_rejected(
        run, [](WorkflowRun& r) { r.succeed({.finished_at = at(-1)}); }, "finished_at");
  }
  SECTION("negative elapsed_time") {
    require_rejected(
        run,
        [](WorkflowRun& r) { r.succeed({.elapsed_time = -3, .finished_at = at(5 * kSecond)}); },
        "elapsed_time");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run, [](WorkflowRun& r) { r.succeed({.run_id = "r-2", .finished_at = at(5 * kSecond)}); },
        "r-2");
  }
  SECTION("metadata naming another tenant") {
    require_rejected(
        run,
        [](WorkflowRun& r) { r.succeed({.finished_at = at(5 * kSecond)}, {.tenant_id = "t-2"}); },
        "t-2");
  }
  SECTION("once no node runs, it succeeds") {
    run.succeed({.outputs = R"({"ok":true})", .finished_at = at(5 * kSecond)});
    CHECK(run.status() == RunStatus::succeeded);
    CHECK(run.is_finished());
    CHECK(run.state().outputs == R"({"ok":true})");
    CHECK(run.state().finished_at == at(5 * kSecond));
    CHECK(to_string(RunStatus::succeeded) == "succeeded");
  }
}

TEST_CASE("fail invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("no error") {
    require_rejected(
        run, [](WorkflowRun& r) { r.fail({.finished_at = at(5 * kSecond)}); }, "error");
  }
  SECTION("finished before the run was created") {
    require_rejected(
        run, [](WorkflowRun& r) { r.fail({.error = "x", .finished_at = at(-5 * kSecond)}); },
        "finished_at");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.fail({.run_id = "r-2", .error = "x", .finished_at = at(5 * kSecond)});
        },
        "r-2");
  }
  SECTION("fails even while a node is running") {
    run.fail({.error = "x", .finished_at = at(5 * kSecond)});
    CHECK(run.status() == RunStatus::failed);
    CHECK(run.state().error == "x");
    CHECK(to_string(RunStatus::failed) == "failed");
  }
}

TEST_CASE("stop invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("finished before the run was created") {
    require_rejected(
        run, [](WorkflowRun& r) { r.stop({.finished_at = at(-1)}); }, "finished_at");
  }
  SECTION("negative elapsed_time") {
    require_rejected(
        run, [](WorkflowRun& r) { r.stop({.elapsed_time = -1, .finished_at = at(5 * kSecond)}); },
        "elapsed_time");
  }
  SECTION("an event naming another run") {
    require_rejected(
        run, [](WorkflowRun& r) { r.stop({.run_id = "r-2", .finished_at = at(5 * kSecond)}); },
        "r-2");
  }
  SECTION("metadata naming another tenant") {
    require_rejected(
        run, [](WorkflowRun& r) { r.stop({.finished_at = at(5 * kSecond)}, {.tenant_id = "t-2"}); },
        "t-2");
  }
  SECTION("stops even while a node is running") {
    run.stop({.stopped_by = "bob", .finished_at = at(5 * kSecond)});
    CHECK(run.status() == RunStatus::stopped);
    CHECK(to_string(RunStatus::stopped) == "stopped");
    CHECK(to_string(RunStatus::running) == "running");
  }
}

TEST_CASE("a finished run accepts no command except mark_deleted", "[aggregates]") {
  const int ending = GENERATE(0, 1, 2);
  WorkflowRun run = run_with_nodes();
  std::string status;
  switch (ending) {
    case 0:
      run.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
      run.succeed({.finished_at = at(5 * kSecond)});
      status = "succeeded";
      break;
    case 1:
      run.fail({.error = "x", .finished_at = at(5 * kSecond)});
      status = "failed";
      break;
    default:
      run.stop({.finished_at = at(5 * kSecond)});
      status = "stopped";
      break;
  }
  CAPTURE(status);
  REQUIRE(run.is_finished());
  CHECK(to_string(run.status()) == status);

  for (const auto& [name, command] : every_command()) {
    CAPTURE(name);
    require_rejected(run, command, "finished");
  }

  // Deleting a finished run is allowed.
  run.mark_deleted({.deleted_by = "carol", .deleted_at = at(6 * kSecond)});
  CHECK(run.is_deleted());
  CHECK(to_string(run.status()) == status);  // deletion does not change the outcome
  CHECK(std::holds_alternative<RunDeleted>(run.pending_events().back().event));
}

TEST_CASE("a deleted run accepts nothing, not even mark_deleted", "[aggregates]") {
  const bool finished_first = GENERATE(false, true);
  WorkflowRun run = run_with_nodes();
  if (finished_first) run.fail({.error = "x", .finished_at = at(5 * kSecond)});
  run.mark_deleted({.deleted_by = "carol", .reason = "gdpr", .deleted_at = at(6 * kSecond)});
  REQUIRE(run.is_deleted());

  auto commands = every_command();
  commands.emplace_back("mark_deleted", [](WorkflowRun& r) {
    r.mark_deleted({.deleted_by = "carol", .deleted_at = at(7 * kSecond)});
  });
  commands.emplace_back("mark_deleted with defaults", [](WorkflowRun& r) { r.mark_deleted(); });
  for (const auto& [name, command] : commands) {
    CAPTURE(name, finished_first);
    require_rejected(run, command, "deleted");
  }
}

TEST_CASE("mark_deleted invariants", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  SECTION("an event naming another run") {
    require_rejected(
        run,
        [](WorkflowRun& r) { r.mark_deleted({.run_id = "r-2", .deleted_at = at(5 * kSecond)}); },
        "r-2");
  }
  SECTION("metadata naming another tenant") {
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.mark_deleted({.deleted_at = at(5 * kSecond)}, {.tenant_id = "t-2"});
        },
        "t-2");
  }
  SECTION("deleted before the run was created") {
    require_rejected(
        run, [](WorkflowRun& r) { r.mark_deleted({.deleted_at = at(-1)}); }, "before created_at");
  }
}

TEST_CASE("durations must be finite and runs cannot finish before their nodes did",
          "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  SECTION("a NaN node elapsed_time") {
    require_rejected(
        run,
        [nan](WorkflowRun& r) {
          r.complete_node({.node_execution_id = "n-running",
                           .elapsed_time = nan,
                           .finished_at = at(4 * kSecond)});
        },
        "elapsed_time");
  }
  SECTION("an infinite node elapsed_time") {
    require_rejected(
        run,
        [inf](WorkflowRun& r) {
          r.fail_node({.node_execution_id = "n-running",
                       .error = "x",
                       .elapsed_time = inf,
                       .finished_at = at(4 * kSecond)});
        },
        "not a finite");
  }
  SECTION("a NaN run elapsed_time") {
    require_rejected(
        run,
        [nan](WorkflowRun& r) {
          r.fail({.error = "x", .elapsed_time = nan, .finished_at = at(9 * kSecond)});
        },
        "elapsed_time");
  }
  SECTION("a run finishing before one of its nodes finished") {
    // n-failed finished at 3 s
    require_rejected(
        run,
        [](WorkflowRun& r) {
          r.stop({.stopped_by = "bob", .finished_at = at(2 * kSecond + 500'000)});
        },
        "n-failed");
  }
}

TEST_CASE("a run that fails or stops ends its running nodes as stopped", "[aggregates]") {
  for (const bool stop : {true, false}) {
    WorkflowRun run = run_with_nodes();
    if (stop) {
      run.stop({.stopped_by = "bob", .finished_at = at(9 * kSecond)});
    } else {
      run.fail({.error = "gave up", .finished_at = at(9 * kSecond)});
    }
    const NodeExecution* running = run.find_node_execution("n-running");
    REQUIRE(running != nullptr);
    CHECK(running->status == NodeStatus::stopped);
    CHECK(running->finished_at == at(9 * kSecond));
    CHECK(to_string(running->status) == "stopped");
    CHECK(run.find_node_execution("n-done")->status == NodeStatus::succeeded);
    CHECK(run.find_node_execution("n-failed")->status == NodeStatus::failed);
  }
}

// ---------------------------------------------------------------------------------------
// Metadata stamping
// ---------------------------------------------------------------------------------------

TEST_CASE("commands stamp default metadata", "[aggregates]") {
  WorkflowRun run = new_run();
  const EventMetadata& created = last_metadata(run);
  CHECK(created.tenant_id == "t-1");
  CHECK(created.actor == "alice");  // created_by
  CHECK(created.correlation_id == "r-1");
  CHECK(created.causation_id.empty());
  CHECK(created.occurred_at == at(0));  // the event's own timestamp

  run.start_node({.node_execution_id = "n-1",
                  .node_id = "s",
                  .node_type = "start",
                  .started_at = at(1 * kSecond)});
  CHECK(last_metadata(run).tenant_id == "t-1");
  CHECK(last_metadata(run).correlation_id == "r-1");
  CHECK(last_metadata(run).occurred_at == at(1 * kSecond));

  run.complete_node({.node_execution_id = "n-1", .finished_at = at(2 * kSecond)});
  CHECK(last_metadata(run).tenant_id == "t-1");
  CHECK(last_metadata(run).correlation_id == "r-1");
  CHECK(last_metadata(run).occurred_at == at(2 * kSecond));

  run.start_node({.node_execution_id = "n-2",
                  .node_id = "s",
                  .node_type = "start",
                  .started_at = at(3 * kSecond)});
  run.fail_node({.node_execution_id = "n-2", .error = "e", .finished_at = at(4 * kSecond)});
  CHECK(last_metadata(run).tenant_id == "t-1");
  CHECK(last_metadata(run).occurred_at == at(4 * kSecond));

  SECTION("succeed") {
    run.succeed({.finished_at = at(5 * kSecond)});
    CHECK(last_metadata(run).tenant_id == "t-1");
    CHECK(last_metadata(run).correlation_id == "r-1");
    CHECK(last_metadata(run).occurred_at == at(5 * kSecond));
  }
  SECTION("fail") {
    run.fail({.error = "e", .finished_at = at(5 * kSecond)});
    CHECK(last_metadata(run).tenant_id == "t-1");
    CHECK(last_metadata(run).correlation_id == "r-1");
    CHECK(last_metadata(run).occurred_at == at(5 * kSecond));
  }
  SECTION("stop: actor is stopped_by") {
    run.stop({.stopped_by = "bob", .finished_at = at(5 * kSecond)});
    CHECK(last_metadata(run).tenant_id == "t-1");
    CHECK(last_metadata(run).actor == "bob");
    CHECK(last_metadata(run).correlation_id == "r-1");
    CHECK(last_metadata(run).occurred_at == at(5 * kSecond));
  }
  SECTION("mark_deleted: actor is deleted_by") {
    run.mark_deleted({.deleted_by = "carol", .deleted_at = at(6 * kSecond)});
    CHECK(last_metadata(run).tenant_id == "t-1");
    CHECK(last_metadata(run).actor == "carol");
    CHECK(last_metadata(run).correlation_id == "r-1");
    CHECK(last_metadata(run).occurred_at == at(6 * kSecond));
  }
}

TEST_CASE("metadata given by the caller is kept", "[aggregates]") {
  const EventMetadata given{.tenant_id = "t-1",
                            .actor = "api-key-7",
                            .correlation_id = "corr-9",
                            .causation_id = "cmd-1",
                            .occurred_at = at(42)};
  WorkflowRun run = WorkflowRun::create(created_event(), given);
  CHECK(last_metadata(run) == given);
  CHECK(run.state().created_at == at(0));  // the event's timestamp is not overwritten

  run.start_node(
      {.node_execution_id = "n-1", .node_id = "s", .node_type = "start", .started_at = at(kSecond)},
      {.actor = "engine", .causation_id = "cmd-2"});
  CHECK(last_metadata(run) == EventMetadata{.tenant_id = "t-1",
                                            .actor = "engine",
                                            .correlation_id = "r-1",
                                            .causation_id = "cmd-2",
                                            .occurred_at = at(kSecond)});

  run.stop({.stopped_by = "bob", .finished_at = at(2 * kSecond)},
           {.actor = "admin", .correlation_id = "corr-x", .occurred_at = at(3 * kSecond)});
  CHECK(last_metadata(run) == EventMetadata{.tenant_id = "t-1",
                                            .actor = "admin",
                                            .correlation_id = "corr-x",
                                            .occurred_at = at(3 * kSecond)});
  CHECK(pending_as<RunStopped>(run, 2).stopped_by == "bob");

  run.mark_deleted({.deleted_by = "carol", .deleted_at = at(4 * kSecond)},
                   {.actor = "dpo", .causation_id = "ticket-1"});
  CHECK(last_metadata(run).actor == "dpo");
  CHECK(last_metadata(run).causation_id == "ticket-1");
}

TEST_CASE("event timestamps left zero come from metadata.occurred_at", "[aggregates]") {
  RunCreated e = created_event();
  e.created_at = Timestamp{};
  WorkflowRun run = WorkflowRun::create(e, {.occurred_at = at(7)});
  CHECK(run.state().created_at == at(7));
  CHECK(pending_as<RunCreated>(run, 0).created_at == at(7));

  run.start_node({.node_execution_id = "n-1", .node_id = "s", .node_type = "start"},
                 {.occurred_at = at(kSecond)});
  CHECK(run.find_node_execution("n-1")->started_at == at(kSecond));
  run.complete_node({.node_execution_id = "n-1"}, {.occurred_at = at(3 * kSecond)});
  CHECK(run.find_node_execution("n-1")->finished_at == at(3 * kSecond));
  CHECK(run.find_node_execution("n-1")->elapsed_time == 2.0);
  run.succeed({}, {.occurred_at = at(4 * kSecond)});
  CHECK(run.state().finished_at == at(4 * kSecond));
  run.mark_deleted({}, {.occurred_at = at(5 * kSecond)});
  CHECK(pending_as<RunDeleted>(run, 4).deleted_at == at(5 * kSecond));
}

TEST_CASE("event timestamps left zero with no metadata time are stamped", "[aggregates]") {
  RunCreated e = created_event();
  e.created_at = Timestamp{};
  WorkflowRun run = WorkflowRun::create(e);
  CHECK(run.state().created_at != Timestamp{});
  CHECK(last_metadata(run).occurred_at == run.state().created_at);
  run.start_node({.node_execution_id = "n-1", .node_id = "s", .node_type = "start"});
  CHECK(run.find_node_execution("n-1")->started_at != Timestamp{});
  CHECK(run.find_node_execution("n-1")->started_at >= run.state().created_at);
}

// ---------------------------------------------------------------------------------------
// Derived totals
// ---------------------------------------------------------------------------------------

TEST_CASE("zero totals on finishing are derived from nodes and timestamps", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  run.complete_node({.node_execution_id = "n-running",
                     .total_tokens = 32,
                     .finished_at = at(4 * kSecond + 500'000)});
  CHECK(run.find_node_execution("n-running")->elapsed_time == 1.5);
  // Node tokens: n-done 10, n-failed 0, n-running 32.

  SECTION("succeed") {
    run.succeed({.finished_at = at(10 * kSecond + 250'000)});
    const RunSucceeded& e = pending_as<RunSucceeded>(run, run.pending_events().size() - 1);
    CHECK(e.elapsed_time == 10.25);
    CHECK(e.total_steps == 3);
    CHECK(e.total_tokens == 42);
    CHECK(run.state().elapsed_time == 10.25);
    CHECK(run.state().total_steps == 3);
    CHECK(run.state().total_tokens == 42);
  }
  SECTION("fail") {
    run.fail({.error = "x", .finished_at = at(8 * kSecond)});
    CHECK(run.state().elapsed_time == 8.0);
    CHECK(run.state().total_steps == 3);
    CHECK(run.state().total_tokens == 42);
  }
  SECTION("stop") {
    run.stop({.finished_at = at(6 * kSecond + 125'000)});
    CHECK(run.state().elapsed_time == 6.125);
    CHECK(run.state().total_steps == 3);
    CHECK(run.state().total_tokens == 42);
  }
  SECTION("finishing at the creation instant gives zero elapsed time") {
    WorkflowRun fresh = new_run();
    fresh.succeed({.finished_at = at(0)});
    CHECK(fresh.state().elapsed_time == 0.0);
    CHECK(fresh.state().total_steps == 0);
    CHECK(fresh.state().total_tokens == 0);
  }
}

TEST_CASE("non-zero totals given on finishing are kept", "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  run.fail({.error = "x",
            .elapsed_time = 99.5,
            .total_tokens = 1234,
            .total_steps = 7,
            .finished_at = at(5 * kSecond)});
  CHECK(run.state().elapsed_time == 99.5);
  CHECK(run.state().total_tokens == 1234);
  CHECK(run.state().total_steps == 7);
  CHECK(run.state().finished_at == at(5 * kSecond));

  WorkflowRun other = run_with_nodes();
  other.complete_node(
      {.node_execution_id = "n-running", .elapsed_time = 0.75, .finished_at = at(9 * kSecond)});
  CHECK(other.find_node_execution("n-running")->elapsed_time == 0.75);
}

TEST_CASE("node indexes default to the execution order; a given index is kept", "[aggregates]") {
  WorkflowRun run = new_run();
  run.start_node(
      {.node_execution_id = "n-1", .node_id = "a", .node_type = "t", .started_at = at(1)});
  run.start_node({.node_execution_id = "n-2",
                  .index = 10,
                  .node_id = "b",
                  .node_type = "t",
                  .started_at = at(2)});
  run.start_node(
      {.node_execution_id = "n-3", .node_id = "c", .node_type = "t", .started_at = at(3)});
  REQUIRE(run.node_executions().size() == 3);
  CHECK(run.node_executions()[0].index == 1);
  CHECK(run.node_executions()[1].index == 10);
  CHECK(run.node_executions()[2].index == 3);
  CHECK(run.node_executions()[0].id == "n-1");
  CHECK(run.node_executions()[2].id == "n-3");
}

// ---------------------------------------------------------------------------------------
// Rehydration
// ---------------------------------------------------------------------------------------

TEST_CASE("rehydrating the pending events gives the live object back", "[aggregates]") {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  const int ending = GENERATE(0, 1, 2);
  CAPTURE(to_string(format), ending);

  const WorkflowRun live = rich_run(ending);
  const std::vector<RecordedEvent> history = as_history(live, format, 100);
  REQUIRE(history.size() == live.version());

  const WorkflowRun loaded = WorkflowRun::rehydrate(history);
  CHECK(loaded.state() == live.state());
  CHECK(loaded.version() == live.version());
  CHECK(loaded.persisted_version() == live.version());
  CHECK_FALSE(loaded.has_pending_events());
  CHECK(loaded.id() == "r-rich");
  CHECK(loaded.stream_id() == "WorkflowRun-r-rich");
  CHECK(loaded.status() == live.status());
  CHECK(loaded.is_deleted() == live.is_deleted());
  CHECK(loaded.node_executions() == live.node_executions());

  // Spot-check that the state is the interesting one, not two empty ones.
  CHECK(loaded.state().node_executions.size() == 4);
  CHECK(loaded.state().created_by == "alice " + kTricky);
  CHECK(loaded.find_node_execution("n-2")->index == 7);
  CHECK(loaded.find_node_execution("n-3")->total_tokens == 1'000'000'007);
}

TEST_CASE("replay continues a loaded run; new commands then follow on", "[aggregates]") {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  WorkflowRun live = run_with_nodes();
  std::vector<RecordedEvent> history = as_history(live, format);
  live.mark_saved(live.version());

  // Load the first three events, then replay the rest one at a time.
  std::vector<RecordedEvent> first(history.begin(), history.begin() + 3);
  WorkflowRun loaded = WorkflowRun::rehydrate(first);
  CHECK(loaded.version() == 3);
  for (std::size_t i = 3; i < history.size(); ++i) loaded.replay(history[i]);
  CHECK(loaded.state() == live.state());
  CHECK(loaded.version() == live.version());

  loaded.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
  live.complete_node({.node_execution_id = "n-running", .finished_at = at(4 * kSecond)});
  CHECK(loaded.version() == 7);
  CHECK(loaded.persisted_version() == 6);
  CHECK(loaded.pending_events().size() == 1);
  CHECK(loaded.state() == live.state());

  // The new event continues the stream at version 7.
  const std::vector<RecordedEvent> more = as_history(loaded, format, 7);
  REQUIRE(more.size() == 1);
  CHECK(more[0].version == 7);
  history.push_back(more[0]);
  CHECK(WorkflowRun::rehydrate(history).state() == loaded.state());

  // A loaded run with pending events cannot replay more history.
  REQUIRE_THROWS_AS(loaded.replay(more[0]), IntegrityError);
}

TEST_CASE("rehydrate through the in-memory store", "[aggregates]") {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  StoreOptions options;
  options.payload_format = format;
  const std::shared_ptr<EventStore> store = open_event_store("memory:", options);

  WorkflowRun run = rich_run(0);
  const AppendResult result = store->append(run.stream_id(), ExpectedVersion::no_stream(),
                                            run.encode_pending_events(format));
  CHECK(result.stream_version == run.version());
  run.mark_saved(result.stream_version);

  const std::vector<RecordedEvent> history = store->read_stream(run.stream_id());
  REQUIRE(history.size() == run.version());
  for (const RecordedEvent& r : history) CHECK(r.payload_format == format);
  const WorkflowRun loaded = WorkflowRun::rehydrate(history);
  CHECK(loaded.state() == run.state());
  CHECK(loaded.version() == run.version());
}

TEST_CASE("rehydrate rejects bad histories", "[aggregates]") {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  const WorkflowRun live = run_with_nodes();
  std::vector<RecordedEvent> history = as_history(live, format);
  REQUIRE(history.size() == 6);

  SECTION("empty history") { REQUIRE_THROWS_AS(WorkflowRun::rehydrate({}), NotFound); }
  SECTION("a skipped version") {
    history.erase(history.begin() + 2);
    REQUIRE_THROWS_MATCHES(WorkflowRun::rehydrate(history), IntegrityError,
                           WhatContains("WorkflowRun-r-1"));
  }
  SECTION("not starting at version 1") {
    history.erase(history.begin());
    REQUIRE_THROWS_AS(WorkflowRun::rehydrate(history), IntegrityError);
  }
  SECTION("a repeated version") {
    history.insert(history.begin() + 3, history[2]);
    REQUIRE_THROWS_AS(WorkflowRun::rehydrate(history), IntegrityError);
  }
  SECTION("out of order") {
    std::swap(history[3], history[4]);
    REQUIRE_THROWS_AS(WorkflowRun::rehydrate(history), IntegrityError);
  }
  SECTION("events from another stream") {
    history[4].stream_id = "WorkflowRun-r-2";
    REQUIRE_THROWS_MATCHES(WorkflowRun::rehydrate(history), IntegrityError,
                           WhatContains("WorkflowRun-r-2"));
  }
  SECTION("an event that does not decode") {
    history[3].payload = history[3].payload.substr(0, history[3].payload.size() / 2);
    REQUIRE_THROWS_AS(WorkflowRun::rehydrate(history), SerializationError);
  }
  SECTION("an unknown event type") {
    history[3].type = "NodeExploded";
    REQUIRE_THROWS_MATCHES(WorkflowRun::rehydrate(history), SerializationError,
                           WhatContains("NodeExploded"));
  }
}

// ---------------------------------------------------------------------------------------
// Save bookkeeping
// ---------------------------------------------------------------------------------------

TEST_CASE("mark_saved clears pending events and moves persisted_version", "[aggregates]") {
  WorkflowRun run = new_run();
  CHECK(run.persisted_version() == 0);
  CHECK(run.has_pending_events());

  SECTION("a version that does not account for the pending events is rejected") {
    const std::vector<boost::uuids::uuid> ids = pending_ids(run);
    REQUIRE_THROWS_MATCHES(run.mark_saved(2), InvalidArgument, WhatContains("WorkflowRun-r-1"));
    REQUIRE_THROWS_AS(run.mark_saved(0), InvalidArgument);
    CHECK(run.pending_events().size() == 1);
    CHECK(pending_ids(run) == ids);
    CHECK(run.persisted_version() == 0);
  }

  run.mark_saved(1);
  CHECK_FALSE(run.has_pending_events());
  CHECK(run.pending_events().empty());
  CHECK(run.version() == 1);
  CHECK(run.persisted_version() == 1);
  CHECK(run.encode_pending_events(PayloadFormat::json).empty());

  run.start_node({.node_execution_id = "n-1",
                  .node_id = "s",
                  .node_type = "start",
                  .started_at = at(kSecond)});
  run.complete_node({.node_execution_id = "n-1", .finished_at = at(2 * kSecond)});
  CHECK(run.version() == 3);
  CHECK(run.persisted_version() == 1);
  CHECK(run.pending_events().size() == 2);

  const std::vector<NewEvent> encoded = run.encode_pending_events(PayloadFormat::json);
  REQUIRE(encoded.size() == 2);
  CHECK(encoded[0].type == "NodeStarted");
  CHECK(encoded[1].type == "NodeCompleted");
  CHECK(encoded[0].event_id == run.pending_events()[0].event_id);
  CHECK(encoded[0].event_id != encoded[1].event_id);
  CHECK(encoded[0].schema_version == 1);
  CHECK(encoded[0].payload_format == PayloadFormat::json);
  CHECK(is_json_document(encoded[0].payload));
  CHECK(encoded[0].metadata == run.pending_events()[0].metadata);

  // Re-encoding gives the same ids, so a retried save is recognisable.
  CHECK(run.encode_pending_events(PayloadFormat::binary)[1].event_id == encoded[1].event_id);

  REQUIRE_THROWS_AS(run.mark_saved(2), InvalidArgument);
  CHECK(run.pending_events().size() == 2);
  run.mark_saved(3);
  CHECK(run.persisted_version() == 3);
  CHECK_FALSE(run.has_pending_events());
}

TEST_CASE("a command whose event cannot be encoded is refused and changes nothing",
          "[aggregates]") {
  WorkflowRun run = run_with_nodes();
  const WorkflowRunState before = run.state();
  const auto pending = run.pending_events().size();
  CHECK_THROWS_MATCHES(run.fail_node({.node_execution_id = "n-running",
                                      .error = std::string("caf\xe9 failed"),
                                      .finished_at = at(4 * kSecond)}),
                       SerializationError, WhatContains("UTF-8"));
  CHECK(run.state() == before);
  CHECK(run.pending_events().size() == pending);
}

TEST_CASE("a run cannot end before a still-running node started", "[aggregates]") {
  WorkflowRun run = new_run();
  run.start_node({.node_execution_id = "n-late",
                  .node_id = "llm",
                  .node_type = "llm",
                  .started_at = at(5 * kSecond)});
  require_rejected(
      run, [](WorkflowRun& r) { r.stop({.stopped_by = "bob", .finished_at = at(4 * kSecond)}); },
      "'n-late' started at");
  require_rejected(
      run, [](WorkflowRun& r) { r.fail({.error = "x", .finished_at = at(4 * kSecond)}); },
      "'n-late' started at");
}
