#pragma once

// The hash-chain test vector documented in docs/audit.md and docs/export-format.md: one event,
// the chain hash before it (32 bytes of 0x11) and its expected hash. Tests that check a
// documented format against it share this one copy.

#include "annals/events/event.hpp"
#include "annals/store/hash_chain.hpp"

namespace annals::test {

inline constexpr const char* kTestVectorHash =
    "10be3827b7bb975d11a870fca3d37f97a41bbbef389306faa9b4aa3836c8983d";

// The event without its hash (schema version 1, JSON payload: the defaults).
inline RecordedEvent test_vector_event() {
  RecordedEvent e;
  e.position = 7;
  e.stream_id = "WorkflowRun-r-1";
  e.version = 2;
  e.event_id = parse_uuid("123e4567-e89b-12d3-a456-426614174000");
  e.type = "RunStopped";
  e.schema_version = 1;
  e.payload_format = PayloadFormat::json;
  e.payload = R"({"run_id":"r-1"})";
  e.metadata = {"acme", "alice", "r-1", "", from_micros(1'700'000'000'000'001)};
  e.recorded_at = from_micros(1'700'000'000'000'002);
  return e;
}

inline EventHash test_vector_previous_hash() {
  EventHash previous;
  previous.fill(0x11);
  return previous;
}

}  // namespace annals::test
