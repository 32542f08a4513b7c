// Gap-free global order under concurrent writers on many connections and processes: the proof
// docs/postgresql.md promises. Writer processes (this binary re-executed, tests/pg/children.cpp),
// each with several threads on store objects of their own (or sharing one, so that group commit
// puts their appends in one transaction), append single events and multi-stream batches, some
// of them refused, while the parent tails read_all(last + 1, 500). A store that took
// positions from a sequence fails it: a transaction holding a later position can commit before
// one holding an earlier position, and a reader between the two commits finds the earlier
// position missing (a page that does not start at last + 1); a reader that skipped ahead would
// then never see the late event (not every acknowledged append is found where it was promised).

#include <algorithm>
#include <boost/uuid/uuid_io.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "annals/store/hash_chain.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/child_process.hpp"
#include "support/pg_backend.hpp"

using namespace annals;
using annals::test::Child;

namespace annals::test {
// How many events one tail-writer child appends (tests/pg/children.cpp).
std::uint64_t tail_writer_events(int threads, int ops);
}  // namespace annals::test

namespace {

// `mode`: "own" (each writer thread its own store object) or "shared" (the threads of a process
// share one store object, so their appends meet in group commit's savepoints).
void tail_while_processes_append(const std::string& mode) {
  constexpr int kProcesses = 3;
  constexpr int kThreads = 3;
  constexpr int kOps = 150;  // per thread; about 2 events per op
  constexpr std::size_t kPage = 500;

  annals::test::PgSchema schema;
  const std::string uri = schema.uri();
  auto store = open_sql_event_store(uri);  // creates the schema before the writers race

  std::vector<std::unique_ptr<Child>> writers;
  for (int p = 0; p < kProcesses; ++p) {
    writers.push_back(std::make_unique<Child>(
        std::vector<std::string>{"tail-writer", uri, std::to_string(p), std::to_string(kThreads),
                                 std::to_string(kOps), mode}));
  }
  std::vector<bool> writer_open(writers.size(), true);

  std::uint64_t last = 0;                     // the last position read
  std::map<std::string, std::uint64_t> seen;  // event id -> position where it was read
  std::string violation;                      // the first break of order, if any
  std::size_t reads = 0, nonempty_reads = 0, reads_while_writing = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);  // hang guard

  auto read_page = [&] {
    const std::vector<RecordedEvent> page = store->read_all(last + 1, kPage);
    ++reads;
    if (!page.empty()) ++nonempty_reads;
    for (std::size_t i = 0; i < page.size() && violation.empty(); ++i) {
      const RecordedEvent& e = page[i];
      if (e.position != last + 1) {
        violation = "read_all(" + std::to_string(page.front().position - i) + ", " +
                    std::to_string(kPage) + ") returned position " + std::to_string(e.position) +
                    " at index " + std::to_string(i) + " after position " + std::to_string(last) +
                    ": a position was skipped or repeated";
        break;
      }
      if (!seen.emplace(boost::uuids::to_string(e.event_id), e.position).second) {
        violation = "event " + boost::uuids::to_string(e.event_id) + " read twice, again at " +
                    std::to_string(e.position);
        break;
      }
      last = e.position;
    }
    return page.size();
  };

  // Tail while the writers run: each round drains what the children printed (their pipes must
  // not fill) and reads the next page.
  bool writing = true;
  while (writing && violation.empty() && std::chrono::steady_clock::now() < give_up) {
    writing = false;
    for (std::size_t w = 0; w < writers.size(); ++w) {
      if (writer_open[w]) {
        writer_open[w] =
            writers[w]->read_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
      }
      writing = writing || writer_open[w];
    }
    if (read_page() > 0 && writing) ++reads_while_writing;
  }
  REQUIRE(violation.empty());
  REQUIRE_FALSE(writing);  // else the hang guard ended the loop

  // Every writer finished cleanly; what they acknowledged is where they were told it is.
  std::map<std::string, std::uint64_t> acknowledged;
  std::set<std::string> refused;  // appends refused with ConcurrencyError: never in the log
  std::uint64_t done_total = 0;
  std::uint64_t largest_group = 0;  // reported, not asserted: it depends on timing
  for (auto& child : writers) {
    const int status = child->wait();
    INFO("writer " << child->pid() << ": " << annals::test::describe_status(status));
    for (const std::string& line : child->lines()) {
      const std::vector<std::string> f = annals::test::split_tabs(line);
      if (f.at(0) == "ack") {
        REQUIRE(f.size() == 3);
        CHECK(acknowledged.emplace(f[1], std::stoull(f[2])).second);
      } else if (f.at(0) == "refused") {
        REQUIRE(f.size() == 2);
        refused.insert(f[1]);
      } else if (f.at(0) == "groups") {
        largest_group = std::max<std::uint64_t>(largest_group, std::stoull(f.at(1)));
      } else if (f.at(0) == "done") {
        done_total += std::stoull(f.at(1));
      } else {
        FAIL_CHECK("writer reported: " << line);
      }
    }
    CHECK(status == 0);
  }
  CHECK(done_total == acknowledged.size());
  CHECK(acknowledged.size() == kProcesses * annals::test::tail_writer_events(kThreads, kOps));

  // The reader's last pages reach the head: nothing committed stays unseen.
  while (read_page() > 0 && violation.empty()) {
  }
  REQUIRE(violation.empty());
  CHECK(last == store->head_position());
  CHECK(seen.size() == last);
  CHECK(acknowledged.size() == last);  // the children were the only writers
  std::size_t missing = 0, misplaced = 0;
  for (const auto& [id, position] : acknowledged) {
    const auto it = seen.find(id);
    if (it == seen.end()) {
      ++missing;
    } else if (it->second != position) {
      ++misplaced;
    }
  }
  CHECK(missing == 0);
  CHECK(misplaced == 0);
  CHECK(refused.size() == static_cast<std::size_t>(kProcesses * kThreads * (kOps / 5)));
  std::size_t refused_but_stored = 0;
  for (const std::string& id : refused) refused_but_stored += seen.count(id);
  CHECK(refused_but_stored == 0);
  // Positions were chained in the order they became visible.
  CHECK(verify_log(*store).head_position == last);

  WARN("concurrent tail (" << mode << " store objects): " << last << " events from " << kProcesses
                           << " processes x " << kThreads << " threads, " << refused.size()
                           << " appends refused; " << reads << " reads, " << nonempty_reads
                           << " returned events, " << reads_while_writing
                           << " of them while the writers ran; largest group commit "
                           << largest_group);
}

}  // namespace

TEST_CASE("a reader tailing read_all sees every position once, in order, while processes append",
          "[pg][concurrency][tail]") {
  tail_while_processes_append("own");
}

TEST_CASE("the tail stays gap-free when threads share a store object and some appends fail",
          "[pg][concurrency][tail]") {
  tail_while_processes_append("shared");
}
