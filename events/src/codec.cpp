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

void finish_json(std::string& text, std::string_view type) {
  auto fail = [&](const std::string& why) {
    throw SerializationError("encode " + std::string(type) + " as JSON: " + why +
                             "; use the binary payload format for such values");
  };
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
}

}  // namespace annals::detail
