// What the child processes of the reliability tests run (`annals_reliability_tests --child ...`),
// and the writers of the concurrency test (run by child processes and, in-process, by threads).
//
// Child modes; each writes its reports to stdout, one tab-separated line each:
//   append <uri> <seed> <tag> inline|async
//                               opens a RepositoryFactory (inline WorkflowProjection on) or a
//                               store with a ProjectionRunner and appends workflow runs until
//                               killed:
//                               "I cid n" before an append of n events (correlation id cid),
//                               "E cid position stream version event_id type payload_hex" for
//                               each event and "K cid n" after the append returned
//   rebuild <uri> <batch>       rebuilds the workflow tables: "P processed" per batch, "D" at end
//   import <uri> <file>         import_log of the file into the store: "R" once open, "D" at end
//   writer <uri> <process> <threads> <ops> <runner 0|1>
//                               "R" once open, then run_writers: "S event_id" per success,
//                               "C conflicts",
//                               "X message" per unexpected exception, "A applied", then "Z"

#include <sys/prctl.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "annals/projections/engine.hpp"
#include "annals/projections/projection_runner.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "annals/store/export.hpp"
#include "reliability/harness.hpp"

namespace annals::reliability {
namespace {

// Appends workflow runs to `store` until killed, reporting as the header says.
void append_loop(SqlEventStore& store, std::uint64_t seed, const std::string& tag) {
  WorkflowWorkload workload(seed, tag);
  write_out("R\n");
  for (std::uint64_t i = 0; i < 1'000'000; ++i) {
    const std::string cid = tag + "-b" + std::to_string(i);
    const std::vector<WorkflowRun*> runs = workload.next(cid);
    const std::size_t count = pending_of(runs, store.payload_format()).size();
    write_out("I\t" + cid + "\t" + std::to_string(count) + "\n");
    const auto written = append_runs(store, runs);
    workload.saved(runs);
    std::string report;
    for (const auto& [position, e] : written) {
      report += "E\t" + cid + "\t" + std::to_string(position) + "\t" + e.stream_id + "\t" +
                std::to_string(e.version) + "\t" + e.event_id + "\t" + e.type + "\t" +
                to_hex(e.payload) + "\n";
    }
    report += "K\t" + cid + "\t" + std::to_string(written.size()) + "\n";
    write_out(report);
  }
}

int append_child(const std::string& uri, std::uint64_t seed, const std::string& tag,
                 const std::string& projection) {
  if (projection == "inline") {
    // Opened as an application opens it: the factory sets up, catches up and attaches the
    // WorkflowProjection inline. Appends go to the store as AggregateRepository::save/save_all
    // make them, so that the child knows the positions it reports.
    RepositoryFactory factory(uri);
    append_loop(*factory.sql_event_store(), seed, tag);
    return 0;
  }
  // The read tables kept by an async ProjectionRunner in small batches beside the appends.
  const std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  ProjectionRunner runner(io, store, std::make_shared<WorkflowProjection>(),
                          {.batch_size = 7, .poll_interval = std::chrono::milliseconds(5)});
  runner.start();
  std::thread io_thread([&io] { io.run(); });
  try {
    append_loop(*store, seed, tag);
  } catch (...) {
    runner.stop();
    io.stop();
    io_thread.join();
    throw;
  }
  runner.stop();
  io.stop();
  io_thread.join();
  return 0;
}

int rebuild_child(const std::string& uri, std::size_t batch) {
  auto store = open_sql_event_store(uri);
  WorkflowProjection projection;
  write_out("R\n");
  const RebuildReport report = rebuild(
      *store, projection, {.batch_size = batch, .on_progress = [](const RebuildProgress& p) {
                             write_out("P\t" + std::to_string(p.processed) + "\n");
                           }});
  write_out(std::string("D\t") + (report.swapped ? "swapped" : "kept") + "\n");
  return 0;
}

int import_child(const std::string& uri, const std::string& file) {
  auto store = open_sql_event_store(uri);
  std::ifstream in(file, std::ios::binary);
  write_out("R\n");
  (void)import_log(*store, in);
  write_out("D\n");
  return 0;
}

int writer_child(const std::string& uri, int process, int threads, int ops, bool runner) {
  auto store = open_sql_event_store(uri);
  write_out("R\n");
  const WriterOutcome out = run_writers(store, process, threads, ops, runner);
  std::string report;
  for (const auto& id : out.succeeded) report += "S\t" + id + "\n";
  report += "C\t" + std::to_string(out.conflicts) + "\n";
  for (const auto& e : out.errors) report += "X\t" + e + "\n";
  report += "A\t" + std::to_string(out.runner_applied) + "\nZ\n";
  write_out(report);
  return 0;
}

Timestamp wall_now() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

// One writer thread of run_writers.
void writer_thread(const std::shared_ptr<SqlEventStore>& store, int process, int thread, int ops,
                   WriterOutcome& out, std::mutex& out_mutex) {
  AggregateRepository<WorkflowRun> repo(store);
  std::mt19937_64 rng(static_cast<std::uint64_t>(process * 1000 + thread));
  const std::string own = "p" + std::to_string(process) + "-t" + std::to_string(thread);
  std::vector<std::string> succeeded, errors;
  std::size_t conflicts = 0;
  std::uint64_t node = 0;
  const EventMetadata meta{.actor = own};  // tells whose event it is in the log
  const auto start_node = [&](WorkflowRun& run) {
    const std::string id = own + "-n" + std::to_string(node++);
    run.start_node({.node_execution_id = id,
                    .node_id = id,
                    .node_type = "llm",
                    .inputs = "{}",
                    .started_at = wall_now()},
                   meta);
  };
  const auto step_own = [&](WorkflowRun& run) {
    for (const auto& n : run.node_executions()) {
      if (n.status == NodeStatus::running) {
        run.complete_node(
            {.node_execution_id = n.id, .outputs = R"({"ok":true})", .finished_at = wall_now()},
            meta);
        return;
      }
    }
    start_node(run);
  };
  const auto record = [&](const std::vector<WorkflowRun*>& runs) {
    std::vector<std::string> ids;
    for (WorkflowRun* run : runs) {
      for (const auto& p : run->pending_events()) ids.push_back(to_string(p.event_id));
    }
    return ids;
  };
  try {
    WorkflowRun mine = WorkflowRun::create({.run_id = own,
                                            .tenant_id = "t",
                                            .app_id = "app",
                                            .workflow_id = "wf",
                                            .triggered_from = "app-run",
                                            .created_by = "u",
                                            .inputs = "{}",
                                            .created_at = wall_now()},
                                           meta);
    auto ids = record({&mine});
    repo.save(mine);
    succeeded.insert(succeeded.end(), ids.begin(), ids.end());
  } catch (const std::exception& e) {
    errors.push_back(std::string("creating ") + own + ": " + e.what());
  }
  for (int i = 0; i < ops; ++i) {
    const auto roll = rng() % 100;
    const std::string shared = "shared-" + std::to_string(rng() % 2);
    try {
      if (roll < 50) {
        WorkflowRun run = repo.load(shared);
        start_node(run);
        auto ids = record({&run});
        repo.save(run);
        succeeded.insert(succeeded.end(), ids.begin(), ids.end());
      } else if (roll < 75) {
        WorkflowRun run = repo.load(own);
        step_own(run);
        auto ids = record({&run});
        repo.save(run);
        succeeded.insert(succeeded.end(), ids.begin(), ids.end());
      } else {
        WorkflowRun a = repo.load(shared);
        WorkflowRun b = repo.load(own);
        start_node(a);
        step_own(b);
        auto ids = record({&a, &b});
        repo.save_all({&a, &b});
        succeeded.insert(succeeded.end(), ids.begin(), ids.end());
      }
    } catch (const ConcurrencyError&) {
      ++conflicts;
    } catch (const std::exception& e) {
      errors.push_back(own + " op " + std::to_string(i) + ": " + e.what());
    }
  }
  std::lock_guard lock(out_mutex);
  out.succeeded.insert(out.succeeded.end(), succeeded.begin(), succeeded.end());
  out.errors.insert(out.errors.end(), errors.begin(), errors.end());
  out.conflicts += conflicts;
}

}  // namespace

void create_shared_runs(EventStore& store) {
  for (int i = 0; i < 2; ++i) {
    WorkflowRun run = WorkflowRun::create({.run_id = "shared-" + std::to_string(i),
                                           .tenant_id = "t",
                                           .app_id = "app",
                                           .workflow_id = "wf",
                                           .triggered_from = "app-run",
                                           .created_by = "u",
                                           .inputs = "{}",
                                           .created_at = wall_now()});
    store.append(run.stream_id(), ExpectedVersion::no_stream(),
                 run.encode_pending_events(store.payload_format()));
  }
}

WriterOutcome run_writers(const std::shared_ptr<SqlEventStore>& store, int process, int threads,
                          int ops, bool runner) {
  WriterOutcome out;
  std::mutex out_mutex;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::unique_ptr<ProjectionRunner> projection_runner;
  std::thread io_thread;
  if (runner) {
    projection_runner = std::make_unique<ProjectionRunner>(
        io, store, std::make_shared<WorkflowProjection>(),
        ProjectionRunnerOptions{.batch_size = 50, .poll_interval = std::chrono::milliseconds(20)});
    projection_runner->start();
    io_thread = std::thread([&io] { io.run(); });
  }
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] { writer_thread(store, process, t, ops, out, out_mutex); });
  }
  for (auto& w : workers) w.join();
  if (projection_runner) {
    try {
      if (!projection_runner->wait_until_caught_up(std::chrono::seconds(120))) {
        out.errors.push_back("runner of process " + std::to_string(process) +
                             " did not catch up: " + projection_runner->status().last_error);
      }
    } catch (const std::exception& e) {
      out.errors.push_back("runner of process " + std::to_string(process) + ": " + e.what());
    }
    out.runner_applied = projection_runner->status().events_applied;
    projection_runner.reset();
    guard.reset();
    io.stop();
    io_thread.join();
  }
  return out;
}

int run_child(const std::vector<std::string>& args) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    const std::string& mode = args.at(0);
    if (mode == "append") {
      return append_child(args.at(1), std::stoull(args.at(2)), args.at(3), args.at(4));
    }
    if (mode == "rebuild") return rebuild_child(args.at(1), std::stoul(args.at(2)));
    if (mode == "import") return import_child(args.at(1), args.at(2));
    if (mode == "writer") {
      return writer_child(args.at(1), std::stoi(args.at(2)), std::stoi(args.at(3)),
                          std::stoi(args.at(4)), args.at(5) == "1");
    }
    std::cerr << "unknown child mode " << mode << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "child " << (args.empty() ? "" : args[0]) << " failed: " << e.what() << "\n";
    return 3;
  }
}

}  // namespace annals::reliability
