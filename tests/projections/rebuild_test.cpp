// Rebuilding a projection into shadow tables and swapping them in without downtime.

#include "annals/projections/rebuild.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "annals/projections/checkpoint.hpp"
#include "annals/projections/engine.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/counting_projection.hpp"

using namespace annals;
using annals::test::CountingProjection;
using annals::test::make_event;
using Catch::Matchers::Contains;

namespace {

constexpr const char* kTable = "annals_test_counts";

std::shared_ptr<SqlEventStore> as_sql(const std::shared_ptr<EventStore>& store) {
  auto sql = std::dynamic_pointer_cast<SqlEventStore>(store);
  REQUIRE(sql != nullptr);
  return sql;
}

// Appends `count` events round-robin over `streams` streams (s-0, s-1, ...), 100 per append;
// every seventh is an "Other", the event at `special_at` (1-based within this call) a "Boom".
void fill(SqlEventStore& store, std::size_t count, std::size_t streams,
          std::size_t special_at = 0) {
  std::vector<StreamAppend> batch;
  for (std::size_t i = 1; i <= count; ++i) {
    const std::string type = i == special_at ? "Boom" : i % 7 == 0 ? "Other" : "Thing";
    batch.push_back({"s-" + std::to_string(i % streams),
                     ExpectedVersion::any(),
                     {make_event(type, "{\"i\":" + std::to_string(i) + "}")}});
    if (batch.size() == 100 || i == count) {
      store.append(std::move(batch));
      batch.clear();
    }
  }
}

// Every row of a table, in key order.
std::vector<SqlRow> rows_of(SqlEventStore& store, const std::string& table = kTable) {
  std::vector<SqlRow> rows;
  store.read_transaction(
      [&](SqlSession& sql) { rows = sql.query("SELECT * FROM " + table + " ORDER BY stream_id"); });
  return rows;
}

ProjectionCheckpoint checkpoint_of(SqlEventStore& store, const std::string& name = "test_counts") {
  std::optional<ProjectionCheckpoint> cp;
  store.read_transaction([&](SqlSession& sql) { cp = read_checkpoint(sql, name); });
  REQUIRE(cp.has_value());
  return *cp;
}

// Names of tables or indexes in the store's schema matching a GLOB pattern ('*' only), sorted.
std::vector<std::string> schema_names(SqlEventStore& store, const std::string& type,
                                      const std::string& pattern) {
  std::vector<std::string> out;
  store.read_transaction([&](SqlSession& sql) {
    std::vector<SqlRow> rows;
    if (sql.dialect() == "postgresql") {
      std::string like;  // the pattern for LIKE ... ESCAPE '!'
      for (char c : pattern) {
        if (c == '*') {
          like += '%';
        } else {
          if (c == '_' || c == '%' || c == '!') like += '!';
          like += c;
        }
      }
      rows = sql.query(type == "index" ? "SELECT indexname FROM pg_indexes WHERE schemaname ="
                                         " current_schema() AND indexname LIKE $1 ESCAPE '!'"
                                         " ORDER BY indexname COLLATE \"C\""
                                       : "SELECT tablename FROM pg_tables WHERE schemaname ="
                                         " current_schema() AND tablename LIKE $1 ESCAPE '!'"
                                         " ORDER BY tablename COLLATE \"C\"",
                       {like});
    } else {
      rows =
          sql.query("SELECT name FROM sqlite_schema WHERE type = $1 AND name GLOB $2 ORDER BY name",
                    {type, pattern});
    }
    for (const SqlRow& row : rows) out.push_back(row.text(0));
  });
  return out;
}

std::vector<std::string> shadow_tables(SqlEventStore& store) {
  return schema_names(store, "table", std::string(kTable) + "__*");
}

std::int64_t rebuilds_in_progress(SqlEventStore& store) {
  std::int64_t n = 0;
  store.read_transaction([&](SqlSession& sql) {
    if (!sql.table_exists("annals_rebuilds")) return;
    n = sql.query("SELECT COUNT(*) FROM annals_rebuilds")[0].integer(0);
  });
  return n;
}

// What a reader must always see: one row per stream counting every event the checkpoint says
// was applied, whichever tables (old or new) it reads.
bool consistent(SqlSession& sql) {
  const auto cp = read_checkpoint(sql, "test_counts");
  const auto sum = sql.query("SELECT COALESCE(SUM(events), 0) FROM annals_test_counts");
  return cp && sum[0].integer(0) == static_cast<std::int64_t>(cp->position);
}

// The counting projection with an index, named through ctx.index().
class IndexedCounting : public CountingProjection {
 public:
  using CountingProjection::CountingProjection;
  void setup(ProjectionContext& ctx) override {
    CountingProjection::setup(ctx);
    ctx.sql().execute_script("CREATE INDEX IF NOT EXISTS " +
                             ctx.index("annals_test_counts_by_type") + " ON " + ctx.table(kTable) +
                             " (last_type)");
  }
};

}  // namespace

TEMPLATE_TEST_CASE("a rebuild reproduces the incremental projection row for row",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  auto projection = std::make_shared<CountingProjection>();
  bool attached = false;
  SECTION("built inline") {
    fill(*store, 500, 37);
    attach_inline_projections(*store, {projection});
    attached = true;
    fill(*store, 2500, 53);
  }
  SECTION("built by catch_up") {
    fill(*store, 3000, 53);
    prepare_projection(*store, *projection);
    CHECK(catch_up(*store, *projection, 400) == 3000);
  }
  const std::vector<SqlRow> before = rows_of(*store);
  REQUIRE(before.size() == 53);

  const RebuildReport report = rebuild(*store, *projection, {.batch_size = 250});

  CHECK(rows_of(*store) == before);
  CHECK(report.projection == "test_counts");
  CHECK(report.identical);
  CHECK(report.swapped);
  CHECK(report.events_processed == 3000);
  CHECK(report.position == 3000);
  CHECK(report.generation == 1);
  REQUIRE(report.tables.size() == 1);
  const TableComparison& t = report.tables[0];
  CHECK(t.table == kTable);
  CHECK(t.identical());
  CHECK(t.live_rows == 53);
  CHECK(t.shadow_rows == 53);
  CHECK(t.live_checksum.size() == 16);
  CHECK(t.live_checksum == t.shadow_checksum);
  CHECK(t.first_differences.empty());

  const ProjectionCheckpoint cp = checkpoint_of(*store);
  CHECK(cp.position == 3000);
  CHECK(cp.version == 1);
  CHECK(cp.generation == 1);
  CHECK(projection->resets == 1);
  CHECK(shadow_tables(*store).empty());
  CHECK(rebuilds_in_progress(*store) == 0);

  // The rebuilt tables are the live ones now: projecting goes on from the new checkpoint.
  fill(*store, 10, 53);
  if (!attached) catch_up(*store, *projection);
  CHECK(checkpoint_of(*store).position == 3010);
  CHECK(rows_of(*store).size() == 53);
}

TEMPLATE_TEST_CASE("a version bump makes attach_inline_projections rebuild",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 1200, 20);
  CountingProjection v1("test_counts", 1);
  prepare_projection(*store, v1);
  catch_up(*store, v1);
  const std::vector<SqlRow> before = rows_of(*store);

  auto v2 = std::make_shared<CountingProjection>("test_counts", 2);
  attach_inline_projections(*store, {v2});

  const ProjectionCheckpoint cp = checkpoint_of(*store);
  CHECK(cp.version == 2);
  CHECK(cp.generation == 1);
  CHECK(cp.position == 1200);
  CHECK(v2->resets == 1);
  CHECK(rows_of(*store) == before);
  CHECK(shadow_tables(*store).empty());

  store->append("s-new", ExpectedVersion::no_stream(), {make_event()});  // inline, version 2
  CHECK(rows_of(*store).size() == 21);
  CHECK(checkpoint_of(*store).position == 1201);
}

TEMPLATE_TEST_CASE("a rebuild finds a tampered live table and the swap repairs it",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 1000, 10);
  CountingProjection projection;
  prepare_projection(*store, projection);
  catch_up(*store, projection);
  const std::vector<SqlRow> good = rows_of(*store);
  store->write_transaction([](SqlSession& sql) {
    sql.execute("UPDATE annals_test_counts SET events = 99 WHERE stream_id = 's-7'");
    sql.execute("DELETE FROM annals_test_counts WHERE stream_id = 's-3'");
    sql.execute(
        "INSERT INTO annals_test_counts (stream_id, events, last_type, last_position)"
        " VALUES ('zz-ghost', 1, 'Thing', 1)");
  });
  const std::vector<SqlRow> tampered = rows_of(*store);
  const std::vector<std::string> expected_differences{"stream_id=s-3: only in shadow",
                                                      "stream_id=s-7: differs",
                                                      "stream_id=zz-ghost: only in live"};

  SECTION("kept when told not to swap a different table") {
    const RebuildReport report =
        rebuild(*store, projection, {.batch_size = 300, .swap_when_different = false});
    CHECK_FALSE(report.identical);
    CHECK_FALSE(report.swapped);
    CHECK(report.generation == 0);
    REQUIRE(report.tables.size() == 1);
    const TableComparison& t = report.tables[0];
    CHECK_FALSE(t.identical());
    CHECK(t.live_rows == 10);
    CHECK(t.shadow_rows == 10);
    CHECK(t.live_checksum != t.shadow_checksum);
    CHECK(t.first_differences == expected_differences);
    CHECK(rows_of(*store) == tampered);
    CHECK(checkpoint_of(*store).generation == 0);
    CHECK(projection.resets == 0);
    CHECK(shadow_tables(*store).empty());
  }
  SECTION("differences reported up to the limit") {
    const RebuildReport report =
        rebuild(*store, projection, {.swap_when_different = false, .max_reported_differences = 2});
    REQUIRE(report.tables.size() == 1);
    CHECK(report.tables[0].first_differences ==
          std::vector<std::string>(expected_differences.begin(), expected_differences.begin() + 2));
  }
  SECTION("repaired by default") {
    const RebuildReport report = rebuild(*store, projection);
    CHECK_FALSE(report.identical);
    CHECK(report.swapped);
    CHECK(report.generation == 1);
    REQUIRE(report.tables.size() == 1);
    CHECK(report.tables[0].first_differences == expected_differences);
    CHECK(rows_of(*store) == good);
    CHECK(checkpoint_of(*store).generation == 1);
    CHECK(projection.resets == 1);
    // And the next comparison finds nothing.
    CHECK(rebuild(*store, projection).identical);
  }
  SECTION("not compared when compare is off") {
    const RebuildReport report = rebuild(*store, projection, {.compare = false});
    CHECK(report.tables.empty());
    CHECK(report.identical);
    CHECK(report.swapped);
    CHECK(rows_of(*store) == good);
  }
}

TEMPLATE_TEST_CASE("readers see complete old data during a rebuild and appends reach the new",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 2000, 40);
  auto projection = std::make_shared<CountingProjection>();
  attach_inline_projections(*store, {projection});
  const std::vector<SqlRow> before = rows_of(*store);

  int reports = 0;
  bool complete = true;
  const RebuildReport report = rebuild(
      *store, *projection, {.batch_size = 300, .on_progress = [&](const RebuildProgress& p) {
                              if (p.processed >= p.total) return;  // the final report
                              ++reports;
                              store->read_transaction([&](SqlSession& sql) {
                                complete = complete && consistent(sql);
                                const auto n = sql.query("SELECT COUNT(*) FROM annals_test_counts");
                                complete = complete && n[0].integer(0) >= 40;
                              });
                              if (reports == 1) complete = complete && rows_of(*store) == before;
                              // Appended while the shadow is behind: the final catch-up applies
                              // them.
                              store->append("during-" + std::to_string(reports),
                                            ExpectedVersion::any(), {make_event(), make_event()});
                            }});
  CHECK(reports >= 5);
  CHECK(complete);
  CHECK(report.identical);  // the inline projection kept the live tables right meanwhile
  CHECK(report.position == store->head_position());
  CHECK(report.position == 2000 + 2 * static_cast<std::uint64_t>(reports));

  const std::vector<SqlRow> after = rows_of(*store);
  CHECK(after.size() == 40 + static_cast<std::size_t>(reports));
  std::int64_t during = 0;
  for (const SqlRow& row : after) {
    if (row.text(0).starts_with("during-")) during += row.integer(1);
  }
  CHECK(during == 2 * reports);
  CHECK(checkpoint_of(*store).position == report.position);

  // Inline projection continues on the swapped tables.
  store->append("later", ExpectedVersion::no_stream(), {make_event()});
  CHECK(rows_of(*store).size() == 41 + static_cast<std::size_t>(reports));
}

TEMPLATE_TEST_CASE("a reader thread never sees partial tables across a rebuild's swap",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 1500, 30);
  auto projection = std::make_shared<CountingProjection>();
  attach_inline_projections(*store, {projection});

  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::string error;
  std::thread reader([&] {
    try {
      do {
        store->read_transaction([&](SqlSession& sql) {
          if (!consistent(sql)) ++bad;
          if (sql.query("SELECT COUNT(*) FROM annals_test_counts")[0].integer(0) < 30) ++bad;
        });
        ++reads;
      } while (!done);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  for (int i = 0; i < 3; ++i) {
    rebuild(*store, *projection, {.batch_size = 100, .on_progress = [&](const RebuildProgress&) {
                                    store->append("s-1", ExpectedVersion::any(), {make_event()});
                                  }});
  }
  done = true;
  reader.join();
  CHECK(error.empty());
  CHECK(reads > 0);
  CHECK(bad == 0);
  CHECK(checkpoint_of(*store).generation == 3);
}

TEMPLATE_TEST_CASE("a failing rebuild leaves the live tables and checkpoint untouched",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 2000, 25);
  CountingProjection live;
  prepare_projection(*store, live);
  catch_up(*store, live);
  const std::vector<SqlRow> before = rows_of(*store);
  const ProjectionCheckpoint cp_before = checkpoint_of(*store);

  CountingProjection failing;
  failing.fail_on_type = "Boom";
  SECTION("in a replay batch") {
    fill(*store, 1000, 25, /*special_at=*/400);  // position 2400: after some batches committed
    int reports = 0;
    CHECK_THROWS_WITH(
        rebuild(*store, failing,
                {.batch_size = 100, .on_progress = [&](const RebuildProgress&) { ++reports; }}),
        Contains("told to fail on Boom at position 2400"));
    CHECK(reports >= 20);  // the shadow tables had rows when it failed
  }
  SECTION("in the final transaction") {
    // 2000 events in batches of 300: the report after the partial seventh batch is the last
    // before the final transaction, so an event appended there is first read in that one.
    bool appended = false;
    CHECK_THROWS_WITH(rebuild(*store, failing,
                              {.batch_size = 300,
                               .on_progress =
                                   [&](const RebuildProgress& p) {
                                     if (appended || p.processed < 2000) return;
                                     appended = true;
                                     fill(*store, 1, 25, 1);
                                   }}),
                      Contains("told to fail on Boom at position 2001"));
    CHECK(appended);
  }
  SECTION("in the progress callback") {
    CHECK_THROWS_WITH(
        rebuild(*store, live,
                {.batch_size = 500,
                 .on_progress =
                     [](const RebuildProgress&) { throw std::runtime_error("caller gave up"); }}),
        Contains("caller gave up"));
  }
  SECTION("with a batch size of zero") {
    CHECK_THROWS_AS(rebuild(*store, live, {.batch_size = 0}), InvalidArgument);
  }
  CHECK(rows_of(*store) == before);
  CHECK(checkpoint_of(*store) == cp_before);
  CHECK(rebuilds_in_progress(*store) == 0);
  CHECK(shadow_tables(*store).empty());
  CHECK(failing.resets == 0);
  CHECK(live.resets == 0);

  // The next rebuild takes the generation the failed one would have had.
  const RebuildReport report = rebuild(*store, live);
  CHECK(report.generation == 1);
  CHECK(report.swapped);
  CHECK(shadow_tables(*store).empty());
}

TEMPLATE_TEST_CASE("rebuild progress is monotonic and ends at the total", "[projections][rebuild]",
                   ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 1050, 10);
  CountingProjection projection;
  std::vector<RebuildProgress> seen;
  const RebuildReport report = rebuild(
      *store, projection,
      {.batch_size = 100, .on_progress = [&](const RebuildProgress& p) { seen.push_back(p); }});
  REQUIRE(seen.size() >= 11);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].processed <= seen[i].total);
    CHECK(seen[i].events_per_second >= 0);
    CHECK(seen[i].eta.count() >= 0);
    if (i > 0) {
      CHECK(seen[i].processed >= seen[i - 1].processed);
      CHECK(seen[i].total >= seen[i - 1].total);
    }
  }
  CHECK(seen.front().processed == 100);
  CHECK(seen.back().processed == 1050);
  CHECK(seen.back().total == 1050);
  CHECK(seen.back().eta.count() == 0);
  CHECK(report.events_processed == 1050);
}

TEMPLATE_TEST_CASE("rebuilds in a row take new generations with unique index names",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 600, 12);
  auto projection = std::make_shared<IndexedCounting>();
  attach_inline_projections(*store, {projection});
  const std::vector<SqlRow> before = rows_of(*store);
  CHECK(schema_names(*store, "index", "annals_test_counts_by_type*") ==
        std::vector<std::string>{"annals_test_counts_by_type"});

  for (std::uint64_t generation = 1; generation <= 3; ++generation) {
    const RebuildReport report = rebuild(*store, *projection, {.batch_size = 128});
    CHECK(report.generation == generation);
    CHECK(report.identical);
    CHECK(checkpoint_of(*store).generation == generation);
    CHECK(schema_names(*store, "index", "annals_test_counts_by_type*") ==
          std::vector<std::string>{"annals_test_counts_by_type__g" + std::to_string(generation)});
    CHECK(rows_of(*store) == before);
  }
  CHECK(schema_names(*store, "table", "annals_test_counts*") == std::vector<std::string>{kTable});
  CHECK(projection->resets == 3);
}

TEMPLATE_TEST_CASE("an empty log rebuilds to empty tables", "[projections][rebuild]",
                   ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  CountingProjection projection;  // never ran: rebuild sets it up
  const RebuildReport report = rebuild(*store, projection);
  CHECK(report.position == 0);
  CHECK(report.identical);
  CHECK(report.swapped);
  CHECK(rows_of(*store).empty());
  CHECK(checkpoint_of(*store).generation == 1);
}

TEST_CASE("a second rebuild of the same projection takes over from the first",
          "[projections][rebuild]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = as_sql(backend.open());
  fill(*store, 1000, 10);
  CountingProjection projection;
  prepare_projection(*store, projection);
  catch_up(*store, projection);
  const std::vector<SqlRow> before = rows_of(*store);

  CountingProjection first, second;
  RebuildReport inner;
  CHECK_THROWS_AS(rebuild(*store, first,
                          {.batch_size = 100,
                           .on_progress =
                               [&](const RebuildProgress& p) {
                                 if (p.processed == 100) {
                                   inner = rebuild(*store, second);
                                 }
                               }}),
                  ConcurrencyError);
  CHECK(inner.swapped);
  CHECK(inner.generation == 1);
  CHECK(rows_of(*store) == before);  // the first gave up without touching the second's tables
  CHECK(checkpoint_of(*store).generation == 1);
  CHECK(shadow_tables(*store).empty());
  CHECK(rebuilds_in_progress(*store) == 0);
}

TEST_CASE("a host application's view over a live table survives the swap",
          "[projections][rebuild]" ANNALS_PG_TAG) {
  annals::test::PersistentBackend backend;
  auto store = as_sql(backend.open());
  fill(*store, 300, 5);
  CountingProjection projection;
  prepare_projection(*store, projection);
  catch_up(*store, projection);
  store->write_transaction([](SqlSession& sql) {
    sql.execute_script(
        "CREATE VIEW app_busy_streams AS SELECT stream_id FROM annals_test_counts"
        " WHERE events > 10");
  });
  rebuild(*store, projection);
  rebuild(*store, projection);
  store->read_transaction([](SqlSession& sql) {
    CHECK(sql.query("SELECT COUNT(*) FROM app_busy_streams")[0].integer(0) == 5);
  });
}

TEMPLATE_TEST_CASE("a rebuild drops the shadow tables a crashed rebuild left behind",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 400, 8);
  CountingProjection projection;
  prepare_projection(*store, projection);
  catch_up(*store, projection);
  const std::vector<SqlRow> before = rows_of(*store);
  store->write_transaction([](SqlSession& sql) {  // as a crash after a few batches leaves it
    sql.execute_script(
        "CREATE TABLE annals_test_counts__g1 (stream_id TEXT PRIMARY KEY,"
        " events INTEGER NOT NULL, last_type TEXT NOT NULL, last_position INTEGER NOT NULL);"
        "INSERT INTO annals_test_counts__g1 VALUES ('s-1', 1000, 'Thing', 1)");
  });

  const RebuildReport report = rebuild(*store, projection);
  CHECK(report.identical);
  CHECK(report.generation == 1);
  CHECK(rows_of(*store) == before);
  CHECK(shadow_tables(*store).empty());
}

namespace {

// Version 2 of the counting projection, with a new column.
class CountingWithNote : public CountingProjection {
 public:
  CountingWithNote() : CountingProjection("test_counts", 2) {}
  void setup(ProjectionContext& ctx) override {
    ctx.sql().execute_script(
        "CREATE TABLE IF NOT EXISTS " + ctx.table(kTable) +
        " (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL,"
        " last_type TEXT NOT NULL, last_position INTEGER NOT NULL, note TEXT)");
  }
};

// Names a key column its table does not have.
class BadKey : public CountingProjection {
 public:
  std::vector<ProjectionTable> tables() const override { return {{kTable, {"nope"}}}; }
};

}  // namespace

TEMPLATE_TEST_CASE("a rebuild into new columns reports them and swaps them in",
                   "[projections][rebuild]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = as_sql(backend.open());
  fill(*store, 300, 6);
  CountingProjection v1;
  prepare_projection(*store, v1);
  catch_up(*store, v1);

  CountingWithNote v2;
  const RebuildReport report = rebuild(*store, v2);
  CHECK_FALSE(report.identical);
  CHECK(report.swapped);
  REQUIRE(report.tables.size() == 1);
  CHECK(report.tables[0].live_rows == 6);
  CHECK(report.tables[0].shadow_rows == 6);
  CHECK(report.tables[0].first_differences ==
        std::vector<std::string>{"columns differ: live (stream_id, events, last_type,"
                                 " last_position), shadow (stream_id, events, last_type,"
                                 " last_position, note)"});
  CHECK(rows_of(*store).at(0).size() == 5);
  CHECK(checkpoint_of(*store).version == 2);
}

TEST_CASE("a rebuild refuses a key column the table lacks before replaying",
          "[projections][rebuild]") {
  annals::test::MemoryBackend backend;
  auto store = as_sql(backend.open());
  fill(*store, 100, 3);
  BadKey projection;
  CHECK_THROWS_WITH(rebuild(*store, projection),
                    Contains("key column nope of annals_test_counts is not a column"));
  CHECK(projection.applied == 0);
  CHECK(shadow_tables(*store).empty());
  CHECK(rebuilds_in_progress(*store) == 0);
}
