#pragma once

// How error messages show a caller's value: printable(value) is safe to put between quotes in
// a message whatever the value holds, and still recognisable.
//
//   throw NotFound("last_id '" + annals::printable(last_id) + "' is not a run of ...");
//
// Control bytes (NUL, newline, ESC, DEL) and bytes that are not part of valid UTF-8 are shown
// as \xNN, a backslash as \\; valid UTF-8 text is kept as it is, except code points a
// terminal or a log viewer may act on, which are shown as \xNN per byte of their UTF-8 form:
// the C1 controls U+0080-U+009F (C2 80..C2 9F, e.g. CSI is \xc2\x9b), the line and paragraph
// separators U+2028/U+2029 and the bidi embeddings, overrides and isolates U+202A-U+202E and
// U+2066-U+2069 (which would make a value read differently from its bytes). At most
// `max_bytes` bytes of the value are shown; a longer value ends with "... (N bytes)". The
// result is valid UTF-8 without control characters. Thread-safe (a pure function).

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
      const auto b1 = static_cast<unsigned char>(n >= 2 ? shown[i + 1] : 0);
      const auto b2 = static_cast<unsigned char>(n >= 3 ? shown[i + 2] : 0);
      const bool c1_control = n == 2 && c == 0xc2 && b1 <= 0x9f;
      const bool separator_or_bidi =
          n == 3 && c == 0xe2 &&
          ((b1 == 0x80 && b2 >= 0xa8 && b2 <= 0xae) || (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9));
      if (c1_control || separator_or_bidi) {
        for (std::size_t k = 0; k < n; ++k) escape(static_cast<unsigned char>(shown[i + k]));
      } else {
        out.append(shown.substr(i, n));
      }
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
