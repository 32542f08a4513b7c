#include "support/database_image.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

namespace annals::test {

namespace {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtCloser {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtCloser>;

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw std::runtime_error("DatabaseImage: " + what + ": " + (db ? sqlite3_errmsg(db) : "?"));
}

Stmt prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) fail(db, sql);
  return Stmt(raw);
}

void append_value(std::string& out, sqlite3_stmt* s, int column) {
  switch (sqlite3_column_type(s, column)) {
    case SQLITE_NULL:
      out += "N;";
      return;
    case SQLITE_INTEGER:
      out += "I" + std::to_string(sqlite3_column_int64(s, column)) + ";";
      return;
    case SQLITE_FLOAT: {
      char buffer[40];
      std::snprintf(buffer, sizeof buffer, "F%.17g;", sqlite3_column_double(s, column));
      out += buffer;
      return;
    }
    case SQLITE_TEXT: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, column));
      const int n = sqlite3_column_bytes(s, column);
      out += "T" + std::to_string(n) + ":";
      out.append(text, static_cast<std::size_t>(n));
      out += ";";
      return;
    }
    default: {  // SQLITE_BLOB
      const auto* blob = static_cast<const char*>(sqlite3_column_blob(s, column));
      const int n = sqlite3_column_bytes(s, column);
      out += "B" + std::to_string(n) + ":";
      if (n > 0) out.append(blob, static_cast<std::size_t>(n));
      out += ";";
      return;
    }
  }
}

std::string quoted_identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("file_bytes: cannot read '" + path + "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

DatabaseImage DatabaseImage::capture(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) fail(raw, "open " + path);
  sqlite3_busy_timeout(db.get(), 5000);

  DatabaseImage image;
  {
    Stmt checkpoint = prepare(db.get(), "PRAGMA wal_checkpoint(TRUNCATE)");
    if (sqlite3_step(checkpoint.get()) != SQLITE_ROW) fail(db.get(), "checkpoint " + path);
    if (sqlite3_column_int(checkpoint.get(), 0) != 0) {
      throw std::runtime_error("DatabaseImage: the checkpoint of " + path +
                               " did not complete (busy)");
    }
  }

  std::string& out = image.dump;
  {
    Stmt s = prepare(db.get(),
                     "SELECT (SELECT application_id FROM pragma_application_id),"
                     " (SELECT user_version FROM pragma_user_version)");
    if (sqlite3_step(s.get()) != SQLITE_ROW) fail(db.get(), "pragmas");
    out += "application_id=" + std::to_string(sqlite3_column_int64(s.get(), 0)) +
           " user_version=" + std::to_string(sqlite3_column_int64(s.get(), 1)) + "\n";
  }
  std::vector<std::string> tables;
  {
    Stmt s = prepare(db.get(),
                     "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name, type");
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
      out += "schema ";
      for (int c = 0; c < 4; ++c) append_value(out, s.get(), c);
      out += "\n";
      const auto* type = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0));
      const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 1));
      if (std::string(type) == "table") tables.emplace_back(name);
    }
  }
  for (const std::string& table : tables) {
    Stmt probe = prepare(db.get(), "SELECT * FROM " + quoted_identifier(table) + " LIMIT 0");
    const int columns = sqlite3_column_count(probe.get());
    std::string order;
    for (int c = 1; c <= columns; ++c) order += (c == 1 ? "" : ", ") + std::to_string(c);
    Stmt rows = prepare(db.get(), "SELECT * FROM " + quoted_identifier(table) +
                                      (columns > 0 ? " ORDER BY " + order : ""));
    out += "table " + table + " (" + std::to_string(columns) + " columns)\n";
    int rc_step = SQLITE_OK;
    while ((rc_step = sqlite3_step(rows.get())) == SQLITE_ROW) {
      for (int c = 0; c < columns; ++c) append_value(out, rows.get(), c);
      out += "\n";
    }
    if (rc_step != SQLITE_DONE) fail(db.get(), "read table " + table);
  }
  db.reset();  // close before reading the file: nothing of ours is cached in it
  image.file = file_bytes(path);
  return image;
}

std::string difference(const DatabaseImage& before, const DatabaseImage& after) {
  if (before.dump != after.dump) {
    const auto [a, b] =
        std::mismatch(before.dump.begin(), before.dump.end(), after.dump.begin(), after.dump.end());
    const auto offset = static_cast<std::size_t>(a - before.dump.begin());
    const std::size_t from = offset > 60 ? offset - 60 : 0;
    return "the table dump differs at byte " + std::to_string(offset) + " (sizes " +
           std::to_string(before.dump.size()) + " and " + std::to_string(after.dump.size()) +
           "); before: ..." + before.dump.substr(from, 160) + "\nafter: ..." +
           after.dump.substr(from, 160);
  }
  if (before.file != after.file) {
    const auto [a, b] =
        std::mismatch(before.file.begin(), before.file.end(), after.file.begin(), after.file.end());
    return "the rows are equal but the main database file differs at byte " +
           std::to_string(a - before.file.begin()) + " (sizes " +
           std::to_string(before.file.size()) + " and " + std::to_string(after.file.size()) + ")";
  }
  return "";
}

}  // namespace annals::test
