// WorkflowRunRepository: keyset pagination, by-id and expiry queries, deletes as RunDeleted
// events, and tenant isolation against adversarial arguments.

#include "annals/repositories/workflow_run_repository.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <set>
#include <thread>

#include "annals/projections/engine.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "support/counting_projection.hpp"
#include "support/factories.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::MemoryFactory;
using annals::test::SqliteFactory;
using Catch::Matchers::Contains;

namespace {

Timestamp at(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

struct RunSpec {
  std::string id;
  std::string tenant = "t-1";
  std::string app = "app-1";
  std::string trigger = "debugging";
  Timestamp created_at = at(0);
};

WorkflowRun make_run(const RunSpec& spec) {
  return WorkflowRun::create(RunCreated{.run_id = spec.id,
                                        .tenant_id = spec.tenant,
                                        .app_id = spec.app,
                                        .workflow_id = "wf-1",
                                        .triggered_from = spec.trigger,
                                        .created_by = "alice",
                                        .inputs = "{}",
                                        .created_at = spec.created_at});
}

// Saves the runs in batch appends of up to 500 runs.
void save_runs(AggregateRepository<WorkflowRun>& repo, std::vector<WorkflowRun>& runs) {
  for (std::size_t first = 0; first < runs.size(); first += 500) {
    std::vector<WorkflowRun*> batch;
    for (std::size_t i = first; i < std::min(runs.size(), first + 500); ++i) {
      batch.push_back(&runs[i]);
    }
    repo.save_all(batch);
  }
}

// Ids that sort nothing like creation order.
std::string scrambled_id(std::uint32_t i) {
  const std::uint32_t h = i * 2654435761u;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return std::string("run-") + buf + "-" + std::to_string(i);
}

bool newer_first(const WorkflowRunView& a, const WorkflowRunView& b) {
  return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
}

// Pages through the list with `page_size`, checking has_more on every page; returns all rows.
std::vector<WorkflowRunView> page_through(const WorkflowRunRepository& repo,
                                          const std::string& tenant, const std::string& app,
                                          const std::string& trigger, std::size_t page_size,
                                          std::size_t expected_total) {
  std::vector<WorkflowRunView> all;
  std::optional<std::string> last_id;
  for (;;) {
    const auto page = repo.get_paginated_workflow_runs(tenant, app, trigger, page_size, last_id);
    REQUIRE(page.limit == page_size);
    REQUIRE(page.data.size() <= page_size);
    all.insert(all.end(), page.data.begin(), page.data.end());
    REQUIRE(page.has_more == (all.size() < expected_total));
    if (!page.has_more) break;
    REQUIRE(page.data.size() == page_size);
    last_id = page.data.back().id;
  }
  return all;
}

}  // namespace

TEMPLATE_TEST_CASE("paging through thousands of runs returns each exactly once, in order",
                   "[repositories][pagination]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  const WorkflowRunRepository repo = factory.create_workflow_run_repository();

  // 2400 runs in the list: a third share one created_at, the rest spread over 40 values; their
  // ids are unrelated to time. Noise in other tenants, apps and triggers at the same times.
  std::vector<WorkflowRun> runs;
  std::vector<WorkflowRunView> expected;
  for (std::uint32_t i = 0; i < 2400; ++i) {
    const Timestamp t = i % 3 == 0 ? at(1000) : at(i % 40);
    runs.push_back(make_run({.id = scrambled_id(i), .created_at = t}));
    expected.push_back(workflow_run_view(runs.back()));
  }
  for (std::uint32_t i = 0; i < 300; ++i) {
    const Timestamp t = at(1000 - i % 2);
    runs.push_back(
        make_run({.id = "other-tenant-" + std::to_string(i), .tenant = "t-2", .created_at = t}));
    runs.push_back(
        make_run({.id = "other-app-" + std::to_string(i), .app = "app-2", .created_at = t}));
    runs.push_back(make_run(
        {.id = "other-trigger-" + std::to_string(i), .trigger = "app-run", .created_at = t}));
  }
  save_runs(aggregates, runs);
  std::sort(expected.begin(), expected.end(), newer_first);

  for (std::size_t page_size : {7u, 13u, 97u, 1000u}) {
    INFO("page size " << page_size);
    const auto all = page_through(repo, "t-1", "app-1", "debugging", page_size, expected.size());
    REQUIRE(all.size() == expected.size());
    CHECK(all == expected);
  }
  // Page size 1 over the 800 runs that share one created_at and the ones just after them.
  {
    std::optional<std::string> last_id;
    std::size_t seen = 0;
    while (seen < 900) {
      const auto page = repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1, last_id);
      REQUIRE(page.data.size() == 1);
      REQUIRE(page.data[0].id == expected[seen].id);
      REQUIRE(page.has_more);
      last_id = page.data[0].id;
      ++seen;
    }
  }
  // The last page exactly full: has_more is false.
  const auto tail = repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 5,
                                                     expected[expected.size() - 6].id);
  CHECK(tail.data.size() == 5);
  CHECK_FALSE(tail.has_more);
}

TEST_CASE("an empty list is one empty page without more", "[repositories][pagination]") {
  RepositoryFactory factory("memory:");
  const auto page = factory.create_workflow_run_repository().get_paginated_workflow_runs(
      "t-1", "app-1", "debugging");
  CHECK(page.data.empty());
  CHECK(page.limit == 20);
  CHECK_FALSE(page.has_more);
}

TEST_CASE("limit outside 1..1000 is an InvalidArgument naming the value",
          "[repositories][pagination]") {
  RepositoryFactory factory("memory:");
  const auto repo = factory.create_workflow_run_repository();
  CHECK_THROWS_MATCHES(
      repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 0), InvalidArgument,
      Catch::Matchers::Message("get_paginated_workflow_runs: limit 0 is outside 1..1000"));
  CHECK_THROWS_WITH(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1001),
                    Contains("limit 1001"));
  CHECK_THROWS_AS(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", SIZE_MAX),
                  InvalidArgument);
  CHECK_NOTHROW(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1));
  CHECK_NOTHROW(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 1000));
}

TEMPLATE_TEST_CASE("a last_id that is unknown, deleted or from another list is NotFound",
                   "[repositories][pagination][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  std::vector<WorkflowRun> runs;
  runs.push_back(make_run({.id = "mine"}));
  runs.push_back(make_run({.id = "deleted"}));
  runs.push_back(make_run({.id = "theirs", .tenant = "t-2"}));
  runs.push_back(make_run({.id = "other-app", .app = "app-2"}));
  runs.push_back(make_run({.id = "other-trigger", .trigger = "app-run"}));
  save_runs(aggregates, runs);
  REQUIRE(repo.delete_runs_by_ids("t-1", {"deleted"}) == 1);

  CHECK_NOTHROW(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 10, "mine"));
  for (const char* last_id :
       {"unknown", "deleted", "theirs", "other-app", "other-trigger", "", "'; DROP TABLE x; --"}) {
    INFO(last_id);
    CHECK_THROWS_AS(
        repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 10, std::string(last_id)),
        NotFound);
  }
  // The owner of "theirs" pages past it normally.
  CHECK(repo.get_paginated_workflow_runs("t-2", "app-1", "debugging", 10, "theirs").data.empty());
  CHECK_THROWS_WITH(repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 10, "theirs"),
                    Contains("last_id 'theirs'"));
}

TEMPLATE_TEST_CASE("runs saved by another thread while paging never duplicate a row",
                   "[repositories][pagination][concurrency]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  const auto repo = factory.create_workflow_run_repository();
  std::vector<WorkflowRun> runs;
  std::set<std::string> original;
  for (std::uint32_t i = 0; i < 1200; ++i) {
    runs.push_back(make_run({.id = scrambled_id(i), .created_at = at(i % 5)}));
    original.insert(runs.back().id());
  }
  save_runs(aggregates, runs);

  std::atomic<bool> stop{false};
  std::atomic<int> inserted{0};
  std::thread writer([&] {
    auto writer_repo = factory.create_workflow_run_aggregate_repository();
    for (std::uint32_t i = 0; !stop && i < 400; ++i) {
      // Newer runs, some sharing a created_at with each other and with the newest originals.
      WorkflowRun run = make_run({.id = "new-" + scrambled_id(i), .created_at = at(4 + i / 50)});
      writer_repo.save(run);
      ++inserted;
    }
  });
  // Page only once the writer is under way, so the two really overlap.
  while (inserted < 5) std::this_thread::yield();
  std::vector<WorkflowRunView> all;
  std::optional<std::string> last_id;
  for (;;) {
    const auto page = repo.get_paginated_workflow_runs("t-1", "app-1", "debugging", 11, last_id);
    all.insert(all.end(), page.data.begin(), page.data.end());
    if (!page.has_more) break;
    last_id = page.data.back().id;
  }
  stop = true;
  writer.join();

  std::set<std::string> ids;
  for (const auto& view : all) CHECK(ids.insert(view.id).second);  // no duplicates
  CHECK(std::is_sorted(all.begin(), all.end(), newer_first));
  for (std::size_t i = 1; i < all.size(); ++i) {
    REQUIRE(newer_first(all[i - 1], all[i]));  // strictly descending
  }
  for (const std::string& id : original) CHECK(ids.count(id) == 1);  // none skipped
  CHECK(inserted > 0);
}

TEMPLATE_TEST_CASE("get_workflow_run_by_id returns only the tenant's own current run",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  WorkflowRun run = make_run({.id = "r-1"});
  run.start_node(
      {.node_execution_id = "n-1", .node_id = "start", .node_type = "start", .started_at = at(1)});
  run.complete_node({.node_execution_id = "n-1", .total_tokens = 5, .finished_at = at(2)});
  run.succeed({.outputs = R"({"a":1})", .finished_at = at(3)});
  aggregates.save(run);

  const auto found = repo.get_workflow_run_by_id("t-1", "app-1", "r-1");
  REQUIRE(found);
  CHECK(*found == workflow_run_view(run));  // read-your-writes
  CHECK(found->status == "succeeded");
  CHECK(found->total_steps == 1);
  CHECK(found->total_tokens == 5);
  CHECK(found->finished_at == at(3));
  CHECK(found->version == 4);
  CHECK_FALSE(repo.get_workflow_run_by_id("t-2", "app-1", "r-1"));
  CHECK_FALSE(repo.get_workflow_run_by_id("t-1", "app-2", "r-1"));
  CHECK_FALSE(repo.get_workflow_run_by_id("t-1", "app-1", "r-2"));
  CHECK_FALSE(repo.get_workflow_run_by_id("t-1' OR '1'='1", "app-1", "r-1"));
  CHECK_FALSE(repo.get_workflow_run_by_id("%", "%", "%"));
  repo.delete_runs_by_ids("t-1", {"r-1"});
  CHECK_FALSE(repo.get_workflow_run_by_id("t-1", "app-1", "r-1"));
}

TEMPLATE_TEST_CASE("get_expired_runs_batch returns the tenant's older runs, oldest first",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  std::vector<WorkflowRun> runs;
  for (int i = 0; i < 50; ++i) {
    runs.push_back(make_run({.id = scrambled_id(static_cast<std::uint32_t>(i)),
                             .app = i % 2 ? "app-1" : "app-2",
                             .created_at = at(i / 2)}));
    runs.push_back(
        make_run({.id = "other-" + std::to_string(i), .tenant = "t-2", .created_at = at(0)}));
  }
  save_runs(aggregates, runs);

  const auto batch = repo.get_expired_runs_batch("t-1", at(10), 7);
  REQUIRE(batch.size() == 7);
  CHECK(std::is_sorted(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  }));
  for (const auto& run : batch) {
    CHECK(run.tenant_id == "t-1");
    CHECK(run.created_at < at(10));
  }
  const auto all = repo.get_expired_runs_batch("t-1", at(10));
  CHECK(all.size() == 20);  // created at 0..9, two per second; `before` is exclusive
  CHECK(repo.get_expired_runs_batch("t-1", at(0)).empty());
  CHECK(repo.get_expired_runs_batch("t-2", at(1)).size() == 50);
  CHECK(repo.get_expired_runs_batch("t-%", at(100)).empty());
  CHECK_THROWS_WITH(repo.get_expired_runs_batch("t-1", at(10), 0), Contains("batch_size is 0"));
}

TEMPLATE_TEST_CASE("delete_runs_by_ids deletes only the tenant's runs and counts only them",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  auto nodes = factory.create_node_execution_repository();
  std::vector<WorkflowRun> runs;
  runs.push_back(make_run({.id = "a"}));
  runs.push_back(make_run({.id = "b"}));
  runs.push_back(make_run({.id = "theirs", .tenant = "t-2"}));
  runs.push_back(make_run({.id = "'; DROP TABLE annals_workflow_runs; --"}));
  save_runs(aggregates, runs);
  nodes.create_node_execution("t-1", "a", "start", "start", "{}");
  const std::uint64_t head = factory.event_store()->head_position();

  const std::size_t deleted = repo.delete_runs_by_ids(
      "t-1", {"a", "theirs", "a", "unknown", "", "%", "'; DROP TABLE annals_workflow_runs; --",
              std::string(2000, 'x'), std::string("nul\0byte", 8)});
  CHECK(deleted == 2);
  CHECK(factory.event_store()->head_position() == head + 2);
  CHECK(factory.event_store()->read_stream("WorkflowRun-a").back().type == "RunDeleted");
  CHECK(factory.event_store()->read_stream("WorkflowRun-theirs").size() == 1);
  CHECK_FALSE(repo.get_workflow_run_by_id("t-1", "app-1", "a"));
  CHECK(nodes.get_node_executions_by_run_id("t-1", "a").empty());
  CHECK(repo.get_workflow_run_by_id("t-1", "app-1", "b"));
  CHECK(repo.get_workflow_run_by_id("t-2", "app-1", "theirs"));
  // Deleting again, or nothing, deletes nothing.
  CHECK(repo.delete_runs_by_ids("t-1", {"a"}) == 0);
  CHECK(repo.delete_runs_by_ids("t-1", {}) == 0);
  CHECK(repo.delete_runs_by_ids("t-2", {"b"}) == 0);
  CHECK(factory.event_store()->head_position() == head + 2);
}

TEST_CASE("delete_runs_by_ids is all or nothing", "[repositories]") {
  RepositoryFactory factory("memory:");
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  std::vector<WorkflowRun> runs;
  for (int i = 0; i < 5; ++i) runs.push_back(make_run({.id = "r-" + std::to_string(i)}));
  save_runs(aggregates, runs);
  // A second inline projection that fails on RunDeleted rolls back the whole batch append.
  auto failing = std::make_shared<annals::test::CountingProjection>("fails_on_delete");
  failing->fail_on_type = "RunDeleted";
  attach_inline_projections(*factory.sql_event_store(), {failing});
  const std::uint64_t head = factory.event_store()->head_position();

  CHECK_THROWS(repo.delete_runs_by_ids("t-1", {"r-0", "r-1", "r-2", "r-3", "r-4"}));
  CHECK(factory.event_store()->head_position() == head);
  for (int i = 0; i < 5; ++i) {
    CHECK(repo.get_workflow_run_by_id("t-1", "app-1", "r-" + std::to_string(i)));
  }
}

TEMPLATE_TEST_CASE("delete_runs_by_app deletes every run of the tenant's app in batches",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  std::vector<WorkflowRun> runs;
  const char* triggers[] = {"debugging", "app-run", "web-app"};
  for (std::uint32_t i = 0; i < 250; ++i) {
    runs.push_back(
        make_run({.id = scrambled_id(i), .trigger = triggers[i % 3], .created_at = at(i % 4)}));
  }
  for (std::uint32_t i = 0; i < 20; ++i) {
    runs.push_back(make_run({.id = "other-app-" + std::to_string(i), .app = "app-2"}));
    runs.push_back(make_run({.id = "other-tenant-" + std::to_string(i), .tenant = "t-2"}));
    runs.push_back(make_run({.id = "like-" + std::to_string(i), .app = "app-1%"}));
  }
  save_runs(aggregates, runs);
  const std::uint64_t head = factory.event_store()->head_position();

  CHECK(repo.delete_runs_by_app("t-1", "app-1", 7) == 250);
  CHECK(factory.event_store()->head_position() == head + 250);
  for (const char* trigger : triggers) {
    CHECK(repo.get_paginated_workflow_runs("t-1", "app-1", trigger).data.empty());
  }
  CHECK(repo.get_paginated_workflow_runs("t-1", "app-2", "debugging", 100).data.size() == 20);
  CHECK(repo.get_paginated_workflow_runs("t-2", "app-1", "debugging", 100).data.size() == 20);
  CHECK(repo.get_paginated_workflow_runs("t-1", "app-1%", "debugging", 100).data.size() == 20);
  CHECK(repo.delete_runs_by_app("t-1", "app-1") == 0);
  CHECK(repo.delete_runs_by_app("t-1", "app-_") == 0);
  CHECK_THROWS_WITH(repo.delete_runs_by_app("t-1", "app-2", 0), Contains("batch_size is 0"));
}

TEMPLATE_TEST_CASE("SQL metacharacters in every argument are matched literally",
                   "[repositories][tenancy]", ANNALS_FACTORIES) {
  TestType backend;
  RepositoryFactory factory = backend.open();
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto repo = factory.create_workflow_run_repository();
  const std::vector<std::string> nasty = {"'; DROP TABLE annals_workflow_runs; --",
                                          "x' OR '1'='1",
                                          "%",
                                          "_",
                                          "a%b",
                                          "a_b",
                                          "\"quoted\"",
                                          "back\\slash",
                                          "semi;colon",
                                          "ünïcødé"};
  std::vector<WorkflowRun> runs;
  for (std::size_t i = 0; i < nasty.size(); ++i) {
    const std::string& s = nasty[i];
    runs.push_back(make_run({.id = s, .tenant = s, .app = s, .trigger = s, .created_at = at(1)}));
    runs.push_back(make_run({.id = s + "-2", .tenant = s, .app = s, .trigger = s}));
  }
  runs.push_back(make_run({.id = "plain", .tenant = "aXb", .app = "aXb", .trigger = "aXb"}));
  save_runs(aggregates, runs);

  for (const std::string& s : nasty) {
    INFO(s);
    const auto page = repo.get_paginated_workflow_runs(s, s, s, 1);
    REQUIRE(page.data.size() == 1);
    CHECK(page.data[0].id == s);
    CHECK(page.data[0].tenant_id == s);
    CHECK(page.has_more);
    const auto next = repo.get_paginated_workflow_runs(s, s, s, 5, s);
    REQUIRE(next.data.size() == 1);
    CHECK(next.data[0].id == s + "-2");
    CHECK(repo.get_workflow_run_by_id(s, s, s));
    CHECK(repo.get_expired_runs_batch(s, at(100)).size() == 2);
  }
  // "%" and "_" are not wildcards: the aXb tenant is found only by its own name.
  CHECK(repo.get_paginated_workflow_runs("a%b", "a%b", "a%b", 10).data.size() == 2);
  CHECK(repo.get_paginated_workflow_runs("aXb", "aXb", "aXb", 10).data.size() == 1);
  for (const std::string& s : nasty) {
    INFO(s);
    CHECK(repo.delete_runs_by_ids(s, {s}) == 1);
    CHECK(repo.delete_runs_by_app(s, s) == 1);
  }
  // The tables survived, and the plain run with them.
  CHECK(repo.get_workflow_run_by_id("aXb", "aXb", "plain"));
}

TEST_CASE("save_all saves several aggregates in one batch, or none of them", "[repositories]") {
  RepositoryFactory factory("memory:");
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  WorkflowRun a = make_run({.id = "a"});
  WorkflowRun b = make_run({.id = "b"});
  aggregates.save_all({&a, &b});
  CHECK_FALSE(a.has_pending_events());
  CHECK(b.persisted_version() == 1);

  WorkflowRun stale_b = aggregates.load("b");
  b.stop({.finished_at = at(1)});
  aggregates.save(b);
  a.stop({.finished_at = at(1)});
  stale_b.stop({.finished_at = at(2)});
  const std::uint64_t head = factory.event_store()->head_position();
  CHECK_THROWS_AS(aggregates.save_all({&a, &stale_b}), ConcurrencyError);
  CHECK(factory.event_store()->head_position() == head);
  CHECK(a.has_pending_events());  // still pending: nothing was saved
  CHECK_THROWS_AS(aggregates.save_all({&a, &a}), InvalidArgument);
  CHECK_THROWS_AS(aggregates.save_all({&a, nullptr}), InvalidArgument);
  aggregates.save_all({&a});
  CHECK(aggregates.load("a").status() == RunStatus::stopped);
  aggregates.save_all({});  // nothing to do
}
