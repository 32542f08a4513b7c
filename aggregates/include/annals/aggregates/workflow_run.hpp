#pragma once

// WorkflowRun: one execution of a workflow, with its node executions as entities inside it.
// Stream id "WorkflowRun-" + run_id.
//
//   auto run = annals::WorkflowRun::create({.run_id = "r-1", .tenant_id = "t-1", .app_id = "a-1",
//                                           .workflow_id = "w-1", .triggered_from = "debugging",
//                                           .created_by = "alice", .inputs = "{}"});
//   run.start_node({.node_execution_id = "n-1", .node_id = "start", .node_type = "start"});
//   run.complete_node({.node_execution_id = "n-1", .outputs = R"({"x":1})"});
//   run.succeed({.outputs = R"({"x":1})"});
//   repository.save(run);
//
// Invariants, checked by every command (a violation throws InvalidArgument and changes
// nothing): a run is created with run, tenant, app, workflow and trigger ids; a node
// execution id is used once per run; a node completes or fails once and only after it
// started; a run finishes (succeeds, fails or stops) once, succeeds only when no node is
// still running, and accepts no command after it finished, except mark_deleted; a deleted run
// accepts nothing; inputs/outputs, when given, are JSON; nothing finishes before it started.
//
// Metadata: each command stamps its event's metadata. tenant_id defaults to the run's tenant
// (another tenant is rejected), correlation_id to the run id, actor to created_by on
// creation (stopped_by, deleted_by on those commands), occurred_at to the event's own
// timestamp. Timestamps left zero are taken from the system clock.
//
// Snapshots: a WorkflowRun is Snapshottable (aggregate.hpp); snapshot() is WorkflowRunState in
// cereal's portable binary archive, layout kSnapshotSchema.
//
// Thread-safety: none; a WorkflowRun is a value owned by one thread at a time.

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "annals/aggregates/aggregate.hpp"
#include "annals/events/workflow_events.hpp"

namespace annals {

enum class RunStatus : std::uint8_t { running, succeeded, failed, stopped };
// A node still running when its run fails or is stopped ends as `stopped`.
enum class NodeStatus : std::uint8_t { running, succeeded, failed, stopped };

// "running", "succeeded", "failed", "stopped": the words the read models store.
[[nodiscard]] std::string_view to_string(RunStatus status) noexcept;
[[nodiscard]] std::string_view to_string(NodeStatus status) noexcept;

struct NodeExecution {
  std::string id{};  // node_execution_id
  std::uint32_t index = 0;
  std::string node_id{}, node_type{}, title{}, predecessor_node_id{};
  std::string inputs{}, outputs{}, error{};
  NodeStatus status = NodeStatus::running;
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  Timestamp started_at{};
  std::optional<Timestamp> finished_at{};

  friend bool operator==(const NodeExecution&, const NodeExecution&) = default;
};

// Everything a WorkflowRun knows, as a comparable value.
struct WorkflowRunState {
  std::string run_id{}, tenant_id{}, app_id{}, workflow_id{}, triggered_from{}, created_by{};
  std::string inputs{}, outputs{}, error{};
  RunStatus status = RunStatus::running;
  bool deleted = false;
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  std::uint32_t total_steps = 0;
  Timestamp created_at{};
  std::optional<Timestamp> finished_at{};
  std::vector<NodeExecution> node_executions{};  // in the order they started

  friend bool operator==(const WorkflowRunState&, const WorkflowRunState&) = default;
};

class WorkflowRun : public Aggregate<WorkflowRun, WorkflowRunEvent> {
 public:
  static constexpr std::string_view kStreamPrefix = "WorkflowRun-";
  [[nodiscard]] static std::string stream_id_for(std::string_view run_id) {
    return std::string(kStreamPrefix) + std::string(run_id);
  }

  static constexpr std::string_view kAggregateType = "WorkflowRun";
  // The layout of snapshot()'s bytes. Raise it with any change to WorkflowRunState,
  // NodeExecution or the order they are written in (workflow_run.cpp).
  static constexpr std::uint32_t kSnapshotSchema = 1;

  // Starts a new run (version 1, one pending RunCreated).
  [[nodiscard]] static WorkflowRun create(RunCreated created, EventMetadata metadata = {});

  // Commands. run_id and node_execution_id fields left empty are filled in; one that names
  // another run is rejected. Zero counters on finishing (total_steps, total_tokens,
  // elapsed_time) are derived from the node executions and the timestamps.
  void start_node(NodeStarted started, EventMetadata metadata = {});
  void complete_node(NodeCompleted completed, EventMetadata metadata = {});
  void fail_node(NodeFailed failed, EventMetadata metadata = {});
  void succeed(RunSucceeded succeeded = {}, EventMetadata metadata = {});
  void fail(RunFailed failed, EventMetadata metadata = {});
  void stop(RunStopped stopped = {}, EventMetadata metadata = {});
  void mark_deleted(RunDeleted deleted = {}, EventMetadata metadata = {});

  [[nodiscard]] const std::string& id() const noexcept { return state_.run_id; }
  [[nodiscard]] std::string stream_id() const { return stream_id_for(state_.run_id); }
  [[nodiscard]] const WorkflowRunState& state() const noexcept { return state_; }
  [[nodiscard]] RunStatus status() const noexcept { return state_.status; }
  [[nodiscard]] bool is_finished() const noexcept { return state_.status != RunStatus::running; }
  [[nodiscard]] bool is_deleted() const noexcept { return state_.deleted; }
  [[nodiscard]] const std::vector<NodeExecution>& node_executions() const noexcept {
    return state_.node_executions;
  }
  // The node execution with this id, or nullptr.
  [[nodiscard]] const NodeExecution* find_node_execution(std::string_view id) const noexcept;

  // The state as snapshot bytes (pending events included: repositories take snapshots only
  // of saved runs). Costs one pass over the state.
  [[nodiscard]] std::string snapshot() const;
  // A run at stream version `version` with the state in `bytes` (from snapshot() at schema
  // kSnapshotSchema) and nothing pending. Throws SerializationError when the bytes do not
  // decode (truncated, trailing bytes, a length beyond the bytes left, an unknown status) and
  // InvalidArgument for version 0.
  [[nodiscard]] static WorkflowRun from_snapshot(std::string_view bytes, std::uint64_t version);

 private:
  friend class Aggregate<WorkflowRun, WorkflowRunEvent>;
  WorkflowRun() = default;

  // Event handlers, used on raise and on replay. Tolerant of malformed history: they never
  // throw.
  void apply(const RunCreated& e);
  void apply(const NodeStarted& e);
  void apply(const NodeCompleted& e);
  void apply(const NodeFailed& e);
  void apply(const RunSucceeded& e);
  void apply(const RunFailed& e);
  void apply(const RunStopped& e);
  void apply(const RunDeleted& e);

  NodeExecution* node(std::string_view id) noexcept;
  void stop_running_nodes(Timestamp at) noexcept;
  void require_open(std::string_view command) const;
  void require_run_id(std::string& run_id, std::string_view command) const;
  NodeExecution& require_running_node(std::string& run_id, std::string& node_execution_id,
                                      std::string_view command);
  void finish_node_times(const NodeExecution& n, Timestamp& finished_at, double& elapsed_time,
                         Timestamp fallback, std::string_view command) const;
  EventMetadata stamp(EventMetadata metadata, Timestamp occurred_at,
                      std::string_view command) const;
  void fill_totals(double& elapsed_time, std::uint64_t& total_tokens, std::uint32_t& total_steps,
                   Timestamp& finished_at, std::string_view command) const;

  WorkflowRunState state_;

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // Node execution id -> its index in state_.node_executions (the first, should history hold
  // an id twice): lookups by id stay O(1) however long the run.
  std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>> node_slots_;
};

}  // namespace annals
