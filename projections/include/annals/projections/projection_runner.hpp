#pragma once

// ProjectionRunner is thread-safe: any member function may be called from any thread at any
// time, while the runner's own work runs in handlers on a caller-owned boost::asio::io_context,
// one at a time (on a strand), however many threads run the io_context.
//
//   boost::asio::io_context io;
//   annals::ProjectionRunner runner(io, store, std::make_shared<RunCounts>(), {.batch_size = 500});
//   runner.start();
//   std::thread worker([&] { io.run(); });
//   ...
//   if (!runner.wait_until_caught_up(std::chrono::seconds(5))) log(runner.status().lag);
//
// What it does. A runner applies the log to one projection asynchronously. start() posts a
// handler that sets the projection up (prepare_projection) and then applies batches of at most
// batch_size events, each in one write transaction that reads the checkpoint, applies the events
// and advances the checkpoint, so the rows and the checkpoint commit together and no event is
// applied twice, even with runners for the same projection in several processes. Each batch is a
// separate handler, so other work on the io_context runs in between. Once caught up, the runner
// waits: an append through the same store object wakes it at once, and every poll_interval it
// reads the head to pick up appends by other store objects or processes (a read, no write lock,
// when there is nothing new). After every committed batch it calls projection->committed(batch)
// from the handler, before status() and wait_until_caught_up() see the new checkpoint (so caches
// that committed() invalidates are fresh by then).
//
// Errors. A transient StoreError (busy, locked, I/O, disk full, a read-only file: the transaction
// rolled back) is retried with exponential backoff from initial_backoff to max_backoff,
// indefinitely; status() shows it in retries and last_error. Anything else fails the runner: a
// StoreError that is not transient (the projection's own SQL is wrong: a constraint or syntax
// error), an exception from the projection's apply(), an IntegrityError, a checkpoint written by
// another version of the projection. The runner stops at the event that failed, which is never
// skipped, and the exception is passed to on_failure and re-thrown by rethrow_if_failed() and
// wait_until_caught_up(). A failed runner stays failed; fix the cause, then start a new runner,
// which resumes from the checkpoint.
//
// Lifetime. REQUIRES: the io_context outlives the runner. The runner shares ownership of the
// store and the projection until it is destroyed. The destructor stops the runner and blocks until
// no handler of this runner is running; handlers still queued on the io_context afterwards do
// nothing and touch neither the store nor the projection. (Destroying the runner from inside one
// of its own callbacks, on_failure or committed(), does not block and is safe too.)

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "annals/projections/projection.hpp"
#include "annals/store/sql_event_store.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace annals {

struct ProjectionRunnerOptions {
  std::size_t batch_size = 500;  // events per write transaction; at least 1
  // How often to look for appends made by other store objects (other processes).
  std::chrono::milliseconds poll_interval{200};
  // Waits between retries after a StoreError: doubling from initial_backoff up to max_backoff.
  std::chrono::milliseconds initial_backoff{10};
  std::chrono::milliseconds max_backoff{2000};
  // Called once, from a handler on the io_context, when the runner fails, with the exception
  // that failed it; before wait_until_caught_up() re-throws it. Must not throw (what it throws
  // is ignored) and must not wait for this runner.
  std::function<void(std::exception_ptr)> on_failure{};
};

enum class ProjectionRunnerState : std::uint8_t {
  idle,     // constructed, not started
  running,  // started: catching up, retrying, or waiting for appends
  stopped,  // stop() was called (or the runner was destroyed)
  failed,   // a non-transient error stopped it; see rethrow_if_failed()
};

// "idle", "running", "stopped" or "failed".
[[nodiscard]] std::string_view to_string(ProjectionRunnerState state) noexcept;

// A snapshot of a runner's progress, as of its last look at the store (at most about
// poll_interval old while it waits; exact at the end of every batch).
struct ProjectionRunnerStatus {
  std::string projection;  // the projection's name
  ProjectionRunnerState state = ProjectionRunnerState::idle;
  std::uint64_t head_position = 0;   // the log's last position, as last seen
  std::uint64_t checkpoint = 0;      // the projection's checkpoint, as last read or written
  std::uint64_t lag = 0;             // head_position - checkpoint (0 if the checkpoint is ahead)
  double events_per_second = 0;      // events this runner applied over the last 10 s
  std::uint64_t events_applied = 0;  // events this runner committed since start()
  std::uint64_t batches = 0;         // non-empty batches this runner committed since start()
  std::uint32_t retries = 0;  // StoreErrors in a row not yet followed by a success; 0 when well
  // The message of the last error, transient (kept after a successful retry) or fatal; empty if
  // none.
  std::string last_error;
};

class ProjectionRunner {
 public:
  // Throws InvalidArgument if store or projection is null, batch_size is 0, poll_interval or
  // initial_backoff is not positive, or max_backoff < initial_backoff. Does no I/O.
  // REQUIRES: io outlives the runner.
  ProjectionRunner(boost::asio::io_context& io, std::shared_ptr<SqlEventStore> store,
                   std::shared_ptr<Projection> projection, ProjectionRunnerOptions options = {});
  // Stops the runner and waits until none of its handlers is running. Never throws.
  ~ProjectionRunner();

  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;
  ProjectionRunner(ProjectionRunner&&) = delete;  // hold it in a unique_ptr to move it
  ProjectionRunner& operator=(ProjectionRunner&&) = delete;

  // Starts the runner: returns at once; the work happens on the io_context. Does nothing if it is
  // already running or has failed. Throws InvalidArgument after stop(): a stopped runner is not
  // restarted, construct a new one.
  void start();

  // Stops the runner: no batch starts after this returns (one that is running finishes or rolls
  // back; stop() does not wait for it, the destructor does). Idempotent; never throws. A failed
  // runner keeps its failed state and error.
  void stop() noexcept;

  // Re-throws the exception that failed the runner, if it failed; otherwise returns.
  void rethrow_if_failed() const;

  // Blocks until the projection's checkpoint reaches the head of the log as it is when called
  // (one read of the store). Returns true then, false if the timeout passed first or the runner
  // is stopped short of it. Re-throws the runner's failure (also one that happened before the
  // call). Throws StoreError if the head cannot be read, InvalidArgument if called from a handler
  // of this runner (it would wait for itself).
  bool wait_until_caught_up(std::chrono::milliseconds timeout);

  // Progress and lag, without I/O. Cheap: a lock and a copy.
  [[nodiscard]] ProjectionRunnerStatus status() const;

 private:
  class Core;
  std::shared_ptr<Core> core_;
};

}  // namespace annals
