// Purging old runs: what leaves the log, what the archive and the record prove afterwards, and
// that nothing leaves when any step before the commit fails.

#include "annals/store/purge.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/engine.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/store/export.hpp"
#include "annals/store/hash_chain.hpp"
#include "support/backends.hpp"

using namespace annals;

namespace {

Timestamp at(int seconds) { return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL); }

const Timestamp kCutoff = at(100);

struct MemoryStore {
  static constexpr const char* kName = "memory";
  static constexpr bool kFile = false;
  std::shared_ptr<SqlEventStore> open(const std::string& options = "") {
    return std::dynamic_pointer_cast<SqlEventStore>(backend.open(options));
  }
  annals::test::MemoryBackend backend;
};

struct SqliteStore {
  static constexpr const char* kName = "sqlite";
  static constexpr bool kFile = true;
  std::shared_ptr<SqlEventStore> open(const std::string& options = "") {
    return std::dynamic_pointer_cast<SqlEventStore>(backend.open(options));
  }
  annals::test::SqliteBackend backend;
};

#ifdef ANNALS_TEST_PG_ONLY
struct PgStore {
  static constexpr const char* kName = "postgresql";
  static constexpr bool kFile = true;
  std::shared_ptr<SqlEventStore> open(const std::string& options = "") {
    return backend.open(options);
  }
  annals::test::PgBackend backend;
};
// ANNALS_BACKENDS' choice (support/backends.hpp), with these stores' names in annals_tests.
#define STORES PgStore
#else
#define STORES MemoryStore, SqliteStore
#endif

RunCreated created(const std::string& run_id, const std::string& tenant, int seconds) {
  return RunCreated{.run_id = run_id,
                    .tenant_id = tenant,
                    .app_id = "app-1",
                    .workflow_id = "wf-1",
                    .triggered_from = "debugging",
                    .created_by = "alice",
                    .inputs = R"({"q":"hello"})",
                    .created_at = at(seconds)};
}

NodeStarted started(const std::string& id, int seconds) {
  return NodeStarted{.node_execution_id = id,
                     .node_id = "node-" + id,
                     .node_type = "llm",
                     .title = "Node " + id,
                     .inputs = R"({"x":1})",
                     .started_at = at(seconds)};
}

// Runs of two tenants, old and new, whose events interleave in the log. The head event is
// t-1's new run's, so the old runs can all be purged.
struct Runs {
  explicit Runs(std::shared_ptr<SqlEventStore> store) : repo(std::move(store)) {}

  void build() {
    WorkflowRun old1 = WorkflowRun::create(created("old-1", "t-1", 10));
    repo.save(old1);
    WorkflowRun other = WorkflowRun::create(created("t2-old", "t-2", 10));
    other.start_node(started("n-1", 11));
    repo.save(other);
    old1.start_node(started("n-1", 12));
    old1.complete_node(
        {.node_execution_id = "n-1", .outputs = R"({"y":2})", .finished_at = at(13)});
    repo.save(old1);
    WorkflowRun old2 = WorkflowRun::create(created("old-2", "t-1", 20));
    old2.start_node(started("n-1", 21));
    old2.fail({.error = "boom", .finished_at = at(22)});
    repo.save(old2);
    old1.succeed({.outputs = R"({"done":true})", .finished_at = at(30)});
    repo.save(old1);
    WorkflowRun fresh = WorkflowRun::create(created("new-1", "t-1", 200));
    fresh.start_node(started("n-1", 201));
    repo.save(fresh);
    other.stop({.stopped_by = "bob", .finished_at = at(40)});
    repo.save(other);
    fresh.complete_node({.node_execution_id = "n-1", .finished_at = at(202)});
    repo.save(fresh);
  }

  AggregateRepository<WorkflowRun> repo;
};

std::set<std::string> column(const SqlEventStore& store, const std::string& sql) {
  std::set<std::string> out;
  store.read_transaction([&](SqlSession& s) {
    for (const SqlRow& row : s.query(sql)) out.insert(row.text(0));
  });
  return out;
}

std::uint64_t broken_at(const EventStore& store) {
  try {
    (void)verify_log(store);
  } catch (const IntegrityError& e) {
    INFO(e.what());
    return e.position();
  }
  return 0;
}

std::uint64_t archive_broken_at(const SqlEventStore& store, const std::string& path) {
  try {
    (void)verify_purge_archive(store, path);
  } catch (const IntegrityError& e) {
    INFO(e.what());
    return e.position();
  }
  return UINT64_MAX;  // passed
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The append-only delete trigger's definition (on PostgreSQL with whether it is enabled).
std::string trigger_sql(const SqlEventStore& store) {
  std::string sql;
  store.read_transaction([&](SqlSession& s) {
    sql = s.query(s.dialect() == "postgresql"
                      ? "SELECT pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text"
                        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = current_schema() AND c.relname = 'annals_events'"
                        " AND t.tgname = 'annals_events_no_delete'"
                      : "SELECT sql FROM sqlite_schema WHERE name = 'annals_events_no_delete'")
              .front()
              .text(0);
  });
  return sql;
}

bool has_table(const SqlEventStore& store, const std::string& name) {
  bool out = false;
  store.read_transaction([&](SqlSession& s) { out = s.table_exists(name); });
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("purge removes only the tenant's old runs and what remains still verifies",
                   "[store][purge]", STORES) {
  const std::string format = GENERATE(as<std::string>{}, "", "payload=binary");
  TestType backend;
  auto store = backend.open(format);
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;

  const auto before_all = store->read_all(1, 1000);
  const auto old1 = store->read_stream("WorkflowRun-old-1");
  const auto old2 = store->read_stream("WorkflowRun-old-2");
  const auto t2 = store->read_stream("WorkflowRun-t2-old");
  const auto fresh = store->read_stream("WorkflowRun-new-1");
  const std::uint64_t head = store->head_position();
  const std::string trigger = trigger_sql(*store);
  REQUIRE(column(*store, "SELECT id FROM annals_workflow_runs") ==
          std::set<std::string>{"old-1", "old-2", "t2-old", "new-1"});

  const std::string archive = dir.file("t-1.jsonl");
  const PurgeResult r = purge_runs(
      *store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = archive, .clock = [] {
                 return at(1000);
               }});

  CHECK(r.purge_id == 1);
  CHECK(r.streams == 2);
  CHECK(r.events == old1.size() + old2.size());
  CHECK(r.stream_ids == std::vector<std::string>{"WorkflowRun-old-1", "WorkflowRun-old-2"});
  CHECK(r.held_back.empty());
  CHECK(r.first_position == 1);
  CHECK(r.last_position == std::max(old1.back().position, old2.back().position));
  CHECK(r.manifest_path == archive + ".manifest.json");
  CHECK(r.purged_at == at(1000));

  // The log: only the old t-1 runs are gone; every other event is untouched.
  CHECK(store->read_stream("WorkflowRun-old-1").empty());
  CHECK(store->read_stream("WorkflowRun-old-2").empty());
  CHECK_FALSE(store->stream_version("WorkflowRun-old-1").has_value());
  CHECK(store->read_stream("WorkflowRun-t2-old") == t2);
  CHECK(store->read_stream("WorkflowRun-new-1") == fresh);
  CHECK(store->head_position() == head);
  const auto remaining = store->read_all(1, 1000);
  CHECK(remaining.size() == before_all.size() - r.events);
  for (const RecordedEvent& e : remaining) {
    CHECK((e.stream_id == "WorkflowRun-t2-old" || e.stream_id == "WorkflowRun-new-1"));
  }

  // verify passes over the gaps; the trigger is back exactly as it was.
  const LogVerification v = verify_log(*store, 3);
  CHECK(v.events == remaining.size());
  CHECK(v.purged == r.events);
  CHECK(v.head_position == head);
  CHECK(v.head_hash == remaining.back().hash);
  CHECK(trigger_sql(*store) == trigger);
  CHECK_THROWS_AS(store->write_transaction([](SqlSession& s) {
    s.execute("DELETE FROM annals_events WHERE position = $1", {std::int64_t{2}});
  }),
                  StoreError);

  // The read tables lost the purged runs only.
  CHECK(column(*store, "SELECT id FROM annals_workflow_runs") ==
        std::set<std::string>{"t2-old", "new-1"});
  CHECK(column(*store, "SELECT DISTINCT run_id FROM annals_node_executions") ==
        std::set<std::string>{"t2-old", "new-1"});

  // The archive: one line per removed event, equal to what was stored, and it verifies.
  const auto lines = lines_of(read_file(archive));
  std::vector<RecordedEvent> removed(old1);
  removed.insert(removed.end(), old2.begin(), old2.end());
  std::sort(removed.begin(), removed.end(),
            [](const auto& a, const auto& b) { return a.position < b.position; });
  REQUIRE(lines.size() == removed.size());
  for (std::size_t i = 0; i < lines.size(); ++i) CHECK(parse_export_line(lines[i]) == removed[i]);
  const PurgeArchiveVerification av = verify_purge_archive(*store, archive);
  CHECK(av.purge_id == r.purge_id);
  CHECK(av.events == r.events);
  CHECK(av.archive_sha256 == r.archive_sha256);
  CHECK(av.first_position == r.first_position);
  CHECK(av.last_position == r.last_position);

  // The manifest's counts and hashes.
  const auto manifest = nlohmann::json::parse(read_file(r.manifest_path));
  CHECK(manifest["tenant_id"] == "t-1");
  CHECK(manifest["before"] == format_timestamp(kCutoff));
  CHECK(manifest["purged_at"] == format_timestamp(at(1000)));
  CHECK(manifest["events"] == r.events);
  CHECK(manifest["streams"] == 2);
  CHECK(manifest["first_position"] == r.first_position);
  CHECK(manifest["last_position"] == r.last_position);
  CHECK(manifest["archive_sha256"] == r.archive_sha256);
  REQUIRE(manifest["removed"].size() == removed.size());
  for (std::size_t i = 0; i < removed.size(); ++i) {
    CHECK(manifest["removed"][i]["position"] == removed[i].position);
    CHECK(manifest["removed"][i]["hash"] == to_hex(removed[i].hash));
  }

  // The record.
  store->read_transaction([&](SqlSession& s) {
    const auto rows = s.query(
        "SELECT tenant_id, purged_before, events, archive_sha256, manifest_sha256 FROM "
        "annals_purges");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].text(0) == "t-1");
    CHECK(rows[0].integer(1) == to_micros(kCutoff));
    CHECK(rows[0].integer(2) == static_cast<std::int64_t>(r.events));
    CHECK(rows[0].text(3) == r.archive_sha256);
    CHECK(rows[0].text(4) == r.manifest_sha256);
    CHECK(s.query("SELECT count(*) FROM annals_purged_events").front().integer(0) ==
          static_cast<std::int64_t>(r.events));
  });

  // Appends go on after the head, chain, and verify.
  WorkflowRun later = WorkflowRun::create(created("new-2", "t-1", 300));
  runs.repo.save(later);
  CHECK(store->read_stream("WorkflowRun-new-2").front().position == head + 1);
  CHECK(verify_log(*store).head_position == head + 1);
  CHECK(column(*store, "SELECT id FROM annals_workflow_runs") ==
        std::set<std::string>{"t2-old", "new-1", "new-2"});

  // The same purge again matches nothing now.
  const PurgeResult again = purge_runs(
      *store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("again.jsonl")});
  CHECK(again.events == 0);
  CHECK(again.purge_id == 0);
}

TEMPLATE_TEST_CASE("a tampered archive fails verify_purge_archive", "[store][purge]", STORES) {
  TestType backend;
  auto store = backend.open();
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  const std::string archive = dir.file("a.jsonl");
  const PurgeResult r =
      purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = archive});
  REQUIRE(r.events > 2);
  const std::string original = read_file(archive);
  REQUIRE(archive_broken_at(*store, archive) == UINT64_MAX);
  auto lines = lines_of(original);
  auto join = [](const std::vector<std::string>& ls) {
    std::string out;
    for (const auto& l : ls) out += l + "\n";
    return out;
  };

  SECTION("an edited event fails at its position") {
    const std::size_t at_line = 1;
    const auto pos = lines[at_line].find("\"actor\":\"");
    REQUIRE(pos != std::string::npos);
    lines[at_line].insert(pos + 9, "x");
    write_file(archive, join(lines));
    CHECK(archive_broken_at(*store, archive) == parse_export_line(lines[at_line]).position);
  }
  SECTION("a missing line fails at its position") {
    const std::uint64_t dropped = parse_export_line(lines[2]).position;
    lines.erase(lines.begin() + 2);
    write_file(archive, join(lines));
    CHECK(archive_broken_at(*store, archive) == dropped);
  }
  SECTION("reordered lines fail") {
    std::swap(lines[0], lines[1]);
    write_file(archive, join(lines));
    CHECK(archive_broken_at(*store, archive) != UINT64_MAX);
  }
  SECTION("a change outside the events fails the SHA-256") {
    lines[0].insert(1, " ");  // still the same JSON object
    write_file(archive, join(lines));
    CHECK(archive_broken_at(*store, archive) == 0);
  }
  SECTION("a truncated file fails") {
    write_file(archive, original.substr(0, original.size() - 1));
    CHECK(archive_broken_at(*store, archive) != UINT64_MAX);
  }
  CHECK_NOTHROW(verify_log(*store));  // the log itself is fine
}

TEMPLATE_TEST_CASE("a purge that fails before its commit removes nothing", "[store][purge]",
                   STORES) {
  TestType backend;
  auto store = backend.open("payload=binary");  // so that payload_json is called
  attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  const auto before_all = store->read_all(1, 1000);
  const auto rows = column(*store, "SELECT id FROM annals_workflow_runs");
  auto unchanged = [&] {
    CHECK(store->read_all(1, 1000) == before_all);
    CHECK(column(*store, "SELECT id FROM annals_workflow_runs") == rows);
    CHECK(broken_at(*store) == 0);
    CHECK_FALSE(has_table(*store, "annals_purges"));
  };

  SECTION("the archive's directory does not exist") {
    CHECK_THROWS_AS(purge_runs(*store, {.tenant_id = "t-1",
                                        .before = kCutoff,
                                        .archive_path = dir.file("missing/a.jsonl")}),
                    StoreError);
    unchanged();
  }
  SECTION("the archive exists already and is left alone") {
    write_file(dir.file("a.jsonl"), "precious\n");
    CHECK_THROWS_AS(
        purge_runs(*store,
                   {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("a.jsonl")}),
        InvalidArgument);
    CHECK(read_file(dir.file("a.jsonl")) == "precious\n");
    unchanged();
  }
  SECTION("the manifest exists already") {
    write_file(dir.file("a.jsonl.manifest.json"), "{}");
    CHECK_THROWS_AS(
        purge_runs(*store,
                   {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("a.jsonl")}),
        InvalidArgument);
    CHECK_FALSE(std::filesystem::exists(dir.file("a.jsonl")));
    unchanged();
  }
  SECTION("the archive cannot be formatted") {
    const std::string archive = dir.file("a.jsonl");
    CHECK_THROWS_AS(
        purge_runs(*store, {.tenant_id = "t-1",
                            .before = kCutoff,
                            .archive_path = archive,
                            .payload_json = [](const RecordedEvent&) -> std::optional<std::string> {
                              throw StoreError("disk full", true);
                            }}),
        StoreError);
    CHECK(std::filesystem::exists(archive));  // left for inspection
    unchanged();
  }
  SECTION("the tenant or the archive path is empty") {
    CHECK_THROWS_AS(purge_runs(*store, {.before = kCutoff, .archive_path = dir.file("a")}),
                    InvalidArgument);
    CHECK_THROWS_AS(purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff}), InvalidArgument);
    unchanged();
  }
}

TEST_CASE("a run appended to while it is being archived is not purged", "[store][purge]") {
  // Only a file store lets an append run while the purge holds its read snapshot.
  SqliteStore backend;
  auto store = backend.open("payload=binary");  // so that payload_json is called
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  bool appended = false;
  const std::string archive = dir.file("a.jsonl");
  PurgeOptions options{.tenant_id = "t-1", .before = kCutoff, .archive_path = archive};
  options.payload_json = [&](const RecordedEvent& e) {
    if (!appended) {
      appended = true;
      store->append("WorkflowRun-old-2", ExpectedVersion::any(),
                    {annals::test::make_event("Note")});
    }
    return workflow_payload_json(e);
  };
  const auto old1 = store->read_stream("WorkflowRun-old-1");
  CHECK_THROWS_AS(purge_runs(*store, options), ConcurrencyError);
  CHECK(store->read_stream("WorkflowRun-old-1") == old1);
  REQUIRE(appended);
  CHECK(store->read_stream("WorkflowRun-old-2").back().type == "Note");
  CHECK(std::filesystem::exists(archive));
  CHECK(broken_at(*store) == 0);
}

TEMPLATE_TEST_CASE("a purge that matches nothing writes an empty archive and records nothing",
                   "[store][purge]", STORES) {
  TestType backend;
  auto store = backend.open();
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  const auto before_all = store->read_all(1, 1000);
  const std::string archive = dir.file("none.jsonl");
  const PurgeResult r =
      purge_runs(*store, {.tenant_id = "t-3", .before = kCutoff, .archive_path = archive});
  CHECK(r.events == 0);
  CHECK(r.streams == 0);
  CHECK(r.purge_id == 0);
  CHECK(read_file(archive).empty());
  const auto manifest = nlohmann::json::parse(read_file(r.manifest_path));
  CHECK(manifest["events"] == 0);
  CHECK(manifest["removed"].empty());
  CHECK(store->read_all(1, 1000) == before_all);
  CHECK(verify_purge_archive(*store, archive).events == 0);
  CHECK_FALSE(has_table(*store, "annals_purges"));

  // t-1's runs are all newer than this cutoff.
  const PurgeResult early =
      purge_runs(*store, {.tenant_id = "t-1", .before = at(5), .archive_path = dir.file("e")});
  CHECK(early.events == 0);
}

TEMPLATE_TEST_CASE("the run holding the head is held back until newer events exist",
                   "[store][purge]", STORES) {
  TestType backend;
  auto store = backend.open();
  Runs runs(store);
  runs.build();
  WorkflowRun old3 = WorkflowRun::create(created("old-3", "t-1", 50));  // the head's run
  runs.repo.save(old3);
  annals::test::TempDir dir;
  const std::uint64_t head = store->head_position();

  const PurgeResult first =
      purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("1")});
  CHECK(first.stream_ids == std::vector<std::string>{"WorkflowRun-old-1", "WorkflowRun-old-2"});
  CHECK(first.held_back == std::vector<std::string>{"WorkflowRun-old-3"});
  CHECK(store->read_stream("WorkflowRun-old-3").size() == 1);
  CHECK(store->head_position() == head);

  store->append("Other-1", ExpectedVersion::no_stream(), {annals::test::make_event()});
  const PurgeResult second =
      purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("2")});
  CHECK(second.purge_id == 2);
  CHECK(second.stream_ids == std::vector<std::string>{"WorkflowRun-old-3"});
  CHECK(second.first_position == head);
  CHECK(store->head_position() == head + 1);

  const LogVerification v = verify_log(*store);
  CHECK(v.purged == first.events + second.events);
  CHECK(verify_purge_archive(*store, dir.file("1")).purge_id == 1);
  CHECK(verify_purge_archive(*store, dir.file("2")).purge_id == 2);
}

TEMPLATE_TEST_CASE("a removed position without its purge record fails verify there",
                   "[store][purge]", STORES) {
  TestType backend;
  auto store = backend.open();
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  const PurgeResult r =
      purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("a")});
  REQUIRE(r.events >= 3);
  REQUIRE(broken_at(*store) == 0);

  // A record of the middle of the removed positions.
  std::int64_t victim = 0;
  store->read_transaction([&](SqlSession& s) {
    victim = s.query("SELECT position FROM annals_purged_events ORDER BY position LIMIT 1 OFFSET 1")
                 .front()
                 .integer(0);
  });
  store->write_transaction([&](SqlSession& s) {
    s.execute("DELETE FROM annals_purged_events WHERE position = $1", {victim});
  });
  CHECK(broken_at(*store) == static_cast<std::uint64_t>(victim));
  CHECK(archive_broken_at(*store, dir.file("a")) == static_cast<std::uint64_t>(victim));
}

TEMPLATE_TEST_CASE("a forged purge record does not hide an edited hash", "[store][purge]", STORES) {
  TestType backend;
  auto store = backend.open();
  Runs runs(store);
  runs.build();
  annals::test::TempDir dir;
  const PurgeResult r =
      purge_runs(*store, {.tenant_id = "t-1", .before = kCutoff, .archive_path = dir.file("a")});
  REQUIRE(r.events >= 1);
  // Changing the recorded hash breaks the chain at the next stored event and the archive there.
  store->write_transaction([&](SqlSession& s) {
    s.execute("UPDATE annals_purged_events SET hash = $2 WHERE position = $1",
              {static_cast<std::int64_t>(r.first_position), SqlBlob{std::string(32, '\0')}});
  });
  CHECK(broken_at(*store) != 0);
  CHECK(archive_broken_at(*store, dir.file("a")) == r.first_position);
}

TEST_CASE("a removal recorded outside any purge hides nothing", "[store][purge][tamper]") {
  annals::test::TempDir dir;
  const std::string path = dir.file("events.db");
  auto store = open_sql_event_store("sqlite:" + path);
  store->append("s", ExpectedVersion::any(), annals::test::make_events(5));
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TABLE annals_purges (id INTEGER PRIMARY KEY, purged_at INTEGER, tenant_id TEXT,"
        " purged_before INTEGER, events INTEGER, streams INTEGER, first_position INTEGER,"
        " last_position INTEGER, archive_path TEXT, archive_sha256 TEXT, manifest_sha256 TEXT);"
        "CREATE TABLE annals_purged_events (position INTEGER PRIMARY KEY, hash BLOB, purge_id"
        " INTEGER);"
        "INSERT INTO annals_purged_events SELECT position, hash, 99 FROM annals_events"
        " WHERE position = 3;"
        "DROP TRIGGER annals_events_no_delete; DELETE FROM annals_events WHERE position = 3;");
  }
  try {
    (void)verify_log(*store);
    FAIL("verify passed over a forged removal");
  } catch (const IntegrityError& e) {
    CHECK(e.position() == 3);
  }
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);  // a purge record that lies about its size
    db.exec("INSERT INTO annals_purges VALUES (99, 0, 't', 0, 2, 1, 3, 3, 'a', 'x', 'y')");
  }
  CHECK_THROWS_AS(verify_log(*store), IntegrityError);
}
