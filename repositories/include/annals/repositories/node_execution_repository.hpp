#pragma once

// NodeExecutionRepository: a run's node executions, read from annals_node_executions and
// changed only through commands on the owning WorkflowRun (NodeStarted, NodeCompleted,
// NodeFailed events), never by updating rows in place.
//
//   annals::NodeExecutionRepository nodes = factory.create_node_execution_repository();
//   annals::NodeExecutionView n = nodes.create_node_execution("t-1", "r-1", "llm", "llm", "{}");
//   nodes.update_node_execution("t-1", n.id, {.status = "succeeded", .outputs = R"({"a":1})"});
//   for (const auto& e : nodes.get_node_executions_by_run_id("t-1", "r-1")) show(e);
//
// Every method takes the tenant and never reads or changes another tenant's node executions,
// even given their ids. Every SQL value is bound, never spliced.
//
// Writes: load the run, run the command, save with expected version = loaded version; if another
// writer saved the run meanwhile (ConcurrencyError), load and try once more, then give up with
// the ConcurrencyError. The view a write returns is built from the saved aggregate, so it does not
// wait for an asynchronous projection.
//
// Thread-safety: holds only shared_ptrs to the store; one object may be used from any number of
// threads at once.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/workflow_views.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

// What update_node_execution() changes. status is required: "succeeded" (completes the node,
// with outputs) or "failed" (fails it, with error and optionally outputs).
struct NodeExecutionUpdate {
  std::optional<std::string> status{}, outputs{}, error{};
};

class NodeExecutionRepository {
 public:
  // InvalidArgument if store is null.
  explicit NodeExecutionRepository(std::shared_ptr<SqlEventStore> store);

  // The run's node executions in execution order ("index", then id); empty if the run is
  // unknown, deleted or another tenant's.
  [[nodiscard]] std::vector<NodeExecutionView> get_node_executions_by_run_id(
      std::string_view tenant_id, std::string_view run_id) const;

  // The node execution, or nullopt if there is none with this id in this tenant.
  [[nodiscard]] std::optional<NodeExecutionView> get_node_execution_by_id(
      std::string_view tenant_id, std::string_view execution_id) const;

  // Starts a node execution in the run (a new random id, the next index, the previous node as
  // predecessor) and, for status "succeeded" or "failed", finishes it at once (with outputs; a
  // failed one with the error "failed when created"). Returns it as saved.
  // Throws NotFound if the run is unknown, deleted or another tenant's; InvalidArgument for a
  // status other than running, succeeded or failed, outputs given with status "running", inputs
  // or outputs that are not JSON, or a run that already finished.
  NodeExecutionView create_node_execution(std::string_view tenant_id, std::string_view run_id,
                                          std::string_view node_id, std::string_view node_type,
                                          std::string inputs,
                                          std::optional<std::string> outputs = std::nullopt,
                                          std::string_view status = "running");

  // Finishes a running node execution: status "succeeded" completes it (outputs, if given),
  // "failed" fails it (error required, outputs optional). Returns it as saved, or nullopt if
  // there is no node execution with this id in this tenant.
  // Throws InvalidArgument for a missing or other status, an error given with "succeeded", a
  // "failed" without error, or a node that already finished.
  std::optional<NodeExecutionView> update_node_execution(std::string_view tenant_id,
                                                         std::string_view execution_id,
                                                         const NodeExecutionUpdate& changes);

  [[nodiscard]] const std::shared_ptr<SqlEventStore>& event_store() const noexcept {
    return store_;
  }

 private:
  std::shared_ptr<SqlEventStore> store_;
  AggregateRepository<WorkflowRun> aggregates_;
};

// The read-model view of a node execution of `run`, as the WorkflowProjection writes it.
[[nodiscard]] NodeExecutionView node_execution_view(const WorkflowRun& run,
                                                    const NodeExecution& node);

}  // namespace annals
