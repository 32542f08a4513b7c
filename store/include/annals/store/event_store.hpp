#pragma once

// The event store: an append-only log of events grouped into streams.
//
//   auto store = annals::open_event_store("sqlite:/var/lib/app/events.db");
//   store->append("WorkflowRun-42", annals::ExpectedVersion::no_stream(), {created});
//   auto history = store->read_stream("WorkflowRun-42");
//   auto page = store->read_all(/*from_position=*/1, /*max_count=*/1000);
//
// Thread-safety: every EventStore that annals returns is safe to share between threads;
// any number of threads may append and read at once. Appends are serialized per store file
// (SQLite: one writer at a time with BEGIN IMMEDIATE, across processes too; PostgreSQL: LOCK
// TABLE annals_events IN EXCLUSIVE MODE in each append's transaction, across every process using
// the database, see docs/postgresql.md); reads run in parallel on their own connections and see
// only committed events.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/events/event.hpp"

namespace annals {

// What an append expects the stream's version to be before it runs.
class ExpectedVersion {
 public:
  enum class Kind : std::uint8_t { any, no_stream, exactly };

  // Append whatever the stream's version is.
  [[nodiscard]] static ExpectedVersion any() noexcept { return ExpectedVersion(Kind::any, 0); }
  // The stream must not exist yet.
  [[nodiscard]] static ExpectedVersion no_stream() noexcept {
    return ExpectedVersion(Kind::no_stream, 0);
  }
  // The stream must be at exactly this version. exactly(0) means the same as no_stream().
  [[nodiscard]] static ExpectedVersion exactly(std::uint64_t version) noexcept {
    return version == 0 ? no_stream() : ExpectedVersion(Kind::exactly, version);
  }

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  // The version for exactly(n); 0 otherwise.
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }
  // True if a stream whose current version is `actual` (nullopt: no stream) satisfies it.
  [[nodiscard]] bool matches(std::optional<std::uint64_t> actual) const noexcept;
  // "any", "no stream" or "version N", as used in error messages.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const ExpectedVersion&, const ExpectedVersion&) = default;

 private:
  ExpectedVersion(Kind kind, std::uint64_t version) noexcept : kind_(kind), version_(version) {}
  Kind kind_;
  std::uint64_t version_;
};

// One stream's part of an all-or-nothing batch append.
struct StreamAppend {
  std::string stream_id{};
  ExpectedVersion expected = ExpectedVersion::any();
  std::vector<NewEvent> events{};
};

struct AppendResult {
  std::uint64_t first_position = 0;  // position of the first event written
  std::uint64_t last_position = 0;   // position of the last event written
  std::uint64_t stream_version = 0;  // the (last) stream's version after the append
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends events to one stream in one transaction, if the stream's version matches
  // `expected`. Returns the positions written and the stream's new version.
  // Throws ConcurrencyError (naming stream, expected and actual version) on a mismatch,
  // InvalidArgument for an empty stream id, no events, an empty type, schema version 0, a json
  // payload that is not JSON, a stream id, type or metadata text that is not UTF-8, or an event
  // id already in the store; StoreError when the
  // store cannot write. On any exception nothing was written.
  virtual AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                              std::vector<NewEvent> events) = 0;

  // Appends to several streams in one transaction: all parts are written or none is.
  // Parts are checked and written in order, so a later part for the same stream sees the
  // earlier one. The result's stream_version is that of the last part.
  virtual AppendResult append(std::vector<StreamAppend> batch) = 0;

  // Up to max_count events of one stream from from_version (1-based) on, in version order.
  // Empty if the stream does not exist. InvalidArgument if from_version is 0.
  [[nodiscard]] virtual std::vector<RecordedEvent> read_stream(
      std::string_view stream_id, std::uint64_t from_version = 1,
      std::size_t max_count = SIZE_MAX) const = 0;

  // Up to max_count events of the whole log from from_position (1-based) on, in position
  // order. InvalidArgument if from_position is 0.
  [[nodiscard]] virtual std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                                            std::size_t max_count) const = 0;

  // The position of the last committed event; 0 when the log is empty.
  [[nodiscard]] virtual std::uint64_t head_position() const = 0;

  // The stream's current version, or nullopt if it has no events.
  [[nodiscard]] virtual std::optional<std::uint64_t> stream_version(
      std::string_view stream_id) const = 0;

  // The payload format this store was opened with; repositories encode new events in it.
  [[nodiscard]] virtual PayloadFormat payload_format() const noexcept {
    return PayloadFormat::json;
  }
};

// How SQLite makes a commit durable (PRAGMA synchronous in WAL mode). On PostgreSQL, full is
// synchronous_commit=on and normal is synchronous_commit=off (a server crash may lose the most
// recent acknowledged commits, never corrupts).
//   full:   the WAL is fsync'ed at every commit: an acknowledged append survives a process
//           crash and a power loss or OS crash (if the disk keeps what it acknowledged to
//           fsync). The default.
//   normal: the WAL is fsync'ed only at checkpoints: an acknowledged append survives a process
//           crash; a power loss may roll back the most recent commits (never corrupts).
enum class Synchronous : std::uint8_t { full, normal };

struct StoreOptions {
  PayloadFormat payload_format = PayloadFormat::json;
  Synchronous synchronous = Synchronous::full;
  // How long a writer waits for the file lock (PostgreSQL: the log's table lock).
  std::chrono::milliseconds busy_timeout{5000};
  // Source of recorded_at; the system clock when empty. Inject a fixed clock in tests.
  std::function<Timestamp()> clock{};
  // Group commit: appends made at the same time by several threads on one store object share
  // one transaction (one fsync), each still checked and refused on its own. Every append
  // still returns only after its own events are committed. Off: one transaction per append.
  bool group_commit = true;
  // The name of a registered SQLite VFS (sqlite3_vfs_register) every connection of the store
  // uses, e.g. a test's fault-injecting shim; empty: SQLite's default. An unknown name is an
  // InvalidArgument naming it.
  std::string vfs{};
};

// Opens (creating if needed) an event store.
//   "sqlite:<path>"  a SQLite file in WAL mode; the schema is created on first open.
//   "memory:"        in-process, same semantics, gone when the last reference goes.
//   "postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]" (or postgres://)
//   "host=/run/postgresql port=5432 dbname=annals ..."  (a libpq keyword string: recognised
//                    by its first token being `word=`)
//                    a PostgreSQL database through libpq, in builds made with it (otherwise an
//                    InvalidArgument saying so); the tables are created on first open in the
//                    connection's current_schema() (select one with options=-csearch_path=NAME).
//                    Every libpq parameter other than annals' options goes to libpq unchanged.
// Options may follow a '?' (for a keyword string: as more keywords), overriding `options`:
//   payload=json|binary, synchronous=full|normal, busy_timeout_ms=N, group_commit=on|off,
//   vfs=NAME (SQLite only: an InvalidArgument on a postgres URI)
//   e.g. "sqlite:/data/events.db?payload=binary&synchronous=normal",
//        "postgresql://app@db1/annals?payload=binary", "host=db1 dbname=annals payload=binary".
// On PostgreSQL: synchronous=full is synchronous_commit=on, normal is synchronous_commit=off
// (a server crash may lose the last few hundred milliseconds of acknowledged appends, never
// corrupts); busy_timeout_ms is the lock_timeout an append waits for the log's table lock
// (0: fail at once if another transaction holds it); group_commit works as on SQLite.
// Messages never show a password (see redact_store_uri).
// Throws InvalidArgument for an unknown scheme, option or VFS (naming it), StoreError when the
// file or server cannot be opened, is not an annals store, or was written by a newer annals.
[[nodiscard]] std::shared_ptr<EventStore> open_event_store(std::string_view uri);
[[nodiscard]] std::shared_ptr<EventStore> open_event_store(std::string_view uri,
                                                           const StoreOptions& options);

// A store URI taken apart: what open_event_store would open, without opening anything.
struct StoreUri {
  std::string scheme{};      // "sqlite", "memory" or "postgresql" (for all three spellings)
  // The file of a sqlite: URI; empty for memory:; for postgresql, the libpq connection string
  // without annals' options: the URI as given (postgresql:// or postgres://) with them taken
  // out of its query, or the keyword string rewritten as key=value pairs separated by one
  // space (values quoted as libpq quotes them when needed).
  std::string path{};
  StoreOptions options{};    // the `base` options with the URI's options applied
};

// Parses and checks a store URI exactly as open_event_store does, touching no file or server:
// throws InvalidArgument (naming the URI, its password redacted, and what is wrong) for every
// URI open_event_store refuses before opening a file or connecting. (A postgres URI parses in a
// build without PostgreSQL support too; open_event_store refuses it.) Thread-safe.
[[nodiscard]] StoreUri parse_store_uri(std::string_view uri, const StoreOptions& base = {});

// The URI of `uri` with every option spelled out, e.g.
// "memory:?payload=json&synchronous=full&busy_timeout_ms=5000&group_commit=on", then
// "&vfs=NAME" when a VFS is named. For postgresql the options follow the path: in its query for
// a postgresql:// path ("postgresql://h/db?payload=json&synchronous=full&..."), as keywords
// after a space for a keyword string ("host=h payload=json synchronous=full ..."). Parsing it
// gives the same scheme, path and options (the clock aside, which a URI cannot carry). It keeps
// the password: print redact_store_uri() of it. Throws InvalidArgument for a vfs name holding a
// '&', a vfs on a postgresql URI, or a postgresql path that is no connection string.
[[nodiscard]] std::string format_store_uri(const StoreUri& uri);

// `uri` with its password (postgresql://user:PASSWORD@..., ?password=..., password=...) replaced
// by "***", for messages and output; other URIs are returned unchanged. Never throws for a
// malformed URI (a keyword string libpq could not split is cut after its first password=).
[[nodiscard]] std::string redact_store_uri(std::string_view uri);

}  // namespace annals
