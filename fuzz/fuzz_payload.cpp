// libFuzzer target: decoding workflow event payloads, JSON and binary, through the entry point
// aggregates and exports use (EventTypeRegistry::decode_variant<WorkflowRunEvent>).
//
// Input: byte 0 picks the event type (low 3 bits) and the format (bit 3: binary); the rest is
// the payload. Properties checked, beyond "no crash, no foreign exception":
//   - a decoded event re-encodes in both formats, and each encoding decodes to an equal event
//     (binary always; JSON unless the text smuggled a NUL or non-UTF-8 bytes in a string);
//   - encoding is a function of the event: encode(decode(encode(e))) == encode(e), bytewise;
//   - workflow_payload_json (the export's rendering) agrees with decode.
#include <annals/events/codec.hpp>
#include <annals/events/workflow_events.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using namespace annals;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_payload: property violated: %s\n", what);
  std::abort();
}

// A recorded event of type E carrying `bytes` as its payload.
template <class E>
RecordedEvent record_of(std::string_view bytes, PayloadFormat format) {
  RecordedEvent record;
  record.type = std::string(E::kType);
  record.schema_version = E::kSchemaVersion;
  record.payload = std::string(bytes);
  record.payload_format = format;
  return record;
}

template <class E>
E decode_as(std::string_view bytes, PayloadFormat format) {
  return std::get<E>(
      EventTypeRegistry{}.decode_variant<WorkflowRunEvent>(record_of<E>(bytes, format)));
}

// Equal, with NaN equal to NaN (binary payloads can carry NaN doubles).
template <class E>
bool same(const E& a, const E& b) {
  return encode_payload(a, PayloadFormat::binary) == encode_payload(b, PayloadFormat::binary);
}

template <class E>
void check(std::string_view payload, PayloadFormat format) {
  const RecordedEvent record = record_of<E>(payload, format);
  E event;
  try {
    event = decode_as<E>(payload, format);
  } catch (const SerializationError&) {
    if (workflow_payload_json(record).has_value()) fail("rendered a payload decode refused");
    return;  // refused with the codec's error: fine
  }

  const std::string binary = encode_payload(event, PayloadFormat::binary);
  const E from_binary = decode_as<E>(binary, PayloadFormat::binary);
  if (encode_payload(from_binary, PayloadFormat::binary) != binary) {
    fail("binary encode -> decode -> encode changed the bytes");
  }
  if (format == PayloadFormat::json && !(from_binary == event)) {
    fail("a JSON-decoded event changed through binary");
  }

  std::string json;
  try {
    json = encode_payload(event, PayloadFormat::json);
  } catch (const SerializationError&) {
    // Only strings JSON cannot carry: a NUL (a \u0000 escape) or bytes that are not UTF-8.
    const bool smuggled = format == PayloadFormat::binary || payload.find("\\u0000") != payload.npos ||
                          !is_json_document(payload);
    if (!smuggled) fail("a JSON document decoded but does not encode back to JSON");
    if (workflow_payload_json(record).has_value()) fail("rendered what JSON cannot carry");
    return;
  }
  if (!is_json_document(json)) fail("encode_payload wrote text that is not a JSON document");
  const E from_json = decode_as<E>(json, PayloadFormat::json);
  if (!same(from_json, event)) fail("JSON encode -> decode changed the event");
  if (encode_payload(from_json, PayloadFormat::json) != json) {
    fail("JSON encode -> decode -> encode changed the text");
  }
  const std::optional<std::string> rendered = workflow_payload_json(record);
  if (!rendered || *rendered != json) fail("workflow_payload_json disagrees with decode + encode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const PayloadFormat format = (data[0] & 0x08) != 0 ? PayloadFormat::binary : PayloadFormat::json;
  switch (data[0] & 0x07) {
    case 0: check<RunCreated>(payload, format); break;
    case 1: check<NodeStarted>(payload, format); break;
    case 2: check<NodeCompleted>(payload, format); break;
    case 3: check<NodeFailed>(payload, format); break;
    case 4: check<RunSucceeded>(payload, format); break;
    case 5: check<RunFailed>(payload, format); break;
    case 6: check<RunStopped>(payload, format); break;
    default: check<RunDeleted>(payload, format); break;
  }
  return 0;
}
