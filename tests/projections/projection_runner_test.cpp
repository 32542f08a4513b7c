// The async projection runner: catch-up in batches, wake-ups, polling, failures that stop at the
// event, transient errors retried, clean stop and destruction, no double-apply across runners.

#include "annals/projections/projection_runner.hpp"

#include <SQLiteCpp/Database.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "annals/projections/checkpoint.hpp"
#include "annals/projections/engine.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/counting_projection.hpp"
#include "support/io_thread.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using namespace std::chrono_literals;
using annals::test::CountingProjection;
using annals::test::make_event;
using annals::test::TempDir;
using Catch::Matchers::Contains;

namespace {

// Generous: these are limits for a hung runner, not expectations.
constexpr std::chrono::milliseconds kWait = 10s;

using annals::test::eventually;

// An io_context run by background threads, joined on destruction. Declare it before the runners
// that use it, so that they are destroyed first.
class IoThreads {
 public:
  explicit IoThreads(std::size_t n = 1) {
    for (std::size_t i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        io.run();
        ++finished_;
      });
    }
  }
  ~IoThreads() {
    work_.reset();
    io.stop();
    for (auto& t : threads_) t.join();
  }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  // Lets the threads return once the io_context has no work left; true if all of them did.
  bool finish(std::chrono::milliseconds timeout = kWait) {
    work_.reset();
    return eventually([&] { return finished_ == threads_.size(); }, timeout);
  }

  boost::asio::io_context io;

 private:
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io);
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> finished_{0};
};

// A store object on the place's database: a file in a temp dir, or a schema on PostgreSQL.
template <class Place>
std::shared_ptr<SqlEventStore> open_store(const Place& dir, const std::string& options = "") {
  return open_sql_event_store(annals::test::store_uri(
      dir, "events.db", "synchronous=normal" + (options.empty() ? "" : "&" + options)));
}

// Appends `count` events, event at position p to stream "s-<p % streams>", of type "Boom" at
// position boom_at and "Thing" elsewhere; 100 events per transaction. Same input, same log.
void append_log(EventStore& store, std::size_t count, std::uint64_t boom_at = 0,
                std::size_t streams = 7) {
  std::uint64_t next = store.head_position() + 1;
  for (std::size_t done = 0; done < count;) {
    std::vector<StreamAppend> batch;
    for (std::size_t i = 0; i < 100 && done < count; ++i, ++done, ++next) {
      batch.push_back(StreamAppend{"s-" + std::to_string(next % streams),
                                   ExpectedVersion::any(),
                                   {make_event(next == boom_at ? "Boom" : "Thing")}});
    }
    store.append(std::move(batch));
  }
}

// Holds the store's write lock from outside, as another process would.
#ifdef ANNALS_TEST_PG_ONLY
using WriteLock = annals::test::PgWriteLock;
#else
struct WriteLock {
  explicit WriteLock(const TempDir& dir) : db(dir.file("events.db"), SQLite::OPEN_READWRITE) {
    db.exec("BEGIN IMMEDIATE");
  }
  void release() { db.exec("ROLLBACK"); }
  SQLite::Database db;
};
#endif

using Row = std::tuple<std::string, std::int64_t, std::string, std::int64_t>;

// Every row of the counting projection: (stream_id, events, last_type, last_position).
std::vector<Row> rows(SqlEventStore& store) {
  std::vector<Row> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& r : sql.query("SELECT stream_id, events, last_type, last_position"
                                     " FROM annals_test_counts ORDER BY stream_id")) {
      out.emplace_back(r.text(0), r.integer(1), r.text(2), r.integer(3));
    }
  });
  return out;
}

// Events per stream, counted straight from the log.
std::map<std::string, std::int64_t> counts_from_log(EventStore& store) {
  std::map<std::string, std::int64_t> out;
  for (const RecordedEvent& e : store.read_all(1, SIZE_MAX)) ++out[e.stream_id];
  return out;
}

std::map<std::string, std::int64_t> counts_from_rows(SqlEventStore& store) {
  std::map<std::string, std::int64_t> out;
  for (const Row& r : rows(store)) out[std::get<0>(r)] = std::get<1>(r);
  return out;
}

std::int64_t total_rows_events(SqlEventStore& store) {
  std::int64_t total = 0;
  for (const Row& r : rows(store)) total += std::get<1>(r);
  return total;
}

std::int64_t max_last_position(SqlEventStore& store) {
  std::int64_t max = 0;
  for (const Row& r : rows(store)) max = std::max(max, std::get<3>(r));
  return max;
}

std::uint64_t checkpoint_of(SqlEventStore& store, const std::string& name = "test_counts") {
  std::optional<ProjectionCheckpoint> cp;
  store.read_transaction([&](SqlSession& sql) { cp = read_checkpoint(sql, name); });
  REQUIRE(cp.has_value());
  return cp->position;
}

// A CountingProjection that records the size of every committed batch.
class BatchRecordingProjection : public CountingProjection {
 public:
  void committed(const std::vector<RecordedEvent>& events) noexcept override {
    CountingProjection::committed(events);
    std::lock_guard lock(mutex_);
    sizes_.push_back(events.size());
  }
  std::vector<std::size_t> sizes() const {
    std::lock_guard lock(mutex_);
    return sizes_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::size_t> sizes_;
};

}  // namespace

TEST_CASE("a runner catches up an existing log in batches", "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 1234);
  auto projection = std::make_shared<BatchRecordingProjection>();

  IoThreads io;
  ProjectionRunner runner(io.io, store, projection, {.batch_size = 100});
  runner.start();
  REQUIRE(runner.wait_until_caught_up(kWait));

  CHECK(counts_from_rows(*store) == counts_from_log(*store));
  CHECK(total_rows_events(*store) == 1234);
  CHECK(checkpoint_of(*store) == 1234);
  CHECK(projection->applied == 1234);
  CHECK(projection->committed_events == 1234);
  const std::vector<std::size_t> sizes = projection->sizes();
  CHECK(sizes.size() == 13);
  for (std::size_t size : sizes) CHECK(size <= 100);
  CHECK(runner.status().batches == 13);
}

TEST_CASE("a runner applies each batch in its own handler, so the io_context stays responsive",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 450);
  auto projection = std::make_shared<CountingProjection>();
  boost::asio::io_context io;  // run here, one handler at a time
  ProjectionRunner runner(io, store, projection, {.batch_size = 100, .poll_interval = 1h});
  runner.start();

  std::vector<std::uint64_t> checkpoints;
  while (runner.status().checkpoint < 450 && checkpoints.size() < 50) {
    REQUIRE(io.run_one() == 1);
    checkpoints.push_back(runner.status().checkpoint);
  }
  CHECK(checkpoints == std::vector<std::uint64_t>{100, 200, 300, 400, 450});
  CHECK(checkpoint_of(*store) == 450);
  // Destroyed with the io_context not running and the poll wait still pending.
}

TEST_CASE("a runner is woken by appends through its store after start",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  auto projection = std::make_shared<CountingProjection>();
  IoThreads io;
  // Polling is effectively off: only the commit listener can wake the runner.
  ProjectionRunner runner(io.io, store, projection, {.batch_size = 16, .poll_interval = 1h});
  runner.start();
  REQUIRE(runner.wait_until_caught_up(kWait));

  for (int i = 0; i < 5; ++i) {
    append_log(*store, 10);
    REQUIRE(runner.wait_until_caught_up(kWait));
    CHECK(checkpoint_of(*store) == static_cast<std::uint64_t>(10 * (i + 1)));
  }
  CHECK(counts_from_rows(*store) == counts_from_log(*store));
  CHECK(projection->committed_events == 50);
  CHECK(runner.status().lag == 0);
}

TEST_CASE("a runner polls for appends by another store object on the same file",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  auto other_process = open_store(dir);
  auto projection = std::make_shared<CountingProjection>();
  IoThreads io;
  ProjectionRunner runner(io.io, store, projection, {.batch_size = 64, .poll_interval = 10ms});
  runner.start();
  REQUIRE(runner.wait_until_caught_up(kWait));

  append_log(*other_process, 300);
  REQUIRE(runner.wait_until_caught_up(kWait));
  CHECK(checkpoint_of(*store) == 300);
  CHECK(counts_from_rows(*store) == counts_from_log(*store));
  CHECK(projection->committed_events == 300);
}

TEST_CASE(
    "a projection failing mid-batch stops the runner at the event, rows and checkpoint "
    "consistent, and a new runner resumes without loss or double-apply",
    "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 250, /*boom_at=*/160);

  auto failing = std::make_shared<CountingProjection>();
  failing->fail_on_type = "Boom";
  std::atomic<int> failures{0};
  std::string reported;
  {
    IoThreads io;
    ProjectionRunner runner(io.io, store, failing,
                            {.batch_size = 50, .on_failure = [&](std::exception_ptr e) {
                               ++failures;
                               try {
                                 std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                 reported = ex.what();
                               }
                             }});
    runner.start();
    CHECK_THROWS_WITH(runner.wait_until_caught_up(kWait), Contains("fail on Boom at position 160"));
    CHECK(failures == 1);
    CHECK_THAT(reported, Contains("fail on Boom at position 160"));
    CHECK_THROWS_AS(runner.rethrow_if_failed(), std::runtime_error);
    CHECK_THROWS_WITH(runner.rethrow_if_failed(), Contains("position 160"));

    const ProjectionRunnerStatus status = runner.status();
    CHECK(status.state == ProjectionRunnerState::failed);
    CHECK(status.checkpoint == 150);
    CHECK(status.head_position == 250);
    CHECK(status.lag == 100);
    CHECK_THAT(status.last_error, Contains("position 160"));

    runner.start();  // a failed runner stays failed
    CHECK(runner.status().state == ProjectionRunnerState::failed);
  }
  // Nothing of the batch 151..200 is visible; the checkpoint is at the end of the batch before.
  CHECK(checkpoint_of(*store) == 150);
  CHECK(total_rows_events(*store) == 150);
  CHECK(max_last_position(*store) == 150);
  CHECK(failing->committed_events == 150);

  // The event is not skipped: a runner with the same fault fails on the same event again.
  {
    auto again = std::make_shared<CountingProjection>();
    again->fail_on_type = "Boom";
    IoThreads io;
    ProjectionRunner runner(io.io, store, again, {.batch_size = 50});
    runner.start();
    CHECK_THROWS_WITH(runner.wait_until_caught_up(kWait), Contains("position 160"));
    CHECK(again->committed_events == 0);
  }
  CHECK(checkpoint_of(*store) == 150);

  auto fixed = std::make_shared<CountingProjection>();
  {
    IoThreads io;
    ProjectionRunner runner(io.io, store, fixed, {.batch_size = 50});
    runner.start();
    REQUIRE(runner.wait_until_caught_up(kWait));
    CHECK_NOTHROW(runner.rethrow_if_failed());
  }
  CHECK(fixed->committed_events == 100);
  CHECK(checkpoint_of(*store) == 250);

  // Row for row what a fresh projection of the same log gives.
  annals::test::StorePlace fresh_dir;
  auto fresh = open_store(fresh_dir);
  append_log(*fresh, 250, /*boom_at=*/160);
  auto reference = std::make_shared<CountingProjection>();
  prepare_projection(*fresh, *reference);
  catch_up(*fresh, *reference);
  CHECK(rows(*store) == rows(*fresh));
}

TEST_CASE("a runner refuses a checkpoint written by another version of its projection",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 20);
  auto v1 = std::make_shared<CountingProjection>("test_counts", 1);
  prepare_projection(*store, *v1);
  catch_up(*store, *v1);

  auto v2 = std::make_shared<CountingProjection>("test_counts", 2);
  IoThreads io;
  ProjectionRunner runner(io.io, store, v2);
  runner.start();
  CHECK_THROWS_AS(runner.wait_until_caught_up(kWait), InvalidArgument);
  CHECK_THROWS_WITH(runner.rethrow_if_failed(),
                    Contains("version 1") && Contains("version 2") && Contains("rebuild"));
  CHECK(runner.status().state == ProjectionRunnerState::failed);
  CHECK(v2->applied == 0);
}

TEST_CASE("stop() is idempotent and the runner is destroyed cleanly while the io_context runs",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 2000);
  auto projection = std::make_shared<CountingProjection>();
  IoThreads io(2);

  SECTION("stop twice, from several threads") {
    ProjectionRunner runner(io.io, store, projection, {.batch_size = 100});
    runner.start();
    REQUIRE(runner.wait_until_caught_up(kWait));
    std::vector<std::thread> stoppers;
    for (int i = 0; i < 4; ++i) stoppers.emplace_back([&] { runner.stop(); });
    for (auto& t : stoppers) t.join();
    runner.stop();
    CHECK(runner.status().state == ProjectionRunnerState::stopped);
    CHECK_THROWS_AS(runner.start(), InvalidArgument);

    append_log(*store, 10);  // a stopped runner no longer follows: no need to wait the timeout
    CHECK_FALSE(runner.wait_until_caught_up(kWait));
    CHECK(checkpoint_of(*store) == 2000);
  }

  SECTION("destroyed in the middle of a catch-up") {
    auto runner = std::make_unique<ProjectionRunner>(io.io, store, projection,
                                                     ProjectionRunnerOptions{.batch_size = 10});
    runner->start();
    REQUIRE(eventually([&] { return runner->status().checkpoint >= 100; }));
    runner.reset();
    // No handler runs any more and none will touch the projection or the store again.
    CHECK(projection.use_count() == 1);
    const std::uint64_t at = checkpoint_of(*store);
    CHECK(total_rows_events(*store) == static_cast<std::int64_t>(at));
    CHECK(max_last_position(*store) == static_cast<std::int64_t>(at));
    CHECK(projection->committed_events == at);
    append_log(*store, 10);  // the commit listener is gone
    CHECK(checkpoint_of(*store) == at);
  }

  SECTION("destroyed without being started") {
    auto runner = std::make_unique<ProjectionRunner>(io.io, store, projection);
    runner->stop();
    runner.reset();
    CHECK(projection.use_count() == 1);
  }

  SECTION("destroyed after failing") {
    projection->fail_on_type = "Thing";
    auto runner = std::make_unique<ProjectionRunner>(io.io, store, projection);
    runner->start();
    CHECK_THROWS(runner->wait_until_caught_up(kWait));
    runner.reset();
    CHECK(projection.use_count() == 1);
  }

  // No wait of any runner is left behind on the io_context.
  CHECK(io.finish());
}

TEST_CASE("two runners for one projection on two store objects never apply an event twice",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store_a = open_store(dir);
  auto store_b = open_store(dir);
  append_log(*store_a, 500);
  auto projection_a = std::make_shared<CountingProjection>();
  auto projection_b = std::make_shared<CountingProjection>();

  IoThreads io(2);
  ProjectionRunnerOptions options{.batch_size = 37, .poll_interval = 5ms};
  ProjectionRunner a(io.io, store_a, projection_a, options);
  ProjectionRunner b(io.io, store_b, projection_b, options);
  a.start();
  b.start();
  for (int i = 0; i < 25; ++i) {  // appends through both store objects while both run
    append_log(i % 2 == 0 ? *store_a : *store_b, 20);
  }
  REQUIRE(a.wait_until_caught_up(kWait));
  REQUIRE(b.wait_until_caught_up(kWait));

  CHECK(checkpoint_of(*store_a) == 1000);
  CHECK(total_rows_events(*store_a) == 1000);
  CHECK(counts_from_rows(*store_a) == counts_from_log(*store_a));
  CHECK(projection_a->committed_events + projection_b->committed_events == 1000);
  CHECK(a.status().events_applied + b.status().events_applied == 1000);
}

TEST_CASE("a runner retries a busy store with backoff and succeeds once the lock is released",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir, "busy_timeout_ms=20");
  append_log(*store, 120);
  auto projection = std::make_shared<CountingProjection>();

  WriteLock locker(dir);

  IoThreads io;
  ProjectionRunner runner(io.io, store, projection,
                          {.batch_size = 50, .initial_backoff = 5ms, .max_backoff = 40ms});
  runner.start();
  const bool retried = eventually([&] { return runner.status().retries >= 3; });
  INFO("state " << to_string(runner.status().state) << ", retries " << runner.status().retries
                << ", last error: " << runner.status().last_error);
  REQUIRE(retried);
  ProjectionRunnerStatus status = runner.status();
  CHECK(status.state == ProjectionRunnerState::running);
  CHECK(status.checkpoint == 0);
  CHECK_THAT(status.last_error, Contains("locked"));
  CHECK(projection->committed_events == 0);

  locker.release();
  REQUIRE(runner.wait_until_caught_up(kWait));
  CHECK_NOTHROW(runner.rethrow_if_failed());
  status = runner.status();
  CHECK(status.state == ProjectionRunnerState::running);
  CHECK(status.retries == 0);
  CHECK(status.checkpoint == 120);
  CHECK(counts_from_rows(*store) == counts_from_log(*store));
  CHECK(projection->committed_events == 120);
}

TEST_CASE("status() reports head, checkpoint, lag and rate",
          "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  append_log(*store, 300);
  auto projection = std::make_shared<CountingProjection>();
  IoThreads io;
  ProjectionRunner runner(io.io, store, projection, {.batch_size = 100});

  ProjectionRunnerStatus status = runner.status();
  CHECK(status.projection == "test_counts");
  CHECK(status.state == ProjectionRunnerState::idle);
  CHECK(to_string(status.state) == "idle");
  CHECK(status.checkpoint == 0);
  CHECK(status.events_applied == 0);
  CHECK(status.events_per_second == 0);

  runner.start();
  REQUIRE(runner.wait_until_caught_up(kWait));
  status = runner.status();
  CHECK(status.state == ProjectionRunnerState::running);
  CHECK(status.head_position == 300);
  CHECK(status.checkpoint == 300);
  CHECK(status.lag == 0);
  CHECK(status.events_applied == 300);
  CHECK(status.batches == 3);
  CHECK(status.retries == 0);
  CHECK(status.last_error.empty());
  CHECK(status.events_per_second >= 0);

  append_log(*store, 40);
  REQUIRE(runner.wait_until_caught_up(kWait));
  status = runner.status();
  CHECK(status.head_position == 340);
  CHECK(status.checkpoint == 340);
  CHECK(status.events_applied == 340);

  runner.stop();
  CHECK(to_string(runner.status().state) == "stopped");
}

TEST_CASE("a runner rejects invalid options", "[projections][runner]" ANNALS_PG_TAG) {
  annals::test::StorePlace dir;
  auto store = open_store(dir);
  auto projection = std::make_shared<CountingProjection>();
  boost::asio::io_context io;
  CHECK_THROWS_AS(ProjectionRunner(io, nullptr, projection), InvalidArgument);
  CHECK_THROWS_AS(ProjectionRunner(io, store, nullptr), InvalidArgument);
  CHECK_THROWS_WITH(ProjectionRunner(io, store, projection, {.batch_size = 0}),
                    Contains("batch_size"));
  CHECK_THROWS_AS(ProjectionRunner(io, store, projection, {.poll_interval = 0ms}), InvalidArgument);
  CHECK_THROWS_AS(
      ProjectionRunner(io, store, projection, {.initial_backoff = 50ms, .max_backoff = 10ms}),
      InvalidArgument);
}
