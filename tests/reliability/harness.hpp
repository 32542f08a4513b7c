#pragma once

// Shared pieces of the reliability tests: child processes of this same binary (re-executed with
// posix_spawn, so they inherit no threads), a line protocol over a pipe, the workflow workload
// the children run, and the checks a store must pass after a crash or a race.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/child_process.hpp"

namespace annals::reliability {

// ---- child processes (tests/support/child_process.hpp) ---------------------------------------

using annals::test::Child;
using annals::test::describe_status;
using annals::test::split_tabs;
using annals::test::write_out;

[[nodiscard]] std::string to_hex(const std::string& bytes);

// ---- the workflow workload ---------------------------------------------------------------------

// One event of an append as the appender knows it.
struct SentEvent {
  std::string stream_id;
  std::uint64_t version = 0;
  std::string event_id;
  std::string type;
  std::string payload;
};

// Decides workflow commands for runs it created, like an engine would: create runs, start,
// complete and fail nodes, finish, stop and delete runs, several runs in one batch.
class WorkflowWorkload {
 public:
  WorkflowWorkload(std::uint64_t seed, std::string run_prefix);

  // Raises the next commands (with `correlation_id` in every event's metadata) and returns the
  // runs that now hold pending events: one run or, for a batch, two or three.
  std::vector<WorkflowRun*> next(const std::string& correlation_id);
  // The runs were saved: their pending events are committed.
  void saved(const std::vector<WorkflowRun*>& runs);

 private:
  std::mt19937_64 rng_;
  std::string prefix_;
  std::uint64_t next_run_ = 0, tick_ = 0;
  std::map<std::string, WorkflowRun> runs_;  // open runs this workload created

  WorkflowRun& create_run(const EventMetadata& meta);
  void advance(WorkflowRun& run, const EventMetadata& meta, bool may_finish);
  Timestamp now() {
    return from_micros(1'700'000'000'000'000LL + static_cast<std::int64_t>(++tick_) * 1000);
  }
};

// Appends the runs' pending events as the repositories do (one stream: a single append; several:
// one all-or-nothing batch), with expected versions from the versions the runs were loaded at.
// Returns each event with its position (first_position + index), then marks the runs saved.
std::vector<std::pair<std::uint64_t, SentEvent>> append_runs(EventStore& store,
                                                             const std::vector<WorkflowRun*>& runs);

// The events the runs' pending events will be, in append order (before append_runs).
std::vector<SentEvent> pending_of(const std::vector<WorkflowRun*>& runs, PayloadFormat format);

// ---- checks ---------------------------------------------------------------------------------

// Compares the workflow read tables with a fresh rebuild from the log (the rebuild machinery,
// not swapping when they differ); returns "" when identical, else what differed.
[[nodiscard]] std::string compare_with_rebuild(SqlEventStore& store);

// The workflow projection's checkpoint position, if it has one.
[[nodiscard]] std::optional<std::uint64_t> workflow_checkpoint(SqlEventStore& store);

// Names of tables in the file (sqlite_master), sorted.
[[nodiscard]] std::vector<std::string> table_names(SqlEventStore& store);

}  // namespace annals::reliability

namespace annals::reliability {

// What one "process" of the concurrency test did: the event ids of its successful appends,
// how many appends were refused with ConcurrencyError, every other exception (each one fails
// the test), and how many events its async runner applied.
struct WriterOutcome {
  std::vector<std::string> succeeded;
  std::size_t conflicts = 0;
  std::vector<std::string> errors;
  std::uint64_t runner_applied = 0;
};

// Runs `threads` threads on `store`, each making `ops` saves of WorkflowRun aggregates loaded
// from the store (expected version = the version read): start nodes on the shared runs
// "shared-0".."shared-1", advance a run of its own, or save a shared run and its own in one
// batch. With `runner`, a ProjectionRunner keeps the workflow tables on its own io_context
// thread meanwhile and is waited for (caught up) at the end.
WriterOutcome run_writers(const std::shared_ptr<SqlEventStore>& store, int process, int threads,
                          int ops, bool runner);

// The shared runs run_writers expects, created through `store`.
void create_shared_runs(EventStore& store);

}  // namespace annals::reliability
