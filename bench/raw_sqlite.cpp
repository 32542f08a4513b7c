#include "raw_sqlite.hpp"

#include <climits>
#include <stdexcept>

namespace annals::bench::raw {

namespace {

[[noreturn]] void fail(sqlite3* db, std::string_view what) {
  throw std::runtime_error("baseline SQLite: " + std::string(what) + ": " +
                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

int size_of(std::string_view bytes) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) throw std::runtime_error("value too big");
  return static_cast<int>(bytes.size());
}

}  // namespace

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v3(db, sql.data(), size_of(sql), SQLITE_PREPARE_PERSISTENT, &stmt_,
                         nullptr) != SQLITE_OK) {
    fail(db, "prepare " + std::string(sql));
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, std::int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
  return *this;
}

Statement& Statement::bind(int index, double value) {
  if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  if (sqlite3_bind_text(stmt_, index, value.data(), size_of(value), SQLITE_STATIC) != SQLITE_OK) {
    fail(db_, "bind");
  }
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view value) {
  if (sqlite3_bind_blob(stmt_, index, value.data(), size_of(value), SQLITE_STATIC) != SQLITE_OK) {
    fail(db_, "bind");
  }
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_);
  sqlite3_reset(stmt_);
  fail(db_, "step " + sql);
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() { sqlite3_reset(stmt_); }

std::int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string_view Statement::text(int column) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return {p == nullptr ? "" : p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::string_view Statement::blob(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return {p == nullptr ? "" : p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

Database::Database(const std::filesystem::path& file, bool synchronous_full) {
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("baseline SQLite: open " + file.string() + ": " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec(synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

Database::~Database() { sqlite3_close(db_); }

void Database::exec(std::string_view sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message != nullptr ? message : "unknown error";
    sqlite3_free(message);
    throw std::runtime_error("baseline SQLite: " + std::string(sql) + ": " + text);
  }
}

void create_events_table(Database& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS events ("
      " position INTEGER PRIMARY KEY,"
      " stream_id TEXT NOT NULL,"
      " version INTEGER NOT NULL,"
      " event_id TEXT NOT NULL,"
      " type TEXT NOT NULL,"
      " payload BLOB NOT NULL,"
      " recorded_at INTEGER NOT NULL,"
      " UNIQUE (stream_id, version))");
}

}  // namespace annals::bench::raw
