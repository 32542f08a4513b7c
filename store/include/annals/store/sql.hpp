#pragma once

// A small SQL interface over whichever database a store lives in, so projections and query
// repositories write their SQL once for every backend. No driver type appears here.
//
//   session.execute("INSERT INTO annals_things (id, n) VALUES ($1, $2)", {std::string(id), n});
//   for (const SqlRow& row : session.query("SELECT id, n FROM annals_things WHERE n > $1", {5}))
//     use(row.text(0), row.integer(1));
//
// Placeholders are $1, $2, ... (the same in SQLite and PostgreSQL); every value is bound, never
// spliced into the SQL text. A session is lent to a callback by SqlEventStore and is valid only
// inside it; it is not thread-safe.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace annals {

// Bytes bound as a BLOB (a std::string binds as TEXT). Results never hold one: SQLite BLOB
// columns read back as std::string.
struct SqlBlob {
  std::string bytes{};
  friend bool operator==(const SqlBlob&, const SqlBlob&) = default;
};

using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string, SqlBlob>;

// One result row. Accessors throw StoreError naming the column when its type is not the one
// asked for (NULL included, except through the optional_ accessors).
class SqlRow {
 public:
  SqlRow() = default;
  explicit SqlRow(std::vector<SqlValue> values) : values_(std::move(values)) {}

  [[nodiscard]] std::size_t size() const noexcept { return values_.size(); }
  [[nodiscard]] const SqlValue& operator[](std::size_t column) const { return values_.at(column); }
  [[nodiscard]] bool is_null(std::size_t column) const;
  [[nodiscard]] std::int64_t integer(std::size_t column) const;
  [[nodiscard]] double real(std::size_t column) const;  // an integer column converts
  [[nodiscard]] const std::string& text(std::size_t column) const;
  [[nodiscard]] std::optional<std::string> optional_text(std::size_t column) const;
  [[nodiscard]] std::optional<std::int64_t> optional_integer(std::size_t column) const;

  std::vector<SqlValue>& values() noexcept { return values_; }

  friend bool operator==(const SqlRow&, const SqlRow&) = default;

 private:
  std::vector<SqlValue> values_;
};

// A query being read row by row, for results too large to hold at once.
class SqlCursor {
 public:
  virtual ~SqlCursor() = default;
  // Reads the next row into `row`; false when there are no more.
  virtual bool next(SqlRow& row) = 0;
};

class SqlSession {
 public:
  virtual ~SqlSession() = default;

  // Runs one statement; returns the number of rows it changed.
  std::size_t execute(std::string_view sql, std::initializer_list<SqlValue> params = {}) {
    return execute_span(sql, std::span<const SqlValue>(params.begin(), params.size()));
  }
  std::size_t execute(std::string_view sql, const std::vector<SqlValue>& params) {
    return execute_span(sql, std::span<const SqlValue>(params));
  }

  // Runs one query and returns all its rows.
  [[nodiscard]] std::vector<SqlRow> query(std::string_view sql,
                                          std::initializer_list<SqlValue> params = {}) {
    return query_span(sql, std::span<const SqlValue>(params.begin(), params.size()));
  }
  [[nodiscard]] std::vector<SqlRow> query(std::string_view sql,
                                          const std::vector<SqlValue>& params) {
    return query_span(sql, std::span<const SqlValue>(params));
  }

  // Runs one query and returns a cursor over its rows, valid until the session ends. Several
  // cursors may be open at once, and other calls may be made between their rows.
  [[nodiscard]] std::unique_ptr<SqlCursor> open_cursor(std::string_view sql,
                                                       const std::vector<SqlValue>& params = {}) {
    return cursor_span(sql, std::span<const SqlValue>(params));
  }

  // Runs several ;-separated statements without parameters (schema setup).
  virtual void execute_script(std::string_view sql) = 0;

  // "sqlite" or "postgresql".
  [[nodiscard]] virtual std::string_view dialect() const noexcept = 0;

  // True if a table (or view) of that name exists in the store's schema.
  [[nodiscard]] bool table_exists(std::string_view name);

 protected:
  virtual std::size_t execute_span(std::string_view sql, std::span<const SqlValue> params) = 0;
  virtual std::vector<SqlRow> query_span(std::string_view sql,
                                         std::span<const SqlValue> params) = 0;
  virtual std::unique_ptr<SqlCursor> cursor_span(std::string_view sql,
                                                 std::span<const SqlValue> params) = 0;
};

}  // namespace annals
