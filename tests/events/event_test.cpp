// The event envelope helpers: ids, timestamps, payload formats, JSON checks and
// ExpectedVersion.

#include "annals/events/event.hpp"

#include <boost/uuid/string_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/store/event_store.hpp"
#include "support/matchers.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

bool is_canonical_uuid_text(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Event ids
// ---------------------------------------------------------------------------------------

TEST_CASE("new_event_id gives distinct, non-nil, random (v4) ids", "[events]") {
  std::set<boost::uuids::uuid> seen;
  for (int i = 0; i < 1000; ++i) {
    const boost::uuids::uuid id = new_event_id();
    CHECK_FALSE(id.is_nil());
    CHECK(id.version() == boost::uuids::uuid::version_random_number_based);
    CHECK(id.variant() == boost::uuids::uuid::variant_rfc_4122);
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("new_event_id gives distinct ids across threads", "[events]") {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::vector<boost::uuids::uuid>> ids(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      ids[static_cast<std::size_t>(t)].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        ids[static_cast<std::size_t>(t)].push_back(new_event_id());
      }
    });
  }
  for (std::thread& th : threads) th.join();

  std::set<boost::uuids::uuid> all;
  std::size_t nil = 0;
  for (const auto& per_thread : ids) {
    REQUIRE(per_thread.size() == static_cast<std::size_t>(kPerThread));
    for (const auto& id : per_thread) {
      if (id.is_nil()) ++nil;
      all.insert(id);
    }
  }
  CHECK(nil == 0);
  CHECK(all.size() == static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_CASE("to_string and parse_uuid round-trip the canonical form", "[events]") {
  for (int i = 0; i < 100; ++i) {
    const boost::uuids::uuid id = new_event_id();
    const std::string text = to_string(id);
    CAPTURE(text);
    CHECK(is_canonical_uuid_text(text));
    CHECK(parse_uuid(text) == id);
    CHECK(to_string(parse_uuid(text)) == text);
  }

  const std::string known = "123e4567-e89b-12d3-a456-426614174000";
  const boost::uuids::uuid parsed = parse_uuid(known);
  CHECK_FALSE(parsed.is_nil());
  CHECK(to_string(parsed) == known);
  CHECK(parsed.data[0] == 0x12);
  CHECK(parsed.data[15] == 0x00);

  // The nil uuid has a canonical form too.
  CHECK(to_string(boost::uuids::uuid{}) == "00000000-0000-0000-0000-000000000000");
  CHECK(parse_uuid("00000000-0000-0000-0000-000000000000").is_nil());
}

TEST_CASE("parse_uuid reads what boost's string_generator read from 36 characters", "[events]") {
  const std::string alphabet = "0123456789abcdefABCDEF-{}g \xC3";
  std::mt19937_64 rng(11);
  std::size_t accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string text = to_string(new_event_id());
    for (int edits = static_cast<int>(rng() % 3); edits > 0; --edits) {
      text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
    }
    CAPTURE(text);
    std::optional<boost::uuids::uuid> expected;
    try {
      expected = boost::uuids::string_generator{}(text);
    } catch (const std::exception&) {
    }
    if (expected) {
      ++accepted;
      CHECK(parse_uuid(text) == *expected);
    } else {
      CHECK_THROWS_AS(parse_uuid(text), InvalidArgument);
    }
  }
  CHECK(accepted > 5'000);
  CHECK(accepted < 19'000);
}

TEST_CASE("parse_uuid rejects text that is not a UUID, naming it", "[events]") {
  const std::string bad =
      GENERATE(as<std::string>{},
               "",                                       // empty
               "not-a-uuid",                             // words
               "123e4567-e89b-12d3-a456-42661417400",    // 35 characters
               "123e4567-e89b-12d3-a456-4266141740000",  // 37 characters
               "123e4567-e89b-12d3-a456-42661417400g",   // not hex
               "123e4567-e89b-12d3-a456_426614174000",   // wrong separator
               "123e4567e89b-12d3-a456-4266141740000",   // dash misplaced
               "123e4567e89b12d3a4564266141740000000",   // 36 hex digits, no dashes
               "{123e4567-e89b-12d3-a456-4266141740}",   // braces, too short inside
               " 23e4567-e89b-12d3-a456-426614174000",   // leading space
               "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz");
  CAPTURE(bad);
  REQUIRE_THROWS_MATCHES(parse_uuid(bad), InvalidArgument, WhatContains("'" + bad + "'"));
}

// ---------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------

TEST_CASE("to_micros and from_micros are inverse", "[events]") {
  STATIC_REQUIRE(to_micros(from_micros(0)) == 0);
  STATIC_REQUIRE(to_micros(from_micros(1'700'000'000'123'456)) == 1'700'000'000'123'456);
  STATIC_REQUIRE(to_micros(from_micros(-42)) == -42);
  CHECK(from_micros(0) == Timestamp{});
  CHECK(from_micros(1) > from_micros(0));
  CHECK(from_micros(1'000'000) - from_micros(0) == std::chrono::seconds(1));
}

TEST_CASE("format_timestamp writes ISO 8601 UTC with microseconds", "[events]") {
  CHECK(format_timestamp(from_micros(0)) == "1970-01-01T00:00:00.000000Z");
  CHECK(format_timestamp(Timestamp{}) == "1970-01-01T00:00:00.000000Z");
  CHECK(format_timestamp(from_micros(1)) == "1970-01-01T00:00:00.000001Z");
  CHECK(format_timestamp(from_micros(999'999)) == "1970-01-01T00:00:00.999999Z");
  CHECK(format_timestamp(from_micros(1'000'000)) == "1970-01-01T00:00:01.000000Z");
  CHECK(format_timestamp(from_micros(1'700'000'000'123'456)) == "2023-11-14T22:13:20.123456Z");
  // 2024 is a leap year.
  CHECK(format_timestamp(from_micros(1'709'164'800'000'000)) == "2024-02-29T00:00:00.000000Z");
  CHECK(format_timestamp(from_micros(1'798'761'599'999'999)) == "2026-12-31T23:59:59.999999Z");
}

TEST_CASE("format_timestamp handles times before the epoch", "[events]") {
  CHECK(format_timestamp(from_micros(-1)) == "1969-12-31T23:59:59.999999Z");
  CHECK(format_timestamp(from_micros(-1'000'000)) == "1969-12-31T23:59:59.000000Z");
  CHECK(format_timestamp(from_micros(-1'500'000)) == "1969-12-31T23:59:58.500000Z");
  CHECK(format_timestamp(from_micros(-86'400'000'000)) == "1969-12-31T00:00:00.000000Z");
  CHECK(format_timestamp(from_micros(-86'400'000'001)) == "1969-12-30T23:59:59.999999Z");
}

TEST_CASE("now() is truncated to microseconds and formats as ISO 8601", "[events]") {
  const Timestamp t = now();
  CHECK(from_micros(to_micros(t)) == t);
  const std::string text = format_timestamp(t);
  REQUIRE(text.size() == 27);
  CHECK(text[4] == '-');
  CHECK(text[10] == 'T');
  CHECK(text[19] == '.');
  CHECK(text.back() == 'Z');
}

// ---------------------------------------------------------------------------------------
// Payload formats and JSON documents
// ---------------------------------------------------------------------------------------

TEST_CASE("payload formats convert to and from their names", "[events]") {
  CHECK(to_string(PayloadFormat::json) == "json");
  CHECK(to_string(PayloadFormat::binary) == "binary");
  CHECK(parse_payload_format("json") == PayloadFormat::json);
  CHECK(parse_payload_format("binary") == PayloadFormat::binary);
  for (const PayloadFormat f : {PayloadFormat::json, PayloadFormat::binary}) {
    CHECK(parse_payload_format(to_string(f)) == f);
  }
}

TEST_CASE("parse_payload_format rejects other names, naming them", "[events]") {
  const std::string bad =
      GENERATE(as<std::string>{}, "", "JSON", "Binary", "xml", "json ", "protobuf");
  CAPTURE(bad);
  REQUIRE_THROWS_MATCHES(parse_payload_format(bad), InvalidArgument, WhatContains("'" + bad + "'"));
}

TEST_CASE("is_json_document accepts exactly one well-formed JSON value", "[events]") {
  SECTION("accepted") {
    const std::string good = GENERATE(as<std::string>{}, "{}", "[]", R"({"run_id":"r-1"})",
                                      R"({"a":{"b":[1,2.5,-3e10,true,false,null]}})", "42", "-0.5",
                                      R"("just a string")", "true", "null", "  {\"padded\": 1}\n\t",
                                      "{\"u\":\"h\xC3\xA9llo \xF0\x9F\x9A\x80\"}",
                                      R"({"esc":"\"\\\/\b\f\n\r\t\u00e9"})");
    CAPTURE(good);
    CHECK(is_json_document(good));
  }
  SECTION("rejected") {
    const std::string bad = GENERATE(
        as<std::string>{}, "", "   ", "{", "}", "{'a':1}", R"({"a":1,})", "[1,2,]", "{} {}", "{}x",
        R"({"a":1}{"b":2})", "NaN", "Infinity", "undefined", "tru", R"("unterminated)", "{a:1}",
        "// comment\n{}", "{\"bad\":\"\xC3\x28\"}",  // invalid UTF-8
        "{\"ctrl\":\"a\nb\"}");                      // raw newline inside a string
    CAPTURE(bad);
    CHECK_FALSE(is_json_document(bad));
  }
  SECTION("a string_view is not read past its end") {
    const std::string text = R"({"a":1}garbage)";
    CHECK(is_json_document(std::string_view(text).substr(0, 7)));
    CHECK_FALSE(is_json_document(text));
  }
}

TEST_CASE("is_json_document gives nlohmann::json::accept's verdict", "[events][json]") {
  // nlohmann::json was the validator before RapidJSON; what the store accepts must not change.
  const std::vector<std::string> table = {
      // values
      "{}", "[]", "0", "-0", "-0.0", "1E+2", "1e-2", "1.5e-400", "123456789012345678901234567890",
      "1.7976931348623157e308", "-1.7976931348623157e308", "4.9e-324", "0e-50", "-0.0e-400",
      "0.000000000000000000000000000", "0e30", "1.5e-400", "true", "false", "null",
      R"("")", R"("\u0000")", R"("\uD83D\uDE80")", R"("\u00e9\/\b")", "\"\x7f\"",
      "\"\xF4\x8F\xBF\xBF\"", "\"\xEF\xBB\xBF\"", R"({"a":1,"a":2})", R"({"":""})",
      " \t\r\n[ 1 , { \"a\" : [ ] } ]\n ",
      // numbers JSON does not allow, or that overflow a double
      "01", "1.", ".5", "1e", "1e+", "-", "+1", "0x10", "1e400", "-1e400", "1.8e308", "2e308",
      std::string("1") + std::string(400, '0'), std::string("1") + std::string(308, '0'),
      std::string("1") + std::string(309, '0'), std::string("-1") + std::string(308, '0'),
      "Infinity", "-Infinity", "NaN", "nan",
      // strings
      R"("\uDC00")", R"("\uD800")", R"("\uD800x")", R"("\uD800\u0041")", R"("\x41")",
      R"("\u12")", "\"\x01\"", "\"a\tb\"", "'a'", "\"\xC0\x80\"", "\"\xC3\"",
      "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xF5\x80\x80\x80\"",
      "\"\xE0\x9F\xBF\"", "\"\xFF\"", "\"\x80\"",
      // structure
      "", " ", "{", "}", "[1,]", "[,1]", R"({"a":1,})", "[1 2]", R"({"a" 1})", "{1:2}",
      R"({"a":})", "{} {}", "{}x", "{}\f", "/*c*/{}", "{}//c", "tru", "nul", "[", "]",
      std::string(10'000, '[') + std::string(10'000, ']'), std::string(10'000, '['),
      std::string(10'000, '[') + std::string(9'999, ']'), "[[[]]]]"};
  REQUIRE(table.size() >= 40);
  std::size_t accepted = 0;
  for (const std::string& text : table) {
    CAPTURE(text);
    const bool expected = nlohmann::json::accept(text);
    CHECK(is_json_document(text) == expected);
    accepted += expected ? 1 : 0;
  }
  CHECK(accepted > 20);  // both verdicts are well represented
  CHECK(accepted < table.size() / 2);
}

TEST_CASE("is_json_document is stricter than nlohmann::json in a few places", "[events][json]") {
  // nlohmann skips a UTF-8 byte order mark; SQLite's json functions do not, and neither does
  // either payload reader.
  CHECK(nlohmann::json::accept(std::string("\xEF\xBB\xBF{}")));
  CHECK_FALSE(is_json_document("\xEF\xBB\xBF{}"));
  // nlohmann stops at a NUL byte as if the text ended there; it is not whitespace.
  const std::string nul("{}\0{garbage", 11);
  CHECK(nlohmann::json::accept(nul));
  CHECK_FALSE(is_json_document(nul));
  CHECK_FALSE(is_json_document(std::string("[1]\0", 4)));
  CHECK_FALSE(is_json_document(std::string("[\"a\0\"]", 6)));
  // RapidJSON 1.1.0's number scanner refuses an exponent above 308 (less the fraction digits)
  // whatever the value: a zero with a huge exponent is refused. A JSON text nobody writes.
  CHECK(nlohmann::json::accept("0e400"));
  CHECK_FALSE(is_json_document("0e400"));
}

TEST_CASE("is_json_document agrees with nlohmann::json on mutated documents", "[events][json]") {
  const std::vector<std::string> seeds = {
      R"({"run_id":"r-1","n":[1,2.5,-3e10,true,false,null],"o":{"k":"v\u00e9\n"}})",
      "[\"h\xC3\xA9llo \xF0\x9F\x9A\x80\",{\"a\":{\"b\":[]}},-0.5e-3,\"\\uD83D\\uDE80\"]",
      R"({"e":"\"\\\/\b\f\n\r\t","u":"\uDBFF\uDFFF","big":18446744073709551615})"};
  const std::string alphabet = "{}[],:\"\\ \t\n0123456789-+.eEtrufalsn\x80\xBF\xC3\xED\xF0uDdAa";
  std::mt19937_64 rng(5);
  std::size_t compared = 0, accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string text = seeds[rng() % seeds.size()];
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0 && !text.empty(); --edits) {
      const std::size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0: text[at] = c; break;
        case 1: text.insert(at, 1, c); break;
        case 2: text.erase(at, 1); break;
        default: text.resize(at); break;
      }
    }
    CAPTURE(text);
    const bool expected = nlohmann::json::accept(text);
    CHECK(is_json_document(text) == expected);
    ++compared;
    accepted += expected ? 1 : 0;
  }
  CHECK(compared == 20'000);
  CHECK(accepted > 1'000);  // the mutations do not only break documents
}

// ---------------------------------------------------------------------------------------
// Envelope defaults
// ---------------------------------------------------------------------------------------

TEST_CASE("envelopes default to schema 1, json, nil id", "[events]") {
  const NewEvent n;
  CHECK(n.event_id.is_nil());
  CHECK(n.schema_version == 1);
  CHECK(n.payload_format == PayloadFormat::json);
  CHECK(n.metadata == EventMetadata{});

  const RecordedEvent r;
  CHECK(r.position == 0);
  CHECK(r.version == 0);
  CHECK(r.schema_version == 1);
  CHECK(r.payload_format == PayloadFormat::json);
  CHECK(r.recorded_at == Timestamp{});

  RecordedEvent a{.position = 1,
                  .stream_id = "s",
                  .version = 1,
                  .event_id = new_event_id(),
                  .type = "T",
                  .payload = "{}",
                  .metadata = {.tenant_id = "t", .occurred_at = from_micros(5)}};
  RecordedEvent b = a;
  CHECK(a == b);
  b.metadata.actor = "someone";
  CHECK_FALSE(a == b);
  b = a;
  b.payload_format = PayloadFormat::binary;
  CHECK_FALSE(a == b);
}

// ---------------------------------------------------------------------------------------
// ExpectedVersion
// ---------------------------------------------------------------------------------------

TEST_CASE("ExpectedVersion kinds, versions and names", "[events]") {
  CHECK(ExpectedVersion::any().kind() == ExpectedVersion::Kind::any);
  CHECK(ExpectedVersion::any().version() == 0);
  CHECK(ExpectedVersion::any().to_string() == "any");

  CHECK(ExpectedVersion::no_stream().kind() == ExpectedVersion::Kind::no_stream);
  CHECK(ExpectedVersion::no_stream().version() == 0);
  CHECK(ExpectedVersion::no_stream().to_string() == "no stream");

  CHECK(ExpectedVersion::exactly(7).kind() == ExpectedVersion::Kind::exactly);
  CHECK(ExpectedVersion::exactly(7).version() == 7);
  CHECK(ExpectedVersion::exactly(7).to_string() == "version 7");
  CHECK(ExpectedVersion::exactly(UINT64_MAX).version() == UINT64_MAX);
  CHECK(ExpectedVersion::exactly(UINT64_MAX).to_string() == "version 18446744073709551615");
}

TEST_CASE("ExpectedVersion::exactly(0) is no_stream()", "[events]") {
  CHECK(ExpectedVersion::exactly(0) == ExpectedVersion::no_stream());
  CHECK(ExpectedVersion::exactly(0).kind() == ExpectedVersion::Kind::no_stream);
  CHECK(ExpectedVersion::exactly(0).to_string() == "no stream");
  CHECK(ExpectedVersion::exactly(1) == ExpectedVersion::exactly(1));
  CHECK_FALSE(ExpectedVersion::exactly(1) == ExpectedVersion::exactly(2));
  CHECK_FALSE(ExpectedVersion::any() == ExpectedVersion::no_stream());
  CHECK_FALSE(ExpectedVersion::any() == ExpectedVersion::exactly(0));
}

TEST_CASE("ExpectedVersion::matches", "[events]") {
  const std::optional<std::uint64_t> no_stream = std::nullopt;

  CHECK(ExpectedVersion::any().matches(no_stream));
  CHECK(ExpectedVersion::any().matches(1));
  CHECK(ExpectedVersion::any().matches(12345));

  CHECK(ExpectedVersion::no_stream().matches(no_stream));
  CHECK_FALSE(ExpectedVersion::no_stream().matches(1));
  CHECK_FALSE(ExpectedVersion::no_stream().matches(5));

  CHECK(ExpectedVersion::exactly(3).matches(3));
  CHECK_FALSE(ExpectedVersion::exactly(3).matches(2));
  CHECK_FALSE(ExpectedVersion::exactly(3).matches(4));
  CHECK_FALSE(ExpectedVersion::exactly(3).matches(no_stream));

  CHECK(ExpectedVersion::exactly(0).matches(no_stream));
  CHECK_FALSE(ExpectedVersion::exactly(0).matches(1));
}
