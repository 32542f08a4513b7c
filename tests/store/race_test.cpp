// Optimistic writers racing on one stream, as threads and as processes.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "annals/store/event_store.hpp"
#include "support/backends.hpp"

using namespace annals;
using annals::test::make_event;

namespace {

// Appends `count` events to `stream` one at a time, each at the version it just read, retrying
// on ConcurrencyError. Returns how many conflicts it met.
std::size_t append_optimistically(EventStore& store, const std::string& stream, std::size_t count,
                                  const std::string& writer) {
  std::size_t conflicts = 0;
  for (std::size_t done = 0; done < count;) {
    const auto version = store.stream_version(stream);
    try {
      store.append(stream, ExpectedVersion::exactly(version.value_or(0)),
                   {make_event("Tick", "{\"writer\":\"" + writer + "\"}")});
      ++done;
    } catch (const ConcurrencyError&) {
      ++conflicts;
    } catch (const StoreError&) {
      // busy past the timeout: the append did not happen; try again
    }
  }
  return conflicts;
}

// Checks the invariants every racing run must leave: versions 1..n and positions 1..head.
void check_log(const EventStore& store, const std::string& stream, std::size_t expected_events,
               std::size_t expected_total) {
  const auto events = store.read_stream(stream);
  REQUIRE(events.size() == expected_events);
  for (std::size_t i = 0; i < events.size(); ++i) REQUIRE(events[i].version == i + 1);
  const auto all = store.read_all(1, SIZE_MAX);
  REQUIRE(all.size() == expected_total);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i + 1);
  CHECK(store.head_position() == expected_total);
}

}  // namespace

TEMPLATE_TEST_CASE("four threads appending optimistically to one stream lose nothing",
                   "[store][race][concurrency]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open("synchronous=normal");
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kPerThread = 40;
  std::atomic<std::size_t> conflicts{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      conflicts += append_optimistically(*store, "shared", kPerThread, "t" + std::to_string(t));
    });
  }
  for (auto& t : threads) t.join();
  check_log(*store, "shared", kThreads * kPerThread, kThreads * kPerThread);
  // Each success and each conflict was an append; successes are exactly the stream length.
  INFO("conflicts: " << conflicts.load());
}

TEST_CASE("two processes appending optimistically to one SQLite file lose nothing",
          "[store][race][concurrency][sqlite]") {
  annals::test::TempDir dir;
  const std::string uri = dir.sqlite_uri("shared.db", "synchronous=normal");
  // Create the schema first so both children open an existing store.
  open_event_store(uri)->append("setup", ExpectedVersion::no_stream(), {make_event()});

  constexpr std::size_t kPerProcess = 60;
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        auto store = open_event_store(uri);
        append_optimistically(*store, "shared", kPerProcess, "p" + std::to_string(child));
        // Each process also writes to a stream of its own in between.
        store->append("own-" + std::to_string(child), ExpectedVersion::no_stream(),
                      {make_event(), make_event()});
      } catch (...) {
        code = 1;
      }
      ::_exit(code);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  auto store = open_event_store(uri);
  check_log(*store, "shared", 2 * kPerProcess, 1 + 2 * kPerProcess + 4);
  CHECK(store->stream_version("own-0") == 2u);
  CHECK(store->stream_version("own-1") == 2u);
}
