// PostgreSQL-only cases: what the fixtures and the schema option promise.

#include <catch2/catch.hpp>
#include <functional>
#include <string>

#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/pg_backend.hpp"

using namespace annals;
using annals::test::make_events;

TEST_CASE("a store on PostgreSQL speaks the postgresql dialect", "[pg]") {
  annals::test::PgBackend backend;
  auto store = backend.open();
  std::string dialect;
  store->read_transaction([&](SqlSession& sql) { dialect = std::string(sql.dialect()); });
  CHECK(dialect == "postgresql");
}

TEST_CASE("the store's tables are made in the connection's schema and nowhere else", "[pg]") {
  annals::test::PgBackend backend;
  auto store = backend.open();
  store->append("s", ExpectedVersion::any(), make_events(2));
  const std::string schema = backend.schema.name();
  CHECK(
      backend.schema.admin("SELECT count(*) FROM information_schema.tables WHERE table_schema = '" +
                           schema + "' AND table_name = 'annals_events'") == "1");
  CHECK(backend.schema.admin("SELECT count(*) FROM " + schema + ".annals_events") == "2");
  CHECK(backend.schema.admin("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                             "'public' AND table_name = 'annals_events'") == "0");
}

TEST_CASE("two schemas on one database are two separate logs", "[pg]") {
  annals::test::PgBackend a;
  annals::test::PgBackend b;
  auto store_a = a.open();
  auto store_b = b.open();
  store_a->append("s", ExpectedVersion::no_stream(), make_events(3));
  store_b->append("s", ExpectedVersion::no_stream(), make_events(1));
  CHECK(store_a->head_position() == 3);
  CHECK(store_b->head_position() == 1);
  CHECK(store_b->stream_version("s") == 1);
  // Reopened, each finds its own log again.
  CHECK(a.reopen()->head_position() == 3);
  CHECK(b.reopen()->read_all(1, 10).size() == 1);
}

// A lock wait that timed out is a transient error, and the store object goes on afterwards
// (a timed-out BEGIN + LOCK TABLE is rolled back: before main's 31a228a, 25P02 ever after).
// The schema is created with the default busy_timeout (creating it waits for any other process
// creating a store in the same database); the short timeout is given to a second store object
// on the created schema, whose open only checks the tables and waits for nothing.
TEST_CASE("an append or write transaction that timed out on the write lock leaves the store usable",
          "[pg]") {
  annals::test::PgBackend backend;
  (void)backend.open();
  auto store = open_sql_event_store(backend.schema.uri("busy_timeout_ms=20"));
  store->append("s", ExpectedVersion::no_stream(), make_events(1));
  auto expect_locked = [](const std::function<void()>& fn) {
    try {
      fn();
      FAIL("it did not wait for the lock");
    } catch (const StoreError& e) {
      CHECK(e.transient());
      CHECK_THAT(e.what(), Catch::Matchers::Contains("locked"));
    }
  };
  SECTION("an append") {
    annals::test::PgWriteLock lock(backend.schema);
    expect_locked([&] { store->append("s", ExpectedVersion::exactly(1), make_events(1)); });
  }
  SECTION("a write transaction") {
    annals::test::PgWriteLock lock(backend.schema);
    expect_locked([&] { store->write_transaction([](SqlSession&) {}); });
  }
  // The lock is gone: the same store object appends and runs write transactions again.
  CHECK(store->append("s", ExpectedVersion::exactly(1), make_events(1)).last_position == 2);
  CHECK_NOTHROW(store->write_transaction([](SqlSession& sql) { (void)sql.query("SELECT 1"); }));
  CHECK(store->head_position() == 2);
}
