#pragma once

// The workflow read models: one row of annals_workflow_runs (WorkflowRunView) and one row of
// annals_node_executions (NodeExecutionView), as the query repositories return them.
//
//   auto run = runs.get_workflow_run_by_id("t-1", "app-1", "r-1");
//   if (run && run->status == "succeeded") show(run->outputs.value_or("{}"));
//
// Plain values; safe to use from any thread as long as one object is not mutated concurrently.
// Statuses are the words of to_string(RunStatus) / to_string(NodeStatus): "running",
// "succeeded", "failed", "stopped". inputs/outputs are JSON text, stored verbatim.

#include <cstdint>
#include <optional>
#include <string>

#include "annals/events/event.hpp"

namespace annals {

struct WorkflowRunView {
  std::string id{};  // the run id (stream "WorkflowRun-" + id)
  std::string tenant_id{};
  std::string app_id{};
  std::string workflow_id{};
  std::string triggered_from{};
  std::string status{};                  // running | succeeded | failed | stopped
  std::string inputs{};                  // JSON text; may be empty
  std::optional<std::string> outputs{};  // JSON text; nullopt until the run succeeded with outputs
  std::optional<std::string> error{};    // nullopt unless the run failed
  double elapsed_time = 0;               // seconds; 0 while running
  std::uint64_t total_tokens = 0;        // 0 while running
  std::uint32_t total_steps = 0;         // node executions; 0 while running
  std::string created_by{};
  Timestamp created_at{};
  std::optional<Timestamp> finished_at{};  // nullopt while running
  std::uint64_t version = 0;               // the run's stream version these values reflect

  friend bool operator==(const WorkflowRunView&, const WorkflowRunView&) = default;
};

struct NodeExecutionView {
  std::string id{};  // the node execution id
  std::string tenant_id{};
  std::string run_id{};
  std::string app_id{};
  std::string workflow_id{};
  std::uint32_t index = 0;  // 1-based order of execution within the run
  std::string node_id{};
  std::string node_type{};
  std::string title{};
  std::string predecessor_node_id{};     // empty for the first node
  std::string status{};                  // running | succeeded | failed | stopped
  std::string inputs{};                  // JSON text; may be empty
  std::optional<std::string> outputs{};  // JSON text; nullopt when none was recorded
  std::optional<std::string> error{};    // nullopt unless the node failed
  double elapsed_time = 0;               // seconds; 0 while running
  std::uint64_t total_tokens = 0;
  Timestamp created_at{};                  // when the node started
  std::optional<Timestamp> finished_at{};  // nullopt while running

  friend bool operator==(const NodeExecutionView&, const NodeExecutionView&) = default;
};

}  // namespace annals
