// SqlEventStore's sessions and transactions, which projections and repositories build on.

#include <catch2/catch.hpp>

#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"

using namespace annals;
using annals::test::make_events;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("sessions bind $n placeholders, in any order, and never splice", "[store][sql]",
                   ANNALS_BACKENDS) {
  TestType backend;
  auto store = std::dynamic_pointer_cast<SqlEventStore>(backend.open());
  REQUIRE(store);
  const std::string hostile = "x'); DROP TABLE annals_events; --";
  store->write_transaction([&](SqlSession& sql) {
    sql.execute_script("CREATE TABLE annals_t (k TEXT PRIMARY KEY, n INTEGER, r REAL, z TEXT)");
    CHECK(sql.execute("INSERT INTO annals_t (n, k, r, z) VALUES ($2, $1, $3, $4)",
                      {hostile, std::int64_t{7}, 2.5, nullptr}) == 1);
  });
  store->read_transaction([&](SqlSession& sql) {
    const auto rows = sql.query("SELECT k, n, r, z FROM annals_t WHERE k = $1", {hostile});
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].text(0) == hostile);
    CHECK(rows[0].integer(1) == 7);
    CHECK(rows[0].real(2) == 2.5);
    CHECK(rows[0].is_null(3));
    CHECK_FALSE(rows[0].optional_text(3).has_value());
    CHECK_THROWS_WITH(rows[0].integer(0), Contains("column 0 is text"));
    CHECK_THROWS_WITH(sql.query("SELECT k FROM annals_t WHERE k = $1", {}),
                      Contains("expects 1 parameters, got 0"));
    CHECK_THROWS_AS(sql.query("SELECT k FROM annals_t WHERE k = ?"), InvalidArgument);
    CHECK_THROWS_AS(sql.query("SELECT nope FROM annals_t"), StoreError);
  });
  CHECK(store->head_position() == 0);  // annals_events survived
}

TEMPLATE_TEST_CASE("a write transaction that throws leaves nothing behind", "[store][sql]",
                   ANNALS_BACKENDS) {
  TestType backend;
  auto store = std::dynamic_pointer_cast<SqlEventStore>(backend.open());
  store->write_transaction(
      [](SqlSession& sql) { sql.execute_script("CREATE TABLE annals_t (k TEXT PRIMARY KEY)"); });
  CHECK_THROWS_WITH(store->write_transaction([](SqlSession& sql) {
    sql.execute("INSERT INTO annals_t (k) VALUES ($1)", {"a"});
    throw std::runtime_error("changed my mind");
  }),
                    "changed my mind");
  store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT count(*) FROM annals_t").front().integer(0) == 0);
  });
}

TEMPLATE_TEST_CASE("cursors stream rows, two at once", "[store][sql]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = std::dynamic_pointer_cast<SqlEventStore>(backend.open());
  store->append("s", ExpectedVersion::any(), make_events(5));
  store->read_transaction([](SqlSession& sql) {
    auto a = sql.open_cursor("SELECT position FROM annals_events ORDER BY position");
    auto b = sql.open_cursor("SELECT position FROM annals_events ORDER BY position DESC");
    SqlRow ra, rb;
    std::vector<std::int64_t> seen;
    while (a->next(ra) && b->next(rb)) seen.push_back(ra.integer(0) * 10 + rb.integer(0));
    CHECK(seen == std::vector<std::int64_t>{15, 24, 33, 42, 51});
    CHECK(head_position(sql) == 5);
    CHECK(read_events(sql, 4, 10).size() == 2);
  });
}

TEST_CASE("a read transaction sees one snapshot while appends commit",
          "[store][sql]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = std::dynamic_pointer_cast<SqlEventStore>(backend.open());
  store->append("s", ExpectedVersion::any(), make_events(2));
  auto writer = open_event_store(backend.uri);
  store->read_transaction([&](SqlSession& sql) {
    CHECK(head_position(sql) == 2);
    writer->append("s", ExpectedVersion::any(), make_events(3));
    CHECK(head_position(sql) == 2);  // still the snapshot the transaction began with
  });
  CHECK(store->head_position() == 5);
}

TEST_CASE("commit listeners hear every append of their store object", "[store][sql]") {
  auto store = open_sql_event_store("memory:");
  std::vector<std::uint64_t> heads;
  const auto id = store->add_commit_listener([&](std::uint64_t head) { heads.push_back(head); });
  store->append("s", ExpectedVersion::any(), make_events(2));
  store->append("s", ExpectedVersion::any(), make_events(1));
  store->remove_commit_listener(id);
  store->append("s", ExpectedVersion::any(), make_events(1));
  CHECK(heads == std::vector<std::uint64_t>{2, 3});
  CHECK_THROWS_AS(store->add_commit_listener({}), InvalidArgument);
  CHECK_THROWS_AS(store->add_append_hook(nullptr), InvalidArgument);
}

TEST_CASE("open_sql_event_store refuses schemes that are not SQL stores", "[store][sql]") {
  CHECK_THROWS_WITH(open_sql_event_store("kafka:topic"), Contains("unknown scheme 'kafka'"));
}

TEMPLATE_TEST_CASE("a cursor keeps its own copy of its parameters", "[store][sql]",
                   ANNALS_BACKENDS) {
  TestType backend;
  auto store = std::dynamic_pointer_cast<SqlEventStore>(backend.open());
  store->append(std::string(40, 'a'), ExpectedVersion::any(), make_events(2));
  store->read_transaction([](SqlSession& sql) {
    auto cursor = sql.open_cursor("SELECT count(*) FROM annals_events WHERE stream_id = $1",
                                  {std::string(40, 'a')});  // a temporary, gone after this line
    std::vector<std::string> noise(64, std::string(40, 'X'));
    SqlRow row;
    REQUIRE(cursor->next(row));
    CHECK(row.integer(0) == 2);
  });
}

TEST_CASE("on memory:, a read inside a read transaction does not hang", "[store][sql]") {
  auto store = open_sql_event_store("memory:");
  store->append("s", ExpectedVersion::any(), make_events(3));
  std::uint64_t head = 0;
  store->read_transaction([&](SqlSession&) { head = store->head_position(); });
  CHECK(head == 3);
}
