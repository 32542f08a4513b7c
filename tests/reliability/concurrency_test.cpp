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
#include <random>
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
// Events whose actor starts with `killed_prefix` (when not empty) come from a process killed
// part way, whose successes are unknown: they are counted, not matched.
void check_outcome(SqlEventStore& store, const std::vector<WriterOutcome>& outcomes,
                   std::size_t setup_events, const std::string& killed_prefix = "") {
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
  std::map<std::string, std::size_t> in_log;
  std::size_t from_killed = 0;
  for (std::size_t i = setup_events; i < all.size(); ++i) {
    if (!killed_prefix.empty() && all[i].metadata.actor.starts_with(killed_prefix)) {
      ++from_killed;
    } else {
      ++in_log[to_string(all[i].event_id)];
    }
  }
  REQUIRE(all.size() == setup_events + succeeded.size() + from_killed);
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
            << " caught up after)";
  if (!killed_prefix.empty()) std::cout << ", " << from_killed << " by the killed process";
  std::cout << std::endl;
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

TEST_CASE(
    "processes and threads appending to one file with runners in two processes lose nothing, "
    "while one more is killed",
    "[reliability][concurrency][processes]") {
  test::TempDir dir;
  const std::string uri = dir.sqlite_uri("shared.db", kOptions);
  auto setup = open_sql_event_store(uri);
  create_shared_runs(*setup);
  // Each process opens the file with its own options: the settings belong to the store object.
  const std::vector<std::string> options = {
      kOptions, "synchronous=full&busy_timeout_ms=60000",
      "synchronous=normal&busy_timeout_ms=60000&group_commit=off",
      "synchronous=normal&busy_timeout_ms=60000&payload=binary"};
  std::vector<std::unique_ptr<Child>> children;
  for (std::size_t p = 0; p < options.size(); ++p) {
    children.push_back(std::make_unique<Child>(
        std::vector<std::string>{"writer", dir.sqlite_uri("shared.db", options[p]),
                                 std::to_string(p), "3", "60", p < 2 ? "1" : "0"}));
  }
  // One more writer is SIGKILLed while the others run, perhaps holding the write lock or part
  // way through writing a transaction: the others must go on as if it had never been there.
  {
    Child doomed({"writer", uri, "9", "2", "1000000", "0"});
    // Once it has written something, at a random moment after.
    const auto until = std::chrono::steady_clock::now() + 60s;
    const auto wrote = [&] {
      for (const auto& e : setup->read_all(1, SIZE_MAX)) {
        if (e.metadata.actor.starts_with("p9-")) return true;
      }
      return false;
    };
    while (!wrote() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::random_device{}() % 20000));
    doomed.kill_and_drain();
    const int status = doomed.wait();
    INFO("killed writer: " << describe_status(status));
    REQUIRE(WIFSIGNALED(status));
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
  check_outcome(*setup, outcomes, 2, "p9-");
}
