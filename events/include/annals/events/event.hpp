#pragma once

// The event envelope: what an application hands to the store (NewEvent) and what the
// store hands back (RecordedEvent).
//
//   annals::NewEvent e{.type = "RunCreated", .payload = R"({"run_id":"42"})"};
//   store->append("WorkflowRun-42", annals::ExpectedVersion::no_stream(), {e});
//   for (const annals::RecordedEvent& r : store->read_stream("WorkflowRun-42")) ...
//
// All types here are plain values: copyable, movable, and safe to use from any thread
// as long as one object is not mutated concurrently.

#include <array>
#include <boost/uuid/uuid.hpp>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace annals {

// Microseconds since the Unix epoch, UTC. Stored as a 64-bit integer everywhere.
using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

// How a payload's bytes are encoded. The stored record says which, so a log may hold both.
//   json:   cereal JSON, named fields; readable with SQLite's json_extract().
//   binary: cereal portable binary; smaller and faster, opaque to SQL.
enum class PayloadFormat : std::uint8_t { json = 0, binary = 1 };

// "json" or "binary".
[[nodiscard]] std::string_view to_string(PayloadFormat format) noexcept;
// Parses "json" or "binary". Throws InvalidArgument naming the value otherwise.
[[nodiscard]] PayloadFormat parse_payload_format(std::string_view text);

// A SHA-256 digest.
using EventHash = std::array<std::uint8_t, 32>;

// Lowercase hex, 64 characters.
[[nodiscard]] std::string to_hex(const EventHash& hash);

struct EventMetadata {
  std::string tenant_id{};
  std::string actor{};           // who caused it
  std::string correlation_id{};  // the business transaction it belongs to
  std::string causation_id{};    // the command or event that caused it
  Timestamp occurred_at{};       // when it happened in the domain (not when it was stored)

  friend bool operator==(const EventMetadata&, const EventMetadata&) = default;
};

struct NewEvent {
  boost::uuids::uuid event_id{};  // random if the caller leaves it nil; unique in a store
  std::string type{};             // stable name, e.g. "RunCreated"; never empty
  std::uint32_t schema_version = 1;
  std::string payload{};  // serialized bytes, encoded as payload_format says
  EventMetadata metadata{};
  PayloadFormat payload_format = PayloadFormat::json;  // json payloads must be valid JSON
};

struct RecordedEvent {
  std::uint64_t position = 0;  // global: 1-based, strictly increasing, no gaps a reader can see
  std::string stream_id{};
  std::uint64_t version = 0;  // 1-based within its stream
  boost::uuids::uuid event_id{};
  std::string type{};
  std::uint32_t schema_version = 1;
  std::string payload{};
  EventMetadata metadata{};
  Timestamp recorded_at{};  // when the store committed it
  PayloadFormat payload_format = PayloadFormat::json;
  // SHA-256 of the previous event's hash and this event's canonical encoding: the log's hash
  // chain (docs/audit.md). All zero for an event that was never stored.
  EventHash hash{};

  friend bool operator==(const RecordedEvent&, const RecordedEvent&) = default;
};

// A fresh random (version 4) UUID. Thread-safe.
[[nodiscard]] boost::uuids::uuid new_event_id();

// The canonical lowercase 36-character form, e.g. "0d5b...-...".
[[nodiscard]] std::string to_string(const boost::uuids::uuid& id);

// Parses the canonical form. Throws InvalidArgument naming the text when it is not a UUID.
[[nodiscard]] boost::uuids::uuid parse_uuid(std::string_view text);

// Microseconds since the epoch <-> Timestamp, for storage and wire formats.
[[nodiscard]] constexpr std::int64_t to_micros(Timestamp t) noexcept {
  return t.time_since_epoch().count();
}
[[nodiscard]] constexpr Timestamp from_micros(std::int64_t micros) noexcept {
  return Timestamp{std::chrono::microseconds{micros}};
}

// The current time, truncated to microseconds.
[[nodiscard]] Timestamp now() noexcept;

// True if text is one well-formed JSON value (RFC 8259), as json payloads must be: valid
// UTF-8, no NaN/Infinity, numbers within double's range, no byte order mark, nothing after the
// value but whitespace. Cost: one pass, no allocation for documents under a few KB.
[[nodiscard]] bool is_json_document(std::string_view text) noexcept;

// ISO 8601 in UTC with microseconds, e.g. "2026-11-21T09:30:00.000123Z".
[[nodiscard]] std::string format_timestamp(Timestamp t);

// A typed event: a plain struct with a stable name, a schema version and a cereal
// serialize() that names every field with cereal::make_nvp.
//
//   struct RunStopped {
//     static constexpr std::string_view kType = "RunStopped";
//     static constexpr std::uint32_t kSchemaVersion = 1;
//     std::string run_id;
//     template <class Archive> void serialize(Archive& ar) { ar(cereal::make_nvp("run_id",
//     run_id)); }
//   };
template <class E>
concept TypedEvent = std::default_initializable<E> && std::copy_constructible<E> && requires {
  { E::kType } -> std::convertible_to<std::string_view>;
  { E::kSchemaVersion } -> std::convertible_to<std::uint32_t>;
};

}  // namespace annals
