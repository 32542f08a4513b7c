#pragma once

// How error messages show a caller's value: printable(value) is safe to put between quotes in
// a message whatever the value holds, and still recognisable.
//
//   throw NotFound("last_id '" + annals::printable(last_id) + "' is not a run of ...");
//
// Control bytes (NUL, newline, ESC, DEL) and bytes that are not part of valid UTF-8 are shown
// as \xNN, a backslash as \\; valid UTF-8 text is kept as it is. At most `max_bytes` bytes of
// the value are shown; a longer value ends with "... (N bytes)". The result is valid UTF-8
// without control characters. Thread-safe (a pure function).

#include <cstddef>
#include <string>
#include <string_view>

namespace annals {

[[nodiscard]] inline std::string printable(std::string_view value, std::size_t max_bytes = 80) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const std::string_view shown = value.substr(0, max_bytes);
  std::string out;
  out.reserve(shown.size() + 16);
  auto escape = [&out](unsigned char c) {
    out += "\\x";
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0f];
  };
  std::size_t i = 0;
  while (i < shown.size()) {
    const auto c = static_cast<unsigned char>(shown[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) {
        escape(c);
      } else if (c == '\\') {
        out += "\\\\";
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // The length of a valid UTF-8 sequence starting here (RFC 3629), or 0.
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;  // no overlong forms
      if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
    }
    bool ok = n != 0 && i + n <= shown.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      const auto b = static_cast<unsigned char>(shown[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
    }
    if (ok) {
      out.append(shown.substr(i, n));
      i += n;
    } else {
      escape(c);
      ++i;
    }
  }
  if (value.size() > max_bytes) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

}  // namespace annals
