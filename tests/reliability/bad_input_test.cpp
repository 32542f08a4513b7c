// Hostile input across the public API, as one table: every case names the call, the error
// class it must throw (or that it must succeed, for values that are odd but legitimate, such as
// SQL metacharacters in ids) and a piece of text the message must contain (the offending value,
// or for huge and binary values a recognisable, escaped prefix). After every case the database
// must be byte-for-byte what it was (support/database_image.hpp: every row of every table as
// bytes, and the main file after a checkpoint), and every file the case handed the library (a
// foreign file, a truncated export, an archive path) must be unchanged too.
//
// Every message must also be safe to print: at most 4 KiB, valid UTF-8, no control bytes.

#include <sqlite3.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include "annals/annals.hpp"
#include "annals/events/json_archive.hpp"
#include "support/database_image.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::DatabaseImage;
using annals::test::file_bytes;

namespace {

const std::string kSql = "'; DROP TABLE annals_events; --";
const std::string kHuge = "HUGE" + std::string(1u << 20, 'h');  // 1 MiB and 4 bytes
const std::string kHugeShown = "HUGEhhhhhhhh";
const std::string kNul("r-\0-1", 5);
const std::string kNulShown = "r-\\x00-1";
const std::string kBadUtf8 = "r-\xff\xfe-1";
const std::string kBadUtf8Shown = "r-\\xff\\xfe-1";
// A legal stream id (UTF-8, no NUL) that would forge a log line if printed raw: newline, an
// erase-line escape, carriage return, C1 CSI and a right-to-left override.
const std::string kForged = "s\n\x1b[2K\rFORGED \xc2\x9b\xe2\x80\xae";
const std::string kForgedShown = "s\\x0a\\x1b[2K\\x0dFORGED \\xc2\\x9b\\xe2\\x80\\xae";

Timestamp at(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

WorkflowRun make_run(const std::string& id, const std::string& tenant, std::int64_t second) {
  return WorkflowRun::create(RunCreated{.run_id = id,
                                        .tenant_id = tenant,
                                        .app_id = "app-1",
                                        .workflow_id = "wf-1",
                                        .triggered_from = "debugging",
                                        .created_by = "alice",
                                        .inputs = R"({"q":1})",
                                        .created_at = at(second)});
}

NewEvent json_event(std::string type = "Noted", std::string payload = R"({"n":1})") {
  NewEvent e;
  e.type = std::move(type);
  e.payload = std::move(payload);
  return e;
}

// A small store with two tenants' runs, node executions and a snapshot, in a file.
struct World {
  annals::test::TempDir dir;
  std::string path = dir.file("events.db");
  RepositoryFactory factory{"sqlite:" + path + "?synchronous=normal"};
  std::shared_ptr<SqlEventStore> store = factory.sql_event_store();
  AggregateRepository<WorkflowRun> aggregates = factory.create_workflow_run_aggregate_repository();
  WorkflowRunRepository runs = factory.create_workflow_run_repository();
  NodeExecutionRepository nodes = factory.create_node_execution_repository();
  std::string node_id;
  std::vector<std::pair<std::string, std::string>> watched;  // file, bytes before

  World() {
    for (int i = 1; i <= 3; ++i) {
      WorkflowRun run = make_run("r-" + std::to_string(i), "t-1", i);
      aggregates.save(run);
    }
    WorkflowRun other = make_run("r-9", "t-2", 9);
    aggregates.save(other);
    node_id = nodes.create_node_execution("t-1", "r-1", "llm", "llm", "{}").id;
    AggregateRepository<WorkflowRun> snapshotting =
        factory.create_workflow_run_aggregate_repository(
            {.every = 1, .log = [](std::string_view) {}});
    (void)snapshotting.load("r-1");  // writes a snapshot of r-1
  }

  // The file must be byte-for-byte the same after the case.
  void watch(const std::string& file) { watched.emplace_back(file, file_bytes(file)); }

  // A copy of the store's file, checkpointed, to tamper with.
  std::string copy_of_store(const std::string& name) {
    (void)DatabaseImage::capture(path);  // checkpoints: the main file holds everything
    const std::string copy = dir.file(name);
    std::filesystem::copy_file(path, copy);
    return copy;
  }
};

void sql_on_file(const std::string& file, const std::string& statements) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &error);
  INFO((error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

void write_file(const std::string& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
}

enum class Outcome {
  ok,
  invalid_argument,
  not_found,
  concurrency,
  store_error,
  serialization,
  integrity
};

const char* name_of(Outcome o) {
  switch (o) {
    case Outcome::ok:
      return "no error";
    case Outcome::invalid_argument:
      return "InvalidArgument";
    case Outcome::not_found:
      return "NotFound";
    case Outcome::concurrency:
      return "ConcurrencyError";
    case Outcome::store_error:
      return "StoreError";
    case Outcome::serialization:
      return "SerializationError";
    case Outcome::integrity:
      return "IntegrityError";
  }
  return "?";
}

std::type_index type_of(Outcome o) {
  switch (o) {
    case Outcome::invalid_argument:
      return typeid(InvalidArgument);
    case Outcome::not_found:
      return typeid(NotFound);
    case Outcome::concurrency:
      return typeid(ConcurrencyError);
    case Outcome::store_error:
      return typeid(StoreError);
    case Outcome::serialization:
      return typeid(SerializationError);
    case Outcome::integrity:
      return typeid(IntegrityError);
    case Outcome::ok:
      break;
  }
  return typeid(void);
}

struct Case {
  std::string name;
  Outcome outcome;
  std::string names;  // text the message must contain
  std::function<void(World&)> call;
  bool writes = false;  // a legitimate call that stores something: skip the unchanged check
  std::function<void(World&)> prepare{};  // runs before the image is taken
};

void check_message_is_safe(const std::string& message) {
  INFO("message: " << printable(message, 300));
  CHECK(message.size() <= 4096);
  CHECK(detail::valid_utf8(message));
  CHECK(std::none_of(message.begin(), message.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }));
  // Nor C1 controls (C2 80..9F), line/paragraph separators or bidi overrides and isolates.
  for (std::size_t i = 0; i + 1 < message.size(); ++i) {
    const auto b0 = static_cast<unsigned char>(message[i]);
    const auto b1 = static_cast<unsigned char>(message[i + 1]);
    CHECK_FALSE((b0 == 0xc2 && b1 >= 0x80 && b1 <= 0x9f));
    if (b0 == 0xe2 && i + 2 < message.size()) {
      const auto b2 = static_cast<unsigned char>(message[i + 2]);
      CHECK_FALSE(
          ((b1 == 0x80 && b2 >= 0xa8 && b2 <= 0xae) || (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9)));
    }
  }
}

// Appends an event of `type` with `schema_version` to a fresh stream of the store.
void append_raw(EventStore& store, const std::string& stream, const std::string& type,
                std::uint32_t schema_version, std::string payload) {
  NewEvent e = json_event(type, std::move(payload));
  e.schema_version = schema_version;
  (void)store.append(stream, ExpectedVersion::any(), {e});
}

std::string export_text(const EventStore& store) {
  std::ostringstream out;
  (void)export_log(store, out);
  return out.str();
}

std::vector<Case> cases() {
  using O = Outcome;
  std::vector<Case> t;
  // ---- EventStore::append ---------------------------------------------------------------
  t.push_back({"append: empty stream id", O::invalid_argument, "stream id is empty", [](World& w) {
                 (void)w.store->append("", ExpectedVersion::any(), {json_event()});
               }});
  t.push_back({"append: 1 MiB stream id", O::invalid_argument, kHugeShown, [](World& w) {
                 (void)w.store->append(kHuge, ExpectedVersion::any(), {json_event()});
               }});
  t.push_back({"append: NUL byte in the stream id", O::invalid_argument, kNulShown, [](World& w) {
                 (void)w.store->append(kNul, ExpectedVersion::any(), {json_event()});
               }});
  t.push_back(
      {"append: stream id that is not UTF-8", O::invalid_argument, kBadUtf8Shown,
       [](World& w) { (void)w.store->append(kBadUtf8, ExpectedVersion::any(), {json_event()}); }});
  t.push_back(
      {"append: metadata actor that is not UTF-8", O::invalid_argument, "bad-\\xc3(", [](World& w) {
         NewEvent e = json_event();
         e.metadata.actor = "bad-\xc3(";
         (void)w.store->append("s-1", ExpectedVersion::any(), {e});
       }});
  t.push_back({"append: tenant with a NUL byte and invalid UTF-8", O::invalid_argument,
               "t\\x00\\xff", [](World& w) {
                 NewEvent e = json_event();
                 e.metadata.tenant_id = std::string("t\0\xff", 3);
                 (void)w.store->append("s-1", ExpectedVersion::any(), {e});
               }});
  t.push_back({"append: empty event type", O::invalid_argument, "empty type", [](World& w) {
                 (void)w.store->append("s-1", ExpectedVersion::any(), {json_event("")});
               }});
  t.push_back({"append: 1 MiB event type", O::invalid_argument, kHugeShown, [](World& w) {
                 (void)w.store->append("s-1", ExpectedVersion::any(), {json_event(kHuge)});
               }});
  t.push_back({"append: schema version 0", O::invalid_argument, "schema version 0",
               [](World& w) { append_raw(*w.store, "s-1", "Noted", 0, "{}"); }});
  t.push_back({"append: json payload that is not JSON", O::invalid_argument, "{not json",
               [](World& w) { append_raw(*w.store, "s-1", "Noted", 1, "{not json"); }});
  t.push_back({"append: no events", O::invalid_argument, "s-1: no events",
               [](World& w) { (void)w.store->append("s-1", ExpectedVersion::any(), {}); }});
  t.push_back({"append: empty batch", O::invalid_argument, "no streams",
               [](World& w) { (void)w.store->append(std::vector<StreamAppend>{}); }});
  t.push_back({"append: batch whose second part is bad writes neither", O::invalid_argument,
               kNulShown, [](World& w) {
                 std::vector<StreamAppend> batch;
                 batch.push_back({"s-ok", ExpectedVersion::any(), {json_event()}});
                 batch.push_back({kNul, ExpectedVersion::any(), {json_event()}});
                 (void)w.store->append(std::move(batch));
               }});
  t.push_back({"append: stale expected version (huge)", O::concurrency,
               "expected version 18446744073709551615", [](World& w) {
                 (void)w.store->append("WorkflowRun-r-1", ExpectedVersion::exactly(UINT64_MAX),
                                       {json_event()});
               }});
  t.push_back(
      {"append: no_stream on an existing stream", O::concurrency, "WorkflowRun-r-2", [](World& w) {
         (void)w.store->append("WorkflowRun-r-2", ExpectedVersion::no_stream(), {json_event()});
       }});
  t.push_back({"append: an event id already in the store", O::invalid_argument, "is already in",
               [](World& w) {
                 NewEvent e = json_event();
                 e.event_id = w.store->read_all(1, 1).front().event_id;
                 (void)w.store->append("s-dup", ExpectedVersion::any(), {e});
               }});
  t.push_back({"append: an event id already in the store, to a stream id with control bytes",
               O::invalid_argument, "append to " + kForgedShown + ": event id", [](World& w) {
                 NewEvent e = json_event();
                 e.event_id = w.store->read_all(1, 1).front().event_id;
                 (void)w.store->append(kForged, ExpectedVersion::any(), {e});
               }});
  t.push_back({"append: schema version 0 of a type with control bytes", O::invalid_argument,
               "(T\\x0a\\x1b[31m\\xc2\\x85) has schema version 0",
               [](World& w) { append_raw(*w.store, "s-1", "T\n\x1b[31m\xc2\x85", 0, "{}"); }});
  t.push_back({"append: unknown payload format, of a type with control bytes", O::invalid_argument,
               "(T\\x0d\\xe2\\x81\\xa6) has an unknown payload format", [](World& w) {
                 NewEvent e = json_event("T\r\xe2\x81\xa6");
                 e.payload_format = static_cast<PayloadFormat>(7);
                 (void)w.store->append("s-1", ExpectedVersion::any(), {e});
               }});
  t.push_back({"append: SQL metacharacters are stored verbatim", O::ok, "",
               [](World& w) {
                 NewEvent e = json_event(kSql, R"({"sql":"'; DROP TABLE annals_events; --"})");
                 e.metadata.tenant_id = kSql;
                 e.metadata.actor = "O'Brien \"x\" %_\\";
                 (void)w.store->append(kSql, ExpectedVersion::no_stream(), {e});
                 const auto back = w.store->read_stream(kSql);
                 REQUIRE(back.size() == 1);
                 CHECK(back[0].stream_id == kSql);
                 CHECK(back[0].type == kSql);
                 CHECK(back[0].metadata.tenant_id == kSql);
                 CHECK(back[0].metadata.actor == "O'Brien \"x\" %_\\");
                 CHECK(back[0].payload == e.payload);
                 CHECK(w.store->stream_version(kSql) == 1u);
                 CHECK(w.store->read_stream("'; DROP TABLE annals_events; -").empty());
               },
               true});
  // ---- EventStore reads ---------------------------------------------------------------
  t.push_back({"read_stream: 1 MiB stream id", O::invalid_argument, kHugeShown,
               [](World& w) { (void)w.store->read_stream(kHuge); }});
  t.push_back({"read_stream: NUL byte in the stream id", O::invalid_argument, kNulShown,
               [](World& w) { (void)w.store->read_stream(kNul); }});
  t.push_back({"read_stream: from_version 0", O::invalid_argument, "from_version 0",
               [](World& w) { (void)w.store->read_stream("WorkflowRun-r-1", 0); }});
  t.push_back({"read_stream: from_version 0 of a stream id with control bytes", O::invalid_argument,
               "read_stream " + kForgedShown + ": from_version 0",
               [](World& w) { (void)w.store->read_stream(kForged, 0); }});
  t.push_back({"open: a VFS name with control bytes", O::invalid_argument,
               "no SQLite VFS named 'v\\x0a\\x1b[2K\\xe2\\x80\\xae'", [](World& w) {
                 StoreOptions options;
                 options.vfs = "v\n\x1b[2K\xe2\x80\xae";
                 (void)open_event_store("sqlite:" + w.dir.file("other.db"), options);
               }});
  t.push_back(
      {"read_stream: unknown id made of SQL metacharacters is just empty", O::ok, "", [](World& w) {
         CHECK(w.store->read_stream(kSql).empty());
         CHECK(w.store->read_stream("WorkflowRun-r-1' OR '1'='1").empty());
         CHECK(w.store->read_stream("WorkflowRun-%").empty());
       }});
  t.push_back({"read_stream: from_version and max_count at their maximum", O::ok, "", [](World& w) {
                 CHECK(w.store->read_stream("WorkflowRun-r-1", UINT64_MAX, SIZE_MAX).empty());
                 CHECK(w.store->read_stream("WorkflowRun-r-1", 1, SIZE_MAX).size() ==
                       2);  // RunCreated, NodeStarted
               }});
  t.push_back({"read_all: from_position 0", O::invalid_argument, "from_position 0",
               [](World& w) { (void)w.store->read_all(0, 10); }});
  t.push_back({"read_all: from_position and max_count at their maximum", O::ok, "", [](World& w) {
                 CHECK(w.store->read_all(UINT64_MAX, SIZE_MAX).empty());
                 CHECK(w.store->read_all(1, SIZE_MAX).size() == w.store->head_position());
               }});
  t.push_back({"stream_version: empty stream id", O::invalid_argument, "stream id is empty",
               [](World& w) { (void)w.store->stream_version(""); }});
  t.push_back({"stream_version: 1 MiB stream id", O::invalid_argument, kHugeShown,
               [](World& w) { (void)w.store->stream_version(kHuge); }});
  // ---- open_event_store ---------------------------------------------------------------
  t.push_back({"open: unknown scheme", O::invalid_argument, "'mysql'",
               [](World&) { (void)open_event_store("mysql://db/x"); }});
  t.push_back({"open: unknown URI option", O::invalid_argument, "unknown option 'nosuch'",
               [](World& w) { (void)open_event_store("sqlite:" + w.path + "?nosuch=1"); }});
  t.push_back({"open: bad synchronous value", O::invalid_argument, "'sometimes'", [](World& w) {
                 (void)open_event_store("sqlite:" + w.path + "?synchronous=sometimes");
               }});
  t.push_back(
      {"open: negative busy timeout", O::invalid_argument, "busy_timeout_ms '-5'",
       [](World& w) { (void)open_event_store("sqlite:" + w.path + "?busy_timeout_ms=-5"); }});
  t.push_back({"open: busy timeout beyond 64 bits", O::invalid_argument,
               "'99999999999999999999999'", [](World& w) {
                 (void)open_event_store("sqlite:" + w.path +
                                        "?busy_timeout_ms=99999999999999999999999");
               }});
  t.push_back(
      {"open: an option given twice", O::invalid_argument, "'payload' given twice", [](World& w) {
         (void)open_event_store("sqlite:" + w.path + "?payload=json&payload=binary");
       }});
  t.push_back({"open: sqlite: without a path", O::invalid_argument, "needs a file path",
               [](World&) { (void)open_event_store("sqlite:"); }});
  t.push_back({"open: a file that is not SQLite", O::store_error, "not-sqlite.db", [](World& w) {
                 const std::string file = w.dir.file("not-sqlite.db");
                 write_file(file, "this is a text file, not a database\n" + std::string(5000, 'z'));
                 w.watch(file);
                 (void)open_event_store("sqlite:" + file);
               }});
  t.push_back({"open: a database file cut to 60 bytes", O::integrity, "cut60.db", [](World& w) {
                 const std::string file = w.copy_of_store("cut60.db");
                 std::filesystem::resize_file(file, 60);
                 w.watch(file);
                 (void)open_event_store("sqlite:" + file);
               }});
  t.push_back({"verify: a database file cut in half", O::integrity, "cut-half.db", [](World& w) {
                 const std::string file = w.copy_of_store("cut-half.db");
                 std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
                 w.watch(file);
                 auto store = open_event_store("sqlite:" + file);
                 (void)verify_log(*store);
               }});
  t.push_back({"open: a store with a newer schema version", O::store_error, "schema version 2",
               [](World& w) {
                 const std::string file = w.copy_of_store("newer.db");
                 sql_on_file(file, "PRAGMA user_version = 2");
                 w.watch(file);
                 (void)open_event_store("sqlite:" + file);
               }});
  t.push_back({"open: an annals file with schema version 0", O::store_error, "schema version is 0",
               [](World& w) {
                 const std::string file = w.copy_of_store("zero.db");
                 sql_on_file(file, "PRAGMA user_version = 0");
                 w.watch(file);
                 (void)open_event_store("sqlite:" + file);
               }});
  t.push_back(
      {"open: another application's SQLite file", O::store_error, "0x12345678", [](World& w) {
         const std::string file = w.dir.file("other-app.db");
         sql_on_file(file,
                     "CREATE TABLE t (x); INSERT INTO t VALUES (1);"
                     " PRAGMA application_id = 305419896");
         w.watch(file);
         (void)open_event_store("sqlite:" + file);
       }});
  t.push_back({"open: a path in a missing directory", O::store_error, "no-such-dir", [](World& w) {
                 (void)open_event_store("sqlite:" + w.dir.file("no-such-dir/x.db"));
               }});
  // ---- aggregates ---------------------------------------------------------------------
  t.push_back({"AggregateRepository::find: empty id", O::invalid_argument, "aggregate id is empty",
               [](World& w) { (void)w.aggregates.find(""); }});
  t.push_back({"AggregateRepository::load: 1 MiB id", O::invalid_argument, kHugeShown,
               [](World& w) { (void)w.aggregates.load(kHuge); }});
  t.push_back({"AggregateRepository::load: NUL byte in the id", O::invalid_argument, kNulShown,
               [](World& w) { (void)w.aggregates.load(kNul); }});
  t.push_back({"AggregateRepository::load: unknown id of SQL metacharacters", O::not_found,
               "WorkflowRun-" + kSql, [](World& w) { (void)w.aggregates.load(kSql); }});
  t.push_back({"AggregateRepository::save: run id that is not UTF-8", O::serialization,
               kBadUtf8Shown, [](World& w) {
                 WorkflowRun run = make_run(kBadUtf8, "t-1", 20);
                 w.aggregates.save(run);
               }});
  t.push_back({"AggregateRepository::save: 1 MiB run id", O::invalid_argument,
               "WorkflowRun-" + kHugeShown, [](World& w) {
                 WorkflowRun run = make_run(kHuge, "t-1", 20);
                 w.aggregates.save(run);
               }});
  t.push_back(
      {"WorkflowRun::create: inputs that are not JSON", O::invalid_argument, "{oops", [](World&) {
         (void)WorkflowRun::create(RunCreated{.run_id = "r-x",
                                              .tenant_id = "t-1",
                                              .app_id = "a",
                                              .workflow_id = "w",
                                              .triggered_from = "debugging",
                                              .inputs = "{oops"});
       }});
  t.push_back({"WorkflowRun::create: a run id with control bytes and inputs that are not JSON",
               O::invalid_argument,
               "create on WorkflowRun-" + kForgedShown + ": inputs '{\\x1b[2K\\xc2\\x9b'",
               [](World&) {
                 (void)WorkflowRun::create(RunCreated{.run_id = kForged,
                                                      .tenant_id = "t-1",
                                                      .app_id = "a",
                                                      .workflow_id = "w",
                                                      .triggered_from = "debugging",
                                                      .inputs = "{\x1b[2K\xc2\x9b"});
               }});
  t.push_back(
      {"WorkflowRun::start_node: started before the run was created", O::invalid_argument,
       "started_at 2023-11-14", [](World& w) {
         WorkflowRun run = w.aggregates.load("r-2");
         run.start_node(
             {.node_execution_id = "n", .node_id = "a", .node_type = "llm", .started_at = at(-1)});
       }});
  t.push_back(
      {"AggregateRepository::save: a run id of SQL metacharacters is stored verbatim", O::ok, "",
       [](World& w) {
         WorkflowRun run = make_run(kSql, "t-1", 30);
         w.aggregates.save(run);
         CHECK(w.aggregates.load(kSql).id() == kSql);
         const auto view = w.runs.get_workflow_run_by_id("t-1", "app-1", kSql);
         REQUIRE(view);
         CHECK(view->id == kSql);
         CHECK(w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1).data.at(0).id ==
               kSql);
         CHECK(w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 10, kSql)
                   .data.size() == 3);
       },
       true});
  t.push_back({"load: a stream holding RunCreated of an unknown schema version", O::serialization,
               "99", [](World& w) { (void)w.aggregates.load("r-v99"); }, false,
               [](World& w) {
                 // Written past the projection (a plain store on the same file), as an older or
                 // newer writer would have.
                 auto raw = open_event_store("sqlite:" + w.path);
                 append_raw(*raw, "WorkflowRun-r-v99", "RunCreated", 99, R"({"run_id":"r-v99"})");
               }});
  t.push_back({"load: a stream holding an unknown event type", O::serialization, "Bogus",
               [](World& w) { (void)w.aggregates.load("r-bogus"); }, false,
               [](World& w) {
                 auto raw = open_event_store("sqlite:" + w.path);
                 append_raw(*raw, "WorkflowRun-r-bogus", "Bogus", 1, "{}");
               }});
  t.push_back({"append through the factory: RunCreated of an unknown schema version",
               O::serialization, "99", [](World& w) {
                 append_raw(*w.store, "WorkflowRun-r-v99", "RunCreated", 99,
                            R"({"run_id":"r-v99"})");
               }});
  t.push_back({"WorkflowRun: node finished before it started", O::invalid_argument,
               "finished_at 2023-11-14", [](World& w) {
                 WorkflowRun run = w.aggregates.load("r-1");
                 run.complete_node({.node_execution_id = w.node_id, .finished_at = at(-5)});
               }});
  t.push_back(
      {"save: runs created at the ends of the 64-bit time range round-trip exactly", O::ok, "",
       [](World& w) {
         for (const auto& [id, when] :
              {std::pair{"r-min", Timestamp::min()}, std::pair{"r-max", Timestamp::max()}}) {
           WorkflowRun run = WorkflowRun::create(RunCreated{.run_id = id,
                                                            .tenant_id = "t-3",
                                                            .app_id = "app-1",
                                                            .workflow_id = "wf-1",
                                                            .triggered_from = "debugging",
                                                            .created_at = when});
           w.aggregates.save(run);
           CHECK(w.aggregates.load(id).state().created_at == when);
           const auto view = w.runs.get_workflow_run_by_id("t-3", "app-1", id);
           REQUIRE(view);
           CHECK(view->created_at == when);
         }
         // Strictly before the largest time: the run created at it is not expired.
         const auto expired = w.runs.get_expired_runs_batch("t-3", Timestamp::max());
         REQUIRE(expired.size() == 1);
         CHECK(expired[0].id == "r-min");
         CHECK(w.runs.get_expired_runs_batch("t-3", Timestamp::min()).empty());
         const auto page = w.runs.get_paginated_workflow_runs("t-3", "app-1", "debugging");
         REQUIRE(page.data.size() == 2);
         CHECK(page.data[0].id == "r-max");
         CHECK(verify_log(*w.store).events == w.store->head_position());
       },
       true});
  // ---- WorkflowRunRepository ----------------------------------------------------------
  t.push_back(
      {"get_paginated_workflow_runs: limit 0", O::invalid_argument, "limit 0",
       [](World& w) { (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 0); }});
  t.push_back({"get_paginated_workflow_runs: limit SIZE_MAX (-1)", O::invalid_argument,
               "limit 18446744073709551615", [](World& w) {
                 (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging",
                                                          static_cast<std::size_t>(-1));
               }});
  t.push_back(
      {"get_paginated_workflow_runs: limit 1001", O::invalid_argument, "limit 1001", [](World& w) {
         (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1001);
       }});
  t.push_back({"get_paginated_workflow_runs: last_id of SQL metacharacters", O::not_found,
               "last_id '" + kSql + "'", [](World& w) {
                 (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20, kSql);
               }});
  t.push_back({"get_paginated_workflow_runs: 1 MiB last_id", O::not_found, "last_id '" + kHugeShown,
               [](World& w) {
                 (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20, kHuge);
               }});
  t.push_back({"get_paginated_workflow_runs: last_id with a NUL byte", O::not_found, kNulShown,
               [](World& w) {
                 (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20, kNul);
               }});
  t.push_back(
      {"get_paginated_workflow_runs: last_id not UTF-8", O::not_found, kBadUtf8Shown, [](World& w) {
         (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20, kBadUtf8);
       }});
  t.push_back(
      {"get_paginated_workflow_runs: empty last_id", O::not_found, "last_id ''", [](World& w) {
         (void)w.runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20, "");
       }});
  t.push_back({"get_paginated_workflow_runs: hostile tenant, app and trigger find nothing", O::ok,
               "", [](World& w) {
                 CHECK(w.runs.get_paginated_workflow_runs(kSql, "app-1", "debugging").data.empty());
                 CHECK(w.runs
                           .get_paginated_workflow_runs("t-1' OR '1'='1", "app-1' OR '1'='1",
                                                        "debugging' OR '1'='1")
                           .data.empty());
                 CHECK(w.runs.get_paginated_workflow_runs(kHuge, kNul, kBadUtf8).data.empty());
                 CHECK(w.runs.get_paginated_workflow_runs("%", "%", "%").data.empty());
               }});
  t.push_back({"get_workflow_run_by_id: hostile ids find nothing", O::ok, "", [](World& w) {
                 CHECK(!w.runs.get_workflow_run_by_id("t-1", "app-1", kSql));
                 CHECK(!w.runs.get_workflow_run_by_id("t-1", "app-1", "r-1' OR '1'='1"));
                 CHECK(!w.runs.get_workflow_run_by_id("t-1", "app-1", kHuge));
                 CHECK(!w.runs.get_workflow_run_by_id("t-1", "app-1", std::string("r-1\0", 4)));
                 CHECK(!w.runs.get_workflow_run_by_id("", "", ""));
               }});
  t.push_back({"get_expired_runs_batch: batch_size 0", O::invalid_argument, "batch_size is 0",
               [](World& w) { (void)w.runs.get_expired_runs_batch("t-1", at(100), 0); }});
  t.push_back(
      {"get_expired_runs_batch: timestamps at both ends of the range", O::ok, "", [](World& w) {
         CHECK(w.runs.get_expired_runs_batch("t-1", Timestamp::min()).empty());
         CHECK(w.runs.get_expired_runs_batch("t-1", Timestamp::max(), SIZE_MAX).size() == 3);
         CHECK(w.runs.get_expired_runs_batch(kSql, Timestamp::max()).empty());
       }});
  t.push_back({"delete_runs_by_ids: hostile ids delete nothing", O::ok, "", [](World& w) {
                 CHECK(w.runs.delete_runs_by_ids(
                           "t-1", {kSql, kHuge, kNul, kBadUtf8, "", "%", "r-1' OR '1'='1"}) == 0);
                 CHECK(w.runs.delete_runs_by_ids(kSql, {"r-1", "r-9"}) == 0);
               }});
  t.push_back({"delete_runs_by_app: batch_size 0", O::invalid_argument, "batch_size is 0",
               [](World& w) { (void)w.runs.delete_runs_by_app("t-1", "app-1", 0); }});
  t.push_back(
      {"delete_runs_by_app: hostile tenant and app delete nothing", O::ok, "", [](World& w) {
         CHECK(w.runs.delete_runs_by_app(kSql, "app-1") == 0);
         CHECK(w.runs.delete_runs_by_app("t-1", "app-1' OR '1'='1") == 0);
         CHECK(w.runs.delete_runs_by_app("%", "%") == 0);
       }});
  // ---- NodeExecutionRepository --------------------------------------------------------
  t.push_back({"create_node_execution: unknown status", O::invalid_argument, "status 'paused'",
               [](World& w) {
                 (void)w.nodes.create_node_execution("t-1", "r-2", "a", "llm", "{}", std::nullopt,
                                                     "paused");
               }});
  t.push_back({"create_node_execution: status with a NUL byte", O::invalid_argument,
               "status 'running\\x00'", [](World& w) {
                 (void)w.nodes.create_node_execution("t-1", "r-2", "a", "llm", "{}", std::nullopt,
                                                     std::string("running\0", 8));
               }});
  t.push_back(
      {"create_node_execution: 1 MiB run id", O::not_found, "run '" + kHugeShown,
       [](World& w) { (void)w.nodes.create_node_execution("t-1", kHuge, "a", "llm", "{}"); }});
  t.push_back(
      {"create_node_execution: run id of SQL metacharacters", O::not_found, kSql,
       [](World& w) { (void)w.nodes.create_node_execution("t-1", kSql, "a", "llm", "{}"); }});
  t.push_back(
      {"create_node_execution: inputs that are not JSON", O::invalid_argument, "[1,",
       [](World& w) { (void)w.nodes.create_node_execution("t-1", "r-2", "a", "llm", "[1,"); }});
  t.push_back(
      {"update_node_execution: unknown status", O::invalid_argument, "status 'done'", [](World& w) {
         (void)w.nodes.update_node_execution("t-1", w.node_id, {.status = "done"});
       }});
  t.push_back({"update_node_execution: failed without an error", O::invalid_argument,
               "needs a non-empty error", [](World& w) {
                 (void)w.nodes.update_node_execution("t-1", w.node_id, {.status = "failed"});
               }});
  t.push_back({"update_node_execution: outputs that are not JSON", O::invalid_argument,
               "{\"a\":", [](World& w) {
                 (void)w.nodes.update_node_execution("t-1", w.node_id,
                                                     {.status = "succeeded", .outputs = "{\"a\":"});
               }});
  t.push_back({"node executions: hostile ids find and change nothing", O::ok, "", [](World& w) {
                 CHECK(w.nodes.get_node_executions_by_run_id("t-1", kSql).empty());
                 CHECK(w.nodes.get_node_executions_by_run_id("t-1", kNul).empty());
                 CHECK(w.nodes.get_node_executions_by_run_id(kHuge, "r-1").empty());
                 CHECK(!w.nodes.get_node_execution_by_id("t-1", kSql));
                 CHECK(!w.nodes.get_node_execution_by_id("t-1' OR '1'='1", w.node_id));
                 CHECK(!w.nodes.update_node_execution("t-1", kSql, {.status = "succeeded"}));
                 CHECK(!w.nodes.update_node_execution(kSql, w.node_id, {.status = "succeeded"}));
               }});
  // ---- snapshots ----------------------------------------------------------------------
  t.push_back(
      {"SnapshotStore::save: empty stream id", O::invalid_argument, "stream id", [](World& w) {
         (void)open_snapshot_store(w.store)->save(
             {.stream_id = "", .version = 1, .aggregate_type = "WorkflowRun", .schema = 1});
       }});
  t.push_back({"SnapshotStore::save: version 0", O::invalid_argument, "version is 0", [](World& w) {
                 (void)open_snapshot_store(w.store)->save({.stream_id = "WorkflowRun-r-1",
                                                           .version = 0,
                                                           .aggregate_type = "WorkflowRun",
                                                           .schema = 1});
               }});
  t.push_back({"SnapshotStore::load and remove: hostile stream ids", O::ok, "", [](World& w) {
                 auto snapshots = open_snapshot_store(w.store);
                 CHECK(!snapshots->load(kSql));
                 CHECK(!snapshots->load("WorkflowRun-r-1' OR '1'='1"));
                 CHECK(!snapshots->remove(kSql));
                 CHECK(!snapshots->remove("%"));
                 CHECK(snapshots->load("WorkflowRun-r-1"));
               }});
  // ---- export, import, purge, verify --------------------------------------------------
  t.push_back({"export_log: from_position 0", O::invalid_argument, "from_position 0", [](World& w) {
                 std::ostringstream out;
                 (void)export_log(*w.store, out, {.from_position = 0});
               }});
  t.push_back({"import_log: an export cut in the middle of its last line", O::invalid_argument,
               "line", [](World& w) {
                 const std::string text = export_text(*w.store);
                 const std::string file = w.dir.file("cut.jsonl");
                 write_file(file, text.substr(0, text.size() - 40));
                 w.watch(file);
                 const std::string target = w.dir.file("target.db");
                 auto empty = open_sql_event_store("sqlite:" + target);
                 const DatabaseImage before = DatabaseImage::capture(target);
                 std::ifstream in(file, std::ios::binary);
                 try {
                   (void)import_log(*empty, in);
                 } catch (...) {
                   CHECK(empty->head_position() == 0);
                   CHECK(annals::test::difference(before, DatabaseImage::capture(target)) == "");
                   throw;
                 }
               }});
  t.push_back(
      {"import_log: a line that is not JSON", O::invalid_argument, "import line 1", [](World& w) {
         auto empty = open_sql_event_store("sqlite:" + w.dir.file("target.db"));
         std::istringstream in("'; DROP TABLE annals_events; --\n");
         (void)import_log(*empty, in);
       }});
  t.push_back({"import_log: a line with schema version 0", O::invalid_argument, "import line 1",
               [](World& w) {
                 std::string line = export_text(*w.store);
                 line = line.substr(0, line.find('\n') + 1);
                 const auto at_version = line.find("\"schema_version\":1");
                 REQUIRE(at_version != std::string::npos);
                 line.replace(at_version, 18, "\"schema_version\":0");
                 auto empty = open_sql_event_store("sqlite:" + w.dir.file("target.db"));
                 std::istringstream in(line);
                 (void)import_log(*empty, in);
               }});
  t.push_back({"import_log: into a store that is not empty", O::invalid_argument, "not empty",
               [](World& w) {
                 std::istringstream in(export_text(*w.store));
                 (void)import_log(*w.store, in);
               }});
  t.push_back({"purge_runs: empty tenant", O::invalid_argument, "tenant", [](World& w) {
                 (void)purge_runs(
                     *w.store,
                     {.tenant_id = "", .before = at(100), .archive_path = w.dir.file("a.jsonl")});
               }});
  t.push_back({"purge_runs: an archive path that already exists", O::invalid_argument, "kept.jsonl",
               [](World& w) {
                 const std::string file = w.dir.file("kept.jsonl");
                 write_file(file, "an earlier purge's only copy\n");
                 w.watch(file);
                 (void)purge_runs(*w.store,
                                  {.tenant_id = "t-1", .before = at(100), .archive_path = file});
               }});
  t.push_back({"purge_runs: an archive in a missing directory", O::store_error, "no-such-dir",
               [](World& w) {
                 (void)purge_runs(*w.store, {.tenant_id = "t-1",
                                             .before = at(100),
                                             .archive_path = w.dir.file("no-such-dir/a.jsonl")});
               }});
  t.push_back(
      {"purge_runs: a tenant of SQL metacharacters matches nothing", O::ok, "", [](World& w) {
         const PurgeResult r = purge_runs(*w.store, {.tenant_id = kSql,
                                                     .before = Timestamp::max(),
                                                     .archive_path = w.dir.file("sql.jsonl")});
         CHECK(r.purge_id == 0);
         CHECK(r.streams == 0);
       }});
  t.push_back(
      {"verify_purge_archive: an export that is no purge archive", O::integrity, "", [](World& w) {
         const std::string file = w.dir.file("not-an-archive.jsonl");
         write_file(file, export_text(*w.store));
         w.watch(file);
         (void)verify_purge_archive(*w.store, file);
       }});
  t.push_back(
      {"verify_purge_archive: a missing file", O::store_error, "missing.jsonl",
       [](World& w) { (void)verify_purge_archive(*w.store, w.dir.file("missing.jsonl")); }});
  return t;
}

}  // namespace

TEST_CASE(
    "bad input: each refused call throws its error class, names the value and changes no byte",
    "[reliability][bad-input]") {
  const std::vector<Case> table = cases();
  REQUIRE(table.size() >= 40);
  for (const Case& c : table) {
    DYNAMIC_SECTION(c.name) {
      World w;
      if (c.prepare) c.prepare(w);
      const DatabaseImage before = DatabaseImage::capture(w.path);
      std::string message;
      std::string thrown = "nothing";
      std::type_index type = typeid(void);
      try {
        c.call(w);
      } catch (const Error& e) {
        message = e.what();
        type = typeid(e);
        thrown = e.what();
      } catch (const std::exception& e) {
        message = e.what();
        type = typeid(e);
        thrown = std::string("a non-annals exception: ") + e.what();
      }
      INFO("expected " << name_of(c.outcome) << ", got " << printable(thrown, 400));
      CHECK(type == type_of(c.outcome));
      if (c.outcome != Outcome::ok) {
        CHECK_THAT(message, Catch::Matchers::Contains(c.names));
        check_message_is_safe(message);
      }
      for (const auto& [file, bytes] : w.watched) {
        INFO("file " << file);
        CHECK((file_bytes(file) == bytes));
      }
      if (!c.writes) {
        CHECK(annals::test::difference(before, DatabaseImage::capture(w.path)) == "");
      }
    }
  }
}

TEST_CASE("printable escapes C1 controls, line separators and bidi controls, keeps other text",
          "[reliability][bad-input]") {
  // Kept: text, including non-ASCII letters and the code points next to the escaped ranges.
  CHECK(printable("caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa7 \xe2\x80\xaf \xe2\x81\xa5 \xe2\x81\xaa") ==
        "caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa7 \xe2\x80\xaf \xe2\x81\xa5 \xe2\x81\xaa");
  // C1 controls U+0080..U+009F (CSI is U+009B), each byte as \xNN.
  CHECK(printable("a\xc2\x80"
                  "b\xc2\x9b"
                  "c\xc2\x9f") == "a\\xc2\\x80b\\xc2\\x9bc\\xc2\\x9f");
  // Line and paragraph separators U+2028/U+2029.
  CHECK(printable("\xe2\x80\xa8\xe2\x80\xa9") == "\\xe2\\x80\\xa8\\xe2\\x80\\xa9");
  // Bidi embeddings and overrides U+202A..U+202E, isolates U+2066..U+2069.
  CHECK(printable("\xe2\x80\xaa\xe2\x80\xae") == "\\xe2\\x80\\xaa\\xe2\\x80\\xae");
  CHECK(printable("\xe2\x81\xa6\xe2\x81\xa9") == "\\xe2\\x81\\xa6\\xe2\\x81\\xa9");
  // The C0 controls as before, and the length cut.
  CHECK(printable("x\n\x1b\x7f") == "x\\x0a\\x1b\\x7f");
  CHECK(printable("\xe2\x80\xae"
                  "abc",
                  3) == "\\xe2\\x80\\xae... (6 bytes)");
}
