// Snapshots: WorkflowRun's snapshot bytes, the SnapshotStore beside the log, and
// AggregateRepository loading from the latest snapshot plus the events after it. Whatever a
// snapshot holds, a load must equal the load from all events; a snapshot that cannot be trusted
// is ignored with a message, and failing to write one never fails a save.

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/events/error.hpp"
#include "annals/events/event.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "annals/store/purge.hpp"
#include "annals/store/snapshot_store.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/faulty_store.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000'000;

// Irregular offsets, so derived elapsed times are doubles with many digits.
Timestamp at(std::int64_t step) { return from_micros(kT0 + step * 1'234'567); }

RunCreated created(const std::string& run_id) {
  return RunCreated{.run_id = run_id,
                    .tenant_id = "t-1",
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"q":"hello"})",
                    .created_at = at(0)};
}

// Raises one event: node executions start, then complete or fail, two events per node.
void raise_next(WorkflowRun& run) {
  const std::uint64_t v = run.version();  // events so far; RunCreated is 1
  const std::string node = "n-" + std::to_string((v + 1) / 2);
  if (v % 2 == 1) {
    run.start_node({.node_execution_id = node,
                    .node_id = "llm",
                    .node_type = "llm",
                    .title = "step \xC3\xA9 " + node,
                    .inputs = R"({"i":)" + std::to_string(v) + "}",
                    .started_at = at(static_cast<std::int64_t>(v))});
  } else if (v % 6 == 0) {
    run.fail_node({.node_execution_id = node,
                   .error = "timeout after " + std::to_string(v),
                   .finished_at = at(static_cast<std::int64_t>(v))});
  } else {
    run.complete_node({.node_execution_id = node,
                       .outputs = R"({"o":[1,2.5,"x"]})",
                       .total_tokens = v * 7,
                       .finished_at = at(static_cast<std::int64_t>(v))});
  }
}

// Saves `events` more events, `batch` per save (the last save may hold fewer).
void grow(AggregateRepository<WorkflowRun>& repo, WorkflowRun& run, std::uint64_t events,
          std::uint64_t batch = 1) {
  while (events > 0) {
    for (std::uint64_t i = 0; i < batch && events > 0; ++i, --events) raise_next(run);
    repo.save(run);
  }
}

void check_same(const WorkflowRun& a, const WorkflowRun& b) {
  CHECK(a.state() == b.state());
  CHECK(a.version() == b.version());
  CHECK(a.persisted_version() == b.persisted_version());
  CHECK_FALSE(a.has_pending_events());
  CHECK_FALSE(b.has_pending_events());
}

std::shared_ptr<SqlEventStore> sql_of(const std::shared_ptr<EventStore>& store) {
  auto sql = std::dynamic_pointer_cast<SqlEventStore>(store);
  REQUIRE(sql);
  return sql;
}

// Collects what a repository logs.
struct Messages {
  std::vector<std::string> lines;
  SnapshotPolicy policy(std::uint64_t every) {
    return SnapshotPolicy{.every = every,
                          .log = [this](std::string_view line) { lines.emplace_back(line); }};
  }
  bool any_contains(std::string_view fragment) const {
    for (const std::string& l : lines) {
      if (l.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
};

// Counts the events read through it, to see how much of a stream a load reads.
class CountingStore final : public EventStore {
 public:
  explicit CountingStore(std::shared_ptr<EventStore> inner) : inner_(std::move(inner)) {}

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    return inner_->append(stream_id, expected, std::move(events));
  }
  AppendResult append(std::vector<StreamAppend> batch) override {
    return inner_->append(std::move(batch));
  }
  std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::uint64_t from_version,
                                         std::size_t max_count) const override {
    auto out = inner_->read_stream(stream_id, from_version, max_count);
    events_read += out.size();
    return out;
  }
  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    return inner_->read_all(from_position, max_count);
  }
  std::uint64_t head_position() const override { return inner_->head_position(); }
  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    return inner_->stream_version(stream_id);
  }
  PayloadFormat payload_format() const noexcept override { return inner_->payload_format(); }

  mutable std::size_t events_read = 0;

 private:
  std::shared_ptr<EventStore> inner_;
};

// A SnapshotStore whose every call fails, as a broken disk or a locked database would.
class BrokenSnapshotStore final : public SnapshotStore {
 public:
  bool save(const Snapshot&) override { throw StoreError("injected fault: disk I/O error"); }
  std::optional<Snapshot> load(std::string_view) const override {
    throw StoreError("injected fault: disk I/O error");
  }
  bool remove(std::string_view) override { throw StoreError("injected fault: disk I/O error"); }
};

// A run of `events` events, built in memory (nothing saved).
WorkflowRun run_of(std::uint64_t events, const std::string& id = "r-1") {
  WorkflowRun run = WorkflowRun::create(created(id));
  while (run.version() < events) raise_next(run);
  return run;
}

}  // namespace

// ---- WorkflowRun's snapshot bytes ----

TEST_CASE("a WorkflowRun snapshot restores the same state at the given version",
          "[snapshots][aggregates]") {
  WorkflowRun run = run_of(20);
  run.start_node(
      {.node_execution_id = "open", .node_id = "x", .node_type = "x", .started_at = at(30)});
  run.stop({.stopped_by = "bob", .finished_at = at(31)});
  run.mark_deleted({.deleted_by = "carol", .deleted_at = at(32)});
  REQUIRE(run.state().finished_at.has_value());
  REQUIRE(run.state().deleted);

  const std::string bytes = run.snapshot();
  const WorkflowRun restored = WorkflowRun::from_snapshot(bytes, 23);
  CHECK(restored.state() == run.state());
  CHECK(restored.version() == 23);
  CHECK(restored.persisted_version() == 23);
  CHECK_FALSE(restored.has_pending_events());
  CHECK(restored.snapshot() == bytes);

  const WorkflowRun fresh =
      WorkflowRun::from_snapshot(WorkflowRun::create(created("r-9")).snapshot(), 1);
  CHECK(fresh.id() == "r-9");
  CHECK(fresh.node_executions().empty());
  CHECK_THROWS_AS(WorkflowRun::from_snapshot(bytes, 0), InvalidArgument);
}

TEST_CASE("damaged WorkflowRun snapshot bytes throw SerializationError, never misread or crash",
          "[snapshots][aggregates]") {
  const std::string bytes = run_of(9).snapshot();

  SECTION("every truncation fails") {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      INFO("first " << n << " bytes");
      CHECK_THROWS_AS(WorkflowRun::from_snapshot(bytes.substr(0, n), 9), SerializationError);
    }
  }
  SECTION("a trailing byte fails") {
    CHECK_THROWS_MATCHES(WorkflowRun::from_snapshot(bytes + "x", 9), SerializationError,
                         WhatContains("trailing"));
  }
  SECTION("a length beyond the bytes left fails without allocating it") {
    std::string huge = bytes;
    for (std::size_t i = 1; i < 9; ++i) huge[i] = '\xFF';  // the first string's u64 length
    CHECK_THROWS_MATCHES(WorkflowRun::from_snapshot(huge, 9), SerializationError,
                         WhatContains("runs past the end"));
  }
  SECTION("garbage fails") {
    CHECK_THROWS_AS(WorkflowRun::from_snapshot("not a snapshot at all, just text", 9),
                    SerializationError);
    CHECK_THROWS_AS(WorkflowRun::from_snapshot(std::string(64, '\0'), 9), SerializationError);
  }
  SECTION("any single damaged byte decodes to some state or throws SerializationError") {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const int x : {0x01, 0x80, 0xFF}) {
        std::string damaged = bytes;
        damaged[i] = static_cast<char>(static_cast<unsigned char>(damaged[i]) ^ x);
        try {
          (void)WorkflowRun::from_snapshot(damaged, 9);
        } catch (const SerializationError&) {
        }
      }
    }
    SUCCEED("no other exception, crash or sanitizer report");
  }
}

// ---- the SnapshotStore ----

TEMPLATE_TEST_CASE("the snapshot store keeps the latest snapshot per stream and never goes back",
                   "[snapshots][store]", ANNALS_BACKENDS) {
  TestType backend;
  auto sql = sql_of(backend.open());
  auto snapshots = open_snapshot_store(sql);
  CHECK_FALSE(snapshots->load("WorkflowRun-r-1").has_value());  // before the table exists

  Snapshot s{.stream_id = "WorkflowRun-r-1",
             .version = 20,
             .aggregate_type = "WorkflowRun",
             .schema = 1,
             .event_id = new_event_id(),
             .payload = std::string("\x00\x01\x02 bytes\xFF", 10),
             .taken_at = at(5)};
  CHECK(snapshots->save(s));
  CHECK(snapshots->load("WorkflowRun-r-1") == s);
  CHECK_FALSE(snapshots->load("WorkflowRun-r-2").has_value());

  Snapshot older = s;
  older.version = 10;
  older.payload = "older";
  CHECK_FALSE(snapshots->save(older));
  CHECK(snapshots->load("WorkflowRun-r-1") == s);

  Snapshot same = s;
  same.payload = "rewritten at the same version";
  CHECK(snapshots->save(same));
  CHECK(snapshots->load("WorkflowRun-r-1")->payload == same.payload);

  Snapshot newer = s;
  newer.version = 30;
  newer.taken_at = {};  // now
  CHECK(snapshots->save(newer));
  const auto loaded = snapshots->load("WorkflowRun-r-1");
  REQUIRE(loaded);
  CHECK(loaded->version == 30);
  CHECK(loaded->taken_at > at(5));

  // Another object on the same store (or the file reopened) sees the same rows.
  CHECK(open_snapshot_store(sql)->load("WorkflowRun-r-1")->version == 30);

  CHECK(snapshots->remove("WorkflowRun-r-1"));
  CHECK_FALSE(snapshots->remove("WorkflowRun-r-1"));
  CHECK_FALSE(snapshots->load("WorkflowRun-r-1").has_value());

  CHECK_THROWS_AS(snapshots->save(Snapshot{.stream_id = "", .version = 1, .aggregate_type = "A"}),
                  InvalidArgument);
  CHECK_THROWS_AS(snapshots->save(Snapshot{.stream_id = "s", .version = 0, .aggregate_type = "A"}),
                  InvalidArgument);
  CHECK_THROWS_AS(snapshots->save(Snapshot{.stream_id = "s", .version = 1, .aggregate_type = ""}),
                  InvalidArgument);
  CHECK_THROWS_AS(open_snapshot_store(nullptr), InvalidArgument);
}

TEMPLATE_TEST_CASE("the snapshot store reports a damaged row as IntegrityError",
                   "[snapshots][store]", ANNALS_BACKENDS) {
  TestType backend;
  auto sql = sql_of(backend.open());
  auto snapshots = open_snapshot_store(sql);
  REQUIRE(snapshots->save(Snapshot{.stream_id = "s-1",
                                   .version = 3,
                                   .aggregate_type = "WorkflowRun",
                                   .schema = 1,
                                   .event_id = new_event_id(),
                                   .payload = "state"}));
  const bool pg = annals::test::dialect_of(*sql) == "postgresql";
  std::string change;
  SECTION("payload") {
    change = pg ? "payload = decode('DEADBEEF', 'hex')" : "payload = x'DEADBEEF'";
  }
  SECTION("version") { change = "version = 2"; }
  SECTION("schema") { change = "snapshot_schema = 7"; }
  SECTION("event id") { change = "event_id = 'not a uuid'"; }
  SECTION("a column's type") {
    if (pg) return;  // PostgreSQL's typed columns refuse the text, so no row can hold it
    change = "version = 'three'";
  }
  sql->write_transaction([&](SqlSession& session) {
    session.execute("UPDATE annals_snapshots SET " + change + " WHERE stream_id = 's-1'");
  });
  CHECK_THROWS_MATCHES(snapshots->load("s-1"), IntegrityError, WhatContains("snapshot of s-1"));
}

// ---- AggregateRepository with snapshots ----

TEMPLATE_TEST_CASE("snapshots are taken every N events of a stream", "[snapshots][repositories]",
                   ANNALS_BACKENDS) {
  TestType backend;
  Messages messages;
  AggregateRepository<WorkflowRun> runs(backend.open(), messages.policy(10));
  REQUIRE(runs.snapshot_store());
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  runs.save(run);
  for (int i = 0; i < 45; ++i) {
    raise_next(run);
    runs.save(run);
    const auto snapshot = runs.snapshot_store()->load("WorkflowRun-r-1");
    INFO("version " << run.version());
    if (run.version() < 10) {
      CHECK_FALSE(snapshot.has_value());
    } else {
      REQUIRE(snapshot.has_value());
      CHECK(snapshot->version == run.version() / 10 * 10);
      CHECK(snapshot->aggregate_type == "WorkflowRun");
      CHECK(snapshot->schema == WorkflowRun::kSnapshotSchema);
    }
  }

  SECTION("a save of several events that crosses a multiple takes one at its new version") {
    for (int i = 0; i < 7; ++i) raise_next(run);  // 46 -> 53
    runs.save(run);
    CHECK(runs.snapshot_store()->load("WorkflowRun-r-1")->version == 53);
  }
  SECTION("save_all takes them too") {
    WorkflowRun other = run_of(12, "r-2");
    for (int i = 0; i < 5; ++i) raise_next(run);  // 46 -> 51
    runs.save_all({&run, &other});
    CHECK(runs.snapshot_store()->load("WorkflowRun-r-1")->version == 51);
    CHECK(runs.snapshot_store()->load("WorkflowRun-r-2")->version == 12);
  }
  CHECK(messages.lines.empty());
}

TEMPLATE_TEST_CASE("a load from a snapshot equals the load from all events",
                   "[snapshots][repositories]", ANNALS_BACKENDS) {
  for (const char* options : {"payload=json", "payload=binary"}) {
    INFO(options);
    TestType backend;
    auto store = backend.open(options);
    Messages messages;
    auto counting = std::make_shared<CountingStore>(store);
    AggregateRepository<WorkflowRun> with(counting, open_snapshot_store(sql_of(store)),
                                          messages.policy(50));
    AggregateRepository<WorkflowRun> without(store);

    WorkflowRun run = WorkflowRun::create(created("r-1"));
    with.save(run);
    for (std::uint64_t batch = 1; run.version() < 400; batch = batch % 7 + 1) {
      grow(with, run, batch);
    }
    run.start_node({.node_execution_id = "last",
                    .node_id = "end",
                    .node_type = "end",
                    .started_at = at(1000)});
    run.fail({.error = "boom", .finished_at = at(1001)});
    with.save(run);
    const std::uint64_t version = run.version();
    const std::uint64_t snapshot_version = with.snapshot_store()->load("WorkflowRun-r-1")->version;
    CHECK(snapshot_version > 350);

    counting->events_read = 0;
    const WorkflowRun from_snapshot = with.load("r-1");
    CHECK(counting->events_read == version - snapshot_version + 1);  // only the tail
    check_same(from_snapshot, without.load("r-1"));
    check_same(from_snapshot, run);

    // More events appended past the snapshot, by a writer that takes none.
    WorkflowRun later = without.load("r-1");
    later.mark_deleted({.deleted_by = "carol", .deleted_at = at(1002)});
    without.save(later);
    check_same(with.load("r-1"), without.load("r-1"));
    check_same(*with.find("r-1"), later);
    CHECK_FALSE(with.find("r-2").has_value());
    CHECK(messages.lines.empty());
  }
}

TEMPLATE_TEST_CASE("a corrupt snapshot is ignored with a message and the load is still right",
                   "[snapshots][repositories]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open();
  auto sql = sql_of(store);
  Messages messages;
  AggregateRepository<WorkflowRun> runs(store, messages.policy(10));
  AggregateRepository<WorkflowRun> plain(store);
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  grow(runs, run, 24, 3);  // saves end at 4, 7, ..., 25: snapshots at 10 and 22
  REQUIRE(runs.snapshot_store()->load("WorkflowRun-r-1")->version == 22);
  const Snapshot good = *runs.snapshot_store()->load("WorkflowRun-r-1");

  std::string expected;
  SECTION("garbage bytes written over the payload") {
    sql->write_transaction([](SqlSession& s) {
      s.execute("UPDATE annals_snapshots SET payload = $1",
                {SqlBlob{std::string("\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x7Fgarbage", 16)}});
    });
    expected = "checksum";
  }
  SECTION("a row that is not a snapshot at all") {
    sql->write_transaction([](SqlSession& s) {
      // PostgreSQL's typed columns take no text for the version: a bad event id is enough.
      s.execute(s.dialect() == "postgresql"
                    ? "UPDATE annals_snapshots SET event_id = '42', checksum = ''"
                    : "UPDATE annals_snapshots SET version = 'x', event_id = 42, checksum = ''");
    });
    expected = "malformed";
  }
  SECTION("intact bytes that do not decode") {
    Snapshot bad = good;
    bad.payload = "\x01" + std::string(40, '\xEE');
    REQUIRE(runs.snapshot_store()->save(bad));
    expected = "does not decode";
  }
  SECTION("a snapshot of another aggregate") {
    Snapshot bad = good;
    bad.payload = run_of(25, "r-other").snapshot();
    REQUIRE(runs.snapshot_store()->save(bad));
    expected = "decodes to aggregate 'r-other'";
  }
  SECTION("a snapshot taken after another event (a purged and re-created stream)") {
    Snapshot bad = good;
    bad.event_id = new_event_id();
    REQUIRE(runs.snapshot_store()->save(bad));
    expected = "purged or re-created";
  }
  SECTION("a snapshot beyond the end of the stream") {
    Snapshot bad = good;
    bad.version = 90;
    REQUIRE(runs.snapshot_store()->save(bad));
    expected = "no event at that version";
  }

  const WorkflowRun loaded = runs.load("r-1");
  check_same(loaded, plain.load("r-1"));
  check_same(loaded, run);
  REQUIRE(messages.lines.size() == 1);
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains("WorkflowRun-r-1"));
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains("loading from events"));
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains(expected));
}

TEMPLATE_TEST_CASE("a snapshot of another schema is ignored and replaced by the next load",
                   "[snapshots][repositories]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open();
  Messages messages;
  AggregateRepository<WorkflowRun> runs(store, messages.policy(10));
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  grow(runs, run, 21);  // snapshot at 20, stream at 22
  Snapshot other = *runs.snapshot_store()->load("WorkflowRun-r-1");
  SECTION("a newer schema") { other.schema = WorkflowRun::kSnapshotSchema + 1; }
  SECTION("another aggregate type") { other.aggregate_type = "Invoice"; }
  REQUIRE(runs.snapshot_store()->save(other));

  check_same(runs.load("r-1"), run);
  REQUIRE(messages.lines.size() == 1);
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains("snapshot schema"));
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains("this build reads WorkflowRun"));

  // The load replayed all 22 events (>= 10), so it wrote a usable snapshot in its place.
  const auto replaced = runs.snapshot_store()->load("WorkflowRun-r-1");
  CHECK(replaced->version == 22);
  CHECK(replaced->schema == WorkflowRun::kSnapshotSchema);
  check_same(runs.load("r-1"), run);
  CHECK(messages.lines.size() == 1);
}

TEMPLATE_TEST_CASE("a stream written without snapshots gets one when first loaded",
                   "[snapshots][repositories]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open();
  AggregateRepository<WorkflowRun> plain(store);
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  grow(plain, run, 30, 4);
  WorkflowRun short_run = WorkflowRun::create(created("r-2"));
  grow(plain, short_run, 3);

  Messages messages;
  AggregateRepository<WorkflowRun> runs(store, messages.policy(10));
  check_same(runs.load("r-1"), run);
  CHECK(runs.snapshot_store()->load("WorkflowRun-r-1")->version == 31);
  check_same(runs.load("r-2"), short_run);  // 4 events: below `every`, no snapshot
  CHECK_FALSE(runs.snapshot_store()->load("WorkflowRun-r-2").has_value());
  CHECK(messages.lines.empty());
}

TEMPLATE_TEST_CASE("failing to write a snapshot does not fail the save",
                   "[snapshots][repositories]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open();
  auto sql = sql_of(store);
  Messages messages;
  AggregateRepository<WorkflowRun> plain(store);

  SECTION("the snapshot table replaced by a view") {
    AggregateRepository<WorkflowRun> runs(store, messages.policy(5));
    WorkflowRun run = WorkflowRun::create(created("r-1"));
    grow(runs, run, 5);  // a snapshot at 5: the table exists
    sql->write_transaction([](SqlSession& s) {
      const bool pg = s.dialect() == "postgresql";
      s.execute_script(std::string("DROP TABLE annals_snapshots;"
                                   "CREATE VIEW annals_snapshots AS SELECT '' AS stream_id,"
                                   " 0 AS version, '' AS aggregate_type, 0 AS snapshot_schema,"
                                   " '' AS event_id, ") +
                       (pg ? "CAST('' AS BYTEA)" : "x''") +
                       " AS payload, '' AS checksum, 0 AS taken_at WHERE 1 = 0");
    });
    grow(runs, run, 12, 2);
    CHECK(run.persisted_version() == 18);
    CHECK_FALSE(run.has_pending_events());
    CHECK(messages.any_contains("not written (the stream is unaffected)"));
    CHECK(messages.any_contains("view"));
    check_same(plain.load("r-1"), run);
    const std::size_t before = messages.lines.size();
    check_same(runs.load("r-1"), run);  // no snapshot to read; writing one fails again
    CHECK(messages.lines.size() == before + 1);
  }
  SECTION("a snapshot store that fails every call") {
    AggregateRepository<WorkflowRun> runs(store, std::make_shared<BrokenSnapshotStore>(),
                                          messages.policy(3));
    WorkflowRun run = WorkflowRun::create(created("r-1"));
    runs.save(run);
    grow(runs, run, 10);
    CHECK(run.persisted_version() == 11);
    CHECK(messages.lines.size() == 3);  // at 3, 6, 9
    check_same(runs.load("r-1"), run);  // the read fails and is reported, the write too
    CHECK(messages.lines.size() == 5);
    CHECK_THAT(messages.lines[3], Catch::Matchers::Contains("injected fault"));
    CHECK_THAT(messages.lines[3], Catch::Matchers::Contains("loading from events"));
    CHECK_FALSE(runs.find("r-2").has_value());
  }
  SECTION("a log sink that throws") {
    AggregateRepository<WorkflowRun> runs(store, std::make_shared<BrokenSnapshotStore>(),
                                          SnapshotPolicy{.every = 1, .log = [](std::string_view) {
                                                           throw std::runtime_error("no");
                                                         }});
    WorkflowRun run = WorkflowRun::create(created("r-1"));
    grow(runs, run, 3);
    check_same(runs.load("r-1"), run);
  }
}

TEST_CASE("snapshots are off, with one message, for a store that is not an SqlEventStore",
          "[snapshots][repositories]") {
  auto faulty = std::make_shared<annals::test::FaultyStore>(open_event_store("memory:"));
  Messages messages;
  AggregateRepository<WorkflowRun> runs(faulty, messages.policy(2));
  CHECK_FALSE(runs.snapshot_store());
  REQUIRE(messages.lines.size() == 1);
  CHECK_THAT(messages.lines.front(), Catch::Matchers::Contains("not an SqlEventStore"));
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  grow(runs, run, 6);
  check_same(runs.load("r-1"), run);
  CHECK(messages.lines.size() == 1);

  // every = 0 is off too: nothing read or written, nothing said.
  annals::test::MemoryBackend backend;
  Messages quiet;
  AggregateRepository<WorkflowRun> off(backend.open(), quiet.policy(0));
  WorkflowRun other = WorkflowRun::create(created("r-2"));
  grow(off, other, 6);
  CHECK_FALSE(off.snapshot_store()->load("WorkflowRun-r-2").has_value());
  check_same(off.load("r-2"), other);
  CHECK(quiet.lines.empty());
  CHECK_THROWS_AS(AggregateRepository<WorkflowRun>(nullptr, SnapshotPolicy{.every = 1}),
                  InvalidArgument);
}

TEST_CASE("snapshots survive reopening a sqlite file", "[snapshots][repositories]") {
  annals::test::SqliteBackend backend;
  Messages messages;
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  {
    AggregateRepository<WorkflowRun> runs(backend.open(), messages.policy(8));
    grow(runs, run, 20, 3);
  }
  auto store = backend.reopen();
  auto counting = std::make_shared<CountingStore>(store);
  AggregateRepository<WorkflowRun> runs(counting, open_snapshot_store(sql_of(store)),
                                        messages.policy(8));
  const WorkflowRun loaded = runs.load("r-1");
  check_same(loaded, run);
  // Saves ended at versions 4, 7, 10, 13, 16, 19, 21: snapshots at 10 and 16 (every 8).
  CHECK(counting->events_read == 21 - 16 + 1);
  check_same(loaded, AggregateRepository<WorkflowRun>(store).load("r-1"));
  CHECK(messages.lines.empty());
}

TEST_CASE("the repository factory hands out a repository with snapshots",
          "[snapshots][repositories]") {
  annals::test::TempDir dir;
  RepositoryFactory factory(dir.sqlite_uri());
  Messages messages;
  auto runs = factory.create_workflow_run_aggregate_repository(messages.policy(4));
  WorkflowRun run = WorkflowRun::create(created("r-1"));
  grow(runs, run, 9);
  CHECK(runs.snapshot_store()->load("WorkflowRun-r-1")->version == 8);
  check_same(runs.load("r-1"), run);
  check_same(factory.create_workflow_run_aggregate_repository().load("r-1"), run);
  CHECK(factory.create_workflow_run_repository()
            .get_workflow_run_by_id("t-1", "app-1", "r-1")
            .has_value());
  CHECK(messages.lines.empty());
}

TEST_CASE("a purge removes the purged runs' snapshots", "[snapshots][repositories][purge]") {
  annals::test::TempDir dir;
  auto store = open_sql_event_store(dir.sqlite_uri("events.db", "synchronous=normal"));
  Messages messages;
  AggregateRepository<WorkflowRun> runs(store, messages.policy(2));
  auto save_run = [&](const std::string& id, const std::string& tenant, std::int64_t step) {
    RunCreated c = created(id);
    c.tenant_id = tenant;
    c.created_at = at(step);
    WorkflowRun run = WorkflowRun::create(c);
    run.start_node({.node_execution_id = id + "-n",
                    .node_id = "n",
                    .node_type = "llm",
                    .started_at = at(step)});
    run.complete_node({.node_execution_id = id + "-n", .finished_at = at(step + 1)});
    run.succeed({.finished_at = at(step + 2)});
    runs.save(run);
    return run;
  };
  (void)save_run("old-1", "t-1", 1);
  (void)save_run("keep-1", "t-2", 1);
  (void)save_run("new-1", "t-1", 1000);
  REQUIRE(runs.snapshot_store()->load("WorkflowRun-old-1").has_value());

  const PurgeResult purged = purge_runs(
      *store, {.tenant_id = "t-1", .before = at(500), .archive_path = dir.file("archive.jsonl")});
  REQUIRE(purged.streams == 1);
  CHECK_FALSE(runs.snapshot_store()->load("WorkflowRun-old-1").has_value());
  CHECK(runs.snapshot_store()->load("WorkflowRun-keep-1").has_value());
  CHECK_FALSE(runs.find("old-1").has_value());

  // The id used again starts a new stream, loaded from its own events.
  const WorkflowRun again = save_run("old-1", "t-1", 2000);
  check_same(runs.load("old-1"), again);
  CHECK(messages.lines.empty());
}
