#include "annals/aggregates/workflow_run.hpp"

#include <algorithm>
#include <cmath>

namespace annals {

std::string_view to_string(RunStatus status) noexcept {
  switch (status) {
    case RunStatus::running:
      return "running";
    case RunStatus::succeeded:
      return "succeeded";
    case RunStatus::failed:
      return "failed";
    case RunStatus::stopped:
      return "stopped";
  }
  return "unknown";
}

std::string_view to_string(NodeStatus status) noexcept {
  switch (status) {
    case NodeStatus::running:
      return "running";
    case NodeStatus::succeeded:
      return "succeeded";
    case NodeStatus::failed:
      return "failed";
    case NodeStatus::stopped:
      return "stopped";
  }
  return "unknown";
}

namespace {

std::string where(std::string_view command, std::string_view run_id) {
  return std::string(command) + " on WorkflowRun-" + std::string(run_id);
}

void require_field(const std::string& value, std::string_view field, std::string_view context) {
  if (value.empty()) {
    throw InvalidArgument(std::string(context) + ": " + std::string(field) + " is empty");
  }
}

void require_json(const std::string& value, std::string_view field, std::string_view context) {
  if (!value.empty() && !is_json_document(value)) {
    const std::string shown = value.size() > 60 ? value.substr(0, 60) + "..." : value;
    throw InvalidArgument(std::string(context) + ": " + std::string(field) + " '" + shown +
                          "' is not JSON");
  }
}

// Durations are finite and non-negative: NaN and infinities have no JSON form and no meaning.
void require_duration(double seconds, std::string_view context) {
  if (!std::isfinite(seconds) || seconds < 0) {
    throw InvalidArgument(std::string(context) + ": elapsed_time " + std::to_string(seconds) +
                          " is not a finite, non-negative number of seconds");
  }
}

Timestamp or_now(Timestamp t, Timestamp fallback) {
  if (t != Timestamp{}) return t;
  return fallback != Timestamp{} ? fallback : now();
}

double seconds_between(Timestamp from, Timestamp to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

WorkflowRun WorkflowRun::create(RunCreated created, EventMetadata metadata) {
  const std::string context = where("create", created.run_id);
  require_field(created.run_id, "run_id", context);
  require_field(created.tenant_id, "tenant_id", context);
  require_field(created.app_id, "app_id", context);
  require_field(created.workflow_id, "workflow_id", context);
  require_field(created.triggered_from, "triggered_from", context);
  require_json(created.inputs, "inputs", context);
  if (!metadata.tenant_id.empty() && metadata.tenant_id != created.tenant_id) {
    throw InvalidArgument(context + ": metadata tenant '" + metadata.tenant_id +
                          "' differs from the run's tenant '" + created.tenant_id + "'");
  }
  created.created_at = or_now(created.created_at, metadata.occurred_at);
  metadata.tenant_id = created.tenant_id;
  if (metadata.actor.empty()) metadata.actor = created.created_by;
  if (metadata.correlation_id.empty()) metadata.correlation_id = created.run_id;
  if (metadata.occurred_at == Timestamp{}) metadata.occurred_at = created.created_at;

  WorkflowRun run;
  run.raise(std::move(created), std::move(metadata));
  return run;
}

const NodeExecution* WorkflowRun::find_node_execution(std::string_view id) const noexcept {
  for (const NodeExecution& n : state_.node_executions) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

NodeExecution* WorkflowRun::node(std::string_view id) noexcept {
  return const_cast<NodeExecution*>(find_node_execution(id));
}

void WorkflowRun::require_open(std::string_view command) const {
  if (state_.deleted) {
    throw InvalidArgument(where(command, state_.run_id) + ": the run is deleted");
  }
  if (is_finished()) {
    throw InvalidArgument(where(command, state_.run_id) + ": the run already finished (status " +
                          std::string(to_string(state_.status)) + ")");
  }
}

void WorkflowRun::require_run_id(std::string& run_id, std::string_view command) const {
  if (run_id.empty()) {
    run_id = state_.run_id;
  } else if (run_id != state_.run_id) {
    throw InvalidArgument(where(command, state_.run_id) + ": the event names run '" + run_id + "'");
  }
}

NodeExecution& WorkflowRun::require_running_node(std::string& run_id,
                                                 std::string& node_execution_id,
                                                 std::string_view command) {
  require_open(command);
  require_run_id(run_id, command);
  require_field(node_execution_id, "node_execution_id", where(command, state_.run_id));
  NodeExecution* n = node(node_execution_id);
  if (n == nullptr) {
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" + node_execution_id +
                          "' has not started");
  }
  if (n->status != NodeStatus::running) {
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" + node_execution_id +
                          "' already " + std::string(to_string(n->status)));
  }
  return *n;
}

EventMetadata WorkflowRun::stamp(EventMetadata metadata, Timestamp occurred_at,
                                 std::string_view command) const {
  if (metadata.tenant_id.empty()) {
    metadata.tenant_id = state_.tenant_id;
  } else if (metadata.tenant_id != state_.tenant_id) {
    throw InvalidArgument(where(command, state_.run_id) + ": metadata tenant '" +
                          metadata.tenant_id + "' differs from the run's tenant '" +
                          state_.tenant_id + "'");
  }
  if (metadata.correlation_id.empty()) metadata.correlation_id = state_.run_id;
  if (metadata.occurred_at == Timestamp{}) metadata.occurred_at = occurred_at;
  return metadata;
}

void WorkflowRun::fill_totals(double& elapsed_time, std::uint64_t& total_tokens,
                              std::uint32_t& total_steps, Timestamp& finished_at,
                              std::string_view command) const {
  if (finished_at < state_.created_at) {
    throw InvalidArgument(where(command, state_.run_id) + ": finished_at " +
                          format_timestamp(finished_at) + " is before created_at " +
                          format_timestamp(state_.created_at));
  }
  for (const NodeExecution& n : state_.node_executions) {
    if (!n.finished_at && finished_at < n.started_at) {  // it will end as stopped, at finished_at
      throw InvalidArgument(where(command, state_.run_id) + ": finished_at " +
                            format_timestamp(finished_at) + " is before node execution '" + n.id +
                            "' started at " + format_timestamp(n.started_at));
    }
    if (n.finished_at && finished_at < *n.finished_at) {
      throw InvalidArgument(where(command, state_.run_id) + ": finished_at " +
                            format_timestamp(finished_at) + " is before node execution '" + n.id +
                            "' finished at " + format_timestamp(*n.finished_at));
    }
  }
  require_duration(elapsed_time, where(command, state_.run_id));
  if (elapsed_time == 0) elapsed_time = seconds_between(state_.created_at, finished_at);
  if (total_steps == 0) total_steps = static_cast<std::uint32_t>(state_.node_executions.size());
  if (total_tokens == 0) {
    for (const NodeExecution& n : state_.node_executions) total_tokens += n.total_tokens;
  }
}

void WorkflowRun::start_node(NodeStarted started, EventMetadata metadata) {
  constexpr std::string_view kCommand = "start_node";
  require_open(kCommand);
  require_run_id(started.run_id, kCommand);
  const std::string context = where(kCommand, state_.run_id);
  require_field(started.node_execution_id, "node_execution_id", context);
  require_field(started.node_id, "node_id", context);
  require_field(started.node_type, "node_type", context);
  require_json(started.inputs, "inputs", context);
  if (find_node_execution(started.node_execution_id) != nullptr) {
    throw InvalidArgument(context + ": node execution '" + started.node_execution_id +
                          "' already started");
  }
  if (started.index == 0) {
    started.index = static_cast<std::uint32_t>(state_.node_executions.size() + 1);
  }
  started.started_at = or_now(started.started_at, metadata.occurred_at);
  if (started.started_at < state_.created_at) {
    throw InvalidArgument(context + ": started_at " + format_timestamp(started.started_at) +
                          " is before the run was created at " +
                          format_timestamp(state_.created_at));
  }
  metadata = stamp(std::move(metadata), started.started_at, kCommand);
  raise(std::move(started), std::move(metadata));
}

void WorkflowRun::finish_node_times(const NodeExecution& n, Timestamp& finished_at,
                                    double& elapsed_time, Timestamp fallback,
                                    std::string_view command) const {
  finished_at = or_now(finished_at, fallback);
  if (finished_at < n.started_at) {
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" + n.id +
                          "' finished_at " + format_timestamp(finished_at) +
                          " is before it started at " + format_timestamp(n.started_at));
  }
  require_duration(elapsed_time, where(command, state_.run_id));
  if (elapsed_time == 0) elapsed_time = seconds_between(n.started_at, finished_at);
}

void WorkflowRun::complete_node(NodeCompleted completed, EventMetadata metadata) {
  constexpr std::string_view kCommand = "complete_node";
  const NodeExecution& n =
      require_running_node(completed.run_id, completed.node_execution_id, kCommand);
  require_json(completed.outputs, "outputs", where(kCommand, state_.run_id));
  finish_node_times(n, completed.finished_at, completed.elapsed_time, metadata.occurred_at,
                    kCommand);
  metadata = stamp(std::move(metadata), completed.finished_at, kCommand);
  raise(std::move(completed), std::move(metadata));
}

void WorkflowRun::fail_node(NodeFailed failed, EventMetadata metadata) {
  constexpr std::string_view kCommand = "fail_node";
  const NodeExecution& n = require_running_node(failed.run_id, failed.node_execution_id, kCommand);
  require_field(failed.error, "error", where(kCommand, state_.run_id));
  require_json(failed.outputs, "outputs", where(kCommand, state_.run_id));
  finish_node_times(n, failed.finished_at, failed.elapsed_time, metadata.occurred_at, kCommand);
  metadata = stamp(std::move(metadata), failed.finished_at, kCommand);
  raise(std::move(failed), std::move(metadata));
}

void WorkflowRun::succeed(RunSucceeded succeeded, EventMetadata metadata) {
  constexpr std::string_view kCommand = "succeed";
  require_open(kCommand);
  require_run_id(succeeded.run_id, kCommand);
  require_json(succeeded.outputs, "outputs", where(kCommand, state_.run_id));
  for (const NodeExecution& n : state_.node_executions) {
    if (n.status == NodeStatus::running) {
      throw InvalidArgument(where(kCommand, state_.run_id) + ": node execution '" + n.id +
                            "' is still running");
    }
  }
  succeeded.finished_at = or_now(succeeded.finished_at, metadata.occurred_at);
  fill_totals(succeeded.elapsed_time, succeeded.total_tokens, succeeded.total_steps,
              succeeded.finished_at, kCommand);
  metadata = stamp(std::move(metadata), succeeded.finished_at, kCommand);
  raise(std::move(succeeded), std::move(metadata));
}

void WorkflowRun::fail(RunFailed failed, EventMetadata metadata) {
  constexpr std::string_view kCommand = "fail";
  require_open(kCommand);
  require_run_id(failed.run_id, kCommand);
  require_field(failed.error, "error", where(kCommand, state_.run_id));
  failed.finished_at = or_now(failed.finished_at, metadata.occurred_at);
  fill_totals(failed.elapsed_time, failed.total_tokens, failed.total_steps, failed.finished_at,
              kCommand);
  metadata = stamp(std::move(metadata), failed.finished_at, kCommand);
  raise(std::move(failed), std::move(metadata));
}

void WorkflowRun::stop(RunStopped stopped, EventMetadata metadata) {
  constexpr std::string_view kCommand = "stop";
  require_open(kCommand);
  require_run_id(stopped.run_id, kCommand);
  stopped.finished_at = or_now(stopped.finished_at, metadata.occurred_at);
  fill_totals(stopped.elapsed_time, stopped.total_tokens, stopped.total_steps, stopped.finished_at,
              kCommand);
  if (metadata.actor.empty()) metadata.actor = stopped.stopped_by;
  metadata = stamp(std::move(metadata), stopped.finished_at, kCommand);
  raise(std::move(stopped), std::move(metadata));
}

void WorkflowRun::mark_deleted(RunDeleted deleted, EventMetadata metadata) {
  constexpr std::string_view kCommand = "mark_deleted";
  if (state_.deleted) {
    throw InvalidArgument(where(kCommand, state_.run_id) + ": the run is already deleted");
  }
  require_run_id(deleted.run_id, kCommand);
  deleted.deleted_at = or_now(deleted.deleted_at, metadata.occurred_at);
  if (deleted.deleted_at < state_.created_at) {
    throw InvalidArgument(where(kCommand, state_.run_id) + ": deleted_at " +
                          format_timestamp(deleted.deleted_at) + " is before created_at " +
                          format_timestamp(state_.created_at));
  }
  if (metadata.actor.empty()) metadata.actor = deleted.deleted_by;
  metadata = stamp(std::move(metadata), deleted.deleted_at, kCommand);
  raise(std::move(deleted), std::move(metadata));
}

void WorkflowRun::apply(const RunCreated& e) {
  state_.run_id = e.run_id;
  state_.tenant_id = e.tenant_id;
  state_.app_id = e.app_id;
  state_.workflow_id = e.workflow_id;
  state_.triggered_from = e.triggered_from;
  state_.created_by = e.created_by;
  state_.inputs = e.inputs;
  state_.created_at = e.created_at;
  state_.status = RunStatus::running;
}

void WorkflowRun::apply(const NodeStarted& e) {
  NodeExecution n;
  n.id = e.node_execution_id;
  n.index = e.index;
  n.node_id = e.node_id;
  n.node_type = e.node_type;
  n.title = e.title;
  n.predecessor_node_id = e.predecessor_node_id;
  n.inputs = e.inputs;
  n.started_at = e.started_at;
  state_.node_executions.push_back(std::move(n));
}

void WorkflowRun::apply(const NodeCompleted& e) {
  if (NodeExecution* n = node(e.node_execution_id)) {
    n->status = NodeStatus::succeeded;
    n->outputs = e.outputs;
    n->elapsed_time = e.elapsed_time;
    n->total_tokens = e.total_tokens;
    n->finished_at = e.finished_at;
  }
}

void WorkflowRun::apply(const NodeFailed& e) {
  if (NodeExecution* n = node(e.node_execution_id)) {
    n->status = NodeStatus::failed;
    n->error = e.error;
    n->outputs = e.outputs;
    n->elapsed_time = e.elapsed_time;
    n->finished_at = e.finished_at;
  }
}

void WorkflowRun::apply(const RunSucceeded& e) {
  state_.status = RunStatus::succeeded;
  state_.outputs = e.outputs;
  state_.elapsed_time = e.elapsed_time;
  state_.total_tokens = e.total_tokens;
  state_.total_steps = e.total_steps;
  state_.finished_at = e.finished_at;
}

void WorkflowRun::stop_running_nodes(Timestamp at) noexcept {
  for (NodeExecution& n : state_.node_executions) {
    if (n.status == NodeStatus::running) {
      n.status = NodeStatus::stopped;
      n.finished_at = at;
    }
  }
}

void WorkflowRun::apply(const RunFailed& e) {
  stop_running_nodes(e.finished_at);
  state_.status = RunStatus::failed;
  state_.error = e.error;
  state_.elapsed_time = e.elapsed_time;
  state_.total_tokens = e.total_tokens;
  state_.total_steps = e.total_steps;
  state_.finished_at = e.finished_at;
}

void WorkflowRun::apply(const RunStopped& e) {
  stop_running_nodes(e.finished_at);
  state_.status = RunStatus::stopped;
  state_.elapsed_time = e.elapsed_time;
  state_.total_tokens = e.total_tokens;
  state_.total_steps = e.total_steps;
  state_.finished_at = e.finished_at;
}

void WorkflowRun::apply(const RunDeleted&) { state_.deleted = true; }

}  // namespace annals
