#include "annals/aggregates/workflow_run.hpp"

#include <algorithm>
#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "annals/events/printable.hpp"

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
  return std::string(command) + " on WorkflowRun-" + printable(run_id, 1024);
}

void require_field(const std::string& value, std::string_view field, std::string_view context) {
  if (value.empty()) {
    throw InvalidArgument(std::string(context) + ": " + std::string(field) + " is empty");
  }
}

void require_json(const std::string& value, std::string_view field, std::string_view context) {
  if (!value.empty() && !is_json_document(value)) {
    throw InvalidArgument(std::string(context) + ": " + std::string(field) + " '" +
                          printable(value, 60) + "' is not JSON");
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
    throw InvalidArgument(context + ": metadata tenant '" + printable(metadata.tenant_id) +
                          "' differs from the run's tenant '" + printable(created.tenant_id) + "'");
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
  auto it = node_slots_.find(id);
  return it == node_slots_.end() ? nullptr : &state_.node_executions[it->second];
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
    throw InvalidArgument(where(command, state_.run_id) + ": the event names run '" +
                          printable(run_id) + "'");
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
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" +
                          printable(node_execution_id) + "' has not started");
  }
  if (n->status != NodeStatus::running) {
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" +
                          printable(node_execution_id) + "' already " +
                          std::string(to_string(n->status)));
  }
  return *n;
}

EventMetadata WorkflowRun::stamp(EventMetadata metadata, Timestamp occurred_at,
                                 std::string_view command) const {
  if (metadata.tenant_id.empty()) {
    metadata.tenant_id = state_.tenant_id;
  } else if (metadata.tenant_id != state_.tenant_id) {
    throw InvalidArgument(where(command, state_.run_id) + ": metadata tenant '" +
                          printable(metadata.tenant_id) + "' differs from the run's tenant '" +
                          printable(state_.tenant_id) + "'");
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
                            format_timestamp(finished_at) + " is before node execution '" +
                            printable(n.id) + "' started at " + format_timestamp(n.started_at));
    }
    if (n.finished_at && finished_at < *n.finished_at) {
      throw InvalidArgument(where(command, state_.run_id) + ": finished_at " +
                            format_timestamp(finished_at) + " is before node execution '" +
                            printable(n.id) + "' finished at " + format_timestamp(*n.finished_at));
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
    throw InvalidArgument(context + ": node execution '" + printable(started.node_execution_id) +
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
    throw InvalidArgument(where(command, state_.run_id) + ": node execution '" + printable(n.id) +
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
      throw InvalidArgument(where(kCommand, state_.run_id) + ": node execution '" +
                            printable(n.id) + "' is still running");
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
  node_slots_.try_emplace(n.id, state_.node_executions.size());
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

namespace {

// Snapshot layout, schema 1 (WorkflowRun::kSnapshotSchema), in cereal's portable binary archive
// (a byte for the writer's endianness, then little-endian scalars): every field of
// WorkflowRunState in declaration order, then each NodeExecution's in declaration order.
// Strings are a u64 length and the bytes; status enums and bools one byte; doubles 8 bytes;
// timestamps i64 microseconds; an optional a presence byte and the value; the node executions
// a u64 count. Written and read field by field, not through cereal's std::string and
// std::vector loaders, because those size their buffer from the stored length before reading:
// a damaged length would ask for terabytes. Here a length is checked against the bytes left.

class SnapshotWriter {
 public:
  SnapshotWriter() : archive_(out_) {}

  template <class T>
  void scalar(T value) {
    archive_(value);
  }
  void text(const std::string& s) {
    archive_(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
    archive_(cereal::binary_data(s.data(), s.size()));
  }
  void flag(bool b) { scalar<std::uint8_t>(b ? 1 : 0); }
  void time(Timestamp t) { scalar<std::int64_t>(to_micros(t)); }
  void optional_time(const std::optional<Timestamp>& t) {
    flag(t.has_value());
    if (t) time(*t);
  }
  void count(std::size_t n) { archive_(cereal::make_size_tag(static_cast<cereal::size_type>(n))); }

  [[nodiscard]] std::string bytes() const { return out_.str(); }

 private:
  std::ostringstream out_;
  cereal::PortableBinaryOutputArchive archive_;
};

class SnapshotReader {
 public:
  explicit SnapshotReader(std::string_view bytes) : in_(std::string(bytes)), size_(bytes.size()) {
    if (bytes.empty() || static_cast<unsigned char>(bytes.front()) > 1) {
      throw std::runtime_error("no portable binary archive header");
    }
    archive_ = std::make_unique<cereal::PortableBinaryInputArchive>(in_);
  }

  template <class T>
  T scalar() {
    T value{};
    (*archive_)(value);
    return value;
  }
  std::string text() {
    std::string s(length("a string"), '\0');
    (*archive_)(cereal::binary_data(s.data(), s.size()));
    return s;
  }
  bool flag() {
    const auto b = scalar<std::uint8_t>();
    if (b > 1) throw std::runtime_error("a flag byte is " + std::to_string(b) + ", not 0 or 1");
    return b == 1;
  }
  template <class Status>
  Status status() {  // RunStatus and NodeStatus both end at stopped
    const auto v = scalar<std::uint8_t>();
    if (v > static_cast<std::uint8_t>(Status::stopped)) {
      throw std::runtime_error("unknown status " + std::to_string(v));
    }
    return static_cast<Status>(v);
  }
  Timestamp time() { return from_micros(scalar<std::int64_t>()); }
  std::optional<Timestamp> optional_time() {
    if (!flag()) return std::nullopt;
    return time();
  }
  // A count of items that take at least one byte each, so it cannot exceed the bytes left.
  std::size_t count() { return length("a count"); }

  void finish() {
    if (in_.peek() != std::char_traits<char>::eof()) {
      throw std::runtime_error(std::to_string(remaining()) + " trailing bytes after the state");
    }
  }

 private:
  std::size_t length(const char* what) {
    cereal::size_type n = 0;
    (*archive_)(cereal::make_size_tag(n));
    if (n > remaining()) {
      throw std::runtime_error(std::string(what) + " of length " + std::to_string(n) +
                               " runs past the end (" + std::to_string(remaining()) +
                               " bytes left)");
    }
    return static_cast<std::size_t>(n);
  }
  std::size_t remaining() {
    const std::streamoff at = in_.tellg();
    if (at < 0) throw std::runtime_error("the stream failed");
    return size_ - static_cast<std::size_t>(at);
  }

  std::istringstream in_;
  std::size_t size_;
  std::unique_ptr<cereal::PortableBinaryInputArchive> archive_;
};

void write_node(SnapshotWriter& w, const NodeExecution& n) {
  w.text(n.id);
  w.scalar<std::uint32_t>(n.index);
  w.text(n.node_id);
  w.text(n.node_type);
  w.text(n.title);
  w.text(n.predecessor_node_id);
  w.text(n.inputs);
  w.text(n.outputs);
  w.text(n.error);
  w.scalar<std::uint8_t>(static_cast<std::uint8_t>(n.status));
  w.scalar<double>(n.elapsed_time);
  w.scalar<std::uint64_t>(n.total_tokens);
  w.time(n.started_at);
  w.optional_time(n.finished_at);
}

NodeExecution read_node(SnapshotReader& r) {
  NodeExecution n;
  n.id = r.text();
  n.index = r.scalar<std::uint32_t>();
  n.node_id = r.text();
  n.node_type = r.text();
  n.title = r.text();
  n.predecessor_node_id = r.text();
  n.inputs = r.text();
  n.outputs = r.text();
  n.error = r.text();
  n.status = r.status<NodeStatus>();
  n.elapsed_time = r.scalar<double>();
  n.total_tokens = r.scalar<std::uint64_t>();
  n.started_at = r.time();
  n.finished_at = r.optional_time();
  return n;
}

}  // namespace

std::string WorkflowRun::snapshot() const {
  try {
    SnapshotWriter w;
    w.text(state_.run_id);
    w.text(state_.tenant_id);
    w.text(state_.app_id);
    w.text(state_.workflow_id);
    w.text(state_.triggered_from);
    w.text(state_.created_by);
    w.text(state_.inputs);
    w.text(state_.outputs);
    w.text(state_.error);
    w.scalar<std::uint8_t>(static_cast<std::uint8_t>(state_.status));
    w.flag(state_.deleted);
    w.scalar<double>(state_.elapsed_time);
    w.scalar<std::uint64_t>(state_.total_tokens);
    w.scalar<std::uint32_t>(state_.total_steps);
    w.time(state_.created_at);
    w.optional_time(state_.finished_at);
    w.count(state_.node_executions.size());
    for (const NodeExecution& n : state_.node_executions) write_node(w, n);
    return w.bytes();
  } catch (const std::exception& e) {
    throw SerializationError("snapshot of " + stream_id() + ": " + e.what());
  }
}

WorkflowRun WorkflowRun::from_snapshot(std::string_view bytes, std::uint64_t version) {
  if (version == 0) throw InvalidArgument("WorkflowRun::from_snapshot: version is 0");
  WorkflowRun run;
  WorkflowRunState& s = run.state_;
  try {
    SnapshotReader r(bytes);
    s.run_id = r.text();
    s.tenant_id = r.text();
    s.app_id = r.text();
    s.workflow_id = r.text();
    s.triggered_from = r.text();
    s.created_by = r.text();
    s.inputs = r.text();
    s.outputs = r.text();
    s.error = r.text();
    s.status = r.status<RunStatus>();
    s.deleted = r.flag();
    s.elapsed_time = r.scalar<double>();
    s.total_tokens = r.scalar<std::uint64_t>();
    s.total_steps = r.scalar<std::uint32_t>();
    s.created_at = r.time();
    s.finished_at = r.optional_time();
    const std::size_t nodes = r.count();
    for (std::size_t i = 0; i < nodes; ++i) {
      s.node_executions.push_back(read_node(r));
      run.node_slots_.try_emplace(s.node_executions.back().id, i);
    }
    r.finish();
  } catch (const std::exception& e) {
    throw SerializationError("WorkflowRun snapshot at version " + std::to_string(version) + " (" +
                             std::to_string(bytes.size()) + " bytes, schema " +
                             std::to_string(kSnapshotSchema) + ") does not decode: " + e.what());
  }
  run.restore(version);
  return run;
}

}  // namespace annals
