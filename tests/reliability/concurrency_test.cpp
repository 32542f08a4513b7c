// Concurrency: several processes and threads saving WorkflowRun aggregates to shared and own
// streams of one SQLite file, expected versions taken from reads so that they conflict, with
// async ProjectionRunners keeping the workflow tables in two of the processes.
//
// busy_timeout_ms=60000: a writer waiting for another process's lock past the busy timeout gets a
// StoreError, which this test counts as a failure; with a minute, only a hung writer would.

#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "annals/projections/engine.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/store/hash_chain.hpp"
#include "reliability/harness.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using namespace annals::reliability;
using namespace std::chrono_literals;

namespace {

constexpr const char* kOptions = "synchronous=normal&busy_timeout_ms=60000";

// The log holds exactly the setup events and every successful append's events, each once, at
// positions 1..head; the runners together applied every event once; the tables equal a rebuild.
void check_outcome(SqlEventStore& store, const std::vector<WriterOutcome>& outcomes,
                   std::size_t setup_events) {
  std::size_t conflicts = 0;
  std::uint64_t applied = 0;
  std::multiset<std::string> succeeded;
  for (const auto& o : outcomes) {
    for (const auto& e : o.errors) FAIL_CHECK("unexpected exception: " << e);
    conflicts += o.conflicts;
    applied += o.runner_applied;
    succeeded.insert(o.succeeded.begin(), o.succeeded.end());
  }
  const auto all = store.read_all(1, SIZE_MAX);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i + 1);
  REQUIRE(all.size() == setup_events + succeeded.size());
  std::map<std::string, std::size_t> in_log;
  for (std::size_t i = setup_events; i < all.size(); ++i) ++in_log[to_string(all[i].event_id)];
  for (const auto& id : succeeded) {
    INFO("event " << id);
    REQUIRE(succeeded.count(id) == 1);
    REQUIRE(in_log[id] == 1);
  }
  CHECK(verify_log(store).head_position == all.size());

  // The runners stopped once caught up with the head as they saw it; the rest is caught up here.
  // Together every event was applied exactly once.
  WorkflowProjection projection;
  const std::uint64_t rest = catch_up(store, projection);
  CHECK(applied + rest == all.size());
  CHECK(workflow_checkpoint(store) == all.size());
  REQUIRE(compare_with_rebuild(store) == "");
  std::cout << all.size() << " events, " << succeeded.size() << " from successful saves, "
            << conflicts << " ConcurrencyErrors, runners applied " << applied << " (+" << rest
            << " caught up after)" << std::endl;
}

}  // namespace

TEST_CASE("threads on two store objects of one file with two async runners lose and repeat nothing",
          "[reliability][concurrency]") {
  test::TempDir dir;
  const std::string uri = dir.sqlite_uri("shared.db", kOptions);
  auto setup = open_sql_event_store(uri);
  create_shared_runs(*setup);
  std::vector<WriterOutcome> outcomes(2);
  std::vector<std::thread> processes;
  for (int p = 0; p < 2; ++p) {
    processes.emplace_back([&, p] {
      outcomes[static_cast<std::size_t>(p)] =
          run_writers(open_sql_event_store(uri), p, /*threads=*/3, /*ops=*/40, /*runner=*/true);
    });
  }
  for (auto& t : processes) t.join();
  check_outcome(*setup, outcomes, 2);
}

TEST_CASE("processes and threads appending to one file with runners in two processes lose nothing",
          "[reliability][concurrency][processes]") {
  test::TempDir dir;
  const std::string uri = dir.sqlite_uri("shared.db", kOptions);
  auto setup = open_sql_event_store(uri);
  create_shared_runs(*setup);
  constexpr int kProcesses = 4;
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(std::make_unique<Child>(
        std::vector<std::string>{"writer", uri, std::to_string(p), "3", "60", p < 2 ? "1" : "0"}));
  }
  std::vector<WriterOutcome> outcomes;
  for (auto& child : children) {
    child->read_until(std::chrono::steady_clock::now() + 300s);
    const int status = child->wait();
    INFO("writer process: " << describe_status(status));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(!child->lines().empty());
    REQUIRE(child->lines().back() == "Z");
    WriterOutcome o;
    for (const auto& line : child->lines()) {
      const auto f = split_tabs(line);
      if (f[0] == "S") o.succeeded.push_back(f.at(1));
      if (f[0] == "C") o.conflicts = std::stoul(f.at(1));
      if (f[0] == "X") o.errors.push_back(f.at(1));
      if (f[0] == "A") o.runner_applied = std::stoull(f.at(1));
    }
    outcomes.push_back(std::move(o));
  }
  check_outcome(*setup, outcomes, 2);
}
