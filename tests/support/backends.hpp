#pragma once

// The backends the conformance suite runs against, behind one fixture shape:
//   Backend b;  auto store = b.open("payload=binary");  store = b.reopen();
//
// ANNALS_BACKENDS is the list every backend-parameterized TEMPLATE_TEST_CASE runs over. One
// macro decides it per binary: annals_tests runs memory and SQLite; annals_pg_tests, compiled
// from the same test sources with ANNALS_TEST_PG_ONLY, runs PostgreSQL alone
// (support/pg_backend.hpp) and only those cases (tests/pg/main.cpp filters on the type name).
// Cases that are SQLite's by nature (files, WAL, VFS faults, file images) name SqliteBackend
// and do not take the list.

#include <memory>
#include <string>

#include "annals/store/event_store.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/temp_dir.hpp"

#ifdef ANNALS_TEST_PG_ONLY
#include "support/pg_backend.hpp"
#define ANNALS_BACKENDS annals::test::PgBackend
#else
#define ANNALS_BACKENDS annals::test::MemoryBackend, annals::test::SqliteBackend
#endif

// A plain TEST_CASE that holds for every persistent backend takes ANNALS_PG_TAG after its tags
// and opens its stores through PersistentBackend, or StorePlace and store_uri() when it opens
// several store objects on one database by hand. In annals_tests that is SQLite (a temp dir and
// a file in it) and the tag is empty; in annals_pg_tests it is a schema of its own and the tag
// is [pg], which selects the case there. The test's name is the same in both.

namespace annals::test {

struct MemoryBackend {
  static constexpr const char* kName = "memory";
  static constexpr bool kPersistent = false;

  std::shared_ptr<EventStore> open(const std::string& options = "", const StoreOptions& base = {}) {
    store = open_event_store(options.empty() ? "memory:" : "memory:?" + options, base);
    return store;
  }
  // A memory store lives only as long as its object: "reopening" hands back the same one.
  std::shared_ptr<EventStore> reopen() { return store; }

  std::shared_ptr<EventStore> store;
};

struct SqliteBackend {
  static constexpr const char* kName = "sqlite";
  static constexpr bool kPersistent = true;

  std::shared_ptr<EventStore> open(const std::string& options = "", const StoreOptions& base = {}) {
    uri = dir.sqlite_uri("events.db", options);
    base_options = base;
    store = open_event_store(uri, base);
    return store;
  }
  // Drops every connection and opens the file again.
  std::shared_ptr<EventStore> reopen() {
    store.reset();
    store = open_event_store(uri, base_options);
    return store;
  }

  TempDir dir;
  std::string uri;
  StoreOptions base_options;
  std::shared_ptr<EventStore> store;
};

#ifdef ANNALS_TEST_PG_ONLY
#define ANNALS_PG_TAG "[pg]"
using PersistentBackend = PgBackend;
using StorePlace = PgSchema;
// The schema's store URI; `name` (a file name for SQLite) is not used.
inline std::string store_uri(const PgSchema& place, const std::string& name = "events.db",
                             const std::string& options = "") {
  (void)name;
  return place.uri(options);
}
#else
#define ANNALS_PG_TAG ""
using PersistentBackend = SqliteBackend;
using StorePlace = TempDir;
#endif
// A store URI for the file `name` in the temp dir.
inline std::string store_uri(const TempDir& place, const std::string& name = "events.db",
                             const std::string& options = "") {
  return place.sqlite_uri(name, options);
}

// "sqlite" or "postgresql": for the few statements a test writes by hand (tampering with rows)
// that the two databases spell differently.
inline std::string dialect_of(const SqlEventStore& store) {
  std::string out;
  store.read_transaction([&](SqlSession& sql) { out = std::string(sql.dialect()); });
  return out;
}

// A small valid event; payload defaults to a JSON document.
inline NewEvent make_event(std::string type = "Thing", std::string payload = R"({"n":1})") {
  NewEvent e;
  e.type = std::move(type);
  e.payload = std::move(payload);
  return e;
}

inline std::vector<NewEvent> make_events(std::size_t n, const std::string& type = "Thing") {
  std::vector<NewEvent> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(make_event(type, "{\"n\":" + std::to_string(i) + "}"));
  }
  return out;
}

}  // namespace annals::test
