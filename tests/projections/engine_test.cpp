// The projection engine: checkpoints move with rows, inline projections run inside appends.

#include "annals/projections/engine.hpp"

#include <catch2/catch.hpp>

#include "annals/projections/rebuild.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/counting_projection.hpp"

using namespace annals;
using annals::test::CountingProjection;
using annals::test::make_event;
using annals::test::make_events;
using Catch::Matchers::Contains;

namespace {

std::shared_ptr<SqlEventStore> as_sql(const std::shared_ptr<EventStore>& store) {
  auto sql = std::dynamic_pointer_cast<SqlEventStore>(store);
  REQUIRE(sql != nullptr);
  return sql;
}

// (stream_id, events) rows of the counting projection's live table, in key order.
std::vector<std::pair<std::string, std::int64_t>> counts(SqlEventStore& store) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row :
         sql.query("SELECT stream_id, events FROM annals_test_counts ORDER BY stream_id")) {
      out.emplace_back(row.text(0), row.integer(1));
    }
  });
  return out;
}

ProjectionCheckpoint checkpoint_of(SqlEventStore& store, const std::string& name) {
  std::optional<ProjectionCheckpoint> cp;
  store.read_transaction([&](SqlSession& sql) { cp = read_checkpoint(sql, name); });
  REQUIRE(cp.has_value());
  return *cp;
}

}  // namespace

TEMPLATE_TEST_CASE("an inline projection's rows are readable right after the append",
                   "[projections][inline]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  store->append("early", ExpectedVersion::any(), make_events(3));  // before attaching
  auto projection = std::make_shared<CountingProjection>();
  attach_inline_projections(*store, {projection});
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"early", 3}});

  store->append("a", ExpectedVersion::no_stream(), make_events(2));
  CHECK(counts(*store) ==
        std::vector<std::pair<std::string, std::int64_t>>{{"a", 2}, {"early", 3}});
  CHECK(checkpoint_of(*store, "test_counts").position == 5);
  CHECK(projection->committed_events == 5);
}

TEST_CASE("an inline projection that throws rolls the append back",
          "[projections][inline]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = as_sql(backend.open());
  auto projection = std::make_shared<CountingProjection>();
  attach_inline_projections(*store, {projection});
  store->append("s", ExpectedVersion::no_stream(), make_events(2));

  projection->fail_on_type = "Poison";
  CHECK_THROWS_WITH(
      store->append("s", ExpectedVersion::exactly(2), {make_event(), make_event("Poison")}),
      Contains("fail on Poison"));
  CHECK(store->head_position() == 2);
  CHECK(store->stream_version("s") == 2u);
  CHECK(checkpoint_of(*store, "test_counts").position == 2);
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"s", 2}});

  projection->fail_on_type.clear();
  CHECK(store->append("s", ExpectedVersion::exactly(2), make_events(1)).first_position == 3);
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"s", 3}});
}

TEST_CASE("appends by a store object without the hook are applied by the next hooked append",
          "[projections][inline]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto hooked = as_sql(backend.open());
  attach_inline_projections(*hooked, {std::make_shared<CountingProjection>()});
  auto plain = open_event_store(backend.uri);  // like another process without projections
  plain->append("other", ExpectedVersion::any(), make_events(4));
  CHECK(checkpoint_of(*hooked, "test_counts").position == 0);

  hooked->append("mine", ExpectedVersion::any(), make_events(1));
  CHECK(checkpoint_of(*hooked, "test_counts").position == 5);
  CHECK(counts(*hooked) ==
        std::vector<std::pair<std::string, std::int64_t>>{{"mine", 1}, {"other", 4}});
}

TEST_CASE("catch_up applies the log in batches, each with its checkpoint",
          "[projections]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = as_sql(backend.open("synchronous=normal"));
  for (int i = 0; i < 25; ++i)
    store->append("s-" + std::to_string(i % 4), ExpectedVersion::any(), make_events(3));
  CountingProjection projection;
  prepare_projection(*store, projection);
  CHECK(catch_up(*store, projection, 10) == 75);
  CHECK(checkpoint_of(*store, "test_counts").position == 75);
  CHECK(catch_up(*store, projection, 10) == 0);
  std::int64_t total = 0;
  for (const auto& [stream, n] : counts(*store)) total += n;
  CHECK(total == 75);
  CHECK_THROWS_AS(catch_up(*store, projection, 0), InvalidArgument);
}

TEST_CASE("a failing batch leaves rows and checkpoint of the batch before",
          "[projections]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = as_sql(backend.open());
  store->append("a", ExpectedVersion::any(), make_events(10));
  store->append("b", ExpectedVersion::any(), {make_event("Poison")});
  store->append("c", ExpectedVersion::any(), make_events(5));
  CountingProjection projection;
  prepare_projection(*store, projection);
  projection.fail_on_type = "Poison";
  CHECK_THROWS_WITH(catch_up(*store, projection, 4), Contains("position 11"));
  CHECK(checkpoint_of(*store, "test_counts").position == 8);  // two whole batches of 4
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"a", 8}});

  projection.fail_on_type.clear();
  CHECK(catch_up(*store, projection, 4) == 8);
  CHECK(counts(*store) ==
        std::vector<std::pair<std::string, std::int64_t>>{{"a", 10}, {"b", 1}, {"c", 5}});
}

TEST_CASE("events that do not follow the checkpoint are refused", "[projections]") {
  auto store = as_sql(open_event_store("memory:"));
  store->append("s", ExpectedVersion::any(), make_events(3));
  CountingProjection projection;
  prepare_projection(*store, projection);
  store->write_transaction([&](SqlSession& sql) {
    ProjectionContext ctx(sql);
    const auto events = read_events(sql, 2, 10);  // skips position 1
    CHECK_THROWS_AS(
        apply_events(projection, ctx, ProjectionCheckpoint{"test_counts", 1, 0, 0, {}}, events),
        IntegrityError);
  });
}

TEST_CASE("attaching checks its projections", "[projections][inline]") {
  auto store = as_sql(open_event_store("memory:"));
  auto p = std::make_shared<CountingProjection>();
  CHECK_THROWS_WITH(attach_inline_projections(*store, {p, std::make_shared<CountingProjection>()}),
                    Contains("test_counts is given twice"));
  CHECK_THROWS_AS(attach_inline_projections(*store, {nullptr}), InvalidArgument);
}

TEST_CASE("catch_up refuses tables written by another projection version", "[projections]") {
  auto store = as_sql(open_event_store("memory:"));
  CountingProjection v1("test_counts", 1);
  prepare_projection(*store, v1);
  CountingProjection v2("test_counts", 2);
  CHECK_THROWS_WITH(catch_up(*store, v2), Contains("version 1") && Contains("rebuild"));
}

TEST_CASE("catch_up of a projection never prepared says so and writes nothing", "[projections]") {
  auto store = as_sql(open_event_store("memory:"));
  store->append("s", ExpectedVersion::any(), make_events(3));
  CountingProjection projection;
  // No checkpoint table at all yet.
  CHECK_THROWS_MATCHES(catch_up(*store, projection), InvalidArgument,
                       Catch::Matchers::Message(
                           "catch_up test_counts: the projection has no checkpoint and no tables "
                           "in this store; call prepare_projection (or rebuild) first"));
  // The checkpoint table exists (another projection was prepared), this one's row does not.
  CountingProjection other("test_other_counts", 1);
  prepare_projection(*store, other);
  CHECK_THROWS_WITH(catch_up(*store, projection), Contains("call prepare_projection"));
  store->read_transaction(
      [&](SqlSession& sql) { CHECK_FALSE(read_checkpoint(sql, "test_counts").has_value()); });
  CHECK(counts(*store).empty());
  prepare_projection(*store, projection);
  CHECK(catch_up(*store, projection) == 3);
}

TEST_CASE("read tables dropped by hand are rebuilt from the log on the next attach",
          "[projections][inline]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  {
    auto store = as_sql(backend.open());
    attach_inline_projections(*store, {std::make_shared<CountingProjection>()});
    store->append("a", ExpectedVersion::any(), make_events(3));
    store->write_transaction(
        [](SqlSession& sql) { sql.execute_script("DROP TABLE annals_test_counts"); });
  }
  auto store = as_sql(backend.reopen());
  CHECK_FALSE(live_tables_exist(*store, CountingProjection{}));
  attach_inline_projections(*store, {std::make_shared<CountingProjection>()});
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"a", 3}});
}

TEST_CASE("re-attaching after a rebuild does not duplicate indexes",
          "[projections][inline]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  {
    auto store = as_sql(backend.open());
    attach_inline_projections(*store, {std::make_shared<CountingProjection>("test_counts", 1)});
    store->append("a", ExpectedVersion::any(), make_events(2));
  }
  {
    auto store = as_sql(backend.reopen());  // version 2: rebuilt on attach
    attach_inline_projections(*store, {std::make_shared<CountingProjection>("test_counts", 2)});
  }
  auto store = as_sql(backend.reopen());
  attach_inline_projections(*store, {std::make_shared<CountingProjection>("test_counts", 2)});
  store->read_transaction([](SqlSession& sql) {
    // the table's own primary-key index only: no second copy made by setup() running again
    CHECK(sql.query(sql.dialect() == "postgresql"
                        ? "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                          " AND tablename = 'annals_test_counts'"
                        : "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
                          "tbl_name = 'annals_test_counts'")
              .front()
              .integer(0) == 1);
    CHECK(read_checkpoint(sql, "test_counts")->generation == 1);
  });
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"a", 2}});
}

TEST_CASE("a failed rebuild after a table was dropped loses nothing",
          "[projections][rebuild]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  {
    auto store = as_sql(backend.open());
    attach_inline_projections(*store, {std::make_shared<CountingProjection>()});
    store->append("a", ExpectedVersion::any(), make_events(5));
    store->write_transaction(
        [](SqlSession& sql) { sql.execute_script("DROP TABLE annals_test_counts"); });
    CountingProjection projection;
    RebuildOptions options;
    options.on_progress = [](const RebuildProgress&) { throw std::runtime_error("interrupted"); };
    CHECK_THROWS_WITH(rebuild(*store, projection, options), Contains("interrupted"));
    CHECK_FALSE(live_tables_exist(*store, projection));  // not re-created empty
  }
  auto store = as_sql(backend.reopen());
  attach_inline_projections(*store, {std::make_shared<CountingProjection>()});
  CHECK(counts(*store) == std::vector<std::pair<std::string, std::int64_t>>{{"a", 5}});
}
