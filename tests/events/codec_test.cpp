// The typed-event codec: encode_payload / decode_payload, EventTypeRegistry::decode and
// decode_variant, upcasters, and the errors a bad record raises.

#include "annals/events/codec.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
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
