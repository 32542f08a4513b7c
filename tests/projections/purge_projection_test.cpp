// Projections walk the log across the gaps a purge leaves, and nowhere else.

#include <catch2/catch.hpp>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/engine.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/store/hash_chain.hpp"
#include "annals/store/purge.hpp"
#include "support/backends.hpp"
#include "support/counting_projection.hpp"
#include "support/temp_dir.hpp"

using namespace annals;

namespace {

Timestamp day(int d) { return from_micros(1'700'000'000'000'000 + d * 86'400'000'000LL); }

void save_run(AggregateRepository<WorkflowRun>& runs, const std::string& id,
              const std::string& tenant, int created_day) {
  WorkflowRun run = WorkflowRun::create({.run_id = id,
                                         .tenant_id = tenant,
                                         .app_id = "app",
                                         .workflow_id = "wf",
                                         .triggered_from = "app-run",
                                         .created_at = day(created_day)});
  run.start_node({.node_execution_id = id + "-n",
                  .node_id = "n",
                  .node_type = "llm",
                  .started_at = day(created_day)});
  run.complete_node({.node_execution_id = id + "-n", .finished_at = day(created_day)});
  run.succeed({.finished_at = day(created_day)});
  runs.save(run);
}

std::int64_t count(SqlEventStore& store, const std::string& sql) {
  std::int64_t n = 0;
  store.read_transaction([&](SqlSession& s) { n = s.query(sql).front().integer(0); });
  return n;
}

}  // namespace

TEST_CASE("after a purge, projections rebuild and catch up across its gaps",
          "[projections][purge]" ANNALS_PG_TAG) {
  annals::test::TempDir dir;  // the archive
  annals::test::StorePlace place;
  auto store =
      open_sql_event_store(annals::test::store_uri(place, "events.db", "synchronous=normal"));
  auto workflow = std::make_shared<WorkflowProjection>();
  attach_inline_projections(*store, {workflow});
  AggregateRepository<WorkflowRun> runs(store);
  save_run(runs, "old-1", "t-1", 1);
  save_run(runs, "keep-1", "t-2", 1);
  save_run(runs, "old-2", "t-1", 2);
  save_run(runs, "new-1", "t-1", 30);

  const PurgeResult purged = purge_runs(
      *store, {.tenant_id = "t-1", .before = day(10), .archive_path = dir.file("archive.jsonl")});
  REQUIRE(purged.streams == 2);
  CHECK(verify_log(*store).events == 8);
  CHECK(count(*store, "SELECT count(*) FROM annals_workflow_runs") == 2);

  // The workflow tables rebuilt from the log with holes equal the live ones.
  const RebuildReport report = rebuild(*store, *workflow);
  CHECK(report.identical);
  CHECK(report.swapped);
  CHECK(count(*store, "SELECT count(*) FROM annals_workflow_runs") == 2);

  // A projection that starts from scratch walks over the holes too, in small batches.
  annals::test::CountingProjection counting;
  prepare_projection(*store, counting);
  CHECK(catch_up(*store, counting, 3) == 8);

  // Appends after the purge keep projecting inline.
  save_run(runs, "new-2", "t-1", 31);
  CHECK(count(*store, "SELECT count(*) FROM annals_workflow_runs") == 3);
  CHECK(verify_log(*store).events == 12);
}

TEST_CASE("a gap that no purge recorded still stops a projection", "[projections][purge]") {
  annals::test::TempDir dir;
  const std::string path = dir.file("events.db");
  auto store = open_sql_event_store("sqlite:" + path);
  store->append("s", ExpectedVersion::any(),
                {NewEvent{.type = "T", .payload = "{}"}, NewEvent{.type = "T", .payload = "{}"},
                 NewEvent{.type = "T", .payload = "{}"}});
  store->write_transaction([](SqlSession& sql) {
    sql.execute_script(
        "DROP TRIGGER annals_events_no_delete;"
        "DELETE FROM annals_events WHERE position = 2;");
  });
  annals::test::CountingProjection counting;
  prepare_projection(*store, counting);
  CHECK_THROWS_AS(catch_up(*store, counting), IntegrityError);
}
