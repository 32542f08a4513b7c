// The caching decorator never serves a row its projection has since changed.

#include "annals/repositories/cached_workflow_run_repository.hpp"

#include <catch2/catch.hpp>
#include <future>
#include <thread>

#include "annals/repositories/repository_factory.hpp"
#include "support/backends.hpp"
#include "support/temp_dir.hpp"

using namespace annals;

namespace {

RunCreated created(const std::string& run_id, const std::string& tenant = "t-1") {
  return RunCreated{.run_id = run_id,
                    .tenant_id = tenant,
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "app-run",
                    .created_by = "alice",
                    .inputs = "{}",
                    .created_at = from_micros(1'700'000'000'000'000)};
}

}  // namespace

TEST_CASE("by-id reads hit the cache until the run changes", "[repositories][cache]") {
  RepositoryFactory factory("memory:");
  auto runs = factory.create_workflow_run_aggregate_repository();
  CachedWorkflowRunRepository cached(factory.create_workflow_run_repository(),
                                     factory.workflow_projection(), 100);
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);

  REQUIRE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());
  CHECK(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "running");
  CHECK(cached.cache_stats().hits == 1);
  CHECK(cached.cache_stats().misses == 1);
  CHECK(cached.cache_stats().size == 1);

  // An update through the log: the next read is a miss that sees the new status.
  run.succeed({.finished_at = from_micros(1'700'000'001'000'000)});
  runs.save(run);
  CHECK(cached.cache_stats().invalidations == 1);
  const auto after = cached.get_workflow_run_by_id("t-1", "app-1", "r-1");
  REQUIRE(after.has_value());
  CHECK(after->status == "succeeded");
  CHECK(after->finished_at.has_value());

  // A delete: gone at once.
  CHECK(cached.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());  // cached again
  CHECK(cached.delete_runs_by_ids("t-1", {"r-1"}) == 1);
  CHECK_FALSE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());
}

TEST_CASE("the cache never answers for another tenant or app", "[repositories][cache]") {
  RepositoryFactory factory("memory:");
  auto runs = factory.create_workflow_run_aggregate_repository();
  CachedWorkflowRunRepository cached(factory.create_workflow_run_repository(),
                                     factory.workflow_projection());
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  REQUIRE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());  // now cached
  CHECK_FALSE(cached.get_workflow_run_by_id("t-2", "app-1", "r-1").has_value());
  CHECK_FALSE(cached.get_workflow_run_by_id("t-1", "app-2", "r-1").has_value());
  CHECK(cached.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());
}

TEST_CASE("the cache is bounded and evicts the least recently used run", "[repositories][cache]") {
  RepositoryFactory factory("memory:");
  auto runs = factory.create_workflow_run_aggregate_repository();
  CachedWorkflowRunRepository cached(factory.create_workflow_run_repository(),
                                     factory.workflow_projection(), 2);
  for (const char* id : {"a", "b", "c"}) {
    WorkflowRun run = WorkflowRun::create(created(id));
    runs.save(run);
  }
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "a");
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "b");
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "a");  // a is now the most recent
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "c");  // evicts b
  const CacheStats stats = cached.cache_stats();
  CHECK(stats.size == 2);
  CHECK(stats.capacity == 2);
  CHECK(stats.evictions == 1);
  CHECK(stats.hits == 1);
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "a");
  CHECK(cached.cache_stats().hits == 2);
  (void)cached.get_workflow_run_by_id("t-1", "app-1", "b");
  CHECK(cached.cache_stats().hits == 2);  // b was evicted: a miss
  CHECK_THROWS_AS(CachedWorkflowRunRepository(factory.create_workflow_run_repository(),
                                              factory.workflow_projection(), 0),
                  InvalidArgument);
  CHECK_THROWS_AS(CachedWorkflowRunRepository(factory.create_workflow_run_repository(), nullptr),
                  InvalidArgument);
}

TEST_CASE("copies share one cache and outlive nothing they need", "[repositories][cache]") {
  RepositoryFactory factory("memory:");
  auto runs = factory.create_workflow_run_aggregate_repository();
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  std::optional<CachedWorkflowRunRepository> first;
  first.emplace(factory.create_workflow_run_repository(), factory.workflow_projection());
  CachedWorkflowRunRepository second = *first;
  (void)first->get_workflow_run_by_id("t-1", "app-1", "r-1");
  CHECK(second.get_workflow_run_by_id("t-1", "app-1", "r-1").has_value());
  CHECK(second.cache_stats().hits == 1);
  first.reset();
  run.stop({.stopped_by = "bob", .finished_at = from_micros(1'700'000'002'000'000)});
  runs.save(run);  // the listener still works for the remaining copy
  CHECK(second.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "stopped");
}

TEST_CASE("the cache hears of runs an inline append caught up from another process",
          "[repositories][cache]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  const std::string uri = annals::test::store_uri(dir, "events.db", "synchronous=normal");
  RepositoryFactory factory(uri);
  auto runs = factory.create_workflow_run_aggregate_repository();
  CachedWorkflowRunRepository cached(factory.create_workflow_run_repository(),
                                     factory.workflow_projection());
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  REQUIRE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "running");

  // Another process (a store object without the projection) finishes the run...
  AggregateRepository<WorkflowRun> elsewhere(open_event_store(uri));
  WorkflowRun remote = elsewhere.load("r-1");
  remote.succeed({.finished_at = from_micros(1'700'000'001'000'000)});
  elsewhere.save(remote);
  // ...and the next save here applies it inline: the cached row must go.
  WorkflowRun other = WorkflowRun::create(created("r-2"));
  runs.save(other);
  CHECK(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "succeeded");
}

TEST_CASE("between the commit and the cache's notification no thread reads the old row",
          "[repositories][cache][concurrency]") {
  RepositoryFactory factory("memory:");
  auto runs = factory.create_workflow_run_aggregate_repository();
  // A slow listener that runs before the cache's, holding the committing thread in the window
  // after the commit and before the cache hears of it.
  std::atomic<bool> armed{false};
  std::promise<void> in_window, read_done;
  std::shared_future<void> may_go_on = read_done.get_future().share();
  factory.workflow_projection()->on_runs_changed([&](const std::vector<std::string>&) {
    if (armed.exchange(false)) {
      in_window.set_value();
      may_go_on.wait();
    }
  });
  CachedWorkflowRunRepository cached(factory.create_workflow_run_repository(),
                                     factory.workflow_projection());
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  REQUIRE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "running");
  REQUIRE(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "running");  // cached

  armed = true;
  std::thread writer([&] {
    run.succeed({.finished_at = from_micros(1'700'000'001'000'000)});
    runs.save(run);
  });
  in_window.get_future().wait();  // committed, the cache not yet told
  const auto during = cached.get_workflow_run_by_id("t-1", "app-1", "r-1");
  read_done.set_value();
  writer.join();
  REQUIRE(during.has_value());
  CHECK(during->status == "succeeded");
  CHECK(cached.get_workflow_run_by_id("t-1", "app-1", "r-1")->status == "succeeded");
}
