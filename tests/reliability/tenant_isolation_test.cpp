// Tenant isolation under attack: one tenant calls every repository method with the other
// tenant's ids (run ids, app ids, pagination cursors taken from the other tenant's pages, node
// execution ids) and gets nothing (empty, nullopt, 0 or NotFound), and the database stays
// byte-for-byte as it was (support/database_image.hpp). Both directions are attacked.
//
// The tenants are made to collide wherever ids are not globally unique: both have an app named
// "shared-app" with the same trigger, and the attacker owns a node execution whose id is the
// victim's, so a query that forgot the tenant would find the victim's rows.
//
// Methods covered: WorkflowRunRepository::get_paginated_workflow_runs, get_workflow_run_by_id,
// get_expired_runs_batch, delete_runs_by_ids, delete_runs_by_app;
// CachedWorkflowRunRepository::get_workflow_run_by_id (with the victim's run cached);
// NodeExecutionRepository::get_node_executions_by_run_id, get_node_execution_by_id,
// create_node_execution, update_node_execution; AggregateRepository<WorkflowRun>::save of a
// run reusing the victim's run id, save_all with one; WorkflowRun::create with a metadata tenant
// that is not the run's. (AggregateRepository::find/load take no tenant: they are the command
// side, addressed by run id, and the caller checks state().tenant_id, as the query repositories
// above do.)

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "annals/annals.hpp"
#include "support/database_image.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::DatabaseImage;
using annals::test::difference;

namespace {

Timestamp at(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

struct Tenant {
  std::string id;
  std::string own_app;                // an app only this tenant has
  std::vector<std::string> run_ids;   // in shared-app, triggered from "debugging"
  std::vector<std::string> node_ids;  // node executions of run_ids[0]
  std::string shared_node_id;         // a node execution id both tenants use
};

constexpr const char* kShared = "shared-app";
constexpr const char* kTrigger = "debugging";

struct Fixture {
  annals::test::TempDir dir;
  std::string path = dir.file("events.db");
  RepositoryFactory factory{"sqlite:" + path + "?synchronous=normal"};
  AggregateRepository<WorkflowRun> aggregates = factory.create_workflow_run_aggregate_repository();
  WorkflowRunRepository runs = factory.create_workflow_run_repository();
  NodeExecutionRepository nodes = factory.create_node_execution_repository();
  Tenant a{"t-a", "app-a", {}, {}, "node-shared"};
  Tenant b{"t-b", "app-b", {}, {}, "node-shared"};

  Fixture() {
    for (Tenant* t : {&a, &b}) {
      for (int i = 0; i < 5; ++i) {
        const std::string id = t->id + "-run-" + std::to_string(i);
        // Both tenants' runs share created_at values, so a cursor lands amid the other's rows.
        WorkflowRun run = WorkflowRun::create(RunCreated{.run_id = id,
                                                         .tenant_id = t->id,
                                                         .app_id = kShared,
                                                         .workflow_id = "wf",
                                                         .triggered_from = kTrigger,
                                                         .created_by = "u",
                                                         .inputs = "{}",
                                                         .created_at = at(i)});
        if (i == 0) {
          run.start_node({.node_execution_id = t->shared_node_id,
                          .node_id = "start",
                          .node_type = "start",
                          .started_at = at(i)});
        }
        aggregates.save(run);
        t->run_ids.push_back(id);
      }
      WorkflowRun own = WorkflowRun::create(RunCreated{.run_id = t->id + "-own",
                                                       .tenant_id = t->id,
                                                       .app_id = t->own_app,
                                                       .workflow_id = "wf",
                                                       .triggered_from = kTrigger,
                                                       .created_by = "u",
                                                       .inputs = "{}",
                                                       .created_at = at(50)});
      aggregates.save(own);
      for (int n = 0; n < 2; ++n) {
        t->node_ids.push_back(
            nodes.create_node_execution(t->id, t->run_ids[0], "llm", "llm", "{}").id);
      }
    }
  }

  DatabaseImage image() const { return DatabaseImage::capture(path); }
};

std::vector<std::string> ids_of(const std::vector<WorkflowRunView>& views) {
  std::vector<std::string> out;
  for (const auto& v : views) out.push_back(v.id);
  return out;
}

// Every call `attacker` can make with `victim`'s ids, none of which may return or change
// anything of the victim's.
void attack(Fixture& f, WorkflowRunRepository& runs, const Tenant& attacker, const Tenant& victim) {
  const DatabaseImage before = f.image();
  INFO(attacker.id << " attacks " << victim.id);

  // Pagination: the victim's cursors, in the attacker's own list and in the victim's app.
  const auto victim_page = runs.get_paginated_workflow_runs(victim.id, kShared, kTrigger, 2);
  REQUIRE(victim_page.data.size() == 2);
  REQUIRE(victim_page.has_more);
  for (const WorkflowRunView& v : victim_page.data) {
    CHECK_THROWS_AS(runs.get_paginated_workflow_runs(attacker.id, kShared, kTrigger, 20, v.id),
                    NotFound);
    CHECK_THROWS_AS(
        runs.get_paginated_workflow_runs(attacker.id, victim.own_app, kTrigger, 20, v.id),
        NotFound);
    CHECK_THROWS_AS(
        runs.get_paginated_workflow_runs(attacker.id, attacker.own_app, kTrigger, 20, v.id),
        NotFound);
  }
  CHECK_THROWS_AS(
      runs.get_paginated_workflow_runs(attacker.id, kShared, kTrigger, 20, victim.id + "-own"),
      NotFound);
  // The attacker's own pages in the shared app hold only the attacker's runs.
  std::vector<std::string> seen;
  std::optional<std::string> cursor;
  for (;;) {
    const auto page = runs.get_paginated_workflow_runs(attacker.id, kShared, kTrigger, 2, cursor);
    for (const auto& v : page.data) {
      CHECK(v.tenant_id == attacker.id);
      seen.push_back(v.id);
    }
    if (!page.has_more) break;
    cursor = page.data.back().id;
  }
  CHECK(seen.size() == attacker.run_ids.size());
  // The victim's own app, asked for by the attacker: nothing.
  CHECK(runs.get_paginated_workflow_runs(attacker.id, victim.own_app, kTrigger).data.empty());

  // By id: the victim's runs, in every app.
  for (const std::string& id : victim.run_ids) {
    CHECK(!runs.get_workflow_run_by_id(attacker.id, kShared, id));
    CHECK(!runs.get_workflow_run_by_id(attacker.id, victim.own_app, id));
    CHECK(!runs.get_workflow_run_by_id(attacker.id, attacker.own_app, id));
  }
  CHECK(!runs.get_workflow_run_by_id(attacker.id, victim.own_app, victim.id + "-own"));

  // Expiry: only the attacker's own runs, however late the cutoff.
  for (const auto& v : runs.get_expired_runs_batch(attacker.id, Timestamp::max(), 1000)) {
    CHECK(v.tenant_id == attacker.id);
  }
  CHECK(runs.get_expired_runs_batch(attacker.id, Timestamp::max(), 1000).size() ==
        attacker.run_ids.size() + 1);

  // Deletes: the victim's ids and app are ignored and not counted.
  std::vector<std::string> victim_ids = victim.run_ids;
  victim_ids.push_back(victim.id + "-own");
  CHECK(runs.delete_runs_by_ids(attacker.id, victim_ids) == 0);
  CHECK(runs.delete_runs_by_app(attacker.id, victim.own_app) == 0);
  CHECK(runs.delete_runs_by_app(attacker.id, victim.own_app, 1) == 0);

  // Node executions.
  CHECK(f.nodes.get_node_executions_by_run_id(attacker.id, victim.run_ids[0]).empty());
  for (const std::string& id : victim.node_ids) {
    CHECK(!f.nodes.get_node_execution_by_id(attacker.id, id));
    CHECK(!f.nodes.update_node_execution(attacker.id, id, {.status = "succeeded"}));
    CHECK(
        !f.nodes.update_node_execution(attacker.id, id, {.status = "failed", .error = "sabotage"}));
  }
  // The id both use finds the attacker's own node execution, never the victim's.
  const auto shared = f.nodes.get_node_execution_by_id(attacker.id, attacker.shared_node_id);
  REQUIRE(shared);
  CHECK(shared->tenant_id == attacker.id);
  CHECK(shared->run_id == attacker.run_ids[0]);
  for (const std::string& run_id : victim.run_ids) {
    CHECK_THROWS_AS(f.nodes.create_node_execution(attacker.id, run_id, "x", "llm", "{}"), NotFound);
    CHECK_THROWS_AS(f.nodes.create_node_execution(attacker.id, run_id, "x", "llm", "{}",
                                                  R"({"o":1})", "succeeded"),
                    NotFound);
  }

  // Taking over a run id: creating the attacker's run under the victim's id is a conflict.
  WorkflowRun squat = WorkflowRun::create(RunCreated{.run_id = victim.run_ids[1],
                                                     .tenant_id = attacker.id,
                                                     .app_id = kShared,
                                                     .workflow_id = "wf",
                                                     .triggered_from = kTrigger,
                                                     .inputs = "{}",
                                                     .created_at = at(1)});
  CHECK_THROWS_AS(f.aggregates.save(squat), ConcurrencyError);
  WorkflowRun fresh = WorkflowRun::create(RunCreated{.run_id = attacker.id + "-fresh",
                                                     .tenant_id = attacker.id,
                                                     .app_id = kShared,
                                                     .workflow_id = "wf",
                                                     .triggered_from = kTrigger,
                                                     .inputs = "{}"});
  CHECK_THROWS_AS(f.aggregates.save_all({&fresh, &squat}), ConcurrencyError);  // all or nothing
  CHECK_THROWS_AS(WorkflowRun::create(RunCreated{.run_id = attacker.id + "-x",
                                                 .tenant_id = attacker.id,
                                                 .app_id = kShared,
                                                 .workflow_id = "wf",
                                                 .triggered_from = kTrigger},
                                      EventMetadata{.tenant_id = victim.id}),
                  InvalidArgument);

  CHECK(difference(before, f.image()) == "");
}

}  // namespace

TEST_CASE(
    "tenant isolation: every repository method given the other tenant's ids returns and "
    "changes nothing",
    "[reliability][tenant]") {
  Fixture f;
  SECTION("plain WorkflowRunRepository") {
    attack(f, f.runs, f.b, f.a);
    attack(f, f.runs, f.a, f.b);
  }
  SECTION("CachedWorkflowRunRepository with the victim's runs cached") {
    CachedWorkflowRunRepository cached(f.factory.create_workflow_run_repository(),
                                       f.factory.workflow_projection(), 100);
    for (const Tenant* t : {&f.a, &f.b}) {
      for (const std::string& id : t->run_ids) {
        REQUIRE(cached.get_workflow_run_by_id(t->id, kShared, id));
      }
    }
    const CacheStats warm = cached.cache_stats();
    CHECK(warm.size == 10);
    attack(f, cached, f.b, f.a);
    attack(f, cached, f.a, f.b);
    // The victims' entries were there to be hit, and still none was served to the attacker.
    CHECK(cached.cache_stats().size == 10);
    for (const Tenant* t : {&f.a, &f.b}) {
      for (const std::string& id : t->run_ids) {
        const auto view = cached.get_workflow_run_by_id(t->id, kShared, id);
        REQUIRE(view);
        CHECK(view->tenant_id == t->id);
      }
    }
  }
}

TEST_CASE(
    "tenant isolation: a tenant's own writes leave the other tenant's rows exactly as they "
    "were",
    "[reliability][tenant]") {
  Fixture f;
  auto victim_rows = [&] {
    std::vector<std::string> out;
    for (const auto& v : f.runs.get_expired_runs_batch(f.a.id, Timestamp::max(), 1000)) {
      out.push_back(v.id + "|" + v.status + "|" + std::to_string(v.version));
    }
    for (const auto& n : f.nodes.get_node_executions_by_run_id(f.a.id, f.a.run_ids[0])) {
      out.push_back(n.id + "|" + n.status + "|" + n.outputs.value_or("") + "|" +
                    n.error.value_or(""));
    }
    return out;
  };
  const auto before = victim_rows();
  const auto a_stream = f.factory.event_store()->read_stream("WorkflowRun-" + f.a.run_ids[0]);

  // B finishes its node execution with the id A also uses: only B's changes.
  const auto updated = f.nodes.update_node_execution(f.b.id, f.b.shared_node_id,
                                                     {.status = "succeeded", .outputs = "{}"});
  REQUIRE(updated);
  CHECK(updated->tenant_id == f.b.id);
  CHECK(updated->run_id == f.b.run_ids[0]);
  const auto a_shared = f.nodes.get_node_execution_by_id(f.a.id, f.a.shared_node_id);
  REQUIRE(a_shared);
  CHECK(a_shared->status == "running");
  // B deletes everything in the app both use: only B's runs go.
  CHECK(f.runs.delete_runs_by_app(f.b.id, kShared, 2) == f.b.run_ids.size());
  CHECK(f.runs.delete_runs_by_ids(f.b.id, {f.b.id + "-own", f.a.run_ids[0]}) == 1);
  CHECK(f.runs.get_paginated_workflow_runs(f.b.id, kShared, kTrigger).data.empty());

  CHECK(victim_rows() == before);
  CHECK(ids_of(f.runs.get_paginated_workflow_runs(f.a.id, kShared, kTrigger).data).size() == 5);
  const auto a_stream_after = f.factory.event_store()->read_stream("WorkflowRun-" + f.a.run_ids[0]);
  REQUIRE(a_stream_after.size() == a_stream.size());
  for (std::size_t i = 0; i < a_stream.size(); ++i)
    CHECK(a_stream_after[i].hash == a_stream[i].hash);
}
