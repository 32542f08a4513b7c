// The PostgreSQL backend against a real server, in annals_pg_tests (tag [pg]); like the rest of
// that binary they need ANNALS_TEST_PG naming a libpq connection string for a server where they
// may create schemas, e.g.
//   ANNALS_TEST_PG="host=/tmp/pg user=postgres dbname=annals_test" annals_pg_tests "[pg]"
// and are skipped without one (tests/pg/main.cpp).
// Each test works in a schema of its own (options=-csearch_path=NAME). The conformance and
// read-model suites run on PostgreSQL in annals_pg_tests; these check what only a PostgreSQL
// store has (its schema checks, connection strings, SQL types) and a few basics quickly.

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/store/export.hpp"
#include "annals/store/purge.hpp"
#include "annals/store/hash_chain.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::make_event;
using annals::test::make_events;
using Catch::Matchers::Contains;

namespace {

std::string server() {
  const char* v = std::getenv("ANNALS_TEST_PG");
  if (v == nullptr || *v == '\0') FAIL("ANNALS_TEST_PG is not set: the [pg] tests need a server");
  return v;
}

void run_sql(const std::string& sql) {
  PGconn* c = PQconnectdb(server().c_str());
  const bool ok = PQstatus(c) == CONNECTION_OK;
  const std::string error = PQerrorMessage(c);
  PGresult* r = ok ? PQexec(c, ("SET client_min_messages = warning; " + sql).c_str()) : nullptr;
  const bool done = r != nullptr && (PQresultStatus(r) == PGRES_COMMAND_OK ||
                                      PQresultStatus(r) == PGRES_TUPLES_OK);
  const std::string message = r != nullptr ? PQresultErrorMessage(r) : error;
  if (r != nullptr) PQclear(r);
  PQfinish(c);
  INFO(sql << ": " << message);
  REQUIRE(done);
}

// A URI for a store in schema `name`, created empty (dropped first if a run left it).
std::string fresh_schema(const std::string& name, const std::string& options = "") {
  run_sql("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name);
  return server() + " options=-csearch_path=" + name + (options.empty() ? "" : " " + options);
}

NewEvent fixed_event(int i) {
  NewEvent e = make_event("Thing", "{\"n\":" + std::to_string(i) + "}");
  e.event_id = parse_uuid("00000000-0000-4000-8000-" + std::string(12 - std::to_string(i).size(), '0') +
                          std::to_string(i));
  e.metadata = EventMetadata{"acme", "ann", "corr-" + std::to_string(i), "cause",
                             from_micros(1'700'000'000'000'000 + i)};
  return e;
}

}  // namespace

TEST_CASE("pg: open, append, read, conflict, batch and reopen", "[pg]") {
  const std::string uri = fresh_schema("annals_smoke_basic");
  auto store = open_sql_event_store(uri);
  CHECK(store->head_position() == 0);
  CHECK(store->read_all(1, 10).empty());
  CHECK_FALSE(store->stream_version("a").has_value());

  const AppendResult a = store->append("a", ExpectedVersion::no_stream(), make_events(3));
  CHECK(a.first_position == 1);
  CHECK(a.last_position == 3);
  CHECK(a.stream_version == 3);
  CHECK_THROWS_AS(store->append("a", ExpectedVersion::exactly(2), make_events(1)),
                  ConcurrencyError);
  CHECK_THROWS_WITH(store->append("a", ExpectedVersion::no_stream(), make_events(1)),
                    Contains("expected no stream, actual version 3"));

  // A batch whose second part fails writes nothing.
  std::vector<StreamAppend> bad{{"b", ExpectedVersion::no_stream(), make_events(2)},
                                {"a", ExpectedVersion::exactly(1), make_events(1)}};
  CHECK_THROWS_AS(store->append(bad), ConcurrencyError);
  CHECK(store->head_position() == 3);
  CHECK_FALSE(store->stream_version("b").has_value());

  std::vector<StreamAppend> good{{"b", ExpectedVersion::no_stream(), make_events(2)},
                                 {"a", ExpectedVersion::exactly(3), make_events(1)}};
  const AppendResult g = store->append(good);
  CHECK(g.first_position == 4);
  CHECK(g.last_position == 6);
  CHECK(g.stream_version == 4);

  const auto all = store->read_all(1, SIZE_MAX);
  REQUIRE(all.size() == 6);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == i + 1);
  CHECK(store->read_all(5, 1).front().stream_id == "b");
  CHECK(store->read_stream("a", 2, 2).size() == 2);
  CHECK(store->read_stream("a").back().position == 6);
  CHECK(store->read_all(UINT64_MAX, SIZE_MAX).empty());
  store->read_transaction([](SqlSession& sql) {
    CHECK(read_events(sql, 1, SIZE_MAX).size() == 6);
    CHECK(head_position(sql) == 6);
  });

  // Binary payloads with NUL bytes and every byte value come back as they went in.
  NewEvent bin = make_event("Blob", std::string("\0\x01\xff\x80zz", 6));
  bin.payload_format = PayloadFormat::binary;
  store->append("c", ExpectedVersion::any(), {bin});
  CHECK(store->read_stream("c").front().payload == std::string("\0\x01\xff\x80zz", 6));

  // A large batch goes to the server in several pipelined chunks; a duplicate event id late in
  // it fails the whole append and names that event's id.
  auto many = make_events(600);
  many[499].event_id = store->read_all(1, 1).front().event_id;
  CHECK_THROWS_WITH(store->append("big", ExpectedVersion::no_stream(), many),
                    Contains(to_string(many[499].event_id)) && Contains("already in the store"));
  CHECK(store->head_position() == 7);
  many[499].event_id = new_event_id();
  CHECK(store->append("big", ExpectedVersion::no_stream(), many).last_position == 607);
  CHECK(store->read_stream("big").size() == 600);

  const LogVerification v = verify_log(*store);
  CHECK(v.head_position == 607);

  store.reset();
  auto again = open_event_store(uri + " payload=binary");
  CHECK(again->payload_format() == PayloadFormat::binary);
  CHECK(again->head_position() == 607);
  CHECK(verify_log(*again).head_hash == v.head_hash);
}

TEST_CASE("pg: the hash chain is byte for byte SQLite's", "[pg]") {
  StoreOptions fixed;
  fixed.clock = [] { return from_micros(1'750'000'000'000'000); };
  auto pg_store = open_event_store(fresh_schema("annals_smoke_hash"), fixed);
  annals::test::SqliteBackend sqlite;
  auto sqlite_store = sqlite.open("", fixed);
  for (auto* store : {pg_store.get(), sqlite_store.get()}) {
    store->append("s-1", ExpectedVersion::no_stream(), {fixed_event(1), fixed_event(2)});
    NewEvent bin = fixed_event(3);
    bin.payload_format = PayloadFormat::binary;
    bin.payload = std::string("\0bin\xfe", 5);
    store->append({{"s-2", ExpectedVersion::any(), {bin}},
                   {"s-1", ExpectedVersion::exactly(2), {fixed_event(4)}}});
  }
  const auto a = pg_store->read_all(1, 100);
  const auto b = sqlite_store->read_all(1, 100);
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].hash == b[i].hash);
    CHECK(a[i].payload == b[i].payload);
    CHECK(a[i].metadata == b[i].metadata);
    CHECK(a[i].recorded_at == b[i].recorded_at);
    CHECK(canonical_encoding(a[i]) == canonical_encoding(b[i]));
  }
}

TEST_CASE("pg: SqlSession types, transactions and errors", "[pg]") {
  auto store = open_sql_event_store(fresh_schema("annals_smoke_sql"));
  store->write_transaction([](SqlSession& sql) {
    CHECK(sql.dialect() == "postgresql");
    sql.execute_script(
        "CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, x DOUBLE PRECISION, b BYTEA, "
        "ok BOOLEAN, small INTEGER, num NUMERIC)");
    CHECK(sql.execute("INSERT INTO t VALUES ($1, $2, $3, $4, true, 7, 12.5)",
                      {std::string("k1"), std::int64_t{-5}, 2.25,
                       SqlBlob{std::string("\0\xff", 2)}}) == 1);
    CHECK(sql.execute("INSERT INTO t (id, n, num) VALUES ($1, $2, 42)",
                      {std::string("k2"), nullptr}) == 1);
    CHECK(sql.table_exists("t"));
    CHECK_FALSE(sql.table_exists("nope"));
  });
  store->read_transaction([](SqlSession& sql) {
    const auto rows = sql.query("SELECT id, n, x, b, ok, small, num FROM t ORDER BY id");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].text(0) == "k1");
    CHECK(rows[0].integer(1) == -5);
    CHECK(rows[0].real(2) == 2.25);
    CHECK(rows[0].text(3) == std::string("\0\xff", 2));
    CHECK(rows[0].integer(4) == 1);
    CHECK(rows[0].integer(5) == 7);
    CHECK(rows[0].real(6) == 12.5);
    CHECK(rows[1].is_null(1));
    CHECK(rows[1].integer(6) == 42);
    // Two cursors at once, with a query between their rows.
    auto c1 = sql.open_cursor("SELECT id FROM t ORDER BY id");
    auto c2 = sql.open_cursor("SELECT id FROM t WHERE id = $1", {std::string("k2")});
    SqlRow row;
    REQUIRE(c1->next(row));
    CHECK(row.text(0) == "k1");
    CHECK(sql.query("SELECT count(*) FROM t").front().integer(0) == 2);
    REQUIRE(c2->next(row));
    CHECK(row.text(0) == "k2");
    CHECK_FALSE(c2->next(row));
    REQUIRE(c1->next(row));
    CHECK_FALSE(c1->next(row));
    CHECK_FALSE(c1->next(row));
    // A result larger than one fetch comes in several, in order.
    auto big = sql.open_cursor("SELECT g FROM generate_series(1, $1::bigint) AS g",
                               {std::int64_t{1000}});
    std::int64_t expect = 1;
    while (big->next(row)) CHECK(row.integer(0) == expect++);
    CHECK(expect == 1001);
    auto none = sql.open_cursor("SELECT 1 WHERE false");
    CHECK_FALSE(none->next(row));
    // A read transaction cannot write.
    CHECK_THROWS_WITH(sql.execute("DELETE FROM t"), Contains("use a write transaction"));
  });
  // Placeholders are counted as the server counts them, and refused as SQLite refuses them,
  // before anything is sent (the transaction goes on).
  store->write_transaction([](SqlSession& sql) {
    CHECK_THROWS_WITH(sql.query("SELECT id FROM t WHERE id = $1", {}),
                      Contains("expects 1 parameters, got 0"));
    CHECK_THROWS_WITH(sql.query("SELECT id FROM t WHERE id = $2", {std::string("a"), std::string("b")}),
                      Contains("$1 is missing"));
    CHECK_THROWS_AS(sql.query("SELECT id FROM t WHERE id = ?"), InvalidArgument);
    // Not placeholders: in literals, quoted identifiers, dollar quotes, comments, identifiers.
    const auto rows = sql.query(
        "SELECT '$7 ?' AS \"$8?\", E'\\'$9', $$ $3 ? $$, $q$ $4 $q$ -- $5 ?\n"
        " /* $6 /* ? */ */ , $1::text AS x$2",
        {std::string("one")});
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].text(0) == "$7 ?");
    CHECK(rows[0].text(1) == "'$9");
    CHECK(rows[0].text(4) == "one");
    CHECK(sql.query("SELECT count(*) FROM t").front().integer(0) == 2);
  });
  // NUL in text is refused, never cut.
  store->write_transaction([](SqlSession& sql) {
    CHECK_THROWS_AS(sql.execute("INSERT INTO t (id) VALUES ($1)", {std::string("a\0b", 3)}),
                    InvalidArgument);
  });
  // A throwing callback rolls back.
  CHECK_THROWS_AS(store->write_transaction([](SqlSession& sql) {
    sql.execute("INSERT INTO t (id) VALUES ('k3')");
    throw NotFound("no");
  }),
                  NotFound);
  store->read_transaction(
      [](SqlSession& sql) { CHECK(sql.query("SELECT id FROM t WHERE id = 'k3'").empty()); });
  // SQL errors name the SQLSTATE and are not transient.
  try {
    store->write_transaction([](SqlSession& sql) { sql.execute("INSERT INTO nope VALUES (1)"); });
    FAIL("no error");
  } catch (const StoreError& e) {
    CHECK_THAT(e.what(), Contains("42P01"));
    CHECK_FALSE(e.transient());
  }
  // The log is append-only.
  store->append("s", ExpectedVersion::any(), make_events(1));
  CHECK_THROWS_WITH(
      store->write_transaction([](SqlSession& sql) { sql.execute("DELETE FROM annals_events"); }),
      Contains("append-only"));
  CHECK_THROWS_WITH(store->write_transaction(
                        [](SqlSession& sql) { sql.execute("UPDATE annals_events SET actor = 'x'"); }),
                    Contains("append-only"));
  CHECK(store->head_position() == 1);
  // A read transaction sees one snapshot.
  store->read_transaction([&](SqlSession& sql) {
    const std::uint64_t before = head_position(sql);
    store->append("s", ExpectedVersion::any(), make_events(1));
    CHECK(head_position(sql) == before);
    CHECK(read_events(sql, 1, SIZE_MAX).size() == before);
  });
  CHECK(store->head_position() == 2);
}

namespace {
struct RecordingHook : AppendHook {
  SqlEventStore* store = nullptr;
  std::vector<std::string> calls;
  bool fail = false;
  void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) override {
    calls.push_back("append " + std::to_string(appended.size()));
    sql.execute("INSERT INTO seen (position) VALUES ($1)",
                {static_cast<std::int64_t>(appended.front().position)});
    CHECK_THROWS_WITH(store->append("x", ExpectedVersion::any(), make_events(1)),
                      Contains("would wait for itself"));
    if (fail) throw NotFound("hook says no");
  }
  void on_commit(const std::vector<RecordedEvent>& appended) noexcept override {
    calls.push_back("commit " + std::to_string(appended.front().position));
  }
  void on_rollback(const std::vector<RecordedEvent>& appended) noexcept override {
    calls.push_back("rollback " + std::to_string(appended.front().position));
  }
};
}  // namespace

TEST_CASE("pg: hooks, listeners, duplicate ids and re-entry", "[pg]") {
  auto store = open_sql_event_store(fresh_schema("annals_smoke_hooks"));
  store->write_transaction([](SqlSession& sql) {
    sql.execute_script("CREATE TABLE seen (position BIGINT)");
  });
  auto hook = std::make_shared<RecordingHook>();
  hook->store = store.get();
  store->add_append_hook(hook);
  std::vector<std::uint64_t> heard;
  store->add_commit_listener([&](std::uint64_t head) { heard.push_back(head); });
  store->append("a", ExpectedVersion::any(), make_events(2));
  hook->fail = true;
  CHECK_THROWS_AS(store->append("a", ExpectedVersion::any(), make_events(1)), NotFound);
  hook->fail = false;
  NewEvent dup = make_event();
  dup.event_id = store->read_all(1, 1).front().event_id;
  CHECK_THROWS_WITH(store->append("b", ExpectedVersion::any(), {dup}),
                    Contains("append to b: event id " + to_string(dup.event_id) +
                             " is already in the store"));
  CHECK(hook->calls == std::vector<std::string>{"append 2", "commit 1", "append 1", "rollback 3"});
  CHECK(heard == std::vector<std::uint64_t>{2});
  CHECK(store->head_position() == 2);
  store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT position FROM seen").size() == 1);
  });
  CHECK_THROWS_WITH(store->write_transaction([&](SqlSession&) {
    store->write_transaction([](SqlSession&) {});
  }),
                    Contains("would wait for itself"));
  NewEvent nul = make_event();
  nul.metadata.actor = std::string("a\0b", 3);
  CHECK_THROWS_WITH(store->append("c", ExpectedVersion::any(), {nul}), Contains("NUL byte"));
}

TEST_CASE("pg: writers on several store objects keep positions gap-free for a tailing reader",
          "[pg]") {
  const std::string uri = fresh_schema("annals_smoke_tail");
  auto first = open_event_store(uri);
  constexpr int kWriters = 4, kAppends = 40;
  std::atomic<bool> done{false};
  std::vector<std::uint64_t> seen;
  std::thread reader([&] {
    auto store = open_event_store(uri);
    std::uint64_t next = 1;
    while (true) {
      const bool last = done.load();
      for (const RecordedEvent& e : store->read_all(next, 1000)) {
        seen.push_back(e.position);
        next = e.position + 1;
      }
      if (last) break;
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto store = open_event_store(uri);
      for (int i = 0; i < kAppends; ++i) {
        store->append("w-" + std::to_string(w), ExpectedVersion::any(), make_events(2));
      }
    });
  }
  for (auto& t : writers) t.join();
  done = true;
  reader.join();
  REQUIRE(seen.size() == kWriters * kAppends * 2);
  for (std::size_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == i + 1);
  CHECK(verify_log(*first).events == seen.size());
}

TEST_CASE("pg: what open refuses", "[pg]") {
  const std::string uri = fresh_schema("annals_smoke_open");
  open_event_store(uri).reset();
  run_sql("UPDATE annals_smoke_open.annals_meta SET value = '2' WHERE key = 'schema_version'");
  CHECK_THROWS_WITH(open_event_store(uri),
                    Contains("schema version 2") && Contains("supports (1)"));

  const std::string foreign = fresh_schema("annals_smoke_foreign");
  run_sql("CREATE TABLE annals_smoke_foreign.annals_events (x INT)");
  CHECK_THROWS_WITH(open_event_store(foreign), Contains("not an annals store"));
  // Other tables in the schema are fine.
  const std::string shared = fresh_schema("annals_smoke_shared");
  run_sql("CREATE TABLE annals_smoke_shared.theirs (x INT)");
  CHECK(open_event_store(shared)->head_position() == 0);

  run_sql("DROP SCHEMA IF EXISTS annals_smoke_missing CASCADE");
  CHECK_THROWS_WITH(open_event_store(server() + " options=-csearch_path=annals_smoke_missing"),
                    Contains("names no schema"));
  try {
    (void)open_event_store(
        "postgresql://annals:s3cret@/nosuchdb?host=/nonexistent&connect_timeout=2");
    FAIL("opened");
  } catch (const StoreError& e) {
    CHECK_THAT(e.what(), Contains("cannot connect") && Contains("annals:***@"));
    CHECK_THAT(e.what(), !Contains("s3cret"));
  }
}

TEST_CASE("pg: a store reconnects after the server dropped its connections", "[pg]") {
  // The store's connections carry an application_name of their own, so that only they are
  // dropped (other test processes share the server).
  const std::string app = "annals_smoke_reconnect_" + std::to_string(::getpid());
  auto store = open_sql_event_store(fresh_schema("annals_smoke_reconnect", "application_name=" + app));
  store->append("a", ExpectedVersion::any(), make_events(1));
  CHECK(store->read_all(1, 10).size() == 1);
  const auto drop_all = [&app] {
    run_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
            app + "'");
  };
  // Dropped while idle: the next call reconnects and succeeds.
  drop_all();
  store->append("a", ExpectedVersion::exactly(1), make_events(1));
  CHECK(store->read_all(1, 10).size() == 2);
  CHECK(store->stream_version("a") == 2u);
  drop_all();
  store->read_transaction([](SqlSession& sql) { CHECK(head_position(sql) == 2); });
  store->write_transaction([](SqlSession& sql) { CHECK(head_position(sql) == 2); });
  CHECK(verify_log(*store).events == 2);
}

TEST_CASE("pg: export from SQLite, import into PostgreSQL and back is byte for byte", "[pg]") {
  annals::test::SqliteBackend sqlite;
  auto source = sqlite.open();
  source->append("s-1", ExpectedVersion::no_stream(), {fixed_event(1), fixed_event(2)});
  NewEvent bin = fixed_event(3);
  bin.payload_format = PayloadFormat::binary;
  bin.payload = std::string("\0\x01\xff", 3);
  source->append("s-2", ExpectedVersion::any(), {bin});
  std::stringstream first;
  (void)export_log(*source, first);

  auto pg_store = open_sql_event_store(fresh_schema("annals_smoke_import"));
  std::stringstream in(first.str());
  const ImportResult imported = import_log(*pg_store, in);
  CHECK(imported.events == 3);
  std::stringstream second;
  (void)export_log(*pg_store, second);
  CHECK(second.str() == first.str());
  CHECK(pg_store->read_stream("s-2").front().payload == std::string("\0\x01\xff", 3));
  // Appends continue the imported chain.
  pg_store->append("s-1", ExpectedVersion::exactly(2), {fixed_event(4)});
  CHECK(verify_log(*pg_store).events == 4);

  annals::test::SqliteBackend back;
  auto target = std::dynamic_pointer_cast<SqlEventStore>(back.open());
  std::stringstream again(second.str());
  (void)import_log(*target, again);
  std::stringstream third;
  (void)export_log(*target, third);
  CHECK(third.str() == first.str());
}

namespace {
// Holds the first append inside its transaction until `wait_for` appends are queued behind it.
struct Gate : AppendHook {
  SqlEventStore* store = nullptr;
  std::size_t wait_for = 0;
  std::atomic<bool> first{true};
  std::atomic<bool> holding{false};
  std::atomic<int> commits{0}, rollbacks{0};
  void on_append(SqlSession&, const std::vector<RecordedEvent>& appended) override {
    if (appended.front().stream_id == "g-5") throw NotFound("the hook refuses g-5");
    if (!first.exchange(false)) return;
    holding = true;
    while (store->group_commit_stats().queued < wait_for) std::this_thread::yield();
  }
  void on_commit(const std::vector<RecordedEvent>&) noexcept override { ++commits; }
  void on_rollback(const std::vector<RecordedEvent>&) noexcept override { ++rollbacks; }
};
}  // namespace

TEST_CASE("pg: group commit runs queued appends in one transaction, each checked alone",
          "[pg]") {
  auto store = open_sql_event_store(fresh_schema("annals_smoke_group"));
  store->append("taken", ExpectedVersion::any(), make_events(1));
  auto gate = std::make_shared<Gate>();
  gate->store = store.get();
  gate->wait_for = 7;
  store->add_append_hook(gate);
  std::thread leader([&] { store->append("g-0", ExpectedVersion::no_stream(), make_events(2)); });
  while (!gate->holding) std::this_thread::yield();
  // Three of the group fail, each alone: a version conflict (4), a hook throwing (5) and an
  // event id already in the store (6, a statement error PostgreSQL recovers from only by
  // rolling back to the append's savepoint).
  const auto taken_id = store->read_all(1, 1).front().event_id;
  std::atomic<int> conflicts{0}, hook_refusals{0}, duplicates{0};
  std::vector<std::thread> others;
  for (int i = 1; i <= 7; ++i) {
    others.emplace_back([&, i] {
      auto events = make_events(2);
      if (i == 6) events[1].event_id = taken_id;
      try {
        store->append(i == 4 ? "taken" : "g-" + std::to_string(i), ExpectedVersion::no_stream(),
                      events);
      } catch (const ConcurrencyError&) {
        ++conflicts;
      } catch (const NotFound&) {
        ++hook_refusals;
      } catch (const InvalidArgument& e) {
        if (std::string(e.what()).find("is already in the store") != std::string::npos) {
          ++duplicates;
        }
      }
    });
  }
  leader.join();
  for (auto& t : others) t.join();
  CHECK(conflicts == 1);
  CHECK(hook_refusals == 1);
  CHECK(duplicates == 1);
  const GroupCommitStats stats = store->group_commit_stats();
  CHECK(stats.groups == 3);
  CHECK(stats.requests == 9);
  CHECK(stats.max_group == 7);
  CHECK(stats.queued == 0);
  CHECK(gate->commits == 5);
  CHECK(gate->rollbacks == 1);  // g-5's; the others failed before their hooks ran
  const auto all = store->read_all(1, SIZE_MAX);
  REQUIRE(all.size() == 1 + 5 * 2);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == i + 1);
  CHECK(verify_log(*store).events == all.size());
  for (int i = 0; i <= 7; ++i) {
    const auto version = store->stream_version("g-" + std::to_string(i));
    if (i == 4 || i == 5 || i == 6) {
      CHECK_FALSE(version.has_value());
    } else {
      CHECK(version == 2u);
    }
  }
}

namespace {
Timestamp at(int seconds) { return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL); }

RunCreated created(const std::string& run_id, const std::string& tenant, int seconds) {
  return RunCreated{.run_id = run_id,
                    .tenant_id = tenant,
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"q":"hello"})",
                    .created_at = at(seconds)};
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("pg: purge_runs removes old runs into the same archive as on SQLite", "[pg]") {
  // One log, built on SQLite and imported into PostgreSQL, purged on both.
  annals::test::SqliteBackend sqlite;
  auto source = std::dynamic_pointer_cast<SqlEventStore>(sqlite.open());
  {
    AggregateRepository<WorkflowRun> repo(source);
    WorkflowRun old1 = WorkflowRun::create(created("old-1", "t-1", 10));
    repo.save(old1);
    WorkflowRun other = WorkflowRun::create(created("t2-old", "t-2", 11));
    repo.save(other);
    WorkflowRun old2 = WorkflowRun::create(created("old-2", "t-1", 20));
    repo.save(old2);
    WorkflowRun fresh = WorkflowRun::create(created("new-1", "t-1", 200));
    repo.save(fresh);
  }
  std::stringstream log;
  (void)export_log(*source, log);
  auto pg_store = open_sql_event_store(fresh_schema("annals_smoke_purge"));
  std::stringstream in(log.str());
  (void)import_log(*pg_store, in);

  annals::test::TempDir dir;
  const auto purge = [&](SqlEventStore& store, const std::string& name) {
    return purge_runs(store, {.tenant_id = "t-1",
                              .before = at(100),
                              .archive_path = dir.file(name),
                              .clock = [] { return at(1000); }});
  };
  const PurgeResult a = purge(*source, "sqlite.jsonl");
  const PurgeResult b = purge(*pg_store, "pg.jsonl");
  CHECK(b.purge_id == 1);
  CHECK(b.streams == 2);
  CHECK(b.events == a.events);
  CHECK(b.stream_ids == a.stream_ids);
  CHECK(b.archive_sha256 == a.archive_sha256);
  CHECK(file_bytes(dir.file("pg.jsonl")) == file_bytes(dir.file("sqlite.jsonl")));
  CHECK(pg_store->read_stream("WorkflowRun-old-1").empty());
  CHECK(pg_store->read_all(1, 100).size() == 2);
  const LogVerification v = verify_log(*pg_store);
  CHECK(v.purged == b.events);
  CHECK(v.head_position == 4);
  CHECK(verify_purge_archive(*pg_store, dir.file("pg.jsonl")).events == b.events);
  // The delete trigger is on again.
  CHECK_THROWS_WITH(pg_store->write_transaction([](SqlSession& sql) {
    sql.execute("DELETE FROM annals_events");
  }),
                    Contains("append-only"));
  pg_store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT tgenabled FROM pg_trigger WHERE tgname = 'annals_events_no_delete'"
                    " AND tgrelid = 'annals_events'::regclass")
              .front()
              .text(0) == "O");
  });
}

TEST_CASE("pg: stores opening an empty schema at once create it once", "[pg]") {
  const std::string uri = fresh_schema("annals_smoke_race");
  std::vector<std::thread> openers;
  std::atomic<int> opened{0};
  for (int i = 0; i < 6; ++i) {
    openers.emplace_back([&, i] {
      auto store = open_event_store(uri);
      store->append("s-" + std::to_string(i), ExpectedVersion::no_stream(), make_events(1));
      ++opened;
    });
  }
  for (auto& t : openers) t.join();
  CHECK(opened == 6);
  auto store = open_event_store(uri + " busy_timeout_ms=0");
  CHECK(store->head_position() == 6);
  CHECK(verify_log(*store).events == 6);
}

namespace {
// Swallows a failing statement in on_append for streams named "bad...": PostgreSQL aborts the
// transaction all the same. Appends to "hold" wait until `wait_for` appends are queued.
struct Swallow : AppendHook {
  SqlEventStore* store = nullptr;
  std::size_t wait_for = 0;
  std::atomic<bool> holding{false};
  std::atomic<int> commits{0}, rollbacks{0};
  void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) override {
    const std::string& stream = appended.front().stream_id;
    if (stream.starts_with("bad")) {
      try {
        sql.execute("SELECT 1/0");
      } catch (const StoreError&) {
      }
    }
    if (stream == "hold") {
      holding = true;
      while (store->group_commit_stats().queued < wait_for) std::this_thread::yield();
    }
  }
  void on_commit(const std::vector<RecordedEvent>&) noexcept override { ++commits; }
  void on_rollback(const std::vector<RecordedEvent>&) noexcept override { ++rollbacks; }
};
}  // namespace

// Before the fix COMMIT of the aborted transaction answered ROLLBACK with status OK and the
// append was acknowledged with positions that were never written.
TEST_CASE("pg: a hook or callback that caught a failed statement fails its append or transaction",
          "[pg]") {
  SECTION("an append alone") {
    auto store = open_sql_event_store(fresh_schema("annals_smoke_swallow1"));
    auto hook = std::make_shared<Swallow>();
    store->add_append_hook(hook);
    store->append("ok", ExpectedVersion::any(), make_events(1));
    std::vector<std::uint64_t> heard;
    store->add_commit_listener([&](std::uint64_t head) { heard.push_back(head); });
    try {
      store->append("bad", ExpectedVersion::any(), make_events(2));
      FAIL("the append was acknowledged");
    } catch (const StoreError& e) {
      CHECK_FALSE(e.transient());
      CHECK_THAT(e.what(), Contains("append to bad") && Contains("an append hook failed") &&
                               Contains("nothing was written"));
    }
    CHECK(hook->commits == 1);
    CHECK(hook->rollbacks == 1);
    CHECK(heard.empty());
    CHECK(store->head_position() == 1);
    CHECK_FALSE(store->stream_version("bad").has_value());
    CHECK(store->append("ok", ExpectedVersion::exactly(1), make_events(1)).last_position == 2);
    CHECK(verify_log(*store).events == 2);
  }
  SECTION("one append of a group of two") {
    auto store = open_sql_event_store(fresh_schema("annals_smoke_swallow2", "group_commit=on"));
    auto hook = std::make_shared<Swallow>();
    hook->store = store.get();
    hook->wait_for = 2;
    store->add_append_hook(hook);
    std::thread leader([&] { store->append("hold", ExpectedVersion::no_stream(), make_events(1)); });
    while (!hook->holding) std::this_thread::yield();
    std::string bad_error = "(none)";
    bool bad_transient = true;
    std::thread bad([&] {
      try {
        store->append("bad", ExpectedVersion::no_stream(), make_events(2));
      } catch (const StoreError& e) {
        bad_error = e.what();
        bad_transient = e.transient();
      }
    });
    std::thread good([&] { store->append("good", ExpectedVersion::no_stream(), make_events(2)); });
    leader.join();
    bad.join();
    good.join();
    CHECK_THAT(bad_error, Contains("append to bad") && Contains("nothing was written"));
    CHECK_FALSE(bad_transient);
    CHECK(store->group_commit_stats().max_group == 2);
    CHECK(hook->commits == 2);
    CHECK(hook->rollbacks == 1);
    CHECK(store->head_position() == 3);
    CHECK(store->stream_version("good") == 2u);
    CHECK_FALSE(store->stream_version("bad").has_value());
    CHECK(verify_log(*store).events == 3);
  }
  SECTION("a write transaction") {
    auto store = open_sql_event_store(fresh_schema("annals_smoke_swallow3"));
    store->write_transaction([](SqlSession& sql) { sql.execute("CREATE TABLE t (k INT PRIMARY KEY)"); });
    try {
      store->write_transaction([](SqlSession& sql) {
        sql.execute("INSERT INTO t VALUES (1)");
        try {
          sql.execute("INSERT INTO t VALUES (1)");
        } catch (const StoreError&) {
        }
      });
      FAIL("write_transaction returned normally");
    } catch (const StoreError& e) {
      CHECK_FALSE(e.transient());
      CHECK_THAT(e.what(), Contains("callback failed") && Contains("nothing was written"));
    }
    std::int64_t rows = -1;
    store->write_transaction([&](SqlSession& sql) {
      sql.execute("INSERT INTO t VALUES (2)");
      rows = sql.query("SELECT count(*) FROM t").front().integer(0);
    });
    CHECK(rows == 1);
  }
}

// Before the fix the store's statements named annals_events through the session's search_path
// and read the tail's hash in bytea_output's format: a SET left on the writer by a write
// transaction sent later appends to another schema's log, or failed them as "damaged hash".
TEST_CASE("pg: a SET run in a transaction or hook does not move or break the store's log",
          "[pg]") {
  auto other = open_sql_event_store(fresh_schema("annals_smoke_set_other"));
  other->append("theirs", ExpectedVersion::no_stream(), make_events(1));
  auto store = open_sql_event_store(fresh_schema("annals_smoke_set"));
  store->append("mine", ExpectedVersion::no_stream(), make_events(1));
  store->write_transaction([](SqlSession& sql) {
    sql.execute("SET search_path = annals_smoke_set_other");
    sql.execute("SET bytea_output = escape");
  });
  CHECK(store->append("mine", ExpectedVersion::exactly(1), make_events(1)).last_position == 2);
  // A write transaction starts with the store's search_path again.
  store->write_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT count(*) FROM annals_events").front().integer(0) == 2);
  });
  // A pooled reader whose read transaction ran SET reads this store's log afterwards.
  store->read_transaction([](SqlSession& sql) {
    sql.execute("SET search_path = annals_smoke_set_other");
    CHECK(sql.query("SELECT count(*) FROM annals_events").front().integer(0) == 1);
  });
  store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT count(*) FROM annals_events").front().integer(0) == 2);
  });
  CHECK(store->head_position() == 2);
  CHECK(store->read_all(1, 10).size() == 2);
  CHECK(store->stream_version("mine") == 2u);
  CHECK_FALSE(store->stream_version("theirs").has_value());
  CHECK(other->head_position() == 1);
  CHECK_FALSE(other->stream_version("mine").has_value());
  CHECK(verify_log(*store).events == 2);
  CHECK(verify_log(*other).events == 1);
}

// Before the fix next() sent FETCH on a connection already back in the pool (a data race when
// another thread had it, a use after free when the pool had closed it).
TEST_CASE("pg: a cursor used after its transaction ended is an InvalidArgument", "[pg]") {
  auto store = open_sql_event_store(fresh_schema("annals_smoke_cursor_after"));
  store->append("s", ExpectedVersion::no_stream(), make_events(3));
  std::unique_ptr<SqlCursor> kept;
  store->read_transaction([&](SqlSession& sql) {
    kept = sql.open_cursor("SELECT position FROM annals_events ORDER BY position");
  });
  SqlRow row;
  CHECK_THROWS_WITH(kept->next(row), Contains("cursor was used after its transaction ended"));
  CHECK_THROWS_AS(kept->next(row), InvalidArgument);
  kept.reset();
  CHECK(store->read_all(1, 10).size() == 3);
}

// Creating a store takes one advisory lock for the whole database; a store whose tables are
// there already is only checked at open, so it does not wait for another connection creating a
// store elsewhere (before, a short busy_timeout made such an open fail now and then).
TEST_CASE("pg: opening an existing store does not wait for the schema-creation lock", "[pg]") {
  const std::string existing = fresh_schema("annals_smoke_open_existing", "busy_timeout_ms=0");
  (void)open_sql_event_store(existing);
  const std::string empty = fresh_schema("annals_smoke_open_empty", "busy_timeout_ms=0");
  PGconn* holder = PQconnectdb(server().c_str());
  REQUIRE(PQstatus(holder) == CONNECTION_OK);
  // kSchemaLockKey of the empty store's schema (pg_event_store.cpp)
  PGresult* r =
      PQexec(holder, "SELECT pg_advisory_lock(1634627169, hashtext('annals_smoke_open_empty'))");
  const bool locked = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  CHECK(locked);
  CHECK(open_sql_event_store(existing)->head_position() == 0);
  CHECK_THROWS_WITH(open_sql_event_store(empty), Contains("another connection is creating"));
  PQfinish(holder);
  CHECK(open_sql_event_store(empty)->head_position() == 0);
}

TEST_CASE("pg: a search_path of several schemas, like the default one, works for every write",
          "[pg]") {
  // The default search_path is "$user", public: a list. Setting it back at each transaction's
  // start must keep it a list, or CREATE TABLE finds no schema to create in (3F000).
  const std::string uri = fresh_schema("annals_smoke_path_list");
  const std::string listed = uri.substr(0, uri.rfind(" options=")) +
                             " options=-csearch_path=annals_smoke_path_list,public";
  auto store = open_sql_event_store(listed);
  store->append("a", ExpectedVersion::no_stream(), make_events(2));
  store->write_transaction([](SqlSession& sql) {
    sql.execute_script("CREATE TABLE IF NOT EXISTS annals_smoke_t (n BIGINT)");
    sql.execute("INSERT INTO annals_smoke_t (n) VALUES ($1)", {std::int64_t{7}});
  });
  store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT current_schema()").front().text(0) == "annals_smoke_path_list");
    CHECK(sql.query("SELECT n FROM annals_smoke_t").front().integer(0) == 7);
  });
  CHECK(verify_log(*store).events == 2);
}
