#include "target.hpp"

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"

namespace annals::serve::detail {
namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool is_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i + n > text.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return false;
    }
    i += n;
  }
  return true;
}

std::string percent_decode(std::string_view text, bool plus_is_space, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      const int hi = i + 1 < text.size() ? hex_digit(text[i + 1]) : -1;
      const int lo = i + 2 < text.size() ? hex_digit(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        throw InvalidArgument(std::string(what) + " '" + printable(text) + "': the '%' at byte " +
                              std::to_string(i + 1) +
                              " is not followed by two hex digits (write a '%' as %25)");
      }
      const char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') {
        throw InvalidArgument(std::string(what) + " '" + printable(text) +
                              "': %00 decodes to a NUL byte, which no id or value may hold");
      }
      out += decoded;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '\0') {
      throw InvalidArgument(std::string(what) + " '" + printable(text) + "' holds a NUL byte");
    } else {
      out += c;
    }
  }
  if (!is_utf8(out)) {
    throw InvalidArgument(std::string(what) + " '" + printable(text) +
                          "' is not UTF-8 once percent-decoded (decoded: '" + printable(out) +
                          "')");
  }
  return out;
}

RequestTarget parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    throw InvalidArgument("request target '" + printable(target) +
                          "': expected a path starting with '/' (origin-form)");
  }
  RequestTarget out;
  const std::size_t question = target.find('?');
  out.path = target.substr(0, question);
  std::size_t start = 1;  // after the leading '/'
  while (true) {
    const std::size_t slash = out.path.find('/', start);
    const std::string_view raw = out.path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    out.segments.push_back(percent_decode(raw, false, "path segment"));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (question == std::string_view::npos) return out;
  const std::string_view query = target.substr(question + 1);
  start = 0;
  while (start <= query.size()) {
    std::size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view item = query.substr(start, amp - start);
    start = amp + 1;
    if (item.empty()) continue;
    const std::size_t equals = item.find('=');
    const std::string_view raw_key = item.substr(0, equals);
    const std::string_view raw_value =
        equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1);
    out.query.emplace_back(
        percent_decode(raw_key, true, "query parameter name"),
        percent_decode(raw_value, true, "query parameter '" + printable(raw_key) + "' value"));
  }
  return out;
}

}  // namespace annals::serve::detail
