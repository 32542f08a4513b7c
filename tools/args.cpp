#include "args.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <chrono>

#include "annals/events/printable.hpp"
#include "annals/store/event_store.hpp"

namespace annals::cli {

namespace {

constexpr std::string_view kSqliteScheme = "sqlite:";

}  // namespace

std::string store_uri(const Target& target) {
  if (!target.db.empty() && !target.uri.empty()) {
    throw InvalidArgument("give --db or --uri, not both");
  }
  if (!target.db.empty()) {
    if (target.db.starts_with("postgresql://") || target.db.starts_with("postgres://")) {
      throw InvalidArgument("--db '" + printable(redact_store_uri(target.db)) +
                            "' is a PostgreSQL URI; --db takes an SQLite file, give a PostgreSQL "
                            "store with --uri");
    }
    return std::string(kSqliteScheme) + target.db;
  }
  if (!target.uri.empty()) return target.uri;
  throw InvalidArgument("no store given: pass --db PATH or --uri URI");
}

std::optional<std::filesystem::path> sqlite_file(std::string_view uri) {
  if (!uri.starts_with(kSqliteScheme)) return std::nullopt;
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

ListenAddress parse_listen(std::string_view text) {
  const auto fail = [&](std::string_view why) {
    throw InvalidArgument("--listen '" + printable(text, 80) + "': " + std::string(why) +
                          " (expected HOST:PORT with an IP address literal and a port 0..65535, "
                          "e.g. 127.0.0.1:8080 or [::1]:8080)");
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) fail("no ':PORT'");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  if (host.empty()) fail("no host");
  const std::string host_string(host);
  unsigned char address[sizeof(in6_addr)];
  if (bracketed) {
    if (::inet_pton(AF_INET6, host_string.c_str(), address) != 1) {
      fail("'" + printable(host) + "' is not an IPv6 address literal");
    }
  } else if (host.find(':') != std::string_view::npos) {
    fail("an IPv6 address goes in brackets, e.g. [::1]:8080");
  } else if (::inet_pton(AF_INET, host_string.c_str(), address) != 1) {
    fail("'" + printable(host) + "' is not an IPv4 address literal (host names are not taken)");
  }
  if (port_text.empty()) fail("no port after ':'");
  for (char c : port_text) {
    if (c < '0' || c > '9') fail("port '" + printable(port_text) + "' is not a decimal number");
  }
  std::uint32_t port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    fail("port " + printable(port_text) + " is out of range");
  }
  return ListenAddress{host_string, static_cast<std::uint16_t>(port)};
}

bool is_loopback(std::string_view host) {
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

std::string listen_url(std::string_view host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  return "http://" + (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" +
         std::to_string(port) + "/";
}

}  // namespace annals::cli
