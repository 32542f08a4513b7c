// The SQLite backend. One writer connection behind a mutex does every append in a
// BEGIN IMMEDIATE transaction (so appends from other processes queue on the file lock, up to
// the busy timeout); reads go to a pool of read-only connections, each of which sees the
// last committed snapshot of the WAL. Positions are assigned as head + 1 inside the write
// transaction, so they are gap-free in every snapshot a reader can take.
//
// Group commit: appends queue (queue_mutex_); whichever caller finds no leader running leads,
// taking a group off the queue and running it under write_mutex_ in one transaction, each
// append in a savepoint so that it can fail alone. The leader hands leadership on as soon as the
// COMMIT is done (so the next group forms and runs while this one's on_commit hooks and
// listeners run), then marks its group done and wakes the waiters. A request's result is
// written under write_mutex_ and published by its state turning done under queue_mutex_.
//
// The in-memory backend is the same code on a private ":memory:" database: one connection,
// which readers share with the writer under the write mutex.

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <deque>
#include <exception>
#include <span>
#include <thread>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_map>

#include "annals/events/printable.hpp"
#include "annals/store/hash_chain.hpp"
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
  hash            BLOB    NOT NULL,
  UNIQUE (stream_id, version),
  UNIQUE (event_id)
);
CREATE TRIGGER annals_events_no_update BEFORE UPDATE ON annals_events
BEGIN SELECT RAISE(ABORT, 'annals_events is append-only'); END;
CREATE TRIGGER annals_events_no_delete BEFORE DELETE ON annals_events
BEGIN SELECT RAISE(ABORT, 'annals_events is append-only'); END;
)sql";

// Resets a statement on entry and on every exit, so an exception never leaves it mid-step
// (which would hold a read snapshot or a lock).
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

std::int64_t sql_from(std::uint64_t from) {
  return static_cast<std::int64_t>(std::min<std::uint64_t>(from, INT64_MAX));
}

// The one place SQLite's errors become annals errors. `reader`: the error is a read
// connection's, which is read-only by design. `writer`: the writer connection the error came
// from, asked whether its database file or only its -wal/-shm file is read-only; `refused` is
// set when the writer was refused a write (SQLITE_READONLY), so that the store replaces it.
[[noreturn]] void throw_store_error(const std::string& context, const SQLite::Exception& e,
                                    bool reader = false, sqlite3* writer = nullptr,
                                    bool* refused = nullptr) {
  const int code = e.getErrorCode();
  std::string message = context + ": " + e.what() + " (SQLite error " +
                        std::to_string(e.getExtendedErrorCode()) + ")";
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    throw StoreError(message + "; the database stayed locked past the busy timeout, retry later");
  }
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) throw IntegrityError(message);
  if (e.getExtendedErrorCode() == SQLITE_READONLY && reader) {
    throw StoreError(message + "; a read transaction cannot write: use a write transaction",
                     false);
  }
  if (code == SQLITE_READONLY) {
    if (refused != nullptr) *refused = true;  // the next write opens a new writer connection
    if (e.getExtendedErrorCode() == SQLITE_READONLY_DBMOVED) {
      throw StoreError(message +
                           "; the database file was moved, deleted or replaced while the store "
                           "was open: nothing was written; reopen the store",
                       false);
    }
    if (writer == nullptr || sqlite3_db_readonly(writer, "main") == 1) {
      // Transient: the store object opens a new writer once the file is writable again.
      throw StoreError(message +
                       "; the database file is read-only for this process (its permissions "
                       "or a read-only mount): nothing was written; the store writes again "
                       "once the file is writable");
    }
    // The database file is writable, its -wal or -shm file is not (another user, such as root,
    // created them). A new writer connection helps once the -wal is writable; a read-only -shm
    // is shared by every connection of this process to the file until the last one closes, so
    // retrying alone does not help: not transient.
    throw StoreError(message +
                         "; the database file is writable but its -wal or -shm file is not "
                         "writable by this process (another user, such as root, may have "
                         "created it): nothing was written; make both files writable by this "
                         "process (the next write opens a new writer connection) or reopen "
                         "the store",
                     false);
  }
  const bool transient = code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_NOMEM ||
                         code == SQLITE_CANTOPEN || code == SQLITE_PROTOCOL ||
                         code == SQLITE_INTERRUPT;
  throw StoreError(message, transient);
}

std::string sql_excerpt(std::string_view sql) {
  std::string s(sql.substr(0, 120));
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return sql.size() > 120 ? s + "..." : s;
}

RecordedEvent read_row(SQLite::Statement& s) {
  return make_record(
      static_cast<std::uint64_t>(s.getColumn(0).getInt64()), s.getColumn(1).getString(),
      static_cast<std::uint64_t>(s.getColumn(2).getInt64()), s.getColumn(3).getString(),
      s.getColumn(4).getString(), static_cast<std::uint32_t>(s.getColumn(5).getInt64()),
      s.getColumn(6).getString(), s.getColumn(7).getString(),
      EventMetadata{s.getColumn(8).getString(), s.getColumn(9).getString(),
                    s.getColumn(10).getString(), s.getColumn(11).getString(),
                    from_micros(s.getColumn(12).getInt64())},
      from_micros(s.getColumn(13).getInt64()),
      std::string_view(static_cast<const char*>(s.getColumn(14).getBlob()),
                       static_cast<std::size_t>(s.getColumn(14).getBytes())));
}

SqlValue column_value(const SQLite::Column& c) {
  switch (c.getType()) {
    case SQLITE_INTEGER:
      return c.getInt64();
    case SQLITE_FLOAT:
      return c.getDouble();
    case SQLITE_NULL:
      return nullptr;
    default:
      return c.getString();
  }
}

void read_values(SQLite::Statement& s, SqlRow& row) {
  auto& values = row.values();
  const int n = s.getColumnCount();
  values.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = column_value(s.getColumn(i));
}

// A prepared statement and where its $1..$n placeholders are.
struct Prepared {
  Prepared(SQLite::Database& db, std::string_view sql) : stmt(db, std::string(sql)) {
    const int count = stmt.getBindParameterCount();
    for (int n = 1; n <= count; ++n) {
      // Built by append, not "$" + to_string(n): GCC 12 at -O3 warns (-Wrestrict) on the latter.
      std::string name(1, '$');
      name.append(std::to_string(n));
      const int index = stmt.getIndex(name.c_str());
      if (index == 0) {
        throw InvalidArgument("SQL must number its placeholders $1..$" + std::to_string(count) +
                              ": " + sql_excerpt(sql));
      }
      indexes.push_back(index);
    }
  }

  // copy_text: the statement outlives `params` (a cursor), so SQLite must keep its own copy.
  void bind(std::span<const SqlValue> params, std::string_view sql, bool copy_text = false) {
    if (params.size() != indexes.size()) {
      throw InvalidArgument("SQL expects " + std::to_string(indexes.size()) + " parameters, got " +
                            std::to_string(params.size()) + ": " + sql_excerpt(sql));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = indexes[i];
      std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::nullptr_t>) {
              stmt.bind(index);
            } else if constexpr (std::is_same_v<V, std::string>) {
              if (copy_text) {
                stmt.bind(index, v);
              } else {
                stmt.bindNoCopy(index, v);  // params outlive this execution
              }
            } else if constexpr (std::is_same_v<V, SqlBlob>) {
              if (v.bytes.size() > static_cast<std::size_t>(INT_MAX)) {
                throw InvalidArgument("SQL blob parameter $" + std::to_string(i + 1) +
                                      " is larger than SQLite binds: " + sql_excerpt(sql));
              }
              const int size = static_cast<int>(v.bytes.size());
              if (copy_text) {
                stmt.bind(index, v.bytes.data(), size);
              } else {
                stmt.bindNoCopy(index, v.bytes.data(), size);
              }
            } else {
              stmt.bind(index, v);
            }
          },
          params[i]);
    }
  }

  SQLite::Statement stmt;
  std::vector<int> indexes;
};

class SqliteCursor final : public SqlCursor {
 public:
  SqliteCursor(std::unique_ptr<Prepared> prepared, std::string context, bool reader)
      : prepared_(std::move(prepared)), context_(std::move(context)), reader_(reader) {}

  bool next(SqlRow& row) override {
    try {
      if (!prepared_->stmt.executeStep()) return false;
      read_values(prepared_->stmt, row);
      return true;
    } catch (const SQLite::Exception& e) {
      throw_store_error(context_, e, reader_);
    }
  }

 private:
  std::unique_ptr<Prepared> prepared_;
  std::string context_;
  bool reader_;
};

// SqlSession on one SQLite connection, with its prepared statements cached by SQL text.
class SqliteSession final : public SqlSession {
 public:
  SqliteSession(SQLite::Database& db, const std::string& context, bool reader,
                bool* refused = nullptr)
      : db_(db), context_(context), reader_(reader), refused_(refused) {}

  void execute_script(std::string_view sql) override {
    try {
      db_.exec(std::string(sql));
    } catch (const SQLite::Exception& e) {
      fail(context_ + ": " + sql_excerpt(sql), e);
    }
  }

  std::string_view dialect() const noexcept override { return "sqlite"; }

  void clear_cache() noexcept { cache_.clear(); }

 protected:
  std::size_t execute_span(std::string_view sql, std::span<const SqlValue> params) override {
    try {
      Prepared& p = prepare(sql);
      StatementUse use(p.stmt);
      p.bind(params, sql);
      while (use->executeStep()) {
      }
      return static_cast<std::size_t>(db_.getChanges());
    } catch (const SQLite::Exception& e) {
      fail(context_ + ": " + sql_excerpt(sql), e);
    }
  }

  std::vector<SqlRow> query_span(std::string_view sql, std::span<const SqlValue> params) override {
    try {
      Prepared& p = prepare(sql);
      StatementUse use(p.stmt);
      p.bind(params, sql);
      std::vector<SqlRow> rows;
      while (use->executeStep()) read_values(*use, rows.emplace_back());
      return rows;
    } catch (const SQLite::Exception& e) {
      fail(context_ + ": " + sql_excerpt(sql), e);
    }
  }

  std::unique_ptr<SqlCursor> cursor_span(std::string_view sql,
                                         std::span<const SqlValue> params) override {
    try {
      // Not from the cache: two cursors on the same SQL may be open at once.
      auto p = std::make_unique<Prepared>(db_, sql);
      p->bind(params, sql, /*copy_text=*/true);
      return std::make_unique<SqliteCursor>(std::move(p), context_ + ": " + sql_excerpt(sql),
                                            reader_);
    } catch (const SQLite::Exception& e) {
      fail(context_ + ": " + sql_excerpt(sql), e);
    }
  }

 private:
  Prepared& prepare(std::string_view sql) {
    constexpr std::size_t kMaxCached = 256;
    auto it = cache_.find(std::string(sql));
    if (it != cache_.end()) return *it->second;
    if (cache_.size() >= kMaxCached) cache_.clear();
    auto p = std::make_unique<Prepared>(db_, sql);
    return *cache_.emplace(std::string(sql), std::move(p)).first->second;
  }

  [[noreturn]] void fail(const std::string& context, const SQLite::Exception& e) {
    throw_store_error(context, e, reader_, reader_ ? nullptr : db_.getHandle(), refused_);
  }

  SQLite::Database& db_;
  std::string context_;
  bool reader_;
  bool* refused_;  // the store's flag, for its writer's session
  std::unordered_map<std::string, std::unique_ptr<Prepared>> cache_;
};

SQLite::Database open_connection(const std::string& path, int flags, const StoreOptions& options) {
  return SQLite::Database(path, flags | SQLite::OPEN_NOMUTEX,
                          static_cast<int>(options.busy_timeout.count()), options.vfs);
}

// Whether the file on `db` is an annals store of a version this build understands (false), or
// empty (true: it needs the schema). Anything else throws a non-transient StoreError naming it.
bool inspect(SQLite::Database& db, const std::string& context) {
  const int app_id = db.execAndGet("PRAGMA application_id").getInt();
  const int user_version = db.execAndGet("PRAGMA user_version").getInt();
  const int objects = db.execAndGet("SELECT count(*) FROM sqlite_schema").getInt();
  if (app_id == kApplicationId) {
    if (user_version > kSchemaVersion) {
      throw StoreError(context + ": the store has schema version " + std::to_string(user_version) +
                           ", newer than this build of annals supports (" +
                           std::to_string(kSchemaVersion) + "); upgrade annals to open it",
                       false);
    }
    if (user_version < 1) {
      throw StoreError(context + ": the store's schema version is " + std::to_string(user_version) +
                           ", expected 1 to " + std::to_string(kSchemaVersion),
                       false);
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
                         " schema objects); refusing to touch it",
                     false);
  }
  return true;  // empty: needs the schema
}

void require_wal(SQLite::Database& db, const std::string& context) {
  const std::string mode = db.execAndGet("PRAGMA journal_mode=WAL").getString();
  if (mode != "wal") {
    throw StoreError(
        context + ": could not switch the database to WAL mode (journal mode is " + mode + ")",
        false);
  }
}

// The identity (device, inode) of the file at `path`, or nullopt if it cannot be stat'ed.
std::optional<std::pair<dev_t, ino_t>> file_identity(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair<dev_t, ino_t>(st.st_dev, st.st_ino);
}

// Opens the writer connection and makes sure the file is an annals store of a version this
// build understands, creating the schema in an empty file. A file that is not ours is left
// exactly as it was.
SQLite::Database open_writer(const std::string& path, bool in_memory, const StoreOptions& options,
                             const std::string& context) {
  if (!options.vfs.empty() && sqlite3_vfs_find(options.vfs.c_str()) == nullptr) {
    throw InvalidArgument(context + ": no SQLite VFS named '" + printable(options.vfs) +
                          "' is registered (StoreOptions::vfs / vfs=)");
  }
  if (!in_memory) {
    const std::filesystem::path fs_path(path);
    const std::filesystem::path parent =
        fs_path.has_parent_path() ? fs_path.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(parent, ec)) {
      throw StoreError(
          context + ": directory '" + printable(parent.string(), 1024) + "' does not exist", false);
    }
    if (std::filesystem::is_directory(fs_path, ec)) {
      throw StoreError(
          context + ": '" + printable(path, 1024) + "' is a directory, expected a database file",
          false);
    }
  }

  SQLite::Database db = open_connection(in_memory ? ":memory:" : path,
                                        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, options);
  try {
    if (inspect(db, context)) {
      // Only an empty file reaches here: switching it to WAL changes nothing of anyone's.
      if (!in_memory) db.exec("PRAGMA journal_mode=WAL");
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      // Another process may have created it while we waited for the lock.
      if (inspect(db, context)) {
        db.exec(kSchema);
        db.exec("PRAGMA application_id=" + std::to_string(kApplicationId));
        db.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
      }
      tx.commit();
    }
    if (!in_memory) {
      require_wal(db, context);
      db.exec(options.synchronous == Synchronous::full ? "PRAGMA synchronous=FULL"
                                                       : "PRAGMA synchronous=NORMAL");
    }
  } catch (const SQLite::Exception& e) {
    if (e.getErrorCode() == SQLITE_NOTADB) {
      throw StoreError(context + ": the file is not an SQLite database, so not an annals store",
                       false);
    }
    throw_store_error(context, e);
  }
  return db;
}

// One connection with the statements the store's own reads use.
struct Connection {
  Connection(SQLite::Database database, const std::string& context, bool reader = false,
             bool* refused = nullptr)
      : db(std::move(database)),
        read_stream(db, std::string("SELECT ") + kEventColumns +
                            " FROM annals_events WHERE stream_id = ?1 AND version >= ?2"
                            " ORDER BY version LIMIT ?3"),
        read_all(db, std::string("SELECT ") + kEventColumns +
                         " FROM annals_events WHERE position >= ?1 ORDER BY position LIMIT ?2"),
        head(db, "SELECT coalesce(max(position), 0) FROM annals_events"),
        stream_version(db, "SELECT max(version) FROM annals_events WHERE stream_id = ?1"),
        session(db, context, reader, refused) {}

  SQLite::Database db;  // declared first: destroyed after its statements
  SQLite::Statement read_stream, read_all, head, stream_version;
  SqliteSession session;
};

class SqliteEventStore final : public SqlEventStore {
 public:
  SqliteEventStore(const std::string& path, const StoreOptions& options)
      : path_(path),
        in_memory_(path.empty()),
        context_(in_memory_ ? "memory:" : "sqlite:" + printable(path, 1024)),
        options_(options),
        writer_(
            std::make_unique<Connection>(open_writer(path, in_memory_, options, "open " + context_),
                                         context_, false, &writer_refused_)),
        insert_(make_insert(*writer_)),
        last_(make_last(*writer_)),
        file_id_(file_identity(path_)) {}

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    return append(single_stream(stream_id, expected, std::move(events)));
  }

  AppendResult append(std::vector<StreamAppend> batch) override {
    validate_batch(batch);
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
    // This append's on_commit hooks run on its own caller's thread, after its group is done,
    // so that they never make the other callers of the group wait.
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
    const std::string what = "read_stream " + printable(stream_id, 1024);
    validate_from(from_version, "from_version", what);
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    with_connection(what, [&](Connection& c) {
      StatementUse q(c.read_stream);
      q->bind(1, std::string(stream_id));
      q->bind(2, sql_from(from_version));
      q->bind(3, sql_limit(max_count));
      while (q->executeStep()) out.push_back(read_row(*q));
    });
    return out;
  }

  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    validate_from(from_position, "from_position", "read_all");
    std::vector<RecordedEvent> out;
    if (max_count == 0) return out;
    with_connection("read_all", [&](Connection& c) {
      StatementUse q(c.read_all);
      q->bind(1, sql_from(from_position));
      q->bind(2, sql_limit(max_count));
      while (q->executeStep()) out.push_back(read_row(*q));
    });
    return out;
  }

  std::uint64_t head_position() const override {
    std::uint64_t head = 0;
    with_connection("head_position", [&](Connection& c) {
      StatementUse q(c.head);
      q->executeStep();
      head = static_cast<std::uint64_t>(q->getColumn(0).getInt64());
    });
    return head;
  }

  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    validate_stream_id(stream_id, "stream_version");
    std::optional<std::uint64_t> version;
    with_connection("stream_version " + printable(stream_id, 1024), [&](Connection& c) {
      StatementUse q(c.stream_version);
      q->bind(1, std::string(stream_id));
      q->executeStep();
      if (!q->getColumn(0).isNull()) version = q->getColumn(0).getInt64();
    });
    return version;
  }

  PayloadFormat payload_format() const noexcept override { return options_.payload_format; }

  void write_transaction(const std::function<void(SqlSession&)>& fn) override {
    refuse_reentry("write transaction");
    std::lock_guard lock(write_mutex_);
    WriterThread writer(writer_thread_);
    reopen_writer_if_refused();
    run_transaction(*writer_, SQLite::TransactionBehavior::IMMEDIATE, "write transaction", fn,
                    &writer_refused_);
  }

  void read_transaction(const std::function<void(SqlSession&)>& fn) const override {
    with_connection("read transaction", [&](Connection& c) {
      run_transaction(c, SQLite::TransactionBehavior::DEFERRED, "read transaction", fn);
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
    // Error contexts, built before BEGIN so that error paths need not allocate them.
    std::string where{};         // "append to <its first stream> in <store>[ (grouped ...)]"
    std::string commit_where{};  // where + ": commit"
  };

  static constexpr std::size_t kMaxGroupRequests = 64;
  static constexpr std::size_t kMaxGroupEvents = 4096;

  // REQUIRES: lock holds queue_mutex_, no leader active, this caller's request is queued.
  // Takes a group from the front of the queue, runs it without the queue lock, then hands
  // leadership on before the post-commit work so the next group can start meanwhile.
  void lead(std::unique_lock<std::mutex>& lock) {
    // No allocation from here on: leader_active_ must not stay set by an exception.
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
    // One wake-up for both: the group's callers return, and a queued one leads the next group.
    queue_cv_.notify_all();
    lock.unlock();
    // Each caller runs its own on_commit hooks; the listeners hear the group once, here,
    // after the others were released, so that a listener never makes them wait.
    if (head != 0) notify(head);
    lock.lock();
  }

  static std::unique_ptr<SQLite::Statement> make_insert(Connection& c) {
    return std::make_unique<SQLite::Statement>(
        c.db, std::string("INSERT INTO annals_events (") + kEventColumns +
                  ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
  }
  static std::unique_ptr<SQLite::Statement> make_last(Connection& c) {
    return std::make_unique<SQLite::Statement>(
        c.db,
        "SELECT position, recorded_at, hash FROM annals_events ORDER BY position DESC LIMIT 1");
  }

  // REQUIRES: write_mutex_ held, no transaction open on the writer.
  // SQLite opens a file this process may not write (permissions, a read-only mount; or only its
  // -wal, created by another user) read-only and never reopens it, so once the file is
  // writable again only a new connection can write: when the writer is read-only or its last
  // write was refused (SQLITE_READONLY), a new one is opened before the write, and the store
  // object recovers without being reopened. While the file stays read-only the old writer is
  // kept and the write fails with SQLITE_READONLY's message. The new connection must be on the
  // same file (device and inode) as the store opened, and pass open's checks (an annals store
  // of a schema version this build writes, in WAL mode): otherwise nothing is swapped and this
  // throws a non-transient StoreError, for the store must be reopened.
  void reopen_writer_if_refused() {
    if (in_memory_ ||
        (!writer_refused_ && sqlite3_db_readonly(writer_->db.getHandle(), "main") != 1)) {
      return;
    }
    std::optional<SQLite::Database> db;
    try {
      db.emplace(open_connection(path_, SQLite::OPEN_READWRITE, options_));
      if (sqlite3_db_readonly(db->getHandle(), "main") == 1) return;
    } catch (...) {  // keep the refused writer: the write says why it cannot be done
      return;
    }
    // Stat'ed after the open: a file swapped in before it is seen (one swapped in after it
    // fails the write rather than writing elsewhere).
    const auto now = file_identity(path_);
    if (file_id_ && now != file_id_) {
      throw StoreError("write to " + context_ + ": the file at '" + printable(path_, 1024) +
                           "' was replaced (or removed) since the store opened it: nothing was "
                           "written; reopen the store",
                       false);
    }
    const std::string context = "write to " + context_ + ": reopening the writer";
    try {
      if (inspect(*db, context)) {
        throw StoreError(context +
                             ": the file is now an empty database, not the store: "
                             "nothing was written; reopen the store",
                         false);
      }
      require_wal(*db, context);
    } catch (const SQLite::Exception&) {  // busy, I/O: the write will say
      return;
    }
    try {
      db->exec(options_.synchronous == Synchronous::full ? "PRAGMA synchronous=FULL"
                                                         : "PRAGMA synchronous=NORMAL");
      auto fresh = std::make_unique<Connection>(std::move(*db), context_, false, &writer_refused_);
      auto insert = make_insert(*fresh);
      auto last = make_last(*fresh);
      // The old statements go before their connection.
      insert_ = std::move(insert);
      last_ = std::move(last);
      writer_ = std::move(fresh);
      writer_refused_ = false;
    } catch (...) {  // keep the old writer: the write says why it cannot be done
    }
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
        // Everything the group needs allocated up front, before BEGIN.
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
          r->commit_where = r->where + ": commit";
        }
        reopen_writer_if_refused();
        stats_groups_.fetch_add(1, std::memory_order_relaxed);
        stats_requests_.fetch_add(group.size(), std::memory_order_relaxed);
        std::uint64_t seen = stats_max_group_.load(std::memory_order_relaxed);
        while (seen < group.size() && !stats_max_group_.compare_exchange_weak(
                                          seen, group.size(), std::memory_order_relaxed)) {
        }
        run_transaction_of(group, hooks, kept);
      } catch (...) {
        // Whatever got here (an allocation, a non-SQLite exception from the commit), nothing
        // of the group may count as written: roll back while still holding the writer.
        abort_group(group, kept, hooks, std::current_exception());
      }
    } catch (...) {  // the lock itself failed: nothing was started
      for (Request* r : group) {
        if (!r->error) r->error = std::current_exception();
      }
    }
  }

  // Runs the group's transaction. On return every request is either kept (committed) or has
  // an error, and hooks heard on_rollback for each append of theirs that was undone. An
  // exception escaping leaves the cleanup to run_group (abort_group with `kept`).
  void run_transaction_of(std::span<Request*> group,
                          const std::vector<std::shared_ptr<AppendHook>>& hooks,
                          std::vector<Request*>& kept) {
    sqlite3* db = writer_->db.getHandle();
    try {
      writer_->db.exec("BEGIN IMMEDIATE");
    } catch (const SQLite::Exception& e) {
      for (Request* r : group) r->error = translated(r->where, e);
      return;
    }
    const bool savepoints = group.size() > 1;
    Tail tail;
    try {
      tail = read_tail();
    } catch (const SQLite::Exception& e) {
      // Each caller is told about its own append (an I/O error reading the last event).
      rollback_quietly();
      for (Request* r : group) r->error = translated(r->where, e);
      return;
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      rollback_quietly();
      for (Request* r : group) r->error = error;
      return;
    }
    for (Request* r : group) {
      if (savepoints) {
        try {
          writer_->db.exec("SAVEPOINT annals_append");
        } catch (const SQLite::Exception& e) {
          abort_group(group, kept, hooks, translated(r->where, e));
          return;
        }
      }
      const Tail before = tail;
      bool hooks_entered = false;
      try {
        append_request(*r, tail, hooks, hooks_entered);
        if (savepoints) {
          try {
            writer_->db.exec("RELEASE annals_append");
          } catch (const SQLite::Exception& e) {
            // e.g. BUSY: a statement a hook left unfinished is still writing. This append
            // fails alone (rolled back to its savepoint below).
            throw_store_error(r->where + ": release savepoint", e);
          }
        }
        kept.push_back(r);  // reserved before BEGIN: cannot throw
        r->kept = true;     // provisionally: until the COMMIT
        continue;
      } catch (const StoreError& e) {
        r->error = std::current_exception();
        // A hook's statement failing (an inline projection's SQL meeting an I/O error) names
        // only the statement: say which append it failed.
        if (!std::string_view(e.what()).starts_with("append to ")) {
          try {
            r->error = std::make_exception_ptr(StoreError(r->where + ": " + e.what(),
                                                          e.transient()));
          } catch (...) {  // out of memory: the statement's own message then
          }
        }
      } catch (...) {
        r->error = std::current_exception();
      }
      tail = before;
      // The transaction is lost only if it is really gone (an I/O error or a full disk can
      // make SQLite roll it back) or if this append's writes cannot be undone on their own,
      // in which case it is rolled back here explicitly.
      bool lost = sqlite3_get_autocommit(db) != 0;
      if (!lost && savepoints) {
        try {
          writer_->db.exec("ROLLBACK TO annals_append");
        } catch (...) {
          rollback_quietly();
          lost = true;
        }
        if (!lost) {
          try {
            writer_->db.exec("RELEASE annals_append");
          } catch (...) {
            // The savepoint is empty now; if it cannot be released (a pending statement),
            // it stays nested in the transaction and COMMIT ends it. Not lost.
          }
          lost = sqlite3_get_autocommit(db) != 0;
        }
      } else if (!savepoints) {
        rollback_quietly();  // the only request: nothing left to commit
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
      rollback_quietly();
      return;
    }
    try {
      writer_->db.exec("COMMIT");
    } catch (const SQLite::Exception& e) {
      // The transaction may still be open (BUSY: a statement still writing): abort_group
      // rolls it back, so the writer is never left inside it.
      abort_group(group, kept, hooks, e, &Request::commit_where);
    }
  }

  // The transaction is lost: it is rolled back, the kept requests' hooks hear on_rollback, and
  // every request not already refused on its own fails with `cause`.
  void abort_group(std::span<Request*> group, std::vector<Request*>& kept,
                   const std::vector<std::shared_ptr<AppendHook>>& hooks,
                   const std::exception_ptr& cause) noexcept {
    rollback_quietly();
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

  // As above, each request failing with `e` in its own context (`context` names the member
  // of Request holding it).
  void abort_group(std::span<Request*> group, std::vector<Request*>& kept,
                   const std::vector<std::shared_ptr<AppendHook>>& hooks,
                   const SQLite::Exception& e, std::string Request::*context) noexcept {
    for (Request* r : group) {
      if (!r->error) r->error = translated(r->*context, e);
    }
    abort_group(group, kept, hooks, std::exception_ptr());
  }

  void rollback_quietly() noexcept {
    if (sqlite3_get_autocommit(writer_->db.getHandle()) != 0) return;
    try {
      writer_->db.exec("ROLLBACK");
    } catch (...) {  // nothing better to do: the next BEGIN will say what is wrong
    }
  }

  // Where the log ends, as seen inside the writer's transaction.
  struct Tail {
    std::uint64_t position = 0;
    Timestamp recorded_at{};
    EventHash hash{};  // the chain starts from 32 zero bytes
  };

  // Throws SQLite::Exception for the caller to translate in each append's own context.
  Tail read_tail() {
    Tail tail;
    {
      StatementUse last(*last_);
      if (last->executeStep()) {
        tail.position = static_cast<std::uint64_t>(last->getColumn(0).getInt64());
        tail.recorded_at = from_micros(last->getColumn(1).getInt64());
        const SQLite::Column hash = last->getColumn(2);
        if (static_cast<std::size_t>(hash.getBytes()) != tail.hash.size()) {
          throw IntegrityError("append: the event at position " + std::to_string(tail.position) +
                                   " has a damaged hash; verify the log",
                               tail.position);
        }
        std::memcpy(tail.hash.data(), hash.getBlob(), tail.hash.size());
      }
    }
    return tail;
  }

  // Checks and writes one request at the tail, then runs the hooks' on_append. Throws the
  // annals error its caller should get; tail moves past its events.
  void append_request(Request& r, Tail& tail,
                      const std::vector<std::shared_ptr<AppendHook>>& hooks,
                      bool& hooks_entered) {
    std::vector<StreamAppend>& batch = *r.batch;
    const std::string* current_stream = &batch.front().stream_id;
    const NewEvent* current_event = nullptr;
    try {
      // The clock is read under the file lock and never runs backwards along the log, so
      // recorded_at rises with position even when the system clock steps back.
      const Timestamp recorded_at = std::max(read_clock(options_), tail.recorded_at);
      r.result.first_position = tail.position + 1;
      for (StreamAppend& part : batch) {
        current_stream = &part.stream_id;
        std::optional<std::uint64_t> actual;
        {
          StatementUse q(writer_->stream_version);
          q->bindNoCopy(1, part.stream_id);
          q->executeStep();
          if (!q->getColumn(0).isNull()) actual = q->getColumn(0).getInt64();
        }
        check_expected(part.stream_id, part.expected, actual);
        std::uint64_t version = actual.value_or(0);
        for (NewEvent& e : part.events) {
          current_event = &e;
          RecordedEvent rec{++tail.position, part.stream_id,   ++version, e.event_id,
                            e.type,          e.schema_version, e.payload, e.metadata,
                            recorded_at,     e.payload_format, {}};
          rec.hash = chain_hash(tail.hash, rec);
          tail.hash = rec.hash;
          insert(rec);
          if (!hooks.empty()) r.appended.push_back(std::move(rec));
        }
        r.result.stream_version = version;
      }
      tail.recorded_at = recorded_at;
      r.result.last_position = tail.position;
      current_event = nullptr;
      hooks_entered = true;
      for (const auto& hook : hooks) hook->on_append(writer_->session, r.appended);
    } catch (const SQLite::Exception& e) {
      if (e.getExtendedErrorCode() == SQLITE_CONSTRAINT_UNIQUE && current_event != nullptr) {
        if (std::string_view(e.what()).find("event_id") != std::string_view::npos) {
          throw_duplicate_event_id(*current_stream, current_event->event_id);
        }
        // (stream_id, version) can only clash if another writer bypassed the lock.
        throw ConcurrencyError("append to " + printable(*current_stream, 1024) +
                               ": another writer appended the same version (" + e.what() + ")");
      }
      throw_store_error("append to " + printable(*current_stream, 1024) + " in " + context_, e,
                        false, writer_->db.getHandle(), &writer_refused_);
    }
  }

  std::exception_ptr translated(const std::string& context, const SQLite::Exception& e) noexcept {
    try {
      throw_store_error(context, e, false, writer_->db.getHandle(), &writer_refused_);
    } catch (...) {
      return std::current_exception();
    }
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
    explicit WriterThread(std::atomic<std::thread::id>& slot) noexcept
        : slot_(slot), previous_(slot.load()) {
      slot_.store(std::this_thread::get_id());
    }
    // Restores the previous holder: a memory: store's read nests inside run_group on the
    // same thread, and must not unmark the writer when it ends.
    ~WriterThread() { slot_.store(previous_); }
    WriterThread(const WriterThread&) = delete;
    WriterThread& operator=(const WriterThread&) = delete;

   private:
    std::atomic<std::thread::id>& slot_;
    const std::thread::id previous_;
  };

  void insert(const RecordedEvent& e) {
    const std::string event_id = to_string(e.event_id);
    StatementUse ins(*insert_);
    ins->bind(1, static_cast<std::int64_t>(e.position));
    ins->bindNoCopy(2, e.stream_id);
    ins->bind(3, static_cast<std::int64_t>(e.version));
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
    ins->bind(14, to_micros(e.recorded_at));
    ins->bindNoCopy(15, e.hash.data(), static_cast<int>(e.hash.size()));
    ins->exec();
  }

  // `refused`: the writer's flag, for a write transaction.
  void run_transaction(Connection& c, SQLite::TransactionBehavior behavior, const char* what,
                       const std::function<void(SqlSession&)>& fn, bool* refused = nullptr) const {
    sqlite3* writer = refused != nullptr ? c.db.getHandle() : nullptr;
    std::optional<SQLite::Transaction> tx;
    try {
      tx.emplace(c.db, behavior);
    } catch (const SQLite::Exception& e) {
      throw_store_error(std::string(what) + " in " + context_, e, false, writer, refused);
    }
    fn(c.session);
    try {
      tx->commit();
    } catch (const SQLite::Exception& e) {
      throw_store_error(std::string(what) + " in " + context_ + ": commit", e, false, writer,
                        refused);
    }
  }

  // Runs fn on a read connection (the writer, for an in-memory store); SQLite errors become
  // annals errors naming `what`.
  template <class Fn>
  void with_connection(const std::string& what, Fn&& fn) const {
    if (in_memory_) {
      std::lock_guard lock(write_mutex_);
      // The read holds the writer (one connection): an append from inside it (a read
      // transaction's callback) would wait for itself, so refuse_reentry() must refuse it.
      WriterThread writer(writer_thread_);
      try {
        fn(*writer_);
      } catch (const SQLite::Exception& e) {
        throw_store_error(what + " in " + context_, e);
      }
      return;
    }
    std::unique_ptr<Connection> reader;
    try {
      {
        std::lock_guard lock(readers_mutex_);
        if (!readers_.empty()) {
          reader = std::move(readers_.back());
          readers_.pop_back();
        }
      }
      if (!reader) {
        reader = std::make_unique<Connection>(
            open_connection(path_, SQLite::OPEN_READONLY, options_), context_, /*reader=*/true);
      }
      fn(*reader);
    } catch (const SQLite::Exception& e) {
      throw_store_error(what + " in " + context_, e);
    }
    std::lock_guard lock(readers_mutex_);
    readers_.push_back(std::move(reader));
  }

  void notify(std::uint64_t head) noexcept {
    std::vector<std::function<void(std::uint64_t)>> listeners;
    {
      std::lock_guard lock(listeners_mutex_);
      for (const auto& [id, fn] : listeners_) listeners.push_back(fn);
    }
    for (const auto& fn : listeners) fn(head);
  }

  const std::string path_;
  const bool in_memory_;
  const std::string context_;
  const StoreOptions options_;

  // Guards writer_, insert_, last_ and hooks_. Recursive so that a memory: store's reads (on
  // the writer's connection) work from inside a hook; appends and write transactions from
  // there are refused by refuse_reentry().
  mutable std::recursive_mutex write_mutex_;
  mutable std::atomic<std::thread::id> writer_thread_{};  // the thread holding the writer, if any
  std::unique_ptr<Connection> writer_;
  std::unique_ptr<SQLite::Statement> insert_, last_;  // on writer_; replaced with it
  bool writer_refused_ = false;  // the writer's last write failed with SQLITE_READONLY
  // The file the store opened (device, inode), to tell it from one put at its path later.
  const std::optional<std::pair<dev_t, ino_t>> file_id_;
  std::vector<std::shared_ptr<AppendHook>> hooks_;

  mutable std::mutex readers_mutex_;
  mutable std::vector<std::unique_ptr<Connection>> readers_;  // idle read connections

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

std::shared_ptr<SqlEventStore> make_sqlite_event_store(const std::string& path,
                                                       const StoreOptions& options) {
  try {
    return std::make_shared<SqliteEventStore>(path, options);
  } catch (const SQLite::Exception& e) {
    throw_store_error("open " + (path.empty() ? std::string("memory:") : "sqlite:" + path), e);
  }
}

}  // namespace annals::detail
