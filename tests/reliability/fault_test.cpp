// Fault injection: every I/O call an append, a projection batch and a rebuild make is failed in
// turn through the annals_fault VFS (tests/support/fault_vfs.hpp). Each failure must reach the
// caller as a StoreError naming the operation and the cause, leave nothing of the call visible
// (log, hash chain, read tables, checkpoints, rebuild claims), and leave the same store object
// working once the fault clears. Then the faults a deployment meets for real: a full disk
// (max_page_count), a read-only database file, and another process holding the write lock.

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "annals/projections/engine.hpp"
#include "annals/projections/projection_runner.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/store/hash_chain.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/backends.hpp"
#include "support/fault_vfs.hpp"
#include "support/io_thread.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using annals::test::FaultGuard;
using annals::test::FaultVfs;
using annals::test::eventually;
using annals::test::IoKind;
using annals::test::IoThread;
using annals::test::make_events;
using annals::test::TempDir;
using namespace std::chrono_literals;

namespace {

// Events per stream in a table of its own, with hook bookkeeping to check that every
// committing() is answered by exactly one committed() or rolled_back().
class Totals final : public Projection {
 public:
  Totals(std::string name, std::string table) : name_(std::move(name)), table_(std::move(table)) {}

  std::string name() const override { return name_; }
  std::uint32_t version() const override { return 1; }
  std::vector<std::string> handled_types() const override { return {}; }
  std::vector<ProjectionTable> tables() const override { return {{table_, {"stream_id"}}}; }
  void setup(ProjectionContext& ctx) override {
    ctx.sql().execute_script("CREATE TABLE IF NOT EXISTS " + ctx.table(table_) +
                             " (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL,"
                             " last_position INTEGER NOT NULL)");
  }
  void apply(const RecordedEvent& e, ProjectionContext& ctx) override {
    ctx.sql().execute("INSERT INTO " + ctx.table(table_) +
                          " (stream_id, events, last_position) VALUES ($1, 1, $2)"
                          " ON CONFLICT (stream_id) DO UPDATE SET events = events + 1,"
                          " last_position = excluded.last_position",
                      {e.stream_id, static_cast<std::int64_t>(e.position)});
  }
  void committing(const std::vector<RecordedEvent>& events) noexcept override {
    committing_ += events.size();
  }
  void committed(const std::vector<RecordedEvent>& events) noexcept override {
    committed_ += events.size();
  }
  void rolled_back(const std::vector<RecordedEvent>& events) noexcept override {
    rolled_back_ += events.size();
  }

  const std::string& table() const { return table_; }
  std::atomic<std::uint64_t> committing_{0}, committed_{0}, rolled_back_{0};

 private:
  std::string name_, table_;
};

// Rows of a query as strings ("a|b|c"), through a connection of its own on the default VFS:
// what another process would see in the file.
std::vector<std::string> rows(SQLite::Database& db, const std::string& sql) {
  std::vector<std::string> out;
  SQLite::Statement q(db, sql);
  while (q.executeStep()) {
    std::string row;
    for (int i = 0; i < q.getColumnCount(); ++i) {
      if (i > 0) row += '|';
      row += q.getColumn(i).isNull() ? "NULL" : q.getColumn(i).getString();
    }
    out.push_back(std::move(row));
  }
  return out;
}

bool table_exists(SQLite::Database& db, const std::string& name) {
  return !rows(db, "SELECT 1 FROM sqlite_schema WHERE name = '" + name + "'").empty();
}

// Everything a public call could leave behind, as the file holds it.
struct FileState {
  std::vector<std::string> schema, events, checkpoints, claims;
  std::map<std::string, std::vector<std::string>> tables;
  friend bool operator==(const FileState&, const FileState&) = default;

  // Without a failed rebuild's shadow tables ("<live>__g<n>") and claims.
  [[nodiscard]] FileState without_rebuild_leftovers() const {
    FileState out = *this;
    std::erase_if(out.schema,
                  [](const std::string& s) { return s.find("__g") != std::string::npos; });
    out.claims.clear();
    return out;
  }
  [[nodiscard]] bool has_rebuild_leftovers() const {
    return !claims.empty() || without_rebuild_leftovers().schema != schema;
  }
};

FileState file_state(const std::string& path, const std::vector<std::string>& tables) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  FileState s;
  s.schema = rows(db, "SELECT type, name FROM sqlite_schema ORDER BY type, name");
  s.events = rows(db,
                  "SELECT position, stream_id, version, event_id, type, hex(hash)"
                  " FROM annals_events ORDER BY position");
  if (table_exists(db, "annals_projections")) {
    s.checkpoints = rows(db, "SELECT * FROM annals_projections ORDER BY name");
  }
  if (table_exists(db, "annals_rebuilds")) {
    s.claims = rows(db, "SELECT * FROM annals_rebuilds ORDER BY name");
  }
  for (const std::string& t : tables) {
    if (table_exists(db, t)) s.tables[t] = rows(db, "SELECT * FROM " + t + " ORDER BY stream_id");
  }
  return s;
}

// A store on the fault VFS with an inline projection, and an async one (not attached) for the
// batch and rebuild sweeps.
// How the writer's I/O is made to differ between sweeps.
enum class Mode : std::uint8_t {
  warm,           // only this store object writes: its page cache stays valid, it reads nothing
  other_writer,   // another store object appends before every run: the writer re-reads pages
  checkpointing,  // the WAL is checkpointed after every commit and truncated after a restart
};

const char* to_string(Mode mode) {
  switch (mode) {
    case Mode::warm:
      return "warm";
    case Mode::other_writer:
      return "other writer";
    case Mode::checkpointing:
      return "checkpointing";
  }
  return "?";
}

struct Fixture {
  // full: every commit syncs (for the sync sweeps); the others meet the same reads and writes
  // without paying for a flush per run.
  explicit Fixture(bool group_commit, Mode mode = Mode::warm,
                   Synchronous synchronous = Synchronous::full)
      : mode(mode) {
    StoreOptions options;
    options.vfs = FaultVfs::kName;
    options.group_commit = group_commit;
    options.synchronous = synchronous;
    FaultVfs::instance();
    store = open_sql_event_store(dir.sqlite_uri("events.db"), options);
    attach_inline_projections(*store, {inline_totals});
    (void)prepare_projection(*store, *async_totals);
    if (mode == Mode::other_writer) {
      StoreOptions other_options = options;
      other_options.synchronous = Synchronous::normal;  // not under test: no flush per append
      other = open_event_store(dir.sqlite_uri("events.db"), other_options);
    }
    if (mode == Mode::checkpointing) {
      // The writer connection's own settings: a checkpoint after every commit (its I/O runs
      // inside the append call), and the WAL truncated when it restarts.
      store->write_transaction([](SqlSession& sql) {
        sql.execute_script("PRAGMA wal_autocheckpoint = 1; PRAGMA journal_size_limit = 0");
      });
    }
  }

  // Before every run of a sweep.
  void between_runs() {
    if (other) other->append("other", ExpectedVersion::any(), make_events(1, "Other"));
  }

  std::string path() const { return dir.file("events.db"); }
  FileState state() const {
    return file_state(path(), {inline_totals->table(), async_totals->table()});
  }

  // Appends through the store with no fault armed.
  void append_clean(const std::string& stream, std::size_t n) {
    store->append(stream, ExpectedVersion::any(), make_events(n, "Clean"));
  }

  // The invariants that hold whatever failed before: the chain verifies over gap-free
  // positions 1..head, the store's readers agree with the file, the inline table equals the
  // log (a rebuild's result) at the inline checkpoint (the head), the async table equals the
  // log up to its checkpoint, and every committing() was answered.
  // With another writer the inline projection is at the head only right after an append
  // through this store object (it catches up the other's events there).
  void check_consistent() const { check_consistent(mode != Mode::other_writer); }
  void check_consistent(bool inline_at_head) const {
    SQLite::Database db(path(), SQLite::OPEN_READONLY);
    const LogVerification v = verify_log(*store);
    const std::uint64_t head = store->head_position();
    CHECK(v.head_position == head);
    CHECK(v.events == head);
    CHECK(rows(db, "SELECT count(*), coalesce(max(position), 0) FROM annals_events") ==
          std::vector<std::string>{std::to_string(head) + "|" + std::to_string(head)});
    CHECK(store->read_all(1, SIZE_MAX).size() == head);
    const auto expected_upto = [&](std::uint64_t at) {
      return rows(
          db, "SELECT stream_id, count(*), max(position) FROM annals_events WHERE position <= " +
                  std::to_string(at) + " GROUP BY stream_id ORDER BY stream_id");
    };
    const auto checkpoint = [&](const std::string& name) {
      const auto r =
          rows(db, "SELECT position FROM annals_projections WHERE name = '" + name + "'");
      REQUIRE(r.size() == 1);
      return std::stoull(r.front());
    };
    const std::uint64_t inline_at = checkpoint(inline_totals->name());
    if (inline_at_head) CHECK(inline_at == head);
    CHECK(inline_at <= head);
    CHECK(rows(db, "SELECT * FROM " + inline_totals->table() + " ORDER BY stream_id") ==
          expected_upto(inline_at));
    const std::uint64_t async_at = checkpoint(async_totals->name());
    CHECK(async_at <= head);
    CHECK(rows(db, "SELECT * FROM " + async_totals->table() + " ORDER BY stream_id") ==
          expected_upto(async_at));
    for (const Totals* p : {inline_totals.get(), async_totals.get()}) {
      CHECK(p->committing_.load() == p->committed_.load() + p->rolled_back_.load());
    }
  }

  const Mode mode;
  TempDir dir;
  std::shared_ptr<EventStore> other;  // Mode::other_writer: another writer on the file
  std::shared_ptr<Totals> inline_totals =
      std::make_shared<Totals>("fault_inline", "annals_t_inline");
  std::shared_ptr<Totals> async_totals = std::make_shared<Totals>("fault_async", "annals_t_async");
  std::shared_ptr<SqlEventStore> store;
  FaultGuard guard;
};

struct Fault {
  IoKind kind;
  int code;
  const char* cause;  // what SQLite's message says
};

const Fault kFaults[] = {
    {IoKind::write, SQLITE_IOERR_WRITE, "disk I/O error"},
    {IoKind::write, SQLITE_FULL, "database or disk is full"},
    {IoKind::sync, SQLITE_IOERR_FSYNC, "disk I/O error"},
    {IoKind::read, SQLITE_IOERR_READ, "disk I/O error"},
    {IoKind::truncate, SQLITE_IOERR_TRUNCATE, "disk I/O error"},
};

std::string describe(const Fault& f) {
  return std::string(test::to_string(f.kind)) + " failing with " + sqlite3_errstr(f.code) + " (" +
         std::to_string(f.code) + ")";
}

struct SweepStats {
  std::uint64_t unfaulted_calls = 0;  // calls of the kind one unfaulted run made
  std::uint64_t swept = 0;            // call numbers failed (the last run needed no fault)
  std::uint64_t thrown = 0;           // runs that threw
  std::uint64_t absorbed = 0;         // runs whose fault SQLite absorbed (the call succeeded)
};

// Runs `op` once unfaulted to count its calls of f.kind, then for n = 1, 2, ... fails the nth
// call, until a run makes fewer than n calls: every call of the operation was failed once.
// A run that throws must throw StoreError whose message holds `context` and the cause, and leave
// the file as it was; a run that succeeds despite the fault must have done all its work
// (`done` checks it). After every run the fixture is consistent and appending works again.
// What a failed run may leave in the file.
enum class Left : std::uint8_t {
  nothing,            // the file is exactly as before
  rebuild_leftovers,  // and a failed rebuild's shadow tables and claim, if the disk still failed
                      // when it tried to drop them (the next rebuild drops them)
  earlier_batches,    // the log as before; projection batches before the failed one committed
                      // (check_consistent: their rows and checkpoint agree)
};

// With `sticky`, every call of the kind from the nth on fails (a disk that stays full) until the
// run ends.
SweepStats sweep(Fixture& f, const Fault& fault, const std::string& context,
                 const std::function<void()>& before_each, const std::function<void()>& op,
                 const std::function<void()>& done, bool sticky = false,
                 Left left = Left::nothing) {
  FaultVfs& vfs = FaultVfs::instance();
  SweepStats stats;
  f.between_runs();
  before_each();
  const std::uint64_t calls_before = vfs.calls(fault.kind);
  op();
  stats.unfaulted_calls = vfs.calls(fault.kind) - calls_before;
  done();
  constexpr std::uint64_t kMaxCalls = 5000;  // a sweep that never ends is a test bug
  for (std::uint64_t n = 1; n <= kMaxCalls; ++n) {
    f.between_runs();
    before_each();
    const FileState before = f.state();
    vfs.arm(fault.kind, n, fault.code, sticky);
    std::string error;
    bool threw = false;
    try {
      op();
    } catch (const StoreError& e) {
      threw = true;
      error = e.what();
    }
    const std::uint64_t fired = vfs.fired();
    vfs.disarm();
    INFO(describe(fault) << " at call " << n << " of " << context << ": "
                         << (threw ? error : "no exception"));
    if (threw) {
      ++stats.thrown;
      REQUIRE(fired >= 1);  // the error is the fault's, not something else
      if (!sticky) REQUIRE(fired == 1);
      CHECK_THAT(error, Catch::Contains(context) && Catch::Contains(fault.cause));
      switch (left) {
        case Left::nothing:
          REQUIRE(f.state() == before);
          break;
        case Left::rebuild_leftovers:
          REQUIRE(f.state().without_rebuild_leftovers() == before.without_rebuild_leftovers());
          break;
        case Left::earlier_batches:
          REQUIRE(f.state().events == before.events);
          break;
      }
    } else if (fired == 0 && n > stats.unfaulted_calls) {
      stats.swept = n - 1;
      done();
      f.check_consistent();
      return stats;
    } else {
      // The fault was absorbed (a checkpoint after the commit, which SQLite lets fail), or this
      // run made fewer calls than the counted one: the call did all its work either way.
      if (fired > 0) ++stats.absorbed;
      done();
    }
    f.check_consistent();
    // The same store object works again: an append succeeds and everything still agrees.
    f.append_clean("recovery", 1);
    f.check_consistent(/*inline_at_head=*/true);
  }
  FAIL("the sweep did not end after " << kMaxCalls << " calls");
  return stats;
}

void report(const std::string& what, const Fault& fault, const SweepStats& s) {
  std::printf(
      "fault sweep: %-40s %-44s unfaulted %3llu calls, swept %3llu, threw %3llu, "
      "absorbed %llu\n",
      what.c_str(), describe(fault).c_str(), static_cast<unsigned long long>(s.unfaulted_calls),
      static_cast<unsigned long long>(s.swept), static_cast<unsigned long long>(s.thrown),
      static_cast<unsigned long long>(s.absorbed));
}

// Per kind, the most calls any sweep of the test covered, to check no kind went unswept.
using Coverage = std::map<IoKind, std::uint64_t>;

void note(Coverage& coverage, const Fault& fault, const SweepStats& s) {
  coverage[fault.kind] = std::max(coverage[fault.kind], s.swept);
  CHECK(s.swept >= s.unfaulted_calls);  // the sweep ends only past the counted run's calls
}

}  // namespace

TEST_CASE("the fault VFS forwards everything and counts each kind of I/O call",
          "[reliability][fault]") {
  TempDir dir;
  FaultVfs& vfs = FaultVfs::instance();
  FaultGuard guard;
  const auto before = vfs.snapshot();
  {
    auto store = open_sql_event_store(dir.sqlite_uri("events.db", "vfs=annals_fault"));
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
    CHECK(store->read_stream("s").size() == 3);
    CHECK(verify_log(*store).events == 3);
  }
  const auto after = vfs.snapshot();
  for (IoKind kind : {IoKind::read, IoKind::write, IoKind::sync, IoKind::file_size, IoKind::shm_map,
                      IoKind::shm_lock}) {
    INFO(test::to_string(kind));
    CHECK(after[static_cast<std::size_t>(kind)] > before[static_cast<std::size_t>(kind)]);
  }
  // The file is an ordinary WAL-mode store: the default VFS opens it as well.
  auto plain = open_event_store(dir.sqlite_uri("events.db"));
  CHECK(plain->read_stream("s").size() == 3);
}

TEST_CASE("the store names an unregistered VFS instead of opening the file",
          "[reliability][fault]") {
  TempDir dir;
  CHECK_THROWS_MATCHES(
      open_event_store(dir.sqlite_uri("events.db", "vfs=no-such-vfs")), InvalidArgument,
      Catch::Matchers::Predicate<InvalidArgument>([](const InvalidArgument& e) {
        return std::string(e.what()).find("no SQLite VFS named 'no-such-vfs'") != std::string::npos;
      }));
  CHECK_FALSE(std::filesystem::exists(dir.file("events.db")));
  CHECK_THROWS_AS(open_event_store(dir.sqlite_uri("events.db", "vfs=")), InvalidArgument);
}

TEST_CASE("every I/O call of an append fails cleanly and the store object recovers",
          "[reliability][fault]") {
  const bool group_commit = GENERATE(true, false);
  const Mode mode = GENERATE(Mode::warm, Mode::other_writer, Mode::checkpointing);
  const bool syncs = GENERATE(false, true);  // sweep the syncs, or the other kinds
  INFO("group_commit " << (group_commit ? "on" : "off") << ", " << to_string(mode));
  // The checkpoint's calls do not depend on how the append got the writer: once is enough
  // (the slowest sweep, a flush per run).
  if (mode == Mode::checkpointing && !group_commit) return;
  Fixture f(group_commit, mode, syncs ? Synchronous::full : Synchronous::normal);
  f.append_clean("batch-s", 2);
  Coverage coverage;
  int round = 0;
  for (const Fault& fault : kFaults) {
    if ((fault.kind == IoKind::sync) != syncs) continue;
    // One stream.
    {
      std::vector<std::string> ids;
      const auto op = [&] {
        ++round;
        std::vector<NewEvent> events = make_events(2, "Single");
        for (NewEvent& e : events) e.event_id = new_event_id();
        ids.clear();
        for (const NewEvent& e : events) ids.push_back(to_string(e.event_id));
        f.store->append("single-" + std::to_string(round), ExpectedVersion::no_stream(), events);
      };
      const auto done = [&] {
        const auto got = f.store->read_stream("single-" + std::to_string(round));
        REQUIRE(got.size() == 2);
        CHECK(to_string(got[0].event_id) == ids[0]);
      };
      const SweepStats s = sweep(
          f, fault, "append to single-", [] {}, op, done);
      report(std::string("append (one stream) ") + to_string(f.mode), fault, s);
      note(coverage, fault, s);
    }
    // A batch over three streams, one of them existing.
    {
      const auto op = [&] {
        ++round;
        const std::string r = std::to_string(round);
        f.store->append({{"batch-a-" + r, ExpectedVersion::no_stream(), make_events(2, "BatchA")},
                         {"batch-s", ExpectedVersion::any(), make_events(1, "BatchS")},
                         {"batch-b-" + r, ExpectedVersion::no_stream(), make_events(3, "BatchB")}});
      };
      const auto done = [&] {
        const std::string r = std::to_string(round);
        CHECK(f.store->read_stream("batch-a-" + r).size() == 2);
        CHECK(f.store->read_stream("batch-b-" + r).size() == 3);
      };
      const SweepStats s = sweep(
          f, fault, "append to batch-", [] {}, op, done);
      report(std::string("append (batch) ") + to_string(f.mode), fault, s);
      note(coverage, fault, s);
    }
  }
  if (!syncs) {
    // A disk that stays full, and reads that keep failing, from each call on.
    for (const Fault& fault : {kFaults[1], kFaults[3]}) {
      const auto op = [&] {
        ++round;
        f.store->append("sticky-" + std::to_string(round), ExpectedVersion::no_stream(),
                        make_events(2, "Sticky"));
      };
      const auto done = [&] {
        CHECK(f.store->read_stream("sticky-" + std::to_string(round)).size() == 2);
      };
      const SweepStats s = sweep(
          f, fault, "append to sticky-", [] {}, op, done, true);
      report(std::string("append (sticky) ") + to_string(f.mode), fault, s);
    }
  }
  CHECK(coverage[syncs ? IoKind::sync : IoKind::write] > 0);
  if (mode != Mode::warm && !syncs) CHECK(coverage[IoKind::read] > 0);
  f.check_consistent();
}

TEST_CASE("every I/O call of a projection batch fails cleanly and the store object recovers",
          "[reliability][fault]") {
  // Group commit changes only how appends get the writer; write_transaction() is the same.
  const bool group_commit = true;
  // (Mode::checkpointing is the append sweep's: here it would only repeat the checkpoint's
  // calls after each commit, at the cost of a flush per run.)
  const Mode mode = GENERATE(Mode::warm, Mode::other_writer);
  const bool syncs = GENERATE(false, true);  // sweep the syncs, or the other kinds
  INFO("group_commit " << (group_commit ? "on" : "off") << ", " << to_string(mode));
  Fixture f(group_commit, mode, syncs ? Synchronous::full : Synchronous::normal);
  Coverage coverage;
  for (const Fault& fault : kFaults) {
    if ((fault.kind == IoKind::sync) != syncs) continue;
    // A backlog of appends the async projection has not seen, applied in one batch.
    const auto backlog = [&] { f.append_clean("backlog", 3); };
    const auto op = [&] { (void)catch_up(*f.store, *f.async_totals, 1000); };
    const auto done = [&] {
      f.check_consistent();
      SQLite::Database db(f.path(), SQLite::OPEN_READONLY);
      CHECK(rows(db, "SELECT position FROM annals_projections WHERE name = 'fault_async'") ==
            std::vector<std::string>{std::to_string(f.store->head_position())});
    };
    const SweepStats s = sweep(f, fault, "catch_up fault_async", backlog, op, done);
    report(std::string("projection batch ") + to_string(f.mode), fault, s);
    note(coverage, fault, s);
  }
  if (!syncs) {
    for (const Fault& fault : {kFaults[1], kFaults[3]}) {
      const auto backlog = [&] { f.append_clean("backlog", 3); };
      const auto op = [&] { (void)catch_up(*f.store, *f.async_totals, 2); };
      const auto done = [&] { f.check_consistent(); };
      // Several batches: those before the failing one stay committed, so the file is compared
      // through check_consistent (rows and checkpoint agree) rather than as unchanged.
      const SweepStats s =
          sweep(f, fault, "catch_up fault_async", backlog, op, done, true, Left::earlier_batches);
      report(std::string("projection batches (sticky) ") + to_string(f.mode), fault, s);
    }
  }
  CHECK(coverage[syncs ? IoKind::sync : IoKind::write] > 0);
  if (mode != Mode::warm && !syncs) CHECK(coverage[IoKind::read] > 0);
}

TEST_CASE("every I/O call of a rebuild fails cleanly and the store object recovers",
          "[reliability][fault]") {
  // Group commit changes only how appends get the writer; write_transaction() is the same.
  const bool group_commit = true;
  // (Mode::checkpointing is the append sweep's: here it would only repeat the checkpoint's
  // calls after each commit, at the cost of a flush per run.)
  const Mode mode = GENERATE(Mode::warm, Mode::other_writer);
  const bool syncs = GENERATE(false, true);  // sweep the syncs, or the other kinds
  INFO("group_commit " << (group_commit ? "on" : "off") << ", " << to_string(mode));
  Fixture f(group_commit, mode, syncs ? Synchronous::full : Synchronous::normal);
  f.append_clean("a", 4);
  f.append_clean("b", 3);
  (void)catch_up(*f.store, *f.async_totals);
  Coverage coverage;
  for (const Fault& fault : kFaults) {
    if ((fault.kind == IoKind::sync) != syncs) continue;
    for (Totals* projection : {f.async_totals.get(), f.inline_totals.get()}) {
      const auto op = [&] { (void)rebuild(*f.store, *projection); };
      const auto done = [&] { f.check_consistent(); };
      const SweepStats s = sweep(
          f, fault, "rebuild of " + projection->name(), [] {}, op, done);
      report("rebuild " + projection->name() + " " + to_string(f.mode), fault, s);
      note(coverage, fault, s);
    }
  }
  if (!syncs) {
    for (const Fault& fault : {kFaults[1], kFaults[3]}) {
      const auto op = [&] { (void)rebuild(*f.store, *f.async_totals); };
      const auto done = [&] {
        f.check_consistent();
        CHECK_FALSE(f.state().has_rebuild_leftovers());  // a rebuild drops what one left
      };
      const SweepStats s = sweep(
          f, fault, "rebuild of fault_async", [] {}, op, done, true, Left::rebuild_leftovers);
      report(std::string("rebuild (sticky) ") + to_string(f.mode), fault, s);
    }
  }
  CHECK(coverage[syncs ? IoKind::sync : IoKind::write] > 0);
  if (mode != Mode::warm && !syncs) CHECK(coverage[IoKind::read] > 0);
}

TEST_CASE("a projection runner retries through a disk that stays full and catches up after",
          "[reliability][fault]") {
  Fixture f(true);
  f.append_clean("s", 5);
  const FileState before = f.state();
  FaultVfs& vfs = FaultVfs::instance();
  IoThread io;
  // Every write from now on fails: the disk stays full.
  vfs.arm(IoKind::write, 1, SQLITE_FULL, /*sticky=*/true);
  ProjectionRunner runner(
      io.io, f.store, f.async_totals,
      {.batch_size = 2, .poll_interval = 10ms, .initial_backoff = 1ms, .max_backoff = 5ms});
  runner.start();
  REQUIRE(eventually([&] { return runner.status().retries >= 3; }));
  const ProjectionRunnerStatus status = runner.status();
  CHECK(status.state == ProjectionRunnerState::running);
  CHECK_THAT(status.last_error, Catch::Contains("database or disk is full"));
  CHECK(status.checkpoint == 0);
  CHECK(f.state() == before);
  vfs.disarm();
  REQUIRE(runner.wait_until_caught_up(20s));
  // Reset after the batch that succeeded, just after waiters hear of its checkpoint.
  CHECK(eventually([&] { return runner.status().retries == 0; }));
  runner.stop();
  f.check_consistent();
}

namespace {

std::int64_t pragma(SqlEventStore& store, const std::string& sql) {
  std::int64_t value = 0;
  store.write_transaction([&](SqlSession& s) { value = s.query(sql).front().integer(0); });
  return value;
}

std::vector<NewEvent> big_events(std::size_t n) {
  std::vector<NewEvent> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(test::make_event("Big", "{\"blob\":\"" + std::string(20000, 'x') + "\"}"));
  }
  return out;
}

}  // namespace

TEST_CASE("a full disk (max_page_count) fails appends and rebuilds cleanly, then they work again",
          "[reliability][fault]") {
  const bool group_commit = GENERATE(true, false);
  Fixture f(group_commit);
  f.append_clean("s", 3);
  (void)catch_up(*f.store, *f.async_totals);
  // The limit is the writer connection's own (PRAGMA max_page_count does not persist), set
  // through a write transaction to the pages the file has: no page can be added.
  const std::int64_t pages = pragma(*f.store, "PRAGMA page_count");
  CHECK(pragma(*f.store, "PRAGMA max_page_count = " + std::to_string(pages)) == pages);
  const FileState before = f.state();
  const auto full = [](const std::string& context) {
    return Catch::Matchers::Predicate<StoreError>(
        [context](const StoreError& e) {
          const std::string m = e.what();
          return m.find(context) != std::string::npos &&
                 m.find("database or disk is full") != std::string::npos && e.transient();
        },
        "a transient StoreError naming " + context + " and the full disk");
  };
  CHECK_THROWS_MATCHES(f.store->append("big", ExpectedVersion::no_stream(), big_events(4)),
                       StoreError, full("append to big"));
  CHECK_THROWS_MATCHES(f.store->append({{"big-a", ExpectedVersion::no_stream(), big_events(2)},
                                        {"big-b", ExpectedVersion::no_stream(), big_events(2)}}),
                       StoreError, full("append to big-a"));
  CHECK_THROWS_MATCHES(rebuild(*f.store, *f.async_totals), StoreError,
                       full("rebuild of fault_async"));
  CHECK(f.state() == before);
  f.check_consistent();

  // Space comes back: the same store object appends and rebuilds again.
  (void)pragma(*f.store, "PRAGMA max_page_count = 1073741823");
  const AppendResult appended = f.store->append("big", ExpectedVersion::no_stream(), big_events(4));
  CHECK(appended.last_position == f.store->head_position());
  CHECK(rebuild(*f.store, *f.async_totals).swapped);
  f.check_consistent();
}

TEST_CASE(
    "a read-only database file gives a clear StoreError, loses nothing, and the store "
    "object writes again once the file is writable",
    "[reliability][fault]") {
  TempDir dir;
  FaultVfs& vfs = FaultVfs::instance();
  FaultGuard guard;
  const std::string uri = dir.sqlite_uri("events.db", "vfs=annals_fault");
  {
    auto store = open_sql_event_store(uri);
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
  }
  const FileState before = file_state(dir.file("events.db"), {});
  // As the OS opens a write-protected file for a user that is not root (tests often run as
  // root, for whom chmod changes nothing): the shim opens the database read-only.
  vfs.set_read_only(true);
  auto store = open_sql_event_store(uri);
  CHECK(store->read_stream("s").size() == 3);  // reads work
  CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(3), make_events(1)), StoreError,
                       Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
                         const std::string m = e.what();
                         return m.find("append to s") != std::string::npos &&
                                m.find("read-only") != std::string::npos && e.transient();
                       }));
  CHECK_THROWS_AS(store->write_transaction([](SqlSession& s) {
    s.execute_script("CREATE TABLE annals_t_x (a INTEGER)");
  }),
                  StoreError);
  CHECK(file_state(dir.file("events.db"), {}) == before);
  CHECK(verify_log(*store).events == 3);

  // Writable again: the same store object writes (a new writer connection), nothing reopened.
  vfs.set_read_only(false);
  CHECK(store->append("s", ExpectedVersion::exactly(3), make_events(1)).last_position == 4);
  store->write_transaction(
      [](SqlSession& s) { s.execute_script("CREATE TABLE annals_t_x (a INTEGER)"); });
  CHECK(verify_log(*store).events == 4);
  CHECK(open_event_store(dir.sqlite_uri("events.db"))->read_stream("s").size() == 4);
}

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE(
    "an unwritable -wal gives a non-transient StoreError naming it, loses nothing, and the "
    "store object writes again once the -wal is writable",
    "[reliability][fault]") {
  TempDir dir;
  FaultVfs& vfs = FaultVfs::instance();
  FaultGuard guard;
  const std::string uri = dir.sqlite_uri("events.db", "vfs=annals_fault");
  {
    auto store = open_sql_event_store(uri);
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
  }
  // Another connection keeps the -wal in place, as a process of another user (root) would
  // have created it; the store then opens it read-only, its database file read-write.
  auto other = open_event_store(dir.sqlite_uri("events.db"));
  REQUIRE(other->head_position() == 3);
  const FileState before = file_state(dir.file("events.db"), {});
  vfs.set_wal_read_only(true);
  auto store = open_sql_event_store(uri);
  CHECK(store->read_stream("s").size() == 3);  // reads work
  auto names_the_wal = Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
    const std::string m = e.what();
    return contains(m, "-wal or -shm file is not writable") &&
           !contains(m, "database file is read-only") && !e.transient();
  });
  for (int i = 0; i < 2; ++i) {  // the second time on a replacement writer, refused as well
    CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(3), make_events(1)),
                         StoreError, names_the_wal);
  }
  CHECK_THROWS_MATCHES(store->write_transaction([](SqlSession& s) {
    s.execute_script("CREATE TABLE annals_t_x (a INTEGER)");
  }),
                       StoreError, names_the_wal);
  CHECK(file_state(dir.file("events.db"), {}) == before);

  // Writable again: the same store object writes (a new writer connection), nothing reopened.
  vfs.set_wal_read_only(false);
  CHECK(store->append("s", ExpectedVersion::exactly(3), make_events(1)).last_position == 4);
  store->write_transaction(
      [](SqlSession& s) { s.execute_script("CREATE TABLE annals_t_x (a INTEGER)"); });
  CHECK(verify_log(*store).events == 4);
  CHECK(other->read_stream("s").size() == 4);
}

TEST_CASE(
    "a store whose file was replaced while it was read-only refuses to write into the new file",
    "[reliability][fault]") {
  TempDir dir;
  FaultVfs& vfs = FaultVfs::instance();
  FaultGuard guard;
  const std::string path = dir.file("events.db");
  {
    auto store = open_sql_event_store(dir.sqlite_uri("events.db"));
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
    auto other = open_sql_event_store(dir.sqlite_uri("other.db"));
    other->append("o", ExpectedVersion::no_stream(), make_events(1));
  }
  vfs.set_read_only(true);
  auto store = open_sql_event_store(dir.sqlite_uri("events.db", "vfs=annals_fault"));
  REQUIRE(store->head_position() == 3);
  CHECK_THROWS_AS(store->append("s", ExpectedVersion::exactly(3), make_events(1)), StoreError);

  // Another annals store (say, a restored backup) is renamed over the path; then it is writable.
  std::filesystem::rename(dir.file("other.db"), path);
  const std::string replacement = bytes_of(path);
  vfs.set_read_only(false);
  auto replaced = Catch::Matchers::Predicate<StoreError>([&path](const StoreError& e) {
    const std::string m = e.what();
    return contains(m, "the file at '" + path + "' was replaced") &&
           contains(m, "reopen the store") && !e.transient();
  });
  for (int i = 0; i < 2; ++i) {
    CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(3), make_events(1)),
                         StoreError, replaced);
  }
  CHECK_THROWS_MATCHES(store->write_transaction([](SqlSession& s) {
    s.execute_script("CREATE TABLE annals_t_x (a INTEGER)");
  }),
                       StoreError, replaced);
  CHECK(bytes_of(path) == replacement);  // not a byte written into the new file
  CHECK(store->head_position() == 3);    // reads still see the file the store opened
}

TEST_CASE("a replacement writer runs open's checks: a schema version raised meanwhile is refused",
          "[reliability][fault]") {
  TempDir dir;
  FaultVfs& vfs = FaultVfs::instance();
  FaultGuard guard;
  {
    auto store = open_sql_event_store(dir.sqlite_uri("events.db"));
    store->append("s", ExpectedVersion::no_stream(), make_events(3));
  }
  vfs.set_read_only(true);
  auto store = open_sql_event_store(dir.sqlite_uri("events.db", "vfs=annals_fault"));
  REQUIRE(store->head_position() == 3);
  {
    // A newer annals upgraded the same file meanwhile.
    SQLite::Database db(dir.file("events.db"), SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version=9");
  }
  vfs.set_read_only(false);
  CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(3), make_events(1)), StoreError,
                       Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
                         const std::string m = e.what();
                         return contains(m, "reopening the writer") &&
                                contains(m, "schema version 9, newer") && !e.transient();
                       }));
  SQLite::Database check(dir.file("events.db"), SQLite::OPEN_READONLY);
  CHECK(check.execAndGet("SELECT count(*) FROM annals_events").getInt() == 3);
}

namespace {

// A child process that holds the store's write lock (BEGIN IMMEDIATE on its own connection)
// until told to let go. Forked before the parent opens the file, so that the child inherits no
// SQLite state about it.
class LockHolder {
 public:
  explicit LockHolder(const std::string& path) {
    if (::pipe(to_child_) != 0 || ::pipe(to_parent_) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) run_child(path);  // never returns
    ::close(to_child_[0]);
    ::close(to_parent_[1]);
  }
  ~LockHolder() {
    ::close(to_child_[1]);  // the child exits on end of file
    ::close(to_parent_[0]);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

  // Asks the child to take the lock (c == 'L') or release it and exit (c == 'R'); returns its
  // answer: 'L' locked, 'R' released, 'E' an SQLite error.
  char command(char c) {
    if (::write(to_child_[1], &c, 1) != 1) return '?';
    char answer = '?';
    if (::read(to_parent_[0], &answer, 1) != 1) return '?';
    return answer;
  }

  // The child's exit status after 'R' (0: it released the lock cleanly).
  int wait() {
    int status = -1;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

 private:
  [[noreturn]] void run_child(const std::string& path) {
    ::close(to_child_[1]);
    ::close(to_parent_[0]);
    sqlite3* db = nullptr;
    char c = 0;
    int exit_code = 0;
    while (::read(to_child_[0], &c, 1) == 1) {
      char answer = 'E';
      if (c == 'L') {
        if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
            sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
          answer = 'L';
        }
      } else if (c == 'R') {
        if (db != nullptr && sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK &&
            sqlite3_close(db) == SQLITE_OK) {
          answer = 'R';
        } else {
          exit_code = 1;
        }
        db = nullptr;
      }
      if (::write(to_parent_[1], &answer, 1) != 1) exit_code = 2;
      if (c == 'R') break;
    }
    ::_exit(exit_code);
  }

  int to_child_[2] = {-1, -1};
  int to_parent_[2] = {-1, -1};
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("a database locked by another process past the busy timeout fails cleanly, then works",
          "[reliability][fault]") {
  const bool group_commit = GENERATE(true, false);
  TempDir dir;
  const std::string path = dir.file("events.db");
  {  // the file exists before the child starts; the child opens it only when told to lock
    auto created = open_event_store("sqlite:" + path);
  }
  LockHolder holder(path);
  StoreOptions options;
  options.busy_timeout = 100ms;
  options.group_commit = group_commit;
  auto store = open_sql_event_store("sqlite:" + path, options);
  auto inline_totals = std::make_shared<Totals>("fault_inline", "annals_t_inline");
  auto async_totals = std::make_shared<Totals>("fault_async", "annals_t_async");
  attach_inline_projections(*store, {inline_totals});
  (void)prepare_projection(*store, *async_totals);
  store->append("s", ExpectedVersion::no_stream(), make_events(2));
  (void)catch_up(*store, *async_totals);
  store->append("s", ExpectedVersion::exactly(2), make_events(1));
  const FileState before = file_state(path, {inline_totals->table(), async_totals->table()});

  REQUIRE(holder.command('L') == 'L');
  const auto busy = [](const std::string& context) {
    return Catch::Matchers::Predicate<StoreError>(
        [context](const StoreError& e) {
          const std::string m = e.what();
          return m.find(context) != std::string::npos &&
                 m.find("locked past the busy timeout") != std::string::npos && e.transient();
        },
        "a transient StoreError naming " + context + " and the lock");
  };
  CHECK_THROWS_MATCHES(store->append("s", ExpectedVersion::exactly(3), make_events(1)), StoreError,
                       busy("append to s"));
  CHECK_THROWS_MATCHES(store->append({{"t", ExpectedVersion::no_stream(), make_events(1)},
                                      {"s", ExpectedVersion::any(), make_events(1)}}),
                       StoreError, busy("append to t"));
  CHECK_THROWS_MATCHES(catch_up(*store, *async_totals), StoreError, busy("catch_up fault_async"));
  CHECK_THROWS_MATCHES(rebuild(*store, *async_totals), StoreError, busy("rebuild of fault_async"));
  CHECK(store->read_stream("s").size() == 3);  // readers are not blocked by the lock
  CHECK(file_state(path, {inline_totals->table(), async_totals->table()}) == before);

  REQUIRE(holder.command('R') == 'R');
  CHECK(holder.wait() == 0);
  // The same store object works without reopening.
  CHECK(store->append("s", ExpectedVersion::exactly(3), make_events(1)).stream_version == 4);
  CHECK(catch_up(*store, *async_totals) == 2);
  CHECK(rebuild(*store, *async_totals).identical);
  CHECK(verify_log(*store).events == 4);
  CHECK(inline_totals->committing_.load() ==
        inline_totals->committed_.load() + inline_totals->rolled_back_.load());
}

namespace {

// Holds the writer inside the on_append of an append to `stream` until released, so that the
// appends made meanwhile queue up and then run as one group.
class Gate final : public AppendHook {
 public:
  void on_append(SqlSession&, const std::vector<RecordedEvent>& appended) override {
    if (appended.empty() || appended.front().stream_id != stream) return;
    std::unique_lock lock(mutex_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void on_commit(const std::vector<RecordedEvent>&) noexcept override {}

  void wait_entered() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void close(std::string next_stream) {
    std::lock_guard lock(mutex_);
    stream = std::move(next_stream);
    entered_ = open_ = false;
  }

  std::string stream;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool entered_ = false, open_ = false;
};

}  // namespace

TEST_CASE("every I/O call of a group commit fails each of its appends cleanly",
          "[reliability][fault]") {
  // One append holds the writer (a hook waits) while three more queue; then the first commits
  // alone and the three run as one group, each in its savepoint: the leader's path. With another
  // writer before each run, reads fail inside the group's statements, and SQLite may roll the
  // whole transaction back under the appends already written (the "lost" path).
  const Mode mode = GENERATE(Mode::warm, Mode::other_writer);
  INFO(to_string(mode));
  Fixture f(/*group_commit=*/true, mode);
  auto gate = std::make_shared<Gate>();
  f.store->add_append_hook(gate);
  f.append_clean("s", 1);
  FaultVfs& vfs = FaultVfs::instance();
  int round = 0;
  std::uint64_t total_thrown = 0;
  for (const Fault& fault : kFaults) {
    // n == 0: an unfaulted run, to count the calls; the sweep goes past them.
    std::uint64_t n = 0, counted = 0, several = 0;  // several: runs failing 2+ appends
    for (;; ++n) {
      REQUIRE(n < 5000);
      ++round;
      const std::string r = std::to_string(round);
      f.between_runs();
      const FileState before = f.state();
      const std::uint64_t calls_before = vfs.calls(fault.kind);
      struct Outcome {
        std::vector<std::string> streams;
        std::size_t events = 0;
        bool ok = false;
        std::string error;
      };
      std::array<Outcome, 4> out;
      out[0] = {{"holder-" + r}, 1, false, {}};
      out[1] = {{"one-" + r}, 2, false, {}};
      out[2] = {{"batch-x-" + r, "batch-y-" + r}, 3, false, {}};
      out[3] = {{"last-" + r}, 1, false, {}};
      const auto append = [&](Outcome& o) {
        try {
          if (o.streams.size() == 1) {
            f.store->append(o.streams[0], ExpectedVersion::no_stream(), make_events(o.events));
          } else {
            f.store->append({{o.streams[0], ExpectedVersion::no_stream(), make_events(2)},
                             {o.streams[1], ExpectedVersion::no_stream(), make_events(1)}});
          }
          o.ok = true;
        } catch (const std::exception& e) {
          o.error = std::string(dynamic_cast<const StoreError*>(&e) ? "" : "not a StoreError: ") +
                    e.what();
        }
      };
      gate->close(out[0].streams[0]);
      std::vector<std::thread> threads;
      threads.emplace_back(append, std::ref(out[0]));
      gate->wait_entered();
      for (std::size_t i = 1; i < out.size(); ++i) threads.emplace_back(append, std::ref(out[i]));
      REQUIRE(eventually([&] { return f.store->group_commit_stats().queued == 3; }));
      if (n > 0) vfs.arm(fault.kind, n, fault.code);
      gate->open();
      for (std::thread& t : threads) t.join();
      const std::uint64_t fired = n > 0 ? vfs.fired() : 0;
      vfs.disarm();
      if (n == 0) counted = vfs.calls(fault.kind) - calls_before;
      INFO(describe(fault) << " at call " << n << " of a group commit");
      std::size_t failed = 0;
      for (const Outcome& o : out) {
        INFO(o.streams[0] << ": " << (o.ok ? "ok" : o.error));
        if (o.ok) {
          std::size_t events = 0;
          for (const std::string& s : o.streams) events += f.store->read_stream(s).size();
          CHECK(events == o.events);
        } else {
          ++failed;
          // A batch's error names the part being written when it failed.
          const bool names_own_stream =
              std::any_of(o.streams.begin(), o.streams.end(), [&](const std::string& stream) {
                return o.error.find("append to " + stream + " ") != std::string::npos;
              });
          CHECK(names_own_stream);
          CHECK_THAT(o.error, Catch::Contains(fault.cause));
          for (const std::string& s : o.streams) CHECK(f.store->read_stream(s).empty());
        }
      }
      if (fired == 0) CHECK(failed == 0);
      if (fired == 0 && n > counted) break;
      total_thrown += failed;
      if (failed >= 2) ++several;
      if (failed == out.size()) CHECK(f.state() == before);
      f.check_consistent();
      f.append_clean("recovery", 1);
      f.check_consistent(/*inline_at_head=*/true);
    }
    std::printf(
        "fault sweep: %-40s %-44s unfaulted %3llu calls, swept %3llu, runs failing 2+ "
        "appends %llu\n",
        (std::string("group commit of 1 + 3 appends ") + to_string(mode)).c_str(),
        describe(fault).c_str(), static_cast<unsigned long long>(counted),
        static_cast<unsigned long long>(n - 1), static_cast<unsigned long long>(several));
  }
  CHECK(total_thrown > 0);
  CHECK(f.store->group_commit_stats().max_group >= 3);
}

TEST_CASE("every read call of the store's reads fails cleanly and the reader pool recovers",
          "[reliability][fault]") {
  // Another writer before each run, so that the pooled readers re-read what changed.
  Fixture f(/*group_commit=*/true, Mode::other_writer, Synchronous::normal);
  f.append_clean("s", 3);
  const Fault fault = kFaults[3];  // reads failing
  std::vector<RecordedEvent> got;
  const auto read_all = [&] { got = f.store->read_all(1, SIZE_MAX); };
  const auto all_there = [&] { CHECK(got.size() == f.store->head_position()); };
  SweepStats s = sweep(
      f, fault, "read_all", [] {}, read_all, all_there);
  report("read_all other writer", fault, s);
  CHECK(s.swept > 0);
  const auto read_stream = [&] { got = f.store->read_stream("other"); };
  const auto stream_there = [&] { CHECK(got.size() == f.store->read_stream("other").size()); };
  s = sweep(
      f, fault, "read_stream other", [] {}, read_stream, stream_there);
  report("read_stream other writer", fault, s);
  CHECK(s.swept > 0);
  LogVerification v;
  const auto verify = [&] { v = verify_log(*f.store); };
  const auto verified = [&] { CHECK(v.head_position == f.store->head_position()); };
  s = sweep(
      f, fault, "read_all", [] {}, verify, verified);
  report("verify_log other writer", fault, s);
  CHECK(s.swept > 0);
}

TEST_CASE("a write inside a read transaction is not blamed on a read-only file",
          "[reliability][fault]") {
  TempDir dir;
  auto store = open_sql_event_store(dir.sqlite_uri("events.db"));
  store->append("s", ExpectedVersion::no_stream(), make_events(1));
  CHECK_THROWS_MATCHES(store->read_transaction([](SqlSession& s) {
    s.execute_script("CREATE TABLE annals_t_x (a INTEGER)");
  }),
                       StoreError, Catch::Matchers::Predicate<StoreError>([](const StoreError& e) {
                         const std::string m = e.what();
                         return m.find("a read transaction cannot write") != std::string::npos &&
                                m.find("read-only for this process") == std::string::npos &&
                                !e.transient();
                       }));
  // The file is writable and the store object writes.
  CHECK(store->append("s", ExpectedVersion::exactly(1), make_events(1)).stream_version == 2);
}
