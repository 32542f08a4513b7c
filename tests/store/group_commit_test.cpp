// Group commit: concurrent appends share one transaction, each checked and refused on its own.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <thread>
#include <cstdio>
#include <cstdlib>

#include "annals/projections/engine.hpp"
#include "annals/projections/projection.hpp"
#include "annals/store/hash_chain.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::make_event;

// Allocation failure injection for the tests below: when set on a thread, that thread's next
// operator new throws std::bad_alloc. Off everywhere else, so the rest of the binary is
// unaffected.
namespace {
thread_local bool fail_next_allocation = false;
}  // namespace

// GCC sees free() paired with operator new once both are inlined; here they do match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  if (fail_next_allocation) {
    fail_next_allocation = false;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
// The other forms are replaced too, so that every unaligned new/delete pair (including those a
// sanitizer's runtime would otherwise provide) goes through malloc/free.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return operator new(n, std::nothrow);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

// A hook made of functions, recording what it heard.
class RecordingHook final : public AppendHook {
 public:
  std::function<void(SqlSession&, const std::vector<RecordedEvent>&)> append_fn;

  void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) override {
    if (append_fn) append_fn(sql, appended);
  }
  void on_commit(const std::vector<RecordedEvent>& appended) noexcept override {
    std::lock_guard lock(mutex);
    committed.push_back(appended.front().stream_id);
  }
  void on_rollback(const std::vector<RecordedEvent>& appended) noexcept override {
    std::lock_guard lock(mutex);
    rolled_back.push_back(appended.front().stream_id);
  }

  std::mutex mutex;
  std::vector<std::string> committed, rolled_back;
};

// Records without allocating (stream names short enough for the small-string buffer, into
// reserved space), so it can run while allocations are made to fail.
class QuietHook final : public AppendHook {
 public:
  QuietHook() {
    committed.reserve(16);
    rolled_back.reserve(16);
  }
  std::function<void(SqlSession&, const std::vector<RecordedEvent>&)> append_fn;
  std::function<void(const std::vector<RecordedEvent>&)> rollback_fn;  // must not throw
  void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) override {
    if (append_fn) append_fn(sql, appended);
  }
  void on_commit(const std::vector<RecordedEvent>& appended) noexcept override {
    std::lock_guard lock(mutex);
    if (committed.size() < committed.capacity()) committed.push_back(appended.front().stream_id);
  }
  void on_rollback(const std::vector<RecordedEvent>& appended) noexcept override {
    if (rollback_fn) rollback_fn(appended);
    std::lock_guard lock(mutex);
    if (rolled_back.size() < rolled_back.capacity()) {
      rolled_back.push_back(appended.front().stream_id);
    }
  }
  std::mutex mutex;
  std::vector<std::string> committed, rolled_back;
};

// Waits (up to 10 s) until `n` appends are queued behind the running group.
bool wait_queued(const SqlEventStore& store, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.group_commit_stats().queued < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// What one thread's append call ended with.
struct Outcome {
  std::optional<AppendResult> result;
  std::exception_ptr error;
};

// Runs `gate` in a group of its own whose hook waits until the `others` are queued, so that
// they then form one group together, in the order given (each is started once the previous
// one is queued). Returns each call's outcome, gate's first. The hook's append_fn is restored
// before returning, so the wrapper installed here never outlives the locals it refers to.
template <class Hook>
std::vector<Outcome> run_gated(SqlEventStore& store, Hook& hook,
                               std::vector<std::function<AppendResult()>> others) {
  std::atomic<bool> gate_open{false};
  std::atomic<bool> queued_in_time{true};
  const std::uint64_t n = others.size();
  const auto inner = hook.append_fn;
  hook.append_fn = [&, inner](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "gate" && !gate_open.exchange(true)) {
      if (!wait_queued(store, n)) queued_in_time = false;
    }
    if (inner) inner(sql, appended);
  };
  std::vector<Outcome> outcomes(n + 1);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    try {
      outcomes[0].result = store.append("gate", ExpectedVersion::any(), {make_event()});
    } catch (...) {
      outcomes[0].error = std::current_exception();
    }
  });
  while (!gate_open) std::this_thread::yield();
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        outcomes[i + 1].result = others[i]();
      } catch (...) {
        outcomes[i + 1].error = std::current_exception();
      }
    });
    // The last one is awaited by the gate, which then lets the group run (queued drops).
    if (i + 1 < n && !wait_queued(store, i + 1)) queued_in_time = false;
  }
  for (std::thread& t : threads) t.join();
  hook.append_fn = inner;
  REQUIRE(queued_in_time);
  return outcomes;
}

template <class E>
bool fails_with(const Outcome& o) {
  if (!o.error) return false;
  try {
    std::rethrow_exception(o.error);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string error_text(const Outcome& o) {
  try {
    std::rethrow_exception(o.error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

// Positions 1..head with no gap, and a hash chain that verifies.
void check_log_intact(const SqlEventStore& store) {
  const auto all = store.read_all(1, SIZE_MAX);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i + 1);
  REQUIRE(store.head_position() == all.size());
  const LogVerification v = verify_log(store);
  CHECK(v.events == all.size());
}

std::string memory_or_file(const test::TempDir& dir, bool memory, const std::string& options) {
  return memory ? "memory:?" + options : dir.sqlite_uri("events.db", options);
}

}  // namespace

TEST_CASE("threads appending at once to their own and a shared stream lose and repeat nothing",
          "[store][group_commit][concurrency]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  const std::string mode = GENERATE(std::string("on"), std::string("off"));
  CAPTURE(memory, mode);
  auto store =
      open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal&group_commit=" + mode));
  store->write_transaction(
      [](SqlSession& sql) { sql.execute("CREATE TABLE side (n INTEGER NOT NULL)"); });

  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::mutex mutex;
  std::map<std::string, AppendResult> acknowledged;  // payload -> result
  std::atomic<int> conflicts{0}, own_conflicts{0}, other_errors{0}, calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "own-" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const bool shared = i % 2 == 1;
        const std::string stream = shared ? "shared" : own;
        const std::string payload =
            "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}";
        const auto version = store->stream_version(stream);
        try {
          ++calls;
          const AppendResult r = store->append(stream, ExpectedVersion::exactly(version.value_or(0)),
                                               {make_event("Tick", payload)});
          std::lock_guard lock(mutex);
          acknowledged.emplace(payload, r);
        } catch (const ConcurrencyError&) {
          ++(shared ? conflicts : own_conflicts);  // Catch2 asserts only on the main thread
        } catch (...) {
          ++other_errors;
        }
        if (t == 0 && i % 8 == 0) {  // write transactions take turns with the groups
          store->write_transaction([](SqlSession& sql) { sql.execute("INSERT INTO side VALUES (1)"); });
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  CHECK(other_errors == 0);
  CHECK(own_conflicts == 0);  // only the shared stream can conflict
  const auto all = store->read_all(1, SIZE_MAX);
  REQUIRE(all.size() == acknowledged.size());
  std::set<std::string> seen;
  for (const RecordedEvent& e : all) {
    REQUIRE(seen.insert(e.payload).second);  // exactly once
    auto it = acknowledged.find(e.payload);
    REQUIRE(it != acknowledged.end());
    CHECK(it->second.first_position == e.position);
    CHECK(it->second.last_position == e.position);
    CHECK(it->second.stream_version == e.version);
  }
  for (int t = 0; t < kThreads; ++t) {
    CHECK(store->stream_version("own-" + std::to_string(t)) == std::uint64_t{kPerThread / 2});
  }
  const auto shared = store->read_stream("shared");
  for (std::size_t i = 0; i < shared.size(); ++i) REQUIRE(shared[i].version == i + 1);
  CHECK(shared.size() + static_cast<std::size_t>(conflicts.load()) ==
        std::size_t{kThreads * kPerThread / 2});
  check_log_intact(*store);

  const GroupCommitStats stats = store->group_commit_stats();
  CHECK(stats.requests == static_cast<std::uint64_t>(calls.load()));
  // Only an accounting check: whether appends really share groups is proven by the gated
  // tests below, which make a group of a known size.
  CHECK(stats.groups <= stats.requests);
  CHECK(stats.queued == 0);
  if (mode == "off") CHECK(stats.max_group == 1);
  std::int64_t side = 0;
  store->read_transaction(
      [&](SqlSession& sql) { side = sql.query("SELECT count(*) FROM side").at(0).integer(0); });
  CHECK(side == kPerThread / 8);
}

TEST_CASE("a conflicting or duplicate append in a group fails alone and the others commit",
          "[store][group_commit][concurrency]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  NewEvent existing = make_event();
  existing.event_id = boost::uuids::uuid{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
  store->append("existing", ExpectedVersion::no_stream(), {existing});
  auto hook = std::make_shared<RecordingHook>();
  store->add_append_hook(hook);
  const GroupCommitStats before = store->group_commit_stats();

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("s1", ExpectedVersion::no_stream(), {make_event(), make_event()}); },
       [&] { return store->append("s2", ExpectedVersion::exactly(5), {make_event()}); },
       [&] { return store->append("s3", ExpectedVersion::no_stream(), {existing}); },
       [&] { return store->append("s4", ExpectedVersion::no_stream(), {make_event()}); }});

  REQUIRE(outcomes[0].result);
  REQUIRE(outcomes[1].result);
  REQUIRE(fails_with<ConcurrencyError>(outcomes[2]));
  CHECK_THAT(error_text(outcomes[2]), Catch::Contains("s2") && Catch::Contains("version 5"));
  REQUIRE(fails_with<InvalidArgument>(outcomes[3]));
  CHECK_THAT(error_text(outcomes[3]), Catch::Contains("already in the store"));
  REQUIRE(outcomes[4].result);

  const GroupCommitStats after = store->group_commit_stats();
  CHECK(after.groups - before.groups == 2);  // the gate alone, then the four together
  CHECK(after.requests - before.requests == 5);
  CHECK(after.max_group == 4);

  // s1 and s4 follow the gate in some order, with no gap where s2 and s3 were refused.
  CHECK(outcomes[0].result->first_position == 2);
  std::set<std::uint64_t> firsts{outcomes[1].result->first_position,
                                 outcomes[4].result->first_position};
  CHECK((firsts == std::set<std::uint64_t>{3, 5} || firsts == std::set<std::uint64_t>{3, 4}));
  CHECK(store->head_position() == 5);
  CHECK_FALSE(store->stream_version("s2"));
  CHECK_FALSE(store->stream_version("s3"));
  CHECK(store->stream_version("s1") == std::uint64_t{2});
  CHECK(store->stream_version("s4") == std::uint64_t{1});
  check_log_intact(*store);

  // The refused appends never reached on_append (they failed before it): nothing to roll back.
  std::lock_guard lock(hook->mutex);
  CHECK(hook->rolled_back.empty());
  CHECK(std::multiset<std::string>(hook->committed.begin(), hook->committed.end()) ==
        std::multiset<std::string>{"gate", "s1", "s4"});
}

TEST_CASE("a hook that throws fails only its own append and its writes are rolled back",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  store->write_transaction(
      [](SqlSession& sql) { sql.execute("CREATE TABLE seen (stream TEXT NOT NULL)"); });
  auto hook = std::make_shared<RecordingHook>();
  hook->append_fn = [](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    sql.execute("INSERT INTO seen VALUES ($1)", {appended.front().stream_id});
    if (appended.front().stream_id == "bad") throw InvalidArgument("the hook refuses bad");
  };
  store->add_append_hook(hook);
  const GroupCommitStats before = store->group_commit_stats();

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("ok1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("bad", ExpectedVersion::any(), {make_event(), make_event()}); },
       [&] { return store->append("ok2", ExpectedVersion::any(), {make_event()}); }});

  REQUIRE(outcomes[0].result);
  REQUIRE(outcomes[1].result);
  REQUIRE(fails_with<InvalidArgument>(outcomes[2]));
  CHECK_THAT(error_text(outcomes[2]), Catch::Contains("the hook refuses bad"));
  REQUIRE(outcomes[3].result);
  CHECK(store->group_commit_stats().groups - before.groups == 2);
  CHECK(store->group_commit_stats().max_group == 3);

  CHECK_FALSE(store->stream_version("bad"));
  CHECK(store->head_position() == 3);
  check_log_intact(*store);
  std::vector<std::string> seen;
  store->read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT stream FROM seen ORDER BY stream")) {
      seen.push_back(row.text(0));
    }
  });
  CHECK(seen == std::vector<std::string>{"gate", "ok1", "ok2"});
  std::lock_guard lock(hook->mutex);
  CHECK(hook->rolled_back == std::vector<std::string>{"bad"});
  CHECK(std::multiset<std::string>(hook->committed.begin(), hook->committed.end()) ==
        std::multiset<std::string>{"gate", "ok1", "ok2"});
}

TEST_CASE("when the group's transaction is lost every append in it fails and hooks hear so",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  auto hook = std::make_shared<RecordingHook>();
  // Ends the transaction under the writer's feet, as an I/O error that makes SQLite roll back
  // would: the appends kept before it in the group are lost with it.
  hook->append_fn = [](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "saboteur") sql.execute_script("ROLLBACK");
  };
  store->add_append_hook(hook);

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("k1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("saboteur", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("k2", ExpectedVersion::any(), {make_event()}); }});

  REQUIRE(outcomes[0].result);
  for (std::size_t i = 1; i < outcomes.size(); ++i) REQUIRE(fails_with<StoreError>(outcomes[i]));
  CHECK(store->head_position() == 1);
  CHECK_FALSE(store->stream_version("k1"));
  CHECK_FALSE(store->stream_version("k2"));
  {
    std::lock_guard lock(hook->mutex);
    CHECK(hook->committed == std::vector<std::string>{"gate"});
    // The group runs k1, saboteur, k2 in that order: the saboteur's own rollback, then the
    // kept k1's; k2 never reached on_append.
    CHECK(hook->rolled_back == std::vector<std::string>{"saboteur", "k1"});
  }
  // The store carries on.
  store->append("after", ExpectedVersion::no_stream(), {make_event()});
  CHECK(store->head_position() == 2);
  check_log_intact(*store);
}

TEST_CASE("appending from inside a hook or a write transaction of the same store is refused",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  const std::string mode = GENERATE(std::string("on"), std::string("off"));
  CAPTURE(memory, mode);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "group_commit=" + mode));
  auto hook = std::make_shared<RecordingHook>();
  std::string inner_error;
  hook->append_fn = [&](SqlSession&, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id != "outer") return;
    try {
      store->append("inner", ExpectedVersion::any(), {make_event()});
    } catch (const InvalidArgument& e) {
      inner_error = e.what();
      throw;
    }
  };
  store->add_append_hook(hook);

  CHECK_THROWS_AS(store->append("outer", ExpectedVersion::any(), {make_event()}), InvalidArgument);
  CHECK_THAT(inner_error, Catch::Contains("append to inner") && Catch::Contains("same thread"));
  CHECK(store->head_position() == 0);

  CHECK_THROWS_WITH(store->write_transaction([&](SqlSession&) {
    (void)store->append("inner", ExpectedVersion::any(), {make_event()});
  }),
                    Catch::Contains("same thread"));
  CHECK_THROWS_AS(store->write_transaction([&](SqlSession&) {
    store->write_transaction([](SqlSession&) {});
  }),
                  InvalidArgument);
  CHECK(store->head_position() == 0);

  // The store still works, and a commit listener (outside the writer) may append.
  std::atomic<int> echoes{0};
  store->add_commit_listener([&](std::uint64_t) {
    if (echoes++ == 0) store->append("echo", ExpectedVersion::any(), {make_event()});
  });
  store->append("plain", ExpectedVersion::any(), {make_event()});
  CHECK(store->stream_version("plain") == std::uint64_t{1});
  CHECK(store->stream_version("echo") == std::uint64_t{1});
  check_log_intact(*store);
}

TEST_CASE("group_commit off runs every append in its own transaction",
          "[store][group_commit]") {
  test::TempDir dir;
  StoreOptions options;
  options.group_commit = false;
  options.synchronous = Synchronous::normal;
  auto store = open_sql_event_store(dir.sqlite_uri(), options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        store->append("s" + std::to_string(t), ExpectedVersion::any(), {make_event()});
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const GroupCommitStats stats = store->group_commit_stats();
  CHECK(stats.groups == 100);
  CHECK(stats.requests == 100);
  CHECK(stats.max_group == 1);
  check_log_intact(*store);

  // The URI option overrides StoreOptions.
  auto on = open_sql_event_store(dir.sqlite_uri("on.db", "group_commit=on"), options);
  on->append("s", ExpectedVersion::any(), {make_event()});
  CHECK(on->group_commit_stats().requests == 1);
}

TEST_CASE("the group_commit URI option takes on or off", "[store][group_commit][uri]") {
  test::TempDir dir;
  CHECK_NOTHROW(open_event_store(dir.sqlite_uri("a.db", "group_commit=off")));
  CHECK_NOTHROW(open_event_store("memory:?group_commit=on"));
  CHECK_THROWS_AS(open_event_store(dir.sqlite_uri("b.db", "group_commit=yes")), InvalidArgument);
  CHECK_THROWS_WITH(open_event_store(dir.sqlite_uri("b.db", "group_commit=yes")),
                    Catch::Contains("group_commit 'yes': expected on or off"));
  CHECK_THROWS_WITH(open_event_store("memory:?group_commit="),
                    Catch::Contains("group_commit '': expected on or off"));
  CHECK_THROWS_WITH(open_event_store("memory:?group_commit=on&group_commit=off"),
                    Catch::Contains("option 'group_commit' given twice"));
  CHECK_THROWS_WITH(open_event_store("memory:?group=on"),
                    Catch::Contains("unknown option 'group'") && Catch::Contains("group_commit"));
  CHECK_FALSE(std::filesystem::exists(dir.file("b.db")));
}


TEST_CASE("an append made from a memory: store's read transaction is refused, not hung",
          "[store][group_commit][concurrency]") {
  const std::string mode = GENERATE(std::string("on"), std::string("off"));
  CAPTURE(mode);
  auto store = open_sql_event_store("memory:?group_commit=" + mode);
  std::atomic<bool> reading{false}, refused{false}, other_error{false};
  // The reader holds the memory: store's only connection; another thread's append becomes
  // the leader and waits for it; then the reader appends. It must be refused at once, not
  // queue behind the leader that waits for it.
  auto reader = std::async(std::launch::async, [&] {
    store->read_transaction([&](SqlSession&) {
      reading = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      try {
        store->append("inner", ExpectedVersion::any(), {make_event()});
      } catch (const InvalidArgument&) {
        refused = true;
      } catch (...) {
        other_error = true;
      }
    });
  });
  while (!reading) std::this_thread::yield();
  auto other = std::async(std::launch::async, [&] {
    store->append("other", ExpectedVersion::any(), {make_event()});
  });
  if (reader.wait_for(std::chrono::seconds(10)) != std::future_status::ready ||
      other.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::fputs("an append from inside a read transaction hung\n", stderr);
    std::abort();  // a regression must fail, not hang the suite
  }
  reader.get();
  other.get();
  CHECK(refused);
  CHECK_FALSE(other_error);
  CHECK_FALSE(store->stream_version("inner"));
  CHECK(store->stream_version("other") == std::uint64_t{1});

  // With no other append about: still refused, and the store works afterwards.
  CHECK_THROWS_WITH(store->read_transaction([&](SqlSession&) {
    (void)store->append("inner", ExpectedVersion::any(), {make_event()});
  }),
                    Catch::Contains("same thread"));
  // Reads nest inside a hook's append (same thread, writer held) and do not unmark it.
  auto hook = std::make_shared<RecordingHook>();
  std::string nested_error;
  hook->append_fn = [&](SqlSession&, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id != "outer") return;
    (void)store->head_position();
    try {
      store->append("nested", ExpectedVersion::any(), {make_event()});
    } catch (const InvalidArgument& e) {
      nested_error = e.what();
    }
  };
  store->add_append_hook(hook);
  store->append("outer", ExpectedVersion::any(), {make_event()});
  CHECK_THAT(nested_error, Catch::Contains("same thread"));
  store->append("after", ExpectedVersion::any(), {make_event()});
  CHECK(store->head_position() == 3);
  check_log_intact(*store);
}

TEST_CASE("two appends of one group carrying the same event id: the second is refused",
          "[store][group_commit]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  auto hook = std::make_shared<RecordingHook>();
  store->add_append_hook(hook);
  NewEvent same = make_event();
  same.event_id = boost::uuids::uuid{{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}};

  const bool first_refused = GENERATE(false, true);
  CAPTURE(first_refused);
  if (!first_refused) {  // the first commits, the second fails as a duplicate
    const auto outcomes = run_gated(
        *store, *hook,
        {[&] { return store->append("a", ExpectedVersion::no_stream(), {same}); },
         [&] { return store->append("b", ExpectedVersion::no_stream(), {same}); }});
    REQUIRE(outcomes[1].result);
    CHECK(outcomes[1].result->first_position == 2);
    REQUIRE(fails_with<InvalidArgument>(outcomes[2]));
    CHECK_THAT(error_text(outcomes[2]), Catch::Contains("already in the store"));
    CHECK(store->read_all(2, 1).at(0).event_id == same.event_id);
    CHECK(store->head_position() == 2);
  } else {  // the first is refused (conflict), so the second with the same id commits
    const auto outcomes = run_gated(
        *store, *hook,
        {[&] { return store->append("a", ExpectedVersion::exactly(5), {same}); },
         [&] { return store->append("b", ExpectedVersion::no_stream(), {same}); }});
    REQUIRE(fails_with<ConcurrencyError>(outcomes[1]));
    REQUIRE(outcomes[2].result);
    CHECK(outcomes[2].result->first_position == 2);
    const auto all = store->read_all(2, 1);
    CHECK(all.at(0).stream_id == "b");
    CHECK(all.at(0).event_id == same.event_id);
    CHECK(store->head_position() == 2);
  }
  CHECK(store->group_commit_stats().max_group == 2);
  check_log_intact(*store);
}

TEST_CASE("an allocation failing after an append was written does not leave it half kept",
          "[store][group_commit][hooks]") {
  const std::string mode = GENERATE(std::string("on"), std::string("off"));
  CAPTURE(mode);
  auto store = open_sql_event_store("memory:?group_commit=" + mode);
  auto hook = std::make_shared<QuietHook>();
  // The next allocation after x's on_append fails: keeping x must not need one.
  hook->append_fn = [](SqlSession&, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "x") fail_next_allocation = true;
  };
  store->add_append_hook(hook);
  std::exception_ptr error;
  try {
    store->append("x", ExpectedVersion::any(), {make_event()});
  } catch (...) {
    error = std::current_exception();
  }
  fail_next_allocation = false;  // in case nothing after on_append allocated (as it should be)
  const std::uint64_t head = store->head_position();
  std::lock_guard lock(hook->mutex);
  if (error) {  // refused: then wholly
    CHECK(head == 0);
    CHECK(hook->committed.empty());
    CHECK(hook->rolled_back == std::vector<std::string>{"x"});
  } else {  // kept: then wholly
    CHECK(head == 1);
    CHECK(hook->committed == std::vector<std::string>{"x"});
    CHECK(hook->rolled_back.empty());
  }
}

TEST_CASE("an exception escaping a lost group never acknowledges the appends kept in it",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  auto quiet = std::make_shared<QuietHook>();
  // The saboteur ends the transaction (as an I/O error would) and then, once its rollback is
  // heard, the leader runs out of memory while telling the others why.
  quiet->append_fn = [](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "saboteur") sql.execute_script("ROLLBACK");
  };
  quiet->rollback_fn = [](const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "saboteur") fail_next_allocation = true;
  };
  store->add_append_hook(quiet);

  const auto outcomes = run_gated(
      *store, *quiet,
      {[&] { return store->append("k1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("saboteur", ExpectedVersion::any(), {make_event()}); }});
  REQUIRE(outcomes[0].result);
  CHECK(outcomes[1].error);  // k1 was written, but its transaction is gone
  CHECK(outcomes[2].error);
  CHECK(store->head_position() == 1);
  CHECK_FALSE(store->stream_version("k1"));
  {
    std::lock_guard lock(quiet->mutex);
    CHECK(quiet->committed == std::vector<std::string>{"gate"});
    CHECK(quiet->rolled_back == std::vector<std::string>{"saboteur", "k1"});
  }
  store->append("after", ExpectedVersion::no_stream(), {make_event()});
  check_log_intact(*store);
}

TEST_CASE("a savepoint that cannot be released fails only its own append",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  store->write_transaction(
      [](SqlSession& sql) { sql.execute("CREATE TABLE side (n INTEGER NOT NULL)"); });
  auto hook = std::make_shared<RecordingHook>();
  std::unique_ptr<SqlCursor> held;  // a write statement left unfinished: RELEASE is BUSY
  hook->append_fn = [&](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id != "blocker") return;
    held = sql.open_cursor("INSERT INTO side VALUES (1), (2) RETURNING n");
    SqlRow row;
    held->next(row);
  };
  store->add_append_hook(hook);
  // The blocker's own rollback finishes the statement, so the transaction is still usable.
  struct Cleanup final : AppendHook {
    std::unique_ptr<SqlCursor>* held;
    explicit Cleanup(std::unique_ptr<SqlCursor>* h) : held(h) {}
    void on_append(SqlSession&, const std::vector<RecordedEvent>&) override {}
    void on_commit(const std::vector<RecordedEvent>&) noexcept override {}
    void on_rollback(const std::vector<RecordedEvent>&) noexcept override { held->reset(); }
  };
  store->add_append_hook(std::make_shared<Cleanup>(&held));

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("k1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("blocker", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("k2", ExpectedVersion::any(), {make_event()}); }});
  REQUIRE(outcomes[0].result);
  REQUIRE(outcomes[1].result);  // not lost: the transaction was still alive
  REQUIRE(fails_with<StoreError>(outcomes[2]));
  CHECK_THAT(error_text(outcomes[2]), Catch::Contains("append to blocker"));
  REQUIRE(outcomes[3].result);
  CHECK(store->head_position() == 3);
  CHECK_FALSE(store->stream_version("blocker"));
  std::int64_t side = -1;
  store->read_transaction(
      [&](SqlSession& sql) { side = sql.query("SELECT count(*) FROM side").at(0).integer(0); });
  CHECK(side == 0);
  check_log_intact(*store);
}

TEST_CASE("a failing COMMIT fails every append of the group and leaves no transaction open",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  store->write_transaction(
      [](SqlSession& sql) { sql.execute("CREATE TABLE side (n INTEGER NOT NULL)"); });
  auto hook = std::make_shared<RecordingHook>();
  // A write statement left unfinished until the group's end: the blocker fails at its RELEASE
  // (alone), and the still-pending statement then makes the COMMIT fail (BUSY) while the
  // transaction is open.
  std::unique_ptr<SqlCursor> held;
  hook->append_fn = [&](SqlSession& sql, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id != "blocker") return;
    held = sql.open_cursor("INSERT INTO side VALUES (1), (2) RETURNING n");
    SqlRow row;
    held->next(row);
  };
  store->add_append_hook(hook);

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("k1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("blocker", ExpectedVersion::any(), {make_event()}); }});
  held.reset();
  REQUIRE(outcomes[0].result);
  REQUIRE(fails_with<StoreError>(outcomes[1]));
  CHECK_THAT(error_text(outcomes[1]), Catch::Contains("append to k1") && Catch::Contains("commit"));
  REQUIRE(fails_with<StoreError>(outcomes[2]));
  CHECK_THAT(error_text(outcomes[2]), Catch::Contains("append to blocker"));
  {
    std::lock_guard lock(hook->mutex);
    CHECK(hook->committed == std::vector<std::string>{"gate"});
    CHECK(hook->rolled_back == std::vector<std::string>{"blocker", "k1"});
  }
  CHECK(store->head_position() == 1);
  // No transaction left open: the store works, from this and from another store object.
  store->append("after", ExpectedVersion::no_stream(), {make_event()});
  store->write_transaction([](SqlSession& sql) { sql.execute("INSERT INTO side VALUES (3)"); });
  std::int64_t side = -1;
  store->read_transaction(
      [&](SqlSession& sql) { side = sql.query("SELECT count(*) FROM side").at(0).integer(0); });
  CHECK(side == 1);
  if (!memory) {
    auto again = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
    CHECK(again->head_position() == 2);
    again->append("other", ExpectedVersion::no_stream(), {make_event()});
  }
  check_log_intact(*store);
}

TEST_CASE("a failing BEGIN fails every append waiting for it with a transient StoreError",
          "[store][group_commit]") {
  test::TempDir dir;
  const std::string mode = GENERATE(std::string("on"), std::string("off"));
  CAPTURE(mode);
  auto store = open_sql_event_store(
      dir.sqlite_uri("events.db", "busy_timeout_ms=0&synchronous=normal&group_commit=" + mode));
  auto holder = open_sql_event_store(dir.sqlite_uri("events.db", "synchronous=normal"));
  std::promise<void> locked, release;
  std::thread writer([&] {
    holder->write_transaction([&](SqlSession&) {
      locked.set_value();
      release.get_future().wait();
    });
  });
  locked.get_future().wait();
  constexpr int kThreads = 4;
  std::atomic<int> transient{0}, other{0}, succeeded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        store->append("s" + std::to_string(t), ExpectedVersion::any(), {make_event()});
        ++succeeded;
      } catch (const StoreError& e) {
        ++(e.transient() ? transient : other);
      } catch (...) {
        ++other;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  release.set_value();
  writer.join();
  CHECK(transient == kThreads);
  CHECK(other == 0);
  CHECK(succeeded == 0);
  CHECK(store->head_position() == 0);
  store->append("after", ExpectedVersion::no_stream(), {make_event()});
  CHECK(store->head_position() == 1);
  check_log_intact(*store);
}

TEST_CASE("each append's on_commit runs on its own caller's thread",
          "[store][group_commit][hooks]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  std::mutex mutex;
  std::map<std::string, std::thread::id> committed_on, appended_from;
  struct ThreadHook final : AppendHook {
    std::function<void(const std::vector<RecordedEvent>&)> commit_fn;
    void on_append(SqlSession&, const std::vector<RecordedEvent>&) override {}
    void on_commit(const std::vector<RecordedEvent>& appended) noexcept override {
      commit_fn(appended);
    }
  };
  auto threads_hook = std::make_shared<ThreadHook>();
  threads_hook->commit_fn = [&](const std::vector<RecordedEvent>& appended) {
    std::lock_guard lock(mutex);
    committed_on[appended.front().stream_id] = std::this_thread::get_id();
  };
  store->add_append_hook(threads_hook);
  auto hook = std::make_shared<RecordingHook>();
  store->add_append_hook(hook);
  auto from_here = [&](const std::string& stream) {
    {
      std::lock_guard lock(mutex);
      appended_from[stream] = std::this_thread::get_id();
    }
    return store->append(stream, ExpectedVersion::any(), {make_event()});
  };
  const auto outcomes = run_gated(*store, *hook,
                                  {[&] { return from_here("a"); }, [&] { return from_here("b"); },
                                   [&] { return from_here("c"); }});
  for (const Outcome& o : outcomes) REQUIRE(o.result);
  CHECK(store->group_commit_stats().max_group == 3);
  std::lock_guard lock(mutex);
  for (const std::string s : {"a", "b", "c"}) {
    CAPTURE(s);
    REQUIRE(committed_on.count(s) == 1);
    CHECK(committed_on[s] == appended_from[s]);
  }
}

namespace {

// Counts, per stream, the inline-projection notifications it gets.
class CountingProjection final : public Projection {
 public:
  std::string name() const override { return "counting"; }
  std::uint32_t version() const override { return 1; }
  std::vector<std::string> handled_types() const override { return {}; }
  std::vector<ProjectionTable> tables() const override { return {{"counting_rows", {"position"}}}; }
  void setup(ProjectionContext& ctx) override {
    ctx.sql().execute("CREATE TABLE IF NOT EXISTS " + ctx.table("counting_rows") +
                      " (position INTEGER PRIMARY KEY)");
  }
  void apply(const RecordedEvent& event, ProjectionContext& ctx) override {
    ctx.sql().execute("INSERT INTO " + ctx.table("counting_rows") + " VALUES ($1)",
                      {static_cast<std::int64_t>(event.position)});
  }
  void committing(const std::vector<RecordedEvent>& events) noexcept override {
    count(committing_, events);
  }
  void committed(const std::vector<RecordedEvent>& events) noexcept override {
    count(committed_, events);
  }
  void rolled_back(const std::vector<RecordedEvent>& events) noexcept override {
    count(rolled_back_, events);
  }

  std::mutex mutex;
  std::map<std::string, int> committing_, committed_, rolled_back_;

 private:
  void count(std::map<std::string, int>& m, const std::vector<RecordedEvent>& events) noexcept {
    std::lock_guard lock(mutex);
    ++m[events.front().stream_id];
  }
};

}  // namespace

TEST_CASE("an inline projection hears committed or rolled_back once per committing in a group",
          "[store][group_commit][hooks][projections]") {
  test::TempDir dir;
  const bool memory = GENERATE(false, true);
  CAPTURE(memory);
  auto store = open_sql_event_store(memory_or_file(dir, memory, "synchronous=normal"));
  auto projection = std::make_shared<CountingProjection>();
  attach_inline_projections(*store, {projection});
  // Runs after the projection's on_append: "bad" is rolled back to its savepoint after the
  // projection's committing() for it, while the others of its group commit.
  auto hook = std::make_shared<RecordingHook>();
  hook->append_fn = [](SqlSession&, const std::vector<RecordedEvent>& appended) {
    if (appended.front().stream_id == "bad") throw InvalidArgument("refused after projecting");
  };
  store->add_append_hook(hook);

  const auto outcomes = run_gated(
      *store, *hook,
      {[&] { return store->append("k1", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("bad", ExpectedVersion::any(), {make_event()}); },
       [&] { return store->append("k2", ExpectedVersion::any(), {make_event()}); }});
  REQUIRE(outcomes[0].result);
  REQUIRE(outcomes[1].result);
  REQUIRE(fails_with<InvalidArgument>(outcomes[2]));
  REQUIRE(outcomes[3].result);
  CHECK(store->group_commit_stats().max_group == 3);

  {
    std::lock_guard lock(projection->mutex);  // not held across the read below (lock order)
    using Counts = std::map<std::string, int>;
    CHECK(projection->committing_ == Counts{{"gate", 1}, {"k1", 1}, {"bad", 1}, {"k2", 1}});
    CHECK(projection->committed_ == Counts{{"gate", 1}, {"k1", 1}, {"k2", 1}});
    CHECK(projection->rolled_back_ == Counts{{"bad", 1}});
  }
  std::int64_t rows = -1;
  store->read_transaction([&](SqlSession& sql) {
    rows = sql.query("SELECT count(*) FROM counting_rows").at(0).integer(0);
  });
  CHECK(rows == 3);
}
