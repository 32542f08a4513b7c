// Crash safety: a child process appending workflow runs (inline projection on), rebuilding the
// read tables or importing a log is SIGKILLed at a random moment; the store it leaves must hold
// every acknowledged event unchanged, no part of any batch without the rest, positions without
// gaps, a verifying hash chain and read tables equal to a rebuild.
//
// ANNALS_CRASH_SEED=<n> repeats a run's random choices (seeds, kill points; the timing of a
// kill against the child's progress still varies). ANNALS_CRASH_KILLS=<n> sets the number of
// append kills (default 60: a third at synchronous=full, a third at synchronous=normal, with the
// projection inline, and a third with an async ProjectionRunner).

#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "annals/projections/engine.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/store/export.hpp"
#include "annals/store/hash_chain.hpp"
#include "reliability/harness.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using namespace annals::reliability;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : fallback;
}

// What the children of one store file said: every batch announced (correlation id -> events)
// and every acknowledged event by position.
struct Reports {
  std::map<std::string, std::size_t> intents;
  std::map<std::uint64_t, SentEvent> acked;
  std::size_t acked_batches = 0;

  void take(const std::vector<std::string>& lines) {
    std::map<std::string, std::vector<std::pair<std::uint64_t, SentEvent>>> open;
    for (const auto& line : lines) {
      const auto f = split_tabs(line);
      if (f[0] == "I") {
        intents[f.at(1)] = std::stoul(f.at(2));
      } else if (f[0] == "E") {
        open[f.at(1)].emplace_back(std::stoull(f.at(2)), SentEvent{f.at(3), std::stoull(f.at(4)),
                                                                   f.at(5), f.at(6), f.at(7)});
      } else if (f[0] == "K") {
        auto& events = open[f.at(1)];
        REQUIRE(events.size() == std::stoul(f.at(2)));
        for (auto& [position, e] : events) acked[position] = std::move(e);
        ++acked_batches;
      }
    }
  }
};

// Everything a store must be after a crash. `context` says which kill this is.
// `inline_projection`: the appender ran the WorkflowProjection inline (else an async runner).
void check_store(const std::string& uri, const Reports& reports, const std::string& context,
                 bool inline_projection = true) {
  INFO(context);
  auto store = open_sql_event_store(uri);
  const std::vector<RecordedEvent> all = store->read_all(1, SIZE_MAX);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i + 1);
  REQUIRE(store->head_position() == all.size());

  // Every acknowledged event, unchanged.
  for (const auto& [position, e] : reports.acked) {
    INFO("acknowledged event at position " << position << " of " << e.stream_id);
    REQUIRE(position <= all.size());
    const RecordedEvent& got = all[position - 1];
    CHECK(got.stream_id == e.stream_id);
    CHECK(got.version == e.version);
    CHECK(to_string(got.event_id) == e.event_id);
    CHECK(got.type == e.type);
    REQUIRE(to_hex(got.payload) == e.payload);
  }

  // Every batch, acknowledged or not, is all there (at consecutive positions) or not at all.
  std::map<std::string, std::vector<std::uint64_t>> batches;
  for (const auto& e : all) batches[e.metadata.correlation_id].push_back(e.position);
  for (const auto& [cid, positions] : batches) {
    INFO("batch " << cid);
    const auto intent = reports.intents.find(cid);
    REQUIRE(intent != reports.intents.end());  // no event the children did not announce
    REQUIRE(positions.size() == intent->second);
    REQUIRE(positions.back() - positions.front() + 1 == positions.size());
  }

  const LogVerification verified = verify_log(*store);
  REQUIRE(verified.head_position == all.size());

  // An inline projection committed with each append: its checkpoint is the head. An async
  // runner's checkpoint is behind it or at it, and catching up from there must give the same
  // tables as a rebuild (the rows of each batch committed with its checkpoint, none twice).
  const auto checkpoint = workflow_checkpoint(*store);
  if (inline_projection) {
    if (checkpoint) CHECK(*checkpoint == all.size());
  } else {
    if (checkpoint) CHECK(*checkpoint <= all.size());
    WorkflowProjection projection;
    (void)prepare_projection(*store, projection);  // the kill may have come before the runner's
    (void)catch_up(*store, projection);
    CHECK(workflow_checkpoint(*store) == all.size());
  }
  REQUIRE(compare_with_rebuild(*store) == "");
}

// Runs one append child until it is killed at a random moment.
void kill_one_append_child(const std::string& uri, const std::string& projection,
                           std::uint64_t seed, const std::string& tag, std::mt19937_64& rng,
                           Reports& reports, std::size_t& acked_before_kill, bool& in_flight) {
  Child child({"append", uri, std::to_string(seed), tag, projection});
  if (rng() % 4 == 0) {
    // Anywhere from start-up (opening, setting up and catching up the projection) on.
    child.read_until(Clock::now() + std::chrono::microseconds(rng() % 40'000));
  } else {
    // After a number of acknowledged appends, at a random point inside the next ones.
    const std::size_t target = 1 + rng() % 60;
    const auto deadline = Clock::now() + 30s;
    std::size_t acks = 0;
    while (acks < target && Clock::now() < deadline) {
      if (!child.read_until(Clock::now() + 1ms)) break;
      acks = static_cast<std::size_t>(
          std::count_if(child.lines().begin(), child.lines().end(),
                        [](const std::string& l) { return l.starts_with("K\t"); }));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
  }
  child.kill_and_drain();
  const int status = child.wait();
  INFO("append child " << tag << ": " << describe_status(status));
  REQUIRE(WIFSIGNALED(status));  // it never stops on its own: anything else is a failure
  REQUIRE(WTERMSIG(status) == SIGKILL);
  const std::size_t before = reports.acked_batches;
  reports.take(child.lines());
  acked_before_kill = reports.acked_batches - before;
  // Was an append announced and not yet acknowledged when the kill came?
  std::string last_intent;
  for (const auto& line : child.lines()) {
    if (line.starts_with("I\t")) last_intent = split_tabs(line).at(1);
    if (line.starts_with("K\t") && split_tabs(line).at(1) == last_intent) last_intent.clear();
  }
  in_flight = !last_intent.empty();
}

}  // namespace

TEST_CASE(
    "appenders killed at random moments lose no acknowledged event and leave no partial batch",
    "[reliability][crash]") {
  const std::uint64_t seed = env_or("ANNALS_CRASH_SEED", std::random_device{}());
  const std::uint64_t kills = env_or("ANNALS_CRASH_KILLS", 60);
  std::cout << "crash test seed " << seed << " (ANNALS_CRASH_SEED=" << seed << " repeats it), "
            << kills << " append kills" << std::endl;
  INFO("ANNALS_CRASH_SEED=" << seed);
  std::mt19937_64 rng(seed);
  test::TempDir dir;
  const auto started = Clock::now();

  // A third of the kills each: synchronous=full (json payloads) and synchronous=normal (binary
  // payloads) with the projection inline, and synchronous=full with an async runner. A process
  // crash loses nothing acknowledged under either setting.
  const std::vector<std::string> uris = {
      dir.sqlite_uri("full.db", "synchronous=full"),
      dir.sqlite_uri("normal.db", "synchronous=normal&payload=binary"),
      dir.sqlite_uri("async.db", "synchronous=full")};
  const std::vector<std::string> projections = {"inline", "inline", "async"};
  std::vector<Reports> reports(uris.size());
  std::size_t killed_after_acks = 0, killed_in_flight = 0;
  for (std::uint64_t k = 0; k < kills; ++k) {
    const std::size_t file = k % uris.size();
    const std::string tag = "k" + std::to_string(k);
    std::size_t acked = 0;
    bool in_flight = false;
    kill_one_append_child(uris[file], projections[file], rng(), tag, rng, reports[file], acked,
                          in_flight);
    if (acked > 0) ++killed_after_acks;
    if (in_flight) ++killed_in_flight;
    check_store(uris[file], reports[file], "after kill " + tag + " of " + uris[file],
                projections[file] == "inline");
  }
  for (std::size_t f = 0; f < uris.size(); ++f) {
    // Announced appends that are in the log, acknowledged or not (the kill came in between).
    std::set<std::string> in_log;
    auto store = open_sql_event_store(uris[f]);
    for (const auto& e : store->read_all(1, SIZE_MAX)) in_log.insert(e.metadata.correlation_id);
    std::cout << uris[f] << ": " << reports[f].acked_batches << " acknowledged appends, "
              << reports[f].acked.size() << " acknowledged events, " << reports[f].intents.size()
              << " announced, " << in_log.size() << " in the log, " << store->head_position()
              << " events in the log" << std::endl;
    CHECK(reports[f].acked_batches > 0);
  }
  std::cout << kills << " kills (" << killed_after_acks
            << " after at least one acknowledged append, " << killed_in_flight
            << " with an announced append not yet acknowledged) in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()
            << " ms" << std::endl;
  CHECK(killed_after_acks > 0);

  // A rebuild killed at a random moment leaves the live tables intact, and reruns.
  // (Not SECTIONs: Catch2 would run the kills above again for each.)
  {
    const std::string& uri = uris[0];
    const std::uint64_t head = open_sql_event_store(uri)->head_position();
    const std::size_t batch = 25;
    std::size_t mid = 0;
    for (int j = 0; j < 6; ++j) {
      Child child({"rebuild", uri, std::to_string(batch)});
      const std::size_t wait_for = 1 + rng() % (head / batch + 3);  // "R" + progress lines
      child.read_lines(wait_for, 30s);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
      child.kill_and_drain();
      const int status = child.wait();
      const bool finished = !child.lines().empty() && child.lines().back().starts_with("D\t");
      INFO("rebuild child " << j << ": " << describe_status(status) << ", " << child.lines().size()
                            << " lines");
      if (!finished) {
        ++mid;
        REQUIRE(WIFSIGNALED(status));
      }
      // check_store's rebuild (compare, swap only if equal) must find the live tables equal.
      check_store(uri, reports[0], "after rebuild kill " + std::to_string(j));
      {
        WorkflowProjection projection;
        const RebuildReport rerun = rebuild(*open_sql_event_store(uri), projection);
        CHECK(rerun.swapped);
        CHECK(rerun.identical);
      }
      for (const auto& name : table_names(*open_sql_event_store(uri))) {
        INFO("table " << name);
        CHECK(name.find("__g") == std::string::npos);  // the crashed rebuild's shadow is gone
      }
    }
    std::cout << "rebuild: 6 kills, " << mid << " in the middle, log of " << head << " events"
              << std::endl;
    CHECK(mid > 0);
  }

  // An import killed at a random moment leaves the target empty or complete, and retries.
  {
    auto source = open_sql_event_store(uris[0]);
    std::ostringstream exported;
    (void)export_log(*source, exported);
    const std::string log_file = dir.file("log.jsonl");
    std::ofstream(log_file, std::ios::binary) << exported.str();
    const std::uint64_t head = source->head_position();

    // How long an import takes here once the target is open, so that the kills land inside one.
    std::chrono::microseconds duration{};
    {
      Child child({"import", dir.sqlite_uri("calibrate.db"), log_file});
      REQUIRE(child.read_lines(1, 30s));  // "R"
      const auto t0 = Clock::now();
      child.read_until(Clock::now() + 60s);
      duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
      REQUIRE(child.wait() == 0);
    }
    std::size_t empty = 0, complete = 0;
    for (int j = 0; j < 6; ++j) {
      const std::string target = dir.sqlite_uri("import" + std::to_string(j) + ".db");
      Child child({"import", target, log_file});
      child.read_lines(1, 30s);  // "R": the target is open, the import starts
      std::this_thread::sleep_for(std::chrono::microseconds(
          rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(duration.count() * 5 / 4, 1))));
      child.kill_and_drain();
      (void)child.wait();
      INFO("import kill " << j);
      auto store = open_sql_event_store(target);
      const std::uint64_t got = store->head_position();
      REQUIRE((got == 0 || got == head));
      if (got == 0) {
        ++empty;
        std::ifstream in(log_file, std::ios::binary);
        REQUIRE(import_log(*store, in).head_position == head);  // the retry works
      } else {
        ++complete;
      }
      std::ostringstream again;
      (void)export_log(*store, again);
      REQUIRE(again.str() == exported.str());
      CHECK(verify_log(*store).head_position == head);
    }
    std::cout << "import: 6 kills of a " << head << "-event import taking about "
              << duration.count() / 1000 << " ms: " << empty << " left the target empty, "
              << complete << " complete" << std::endl;
  }
}
