#pragma once

// Exporting the log as JSON Lines and importing it into an empty store: the form a log leaves
// the system in for audit, backup or migration. docs/export-format.md specifies the line format.
//
//   std::ofstream out("log.jsonl");
//   annals::export_log(*store, out, {.payload_json = annals::workflow_payload_json});
//   std::ifstream in("log.jsonl");
//   annals::import_log(*empty_store, in);   // checks the hash chain line by line
//
// Thread-safety: both may run beside other readers and writers of the store; import_log takes
// the write lock for its whole (single) transaction. Both stream: one page of events (export)
// or one line (import) is held in memory at a time.

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "annals/events/event.hpp"
#include "annals/store/event_store.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

struct ExportOptions {
  std::uint64_t from_position = 1;
  // Asked only for binary payloads: the payload as JSON text when the event's type is known
  // (e.g. annals::workflow_payload_json), nullopt when not. Text that is not JSON counts as
  // nullopt. json payloads are always shown as stored; unset, binary ones are shown as null.
  std::function<std::optional<std::string>(const RecordedEvent&)> payload_json{};
};

struct ExportResult {
  std::uint64_t events = 0;
  std::uint64_t last_position = 0;  // 0 when nothing was exported
  EventHash last_hash{};
};

// Writes one event as one line (with its trailing '\n') in the export format. The building
// block of export_log and of purge archives. Throws SerializationError when the stream id, type
// or a metadata field is not UTF-8 (JSON cannot carry it exactly), StoreError when `out` fails.
void write_export_line(std::ostream& out, const RecordedEvent& event,
                       const ExportOptions& options = {});

// Parses one line of the export format (a trailing '\n' is allowed) back into the event it
// describes: hash included but not checked; the "payload" rendering ignored, the bytes taken
// from payload_base64. Throws InvalidArgument saying what is wrong (not JSON, a missing,
// repeated or unknown key, a value of the wrong type or range, base64 that is not canonical,
// a UUID or hash not in canonical lowercase form); callers add where the line came from.
[[nodiscard]] RecordedEvent parse_export_line(std::string_view line);

// Writes one line per event from options.from_position to the head as it was when the export
// began, in position order, and flushes `out`. Throws InvalidArgument for from_position 0,
// StoreError/IntegrityError from reading, StoreError when `out` fails, SerializationError as
// write_export_line.
ExportResult export_log(const EventStore& store, std::ostream& out,
                        const ExportOptions& options = {});

struct ImportResult {
  std::uint64_t events = 0;
  std::uint64_t head_position = 0;
  EventHash head_hash{};
};

// Imports an export of a whole log (positions from 1) into an empty store in one transaction:
// every line is parsed, its event id, payload (from the base64 bytes) and hash checked against
// the chain, and written with its original position, version and recorded_at, so exporting
// the imported store gives the same bytes. Throws InvalidArgument naming the line number for a
// malformed line, IntegrityError (with the position) for a line that breaks the chain, and
// InvalidArgument if the store is not empty; nothing is written in any of these cases.
// A line is malformed when parse_export_line rejects it, when it does not end with '\n' (a cut
// off input), when its position is not the previous one + 1 (from 1), its version not its
// stream's previous + 1 (from 1), its event id already imported, its recorded_at earlier than
// the previous line's, or when an append would reject the event (stream id, type, schema
// version, payload size, a json payload that is not JSON). StoreError when reading `in` fails.
// Append hooks and commit listeners are not run: rebuild read models after an import.
ImportResult import_log(SqlEventStore& store, std::istream& in);

}  // namespace annals
