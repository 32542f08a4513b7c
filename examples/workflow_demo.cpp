// workflow_demo: a workflow engine's write side on an embedded SQLite store, or on any store URI.
//
//   workflow_demo [PATH]      an SQLite file (default: annals-demo.db in the current directory)
//   workflow_demo URI         e.g. postgresql://app@db/annals or 'host=/run/postgresql dbname=x':
//                             the same program on PostgreSQL; only the URI changes
//
// Runs three workflow runs through their node executions (one succeeds, one fails, one is
// stopped), shows two workers racing on one run (the loser gets a ConcurrencyError, reloads
// and retries), reloads every run from the log and prints what happened, then pages through
// the read table the inline projection keeps. Running it again appends new runs to the file.

#include <annals/annals.hpp>
#include <iomanip>
#include <iostream>

namespace {

using namespace annals;

std::string short_id() { return to_string(new_event_id()).substr(0, 8); }

WorkflowRun new_run(const std::string& run_id, const std::string& workflow,
                    const std::string& who) {
  return WorkflowRun::create(RunCreated{.run_id = run_id,
                                        .tenant_id = "acme",
                                        .app_id = "support-bot",
                                        .workflow_id = workflow,
                                        .triggered_from = "app-run",
                                        .created_by = who,
                                        .inputs = R"({"question":"Where is my order?"})"});
}

void print_run(const WorkflowRun& run) {
  const WorkflowRunState& s = run.state();
  std::cout << "  " << std::left << std::setw(22) << s.run_id << std::setw(10)
            << to_string(s.status) << " v" << run.version() << "  " << s.node_executions.size()
            << " nodes, " << s.total_steps << " steps, " << s.total_tokens << " tokens"
            << (s.error.empty() ? "" : ", error: " + s.error) << "\n";
  for (const NodeExecution& n : s.node_executions) {
    std::cout << "      #" << n.index << " " << std::setw(12) << n.node_id << std::setw(10)
              << to_string(n.status) << (n.outputs.empty() ? "" : " -> " + n.outputs)
              << (n.error.empty() ? "" : " !! " + n.error) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string arg = argc > 1 ? argv[1] : "annals-demo.db";
  // A store URI (sqlite:, memory:, postgresql://, a libpq keyword string) as given; anything
  // else is an SQLite file path.
  const bool is_uri = arg.starts_with("sqlite:") || arg.starts_with("memory:") ||
                      arg.find("://") != std::string::npos || arg.find('=') != std::string::npos;
  const std::string uri = is_uri ? arg : "sqlite:" + arg;
  // The factory opens the store, sets up the read tables and keeps them current inline.
  RepositoryFactory factory(uri);
  auto store = factory.event_store();
  AggregateRepository<WorkflowRun> runs = factory.create_workflow_run_aggregate_repository();
  WorkflowRunRepository queries = factory.create_workflow_run_repository();
  const std::string batch = short_id();
  std::cout << "annals workflow demo: store " << redact_store_uri(uri) << ", head position "
            << store->head_position() << " before this run\n\n";

  // 1. A run that succeeds: start -> llm -> answer.
  const std::string ok_id = "run-" + batch + "-ok";
  WorkflowRun ok = new_run(ok_id, "answer-question", "alice");
  ok.start_node({.node_execution_id = ok_id + "-n1",
                 .node_id = "start",
                 .node_type = "start",
                 .title = "Start",
                 .inputs = "{}"});
  ok.complete_node({.node_execution_id = ok_id + "-n1", .outputs = "{}"});
  ok.start_node({.node_execution_id = ok_id + "-n2",
                 .node_id = "llm",
                 .node_type = "llm",
                 .title = "Ask the model",
                 .predecessor_node_id = "start",
                 .inputs = R"({"prompt":"Where is my order?"})"});
  runs.save(ok);  // saves may come at any point: here after three events
  ok.complete_node({.node_execution_id = ok_id + "-n2",
                    .outputs = R"({"text":"It ships tomorrow."})",
                    .total_tokens = 412});
  ok.succeed({.outputs = R"({"answer":"It ships tomorrow."})"});
  runs.save(ok);

  // 2. A run whose tool node fails, failing the run.
  const std::string bad_id = "run-" + batch + "-failed";
  WorkflowRun bad = new_run(bad_id, "lookup-order", "bob");
  bad.start_node({.node_execution_id = bad_id + "-n1",
                  .node_id = "http",
                  .node_type = "tool",
                  .title = "Order API",
                  .inputs = R"({"order":"A-17"})"});
  bad.fail_node({.node_execution_id = bad_id + "-n1", .error = "HTTP 503 from orders service"});
  bad.fail({.error = "node http failed"});
  runs.save(bad);

  // 3. A run stopped by an operator, and two workers racing on it first.
  const std::string stop_id = "run-" + batch + "-stopped";
  WorkflowRun created = new_run(stop_id, "summarize", "carol");
  runs.save(created);

  WorkflowRun worker_a = runs.load(stop_id);
  WorkflowRun worker_b = runs.load(stop_id);
  worker_a.start_node({.node_execution_id = stop_id + "-n1",
                       .node_id = "retrieve",
                       .node_type = "knowledge",
                       .title = "Retrieve"},
                      {.actor = "worker-a"});
  runs.save(worker_a);
  worker_b.start_node({.node_execution_id = stop_id + "-n2",
                       .node_id = "draft",
                       .node_type = "llm",
                       .title = "Draft"},
                      {.actor = "worker-b"});
  try {
    runs.save(worker_b);
  } catch (const ConcurrencyError& e) {
    std::cout << "worker B lost the race: " << e.what() << "\n";
    WorkflowRun reloaded = runs.load(stop_id);  // reload, decide again, save
    std::cout << "worker B reloaded at version " << reloaded.version() << " and retries\n\n";
    reloaded.start_node({.node_execution_id = stop_id + "-n2",
                         .node_id = "draft",
                         .node_type = "llm",
                         .title = "Draft",
                         .predecessor_node_id = "retrieve"},
                        {.actor = "worker-b"});
    runs.save(reloaded);
  }
  WorkflowRun to_stop = runs.load(stop_id);
  to_stop.stop({.stopped_by = "operator-dan", .reason = "customer closed the chat"});
  runs.save(to_stop);

  std::cout << "runs reloaded from the log:\n";
  for (const std::string& id : {ok_id, bad_id, stop_id}) print_run(runs.load(id));

  std::cout << "\nevent log of " << WorkflowRun::stream_id_for(stop_id) << ":\n";
  for (const RecordedEvent& e : store->read_stream(WorkflowRun::stream_id_for(stop_id))) {
    std::cout << "  position " << std::setw(5) << e.position << "  v" << e.version << "  "
              << std::setw(14) << e.type << " actor=" << std::setw(13) << e.metadata.actor << " at "
              << format_timestamp(e.metadata.occurred_at) << "\n";
  }
  std::cout << "\nnewest runs of acme/support-bot (read table, keyset pagination, 3 per page):\n";
  std::optional<std::string> last_id;
  for (int page = 1; page <= 2; ++page) {
    const auto result =
        queries.get_paginated_workflow_runs("acme", "support-bot", "app-run", 3, last_id);
    for (const WorkflowRunView& v : result.data) {
      std::cout << "  page " << page << "  " << std::left << std::setw(24) << v.id << std::setw(10)
                << v.status << " created " << format_timestamp(v.created_at) << "\n";
    }
    if (!result.has_more) break;
    last_id = result.data.back().id;
  }
  std::cout << "\nhead position now " << store->head_position() << "\n";
  return 0;
} catch (const annals::Error& e) {
  std::cerr << "workflow_demo: " << e.what() << "\n";
  return 1;
}
