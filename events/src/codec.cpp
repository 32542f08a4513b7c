#include "annals/events/codec.hpp"

#include <algorithm>

namespace annals::detail {

void throw_decode_error(const RecordedEvent& record, std::string_view what) {
  std::string message = "decode " + (record.type.empty() ? std::string("<no type>") : record.type) +
                        " v" + std::to_string(record.schema_version);
  if (!record.stream_id.empty()) message += " in stream " + record.stream_id;
  if (record.position != 0) message += " at position " + std::to_string(record.position);
  message += " (";
  message += to_string(record.payload_format);
  message += " payload, ";
  message += std::to_string(record.payload.size());
  message += " bytes): ";
  message += what;
  throw SerializationError(message);
}

namespace {

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf)) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

void finish_json(std::string& text, std::string_view type) {
  auto fail = [&](const std::string& why) {
    throw SerializationError("encode " + std::string(type) + " as JSON: " + why +
                             "; use the binary payload format for such values");
  };
  if (!valid_utf8(text)) fail("a string is not valid UTF-8");
  std::size_t out = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\' && i + 1 < text.size()) {
        if (text.compare(i + 1, 5, "u0000") == 0) fail("a string holds a NUL character");
        text[out++] = c;
        text[out++] = text[++i];
        continue;
      }
      if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '\n') {
      continue;
    } else if (c == 'N' || c == 'I') {  // no JSON token outside a string holds these letters
      fail("a number is NaN or infinite");
    }
    text[out++] = c;
  }
  text.resize(out);
  if (text.empty()) text = "{}";  // cereal writes nothing for an event without fields
}

}  // namespace annals::detail
