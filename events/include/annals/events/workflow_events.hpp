#pragma once

// The workflow domain's events: what a workflow engine records about a run and its node
// executions. Each is a plain struct with a stable kType, a kSchemaVersion and a cereal
// serialize() naming every field, so a JSON payload reads as
//   {"run_id": "r-1", "tenant_id": "t-1", ...}
// and an auditor can query it with json_extract(payload, '$.tenant_id').
//
// inputs/outputs are JSON text owned by the workflow engine; annals stores them verbatim.
// elapsed_time is in seconds. Timestamps are microseconds since the epoch.

#include <cereal/cereal.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "annals/events/event.hpp"

namespace annals {

struct RunCreated {
  static constexpr std::string_view kType = "RunCreated";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{}, tenant_id{}, app_id{}, workflow_id{}, triggered_from{}, created_by{};
  std::string inputs{};  // JSON text
  Timestamp created_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("tenant_id", tenant_id),
       cereal::make_nvp("app_id", app_id), cereal::make_nvp("workflow_id", workflow_id),
       cereal::make_nvp("triggered_from", triggered_from),
       cereal::make_nvp("created_by", created_by), cereal::make_nvp("inputs", inputs),
       cereal::make_nvp("created_at", created_at));
  }
  friend bool operator==(const RunCreated&, const RunCreated&) = default;
};

struct NodeStarted {
  static constexpr std::string_view kType = "NodeStarted";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{};
  std::string node_execution_id{};  // unique within the tenant
  std::uint32_t index = 0;          // 1-based order of execution within the run
  std::string node_id{}, node_type{}, title{};
  std::string predecessor_node_id{};  // empty for the first node
  std::string inputs{};               // JSON text
  Timestamp started_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("node_execution_id", node_execution_id),
       cereal::make_nvp("index", index), cereal::make_nvp("node_id", node_id),
       cereal::make_nvp("node_type", node_type), cereal::make_nvp("title", title),
       cereal::make_nvp("predecessor_node_id", predecessor_node_id),
       cereal::make_nvp("inputs", inputs), cereal::make_nvp("started_at", started_at));
  }
  friend bool operator==(const NodeStarted&, const NodeStarted&) = default;
};

struct NodeCompleted {
  static constexpr std::string_view kType = "NodeCompleted";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{}, node_execution_id{};
  std::string outputs{};  // JSON text
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  Timestamp finished_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("node_execution_id", node_execution_id),
       cereal::make_nvp("outputs", outputs), cereal::make_nvp("elapsed_time", elapsed_time),
       cereal::make_nvp("total_tokens", total_tokens),
       cereal::make_nvp("finished_at", finished_at));
  }
  friend bool operator==(const NodeCompleted&, const NodeCompleted&) = default;
};

struct NodeFailed {
  static constexpr std::string_view kType = "NodeFailed";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{}, node_execution_id{};
  std::string error{};
  std::string outputs{};  // JSON text; may be empty
  double elapsed_time = 0;
  Timestamp finished_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("node_execution_id", node_execution_id),
       cereal::make_nvp("error", error), cereal::make_nvp("outputs", outputs),
       cereal::make_nvp("elapsed_time", elapsed_time),
       cereal::make_nvp("finished_at", finished_at));
  }
  friend bool operator==(const NodeFailed&, const NodeFailed&) = default;
};

struct RunSucceeded {
  static constexpr std::string_view kType = "RunSucceeded";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{};
  std::string outputs{};  // JSON text
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  std::uint32_t total_steps = 0;
  Timestamp finished_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("outputs", outputs),
       cereal::make_nvp("elapsed_time", elapsed_time),
       cereal::make_nvp("total_tokens", total_tokens), cereal::make_nvp("total_steps", total_steps),
       cereal::make_nvp("finished_at", finished_at));
  }
  friend bool operator==(const RunSucceeded&, const RunSucceeded&) = default;
};

struct RunFailed {
  static constexpr std::string_view kType = "RunFailed";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{};
  std::string error{};
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  std::uint32_t total_steps = 0;
  Timestamp finished_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("error", error),
       cereal::make_nvp("elapsed_time", elapsed_time),
       cereal::make_nvp("total_tokens", total_tokens), cereal::make_nvp("total_steps", total_steps),
       cereal::make_nvp("finished_at", finished_at));
  }
  friend bool operator==(const RunFailed&, const RunFailed&) = default;
};

struct RunStopped {
  static constexpr std::string_view kType = "RunStopped";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{};
  std::string stopped_by{};
  std::string reason{};
  double elapsed_time = 0;
  std::uint64_t total_tokens = 0;
  std::uint32_t total_steps = 0;
  Timestamp finished_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("stopped_by", stopped_by),
       cereal::make_nvp("reason", reason), cereal::make_nvp("elapsed_time", elapsed_time),
       cereal::make_nvp("total_tokens", total_tokens), cereal::make_nvp("total_steps", total_steps),
       cereal::make_nvp("finished_at", finished_at));
  }
  friend bool operator==(const RunStopped&, const RunStopped&) = default;
};

struct RunDeleted {
  static constexpr std::string_view kType = "RunDeleted";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id{};
  std::string deleted_by{};
  std::string reason{};
  Timestamp deleted_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("deleted_by", deleted_by),
       cereal::make_nvp("reason", reason), cereal::make_nvp("deleted_at", deleted_at));
  }
  friend bool operator==(const RunDeleted&, const RunDeleted&) = default;
};

// Every event a WorkflowRun stream may hold.
using WorkflowRunEvent = std::variant<RunCreated, NodeStarted, NodeCompleted, NodeFailed,
                                      RunSucceeded, RunFailed, RunStopped, RunDeleted>;

// The payload of a recorded workflow event as JSON text (decoded in whichever format it was
// stored in, then encoded as JSON), or nullopt when the record is not a WorkflowRunEvent of a
// schema version this build reads or its payload does not decode. Never throws annals errors.
// Made for ExportOptions::payload_json, so an export shows binary payloads readably.
[[nodiscard]] std::optional<std::string> workflow_payload_json(const RecordedEvent& event);

}  // namespace annals
