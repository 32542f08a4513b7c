// What only the SQLite backend has: a file format, foreign files, other connections.

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>

#include "annals/store/event_store.hpp"
#include "support/backends.hpp"

using namespace annals;
using annals::test::make_event;
using annals::test::make_events;
using annals::test::TempDir;
using Catch::Matchers::Contains;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a path in a missing directory is a StoreError naming the directory",
          "[store][sqlite][validation]") {
  TempDir dir;
  const std::string missing = dir.file("no/such/dir");
  CHECK_THROWS_MATCHES(open_event_store("sqlite:" + missing + "/events.db"), StoreError,
                       Catch::Matchers::Predicate<StoreError>([&](const StoreError& e) {
                         return std::string(e.what()).find(missing) != std::string::npos &&
                                std::string(e.what()).find("does not exist") != std::string::npos;
                       }));
  CHECK_FALSE(std::filesystem::exists(dir.file("no")));
}

TEST_CASE("a directory path is refused", "[store][sqlite][validation]") {
  TempDir dir;
  CHECK_THROWS_WITH(open_event_store("sqlite:" + dir.path().string()), Contains("is a directory"));
}

TEST_CASE("a file that is not an SQLite database is refused and left unchanged",
          "[store][sqlite][validation]") {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  const std::string content = "these are my notes, not a database\n" + std::string(4096, 'n');
  std::ofstream(path, std::ios::binary) << content;
  CHECK_THROWS_MATCHES(open_event_store("sqlite:" + path), StoreError,
                       Catch::Matchers::Predicate<StoreError>([&](const StoreError& e) {
                         const std::string m = e.what();
                         return m.find(path) != std::string::npos &&
                                m.find("not an SQLite database") != std::string::npos;
                       }));
  CHECK(read_file(path) == content);
}

TEST_CASE("another application's SQLite database is refused and left unchanged",
          "[store][sqlite][validation]") {
  TempDir dir;
  const std::string path = dir.file("app.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
    db.exec("INSERT INTO customers (name) VALUES ('ada')");
  }
  const std::string before = read_file(path);
  CHECK_THROWS_WITH(open_event_store("sqlite:" + path),
                    Contains(path) && Contains("not an annals store"));
  CHECK(read_file(path) == before);
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));
}

TEST_CASE("refusals to open are StoreErrors that are not transient",
          "[store][sqlite][validation]") {
  TempDir dir;
  try {
    (void)open_event_store("sqlite:" + dir.file("missing/x.db"));
    FAIL("opened a store in a missing directory");
  } catch (const StoreError& e) {
    CHECK_FALSE(e.transient());
  }
}

TEST_CASE("a store written by a newer annals is refused", "[store][sqlite][validation]") {
  TempDir dir;
  const std::string path = dir.file("events.db");
  open_event_store("sqlite:" + path)->append("s", ExpectedVersion::any(), make_events(2));
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version = 99");
  }
  CHECK_THROWS_WITH(open_event_store("sqlite:" + path),
                    Contains("schema version 99") && Contains("newer"));
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version = 1");
  }
  CHECK(open_event_store("sqlite:" + path)->head_position() == 2);
}

TEST_CASE("the file records what it is and auditors can query JSON payloads with SQL",
          "[store][sqlite]") {
  TempDir dir;
  const std::string path = dir.file("events.db");
  auto store = open_event_store("sqlite:" + path);
  NewEvent json = make_event("RunCreated", R"({"run_id":"r-7","tenant_id":"acme"})");
  json.metadata.actor = "alice";
  NewEvent bin = make_event("Blob", std::string("\x01\x02\x00", 3));
  bin.payload_format = PayloadFormat::binary;
  store->append("WorkflowRun-r-7", ExpectedVersion::no_stream(), {json, bin});

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(db.execAndGet("PRAGMA application_id").getInt() == 0x414e4e4c);
  CHECK(db.execAndGet("PRAGMA user_version").getInt() == 1);
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
  CHECK(db.execAndGet("SELECT json_extract(payload, '$.tenant_id') FROM annals_events "
                      "WHERE type = 'RunCreated'")
            .getString() == "acme");
  CHECK(db.execAndGet("SELECT actor FROM annals_events WHERE position = 1").getString() == "alice");
  CHECK(db.execAndGet("SELECT payload_format || '/' || typeof(payload) FROM annals_events "
                      "WHERE position = 1")
            .getString() == "json/text");
  CHECK(db.execAndGet("SELECT payload_format || '/' || typeof(payload) FROM annals_events "
                      "WHERE position = 2")
            .getString() == "binary/blob");
}

TEST_CASE("the log table refuses UPDATE and DELETE", "[store][sqlite]") {
  TempDir dir;
  const std::string path = dir.file("events.db");
  open_event_store("sqlite:" + path)->append("s", ExpectedVersion::any(), make_events(2));
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  CHECK_THROWS_WITH(db.exec("UPDATE annals_events SET payload = '{}' WHERE position = 1"),
                    Contains("append-only"));
  CHECK_THROWS_WITH(db.exec("DELETE FROM annals_events"), Contains("append-only"));
  CHECK(db.execAndGet("SELECT count(*) FROM annals_events").getInt() == 2);
}

TEST_CASE("two store objects on one file see each other's appends", "[store][sqlite]") {
  TempDir dir;
  auto a = open_event_store(dir.sqlite_uri());
  auto b = open_event_store(dir.sqlite_uri());
  a->append("s", ExpectedVersion::no_stream(), make_events(2));
  CHECK(b->stream_version("s") == 2u);
  CHECK_THROWS_AS(b->append("s", ExpectedVersion::no_stream(), make_events(1)), ConcurrencyError);
  b->append("s", ExpectedVersion::exactly(2), make_events(1));
  CHECK(a->read_stream("s").size() == 3);
  CHECK(a->head_position() == 3);
}

TEST_CASE("a file locked past the busy timeout gives a retryable StoreError, then works",
          "[store][sqlite][busy]") {
  TempDir dir;
  auto store = open_event_store(dir.sqlite_uri("events.db", "busy_timeout_ms=50"));
  store->append("s", ExpectedVersion::no_stream(), make_events(1));
  {
    SQLite::Database other(dir.file("events.db"), SQLite::OPEN_READWRITE);
    SQLite::Transaction lock(other, SQLite::TransactionBehavior::IMMEDIATE);
    CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(1), make_events(1)),
                         StoreError,
                         Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
                           const std::string m = e.what();
                           return m.find("append to s") != std::string::npos &&
                                  m.find("retry") != std::string::npos && e.transient();
                         }));
    CHECK(store->read_stream("s").size() == 1);  // readers are not blocked by the writer
  }
  CHECK(store->append("s", ExpectedVersion::exactly(1), make_events(1)).stream_version == 2);
}

TEST_CASE("synchronous mode is applied as configured", "[store][sqlite]") {
  // The writer's setting is per connection and not visible from outside; what can be checked
  // is that both modes open, write and read back.
  TempDir dir;
  for (const char* mode : {"synchronous=full", "synchronous=normal"}) {
    auto store = open_event_store(dir.sqlite_uri(std::string(mode) + ".db", mode));
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
    CHECK(store->read_stream("s").size() == 3);
  }
}
