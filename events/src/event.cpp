#include "annals/events/event.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <cstdio>
#include <ctime>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"

namespace annals {

std::string_view to_string(PayloadFormat format) noexcept {
  return format == PayloadFormat::binary ? "binary" : "json";
}

PayloadFormat parse_payload_format(std::string_view text) {
  if (text == "json") return PayloadFormat::json;
  if (text == "binary") return PayloadFormat::binary;
  throw InvalidArgument("payload format '" + printable(text) + "': expected json or binary");
}

std::string to_hex(const EventHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(hash.size() * 2);
  for (std::uint8_t b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

boost::uuids::uuid new_event_id() {
  // random_generator is not thread-safe and costly to seed: one per thread.
  thread_local boost::uuids::random_generator generator;
  return generator();
}

std::string to_string(const boost::uuids::uuid& id) { return boost::uuids::to_string(id); }

boost::uuids::uuid parse_uuid(std::string_view text) {
  // Every record read carries one: boost's string_generator (per-character std::find over a
  // table, exceptions) was a tenth of W5's instructions. The canonical form only, as before
  // (36 characters: dashes at 8, 13, 18 and 23; hex digits in either case).
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  boost::uuids::uuid id{};
  bool ok = text.size() == 36 && text[8] == '-' && text[13] == '-' && text[18] == '-' &&
            text[23] == '-';
  for (std::size_t i = 0, byte = 0; ok && i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    const int hi = hex(text[i]);
    const int lo = hex(text[++i]);
    ok = hi >= 0 && lo >= 0;
    id.data[byte++] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  if (ok) return id;
  throw InvalidArgument("'" + std::string(text) +
                        "' is not a UUID: expected 36 characters like "
                        "123e4567-e89b-12d3-a456-426614174000");
}

Timestamp now() noexcept {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string format_timestamp(Timestamp t) {
  const std::int64_t micros = to_micros(t);
  std::int64_t seconds = micros / 1'000'000;
  std::int64_t fraction = micros % 1'000'000;
  if (fraction < 0) {
    fraction += 1'000'000;
    --seconds;
  }
  const std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(fraction));
  return buf;
}

}  // namespace annals
