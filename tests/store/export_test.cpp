// The JSON Lines export: what leaves the store, what comes back in, and what is refused.

#include "annals/store/export.hpp"

#include <catch2/catch.hpp>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>

#include "annals/events/codec.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/store/hash_chain.hpp"
#include "support/backends.hpp"
#include "support/temp_dir.hpp"
#include "support/test_vector.hpp"

using namespace annals;
using Catch::Matchers::Contains;
using Json = nlohmann::ordered_json;

namespace {

const std::string kBinaryWithNuls("\0\x01\xff\xfe raw\0bytes\n\0", 16);

template <TypedEvent E>
NewEvent typed(const E& e, PayloadFormat format, std::string tenant = "acme") {
  NewEvent n;
  n.type = std::string(E::kType);
  n.schema_version = E::kSchemaVersion;
  n.payload = encode_payload(e, format);
  n.payload_format = format;
  n.metadata = {std::move(tenant), "alice", "corr-1", "cause-1",
                from_micros(1'700'000'000'000'123)};
  return n;
}

NewEvent raw(std::string type, std::string payload, PayloadFormat format) {
  NewEvent n;
  n.type = std::move(type);
  n.payload = std::move(payload);
  n.payload_format = format;
  return n;
}

// A log of 13 events in 4 streams: json and binary workflow events, raw binary bytes with NULs,
// an empty binary payload, json with insignificant whitespace, unicode everywhere text may be.
// `nul_in_metadata`: the actor of one event holds a NUL byte (PostgreSQL's text cannot).
void write_mixed_log(EventStore& store, bool nul_in_metadata = true) {
  RunCreated created{"r-1",
                     "acme",
                     "app-1",
                     "wf-1",
                     "debugging",
                     "alice",
                     R"({"q":"héllo ✓ 😀","n":[1,2.5]})",
                     from_micros(1'700'000'000'000'000)};
  store.append("WorkflowRun-r-1", ExpectedVersion::no_stream(),
               {typed(created, PayloadFormat::binary),
                typed(NodeStarted{"r-1", "ne-1", 1, "start", "start", "Start ✓", "", "{}",
                                  from_micros(1'700'000'000'000'010)},
                      PayloadFormat::binary),
                typed(NodeCompleted{"r-1", "ne-1", R"({"text":"line\nbreak \"quoted\""})", 0.25, 17,
                                    from_micros(1'700'000'000'000'020)},
                      PayloadFormat::json)});
  NewEvent odd_metadata = raw("Blob", kBinaryWithNuls, PayloadFormat::binary);
  odd_metadata.metadata = {"tenant ünï", nul_in_metadata ? std::string("a\0b", 3) : "a b", "",
                           "\t\"\\/", from_micros(-5)};
  store.append("raw-流", ExpectedVersion::no_stream(),
               {odd_metadata, raw("Empty", "", PayloadFormat::binary),
                raw("Spaced", "{ \"a\" : [1, 2.5, -3e10],\n \"b\": null, \"c\": \"\\u00e9\" }",
                    PayloadFormat::json),
                raw("Scalar", "42", PayloadFormat::json)});
  created.run_id = "r-2";
  store.append({StreamAppend{"WorkflowRun-r-2",
                             ExpectedVersion::no_stream(),
                             {typed(created, PayloadFormat::json, "globex"),
                              typed(RunFailed{"r-2", "boom 💥", 1.5, 3, 2, from_micros(9)},
                                    PayloadFormat::binary, "globex")}},
                StreamAppend{"WorkflowRun-r-1",
                             ExpectedVersion::exactly(3),
                             {typed(RunSucceeded{"r-1", "{}", 2.0, 40, 2, from_micros(7)},
                                    PayloadFormat::binary)}}});
  // A binary event of a known type whose bytes do not decode, and one of a newer version.
  store.append("WorkflowRun-r-3", ExpectedVersion::no_stream(),
               {raw("RunCreated", "\x01\x02", PayloadFormat::binary)});
  NewEvent future =
      typed(RunStopped{"r-3", "bob", "why", 1, 2, 3, from_micros(4)}, PayloadFormat::binary);
  future.schema_version = 9;
  store.append("WorkflowRun-r-3", ExpectedVersion::exactly(1), {future});
  store.append("WorkflowRun-r-1", ExpectedVersion::exactly(4),
               {typed(RunDeleted{"r-1", "carol", "gdpr", from_micros(8)}, PayloadFormat::binary)});
}

constexpr std::uint64_t kMixedLogEvents = 13;

const ExportOptions kWorkflow{.payload_json = workflow_payload_json};

std::string export_text(const EventStore& store, const ExportOptions& options = kWorkflow) {
  std::ostringstream out;
  (void)export_log(store, out, options);
  return std::move(out).str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l;
  return out;
}

// Line n (1-based) of text, edited as JSON.
template <class Fn>
std::string edit_line(const std::string& text, std::size_t n, Fn&& fn) {
  auto lines = split_lines(text);
  Json j = Json::parse(lines.at(n - 1));
  fn(j);
  lines.at(n - 1) = j.dump() + "\n";
  return join(lines);
}

[[maybe_unused]] std::vector<std::string> column_types(SqlEventStore& store) {
  std::vector<std::string> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query(
             "SELECT typeof(payload) || ' ' || typeof(hash) || ' ' || coalesce("
             "json_extract(CASE payload_format WHEN 'json' THEN payload END, '$.run_id'), '-')"
             " FROM annals_events ORDER BY position")) {
      out.push_back(row.text(0));
    }
  });
  return out;
}

struct MemoryTarget {
  std::shared_ptr<SqlEventStore> open() { return open_sql_event_store("memory:"); }
};
struct SqliteTarget {
  std::shared_ptr<SqlEventStore> open() { return open_sql_event_store(dir.sqlite_uri("in.db")); }
  annals::test::TempDir dir;
};

// ANNALS_BACKENDS' choice (support/backends.hpp), with these targets' names in annals_tests.
#ifdef ANNALS_TEST_PG_ONLY
#define EXPORT_TARGETS annals::test::PgBackend
#else
#define EXPORT_TARGETS MemoryTarget, SqliteTarget
#endif

// Imports text into a fresh store and expects E; returns its message. The store stays empty.
template <class E>
std::string import_error(const std::string& text, std::uint64_t expected_position = 0) {
  auto target = open_sql_event_store("memory:");
  std::istringstream in(text);
  std::string message;
  try {
    (void)import_log(*target, in);
    FAIL("the import was accepted");
  } catch (const E& e) {
    message = e.what();
    if constexpr (std::is_same_v<E, IntegrityError>) CHECK(e.position() == expected_position);
  }
  INFO(message);
  CHECK(target->head_position() == 0);
  return message;
}

}  // namespace

TEMPLATE_TEST_CASE("export, import into an empty store, export again gives the same bytes",
                   "[store][export]", EXPORT_TARGETS) {
#ifdef ANNALS_TEST_PG_ONLY
  SECTION("a log whose metadata holds a NUL byte is refused whole, naming the event") {
    annals::test::TempDir dir;
    auto source = open_sql_event_store(dir.sqlite_uri("out.db"));
    write_mixed_log(*source);
    TestType backend;
    auto target = backend.open();
    std::istringstream in(export_text(*source));
    CHECK_THROWS_AS(import_log(*target, in), InvalidArgument);
    CHECK(target->head_position() == 0);
    return;
  }
  constexpr bool kNulInMetadata = false;  // PostgreSQL's text cannot hold it
#else
  constexpr bool kNulInMetadata = true;
#endif
  annals::test::TempDir dir;
  auto source = open_sql_event_store(dir.sqlite_uri("out.db"));
  write_mixed_log(*source, kNulInMetadata);
  const std::string first = export_text(*source);
  CHECK(split_lines(first).size() == kMixedLogEvents);

  TestType backend;
  auto target = backend.open();
  std::istringstream in(first);
  const ImportResult imported = import_log(*target, in);
  const LogVerification verified = verify_log(*target);
  CHECK(imported.events == kMixedLogEvents);
  CHECK(imported.head_position == kMixedLogEvents);
  CHECK(imported.head_hash == verified.head_hash);
  CHECK(verified.head_position == kMixedLogEvents);
  CHECK(verified.head_hash == verify_log(*source).head_hash);

  CHECK(export_text(*target) == first);
  CHECK(export_text(*target, {}) == export_text(*source, {}));
  CHECK(target->read_all(1, 100) == source->read_all(1, 100));
  CHECK(target->read_stream("raw-流") == source->read_stream("raw-流"));
  CHECK(target->stream_version("WorkflowRun-r-1") == 5);
#ifndef ANNALS_TEST_PG_ONLY
  // Stored exactly as an append stores them: json as TEXT (json_extract works), the rest BLOB.
  // (On PostgreSQL the column types are the schema's: payload and hash are bytea.)
  CHECK(column_types(*target) == column_types(*source));
  CHECK(column_types(*target).at(2) == "text blob r-1");
  CHECK(column_types(*target).at(3) == "blob blob -");
#endif

  // The imported store goes on like any other.
  target->append("WorkflowRun-r-1", ExpectedVersion::exactly(5),
                 {raw("Later", "{}", PayloadFormat::json)});
  CHECK(verify_log(*target).head_position == kMixedLogEvents + 1);
}

TEST_CASE("a line is one JSON object with the documented keys in order", "[store][export]") {
  auto store = open_sql_event_store("memory:");
  write_mixed_log(*store);
  const auto events = store->read_all(1, 100);
  const auto lines = split_lines(export_text(*store));
  REQUIRE(lines.size() == events.size());

  const Json first = Json::parse(lines[0]);
  std::vector<std::string> keys;
  for (const auto& [key, value] : first.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"position", "stream_id", "version", "event_id", "type",
                                         "schema_version", "payload_format", "payload",
                                         "payload_base64", "metadata", "recorded_at", "hash"});
  std::vector<std::string> metadata_keys;
  for (const auto& [key, value] : first["metadata"].items()) metadata_keys.push_back(key);
  CHECK(metadata_keys == std::vector<std::string>{"tenant_id", "actor", "correlation_id",
                                                  "causation_id", "occurred_at"});
  CHECK(first["position"] == 1);
  CHECK(first["stream_id"] == "WorkflowRun-r-1");
  CHECK(first["event_id"] == to_string(events[0].event_id));
  CHECK(first["payload_format"] == "binary");
  CHECK(first["payload"]["inputs"] == R"({"q":"héllo ✓ 😀","n":[1,2.5]})");  // decoded
  CHECK(first["payload"]["created_at"] == 1'700'000'000'000'000);
  CHECK(first["metadata"]["occurred_at"] == 1'700'000'000'000'123);
  CHECK(first["recorded_at"] == to_micros(events[0].recorded_at));
  CHECK(first["hash"] == to_hex(events[0].hash));
  CHECK(lines[0].find('\n') == lines[0].size() - 1);  // one line, even with \n in payloads

  const Json blob = Json::parse(lines[3]);
  CHECK(blob["payload"].is_null());  // unknown type
  CHECK(blob["payload_base64"] == "AAH//iByYXcAYnl0ZXMKAA==");
  CHECK(blob["metadata"]["actor"] == std::string("a\0b", 3));
  CHECK(blob["metadata"]["occurred_at"] == -5);
  CHECK(Json::parse(lines[4])["payload_base64"] == "");
  CHECK(lines[5].find(R"("payload":{"a":[1,2.5,-30000000000.0],"b":null,"c":"é"})") !=
        std::string::npos);
  CHECK(Json::parse(lines[6])["payload"] == 42);
  CHECK(Json::parse(lines[10])["payload"].is_null());  // known type, bytes that do not decode
  CHECK(Json::parse(lines[11])["payload"].is_null());  // a schema version this build lacks
  CHECK(Json::parse(lines[12])["payload"]["reason"] == "gdpr");
  CHECK(lines[8].find("\"error\":\"boom 💥\"") != std::string::npos);  // UTF-8, not \u escapes

  // Without payload_json, binary payloads are null and json ones still shown.
  const auto plain = split_lines(export_text(*store, {}));
  CHECK(Json::parse(plain[0])["payload"].is_null());
  CHECK(Json::parse(plain[2])["payload"]["total_tokens"] == 17);
}

TEST_CASE("the audit test vector exports as the line docs/export-format.md shows",
          "[store][export]") {
  RecordedEvent e = test::test_vector_event();
  e.hash = chain_hash(test::test_vector_previous_hash(), e);
  REQUIRE(to_hex(e.hash) == test::kTestVectorHash);
  std::ostringstream out;
  write_export_line(out, e);
  CHECK(out.str() ==
        R"({"position":7,"stream_id":"WorkflowRun-r-1","version":2,)"
        R"("event_id":"123e4567-e89b-12d3-a456-426614174000","type":"RunStopped",)"
        R"("schema_version":1,"payload_format":"json","payload":{"run_id":"r-1"},)"
        R"("payload_base64":"eyJydW5faWQiOiJyLTEifQ==","metadata":{"tenant_id":"acme",)"
        R"("actor":"alice","correlation_id":"r-1","causation_id":"",)"
        R"("occurred_at":1700000000000001},"recorded_at":1700000000000002,)"
        R"("hash":"10be3827b7bb975d11a870fca3d37f97a41bbbef389306faa9b4aa3836c8983d"})"
        "\n");
  CHECK(parse_export_line(out.str()) == e);
}

TEST_CASE("parse_export_line gives back the event write_export_line wrote", "[store][export]") {
  auto store = open_sql_event_store("memory:");
  write_mixed_log(*store);
  for (const RecordedEvent& e : store->read_all(1, 100)) {
    std::ostringstream out;
    write_export_line(out, e, kWorkflow);
    CHECK(parse_export_line(out.str()) == e);
  }
}

TEST_CASE("export from a position writes the rest of the log", "[store][export]") {
  auto store = open_sql_event_store("memory:");
  write_mixed_log(*store);
  const auto all = split_lines(export_text(*store));
  std::ostringstream out;
  ExportOptions options = kWorkflow;
  options.from_position = 9;
  const ExportResult result = export_log(*store, out, options);
  CHECK(result.events == kMixedLogEvents - 8);
  CHECK(result.last_position == kMixedLogEvents);
  CHECK(result.last_hash == store->read_all(kMixedLogEvents, 1).front().hash);
  CHECK(out.str() == join(std::vector<std::string>(all.begin() + 8, all.end())));

  options.from_position = kMixedLogEvents + 1;
  std::ostringstream none;
  const ExportResult empty = export_log(*store, none, options);
  CHECK(none.str().empty());
  CHECK(empty.events == 0);
  CHECK(empty.last_position == 0);

  options.from_position = 0;
  CHECK_THROWS_AS(export_log(*store, none, options), InvalidArgument);

  // A tail does not import: an import holds a whole log.
  std::istringstream tail(out.str());
  auto target = open_sql_event_store("memory:");
  CHECK_THROWS_WITH(import_log(*target, tail), Contains("import line 1: position 9, expected 1"));
  CHECK(target->head_position() == 0);
}

TEST_CASE("an empty input imports nothing", "[store][export]") {
  auto target = open_sql_event_store("memory:");
  std::istringstream in("");
  const ImportResult r = import_log(*target, in);
  CHECK(r.events == 0);
  CHECK(r.head_position == 0);
  CHECK(r.head_hash == EventHash{});
  CHECK(target->head_position() == 0);
}

TEST_CASE("a malformed line stops the import, names its line and leaves nothing behind",
          "[store][export]") {
  auto store = open_sql_event_store("memory:");
  write_mixed_log(*store);
  const std::string text = export_text(*store);
  const auto lines = split_lines(text);

  SECTION("not JSON") {
    auto edited = lines;
    edited[2] = "this is not json\n";
    CHECK_THAT(import_error<InvalidArgument>(join(edited)),
               Contains("import line 3: not a JSON document"));
  }
  SECTION("not an object") {
    auto edited = lines;
    edited[0] = "[1,2]\n";
    CHECK_THAT(import_error<InvalidArgument>(join(edited)),
               Contains("import line 1: a line must be a JSON object"));
  }
  SECTION("a blank line") {
    auto edited = lines;
    edited.insert(edited.begin() + 4, "\n");
    CHECK_THAT(import_error<InvalidArgument>(join(edited)), Contains("import line 5:"));
  }
  SECTION("a missing key") {
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 2, [](Json& j) { j.erase("hash"); })),
               Contains("import line 2: 'hash' is missing"));
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 4, [](Json& j) { j["metadata"].erase("actor"); })),
               Contains("import line 4: 'metadata.actor' is missing"));
    CHECK_THAT(
        import_error<InvalidArgument>(edit_line(text, 4, [](Json& j) { j.erase("payload"); })),
        Contains("import line 4: 'payload' is missing"));
  }
  SECTION("an unknown or repeated key") {
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 3, [](Json& j) { j["extra"] = 1; })),
               Contains("import line 3: unexpected key 'extra'"));
    auto edited = lines;
    edited[1].insert(1, "\"type\":\"Forged\",");
    CHECK_THAT(import_error<InvalidArgument>(join(edited)),
               Contains("import line 2: key 'type' appears twice"));
  }
  SECTION("a value of the wrong type or range") {
    CHECK_THAT(
        import_error<InvalidArgument>(edit_line(text, 2, [](Json& j) { j["version"] = "2"; })),
        Contains("import line 2: 'version' is \"2\""));
    CHECK_THAT(
        import_error<InvalidArgument>(edit_line(text, 2, [](Json& j) { j["recorded_at"] = 1.5; })),
        Contains("import line 2: 'recorded_at' is 1.5"));
    CHECK_THAT(
        import_error<InvalidArgument>(edit_line(text, 1, [](Json& j) { j["schema_version"] = 0; })),
        Contains("import line 1: 'schema_version' is 0"));
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 1, [](Json& j) { j["payload_format"] = "xml"; })),
               Contains("import line 1: payload format 'xml'"));
  }
  SECTION("bad base64") {
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 4,
                                                       [](Json& j) {
                                                         j["payload_base64"] =
                                                             "AAH//iByYXcAYnl0"
                                                             "ZXMKAA=";
                                                       })),
               Contains("import line 4: 'payload_base64' is 23 characters"));
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 4, [](Json& j) { j["payload_base64"] = "AA*A"; })),
               Contains("import line 4: 'payload_base64' has '*' at offset 2"));
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 4, [](Json& j) { j["payload_base64"] = "AB=="; })),
               Contains("import line 4: 'payload_base64' is not canonical"));
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 4, [](Json& j) { j["payload_base64"] = " AAA"; })),
               Contains("import line 4: 'payload_base64' has ' '"));
  }
  SECTION("a bad uuid") {
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 5, [](Json& j) { j["event_id"] = "not-a-uuid"; })),
               Contains("import line 5: 'not-a-uuid' is not a UUID"));
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 5,
                                                       [](Json& j) {
                                                         std::string id = j["event_id"];
                                                         for (char& c : id)
                                                           c = static_cast<char>(std::toupper(
                                                               static_cast<unsigned char>(c)));
                                                         j["event_id"] = id;
                                                       })),
               Contains("import line 5: 'event_id' is"));
  }
  SECTION("positions out of order") {
    auto edited = lines;
    std::swap(edited[1], edited[2]);
    CHECK_THAT(import_error<InvalidArgument>(join(edited)),
               Contains("import line 2: position 3, expected 2"));
    edited = lines;
    edited.erase(edited.begin() + 5);
    CHECK_THAT(import_error<InvalidArgument>(join(edited)),
               Contains("import line 6: position 7, expected 6"));
  }
  SECTION("a version gap or a repeated event id") {
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 2, [](Json& j) { j["version"] = 3; })),
               Contains("import line 2: stream WorkflowRun-r-1 version 3, expected 2"));
    const std::string first_id = Json::parse(lines[0])["event_id"];
    CHECK_THAT(
        import_error<InvalidArgument>(
            edit_line(text, 2, [&](Json& j) { j["event_id"] = first_id; })),
        Contains("import line 2: event id " + first_id + " is already the event at position 1"));
  }
  SECTION("what an append refuses") {
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 7, [](Json& j) { j["payload_base64"] = "bm90IGpzb24="; })),
               Contains("import line 7: append to raw-流: event 1 of 1 (Scalar) is marked json"));
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 7, [](Json& j) { j["type"] = ""; })),
               Contains("import line 7: append to raw-流: event 1 of 1 has an empty type"));
  }
  SECTION("a bad hash") {
    CHECK_THAT(import_error<InvalidArgument>(
                   edit_line(text, 3, [](Json& j) { j["hash"] = std::string(64, 'z'); })),
               Contains("import line 3: 'hash' is \"zzz"));
    CHECK_THAT(import_error<InvalidArgument>(edit_line(text, 3,
                                                       [](Json& j) {
                                                         std::string h = j["hash"];
                                                         j["hash"] = h.substr(2);
                                                       })),
               Contains("import line 3: 'hash'"));
  }
  SECTION("an edited event no longer chains") {
    const std::string message = import_error<IntegrityError>(
        edit_line(text, 4, [](Json& j) { j["metadata"]["actor"] = "mallory"; }), 4);
    CHECK_THAT(message, Contains("import line 4: the event at position 4"));
    CHECK_THAT(message, Contains("does not continue the hash chain"));
    // The payload rendering is not the record: editing it changes nothing.
    auto target = open_sql_event_store("memory:");
    std::istringstream in(edit_line(text, 1, [](Json& j) { j["payload"] = "forged"; }));
    CHECK(import_log(*target, in).events == kMixedLogEvents);
    // But the bytes are: a payload edited in base64 breaks the chain there.
    CHECK_THAT(import_error<IntegrityError>(
                   edit_line(text, 5, [](Json& j) { j["payload_base64"] = "AAAA"; }), 5),
               Contains("import line 5"));
  }
  SECTION("a recorded_at going backwards") {
    CHECK_THAT(
        import_error<InvalidArgument>(edit_line(text, 2, [](Json& j) { j["recorded_at"] = 0; })),
        Contains("import line 2: recorded_at 0 is before"));
  }
  SECTION("a truncated last line") {
    const std::string cut = text.substr(0, text.size() - 40);
    CHECK_THAT(import_error<InvalidArgument>(cut),
               Contains("import line " + std::to_string(kMixedLogEvents) +
                        ": the last line does not end with a newline"));
    CHECK_THAT(import_error<InvalidArgument>(text.substr(0, text.size() - 1)),
               Contains("import line " + std::to_string(kMixedLogEvents) + ":"));
  }
}

TEST_CASE("importing into a store that has events is refused and changes nothing",
          "[store][export]") {
  auto source = open_sql_event_store("memory:");
  write_mixed_log(*source);
  const std::string text = export_text(*source);
  annals::test::TempDir dir;
  auto target = open_sql_event_store(dir.sqlite_uri("busy.db"));
  target->append("mine", ExpectedVersion::no_stream(), {raw("Mine", "{}", PayloadFormat::json)});
  const auto before = target->read_all(1, 100);
  std::istringstream in(text);
  CHECK_THROWS_MATCHES(
      import_log(*target, in), InvalidArgument,
      Catch::Matchers::Message("import: the store is not empty (head position 1); import only into "
                               "an empty store"));
  CHECK(target->read_all(1, 100) == before);
  // Nor does a second import into a store an import filled.
  auto fresh = open_sql_event_store("memory:");
  std::istringstream once(text), twice(text);
  (void)import_log(*fresh, once);
  CHECK_THROWS_AS(import_log(*fresh, twice), InvalidArgument);
  CHECK(fresh->head_position() == kMixedLogEvents);
}

TEST_CASE("workflow_payload_json decodes known workflow events in either format",
          "[store][export]") {
  RecordedEvent r;
  r.type = "RunStopped";
  r.payload_format = PayloadFormat::binary;
  const RunStopped stopped{"r-1", "bob", "late", 1.5, 10, 3, from_micros(42)};
  r.payload = encode_payload(stopped, PayloadFormat::binary);
  CHECK(workflow_payload_json(r) == encode_payload(stopped, PayloadFormat::json));
  r.payload_format = PayloadFormat::json;
  r.payload = encode_payload(stopped, PayloadFormat::json);
  CHECK(workflow_payload_json(r) == encode_payload(stopped, PayloadFormat::json));
  r.type = "SomethingElse";
  CHECK_FALSE(workflow_payload_json(r).has_value());
  r.type = "RunStopped";
  r.payload_format = PayloadFormat::binary;
  const std::string bytes = encode_payload(stopped, PayloadFormat::binary);
  r.payload = bytes.substr(0, bytes.size() / 2);  // cut short
  CHECK_FALSE(workflow_payload_json(r).has_value());
  r.payload = bytes + "x";  // trailing bytes
  CHECK_FALSE(workflow_payload_json(r).has_value());
  r.schema_version = 2;  // newer than this build knows
  r.payload = bytes;
  CHECK_FALSE(workflow_payload_json(r).has_value());
}

TEST_CASE("text that is not UTF-8 is refused rather than exported wrongly", "[store][export]") {
  RecordedEvent e;
  e.position = 1;
  e.stream_id = "bad\xff";
  e.type = "T";
  e.payload = "{}";
  std::ostringstream out;
  CHECK_THROWS_AS(write_export_line(out, e), SerializationError);
  CHECK(out.str().empty());
}
