#include "args.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "annals/events/printable.hpp"

namespace annals::cli {

namespace {

constexpr std::string_view kSqliteScheme = "sqlite:";
constexpr std::string_view kMemoryScheme = "memory:";
constexpr std::string_view kRedacted = "***";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool is_postgres_url(std::string_view uri) {
  return uri.starts_with("postgresql://") || uri.starts_with("postgres://");
}

// "postgresql://user:secret@host/db?password=secret&x=y" -> "postgresql://user:***@host/db?
// password=***&x=y". Conservative: the user part runs to the last '@' before the query, so a
// password holding an unencoded '/' is hidden too (with whatever follows it up to the '@').
std::string redact_url(std::string_view uri) {
  const std::size_t authority = uri.find("://") + 3;
  const std::size_t query = std::min(uri.find('?', authority), uri.size());
  std::string out(uri.substr(0, authority));
  const std::string_view before_query = uri.substr(authority, query - authority);
  const std::size_t at = before_query.rfind('@');
  if (at != std::string_view::npos && before_query.find(':') < at) {
    out += before_query.substr(0, before_query.find(':') + 1);
    out += kRedacted;
    out += before_query.substr(at);
  } else {
    out += before_query;
  }
  if (query == uri.size()) return out;
  out += '?';
  std::string_view rest = uri.substr(query + 1);
  for (bool first = true;; first = false) {
    const std::size_t amp = rest.find('&');
    const std::string_view param = rest.substr(0, amp);
    if (!first) out += '&';
    if (param.substr(0, param.find('=')) == "password" && param.find('=') != std::string_view::npos) {
      out += "password=";
      out += kRedacted;
    } else {
      out += param;
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return out;
}

// A libpq keyword string (keyword = value pairs, values bare or single-quoted with backslash
// escapes) with the value of every password keyword replaced.
std::string redact_keywords(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  const std::size_t n = text.size();
  const auto malformed = [&]() -> std::string {
    const std::size_t at = text.find("password");
    if (at == std::string_view::npos) return std::string(text);
    return std::string(text.substr(0, at)) + "password=" + std::string(kRedacted) +
           " (the rest not shown)";
  };
  while (true) {
    const std::size_t space = i;
    while (i < n && is_space(text[i])) ++i;
    out += text.substr(space, i - space);
    if (i == n) return out;
    const std::size_t key = i;
    while (i < n && !is_space(text[i]) && text[i] != '=') ++i;
    const std::string_view keyword = text.substr(key, i - key);
    while (i < n && is_space(text[i])) ++i;
    if (i == n || text[i] != '=') return malformed();
    ++i;
    while (i < n && is_space(text[i])) ++i;
    out += text.substr(key, i - key);  // the keyword, '=' and the spaces around it
    const std::size_t value = i;
    if (i < n && text[i] == '\'') {
      ++i;
      while (i < n && text[i] != '\'') i += text[i] == '\\' ? 2 : 1;
      if (i >= n) return malformed();
      ++i;
    } else {
      while (i < n && !is_space(text[i])) i += text[i] == '\\' ? 2 : 1;
      i = std::min(i, n);
    }
    if (keyword == "password") {
      out += kRedacted;
    } else {
      out += text.substr(value, i - value);
    }
  }
}

}  // namespace

std::string store_uri(const Target& target) {
  if (!target.db.empty() && !target.uri.empty()) {
    throw InvalidArgument("give --db or --uri, not both");
  }
  if (!target.db.empty()) {
    if (is_postgres_url(target.db)) {
      throw InvalidArgument("--db '" + printable(display_uri(target.db)) +
                            "' is a PostgreSQL URI; --db takes an SQLite file, give a PostgreSQL "
                            "store with --uri");
    }
    return std::string(kSqliteScheme) + target.db;
  }
  if (!target.uri.empty()) return target.uri;
  throw InvalidArgument("no store given: pass --db PATH or --uri URI");
}

StoreKind store_kind(std::string_view uri) {
  if (uri.starts_with(kSqliteScheme)) return StoreKind::sqlite;
  if (uri.starts_with(kMemoryScheme)) return StoreKind::memory;
  if (is_postgres_url(uri)) return StoreKind::postgresql;
  // A keyword string: a keyword (letters and '_', as libpq's keywords are), then '='.
  std::size_t i = 0;
  while (i < uri.size() && is_space(uri[i])) ++i;
  const std::size_t key = i;
  while (i < uri.size() && ((uri[i] >= 'a' && uri[i] <= 'z') || (uri[i] >= 'A' && uri[i] <= 'Z') ||
                            uri[i] == '_')) {
    ++i;
  }
  if (i == key) return StoreKind::unknown;
  while (i < uri.size() && is_space(uri[i])) ++i;
  return i < uri.size() && uri[i] == '=' ? StoreKind::postgresql : StoreKind::unknown;
}

std::string display_uri(std::string_view uri) {
  if (store_kind(uri) != StoreKind::postgresql) return std::string(uri);
  return is_postgres_url(uri) ? redact_url(uri) : redact_keywords(uri);
}

std::optional<std::filesystem::path> sqlite_file(std::string_view uri) {
  if (store_kind(uri) != StoreKind::sqlite) return std::nullopt;
  std::string_view path = uri.substr(kSqliteScheme.size());
  path = path.substr(0, path.find('?'));
  return std::filesystem::path(std::string(path));
}

namespace {

// Reads exactly `digits` decimal digits at text[pos...]; advances pos.
int read_digits(std::string_view text, std::size_t& pos, std::size_t digits,
                std::string_view what) {
  int value = 0;
  if (pos + digits > text.size()) {
    throw InvalidArgument("time '" + printable(text) + "': " + std::string(what) + " missing");
  }
  // Digits only: from_chars alone takes a '-', so "T-1:00:00Z" would read as hour -1.
  for (std::size_t i = pos; i < pos + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      throw InvalidArgument("time '" + printable(text) + "': bad " + std::string(what));
    }
  }
  const auto [end, ec] = std::from_chars(text.data() + pos, text.data() + pos + digits, value);
  if (ec != std::errc{} || end != text.data() + pos + digits) {
    throw InvalidArgument("time '" + printable(text) + "': bad " + std::string(what));
  }
  pos += digits;
  return value;
}

void expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) {
    throw InvalidArgument("time '" + printable(text) + "': expected '" + std::string(1, c) +
                          "' at offset " + std::to_string(pos) +
                          " (format 2026-11-21T09:30:00[.123456]Z, or integer microseconds)");
  }
  ++pos;
}

}  // namespace

Timestamp parse_time(std::string_view text) {
  if (text.empty()) throw InvalidArgument("time is empty");
  {
    std::int64_t micros = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), micros);
    if (ec == std::errc{} && end == text.data() + text.size()) return from_micros(micros);
  }
  std::size_t pos = 0;
  const int year = read_digits(text, pos, 4, "year");
  expect(text, pos, '-');
  const int month = read_digits(text, pos, 2, "month");
  expect(text, pos, '-');
  const int day = read_digits(text, pos, 2, "day");
  if (pos < text.size() && (text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
  } else {
    expect(text, pos, 'T');
  }
  const int hour = read_digits(text, pos, 2, "hour");
  expect(text, pos, ':');
  const int minute = read_digits(text, pos, 2, "minute");
  expect(text, pos, ':');
  const int second = read_digits(text, pos, 2, "second");
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits == 6) {
        throw InvalidArgument("time '" + printable(text) +
                              "': more than 6 fractional digits (microseconds)");
      }
      micros = micros * 10 + (text[pos] - '0');
      ++pos;
      ++digits;
    }
    if (digits == 0) throw InvalidArgument("time '" + printable(text) + "': empty fraction");
    for (; digits < 6; ++digits) micros *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    const int oh = read_digits(text, pos, 2, "offset hours");
    expect(text, pos, ':');
    const int om = read_digits(text, pos, 2, "offset minutes");
    if (oh > 23 || om > 59) throw InvalidArgument("time '" + printable(text) + "': bad offset");
    offset_minutes = sign * (oh * 60 + om);
  } else {
    throw InvalidArgument("time '" + printable(text) +
                          "': needs a time zone, Z or +HH:MM (times are UTC)");
  }
  if (pos != text.size()) {
    throw InvalidArgument("time '" + printable(text) + "': unexpected text after the time");
  }
  const std::chrono::year_month_day ymd{std::chrono::year{year},
                                        std::chrono::month{static_cast<unsigned>(month)},
                                        std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 59) {
    throw InvalidArgument("time '" + printable(text) + "': not a valid date and time");
  }
  const auto date = std::chrono::sys_days{ymd};
  const Timestamp t = std::chrono::time_point_cast<std::chrono::microseconds>(date) +
                      std::chrono::hours{hour} + std::chrono::minutes{minute} +
                      std::chrono::seconds{second} + std::chrono::microseconds{micros} -
                      std::chrono::minutes{offset_minutes};
  return t;
}

std::uint64_t parse_unsigned(std::string_view text, std::string_view option, std::uint64_t min,
                             std::uint64_t max) {
  const auto fail = [&](std::string_view why) {
    throw InvalidArgument(std::string(option) + " '" + printable(text, 40) + "': " + std::string(why) +
                          " (expected a whole number from " + std::to_string(min) + " to " +
                          std::to_string(max) + ")");
  };
  if (text.empty()) fail("empty");
  for (char c : text) {
    if (c < '0' || c > '9') fail("not a decimal number");
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) fail("out of range");
  if (value < min || value > max) fail("out of range");
  return value;
}

}  // namespace annals::cli
