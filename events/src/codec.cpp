#include "annals/events/codec.hpp"


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

void throw_json_refusal(std::string_view type, const JsonRefusal& refusal) {
  throw SerializationError("encode " + std::string(type) + " as JSON: " + refusal.what() +
                           "; use the binary payload format for such values");
}

}  // namespace annals::detail
