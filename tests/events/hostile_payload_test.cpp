// Payloads crafted to break the decoders, each from a libFuzzer finding or a known weakness of
// the libraries under the codec (fuzz/fuzz_payload.cpp; the inputs are in fuzz/corpus too):
// lengths that claim more bytes than there are, byte-order flags that are not one, and JSON
// numbers that RapidJSON 1.1.0 converts with undefined behaviour.

#include <catch2/catch.hpp>
#include <cereal/types/vector.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "annals/events/codec.hpp"
#include "annals/events/workflow_events.hpp"
#include "support/matchers.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

RecordedEvent record(std::string type, std::string payload, PayloadFormat format) {
  RecordedEvent r;
  r.position = 7;
  r.stream_id = "WorkflowRun-r-1";
  r.version = 1;
  r.type = std::move(type);
  r.payload = std::move(payload);
  r.payload_format = format;
  return r;
}

template <class E>
E decode_binary(const std::string& payload) {
  return EventTypeRegistry{}.decode<E>(record(std::string(E::kType), payload, PayloadFormat::binary));
}

template <class E>
E decode_json(const std::string& payload) {
  return EventTypeRegistry{}.decode<E>(record(std::string(E::kType), payload, PayloadFormat::json));
}

// A little-endian 64-bit length, as portable binary writes size prefixes.
std::string length_bytes(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out;
}

struct Tags {  // a user's event with a container of strings
  static constexpr std::string_view kType = "Tags";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::vector<std::string> tags{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("tags", tags));
  }
  friend bool operator==(const Tags&, const Tags&) = default;
};

}  // namespace

TEST_CASE("a binary string length beyond the bytes left is refused before allocating",
          "[events][codec][hostile]") {
  // fuzz_payload's first finding: cereal's reader resized the string to the claimed length (here
  // up to 2^63 bytes) before reading it; ASan reported the allocation as too big.
  for (const std::uint64_t claimed : {std::uint64_t{200}, std::uint64_t{1} << 30,
                                      std::uint64_t{1} << 62, std::uint64_t{1} << 63,
                                      UINT64_MAX}) {
    CAPTURE(claimed);
    const std::string payload = std::string(1, '\1') + length_bytes(claimed) + "r-1";
    CHECK_THROWS_MATCHES(decode_binary<RunDeleted>(payload), SerializationError,
                         WhatContains("a length of " + std::to_string(claimed) +
                                      " runs past the end (3 bytes left)"));
  }
}

TEST_CASE("the fuzzer's crashing NodeStarted payload is a SerializationError",
          "[events][codec][hostile]") {
  // fuzz/corpus/fuzz_payload/crash-size-prefix without its selector byte: title's length prefix
  // was mutated to 0x0661... bytes.
  const unsigned char bytes[] = {
      0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x72, 0x2d, 0x31, 0x03, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x6e, 0x2d, 0x31, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
      0x00, 0x00, 0x6d, 0x00, 0x03, 0x6c, 0x00, 0x00, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x6c, 0x6c, 0x6d, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x41, 0x73, 0x6b,
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x73, 0x74, 0x61, 0x72, 0x74, 0x07, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x70, 0x22, 0x3a, 0x31, 0x7d, 0x40, 0x12,
      0x61, 0x01, 0x8b, 0x60, 0x06, 0x00};
  const std::string payload(reinterpret_cast<const char*>(bytes), sizeof bytes);
  CHECK_THROWS_MATCHES(decode_binary<NodeStarted>(payload), SerializationError,
                       WhatContains("runs past the end"));
  CHECK_FALSE(workflow_payload_json(record("NodeStarted", payload, PayloadFormat::binary)));
}

TEST_CASE("a binary container count beyond the bytes left is refused before allocating",
          "[events][codec][hostile]") {
  const std::string good = encode_payload(Tags{{"a", "b"}}, PayloadFormat::binary);
  REQUIRE(decode_payload<Tags>(good, PayloadFormat::binary, RecordedEvent{}) == Tags{{"a", "b"}});
  const std::string payload = std::string(1, '\1') + length_bytes(std::uint64_t{1} << 40);
  CHECK_THROWS_MATCHES(decode_payload<Tags>(payload, PayloadFormat::binary, RecordedEvent{}),
                       SerializationError, WhatContains("runs past the end (0 bytes left)"));
}

TEST_CASE("a binary payload must open with a byte-order flag of 0 or 1", "[events][codec][hostile]") {
  const RunDeleted event{.run_id = "r-1", .deleted_by = "me", .reason = "why",
                         .deleted_at = from_micros(1'700'000'000'000'001)};
  std::string payload = encode_payload(event, PayloadFormat::binary);
  REQUIRE(payload.front() == '\1');
  for (const int flag : {2, 7, 0x80, 0xff}) {
    payload.front() = static_cast<char>(flag);
    CHECK_THROWS_MATCHES(decode_binary<RunDeleted>(payload), SerializationError,
                         WhatContains("the first byte is " + std::to_string(flag)));
  }
  CHECK_THROWS_MATCHES(decode_binary<RunDeleted>(""), SerializationError, WhatContains("no bytes"));

  // Big-endian data (flag 0), as cereal writes it when asked, still reads back.
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive archive(
        out, cereal::PortableBinaryOutputArchive::Options::BigEndian());
    const_cast<RunDeleted&>(event).serialize(archive);
  }
  REQUIRE(out.str().front() == '\0');
  CHECK(decode_binary<RunDeleted>(out.str()) == event);
}

TEST_CASE("JSON numbers RapidJSON 1.1.0 converts with undefined behaviour read exactly",
          "[events][codec][hostile]") {
  // A zero with an exponent beyond +-22 took RapidJSON's full-precision path to
  // __builtin_clzll(0) (UBSan: "passing zero to clz()"); numbers are now converted by strtod.
  for (const char* zero : {"0e-50", "0e50", "0.0e-400", "-0e+30", "0E300", "0.000e-23"}) {
    CAPTURE(zero);
    const NodeCompleted e = decode_json<NodeCompleted>(
        std::string(R"({"run_id":"r","node_execution_id":"n","outputs":"","elapsed_time":)") +
        zero + R"(,"total_tokens":0,"finished_at":0})");
    CHECK(e.elapsed_time == 0.0);
  }
  const auto elapsed = [](const std::string& number) {
    return decode_json<NodeCompleted>(
               R"({"run_id":"r","node_execution_id":"n","outputs":"","elapsed_time":)" + number +
               R"(,"total_tokens":0,"finished_at":0})")
        .elapsed_time;
  };
  CHECK(elapsed("1e-400") == 0.0);  // underflows to zero, as before
  CHECK(elapsed("4.9406564584124654e-324") == std::numeric_limits<double>::denorm_min());
  CHECK(elapsed("1.7976931348623157e308") == std::numeric_limits<double>::max());
  CHECK(elapsed("9007199254740993") == 9007199254740992.0);  // correctly rounded (to even)
  CHECK(elapsed("0.1") == 0.1);
  CHECK(elapsed("-2.5") == -2.5);
  CHECK(elapsed("12345678901234567890123") == 1.2345678901234568e22);
  CHECK_THROWS_MATCHES(elapsed("1.8e308"), SerializationError,
                       WhatContains("a number beyond the range of a double"));
}

TEST_CASE("JSON integers keep their exact type and range checks", "[events][codec][hostile]") {
  const auto tokens = [](const std::string& number) {
    return decode_json<NodeCompleted>(
               R"({"run_id":"r","node_execution_id":"n","outputs":"","elapsed_time":0,"total_tokens":)" +
               number + R"(,"finished_at":0})")
        .total_tokens;
  };
  CHECK(tokens("18446744073709551615") == UINT64_MAX);
  CHECK(tokens("4294967296") == 4294967296u);
  CHECK(tokens("-0") == 0u);
  CHECK_THROWS_AS(tokens("18446744073709551616"), SerializationError);  // a double now
  CHECK_THROWS_AS(tokens("-1"), SerializationError);
  CHECK_THROWS_AS(tokens("1e3"), SerializationError);
  const auto started_at = [](const std::string& number) {
    return decode_json<RunDeleted>(
        R"({"run_id":"r","deleted_by":"","reason":"","deleted_at":)" + number + "}").deleted_at;
  };
  CHECK(started_at("-9223372036854775808") == from_micros(INT64_MIN));
  CHECK(started_at("-2147483649") == from_micros(-2147483649LL));
  CHECK_THROWS_AS(started_at("-9223372036854775809"), SerializationError);
}
