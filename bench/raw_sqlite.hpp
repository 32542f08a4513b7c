#pragma once

// The baseline: the sqlite3 C API with prepared statements, on an event-shaped table
//   events(position INTEGER PRIMARY KEY, stream_id TEXT, version INTEGER, event_id TEXT,
//          type TEXT, payload BLOB, recorded_at INTEGER, UNIQUE(stream_id, version))
// in WAL mode at the same synchronous setting annals runs with. Not installed.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace annals::bench::raw {

// A prepared statement, finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, double value);
  Statement& bind_text(int index, std::string_view value);  // not copied: keep it alive
  Statement& bind_blob(int index, std::string_view value);  // not copied: keep it alive
  // Steps once; true if a row is available.
  bool step();
  // Steps to the end (a statement without rows) and resets.
  void run();
  void reset();

  [[nodiscard]] std::int64_t integer(int column) const;
  [[nodiscard]] std::string_view text(int column) const;
  [[nodiscard]] std::string_view blob(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A connection in WAL mode at the given synchronous setting.
class Database {
 public:
  Database(const std::filesystem::path& file, bool synchronous_full);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// Creates the events table.
void create_events_table(Database& db);

// The insert of one event row: $1 stream_id, $2 version, $3 event_id, $4 type, $5 payload,
// $6 recorded_at.
inline constexpr const char* kInsertEvent =
    "INSERT INTO events (stream_id, version, event_id, type, payload, recorded_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

}  // namespace annals::bench::raw
