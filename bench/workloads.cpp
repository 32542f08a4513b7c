#include "workloads.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <latch>
#include <unistd.h>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>

#include "annals/events/codec.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "annals/repositories/workflow_run_repository.hpp"
#include "annals/store/event_store.hpp"
#include "annals/store/sql_event_store.hpp"
#include "datasets.hpp"
#include "pg_admin.hpp"
#include "serve_load.hpp"

// W4 measures a load from a snapshot once the snapshot API is in the tree.
#if __has_include("annals/store/snapshot_store.hpp")
#define ANNALS_BENCH_SNAPSHOTS 1
#include "annals/store/snapshot_store.hpp"
#else
#define ANNALS_BENCH_SNAPSHOTS 0
#endif
#include "raw_sqlite.hpp"

namespace annals::bench {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kEventsPerRun = 10;
constexpr std::size_t kThreads = 8;
constexpr std::size_t kPageSize = 20;
constexpr std::size_t kReadPage = 1000;

struct Sizes {
  std::size_t w1_runs, w2_runs, w3_runs, w4_events, w56_runs, w7_runs, w7_depth, w8_runs;
};

Sizes sizes_for(Scale scale) {
  if (scale == Scale::full) {
    return {10'000, 10'000, 10'000, 100'000, 100'000, 1'000'000, 900'000, 10'000};
  }
  return {300, 1'000, 1'000, 10'000, 5'000, 50'000, 45'000, 300};
}

// Keeps the optimizer from dropping what a loop computed.
volatile std::uint64_t g_sink = 0;


// A baseline row, materialized as an application would.
struct RawRow {
  std::int64_t position = 0, version = 0, recorded_at = 0;
  std::string stream_id, event_id, type, payload;
};

void read_raw_row(const raw::Statement& s, RawRow& row) {
  row.position = s.integer(0);
  row.stream_id.assign(s.text(1));
  row.version = s.integer(2);
  row.event_id.assign(s.text(3));
  row.type.assign(s.text(4));
  row.payload.assign(s.blob(5));
  row.recorded_at = s.integer(6);
}

constexpr const char* kRawColumns =
    "position, stream_id, version, event_id, type, payload, recorded_at";

// The template databases, built once per run of the program (each in a child process).
class Datasets {
 public:
  Datasets(fs::path dir, std::string pg, std::string pg_prefix)
      : dir_(std::move(dir)), pg_(std::move(pg)), pg_prefix_(std::move(pg_prefix)) {}

  // with_raw: also the baseline's events table (W7's baseline reads annals' own file).
  void ensure(const std::string& key, std::size_t runs, std::size_t events, bool projection,
              bool with_raw = true) {
    if (!built_.insert(key).second) return;
    const fs::path annals = annals_file(key), raw = raw_file(key);
    if (with_raw) {
      (void)run_in_child([&] {
        build_raw_dataset(raw, runs, events);
        return Sample{};
      });
    }
    (void)run_in_child([&] {
      build_annals_dataset(annals, runs, events, projection);
      return Sample{};
    });
  }

  [[nodiscard]] fs::path annals_file(const std::string& key) const {
    return dir_ / (key + ".annals.db");
  }
  [[nodiscard]] fs::path raw_file(const std::string& key) const { return dir_ / (key + ".raw.db"); }

  // The same annals dataset in a schema of its own on the PostgreSQL server. The read
  // workloads only read it, so every repetition reads the one schema (no copy).
  void ensure_pg(const std::string& key, std::size_t runs, std::size_t events, bool projection) {
    if (!built_.insert("pg:" + key).second) return;
    (void)run_in_child([&] {
      pg::create_schema(pg_, pg_prefix_ + key);
      build_annals_dataset_at(pg_uri(key), runs, events, projection);
      return Sample{};
    });
  }
  // synchronous=normal, as the SQLite templates are written (the read workloads do not write).
  [[nodiscard]] std::string pg_uri(const std::string& key) const {
    return pg::store_uri(pg_, pg_prefix_ + key, false);
  }

 private:
  fs::path dir_;
  std::string pg_, pg_prefix_;
  std::set<std::string> built_;
};

// W1, W2, W8: runs of ten events saved through the aggregate repository of a RepositoryFactory
// (inline WorkflowProjection), a save every `events_per_save` events, by `threads` threads.
// W8 also runs with group_commit off, and reports its average group size on stderr and as
// the sample's secondary figure.
Sample write_annals_at(const std::string& uri, std::size_t runs, std::size_t events_per_save,
                       std::size_t threads, bool group_commit) {
  RepositoryFactory factory(uri);
  AggregateRepository<WorkflowRun> repository = factory.create_workflow_run_aggregate_repository();
  const auto work = [&](std::size_t first, std::size_t step) {
    for (std::size_t run = first; run < runs; run += step) {
      WorkflowRun aggregate = create_run(run);
      for (std::size_t v = 1; v <= kEventsPerRun; ++v) {
        if (v > 1) raise_event(aggregate, run, kEventsPerRun, v);
        if (v % events_per_save == 0 || v == kEventsPerRun) repository.save(aggregate);
      }
    }
  };
  double start = 0, stop = 0;
  if (threads == 1) {
    start = now_seconds();
    work(0, 1);
    stop = now_seconds();
  } else {
    std::latch go(1);
    std::vector<std::exception_ptr> errors(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (std::size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        go.wait();
        try {
          work(t, threads);
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
    }
    start = now_seconds();
    go.count_down();
    for (std::thread& thread : pool) thread.join();
    stop = now_seconds();
    for (const std::exception_ptr& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
  double average_group = 0;
  if (auto sql = std::dynamic_pointer_cast<SqlEventStore>(factory.event_store())) {
    const GroupCommitStats stats = sql->group_commit_stats();
    average_group =
        stats.groups == 0 ? 0 : static_cast<double>(stats.requests) / static_cast<double>(stats.groups);
    if (threads > 1) {
      std::fprintf(stderr, "    [annals, group_commit %s: %llu appends in %llu transactions, "
                   "average group %.2f, largest %llu]\n",
                   group_commit ? "on" : "off", static_cast<unsigned long long>(stats.requests),
                   static_cast<unsigned long long>(stats.groups), average_group,
                   static_cast<unsigned long long>(stats.max_group));
    }
  }
  return {static_cast<double>(runs * kEventsPerRun) / (stop - start), average_group};
}

Sample write_annals(const fs::path& file, bool full, std::size_t runs, std::size_t events_per_save,
                    std::size_t threads, bool group_commit = true) {
  remove_database(file);
  const Sample sample =
      write_annals_at(store_uri(file, full) + (group_commit ? "" : "&group_commit=off"), runs,
                      events_per_save, threads, group_commit);
  remove_database(file);
  return sample;
}

// W1-PG, W2-PG: write_annals in a fresh schema of the PostgreSQL server, dropped afterwards.
Sample write_annals_pg(const Options& options, const std::string& workload, std::size_t runs,
                       std::size_t events_per_save) {
  const std::string schema =
      options.pg_schema_prefix + workload + "_" + std::to_string(static_cast<long>(::getpid()));
  pg::create_schema(options.pg, schema);
  const Sample sample =
      write_annals_at(pg::store_uri(options.pg, schema, options.synchronous_full), runs,
                      events_per_save, 1, true);
  pg::drop_schema(options.pg, schema);
  return sample;
}

// W1, W2, W8 baseline: the same rows, `rows_per_transaction` per transaction.
Sample write_raw(const fs::path& file, bool full, std::size_t runs,
                 std::size_t rows_per_transaction) {
  remove_database(file);
  double elapsed = 0;
  {
    raw::Database db(file, full);
    raw::create_events_table(db);
    raw::Statement insert(db.handle(), raw::kInsertEvent);
    raw::Statement begin(db.handle(), "BEGIN IMMEDIATE");
    raw::Statement commit(db.handle(), "COMMIT");
    std::uint64_t n = 0;
    const double start = now_seconds();
    for (std::size_t run = 0; run < runs; ++run) {
      const std::string stream = stream_id(run);
      for (std::size_t v = 1; v <= kEventsPerRun; ++v) {
        if ((v - 1) % rows_per_transaction == 0) begin.run();
        const std::string_view type = run_event_type(kEventsPerRun, v);
        const std::string event_id = raw_event_id(++n);
        insert.bind_text(1, stream)
            .bind(2, static_cast<std::int64_t>(v))
            .bind_text(3, event_id)
            .bind_text(4, type)
            .bind_blob(5, raw_payload(type))
            .bind(6, to_micros(now()));
        insert.run();
        if (v % rows_per_transaction == 0 || v == kEventsPerRun) commit.run();
      }
    }
    elapsed = now_seconds() - start;
  }
  remove_database(file);
  return {static_cast<double>(runs * kEventsPerRun) / elapsed};
}

std::vector<std::size_t> shuffled(std::size_t n) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 random(42);
  std::shuffle(order.begin(), order.end(), random);
  return order;
}

// W3, W4: load the given runs by id through AggregateRepository<WorkflowRun>; returns seconds.
double load_annals(const std::string& uri, const std::vector<std::size_t>& runs,
                   double min_seconds) {
  std::shared_ptr<EventStore> store = open_event_store(uri);
  AggregateRepository<WorkflowRun> repository(store);
  std::vector<std::string> ids;
  ids.reserve(runs.size());
  for (std::size_t run : runs) ids.push_back(run_id(run));
  return seconds_per_call(
      [&] {
        for (const std::string& id : ids) g_sink = g_sink + repository.load(id).version();
      },
      min_seconds);
}

// W4 with a snapshot: a repository taking a snapshot every 1,000 events loads run 0 once (which
// takes its snapshot), then the time of a load of run 0 from the snapshot and of a plain load of
// a 10-event run appended for the purpose, in microseconds.
[[maybe_unused]] std::pair<double, double> snapshot_loads(const fs::path& file, bool full) {
#if ANNALS_BENCH_SNAPSHOTS
  std::shared_ptr<SqlEventStore> store = open_sql_event_store(store_uri(file, full));
  std::vector<NewEvent> ten;
  for (std::size_t v = 1; v <= kEventsPerRun; ++v) ten.push_back(run_event(1, kEventsPerRun, v));
  (void)store->append(stream_id(1), ExpectedVersion::no_stream(), std::move(ten));
  AggregateRepository<WorkflowRun> snapshotting(store, SnapshotPolicy{.every = 1000, .log = {}});
  const AggregateRepository<WorkflowRun> plain(store);
  g_sink = g_sink + snapshotting.load(run_id(0)).version();
  if (!snapshotting.snapshot_store() || !snapshotting.snapshot_store()->load(stream_id(0))) {
    throw std::runtime_error("W4: loading the long run took no snapshot");
  }
  const double from_snapshot =
      seconds_per_call([&] { g_sink = g_sink + snapshotting.load(run_id(0)).version(); }, 0.2);
  const double ten_events =
      seconds_per_call([&] { g_sink = g_sink + plain.load(run_id(1)).version(); }, 0.2);
  return {from_snapshot * 1e6, ten_events * 1e6};
#else
  (void)file;
  (void)full;
  return {0, 0};
#endif
}

// W3, W4 baseline: select each stream's rows in version order.
double load_raw(const fs::path& file, bool full, const std::vector<std::size_t>& runs,
                double min_seconds) {
  raw::Database db(file, full);
  raw::Statement select(db.handle(), std::string("SELECT ") + kRawColumns +
                                         " FROM events WHERE stream_id = ?1 ORDER BY version");
  std::vector<std::string> streams;
  streams.reserve(runs.size());
  for (std::size_t run : runs) streams.push_back(stream_id(run));
  std::vector<RawRow> rows;
  return seconds_per_call(
      [&] {
        for (const std::string& stream : streams) {
          rows.clear();
          select.bind_text(1, stream);
          while (select.step()) read_raw_row(select, rows.emplace_back());
          select.reset();
          g_sink = g_sink + rows.size();
        }
      },
      min_seconds);
}

// W7: the runs table's query with OFFSET, materializing the rows.
double offset_page(raw::Statement& select, std::size_t offset, std::vector<std::string>& cells) {
  return seconds_per_call(
      [&] {
        select.bind_text(1, kTenant).bind_text(2, kApp).bind_text(3, kTrigger);
        select.bind(4, static_cast<std::int64_t>(kPageSize));
        select.bind(5, static_cast<std::int64_t>(offset));
        std::size_t rows = 0;
        while (select.step()) {
          for (int c = 0; c < 16; ++c) cells[static_cast<std::size_t>(c)].assign(select.text(c));
          ++rows;
        }
        select.reset();
        if (rows != kPageSize) throw std::runtime_error("W7 baseline: short page");
      },
      0.3);
}

// W7, W7-PG: the first page and the page `depth` rows deep through the runs repository (keyset);
// value = the deep page's time, secondary = the first page's, in microseconds.
Sample paginate_annals(const std::string& uri, const Sizes& s) {
  RepositoryFactory factory(uri);
  const WorkflowRunRepository runs = factory.create_workflow_run_repository();
  // Newest first: the row at depth d (0-based) is run n-1-d, so the page that starts at
  // depth `depth` comes after run n-depth.
  const std::string last_id = run_id(s.w7_runs - s.w7_depth);
  const auto deep = runs.get_paginated_workflow_runs(kTenant, kApp, kTrigger, kPageSize, last_id);
  if (deep.data.size() != kPageSize ||
      deep.data.front().id != run_id(s.w7_runs - s.w7_depth - 1)) {
    throw std::runtime_error("W7: the deep page is not where it should be");
  }
  const double first = seconds_per_call(
      [&] {
        g_sink = g_sink +
                 runs.get_paginated_workflow_runs(kTenant, kApp, kTrigger, kPageSize).data.size();
      },
      0.3);
  const double deep_time = seconds_per_call(
      [&] {
        g_sink = g_sink +
                 runs.get_paginated_workflow_runs(kTenant, kApp, kTrigger, kPageSize, last_id)
                     .data.size();
      },
      0.3);
  return Sample{deep_time * 1e6, first * 1e6};
}

// W7's baseline: the same query with OFFSET on a copy of annals' SQLite file.
Sample paginate_offset(const fs::path& dataset, const fs::path& copy, bool full, const Sizes& s) {
  copy_database(dataset, copy);
  raw::Database db(copy, full);
  raw::Statement select(db.handle(),
                        "SELECT " + workflow_sql::run_columns() + " FROM " +
                            std::string(WorkflowProjection::kRunsTable) +
                            " WHERE tenant_id = ?1 AND app_id = ?2 AND triggered_from = "
                            "?3 ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5");
  std::vector<std::string> cells(16);
  const double first = offset_page(select, 0, cells);
  const double deep = offset_page(select, s.w7_depth, cells);
  return Sample{deep * 1e6, first * 1e6};
}

// W5, W5-PG: read_all over the whole log in pages of 1,000, every payload decoded.
Sample read_all_annals(const std::string& uri, std::uint64_t expected) {
  std::shared_ptr<EventStore> store = open_event_store(uri);
  const EventTypeRegistry registry;
  std::uint64_t events = 0;
  const double start = now_seconds();
  for (std::uint64_t position = 1;;) {
    const std::vector<RecordedEvent> page = store->read_all(position, kReadPage);
    if (page.empty()) break;
    for (const RecordedEvent& e : page) {
      g_sink = g_sink + registry.decode_variant<WorkflowRunEvent>(e).index();
    }
    events += page.size();
    position = page.back().position + 1;
  }
  const double elapsed = now_seconds() - start;
  if (events != expected) throw std::runtime_error("W5: read a wrong number of events");
  return Sample{static_cast<double>(events) / elapsed};
}

}  // namespace

std::vector<Workload> make_workloads(const Options& options, const fs::path& dir) {
  const Sizes s = sizes_for(options.scale);
  const bool full = options.synchronous_full;
  auto datasets = std::make_shared<Datasets>(dir, options.pg, options.pg_schema_prefix);
  const fs::path a_rep = dir / "rep.annals.db", r_rep = dir / "rep.raw.db";
  const auto count = [](std::size_t n) { return std::to_string(n); };
  std::vector<Workload> w;

  w.push_back({"W1",
               count(s.w1_runs) + " workflow runs x 10 events, one event per save() (factory "
                                  "repository, inline projection)",
               "events/s", ">= 0.80", "baseline: raw insert, one transaction per row", false, [] {},
               [=] { return write_annals(a_rep, full, s.w1_runs, 1, 1); },
               [=] { return write_raw(r_rep, full, s.w1_runs, 1); }});

  w.push_back({"W2",
               count(s.w2_runs) + " workflow runs x 10 events, 10 events per save() (inline "
                                  "projection)",
               "events/s", ">= 0.70", "baseline: raw insert, 10 rows per transaction", false, [] {},
               [=] { return write_annals(a_rep, full, s.w2_runs, kEventsPerRun, 1); },
               [=] { return write_raw(r_rep, full, s.w2_runs, kEventsPerRun); }});

  const std::string d3 = "d3";
  w.push_back({"W3", "load " + count(s.w3_runs) + " aggregates of 10 events by id (random order)",
               "aggregates/s", ">= 0.50", "baseline: raw select of each stream's rows", false,
               [=] { datasets->ensure(d3, s.w3_runs, kEventsPerRun, false); },
               [=] {
                 copy_database(datasets->annals_file(d3), a_rep);
                 const double t = load_annals(store_uri(a_rep, full), shuffled(s.w3_runs), 0);
                 return Sample{static_cast<double>(s.w3_runs) / t};
               },
               [=] {
                 copy_database(datasets->raw_file(d3), r_rep);
                 const double t = load_raw(r_rep, full, shuffled(s.w3_runs), 0);
                 return Sample{static_cast<double>(s.w3_runs) / t};
               }});

  const std::string d4 = "d4";
  w.push_back(
      {"W4",
       "load one aggregate with " + count(s.w4_events) + " events" +
           (ANNALS_BENCH_SNAPSHOTS ? "; figures without a snapshot" : ", without a snapshot"),
       "events/s", ">= 0.50",
       std::string(ANNALS_BENCH_SNAPSHOTS
                       ? "snapshot: AggregateRepository with SnapshotPolicy{.every = 1000}, "
                         "against a plain load of a 10-event run in the same file"
                       : "snapshot: not available (no snapshot API in this build)") +
           "; baseline: raw select of the stream",
       false, [=] { datasets->ensure(d4, 1, s.w4_events, false); },
       [=] {
         copy_database(datasets->annals_file(d4), a_rep);
         const double t = load_annals(store_uri(a_rep, full), {0}, 0.2);
         Sample sample{static_cast<double>(s.w4_events) / t};
         if (ANNALS_BENCH_SNAPSHOTS) {
           std::tie(sample.secondary, sample.tertiary) = snapshot_loads(a_rep, full);
         }
         return sample;
       },
       [=] {
         copy_database(datasets->raw_file(d4), r_rep);
         const double t = load_raw(r_rep, full, {0}, 0.2);
         return Sample{static_cast<double>(s.w4_events) / t};
       },
       ANNALS_BENCH_SNAPSHOTS != 0});

  const std::string d56 = "d56";
  const std::size_t w56_events = s.w56_runs * kEventsPerRun;
  w.push_back({"W5", "read_all over " + count(w56_events) + " events in pages of 1,000, decoded",
               "events/s", ">= 0.30", "baseline: raw ordered scan of the events table", false,
               [=] { datasets->ensure(d56, s.w56_runs, kEventsPerRun, true); },
               [=] {
                 copy_database(datasets->annals_file(d56), a_rep);
                 return read_all_annals(store_uri(a_rep, full), w56_events);
               },
               [=] {
                 copy_database(datasets->raw_file(d56), r_rep);
                 raw::Database db(r_rep, full);
                 raw::Statement scan(db.handle(), std::string("SELECT ") + kRawColumns +
                                                      " FROM events ORDER BY position");
                 RawRow row;
                 std::uint64_t events = 0;
                 const double start = now_seconds();
                 while (scan.step()) {
                   read_raw_row(scan, row);
                   ++events;
                 }
                 const double elapsed = now_seconds() - start;
                 return Sample{static_cast<double>(events) / elapsed};
               }});

  w.push_back(
      {"W6", "rebuild the workflow read tables from " + count(w56_events) + " events", "events/s",
       ">= 0.50, RSS <= 100 MB",
       "annals: rebuild() with default options (batches of 1,000, shadow tables compared with "
       "the live ones, then swapped); baseline: raw scan + insert/update of the same rows in one "
       "transaction",
       false, [=] { datasets->ensure(d56, s.w56_runs, kEventsPerRun, true); },
       [=] {
         copy_database(datasets->annals_file(d56), a_rep);
         std::shared_ptr<SqlEventStore> store = open_sql_event_store(store_uri(a_rep, full));
         WorkflowProjection projection;
         const double start = now_seconds();
         const RebuildReport report = rebuild(*store, projection);
         const double elapsed = now_seconds() - start;
         if (!report.swapped || report.events_processed != w56_events) {
           throw std::runtime_error("W6: the rebuild did not replay and swap every event");
         }
         return Sample{static_cast<double>(report.events_processed) / elapsed};
       },
       [=] {
         copy_database(datasets->raw_file(d56), r_rep);
         raw::Database db(r_rep, full);
         const double start = now_seconds();
         db.exec("BEGIN IMMEDIATE");
         db.exec(
             "CREATE TABLE runs (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, app_id TEXT NOT "
             "NULL, workflow_id TEXT NOT NULL, triggered_from TEXT NOT NULL, status TEXT NOT "
             "NULL, inputs TEXT, outputs TEXT, created_by TEXT, created_at INTEGER NOT NULL, "
             "finished_at INTEGER, version INTEGER NOT NULL);"
             "CREATE INDEX runs_page ON runs (tenant_id, app_id, triggered_from, created_at DESC, "
             "id DESC);"
             "CREATE INDEX runs_expiry ON runs (tenant_id, created_at, id);"
             "CREATE TABLE nodes (run_id TEXT NOT NULL, id TEXT NOT NULL, tenant_id TEXT NOT "
             "NULL, \"index\" INTEGER NOT NULL, node_id TEXT, status TEXT NOT NULL, inputs TEXT, "
             "outputs TEXT, created_at INTEGER NOT NULL, finished_at INTEGER, PRIMARY KEY "
             "(run_id, id));"
             "CREATE INDEX nodes_run ON nodes (tenant_id, run_id, \"index\", id);"
             "CREATE INDEX nodes_id ON nodes (tenant_id, id, created_at, run_id);");
         raw::Statement scan(db.handle(),
                             "SELECT stream_id, version, type, payload, recorded_at FROM events "
                             "ORDER BY position");
         raw::Statement insert_run(
             db.handle(),
             "INSERT INTO runs (id, tenant_id, app_id, workflow_id, triggered_from, status, "
             "inputs, created_by, created_at, version) VALUES (?1, ?2, ?3, 'workflow-1', ?4, "
             "'running', ?5, 'bench', ?6, ?7)");
         raw::Statement finish_run(db.handle(),
                                   "UPDATE runs SET status = 'succeeded', outputs = ?2, "
                                   "finished_at = ?3, version = ?4 WHERE id = ?1");
         raw::Statement insert_node(
             db.handle(),
             "INSERT INTO nodes (run_id, id, tenant_id, \"index\", node_id, status, inputs, "
             "created_at) VALUES (?1, ?2, ?3, ?4, 'llm', 'running', ?5, ?6)");
         raw::Statement finish_node(db.handle(),
                                    "UPDATE nodes SET status = 'succeeded', outputs = ?3, "
                                    "finished_at = ?4 WHERE run_id = ?1 AND id = ?2");
         std::uint64_t events = 0;
         std::string run, node;
         while (scan.step()) {
           const std::string_view stream = scan.text(0);
           run.assign(stream.substr(WorkflowRun::kStreamPrefix.size()));
           const std::int64_t version = scan.integer(1);
           const std::string_view type = scan.text(2);
           const std::string_view payload = scan.blob(3);
           const std::int64_t at = scan.integer(4);
           if (type == RunCreated::kType) {
             insert_run.bind_text(1, run).bind_text(2, kTenant).bind_text(3, kApp);
             insert_run.bind_text(4, kTrigger).bind_text(5, payload).bind(6, at).bind(7, version);
             insert_run.run();
           } else if (type == NodeStarted::kType) {
             node = "ne-" + std::to_string(version / 2);
             insert_node.bind_text(1, run).bind_text(2, node).bind_text(3, kTenant);
             insert_node.bind(4, version / 2).bind_text(5, payload).bind(6, at);
             insert_node.run();
           } else if (type == NodeCompleted::kType) {
             node = "ne-" + std::to_string(version / 2);
             finish_node.bind_text(1, run).bind_text(2, node).bind_text(3, payload).bind(4, at);
             finish_node.run();
           } else {
             finish_run.bind_text(1, run).bind_text(2, payload).bind(3, at).bind(4, version);
             finish_run.run();
           }
           ++events;
         }
         db.exec("COMMIT");
         const double elapsed = now_seconds() - start;
         return Sample{static_cast<double>(events) / elapsed};
       }});

  const std::string d7 = "d7";
  w.push_back(
      {"W7",
       "get_paginated_workflow_runs, 20 rows, page 1 vs a page " + count(s.w7_depth) +
           " rows deep in " + count(s.w7_runs) + " runs",
       "us/page", "deep/first <= 1.5",
       "annals column: keyset deep page; baseline column: the same query with OFFSET, deep page",
       true, [=] { datasets->ensure(d7, s.w7_runs, 1, true, false); },
       [=] {
         copy_database(datasets->annals_file(d7), a_rep);
         return paginate_annals(store_uri(a_rep, full), s);
       },
       [=] { return paginate_offset(datasets->annals_file(d7), r_rep, full, s); }});

  w.push_back({"W8",
               count(s.w8_runs) + " workflow runs x 10 events saved by 8 threads, one event per "
                                  "save() (inline projection), group commit on",
               "events/s", ">= 2.0",
               "group commit on (the default): saves arriving together share a transaction; the "
               "average group (appends per transaction) is reported beside it; W8-NOGC is the "
               "same with it off; baseline: W1's raw baseline (one thread, one transaction per "
               "row)",
               false, [] {}, [=] { return write_annals(a_rep, full, s.w8_runs, 1, kThreads); },
               [=] { return write_raw(r_rep, full, s.w8_runs, 1); }, false, true});
  w.push_back({"W8-NOGC",
               count(s.w8_runs) + " workflow runs x 10 events saved by 8 threads, one event per "
                                  "save() (inline projection), group_commit=off",
               "events/s", "n/a",
               "W8 with group_commit=off: every save is its own transaction; baseline: W1's raw "
               "baseline (one thread, one transaction per row)",
               false, [] {},
               [=] { return write_annals(a_rep, full, s.w8_runs, 1, kThreads, false); },
               [=] { return write_raw(r_rep, full, s.w8_runs, 1); }, false, true});

  if (!options.wrk.empty()) {
    serve_load::Config serve;
    serve.wrk = options.wrk;
    serve.runs = s.w7_runs;
    serve.depth = s.w7_depth;
    serve.page_size = kPageSize;
    serve.seconds = options.scale == Scale::full ? 10 : 2;
    serve.baseline_seconds = options.scale == Scale::full ? 1.0 : 0.3;
    Workload w9{"W9",
                "GET /v1/apps/{app}/workflow-runs (20 runs) from annals::serve::Server, page 1 vs "
                "the page after row " + count(s.w7_depth) + " of " + count(s.w7_runs) +
                    " runs (W7's dataset), wrk at 1 and 8 connections, " +
                    std::to_string(serve.seconds) + " s each",
                "req/s",
                "n/a",
                "annals column: HTTP requests/s, first page, 1 connection (wrk -t1 -c1; 8 "
                "connections: -t2 -c8; server: ServerOptions defaults, 4 threads, loopback); "
                "baseline column: the same keyset page query (and the deep page's cursor lookup) "
                "in-process with the sqlite3 C API, queries/s, one thread",
                false,
                [=] { datasets->ensure(d7, s.w7_runs, 1, true, false); },
                [=] {
                  copy_database(datasets->annals_file(d7), a_rep);
                  return serve_load::measure_server(store_uri(a_rep, full), serve);
                },
                [=] {
                  copy_database(datasets->annals_file(d7), r_rep);
                  return serve_load::measure_raw(r_rep, full, serve);
                }};
    w9.repetitions = options.scale == Scale::full ? 3 : 1;
    w9.serve = true;
    w.push_back(std::move(w9));
  }
  if (options.pg.empty()) return w;

  // The PostgreSQL rows: annals' side on the server, the baseline the SQLite row's own (run
  // again, interleaved as always), so the ratio compares with the same raw SQLite figure.
  const auto baseline_of = [&w](const std::string& name) {
    for (const Workload& x : w) {
      if (x.name == name) return x.baseline;
    }
    throw std::logic_error("bench: no workload " + name);
  };
  const std::string pg_note = "annals on PostgreSQL; baseline: the raw SQLite baseline of ";
  std::vector<Workload> pg_rows;
  pg_rows.push_back({"W1-PG", "W1 with annals on PostgreSQL (a fresh schema per repetition)",
                     "events/s", "n/a", pg_note + "W1", false, [] {},
                     [=] { return write_annals_pg(options, "w1", s.w1_runs, 1); },
                     baseline_of("W1"), false, false, "postgresql"});
  pg_rows.push_back({"W2-PG", "W2 with annals on PostgreSQL (a fresh schema per repetition)",
                     "events/s", "n/a", pg_note + "W2", false, [] {},
                     [=] { return write_annals_pg(options, "w2", s.w2_runs, kEventsPerRun); },
                     baseline_of("W2"), false, false, "postgresql"});
  pg_rows.push_back({"W3-PG", "W3 with annals on PostgreSQL (one schema, read by every repetition)",
                     "aggregates/s", "n/a", pg_note + "W3", false,
                     [=] {
                       datasets->ensure(d3, s.w3_runs, kEventsPerRun, false);
                       datasets->ensure_pg(d3, s.w3_runs, kEventsPerRun, false);
                     },
                     [=] {
                       const double t = load_annals(datasets->pg_uri(d3), shuffled(s.w3_runs), 0);
                       return Sample{static_cast<double>(s.w3_runs) / t};
                     },
                     baseline_of("W3"), false, false, "postgresql"});
  pg_rows.push_back({"W5-PG", "W5 with annals on PostgreSQL (one schema, read by every repetition)",
                     "events/s", "n/a", pg_note + "W5", false,
                     [=] {
                       datasets->ensure(d56, s.w56_runs, kEventsPerRun, true);
                       datasets->ensure_pg("d5", s.w56_runs, kEventsPerRun, false);
                     },
                     [=] { return read_all_annals(datasets->pg_uri("d5"), w56_events); },
                     baseline_of("W5"), false, false, "postgresql"});
  pg_rows.push_back({"W7-PG", "W7 with annals on PostgreSQL (one schema, read by every repetition)",
                     "us/page", "deep/first <= 1.5",
                     "annals column: keyset deep page on PostgreSQL; baseline column: W7's OFFSET "
                     "query on SQLite, deep page",
                     true,
                     [=] {
                       datasets->ensure(d7, s.w7_runs, 1, true, false);
                       datasets->ensure_pg(d7, s.w7_runs, 1, true);
                     },
                     [=] { return paginate_annals(datasets->pg_uri(d7), s); },
                     baseline_of("W7"), false, false, "postgresql"});
  for (Workload& row : pg_rows) {
    const std::string after = row.name.substr(0, row.name.find('-'));
    const auto at = std::find_if(w.begin(), w.end(), [&](const Workload& x) { return x.name == after; });
    w.insert(at + 1, std::move(row));
  }
  return w;
}

}  // namespace annals::bench
