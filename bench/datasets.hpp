#pragma once

// The benchmark's data: workflow runs whose events carry ~200-byte JSON payloads, written to an
// annals store (through EventStore::append in big batches) and to the baseline's events table.
// Not installed.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/events/event.hpp"

namespace annals::bench {

inline constexpr std::string_view kTenant = "tenant-1";
inline constexpr std::string_view kApp = "app-1";
inline constexpr std::string_view kTrigger = "debugging";
inline constexpr std::size_t kPayloadBytes = 200;

// "run-00000042".
[[nodiscard]] std::string run_id(std::size_t run);
// "WorkflowRun-run-00000042".
[[nodiscard]] std::string stream_id(std::size_t run);
// When run `run` was created: runs are created 1 ms apart, so run n is the newest.
[[nodiscard]] Timestamp created_at(std::size_t run);

// JSON texts for inputs/outputs, sized so each event's payload is about kPayloadBytes.
struct Texts {
  std::string run_inputs, node_inputs, node_outputs, run_outputs;
};
[[nodiscard]] const Texts& texts();

// Event `version` (1-based) of a run with `events` events: 1 is RunCreated, the last (when
// events > 1) RunSucceeded, in between NodeStarted/NodeCompleted pairs. events must be 1 or even.
[[nodiscard]] NewEvent run_event(std::size_t run, std::size_t events, std::size_t version);
// Its type name, without encoding it.
[[nodiscard]] std::string_view run_event_type(std::size_t events, std::size_t version);

// The same run driven through WorkflowRun's commands: create() and the command raising event
// `version` (2..events), for the write workloads. Timestamps come from the system clock.
[[nodiscard]] WorkflowRun create_run(std::size_t run);
void raise_event(WorkflowRun& aggregate, std::size_t run, std::size_t events, std::size_t version);

// The baseline's rows: the same type names, fixed ~200-byte payloads per type.
[[nodiscard]] const std::string& raw_payload(std::string_view type);
// A UUID-shaped text made from a counter (the baseline does not draw random ids).
[[nodiscard]] std::string raw_event_id(std::uint64_t n);

// Writes `runs` runs of `events_per_run` events to a new annals store at `file`
// (synchronous=normal), with the WorkflowProjection inline when `with_projection`.
void build_annals_dataset(const std::filesystem::path& file, std::size_t runs,
                          std::size_t events_per_run, bool with_projection);
// The same into the (new, empty) store at `uri`, e.g. a PostgreSQL schema.
void build_annals_dataset_at(const std::string& uri, std::size_t runs, std::size_t events_per_run,
                             bool with_projection);
// The same rows to a new baseline events table at `file`.
void build_raw_dataset(const std::filesystem::path& file, std::size_t runs,
                       std::size_t events_per_run);

// "sqlite:<file>?synchronous=normal|full".
[[nodiscard]] std::string store_uri(const std::filesystem::path& file, bool synchronous_full);

}  // namespace annals::bench
