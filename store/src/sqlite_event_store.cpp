// The SQLite backend. One writer connection behind a mutex does every append in a
// BEGIN IMMEDIATE transaction (so appends from other processes queue on the file lock, up to
// the busy timeout); reads go to a pool of read-only connections, each of which sees the
// last committed snapshot of the WAL. Positions are assigned as head + 1 inside the write
// transaction, so they are gap-free in every snapshot a reader can take.

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <filesystem>
#include <mutex>

#include "store_internal.hpp"

namespace annals::detail {
namespace {

constexpr int kApplicationId = 0x414e4e4c;  // "ANNL" in the file header: this file is ours
constexpr int kSchemaVersion = 1;           // PRAGMA user_version of the files this build writes

constexpr const char* kSchema = R"sql(
CREATE TABLE annals_events (
  position        INTEGER PRIMARY KEY,
  stream_id       TEXT    NOT NULL,
  version         INTEGER NOT NULL CHECK (version >= 1),
  event_id        TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
  payload_format  TEXT    NOT NULL CHECK (payload_format IN ('json', 'binary')),
  payload         BLOB    NOT NULL,
  tenant_id       TEXT    NOT NULL,
  actor           TEXT    NOT NULL,
  correlation_id  TEXT    NOT NULL,
  causation_id    TEXT    NOT NULL,
  occurred_at     INTEGER NOT NULL,
  recorded_at     INTEGER NOT NULL,
  UNIQUE (stream_id, version),
  UNIQUE (event_id)
);
CREATE TRIGGER annals_events_no_update BEFORE UPDATE ON annals_events
BEGIN SELECT RAISE(ABORT, 'annals_events is append-only'); END;
CREATE TRIGGER annals_events_no_delete BEFORE DELETE ON annals_events
BEGIN SELECT RAISE(ABORT, 'annals_events is append-only'); END;
)sql";

constexpr const char* kColumns =
    "position, stream_id, version, event_id, type, schema_version, payload_format, payload, "
    "tenant_id, actor, correlation_id, causation_id, occurred_at, recorded_at";

// Resets a cached statement on entry and on every exit, so an exception never leaves it
// mid-step (which would hold a read snapshot or a lock).
class StatementUse {
 public:
  explicit StatementUse(SQLite::Statement& s) noexcept : s_(s) { s_.tryReset(); }
  ~StatementUse() { s_.tryReset(); }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;
  SQLite::Statement* operator->() noexcept { return &s_; }
  SQLite::Statement& operator*() noexcept { return s_; }

 private:
  SQLite::Statement& s_;
};

std::int64_t sql_limit(std::size_t max_count) {
  return max_count > static_cast<std::size_t>(INT64_MAX) ? -1
                                                         : static_cast<std::int64_t>(max_count);
}

// The one place SQLite's errors become annals errors.
[[noreturn]] void throw_store_error(const std::string& context, const SQLite::Exception& e) {
  const int code = e.getErrorCode();
  std::string message = context + ": " + e.what() + " (SQLite error " +
                        std::to_string(e.getExtendedErrorCode()) + ")";
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    throw StoreError(message + "; the database stayed locked past the busy timeout, retry later");
  }
  if (code == SQLITE_CORRUPT) throw IntegrityError(message);
  throw StoreError(message);
}

RecordedEvent read_row(SQLite::Statement& s) {
  RecordedEvent r;
  r.position = static_cast<std::uint64_t>(s.getColumn(0).getInt64());
  r.stream_id = s.getColumn(1).getString();
  r.version = static_cast<std::uint64_t>(s.getColumn(2).getInt64());
  const std::string event_id = s.getColumn(3).getString();
  r.type = s.getColumn(4).getString();
  r.schema_version = static_cast<std::uint32_t>(s.getColumn(5).getInt64());
  const std::string format = s.getColumn(6).getString();
  r.payload = s.getColumn(7).getString();
  r.metadata.tenant_id = s.getColumn(8).getString();
  r.metadata.actor = s.getColumn(9).getString();
  r.metadata.correlation_id = s.getColumn(10).getString();
  r.metadata.causation_id = s.getColumn(11).getString();
  r.metadata.occurred_at = from_micros(s.getColumn(12).getInt64());
  r.recorded_at = from_micros(s.getColumn(13).getInt64());
  try {
    r.event_id = parse_uuid(event_id);
    r.payload_format = parse_payload_format(format);
  } catch (const InvalidArgument& e) {
    throw IntegrityError("event at position " + std::to_string(r.position) + " in stream " +
                         r.stream_id + " is damaged: " + e.what());
  }
  return r;
}

SQLite::Database open_connection(const std::string& path, int flags, const StoreOptions& options) {
  SQLite::Database db(path, flags | SQLite::OPEN_NOMUTEX,
                      static_cast<int>(options.busy_timeout.count()));
  return db;
}

// Opens the writer connection and makes sure the file is an annals store of a version this
// build understands, creating the schema in an empty file. A file that is not ours is left
// exactly as it was.
SQLite::Database open_writer(const std::string& path, const StoreOptions& options,
                             const std::string& context) {
  const std::filesystem::path fs_path(path);
  const std::filesystem::path parent =
      fs_path.has_parent_path() ? fs_path.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec)) {
    throw StoreError(context + ": directory '" + parent.string() + "' does not exist");
  }
  if (std::filesystem::is_directory(fs_path, ec)) {
    throw StoreError(context + ": '" + path + "' is a directory, expected a database file");
  }

  SQLite::Database db =
      open_connection(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, options);
  auto inspect = [&db, &context] {
    const int app_id = db.execAndGet("PRAGMA application_id").getInt();
    const int user_version = db.execAndGet("PRAGMA user_version").getInt();
    const int objects = db.execAndGet("SELECT count(*) FROM sqlite_schema").getInt();
    if (app_id == kApplicationId) {
      if (user_version > kSchemaVersion) {
        throw StoreError(context + ": the store has schema version " +
                         std::to_string(user_version) +
                         ", newer than this build of annals supports (" +
                         std::to_string(kSchemaVersion) + "); upgrade annals to open it");
      }
      if (user_version < 1) {
        throw StoreError(context + ": the store's schema version is " +
                         std::to_string(user_version) + ", expected 1 to " +
                         std::to_string(kSchemaVersion));
      }
      return false;  // ours and current
    }
    if (app_id != 0 || objects != 0) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(app_id));
      throw StoreError(context +
                       ": the file is an SQLite database but not an annals store "
                       "(application_id " +
                       std::string(hex) + ", " + std::to_string(objects) +
                       " schema objects); refusing to touch it");
    }
    return true;  // empty: needs the schema
  };

  try {
    if (inspect()) {
      // Only an empty file reaches here: switching it to WAL changes nothing of anyone's.
      db.exec("PRAGMA journal_mode=WAL");
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      if (inspect()) {  // another process may have created it while we waited for the lock
        db.exec(kSchema);
        db.exec("PRAGMA application_id=" + std::to_string(kApplicationId));
        db.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
      }
      tx.commit();
    }
    const std::string mode = db.execAndGet("PRAGMA journal_mode=WAL").getString();
    if (mode != "wal") {
      throw StoreError(context + ": could not switch the database to WAL mode (journal mode is " +
                       mode + ")");
    }
    db.exec(options.synchronous == Synchronous::full ? "PRAGMA synchronous=FULL"
                                                     : "PRAGMA synchronous=NORMAL");
  } catch (const SQLite::Exception& e) {
    if (e.getErrorCode() == SQLITE_NOTADB) {
      throw StoreError(context + ": the file is not an SQLite database, so not an annals store");
    }
    throw_store_error(context, e);
  }
  return db;
}

class SqliteEventStore final : public EventStore {
 public:
  SqliteEventStore(const std::string& path, const StoreOptions& options)
      : path_(path),
        context_("sqlite:" + path),
        options_(options),
        writer_(open_writer(path, options, "open " + context_)),
        head_(writer_, "SELECT coalesce(max(position), 0) FROM annals_events"),
        stream_version_(writer_, "SELECT max(version) FROM annals_events WHERE stream_id = ?1"),
        insert_(writer_,
                "INSERT INTO annals_events (" + std::string(kColumns) +
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)") {}

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    return append(single_stream(stream_id, expected, std::move(events)));
  }

  AppendResult append(std::vector<StreamAppend> batch) override {
    validate_batch(batch);
    for (StreamAppend& part : batch) {
      for (NewEvent& e : part.events) {
        if (e.event_id.is_nil()) e.event_id = new_event_id();
      }
    }
    const Timestamp recorded_at = read_clock(options_);
    const std::string first_stream = batch.front().stream_id;

    std::lock_guard lock(write_mutex_);
    const std::string* current_stream = &first_stream;
    const NewEvent* current_event = nullptr;
    try {
      SQLite::Transaction tx(writer_, SQLite::TransactionBehavior::IMMEDIATE);
      std::uint64_t position = 0;
      {
        StatementUse head(head_);
        head->executeStep();
        position = static_cast<std::uint64_t>(head->getColumn(0).getInt64());
      }
      AppendResult result{position + 1, 0, 0};
      for (const StreamAppend& part : batch) {
        current_stream = &part.stream_id;
        std::optional<std::uint64_t> actual;
        {
          StatementUse q(stream_version_);
          q->bindNoCopy(1, part.stream_id);
          q->executeStep();
          if (!q->getColumn(0).isNull()) actual = q->getColumn(0).getInt64();
        }
        check_expected(part.stream_id, part.expected, actual);
        std::uint64_t version = actual.value_or(0);
        for (const NewEvent& e : part.events) {
          current_event = &e;
          const std::string event_id = to_string(e.event_id);
          StatementUse ins(insert_);
          ins->bind(1, static_cast<std::int64_t>(++position));
          ins->bindNoCopy(2, part.stream_id);
          ins->bind(3, static_cast<std::int64_t>(++version));
          ins->bindNoCopy(4, event_id);
          ins->bindNoCopy(5, e.type);
          ins->bind(6, static_cast<std::int64_t>(e.schema_version));
          ins->bindNoCopy(7, e.payload_format == PayloadFormat::json ? "json" : "binary");
          if (e.payload_format == PayloadFormat::json) {
            ins->bindNoCopy(8, e.payload);  // TEXT, so json_extract() reads it
          } else {
            ins->bindNoCopy(8, e.payload.data(), static_cast<int>(e.payload.size()));
          }
          ins->bindNoCopy(9, e.metadata.tenant_id);
          ins->bindNoCopy(10, e.metadata.actor);
          ins->bindNoCopy(11, e.metadata.correlation_id);
          ins->bindNoCopy(12, e.metadata.causation_id);
          ins->bind(13, to_micros(e.metadata.occurred_at));
          ins->bind(14, to_micros(recorded_at));
          ins->exec();
        }
        result.stream_version = version;
      }
      result.last_position = position;
      tx.commit();
      return result;
    } catch (const SQLite::Exception& e) {
      if (e.getExtendedErrorCode() == SQLITE_CONSTRAINT_UNIQUE && current_event != nullptr) {
        if (std::string_view(e.what()).find("event_id") != std::string_view::npos) {
          throw_duplicate_event_id(*current_stream, current_event->event_id);
        }
        // (stream_id, version) can only clash if another writer bypassed the lock.
        throw ConcurrencyError("append to " + *current_stream +
                               ": another writer appended the same version (" + e.what() + ")");
      }
      throw_store_error("append to " + *current_stream + " in " + context_, e);
    }
  }

  std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::uint64_t from_version,
                                         std::size_t max_count) const override {
    validate_stream_id(stream_id, "read_stream");
    if (from_version == 0) {
      throw InvalidArgument("read_stream " + std::string(stream_id) +
                            ": from_version 0: versions start at 1");
    }
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    with_reader("read_stream " + std::string(stream_id), [&](Reader& r) {
      StatementUse q(r.read_stream);
      q->bind(1, std::string(stream_id));
      q->bind(2, static_cast<std::int64_t>(std::min<std::uint64_t>(from_version, INT64_MAX)));
      q->bind(3, sql_limit(max_count));
      while (q->executeStep()) out.push_back(read_row(*q));
    });
    return out;
  }

  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    if (from_position == 0) {
      throw InvalidArgument("read_all: from_position 0: positions start at 1");
    }
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    with_reader("read_all", [&](Reader& r) {
      StatementUse q(r.read_all);
      q->bind(1, static_cast<std::int64_t>(std::min<std::uint64_t>(from_position, INT64_MAX)));
      q->bind(2, sql_limit(max_count));
      while (q->executeStep()) out.push_back(read_row(*q));
    });
    return out;
  }

  std::uint64_t head_position() const override {
    std::uint64_t head = 0;
    with_reader("head_position", [&](Reader& r) {
      StatementUse q(r.head);
      q->executeStep();
      head = static_cast<std::uint64_t>(q->getColumn(0).getInt64());
    });
    return head;
  }

  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    validate_stream_id(stream_id, "stream_version");
    std::optional<std::uint64_t> version;
    with_reader("stream_version " + std::string(stream_id), [&](Reader& r) {
      StatementUse q(r.stream_version);
      q->bind(1, std::string(stream_id));
      q->executeStep();
      if (!q->getColumn(0).isNull()) version = q->getColumn(0).getInt64();
    });
    return version;
  }

  PayloadFormat payload_format() const noexcept override { return options_.payload_format; }

 private:
  struct Reader {
    explicit Reader(const std::string& path, const StoreOptions& options)
        : db(open_connection(path, SQLite::OPEN_READONLY, options)),
          read_stream(db, "SELECT " + std::string(kColumns) +
                              " FROM annals_events WHERE stream_id = ?1 AND version >= ?2"
                              " ORDER BY version LIMIT ?3"),
          read_all(db, "SELECT " + std::string(kColumns) +
                           " FROM annals_events WHERE position >= ?1 ORDER BY position LIMIT ?2"),
          head(db, "SELECT coalesce(max(position), 0) FROM annals_events"),
          stream_version(db, "SELECT max(version) FROM annals_events WHERE stream_id = ?1") {}
    SQLite::Database db;  // declared first: destroyed after its statements
    SQLite::Statement read_stream, read_all, head, stream_version;
  };

  // Runs fn on a pooled read connection; SQLite errors become annals errors naming `what`.
  template <class Fn>
  void with_reader(const std::string& what, Fn&& fn) const {
    std::unique_ptr<Reader> reader;
    try {
      {
        std::lock_guard lock(readers_mutex_);
        if (!readers_.empty()) {
          reader = std::move(readers_.back());
          readers_.pop_back();
        }
      }
      if (!reader) reader = std::make_unique<Reader>(path_, options_);
      fn(*reader);
    } catch (const SQLite::Exception& e) {
      throw_store_error(what + " in " + context_, e);
    }
    std::lock_guard lock(readers_mutex_);
    readers_.push_back(std::move(reader));
  }

  const std::string path_;
  const std::string context_;
  const StoreOptions options_;

  std::mutex write_mutex_;  // guards writer_ and the statements below
  SQLite::Database writer_;
  SQLite::Statement head_, stream_version_, insert_;

  mutable std::mutex readers_mutex_;
  mutable std::vector<std::unique_ptr<Reader>> readers_;  // idle read connections
};

}  // namespace

std::shared_ptr<EventStore> make_sqlite_event_store(const std::string& path,
                                                    const StoreOptions& options) {
  try {
    return std::make_shared<SqliteEventStore>(path, options);
  } catch (const SQLite::Exception& e) {
    throw_store_error("open sqlite:" + path, e);
  }
}

}  // namespace annals::detail
