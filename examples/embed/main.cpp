// The smallest application embedding annals: save a workflow run, load it back.
#include <annals/annals.hpp>
#include <iostream>

int main() {
  auto store = annals::open_event_store("memory:");
  annals::AggregateRepository<annals::WorkflowRun> runs(store);

  auto run = annals::WorkflowRun::create({.run_id = "r-1",
                                          .tenant_id = "t",
                                          .app_id = "a",
                                          .workflow_id = "w",
                                          .triggered_from = "app-run"});
  run.start_node({.node_execution_id = "n-1", .node_id = "start", .node_type = "start"});
  run.complete_node({.node_execution_id = "n-1"});
  run.succeed();
  runs.save(run);

  const annals::WorkflowRun loaded = runs.load("r-1");
  std::cout << "embed: run " << loaded.id() << " is " << annals::to_string(loaded.status())
            << " at version " << loaded.version() << "\n";
  return loaded.state() == run.state() && loaded.version() == 4 ? 0 : 1;
}
