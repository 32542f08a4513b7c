// RepositoryFactory: opening by URI, by config and from the environment; inline read tables.

#include "annals/repositories/repository_factory.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>
#include <string>

#include "support/temp_dir.hpp"

using namespace annals;
using Catch::Matchers::Contains;

namespace {

Timestamp at(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

WorkflowRun make_run(const std::string& id) {
  return WorkflowRun::create(RunCreated{.run_id = id,
                                        .tenant_id = "t-1",
                                        .app_id = "app-1",
                                        .workflow_id = "wf-1",
                                        .triggered_from = "debugging",
                                        .created_by = "alice",
                                        .inputs = "{}",
                                        .created_at = at(0)});
}

// Sets an environment variable for one scope and restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("a factory on memory: hands out repositories that see saves at once",
          "[repositories][factory]") {
  RepositoryFactory factory("memory:");
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  auto runs = factory.create_workflow_run_repository();
  auto nodes = factory.create_node_execution_repository();
  CHECK(aggregates.event_store() == factory.event_store());
  CHECK(runs.event_store() == factory.sql_event_store());
  CHECK(nodes.event_store() == factory.sql_event_store());
  REQUIRE(factory.workflow_projection());
  CHECK(factory.workflow_projection()->name() == "workflow_runs");

  WorkflowRun run = make_run("r-1");
  aggregates.save(run);
  const auto view = runs.get_workflow_run_by_id("t-1", "app-1", "r-1");
  REQUIRE(view);
  CHECK(*view == workflow_run_view(run));
  const auto node = nodes.create_node_execution("t-1", "r-1", "start", "start", "{}");
  CHECK(nodes.get_node_execution_by_id("t-1", node.id) == node);
}

TEST_CASE("a factory on an SQLite file keeps its read tables across reopening",
          "[repositories][factory]") {
  annals::test::TempDir dir;
  const std::string path = dir.file("events.db");
  {
    RepositoryFactory factory(RepositoryFactoryConfig{.backend = "sqlite", .path = path});
    auto aggregates = factory.create_workflow_run_aggregate_repository();
    WorkflowRun run = make_run("r-1");
    aggregates.save(run);
  }
  {
    // Events appended without the projection (another program) are caught up on open.
    auto plain = open_event_store("sqlite:" + path);
    AggregateRepository<WorkflowRun> aggregates(plain);
    WorkflowRun run = make_run("r-2");
    aggregates.save(run);
  }
  RepositoryFactory factory("sqlite:" + path);
  auto runs = factory.create_workflow_run_repository();
  CHECK(runs.get_paginated_workflow_runs("t-1", "app-1", "debugging").data.size() == 2);
}

TEST_CASE("two factories on one file share the read tables", "[repositories][factory]") {
  annals::test::TempDir dir;
  RepositoryFactory a(dir.sqlite_uri());
  RepositoryFactory b(dir.sqlite_uri());
  auto saver = a.create_workflow_run_aggregate_repository();
  WorkflowRun run = make_run("r-1");
  saver.save(run);
  CHECK(b.create_workflow_run_repository().get_workflow_run_by_id("t-1", "app-1", "r-1"));
  auto deleter = b.create_workflow_run_repository();
  CHECK(deleter.delete_runs_by_ids("t-1", {"r-1"}) == 1);
  CHECK_FALSE(a.create_workflow_run_repository().get_workflow_run_by_id("t-1", "app-1", "r-1"));
}

TEST_CASE("a factory config selects the backend by name", "[repositories][factory]") {
  annals::test::TempDir dir;
  CHECK_NOTHROW(RepositoryFactory(RepositoryFactoryConfig{.backend = "memory"}));
  StoreOptions options;
  options.payload_format = PayloadFormat::binary;
  RepositoryFactory binary(RepositoryFactoryConfig{
      .backend = "sqlite", .path = dir.file("binary.db"), .store_options = options});
  CHECK(binary.event_store()->payload_format() == PayloadFormat::binary);
  auto aggregates = binary.create_workflow_run_aggregate_repository();
  WorkflowRun run = make_run("r-1");
  aggregates.save(run);
  CHECK(binary.create_workflow_run_repository().get_workflow_run_by_id("t-1", "app-1", "r-1"));

  CHECK(RepositoryFactory::known_backends() == std::vector<std::string>{"sqlite", "memory"});
  CHECK_THROWS_MATCHES(
      RepositoryFactory(RepositoryFactoryConfig{.backend = "postgres", .path = "db"}),
      InvalidArgument,
      Catch::Matchers::Message(
          "RepositoryFactory: unknown backend 'postgres' (known backends: sqlite, memory)"));
  CHECK_THROWS_WITH(RepositoryFactory(RepositoryFactoryConfig{.backend = "sqlite"}),
                    Contains("backend 'sqlite' needs a path"));
  CHECK_THROWS_WITH(RepositoryFactory(RepositoryFactoryConfig{.backend = "memory", .path = "x"}),
                    Contains("backend 'memory' takes no path"));
  CHECK_THROWS_AS(RepositoryFactory(RepositoryFactoryConfig{.backend = ""}), InvalidArgument);
}

TEST_CASE("a factory URI that is not an SQL store is an InvalidArgument",
          "[repositories][factory]") {
  CHECK_THROWS_WITH(RepositoryFactory("mysql://localhost/db"), Contains("unknown scheme"));
  CHECK_THROWS_AS(RepositoryFactory("memory:?payload=xml"), InvalidArgument);
  CHECK_THROWS_AS(RepositoryFactory(""), InvalidArgument);
}

TEST_CASE("from_environment opens ANNALS_STORE_URI and says so when it is unset",
          "[repositories][factory]") {
  {
    ScopedEnv env("ANNALS_STORE_URI", nullptr);
    CHECK_THROWS_MATCHES(RepositoryFactory::from_environment(), InvalidArgument,
                         Catch::Matchers::Predicate<InvalidArgument>([](const InvalidArgument& e) {
                           return std::string(e.what()).find("ANNALS_STORE_URI is not set") !=
                                  std::string::npos;
                         }));
  }
  {
    ScopedEnv env("ANNALS_STORE_URI", "");
    CHECK_THROWS_WITH(RepositoryFactory::from_environment(),
                      Contains("ANNALS_STORE_URI is not set"));
  }
  {
    annals::test::TempDir dir;
    ScopedEnv env("ANNALS_STORE_URI", dir.sqlite_uri().c_str());
    RepositoryFactory factory = RepositoryFactory::from_environment();
    auto aggregates = factory.create_workflow_run_aggregate_repository();
    WorkflowRun run = make_run("r-1");
    aggregates.save(run);
    CHECK(factory.create_workflow_run_repository().get_workflow_run_by_id("t-1", "app-1", "r-1"));
  }
  {
    ScopedEnv env("ANNALS_STORE_URI", "nosuch:thing");
    CHECK_THROWS_AS(RepositoryFactory::from_environment(), InvalidArgument);
  }
}
