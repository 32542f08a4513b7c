// The typed-event codec: encode_payload / decode_payload, EventTypeRegistry::decode and
// decode_variant, upcasters, and the errors a bad record raises.

#include "annals/events/codec.hpp"

#include <catch2/catch.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/variant.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>

#include "annals/events/error.hpp"
#include "annals/events/event.hpp"
#include "annals/events/workflow_events.hpp"
#include "support/matchers.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

constexpr std::int64_t kT0 = 1'700'000'000'123'456;  // 2023-11-14T22:13:20.123456Z

// Quotes, backslashes, unicode (2-, 3- and 4-byte UTF-8), line breaks, tabs, a control char.
const std::string kTricky =
    "say \"hi\" \\ back/slash\nsecond line\r\n\ttabbed h\xC3\xA9llo \xE2\x9C\x93 "
    "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x9A\x80 ctrl\x01 end";

// JSON text that itself contains quotes, escapes and unicode (stored verbatim as a string).
const std::string kJsonText =
    R"({"question":"what is \"this\"?\n","n":[1,2.5,-3e10],"ok":true,"u":"h\u00e9 )"
    "\xE2\x9C\x93"
    R"("})";

template <class E>
E sample();

template <>
RunCreated sample<RunCreated>() {
  return RunCreated{.run_id = "r-1 " + kTricky,
                    .tenant_id = "t-1 " + kTricky,
                    .app_id = "a-1 " + kTricky,
                    .workflow_id = "w-1 " + kTricky,
                    .triggered_from = "debugging " + kTricky,
                    .created_by = "alice " + kTricky,
                    .inputs = kJsonText,
                    .created_at = from_micros(kT0)};
}

template <>
NodeStarted sample<NodeStarted>() {
  return NodeStarted{.run_id = "r-1",
                     .node_execution_id = "n-1 " + kTricky,
                     .index = std::numeric_limits<std::uint32_t>::max(),
                     .node_id = "llm-1 " + kTricky,
                     .node_type = "llm",
                     .title = "Ask the \"model\"\n" + kTricky,
                     .predecessor_node_id = "start " + kTricky,
                     .inputs = kJsonText,
                     .started_at = from_micros(kT0 + 1)};
}

template <>
NodeCompleted sample<NodeCompleted>() {
  return NodeCompleted{.run_id = "r-1",
                       .node_execution_id = "n-1",
                       .outputs = kJsonText,
                       .elapsed_time = 1.0 / 3.0,
                       .total_tokens = std::numeric_limits<std::uint64_t>::max(),
                       .finished_at = from_micros(kT0 + 999'999)};
}

template <>
NodeFailed sample<NodeFailed>() {
  return NodeFailed{.run_id = "r-1",
                    .node_execution_id = "n-2",
                    .error = "timeout: \"upstream\" said\nno " + kTricky,
                    .outputs = R"({"partial":[1,2,3]})",
                    .elapsed_time = 12345.678901234567,
                    .finished_at = from_micros(-123'456'789)};  // before the epoch
}

template <>
RunSucceeded sample<RunSucceeded>() {
  return RunSucceeded{.run_id = "r-1",
                      .outputs = kJsonText,
                      .elapsed_time = 0.1,
                      .total_tokens = 123'456'789'012ULL,
                      .total_steps = 42,
                      .finished_at = from_micros(kT0 + 7)};
}

template <>
RunFailed sample<RunFailed>() {
  return RunFailed{.run_id = "r-1",
                   .error = "node n-2 failed: " + kTricky,
                   .elapsed_time = 1e-9,
                   .total_tokens = 1,
                   .total_steps = 3,
                   .finished_at = from_micros(std::numeric_limits<std::int64_t>::max())};
}

template <>
RunStopped sample<RunStopped>() {
  return RunStopped{.run_id = "r-1",
                    .stopped_by = "bob " + kTricky,
                    .reason = "user pressed \"stop\"\n" + kTricky,
                    .elapsed_time = 2.5,
                    .total_tokens = 77,
                    .total_steps = 5,
                    .finished_at = from_micros(kT0 + 123)};
}

template <>
RunDeleted sample<RunDeleted>() {
  return RunDeleted{.run_id = "r-1",
                    .deleted_by = "carol " + kTricky,
                    .reason = "GDPR \"erase\" request\n" + kTricky,
                    .deleted_at = from_micros(kT0 + 654'321)};
}

template <class E>
RecordedEvent record_of(const E& event, PayloadFormat format, std::uint64_t position = 17,
                        std::string stream_id = "WorkflowRun-r-1") {
  return RecordedEvent{.position = position,
                       .stream_id = std::move(stream_id),
                       .version = 3,
                       .event_id = new_event_id(),
                       .type = std::string(E::kType),
                       .schema_version = E::kSchemaVersion,
                       .payload = encode_payload(event, format),
                       .metadata = EventMetadata{.tenant_id = "t-1",
                                                 .actor = "alice",
                                                 .correlation_id = "r-1",
                                                 .causation_id = "cmd-1",
                                                 .occurred_at = from_micros(kT0)},
                       .recorded_at = from_micros(kT0 + 5),
                       .payload_format = format};
}

RecordedEvent raw_record(std::string type, std::uint32_t schema_version, std::string payload,
                         PayloadFormat format = PayloadFormat::json) {
  return RecordedEvent{.position = 4242,
                       .stream_id = "WorkflowRun-r-9",
                       .version = 2,
                       .event_id = new_event_id(),
                       .type = std::move(type),
                       .schema_version = schema_version,
                       .payload = std::move(payload),
                       .metadata = {},
                       .recorded_at = from_micros(kT0),
                       .payload_format = format};
}

// --- Schema evolution fixtures: three versions of a "RunCreated"-named event. ---

struct RunCreatedV1 {
  static constexpr std::string_view kType = "RunCreated";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id, tenant_id;
  Timestamp created_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("tenant_id", tenant_id),
       cereal::make_nvp("created_at", created_at));
  }
  friend bool operator==(const RunCreatedV1&, const RunCreatedV1&) = default;
};

struct RunCreatedV2 {
  static constexpr std::string_view kType = "RunCreated";
  static constexpr std::uint32_t kSchemaVersion = 2;
  std::string run_id, tenant_id;
  std::string region;  // new in v2
  Timestamp created_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("tenant_id", tenant_id),
       cereal::make_nvp("region", region), cereal::make_nvp("created_at", created_at));
  }
  friend bool operator==(const RunCreatedV2&, const RunCreatedV2&) = default;
};

struct RunCreatedV3 {
  static constexpr std::string_view kType = "RunCreated";
  static constexpr std::uint32_t kSchemaVersion = 3;
  std::string run_id, tenant_id, region;
  std::uint32_t priority = 0;  // new in v3
  Timestamp created_at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id), cereal::make_nvp("tenant_id", tenant_id),
       cereal::make_nvp("region", region), cereal::make_nvp("priority", priority),
       cereal::make_nvp("created_at", created_at));
  }
  friend bool operator==(const RunCreatedV3&, const RunCreatedV3&) = default;
};

struct OtherV1 {
  static constexpr std::string_view kType = "SomethingElse";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string run_id;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("run_id", run_id));
  }
};

// Not an event: an intermediate value an upcaster may return; converts to RunCreatedV2.
struct RunCreatedV2Draft {
  std::string run_id, tenant_id;
  Timestamp created_at{};
  operator RunCreatedV2() const {  // NOLINT(google-explicit-constructor)
    return RunCreatedV2{
        .run_id = run_id, .tenant_id = tenant_id, .region = "draft", .created_at = created_at};
  }
};

const std::string kV1Json = R"({"run_id":"r-1","tenant_id":"t-1","created_at":1700000000123456})";

RunCreatedV2 v1_to_v2(RunCreatedV1 v1) {
  return RunCreatedV2{.run_id = std::move(v1.run_id),
                      .tenant_id = std::move(v1.tenant_id),
                      .region = "eu-west-1",
                      .created_at = v1.created_at};
}

RunCreatedV3 v2_to_v3(RunCreatedV2 v2) {
  return RunCreatedV3{.run_id = std::move(v2.run_id),
                      .tenant_id = std::move(v2.tenant_id),
                      .region = std::move(v2.region),
                      .priority = 5,
                      .created_at = v2.created_at};
}

const RunCreatedV2 kExpectedV2{
    .run_id = "r-1", .tenant_id = "t-1", .region = "eu-west-1", .created_at = from_micros(kT0)};
const RunCreatedV3 kExpectedV3{.run_id = "r-1",
                               .tenant_id = "t-1",
                               .region = "eu-west-1",
                               .priority = 5,
                               .created_at = from_micros(kT0)};

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("every workflow event round-trips through both payload formats",
                   "[events][codec]", RunCreated, NodeStarted, NodeCompleted, NodeFailed,
                   RunSucceeded, RunFailed, RunStopped, RunDeleted) {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  CAPTURE(to_string(format));
  const TestType original = sample<TestType>();
  REQUIRE_FALSE(original == TestType{});  // the sample really sets fields

  const RecordedEvent record = record_of(original, format);
  REQUIRE_FALSE(record.payload.empty());
  if (format == PayloadFormat::json) CHECK(is_json_document(record.payload));

  const EventTypeRegistry registry;
  const TestType decoded = registry.decode<TestType>(record);
  CHECK(decoded == original);

  const WorkflowRunEvent variant = registry.decode_variant<WorkflowRunEvent>(record);
  REQUIRE(std::holds_alternative<TestType>(variant));
  CHECK(std::get<TestType>(variant) == original);

  CHECK(decode_payload<TestType>(record.payload, format, record) == original);

  // Encoding is deterministic: the decoded value encodes to the very same bytes.
  CHECK(encode_payload(decoded, format) == record.payload);

  // A registry that registered the type explicitly reads it the same way.
  EventTypeRegistry explicit_registry;
  explicit_registry.add<TestType>();
  CHECK(explicit_registry.contains(TestType::kType, TestType::kSchemaVersion));
  CHECK(explicit_registry.decode<TestType>(record) == original);
}

TEST_CASE("default-valued events round-trip too", "[events][codec]") {
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  const EventTypeRegistry registry;
  const RunCreated empty{};
  CHECK(registry.decode<RunCreated>(record_of(empty, format)) == empty);
  const NodeCompleted zero{};
  CHECK(registry.decode<NodeCompleted>(record_of(zero, format)) == zero);
}

TEST_CASE("special doubles survive the binary format", "[events][codec]") {
  const EventTypeRegistry registry;
  for (const double value :
       {0.0, -0.0, 1.0 / 3.0, 1e-300, 1.7976931348623157e308, 4.9e-324, 123456789.987654321}) {
    const NodeCompleted e{.run_id = "r-1", .node_execution_id = "n-1", .elapsed_time = value};
    const NodeCompleted back = registry.decode<NodeCompleted>(record_of(e, PayloadFormat::binary));
    CHECK(back.elapsed_time == value);
    const NodeCompleted back_json =
        registry.decode<NodeCompleted>(record_of(e, PayloadFormat::json));
    CHECK(back_json.elapsed_time == value);
  }
}

TEST_CASE("an embedded NUL character survives the binary format", "[events][codec]") {
  const std::string with_nul("before\0after", 12);
  const RunDeleted e{.run_id = "r-1", .deleted_by = with_nul, .reason = "x"};
  const EventTypeRegistry registry;
  CHECK(registry.decode<RunDeleted>(record_of(e, PayloadFormat::binary)).deleted_by == with_nul);
}

// cereal's JSON reader stops a string at a NUL character, so the encoder refuses one rather
// than let it be cut short on the way back.
TEST_CASE("a NUL character in a string is refused by the JSON format", "[events][codec]") {
  const RunDeleted e{
      .run_id = "r-1", .deleted_by = std::string("before\0after", 12), .reason = "x"};
  REQUIRE_THROWS_MATCHES(encode_payload(e, PayloadFormat::json), SerializationError,
                         WhatContains("RunDeleted") && WhatContains("NUL"));
  // The six characters \u0000 as text are an ordinary string, escaped, and round-trip.
  const RunDeleted text{.run_id = "r-1", .deleted_by = "a\\u0000b", .reason = "NaN Infinity"};
  const std::string payload = encode_payload(text, PayloadFormat::json);
  CHECK(is_json_document(payload));
  const EventTypeRegistry registry;
  CHECK(registry.decode<RunDeleted>(raw_record("RunDeleted", 1, payload)) == text);
}

// cereal writes non-finite doubles as the bare tokens NaN and Infinity, which are not JSON.
TEST_CASE("a non-finite double is refused by the JSON format and kept by binary",
          "[events][codec]") {
  for (const double value :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    CAPTURE(value);
    const NodeCompleted e{.run_id = "r-1", .node_execution_id = "n-1", .elapsed_time = value};
    CHECK_THROWS_MATCHES(encode_payload(e, PayloadFormat::json), SerializationError,
                         WhatContains("NodeCompleted") && WhatContains("NaN or infinite"));
    const std::string binary = encode_payload(e, PayloadFormat::binary);
    const double back =
        EventTypeRegistry{}
            .decode<NodeCompleted>(raw_record("NodeCompleted", 1, binary, PayloadFormat::binary))
            .elapsed_time;
    CHECK((std::isnan(value) ? std::isnan(back) : back == value));
  }
}

// ---------------------------------------------------------------------------------------
// JSON shape
// ---------------------------------------------------------------------------------------

TEST_CASE("a JSON payload is one flat object with a named member per field", "[events][codec]") {
  const RunCreated e = sample<RunCreated>();
  const std::string payload = encode_payload(e, PayloadFormat::json);

  CHECK(payload.find('\n') == std::string::npos);
  CHECK(payload.find('\r') == std::string::npos);
  CHECK(payload.find("\"run_id\":") != std::string::npos);
  CHECK(payload.front() == '{');
  CHECK(payload.back() == '}');
  CHECK(payload.find("value0") == std::string::npos);  // no cereal wrapper object
  REQUIRE(is_json_document(payload));

  const nlohmann::json j = nlohmann::json::parse(payload);
  REQUIRE(j.is_object());
  std::set<std::string> keys;
  for (const auto& [key, value] : j.items()) {
    keys.insert(key);
    CHECK_FALSE(value.is_structured());  // flat: no nested objects or arrays
  }
  CHECK(keys == std::set<std::string>{"run_id", "tenant_id", "app_id", "workflow_id",
                                      "triggered_from", "created_by", "inputs", "created_at"});

  CHECK(j.at("run_id").get<std::string>() == e.run_id);  // newlines etc. escaped, not lost
  CHECK(j.at("created_by").get<std::string>() == e.created_by);
  // inputs is JSON text stored verbatim as a string, not re-structured.
  REQUIRE(j.at("inputs").is_string());
  CHECK(j.at("inputs").get<std::string>() == kJsonText);

  // Timestamps: integer microseconds since the epoch.
  REQUIRE(j.at("created_at").is_number_integer());
  CHECK(j.at("created_at").get<std::int64_t>() == kT0);
}

TEST_CASE("every workflow event's JSON payload is flat and its timestamp is integer micros",
          "[events][codec]") {
  const auto check = [](const auto& event, const char* timestamp_field, std::int64_t micros) {
    const std::string payload = encode_payload(event, PayloadFormat::json);
    CAPTURE(payload);
    CHECK(payload.find('\n') == std::string::npos);
    CHECK(payload.find("\"run_id\":") != std::string::npos);
    REQUIRE(is_json_document(payload));
    const nlohmann::json j = nlohmann::json::parse(payload);
    REQUIRE(j.is_object());
    for (const auto& [key, value] : j.items()) CHECK_FALSE(value.is_structured());
    CHECK(j.at("run_id").get<std::string>() == event.run_id);
    REQUIRE(j.at(timestamp_field).is_number_integer());
    CHECK(j.at(timestamp_field).template get<std::int64_t>() == micros);
  };
  check(sample<NodeStarted>(), "started_at", kT0 + 1);
  check(sample<NodeCompleted>(), "finished_at", kT0 + 999'999);
  check(sample<NodeFailed>(), "finished_at", -123'456'789);
  check(sample<RunSucceeded>(), "finished_at", kT0 + 7);
  check(sample<RunFailed>(), "finished_at", std::numeric_limits<std::int64_t>::max());
  check(sample<RunStopped>(), "finished_at", kT0 + 123);
  check(sample<RunDeleted>(), "deleted_at", kT0 + 654'321);

  // Numbers stay numbers.
  const nlohmann::json j =
      nlohmann::json::parse(encode_payload(sample<RunSucceeded>(), PayloadFormat::json));
  CHECK(j.at("total_tokens").get<std::uint64_t>() == 123'456'789'012ULL);
  CHECK(j.at("total_steps").get<std::uint32_t>() == 42);
  CHECK(j.at("elapsed_time").get<double>() == 0.1);
}

TEST_CASE("the JSON decoder reads members by name, in any order, ignoring unknown ones",
          "[events][codec]") {
  const RecordedEvent record =
      raw_record("RunStopped", 1,
                 R"({"finished_at":1700000000123456,"extra":{"nested":[1,2]},"total_steps":3,)"
                 R"("total_tokens":9,"elapsed_time":1.5,"reason":"why\nnot","stopped_by":"bob",)"
                 R"("run_id":"r-9"})");
  const RunStopped expected{.run_id = "r-9",
                            .stopped_by = "bob",
                            .reason = "why\nnot",
                            .elapsed_time = 1.5,
                            .total_tokens = 9,
                            .total_steps = 3,
                            .finished_at = from_micros(kT0)};
  const EventTypeRegistry registry;
  CHECK(registry.decode<RunStopped>(record) == expected);
  CHECK(std::get<RunStopped>(registry.decode_variant<WorkflowRunEvent>(record)) == expected);
}

// ---------------------------------------------------------------------------------------
// Upcasting
// ---------------------------------------------------------------------------------------

TEST_CASE("an upcaster reads a literal v1 JSON payload as v2", "[events][codec]") {
  int calls = 0;
  EventTypeRegistry registry;
  registry.add_upcaster<RunCreatedV1, RunCreatedV2>([&calls](RunCreatedV1 v1) {
    ++calls;
    return v1_to_v2(std::move(v1));
  });
  CHECK(registry.contains("RunCreated", 1));
  CHECK(registry.contains("RunCreated", 2));
  CHECK_FALSE(registry.contains("RunCreated", 3));
  CHECK_FALSE(registry.contains("NodeStarted", 1));

  const RecordedEvent v1 = raw_record("RunCreated", 1, kV1Json);
  CHECK(registry.decode<RunCreatedV2>(v1) == kExpectedV2);
  CHECK(calls == 1);

  // A v2 record is read as is: the upcaster is not involved.
  const RunCreatedV2 stored_v2{.run_id = "r-2",
                               .tenant_id = "t-2",
                               .region = "us-east-1",
                               .created_at = from_micros(kT0 + 1)};
  RecordedEvent v2 = raw_record("RunCreated", 2, encode_payload(stored_v2, PayloadFormat::json));
  CHECK(registry.decode<RunCreatedV2>(v2) == stored_v2);
  CHECK(calls == 1);

  // The v1 struct itself still decodes a v1 record directly.
  CHECK(registry.decode<RunCreatedV1>(v1) ==
        RunCreatedV1{.run_id = "r-1", .tenant_id = "t-1", .created_at = from_micros(kT0)});
}

TEST_CASE("a binary v1 payload is upcast too", "[events][codec]") {
  EventTypeRegistry registry;
  registry.add_upcaster<RunCreatedV1, RunCreatedV2>(&v1_to_v2);
  const RunCreatedV1 old{.run_id = "r-1", .tenant_id = "t-1", .created_at = from_micros(kT0)};
  const RecordedEvent v1 = raw_record("RunCreated", 1, encode_payload(old, PayloadFormat::binary),
                                      PayloadFormat::binary);
  CHECK(registry.decode<RunCreatedV2>(v1) == kExpectedV2);
}

TEST_CASE("upcasters chain v1 -> v2 -> v3", "[events][codec]") {
  const bool registered_in_order = GENERATE(true, false);
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  CAPTURE(registered_in_order, to_string(format));
  EventTypeRegistry registry;
  if (registered_in_order) {
    registry.add_upcaster<RunCreatedV1, RunCreatedV2>(&v1_to_v2)
        .add_upcaster<RunCreatedV2, RunCreatedV3>(&v2_to_v3);
  } else {
    registry.add_upcaster<RunCreatedV2, RunCreatedV3>(&v2_to_v3)
        .add_upcaster<RunCreatedV1, RunCreatedV2>(&v1_to_v2);
  }
  CHECK(registry.contains("RunCreated", 1));
  CHECK(registry.contains("RunCreated", 2));
  CHECK(registry.contains("RunCreated", 3));

  const RunCreatedV1 old{.run_id = "r-1", .tenant_id = "t-1", .created_at = from_micros(kT0)};
  const RecordedEvent v1 = raw_record("RunCreated", 1, encode_payload(old, format), format);
  CHECK(registry.decode<RunCreatedV3>(v1) == kExpectedV3);
  CHECK(registry.decode<RunCreatedV2>(v1) == kExpectedV2);  // stopping half way works too

  const RecordedEvent v2 = raw_record("RunCreated", 2, encode_payload(kExpectedV2, format), format);
  CHECK(registry.decode<RunCreatedV3>(v2) == kExpectedV3);

  const RunCreatedV3 current{.run_id = "r-3",
                             .tenant_id = "t-3",
                             .region = "ap",
                             .priority = 9,
                             .created_at = from_micros(kT0 + 3)};
  const RecordedEvent v3 = raw_record("RunCreated", 3, encode_payload(current, format), format);
  CHECK(registry.decode<RunCreatedV3>(v3) == current);
}

TEST_CASE("an upcaster may skip versions", "[events][codec]") {
  EventTypeRegistry registry;
  registry.add_upcaster<RunCreatedV1, RunCreatedV3>(
      [](const RunCreatedV1& v1) { return v2_to_v3(v1_to_v2(v1)); });
  CHECK(registry.decode<RunCreatedV3>(raw_record("RunCreated", 1, kV1Json)) == kExpectedV3);
}

TEST_CASE("a broken upcaster chain is a SerializationError", "[events][codec]") {
  SECTION("only v1 -> v2 registered, v3 asked for") {
    EventTypeRegistry registry;
    registry.add_upcaster<RunCreatedV1, RunCreatedV2>(&v1_to_v2);
    REQUIRE_THROWS_MATCHES(registry.decode<RunCreatedV3>(raw_record("RunCreated", 1, kV1Json)),
                           SerializationError, WhatContains("RunCreated"));
    REQUIRE_THROWS_AS(registry.decode<RunCreatedV3>(raw_record(
                          "RunCreated", 2, encode_payload(kExpectedV2, PayloadFormat::json))),
                      SerializationError);
  }
  SECTION("only v2 -> v3 registered, a v1 record") {
    EventTypeRegistry registry;
    registry.add_upcaster<RunCreatedV2, RunCreatedV3>(&v2_to_v3);
    REQUIRE_THROWS_MATCHES(registry.decode<RunCreatedV3>(raw_record("RunCreated", 1, kV1Json)),
                           SerializationError, WhatContains("WorkflowRun-r-9"));
  }
}

TEST_CASE("an upcaster between different type names is rejected", "[events][codec]") {
  EventTypeRegistry registry;
  REQUIRE_THROWS_MATCHES(
      (registry.add_upcaster<OtherV1, RunCreatedV2>([](const OtherV1&) { return RunCreatedV2{}; })),
      InvalidArgument, WhatContains("SomethingElse"));
  CHECK_FALSE(registry.contains("SomethingElse", 1));
}

// add_upcaster accepts any function whose result converts to New; the result is converted.
TEST_CASE("an upcaster returning a value convertible to the new version works", "[events][codec]") {
  EventTypeRegistry registry;
  registry.add_upcaster<RunCreatedV1, RunCreatedV2>([](const RunCreatedV1& v1) {
    return RunCreatedV2Draft{
        .run_id = v1.run_id, .tenant_id = v1.tenant_id, .created_at = v1.created_at};
  });
  const RunCreatedV2 expected{
      .run_id = "r-1", .tenant_id = "t-1", .region = "draft", .created_at = from_micros(kT0)};
  RunCreatedV2 decoded;
  try {
    decoded = registry.decode<RunCreatedV2>(raw_record("RunCreated", 1, kV1Json));
  } catch (const Error& e) {
    FAIL("annals error: " << e.what());
  } catch (const std::exception& e) {
    FAIL("non-annals exception escaped decode: " << e.what());
  }
  CHECK(decoded == expected);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

TEST_CASE("an unknown type names the type, stream and position", "[events][codec]") {
  const EventTypeRegistry registry;
  const RecordedEvent record = raw_record("RunExploded", 1, R"({"run_id":"r-9"})");
  REQUIRE_THROWS_MATCHES(registry.decode_variant<WorkflowRunEvent>(record), SerializationError,
                         WhatContains("RunExploded"));
  REQUIRE_THROWS_MATCHES(registry.decode_variant<WorkflowRunEvent>(record), SerializationError,
                         WhatContains("WorkflowRun-r-9"));
  REQUIRE_THROWS_MATCHES(registry.decode_variant<WorkflowRunEvent>(record), SerializationError,
                         WhatContains("4242"));

  // An empty type name is unknown too.
  REQUIRE_THROWS_AS(registry.decode_variant<WorkflowRunEvent>(raw_record("", 1, "{}")),
                    SerializationError);
}

TEST_CASE("decoding a record as another type is a SerializationError", "[events][codec]") {
  const EventTypeRegistry registry;
  const RecordedEvent stopped = record_of(sample<RunStopped>(), PayloadFormat::json, 99);
  REQUIRE_THROWS_MATCHES(registry.decode<RunDeleted>(stopped), SerializationError,
                         WhatContains("RunStopped"));
  REQUIRE_THROWS_MATCHES(registry.decode<RunDeleted>(stopped), SerializationError,
                         WhatContains("99"));
}

TEST_CASE("a corrupt JSON payload is a SerializationError", "[events][codec]") {
  const std::string payload = GENERATE(
      as<std::string>{},
      "",                                              // empty
      "not json at all",                               // not JSON
      R"({"run_id": "r-1", "stopped_by)",              // truncated
      R"({"run_id": "r-1", "stopped_by": "b",})",      // trailing comma
      "[]", "[1,2,3]", "42", R"("a string")", "null",  // not an object
      R"({"run_id":"r","stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":1,)"
      R"("total_steps":1,"finished_at":1} trailing)",  // garbage after the object
      R"({"run_id":7,"stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":1,)"
      R"("total_steps":1,"finished_at":1})",  // string field holds a number
      R"({"run_id":"r","stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":"many",)"
      R"("total_steps":1,"finished_at":1})",  // integer field holds a string
      R"({"run_id":"r","stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":-1,)"
      R"("total_steps":1,"finished_at":1})",  // unsigned field holds a negative number
      R"({"run_id":"r","stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":1,)"
      R"("total_steps":4294967296,"finished_at":1})",  // uint32 field overflows
      R"({"run_id":"r","stopped_by":"b","reason":"x","elapsed_time":1,"total_tokens":1,)"
      R"("total_steps":1,"finished_at":1.5})");  // timestamp is not an integer
  CAPTURE(payload);
  const EventTypeRegistry registry;
  const RecordedEvent record = raw_record("RunStopped", 1, payload);
  REQUIRE_THROWS_MATCHES(registry.decode<RunStopped>(record), SerializationError,
                         WhatContains("RunStopped"));
  REQUIRE_THROWS_AS(registry.decode_variant<WorkflowRunEvent>(record), SerializationError);
  REQUIRE_THROWS_AS(decode_payload<RunStopped>(payload, PayloadFormat::json, record),
                    SerializationError);
}

TEST_CASE("a JSON payload missing a field is a SerializationError naming it", "[events][codec]") {
  const RecordedEvent record =
      raw_record("RunStopped", 1,
                 R"({"run_id":"r-1","stopped_by":"bob","elapsed_time":1.5,"total_tokens":9,)"
                 R"("total_steps":3,"finished_at":1700000000123456})");  // no "reason"
  const EventTypeRegistry registry;
  REQUIRE_THROWS_MATCHES(registry.decode<RunStopped>(record), SerializationError,
                         WhatContains("reason"));
  REQUIRE_THROWS_MATCHES(registry.decode_variant<WorkflowRunEvent>(record), SerializationError,
                         WhatContains("WorkflowRun-r-9"));
  // Empty object: every field is missing.
  REQUIRE_THROWS_AS(registry.decode<RunDeleted>(raw_record("RunDeleted", 1, "{}")),
                    SerializationError);
}

TEST_CASE("a truncated binary payload is a SerializationError at every cut", "[events][codec]") {
  const EventTypeRegistry registry;
  const std::string full = encode_payload(sample<NodeStarted>(), PayloadFormat::binary);
  REQUIRE(full.size() > 20);
  std::size_t rejected = 0;
  for (std::size_t length = 0; length < full.size(); ++length) {
    const RecordedEvent record =
        raw_record("NodeStarted", 1, full.substr(0, length), PayloadFormat::binary);
    try {
      (void)registry.decode_variant<WorkflowRunEvent>(record);
      FAIL_CHECK("a payload cut to " << length << " of " << full.size() << " bytes decoded");
    } catch (const SerializationError&) {
      ++rejected;
    }
  }
  CHECK(rejected == full.size());
}

TEST_CASE("a binary payload with trailing bytes is a SerializationError", "[events][codec]") {
  const EventTypeRegistry registry;
  const std::string full = encode_payload(sample<RunDeleted>(), PayloadFormat::binary);
  for (const std::string& extra : {std::string(1, '\0'), std::string("x"), std::string("junk!")}) {
    const RecordedEvent record = raw_record("RunDeleted", 1, full + extra, PayloadFormat::binary);
    REQUIRE_THROWS_MATCHES(registry.decode<RunDeleted>(record), SerializationError,
                           WhatContains("trailing"));
    REQUIRE_THROWS_AS(registry.decode_variant<WorkflowRunEvent>(record), SerializationError);
  }
  // Two events concatenated are not one event.
  REQUIRE_THROWS_AS(
      registry.decode<RunDeleted>(raw_record("RunDeleted", 1, full + full, PayloadFormat::binary)),
      SerializationError);
}

TEST_CASE("a binary payload whose string length overruns the data is a SerializationError",
          "[events][codec]") {
  // Portable binary: 1 endianness byte, then for run_id an 8-byte length and its bytes.
  std::string payload = encode_payload(RunDeleted{.run_id = "r"}, PayloadFormat::binary);
  REQUIRE(payload.size() > 9);
  payload[1] = static_cast<char>(200);  // claims 200 bytes of run_id (little-endian length)
  const EventTypeRegistry registry;
  REQUIRE_THROWS_AS(
      registry.decode<RunDeleted>(raw_record("RunDeleted", 1, payload, PayloadFormat::binary)),
      SerializationError);
}

TEST_CASE("a record newer than the code knows is a SerializationError", "[events][codec]") {
  const EventTypeRegistry registry;
  const PayloadFormat format = GENERATE(PayloadFormat::json, PayloadFormat::binary);
  RecordedEvent record = record_of(sample<RunStopped>(), format);
  record.schema_version = 2;
  REQUIRE_THROWS_MATCHES(registry.decode<RunStopped>(record), SerializationError,
                         WhatContains("newer"));
  REQUIRE_THROWS_MATCHES(registry.decode_variant<WorkflowRunEvent>(record), SerializationError,
                         WhatContains("RunStopped"));

  EventTypeRegistry upcasting;
  upcasting.add_upcaster<RunCreatedV1, RunCreatedV2>(&v1_to_v2);
  REQUIRE_THROWS_AS(upcasting.decode<RunCreatedV2>(raw_record(
                        "RunCreated", 3, encode_payload(kExpectedV3, PayloadFormat::json))),
                    SerializationError);
}

TEST_CASE("an old schema version without an upcaster is a SerializationError", "[events][codec]") {
  const EventTypeRegistry registry;
  const RecordedEvent v1 = raw_record("RunCreated", 1, kV1Json);
  REQUIRE_THROWS_MATCHES(registry.decode<RunCreatedV2>(v1), SerializationError,
                         WhatContains("upcaster"));

  // Registering v2 as a plain type does not teach the registry to read v1.
  EventTypeRegistry with_v2;
  with_v2.add<RunCreatedV2>();
  REQUIRE_THROWS_AS(with_v2.decode<RunCreatedV2>(v1), SerializationError);

  // Schema version 0 never existed.
  REQUIRE_THROWS_AS(registry.decode<RunCreated>(raw_record("RunCreated", 0, kV1Json)),
                    SerializationError);
}

TEST_CASE("decode errors say which record failed", "[events][codec]") {
  const EventTypeRegistry registry;
  const RecordedEvent record =
      raw_record("NodeFailed", 1, R"({"run_id": "r-1")", PayloadFormat::json);
  try {
    (void)registry.decode_variant<WorkflowRunEvent>(record);
    FAIL("decode succeeded");
  } catch (const SerializationError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Matchers::Contains("NodeFailed"));
    CHECK_THAT(what, Catch::Matchers::Contains("WorkflowRun-r-9"));
    CHECK_THAT(what, Catch::Matchers::Contains("4242"));
    CHECK_THAT(what, Catch::Matchers::Contains("json"));
  }
}

TEST_CASE("text that is not UTF-8 is refused by the JSON format", "[events][codec]") {
  for (const std::string& bad :
       {std::string("caf\xe9"), std::string("\xc0\xaf"), std::string("\xed\xa0\x80"),
        std::string("\xf4\x90\x80\x80"), std::string("abc\xe2\x82")}) {
    const NodeFailed e{.run_id = "r-1", .node_execution_id = "n-1", .error = bad};
    CHECK_THROWS_MATCHES(encode_payload(e, PayloadFormat::json), SerializationError,
                         WhatContains("NodeFailed") && WhatContains("UTF-8"));
  }
  const NodeFailed good{.run_id = "r-1",
                        .node_execution_id = "n-1",
                        .error = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"};
  const std::string payload = encode_payload(good, PayloadFormat::json);
  CHECK(is_json_document(payload));
  CHECK(EventTypeRegistry{}.decode<NodeFailed>(raw_record("NodeFailed", 1, payload)) == good);
}

namespace {
struct Marker {
  static constexpr std::string_view kType = "Marker";
  static constexpr std::uint32_t kSchemaVersion = 1;
  template <class Archive>
  void serialize(Archive&) {}
};
struct MarkerV2 {
  static constexpr std::string_view kType = "Marker";
  static constexpr std::uint32_t kSchemaVersion = 2;
  std::string note{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("note", note));
  }
};
}  // namespace

TEST_CASE("an event without fields encodes as an empty JSON object", "[events][codec]") {
  CHECK(encode_payload(Marker{}, PayloadFormat::json) == "{}");
}

TEST_CASE("an upcaster that throws gives a SerializationError", "[events][codec]") {
  EventTypeRegistry registry;
  registry.add_upcaster<Marker, MarkerV2>(
      [](Marker) -> MarkerV2 { throw std::out_of_range("upcaster bug"); });
  CHECK_THROWS_MATCHES(registry.decode<MarkerV2>(raw_record("Marker", 1, "{}")), SerializationError,
                       WhatContains("upcaster") && WhatContains("upcaster bug"));
}

// ---------------------------------------------------------------------------------------
// annals' JSON archives against cereal's (the oracle): what one writes, both read alike
// ---------------------------------------------------------------------------------------

namespace {

struct Address {
  std::string city{};
  std::uint16_t zip = 0;
  std::optional<std::string> note{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("city", city), cereal::make_nvp("zip", zip), cereal::make_nvp("note", note));
  }
  friend bool operator==(const Address&, const Address&) = default;
};

// What a user's event plausibly holds: every arithmetic type cereal's JSON format knows,
// nested structs, containers, optionals, a variant, a timestamp.
struct Order {
  static constexpr std::string_view kType = "Order";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string id{};
  bool paid = false;
  char grade = 0;
  std::int8_t i8 = 0;
  std::uint8_t u8 = 0;
  std::int16_t i16 = 0;
  std::uint16_t u16 = 0;
  std::int32_t i32 = 0;
  std::uint32_t u32 = 0;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  long long ll = 0;            // cereal writes it as a string (not std::int64_t on LP64)
  unsigned long long ull = 0;  // likewise
  float f = 0;
  double d = 0;
  long double ld = 0;  // a string too
  Address ship_to{};
  std::vector<Address> history{};
  std::vector<std::int64_t> numbers{};
  std::map<std::string, double> scores{};
  std::map<std::int32_t, std::string> labels{};
  std::optional<Address> billing{};
  std::optional<std::uint64_t> maybe{};
  std::vector<std::vector<std::string>> tags{};
  std::variant<std::int32_t, std::string> ref{};
  Timestamp at{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("id", id), cereal::make_nvp("paid", paid), cereal::make_nvp("grade", grade),
       cereal::make_nvp("i8", i8), cereal::make_nvp("u8", u8), cereal::make_nvp("i16", i16),
       cereal::make_nvp("u16", u16), cereal::make_nvp("i32", i32), cereal::make_nvp("u32", u32),
       cereal::make_nvp("i64", i64), cereal::make_nvp("u64", u64), cereal::make_nvp("ll", ll),
       cereal::make_nvp("ull", ull), cereal::make_nvp("f", f), cereal::make_nvp("d", d),
       cereal::make_nvp("ld", ld), cereal::make_nvp("ship_to", ship_to),
       cereal::make_nvp("history", history), cereal::make_nvp("numbers", numbers),
       cereal::make_nvp("scores", scores), cereal::make_nvp("labels", labels),
       cereal::make_nvp("billing", billing), cereal::make_nvp("maybe", maybe),
       cereal::make_nvp("tags", tags), cereal::make_nvp("ref", ref), cereal::make_nvp("at", at));
  }
  friend bool operator==(const Order&, const Order&) = default;
};

// Unnamed members: cereal names them value0, value1... and reads them by position.
struct Unnamed {
  static constexpr std::string_view kType = "Unnamed";
  static constexpr std::uint32_t kSchemaVersion = 1;
  std::string a{};
  std::int32_t b = 0;
  std::vector<std::string> c{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(a, cereal::make_nvp("b", b), c);
  }
  friend bool operator==(const Unnamed&, const Unnamed&) = default;
};

template <class E>
E cereal_decode(const std::string& text) {
  E e{};
  std::istringstream in(text);
  cereal::JSONInputArchive archive(in);
  e.serialize(archive);
  return e;
}

template <class E>
E annals_decode(const std::string& text) {
  E e{};
  JsonInputArchive archive(text);
  e.serialize(archive);
  return e;
}

// What the previous encoder stored: cereal's writer, without indentation, line breaks between
// members removed (cereal escapes them inside strings, so every raw newline is between tokens).
template <class E>
std::string cereal_encode(const E& event, bool strip_newlines) {
  std::ostringstream out;
  {
    cereal::JSONOutputArchive archive(out, cereal::JSONOutputArchive::Options::NoIndent());
    const_cast<E&>(event).serialize(archive);
  }
  std::string text = std::move(out).str();
  if (strip_newlines) std::erase(text, '\n');
  return text.empty() ? "{}" : text;
}

class Values {
 public:
  explicit Values(std::uint64_t seed) : rng_(seed) {}

  std::string text() {
    static const std::vector<std::string> pieces = {
        "", "a", "hello world", "\"", "\\", "/", "\b\f\n\r\t", "\x01\x1f\x7f", "h\xC3\xA9llo",
        "\xE2\x9C\x93", "\xF0\x9F\x9A\x80", "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF", "\\u0000", "NaN",
        "{\"json\":[1,2]}", " ", std::string(300, 'x'), "value0", "\xE6\x97\xA5\xE6\x9C\xAC"};
    std::string s;
    const auto n = pick(6);
    for (std::size_t i = 0; i < n; ++i) s += pieces[pick(pieces.size())];
    return s;
  }
  template <class T>
  T integer() {
    const T edges[] = {T{0}, T{1}, std::numeric_limits<T>::max(), std::numeric_limits<T>::min(),
                       static_cast<T>(std::numeric_limits<T>::max() / 3),
                       static_cast<T>(std::numeric_limits<T>::min() + 1)};
    if (pick(3) == 0) return static_cast<T>(rng_());
    return edges[pick(std::size(edges))];
  }
  double real() {
    const double edges[] = {0.0,
                            -0.0,
                            1.0,
                            -1.5,
                            0.1,
                            1.0 / 3.0,
                            1e300,
                            -1e300,
                            1e-300,
                            std::numeric_limits<double>::denorm_min(),
                            -std::numeric_limits<double>::denorm_min(),
                            std::numeric_limits<double>::min() / 3,  // subnormal
                            std::numeric_limits<double>::min(),
                            std::numeric_limits<double>::max(),
                            std::numeric_limits<double>::lowest(),
                            std::numeric_limits<double>::epsilon(),
                            9007199254740993.0,
                            123456789012345678.0};
    if (pick(3) == 0) {
      for (;;) {  // any finite bit pattern
        const std::uint64_t bits = rng_();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (std::isfinite(d)) return d;
      }
    }
    return edges[pick(std::size(edges))];
  }
  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

  Address address() {
    Address a{.city = text(), .zip = integer<std::uint16_t>(), .note = {}};
    if (pick(2) == 0) a.note = text();
    return a;
  }

  Order order() {
    Order o;
    o.id = text();
    o.paid = pick(2) == 0;
    o.grade = static_cast<char>(integer<signed char>());
    o.i8 = integer<std::int8_t>();
    o.u8 = integer<std::uint8_t>();
    o.i16 = integer<std::int16_t>();
    o.u16 = integer<std::uint16_t>();
    o.i32 = integer<std::int32_t>();
    o.u32 = integer<std::uint32_t>();
    o.i64 = integer<std::int64_t>();
    o.u64 = integer<std::uint64_t>();
    o.ll = integer<long long>();
    o.ull = integer<unsigned long long>();
    o.f = static_cast<float>(pick(2) == 0 ? 0.1 : -3.5e-20);
    o.d = real();
    o.ld = pick(2) == 0 ? 0.1L : -1e-4000L;
    o.ship_to = address();
    for (std::size_t n = pick(4); n > 0; --n) o.history.push_back(address());
    for (std::size_t n = pick(5); n > 0; --n) o.numbers.push_back(integer<std::int64_t>());
    for (std::size_t n = pick(4); n > 0; --n) o.scores[text()] = real();
    for (std::size_t n = pick(4); n > 0; --n) o.labels[integer<std::int32_t>()] = text();
    if (pick(2) == 0) o.billing = address();
    if (pick(2) == 0) o.maybe = integer<std::uint64_t>();
    for (std::size_t n = pick(3); n > 0; --n) {
      o.tags.emplace_back();
      for (std::size_t k = pick(3); k > 0; --k) o.tags.back().push_back(text());
    }
    if (pick(2) == 0) {
      o.ref = integer<std::int32_t>();
    } else {
      o.ref = text();
    }
    o.at = from_micros(integer<std::int64_t>());
    return o;
  }

  template <class E>
  E workflow_event();

 private:
  std::mt19937_64 rng_;
};

template <>
RunCreated Values::workflow_event<RunCreated>() {
  return {text(), text(), text(), text(), text(), text(), text(), from_micros(integer<std::int64_t>())};
}
template <>
NodeStarted Values::workflow_event<NodeStarted>() {
  return {text(), text(), integer<std::uint32_t>(), text(), text(), text(), text(), text(),
          from_micros(integer<std::int64_t>())};
}
template <>
NodeCompleted Values::workflow_event<NodeCompleted>() {
  return {text(), text(), text(), real(), integer<std::uint64_t>(),
          from_micros(integer<std::int64_t>())};
}
template <>
NodeFailed Values::workflow_event<NodeFailed>() {
  return {text(), text(), text(), text(), real(), from_micros(integer<std::int64_t>())};
}
template <>
RunSucceeded Values::workflow_event<RunSucceeded>() {
  return {text(), text(), real(), integer<std::uint64_t>(), integer<std::uint32_t>(),
          from_micros(integer<std::int64_t>())};
}
template <>
RunFailed Values::workflow_event<RunFailed>() {
  return {text(), text(), real(), integer<std::uint64_t>(), integer<std::uint32_t>(),
          from_micros(integer<std::int64_t>())};
}
template <>
RunStopped Values::workflow_event<RunStopped>() {
  return {text(), text(), text(), real(), integer<std::uint64_t>(), integer<std::uint32_t>(),
          from_micros(integer<std::int64_t>())};
}
template <>
RunDeleted Values::workflow_event<RunDeleted>() {
  return {text(), text(), text(), from_micros(integer<std::int64_t>())};
}

// The same document with every object's members in reverse order (arrays keep theirs).
std::string reversed_members(const std::string& text) {
  std::function<nlohmann::ordered_json(const nlohmann::ordered_json&)> reverse =
      [&](const nlohmann::ordered_json& j) {
        if (j.is_object()) {
          nlohmann::ordered_json out = nlohmann::ordered_json::object();
          std::vector<std::pair<std::string, nlohmann::ordered_json>> members;
          for (const auto& [key, value] : j.items()) members.emplace_back(key, reverse(value));
          for (auto it = members.rbegin(); it != members.rend(); ++it) out[it->first] = it->second;
          return out;
        }
        if (j.is_array()) {
          nlohmann::ordered_json out = nlohmann::ordered_json::array();
          for (const auto& value : j) out.push_back(reverse(value));
          return out;
        }
        return j;
      };
  return reverse(nlohmann::ordered_json::parse(text)).dump();
}

// Both readers give the original back from what annals writes now and from what the previous
// encoder wrote (with and without its line breaks), and from all three with members reversed.
template <class E>
void check_both_readers(const E& original) {
  const std::string now = encode_payload(original, PayloadFormat::json);
  CAPTURE(now);
  CHECK(now.find('\n') == std::string::npos);
  CHECK(is_json_document(now));
  const RecordedEvent context = raw_record(std::string(E::kType), 1, now);
  for (const std::string& text :
       {now, cereal_encode(original, false), cereal_encode(original, true), reversed_members(now),
        reversed_members(cereal_encode(original, true))}) {
    CAPTURE(text);
    CHECK(cereal_decode<E>(text) == original);
    CHECK(annals_decode<E>(text) == original);
    CHECK(decode_payload<E>(text, PayloadFormat::json, context) == original);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("annals' JSON archives and cereal's read every workflow event alike",
                   "[events][codec][json]", RunCreated, NodeStarted, NodeCompleted, NodeFailed,
                   RunSucceeded, RunFailed, RunStopped, RunDeleted) {
  Values values(20261121);
  check_both_readers(sample<TestType>());
  check_both_readers(TestType{});
  for (int i = 0; i < 200; ++i) check_both_readers(values.template workflow_event<TestType>());
}

TEST_CASE("annals' JSON archives and cereal's read a user's nested event alike",
          "[events][codec][json]") {
  Values values(7);
  check_both_readers(Order{});
  for (int i = 0; i < 300; ++i) check_both_readers(values.order());
}

TEST_CASE("annals' JSON archives write exactly cereal's shape, compactly", "[events][codec][json]") {
  Order o;
  o.id = "x";
  o.ll = -5;
  o.ull = 18446744073709551615ULL;
  o.ld = 0.5L;
  o.history = {Address{.city = "c", .zip = 1, .note = "n"}};
  o.scores = {{"k", 1.5}};
  o.maybe = 3;
  o.ref = std::string("r");
  // cereal's output with the indentation and line breaks removed is ours, byte for byte.
  std::string cereal_text = cereal_encode(o, true);
  std::string compact;
  bool in_string = false;
  for (std::size_t i = 0; i < cereal_text.size(); ++i) {
    const char c = cereal_text[i];
    if (in_string && c == '\\') {
      compact += c;
      compact += cereal_text[++i];
      continue;
    }
    if (c == '"') in_string = !in_string;
    if (!in_string && c == ' ') continue;
    compact += c;
  }
  const std::string ours = encode_payload(o, PayloadFormat::json);
  CHECK(ours == compact);
  CHECK(ours.find(R"("ll":"-5")") != std::string::npos);
  CHECK(ours.find(R"("ull":"18446744073709551615")") != std::string::npos);
  CHECK(ours.find(R"("scores":[{"key":"k","value":1.5}])") != std::string::npos);
  CHECK(ours.find(R"("maybe":{"nullopt":false,"data":3})") != std::string::npos);
  CHECK(ours.find(R"("billing":{"nullopt":true})") != std::string::npos);

  const Unnamed u{.a = "first", .b = 2, .c = {"x", "y"}};
  const std::string unnamed = encode_payload(u, PayloadFormat::json);
  CHECK(unnamed == R"({"value0":"first","b":2,"value1":["x","y"]})");
  CHECK(cereal_encode(u, true) == R"({"value0": "first","b": 2,"value1": ["x","y"]})");
  CHECK(cereal_decode<Unnamed>(unnamed) == u);
  CHECK(annals_decode<Unnamed>(unnamed) == u);
}

TEST_CASE("annals' JSON encoder refuses what cereal's wrote but JSON cannot hold",
          "[events][codec][json]") {
  Order o;
  SECTION("a NUL in a nested string") {
    o.history = {Address{.city = std::string("a\0b", 3)}};
    CHECK_THROWS_MATCHES(encode_payload(o, PayloadFormat::json), SerializationError,
                         WhatContains("encode Order as JSON: a string holds a NUL character"));
  }
  SECTION("invalid UTF-8 in a map key") {
    o.scores = {{"\xC3", 1.0}};
    CHECK_THROWS_MATCHES(encode_payload(o, PayloadFormat::json), SerializationError,
                         WhatContains("encode Order as JSON: a string is not valid UTF-8"));
  }
  SECTION("an infinite float and a NaN in a map") {
    o.f = std::numeric_limits<float>::infinity();
    CHECK_THROWS_MATCHES(encode_payload(o, PayloadFormat::json), SerializationError,
                         WhatContains("encode Order as JSON: a number is NaN or infinite"));
    o.f = 0;
    o.scores = {{"k", std::nan("")}};
    CHECK_THROWS_MATCHES(encode_payload(o, PayloadFormat::json), SerializationError,
                         WhatContains("a number is NaN or infinite; use the binary payload format"));
  }
}

TEST_CASE("a malformed JSON payload is a SerializationError from annals' reader",
          "[events][codec][json]") {
  const RunStopped valid{.run_id = "r-1",
                         .stopped_by = "bob",
                         .reason = "why",
                         .elapsed_time = 1.5,
                         .total_tokens = 9,
                         .total_steps = 3,
                         .finished_at = from_micros(kT0)};
  const std::string good = encode_payload(valid, PayloadFormat::json);
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  const RecordedEvent context = raw_record("RunStopped", 1, good);
  const auto refused = [&](const std::string& text) {
    CAPTURE(text);
    CHECK_THROWS_MATCHES(decode_payload<RunStopped>(text, PayloadFormat::json, context),
                         SerializationError,
                         WhatContains("decode RunStopped v1 in stream WorkflowRun-r-9 at position "
                                      "4242 (json payload"));
  };
  REQUIRE(decode_payload<RunStopped>(good, PayloadFormat::json, context) == valid);

  SECTION("truncated at every byte") {
    for (std::size_t cut = 0; cut < good.size(); ++cut) refused(good.substr(0, cut));
  }
  SECTION("wrong types") {
    refused(replaced(R"("r-1")", "1"));
    refused(replaced(R"("r-1")", "null"));
    refused(replaced(R"("r-1")", R"({"a":"r-1"})"));
    refused(replaced(R"("r-1")", R"(["r-1"])"));
    refused(replaced(R"("total_tokens":9)", R"("total_tokens":"9")"));
    refused(replaced(R"("total_tokens":9)", R"("total_tokens":9.0)"));
    refused(replaced(R"("total_tokens":9)", R"("total_tokens":-9)"));
    refused(replaced(R"("total_tokens":9)", R"("total_tokens":18446744073709551616)"));
    refused(replaced(R"("total_tokens":9)", R"("total_tokens":true)"));
    refused(replaced(R"("total_steps":3)", R"("total_steps":4294967296)"));
    refused(replaced(R"("elapsed_time":1.5)", R"("elapsed_time":"1.5")"));
    refused(replaced(R"("finished_at":1700000000123456)", R"("finished_at":9223372036854775808)"));
  }
  SECTION("a missing member names it") {
    CHECK_THROWS_MATCHES(
        decode_payload<RunStopped>(replaced(R"("reason":"why",)", ""), PayloadFormat::json, context),
        SerializationError, WhatContains("no member \"reason\""));
  }
  SECTION("trailing bytes") {
    refused(good + "x");
    refused(good + "{}");
    refused(good + ",");
    refused(good + std::string(1, '\0'));
    refused(good + std::string("\0{}", 3));
    CHECK(decode_payload<RunStopped>(" \n" + good + " \t\r\n", PayloadFormat::json, context) ==
          valid);
  }
  SECTION("NaN and infinity tokens") {
    for (const char* token : {"NaN", "Infinity", "-Infinity", "Inf", "nan"}) {
      refused(replaced("1.5", token));
    }
  }
  SECTION("not one object") {
    for (const std::string& text :
         {std::string(), std::string(" "), std::string("\xEF\xBB\xBF") + good, std::string("42"),
          std::string("\"s\""), std::string("null"), std::string("[]"), std::string("[") + good + "]",
          std::string("{'run_id':'r-1'}"), std::string("{\"run_id\":\"r-1\",}")}) {
      refused(text);
    }
  }
  SECTION("deep nesting") {
    refused(std::string(100'000, '['));
    refused(std::string(100'000, '[') + std::string(100'000, ']'));
    refused(replaced(R"("r-1")", std::string(100'000, '[') + std::string(100'000, ']')));
    // Deeply nested but well-formed, in a member nobody reads: parsed without recursion.
    const std::string deep = "{\"extra\":" + std::string(100'000, '[') +
                             std::string(100'000, ']') + "," + good.substr(1);
    CHECK(decode_payload<RunStopped>(deep, PayloadFormat::json, context) == valid);
  }
}

TEST_CASE("a user's nested event with a wrong or out-of-range member is refused",
          "[events][codec][json]") {
  Order o;
  o.history = {Address{.city = "c"}};
  const std::string good = encode_payload(o, PayloadFormat::json);
  const RecordedEvent context = raw_record("Order", 1, good);
  REQUIRE(decode_payload<Order>(good, PayloadFormat::json, context) == o);
  const auto refused = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    s.replace(at, from.size(), to);
    CAPTURE(s);
    CHECK_THROWS_AS(decode_payload<Order>(s, PayloadFormat::json, context), SerializationError);
  };
  refused(R"("i8":0)", R"("i8":128)");
  refused(R"("u8":0)", R"("u8":256)");
  refused(R"("u8":0)", R"("u8":-1)");
  refused(R"("i16":0)", R"("i16":-32769)");
  refused(R"("u16":0)", R"("u16":65536)");
  refused(R"("i32":0)", R"("i32":2147483648)");
  refused(R"("ll":"0")", R"("ll":0)");
  refused(R"("ll":"0")", R"("ll":"0x")");
  refused(R"("ull":"0")", R"("ull":"-1")");
  refused(R"("ld":"0")", R"("ld":"zero")");
  refused(R"("paid":false)", R"("paid":0)");
  refused(R"("history":[{)", R"("history":{"x":{)");
  refused(R"("numbers":[])", R"("numbers":{})");
  refused(R"("ship_to":{)", R"("ship_to":[{)");
  refused(R"("billing":{"nullopt":true})", R"("billing":{})");
  refused(R"("ref":{"index":0,)", R"("ref":{"index":7,)");
}
