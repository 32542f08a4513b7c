// The PostgreSQL backend. One writer connection behind a mutex does every append and write
// transaction; each takes LOCK TABLE annals_events IN EXCLUSIVE MODE inside its transaction,
// so appends from every connection and process using the database run one at a time. Inside
// the lock the append reads the head, assigns position = head + 1 onwards and chains the hash:
// PostgreSQL makes a commit visible before it releases the transaction's locks, so the next
// writer sees it, positions become visible in order, and a reader at any snapshot sees a prefix
// of the log with no gaps. Readers (plain SELECTs, ACCESS SHARE) are never blocked by the lock.
// docs/postgresql.md has the design and its cost.
//
// Reads go to a small pool of connections (created when needed, at most kMaxReaders idle);
// read_transaction runs in one REPEATABLE READ READ ONLY snapshot. A lost connection is reset
// at its next use.

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <span>
#include <thread>

#include "annals/events/printable.hpp"
#include "annals/store/hash_chain.hpp"
#include "pg_session.hpp"
#include "store_internal.hpp"

namespace annals::detail {
namespace {

using pg::Params;
using pg::Result;

constexpr int kSchemaVersion = 1;  // annals_meta's schema_version of the databases this build writes
constexpr const char* kApplication = "annals";
// pg_advisory_xact_lock keys serializing schema creation, one lock per schema: "anna" in ASCII
// and the hash of the schema's name, so stores created in different schemas at once (tests,
// tenants) do not wait for each other.
constexpr const char* kSchemaLockKey = "1634627169, hashtext(current_schema())";  // 0x616e6e61
constexpr std::size_t kMaxReaders = 4;

constexpr const char* kSchema = R"sql(
CREATE TABLE annals_events (
  position        BIGINT PRIMARY KEY,
  stream_id       TEXT   NOT NULL,
  version         BIGINT NOT NULL CHECK (version >= 1),
  event_id        TEXT   NOT NULL,
  type            TEXT   NOT NULL,
  schema_version  BIGINT NOT NULL CHECK (schema_version >= 1),
  payload_format  TEXT   NOT NULL CHECK (payload_format IN ('json', 'binary')),
  payload         BYTEA  NOT NULL,
  tenant_id       TEXT   NOT NULL,
  actor           TEXT   NOT NULL,
  correlation_id  TEXT   NOT NULL,
  causation_id    TEXT   NOT NULL,
  occurred_at     BIGINT NOT NULL,
  recorded_at     BIGINT NOT NULL,
  hash            BYTEA  NOT NULL,
  CONSTRAINT annals_events_stream_version UNIQUE (stream_id, version),
  CONSTRAINT annals_events_event_id UNIQUE (event_id)
);
CREATE FUNCTION annals_events_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'annals_events is append-only'; END $$;
CREATE TRIGGER annals_events_no_update BEFORE UPDATE ON annals_events
  FOR EACH ROW EXECUTE FUNCTION annals_events_append_only();
CREATE TRIGGER annals_events_no_delete BEFORE DELETE ON annals_events
  FOR EACH ROW EXECUTE FUNCTION annals_events_append_only();
CREATE TRIGGER annals_events_no_truncate BEFORE TRUNCATE ON annals_events
  FOR EACH STATEMENT EXECUTE FUNCTION annals_events_append_only();
CREATE TABLE annals_meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
)sql";

// A quoted SQL identifier ("name", inner quotes doubled), as PQescapeIdentifier makes it.
std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

// The store's own statements, naming its table by the schema found at open: a SET search_path
// run later on a connection by a hook, a write or read transaction's callback cannot point them
// at another schema's log.
struct Statements {
  explicit Statements(const std::string& schema)
      : table(quote_identifier(schema) + ".annals_events"),
        read_all(columns("WHERE position >= $1 ORDER BY position LIMIT $2")),
        read_stream(columns("WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3")),
        head("SELECT coalesce(max(position), 0) FROM " + table),
        stream_version("SELECT max(version) FROM " + table + " WHERE stream_id = $1"),
        // The hash as hex text: independent of the session's bytea_output.
        tail("SELECT position, recorded_at, encode(hash, 'hex') FROM " + table +
             " ORDER BY position DESC LIMIT 1"),
        insert("INSERT INTO " + table + " (" + kEventColumns +
               ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)") {}

  std::string columns(const char* tail_sql) const {
    return std::string("SELECT ") + kEventColumns + " FROM " + table + " " + tail_sql;
  }

  std::string table, read_all, read_stream, head, stream_version, tail, insert;
};

std::int64_t sql_limit(std::size_t max_count) {
  return static_cast<std::int64_t>(std::min<std::size_t>(max_count, INT64_MAX));
}

std::int64_t sql_from(std::uint64_t from) {
  return static_cast<std::int64_t>(std::min<std::uint64_t>(from, INT64_MAX));
}

RecordedEvent read_row(const PGresult* r, int i) {
  const auto text = [&](int c) { return std::string(pg::binary_bytes(r, i, c)); };
  return make_record(static_cast<std::uint64_t>(pg::binary_int(r, i, 0)), text(1),
                     static_cast<std::uint64_t>(pg::binary_int(r, i, 2)), text(3), text(4),
                     static_cast<std::uint32_t>(pg::binary_int(r, i, 5)), text(6), text(7),
                     EventMetadata{text(8), text(9), text(10), text(11),
                                   from_micros(pg::binary_int(r, i, 12))},
                     from_micros(pg::binary_int(r, i, 13)), pg::binary_bytes(r, i, 14));
}

// PostgreSQL text holds no NUL byte: metadata carrying one is refused before anything is
// written (stream ids and types are refused by validate_batch already).
void refuse_nul_metadata(const std::vector<StreamAppend>& batch) {
  for (const StreamAppend& part : batch) {
    for (std::size_t i = 0; i < part.events.size(); ++i) {
      const EventMetadata& m = part.events[i].metadata;
      const std::pair<const char*, const std::string*> fields[] = {
          {"tenant_id", &m.tenant_id},
          {"actor", &m.actor},
          {"correlation_id", &m.correlation_id},
          {"causation_id", &m.causation_id}};
      for (const auto& [name, value] : fields) {
        if (value->find('\0') != std::string::npos) {
          throw InvalidArgument("append to " + printable(part.stream_id, 1024) + ": event " +
                                std::to_string(i + 1) + " of " +
                                std::to_string(part.events.size()) + " has metadata " + name +
                                " '" + printable(*value) +
                                "' holding a NUL byte, which PostgreSQL text cannot store");
        }
      }
    }
  }
}

// Read connections this thread holds, per store (a store's address while it lives): only a
// thread already holding one of the same store may go past that store's pool limit.
thread_local std::vector<std::pair<const void*, int>> t_readers_held;

int& readers_held_of(const void* store) {
  for (auto& [s, n] : t_readers_held) {
    if (s == store) return n;
  }
  return t_readers_held.emplace_back(store, 0).second;
}

class PgEventStore final : public SqlEventStore {
 public:
  PgEventStore(const std::string& conninfo, const StoreOptions& options)
      : conninfo_(conninfo),
        context_("postgresql store '" + printable(redact_store_uri(conninfo), 1024) + "'"),
        options_(options) {
    const std::string where = "open " + context_;
    writer_ = std::make_unique<pg::Connection>(
        conninfo_, where, std::string(kReaderSetup) + (options_.synchronous == Synchronous::full
                                                            ? "SET synchronous_commit = on;"
                                                            : "SET synchronous_commit = off;"),
        options_.busy_timeout);
    prepare_schema(where);
  }

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    return append(single_stream(stream_id, expected, std::move(events)));
  }

  AppendResult append(std::vector<StreamAppend> batch) override {
    validate_batch(batch);
    refuse_nul_metadata(batch);
    refuse_reentry("append to " + printable(batch.front().stream_id, 1024));
    for (StreamAppend& part : batch) {
      for (NewEvent& e : part.events) {
        if (e.event_id.is_nil()) e.event_id = new_event_id();
      }
    }
    Request request{&batch};
    for (const StreamAppend& part : batch) request.events += part.events.size();
    if (!options_.group_commit) {
      Request* one = &request;
      run_group(std::span<Request*>(&one, 1));
    } else {
      std::unique_lock lock(queue_mutex_);
      queue_.push_back(&request);
      while (request.state != Request::State::done) {
        if (request.state == Request::State::queued && !leader_active_) {
          lead(lock);
        } else {
          queue_cv_.wait(lock);
        }
      }
    }
    // This append's on_commit hooks run on its own caller's thread, after its group is done.
    if (request.kept) {
      for (const auto& hook : request.hooks) hook->on_commit(request.appended);
      if (!options_.group_commit) notify(request.result.last_position);  // else the leader's
    }
    if (request.error) std::rethrow_exception(request.error);
    return request.result;
  }

  std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::uint64_t from_version,
                                         std::size_t max_count) const override {
    validate_stream_id(stream_id, "read_stream");
    const std::string what = "read_stream " + printable(stream_id, 1024) + " in " + context_;
    validate_from(from_version, "from_version", "read_stream " + printable(stream_id, 1024));
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    with_reader(what, [&](pg::Connection& c) {
      Params p;
      p.add_text(stream_id);
      p.add_int(sql_from(from_version));
      p.add_int(sql_limit(max_count));
      Result r = c.exec_prepared(what, "annals_read_stream", sql_->read_stream.c_str(), p);
      const int rows = PQntuples(r.get());
      out.reserve(static_cast<std::size_t>(rows));
      for (int i = 0; i < rows; ++i) out.push_back(read_row(r.get(), i));
    });
    return out;
  }

  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    validate_from(from_position, "from_position", "read_all");
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    const std::string what = "read_all in " + context_;
    with_reader(what, [&](pg::Connection& c) {
      Params p;
      p.add_int(sql_from(from_position));
      p.add_int(sql_limit(max_count));
      Result r = c.exec_prepared(what, "annals_read_all", sql_->read_all.c_str(), p);
      const int rows = PQntuples(r.get());
      out.reserve(static_cast<std::size_t>(rows));
      for (int i = 0; i < rows; ++i) out.push_back(read_row(r.get(), i));
    });
    return out;
  }

  std::uint64_t head_position() const override {
    std::uint64_t head = 0;
    const std::string what = "head_position in " + context_;
    with_reader(what, [&](pg::Connection& c) {
      Result r = c.exec_prepared(what, "annals_head", sql_->head.c_str(), Params{});
      head = static_cast<std::uint64_t>(pg::binary_int(r.get(), 0, 0));
    });
    return head;
  }

  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    validate_stream_id(stream_id, "stream_version");
    std::optional<std::uint64_t> version;
    const std::string what = "stream_version " + printable(stream_id, 1024) + " in " + context_;
    with_reader(what, [&](pg::Connection& c) { version = read_stream_version(c, what, stream_id); });
    return version;
  }

  PayloadFormat payload_format() const noexcept override { return options_.payload_format; }

  void write_transaction(const std::function<void(SqlSession&)>& fn) override {
    refuse_reentry("write transaction");
    std::lock_guard lock(write_mutex_);
    WriterThread writer(writer_thread_);
    const std::string where = "write transaction in " + context_;
    writer_->ensure_open(where);
    begin_locked(where);
    try {
      pg::Session session(*writer_, where);
      fn(session);
      refuse_aborted(where, "the write transaction's callback");
      commit(where);
    } catch (...) {
      writer_->rollback_quietly();
      throw;
    }
  }

  void read_transaction(const std::function<void(SqlSession&)>& fn) const override {
    const std::string where = "read transaction in " + context_;
    with_reader(where, /*retry=*/false, [&](pg::Connection& c) {
      begin_reconnecting(c, where, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      try {
        pg::Session session(c, where);
        fn(session);
        // Read only: nothing to commit. Rolling back also undoes a SET the callback ran, which
        // would otherwise stay on the pooled connection for later readers.
        c.exec(where + ": end", "ROLLBACK");
      } catch (...) {
        c.rollback_quietly();
        throw;
      }
    });
  }

  void add_append_hook(std::shared_ptr<AppendHook> hook) override {
    if (!hook) throw InvalidArgument("add_append_hook: the hook is null");
    std::lock_guard lock(write_mutex_);
    hooks_.push_back(std::move(hook));
  }

  std::uint64_t add_commit_listener(std::function<void(std::uint64_t)> fn) override {
    if (!fn) throw InvalidArgument("add_commit_listener: the listener is empty");
    std::lock_guard lock(listeners_mutex_);
    listeners_.emplace(++last_listener_id_, std::move(fn));
    return last_listener_id_;
  }

  void remove_commit_listener(std::uint64_t id) noexcept override {
    std::lock_guard lock(listeners_mutex_);
    listeners_.erase(id);
  }

  GroupCommitStats group_commit_stats() const noexcept override {
    GroupCommitStats stats{stats_groups_.load(std::memory_order_relaxed),
                           stats_requests_.load(std::memory_order_relaxed),
                           stats_max_group_.load(std::memory_order_relaxed), 0};
    std::lock_guard lock(queue_mutex_);
    stats.queued = queue_.size();
    return stats;
  }

 private:
  static constexpr const char* kReaderSetup =
      "SET client_encoding = 'UTF8'; SET bytea_output = 'hex'; SET DateStyle = 'ISO';";

  // Checks the database and creates the schema in current_schema() if it has none, in one
  // transaction under an advisory lock so that two processes opening an empty database at once
  // do not both create it.
  void prepare_schema(const std::string& where) {
    pg::Connection& c = *writer_;
    try {
      const std::string info_sql =
          "SELECT current_schema(), current_setting('search_path'), "
          "current_setting('server_encoding'), "
          "EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
          "n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = "
          "'annals_events'), "
          "EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
          "n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = "
          "'annals_meta')";
      Result info = c.exec(where, "BEGIN; " + info_sql);
      // A store whose tables are there already is only checked: it does not wait for the lock,
      // which one connection creating a store in any schema of the database holds (the tables
      // and their annals_meta rows are created in one transaction, so both are seen together).
      const bool complete = std::string_view(PQgetvalue(info.get(), 0, 3)) == "t" &&
                            std::string_view(PQgetvalue(info.get(), 0, 4)) == "t";
      if (PQgetisnull(info.get(), 0, 0) == 0 && !complete) {
        // Waits for another process creating a schema no longer than busy_timeout.
        const auto ms = options_.busy_timeout.count();
        if (ms == 0) {
          Result got = c.exec(where, std::string("SELECT pg_try_advisory_xact_lock(") +
                                         kSchemaLockKey + ")");
          if (std::string_view(PQgetvalue(got.get(), 0, 0)) != "t") {
            throw StoreError(where +
                             ": another connection is creating or checking the store's schema "
                             "(busy_timeout 0 ms), retry later");
          }
        } else {
          c.exec(where, "SET LOCAL lock_timeout = '" + std::to_string(ms) +
                            "ms'; SELECT pg_advisory_xact_lock(" + kSchemaLockKey + ")");
        }
        info = c.exec(where, info_sql);  // what the creator before us left
      }
      if (PQgetisnull(info.get(), 0, 0) != 0) {
        throw StoreError(where + ": the connection's search_path '" +
                             printable(PQgetvalue(info.get(), 0, 1)) +
                             "' names no schema that exists, so there is nowhere to create the "
                             "store's tables; create the schema first (CREATE SCHEMA ...)",
                         false);
      }
      schema_ = PQgetvalue(info.get(), 0, 0);
      sql_.emplace(schema_);
      // Every write transaction starts with the search_path the store opened with, whatever
      // a SET of an earlier hook or callback left on the writer.
      {
        const std::string path = PQgetvalue(info.get(), 0, 1);
        char* quoted = PQescapeLiteral(c.get(), path.c_str(), path.size());
        if (quoted == nullptr) throw StoreError(where + ": cannot quote the search_path", false);
        // set_config takes the setting's text as a list, as the server reads it from options
        // ("$user", public); SET LOCAL search_path = '<text>' would take it as one name.
        set_search_path_ = std::string("SELECT set_config('search_path', ") + quoted + ", true)";
        PQfreemem(quoted);
      }
      const std::string encoding = PQgetvalue(info.get(), 0, 2);
      if (encoding != "UTF8") {
        throw StoreError(where + ": the database's encoding is " + printable(encoding) +
                             ", expected UTF8 (events hold UTF-8 text); create the database "
                             "with ENCODING 'UTF8'",
                         false);
      }
      const bool has_events = std::string_view(PQgetvalue(info.get(), 0, 3)) == "t";
      const bool has_meta = std::string_view(PQgetvalue(info.get(), 0, 4)) == "t";
      const std::string in_schema = " in schema '" + printable(schema_) + "'";
      if (has_meta) {
        Result meta = c.exec(where, "SELECT key, value FROM annals_meta");
        std::optional<std::string> version, application;
        for (int i = 0; i < PQntuples(meta.get()); ++i) {
          const std::string_view key = PQgetvalue(meta.get(), i, 0);
          if (key == "schema_version") version = PQgetvalue(meta.get(), i, 1);
          if (key == "application") application = PQgetvalue(meta.get(), i, 1);
        }
        if (application != std::optional<std::string>(kApplication) || !version) {
          throw StoreError(where + ": the table annals_meta" + in_schema +
                               " is not an annals store's (no application 'annals' and "
                               "schema_version in it); refusing to touch it",
                           false);
        }
        int v = 0;
        const auto [end, ec] = std::from_chars(version->data(), version->data() + version->size(), v);
        if (ec != std::errc{} || end != version->data() + version->size() || v < 1) {
          throw StoreError(where + ": the store's schema version is '" + printable(*version) +
                               "', expected 1 to " + std::to_string(kSchemaVersion),
                           false);
        }
        if (v > kSchemaVersion) {
          throw StoreError(where + ": the store has schema version " + std::to_string(v) +
                               ", newer than this build of annals supports (" +
                               std::to_string(kSchemaVersion) + "); upgrade annals to open it",
                           false);
        }
        if (!has_events) {
          throw StoreError(where + ": the store" + in_schema +
                               " has annals_meta but no annals_events table: it was damaged; "
                               "refusing to touch it",
                           false);
        }
      } else if (has_events) {
        throw StoreError(where + ": the table annals_events" + in_schema +
                             " has no annals_meta beside it: not an annals store; refusing to "
                             "touch it",
                         false);
      } else {
        c.exec(where + ": creating the schema", kSchema);
        const std::string version = std::to_string(kSchemaVersion);
        Params p;
        p.add_text(version);
        p.add_text(kApplication);
        c.exec(where + ": creating the schema",
               "INSERT INTO annals_meta (key, value) VALUES ('schema_version', $1), "
               "('application', $2)",
               &p);
      }
      c.exec(where, "COMMIT");
    } catch (...) {
      c.rollback_quietly();
      throw;
    }
  }

  // BEGIN and the log's table lock, waiting up to busy_timeout for it, then `then` (more
  // statements, in the same round trip); returns the last statement's result (text format).
  // A connection the server dropped while it was idle (a restart, an idle timeout) shows only
  // now: nothing was started, so it is reconnected and the BEGIN runs once more.
  Result begin_locked(const std::string& where, const std::string& then = {}) {
    const auto ms = options_.busy_timeout.count();
    std::string sql = "BEGIN; " + set_search_path_ + "; ";
    sql += ms == 0 ? "LOCK TABLE " + sql_->table + " IN EXCLUSIVE MODE NOWAIT"
                   : "SET LOCAL lock_timeout = '" + std::to_string(ms) + "ms'; LOCK TABLE " +
                         sql_->table + " IN EXCLUSIVE MODE";
    if (!then.empty()) sql += "; " + then;
    return begin_reconnecting(*writer_, where, sql);
  }

  // A BEGIN whose later statement failed (the lock wait timed out) leaves the connection in an
  // aborted transaction block: it is rolled back here, or every later statement on the
  // connection would fail with 25P02.
  static Result begin_reconnecting(pg::Connection& c, const std::string& where,
                                   const std::string& sql) {
    try {
      return c.exec(where, sql);
    } catch (const StoreError&) {
      if (PQstatus(c.get()) != CONNECTION_BAD) {
        c.rollback_quietly();
        throw;
      }
      c.ensure_open(where);
      try {
        return c.exec(where, sql);
      } catch (...) {
        c.rollback_quietly();
        throw;
      }
    }
  }

  // A statement that failed inside the writer's transaction aborts it on PostgreSQL (unlike
  // SQLite), even when the hook or callback that ran it caught the error; a COMMIT would then
  // roll back and still answer "OK". So the call fails instead of reporting writes that were
  // never made. Not transient: running the same code again fails the same way.
  void refuse_aborted(const std::string& where, const char* who) const {
    if (PQtransactionStatus(writer_->get()) != PQTRANS_INERROR) return;
    throw StoreError(where + ": a statement run by " + who +
                         " failed and its error was caught; on PostgreSQL a failed statement "
                         "aborts the whole transaction, so it was rolled back and nothing was "
                         "written (run a statement that may fail inside a SAVEPOINT and roll "
                         "back to it, or let the error propagate)",
                     false);
  }

  void commit(const std::string& where) {
    Result r(PQexec(writer_->get(), "COMMIT"));
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
      // COMMIT of an aborted transaction rolls back and answers with the tag ROLLBACK.
      if (std::string_view(PQcmdStatus(r.get())) == "COMMIT") return;
      throw StoreError(where + ": the server rolled the transaction back at COMMIT (a statement "
                               "in it had failed); nothing was written",
                       false);
    }
    if (PQstatus(writer_->get()) == CONNECTION_BAD) {
      // The server may or may not have committed before the connection went: retrying could
      // write the events twice, so this is not transient.
      throw StoreError(where +
                           ": the connection to the server was lost during COMMIT, so whether "
                           "the transaction was committed is unknown; read the stream before "
                           "trying again",
                       false);
    }
    pg::throw_error(where + ": commit", writer_->get(), r.get(), options_.busy_timeout);
  }

  // Where the log ends, as seen inside the writer's transaction.
  struct Tail {
    std::uint64_t position = 0;
    Timestamp recorded_at{};
    EventHash hash{};  // the chain starts from 32 zero bytes
  };

  // The tail from Statements::tail's text-format result (it runs in begin_locked's round trip).
  static Tail tail_from_text(const PGresult* r) {
    Tail tail;
    if (PQntuples(r) != 1) return tail;
    std::int64_t position = 0, recorded_at = 0;
    const std::string_view p = PQgetvalue(r, 0, 0), t = PQgetvalue(r, 0, 1),
                           hash = PQgetvalue(r, 0, 2);
    std::from_chars(p.data(), p.data() + p.size(), position);
    std::from_chars(t.data(), t.data() + t.size(), recorded_at);
    tail.position = static_cast<std::uint64_t>(position);
    tail.recorded_at = from_micros(recorded_at);
    // encode(hash, 'hex'): two lower-case digits a byte.
    const auto digit = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    bool ok = hash.size() == 2 * tail.hash.size();
    for (std::size_t i = 0; ok && i < tail.hash.size(); ++i) {
      const int hi = digit(hash[2 * i]), lo = digit(hash[2 * i + 1]);
      ok = hi >= 0 && lo >= 0;
      tail.hash[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (!ok) {
      throw IntegrityError("append: the event at position " + std::to_string(tail.position) +
                               " has a damaged hash; verify the log",
                           tail.position);
    }
    return tail;
  }

  std::optional<std::uint64_t> read_stream_version(pg::Connection& c, const std::string& what,
                                                   std::string_view stream_id) const {
    Params p;
    p.add_text(stream_id);
    Result r = c.exec_prepared(what, "annals_stream_version", sql_->stream_version.c_str(), p);
    if (PQgetisnull(r.get(), 0, 0) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(pg::binary_int(r.get(), 0, 0));
  }

  // One append call waiting for, or carried by, a group. Lives on the caller's stack; the
  // leader writes result/error/appended under write_mutex_ and publishes them by setting
  // state to done under queue_mutex_.
  struct Request {
    enum class State : std::uint8_t { queued, in_group, done };
    std::vector<StreamAppend>* batch;
    std::size_t events = 0;
    State state = State::queued;
    AppendResult result{};
    std::exception_ptr error{};
    std::vector<RecordedEvent> appended{};  // built only for hooks
    bool kept = false;                      // written and committed: hooks hear on_commit
    std::vector<std::shared_ptr<AppendHook>> hooks{};  // the hooks it ran with
    std::string where{};  // "append to <its first stream> in <store>[ (grouped ...)]"
  };

  static constexpr std::size_t kMaxGroupRequests = 64;
  static constexpr std::size_t kMaxGroupEvents = 4096;

  // REQUIRES: lock holds queue_mutex_, no leader active, this caller's request is queued.
  // Takes a group from the front of the queue, runs it without the queue lock, then hands
  // leadership on before the post-commit work so the next group can start meanwhile.
  void lead(std::unique_lock<std::mutex>& lock) {
    leader_active_ = true;
    std::array<Request*, kMaxGroupRequests> slots{};
    std::size_t size = 0, events = 0;
    while (!queue_.empty() && size < kMaxGroupRequests &&
           (size == 0 || events + queue_.front()->events <= kMaxGroupEvents)) {
      Request* r = queue_.front();
      queue_.pop_front();
      r->state = Request::State::in_group;
      events += r->events;
      slots[size++] = r;
    }
    const std::span<Request*> group(slots.data(), size);
    lock.unlock();
    run_group(group);
    // Read before the requests are marked done: the other callers may return (and their
    // requests go away) as soon as they are.
    std::uint64_t head = 0;
    for (Request* r : group) {
      if (r->kept) head = std::max(head, r->result.last_position);
    }
    lock.lock();
    leader_active_ = false;
    for (Request* r : group) r->state = Request::State::done;
    queue_cv_.notify_all();
    lock.unlock();
    if (head != 0) notify(head);
    lock.lock();
  }

  // Runs a group in one transaction under write_mutex_, each request in its own savepoint
  // when there are several. Never throws: every request ends with kept or an error.
  void run_group(std::span<Request*> group) noexcept {
    std::vector<Request*> kept;
    std::vector<std::shared_ptr<AppendHook>> hooks;
    try {
      std::lock_guard lock(write_mutex_);
      WriterThread writer(writer_thread_);
      try {
        hooks = hooks_;
        kept.reserve(group.size());
        const std::string grouped =
            group.size() == 1 ? std::string()
                              : " (grouped with " + std::to_string(group.size() - 1) +
                                    " other appends in one transaction)";
        for (Request* r : group) {
          r->hooks = hooks;
          r->where = "append to " + printable(r->batch->front().stream_id, 1024) + " in " +
                     context_ + grouped;
        }
        stats_groups_.fetch_add(1, std::memory_order_relaxed);
        stats_requests_.fetch_add(group.size(), std::memory_order_relaxed);
        std::uint64_t seen = stats_max_group_.load(std::memory_order_relaxed);
        while (seen < group.size() && !stats_max_group_.compare_exchange_weak(
                                          seen, group.size(), std::memory_order_relaxed)) {
        }
        run_transaction_of(group, hooks, kept);
      } catch (...) {
        // Whatever got here, nothing of the group may count as written: roll back while still
        // holding the writer.
        abort_group(group, kept, hooks, std::current_exception());
      }
    } catch (...) {  // the lock itself failed: nothing was started
      for (Request* r : group) {
        if (!r->error) r->error = std::current_exception();
      }
    }
  }

  // Each request of the group fails with `e` in its own context.
  static void fail_each(std::span<Request*> group, const StoreError& e) {
    for (Request* r : group) {
      if (!r->error) {
        r->error = std::make_exception_ptr(StoreError(r->where + ": " + e.what(), e.transient()));
      }
    }
  }

  bool in_transaction() const noexcept {
    const PGTransactionStatusType status = PQtransactionStatus(writer_->get());
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
  }

  // Runs the group's transaction. On return every request is either kept (committed) or has
  // an error, and hooks heard on_rollback for each append of theirs that was undone. An
  // exception escaping leaves the cleanup to run_group (abort_group with `kept`).
  void run_transaction_of(std::span<Request*> group,
                          const std::vector<std::shared_ptr<AppendHook>>& hooks,
                          std::vector<Request*>& kept) {
    Tail tail;
    try {
      writer_->ensure_open("begin");
      const Result head = begin_locked("begin", sql_->tail);
      tail = tail_from_text(head.get());
    } catch (const StoreError& e) {
      writer_->rollback_quietly();
      fail_each(group, e);
      return;
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      writer_->rollback_quietly();
      for (Request* r : group) r->error = error;
      return;
    }
    const bool savepoints = group.size() > 1;
    for (Request* r : group) {
      if (savepoints) {
        try {
          writer_->exec(r->where, "SAVEPOINT annals_append");
        } catch (...) {
          abort_group(group, kept, hooks, std::current_exception());
          return;
        }
      }
      const Tail before = tail;
      bool hooks_entered = false;
      try {
        append_request(*r, tail, hooks, hooks_entered);
        if (savepoints) writer_->exec(r->where + ": release savepoint", "RELEASE SAVEPOINT annals_append");
        kept.push_back(r);  // reserved before BEGIN: cannot throw
        r->kept = true;     // provisionally: until the COMMIT
        continue;
      } catch (const StoreError& e) {
        r->error = std::current_exception();
        // A hook's own error that names no append: say which append it failed.
        if (!std::string_view(e.what()).starts_with("append to ")) {
          try {
            r->error = std::make_exception_ptr(StoreError(r->where + ": " + e.what(),
                                                          e.transient()));
          } catch (...) {
          }
        }
      } catch (...) {
        r->error = std::current_exception();
      }
      tail = before;
      // The transaction is lost when the connection or the transaction is gone; otherwise
      // this append alone is undone, back to its savepoint.
      bool lost = !in_transaction();
      if (!lost && savepoints) {
        try {
          writer_->exec(r->where, "ROLLBACK TO SAVEPOINT annals_append; RELEASE SAVEPOINT annals_append");
        } catch (...) {
          lost = true;
        }
      } else if (!savepoints) {
        writer_->rollback_quietly();  // the only request: nothing left to commit
      }
      if (hooks_entered) {
        for (const auto& hook : hooks) hook->on_rollback(r->appended);
      }
      if (!savepoints) return;
      if (lost) {
        // Every other append of the group fails, each told in its own context why.
        try {
          std::string why =
              ": an error in another append of its group rolled the transaction back";
          try {
            std::rethrow_exception(r->error);
          } catch (const std::exception& e) {
            why += ": ";
            why += e.what();
          } catch (...) {
          }
          for (Request* other : group) {
            if (!other->error) other->error = std::make_exception_ptr(StoreError(other->where + why));
          }
        } catch (...) {
          abort_group(group, kept, hooks, std::current_exception());
          return;
        }
        abort_group(group, kept, hooks, std::exception_ptr());
        return;
      }
    }
    if (kept.empty()) {
      writer_->rollback_quietly();
      return;
    }
    try {
      commit("commit");
    } catch (const StoreError& e) {
      for (Request* r : group) {
        if (!r->error) {
          r->error = std::make_exception_ptr(StoreError(r->where + ": " + e.what(), e.transient()));
        }
      }
      abort_group(group, kept, hooks, std::exception_ptr());
    }
  }

  // The transaction is lost: it is rolled back, the kept requests' hooks hear on_rollback, and
  // every request not already refused on its own fails with `cause`.
  void abort_group(std::span<Request*> group, std::vector<Request*>& kept,
                   const std::vector<std::shared_ptr<AppendHook>>& hooks,
                   const std::exception_ptr& cause) noexcept {
    writer_->rollback_quietly();
    for (Request* r : kept) {
      r->kept = false;
      for (const auto& hook : hooks) hook->on_rollback(r->appended);
    }
    kept.clear();  // heard on_rollback once: never again
    for (Request* r : group) {
      r->kept = false;
      if (!r->error) r->error = cause;
    }
  }

  // Checks and inserts one request at the tail inside the open transaction, then runs its
  // hooks' on_append. Throws the annals error its caller should get; tail moves past its events.
  void append_request(Request& r, Tail& tail,
                      const std::vector<std::shared_ptr<AppendHook>>& hooks,
                      bool& hooks_entered) {
    std::vector<StreamAppend>& batch = *r.batch;
    const std::string& where = r.where;
    // The clock is read under the table lock and never runs backwards along the log, so
    // recorded_at rises with position even when the system clock steps back.
    const Timestamp recorded_at = std::max(read_clock(options_), tail.recorded_at);
    r.result.first_position = tail.position + 1;
    for (StreamAppend& part : batch) {
      const std::optional<std::uint64_t> actual =
          read_stream_version(*writer_, where, part.stream_id);
      check_expected(part.stream_id, part.expected, actual);
      std::uint64_t version = actual.value_or(0);
      std::vector<RecordedEvent> records;
      records.reserve(part.events.size());
      for (NewEvent& e : part.events) {
        RecordedEvent& rec = records.emplace_back(RecordedEvent{
            ++tail.position, part.stream_id, ++version, e.event_id, e.type, e.schema_version,
            e.payload, e.metadata, recorded_at, e.payload_format, {}});
        rec.hash = chain_hash(tail.hash, rec);
        tail.hash = rec.hash;
      }
      insert_all(records, part.stream_id, where);
      if (!hooks.empty()) {
        for (RecordedEvent& rec : records) r.appended.push_back(std::move(rec));
      }
      r.result.stream_version = version;
    }
    tail.recorded_at = recorded_at;
    r.result.last_position = tail.position;
    hooks_entered = true;
    if (!hooks.empty()) {
      pg::Session session(*writer_, where);
      for (const auto& hook : hooks) hook->on_append(session, r.appended);
      refuse_aborted(where, "an append hook");
    }
  }

  // The insert's parameters for one event (binary format; they point into `e` and `event_id`).
  static Params insert_params(const RecordedEvent& e, const std::string& event_id) {
    Params p;
    p.add_int(static_cast<std::int64_t>(e.position));
    p.add_text(e.stream_id);
    p.add_int(static_cast<std::int64_t>(e.version));
    p.add_text(event_id);
    p.add_text(e.type);
    p.add_int(static_cast<std::int64_t>(e.schema_version));
    p.add_text(e.payload_format == PayloadFormat::json ? "json" : "binary");
    p.add_bytes(e.payload);
    p.add_text(e.metadata.tenant_id);
    p.add_text(e.metadata.actor);
    p.add_text(e.metadata.correlation_id);
    p.add_text(e.metadata.causation_id);
    p.add_int(to_micros(e.metadata.occurred_at));
    p.add_int(to_micros(e.recorded_at));
    p.add_bytes(std::string_view(reinterpret_cast<const char*>(e.hash.data()), e.hash.size()));
    return p;
  }

  // Inserts one part's events in one round trip (pipelined); a clash on the event id is the
  // duplicate-event-id InvalidArgument, on (stream, version) or position a ConcurrencyError.
  void insert_all(const std::vector<RecordedEvent>& events, const std::string& stream_id,
                  const std::string& where) {
    std::vector<std::string> ids;
    ids.reserve(events.size());
    for (const RecordedEvent& e : events) ids.push_back(to_string(e.event_id));
    std::vector<Params> sets;
    sets.reserve(events.size());
    for (std::size_t i = 0; i < events.size(); ++i) sets.push_back(insert_params(events[i], ids[i]));
    auto [failed, r] =
        writer_->exec_prepared_pipelined(where, "annals_insert", sql_->insert.c_str(), sets);
    if (failed < 0) return;
    if (pg::sqlstate(r.get()) == "23505") {
      const char* constraint = PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME);
      const std::string_view name = constraint != nullptr ? constraint : "";
      if (name == "annals_events_event_id") {
        throw_duplicate_event_id(stream_id, events[static_cast<std::size_t>(failed)].event_id);
      }
      if (name == "annals_events_stream_version" || name == "annals_events_pkey") {
        // Only a writer that bypassed the table lock can clash on these.
        throw ConcurrencyError("append to " + printable(stream_id, 1024) +
                               ": another writer appended the same version or position (" +
                               printable(PQresultErrorMessage(r.get()), 1024) + ")");
      }
    }
    pg::throw_error(where, writer_->get(), r.get(), options_.busy_timeout);
  }

  // An append or write transaction from the thread that holds the writer (a hook's on_append,
  // a write transaction's callback) would wait for itself.
  void refuse_reentry(const std::string& what) const {
    if (writer_thread_.load() == std::this_thread::get_id()) {
      throw InvalidArgument(what + " in " + context_ +
                            ": called from inside an append hook or write transaction of the "
                            "same store on the same thread, which would wait for itself; use "
                            "the session the hook or transaction was given, or call after it "
                            "returns");
    }
  }

  // Marks the writer as held by this thread while in scope.
  class WriterThread {
   public:
    explicit WriterThread(std::atomic<std::thread::id>& slot) noexcept : slot_(slot) {
      slot_.store(std::this_thread::get_id());
    }
    ~WriterThread() { slot_.store(std::thread::id()); }
    WriterThread(const WriterThread&) = delete;
    WriterThread& operator=(const WriterThread&) = delete;

   private:
    std::atomic<std::thread::id>& slot_;
  };

  template <class Fn>
  void with_reader(const std::string& what, Fn&& fn) const {
    with_reader(what, /*retry=*/true, std::forward<Fn>(fn));
  }

  // Runs fn on a pooled read connection. The pool holds at most kMaxReaders connections; a
  // thread already holding one of this store (a read transaction's callback reading the store)
  // gets another rather than waiting for itself, so the store has at most kMaxReaders plus one
  // per read nested that way open at once. retry: fn is one read, run again (once) on a new
  // connection when the server dropped the pooled one.
  template <class Fn>
  void with_reader(const std::string& what, bool retry, Fn&& fn) const {
    std::unique_ptr<pg::Connection> c;
    {
      std::unique_lock lock(readers_mutex_);
      while (true) {
        if (!idle_readers_.empty()) {
          c = std::move(idle_readers_.back());
          idle_readers_.pop_back();
          break;
        }
        if (open_readers_ < kMaxReaders || readers_held_of(this) > 0) {
          ++open_readers_;
          break;
        }
        readers_cv_.wait(lock);
      }
    }
    if (!c) {
      try {
        c = std::make_unique<pg::Connection>(conninfo_, what, kReaderSetup, options_.busy_timeout);
      } catch (...) {
        release_reader(nullptr);
        throw;
      }
    }
    struct Held {
      const void* store;
      explicit Held(const void* s) : store(s) { ++readers_held_of(store); }
      ~Held() {
        if (--readers_held_of(store) == 0) {
          std::erase_if(t_readers_held, [&](const auto& e) { return e.first == store; });
        }
      }
    } held(this);
    try {
      c->ensure_open(what);
      try {
        fn(*c);
      } catch (const StoreError&) {
        if (!retry || PQstatus(c->get()) != CONNECTION_BAD) throw;
        c->ensure_open(what);
        fn(*c);
      }
    } catch (...) {
      release_reader(std::move(c));
      throw;
    }
    release_reader(std::move(c));
  }

  void release_reader(std::unique_ptr<pg::Connection> c) const noexcept {
    std::unique_ptr<pg::Connection> closing;
    {
      std::lock_guard lock(readers_mutex_);
      if (c && c->reusable() && open_readers_ <= kMaxReaders) {
        idle_readers_.push_back(std::move(c));
      } else {
        closing = std::move(c);
        --open_readers_;
      }
    }
    readers_cv_.notify_one();
  }

  void notify(std::uint64_t head) noexcept {
    std::vector<std::function<void(std::uint64_t)>> listeners;
    {
      std::lock_guard lock(listeners_mutex_);
      for (const auto& [id, fn] : listeners_) listeners.push_back(fn);
    }
    for (const auto& fn : listeners) fn(head);
  }

  const std::string conninfo_;
  const std::string context_;
  const StoreOptions options_;
  std::string schema_;  // current_schema() at open
  std::optional<Statements> sql_;  // set at open, naming schema_
  std::string set_search_path_;    // sets the search_path at open again, for one transaction

  // Guards writer_ and hooks_.
  std::mutex write_mutex_;
  std::atomic<std::thread::id> writer_thread_{};  // the thread holding the writer, if any
  std::unique_ptr<pg::Connection> writer_;
  std::vector<std::shared_ptr<AppendHook>> hooks_;

  mutable std::mutex readers_mutex_;
  mutable std::condition_variable readers_cv_;
  mutable std::vector<std::unique_ptr<pg::Connection>> idle_readers_;
  mutable std::size_t open_readers_ = 0;  // idle and lent out

  // The group commit queue: appends waiting for a leader, and whether one is running a group.
  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Request*> queue_;
  bool leader_active_ = false;
  std::atomic<std::uint64_t> stats_groups_{0}, stats_requests_{0}, stats_max_group_{0};

  std::mutex listeners_mutex_;
  std::map<std::uint64_t, std::function<void(std::uint64_t)>> listeners_;
  std::uint64_t last_listener_id_ = 0;
};

}  // namespace

std::shared_ptr<SqlEventStore> make_pg_event_store(const std::string& conninfo,
                                                   const StoreOptions& options) {
  return std::make_shared<PgEventStore>(conninfo, options);
}

}  // namespace annals::detail
