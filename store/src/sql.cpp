#include "annals/store/sql.hpp"

#include "annals/events/error.hpp"

namespace annals {

namespace {
[[noreturn]] void wrong_type(std::size_t column, const SqlValue& value, const char* wanted) {
  static constexpr const char* kNames[] = {"NULL", "an integer", "a real", "text", "a blob"};
  throw StoreError("SQL result column " + std::to_string(column) + " is " + kNames[value.index()] +
                       ", expected " + wanted,
                   false);
}
}  // namespace

bool SqlSession::table_exists(std::string_view name) {
  if (dialect() == "sqlite") {
    return !query("SELECT 1 FROM sqlite_schema WHERE name = $1 AND type IN ('table', 'view')",
                  {std::string(name)})
                .empty();
  }
  return !query("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
                " AND table_name = $1",
                {std::string(name)})
              .empty();
}

bool SqlRow::is_null(std::size_t column) const {
  return std::holds_alternative<std::nullptr_t>(values_.at(column));
}

std::int64_t SqlRow::integer(std::size_t column) const {
  const SqlValue& v = values_.at(column);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  wrong_type(column, v, "an integer");
}

double SqlRow::real(std::size_t column) const {
  const SqlValue& v = values_.at(column);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  wrong_type(column, v, "a number");
}

const std::string& SqlRow::text(std::size_t column) const {
  const SqlValue& v = values_.at(column);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  wrong_type(column, v, "text");
}

std::optional<std::string> SqlRow::optional_text(std::size_t column) const {
  if (is_null(column)) return std::nullopt;
  return text(column);
}

std::optional<std::int64_t> SqlRow::optional_integer(std::size_t column) const {
  if (is_null(column)) return std::nullopt;
  return integer(column);
}

}  // namespace annals
