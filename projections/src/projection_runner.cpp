#include "annals/projections/projection_runner.hpp"

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/projections/checkpoint.hpp"
#include "annals/projections/engine.hpp"

namespace annals {

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kRateWindow{10};
// Rate samples are merged into buckets this wide, so their number stays small at any rate.
constexpr std::chrono::milliseconds kRateBucket{250};

std::string error_text(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace

std::string_view to_string(ProjectionRunnerState state) noexcept {
  switch (state) {
    case ProjectionRunnerState::idle:
      return "idle";
    case ProjectionRunnerState::running:
      return "running";
    case ProjectionRunnerState::stopped:
      return "stopped";
    case ProjectionRunnerState::failed:
      return "failed";
  }
  return "unknown";
}

// The runner's state, shared with its handlers and commit listener so that they can outlive
// the ProjectionRunner object safely. Members marked "strand" are touched only by handlers on
// strand_; the rest is guarded by mutex_, except the constants.
class ProjectionRunner::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(asio::io_context& io, std::shared_ptr<SqlEventStore> store,
       std::shared_ptr<Projection> projection, ProjectionRunnerOptions options)
      : strand_(asio::make_strand(io)),
        timer_(strand_),
        store_(std::move(store)),
        projection_(std::move(projection)),
        name_(projection_->name()),
        batch_size_(options.batch_size),
        poll_interval_(options.poll_interval),
        initial_backoff_(options.initial_backoff),
        max_backoff_(options.max_backoff),
        on_failure_(std::move(options.on_failure)),
        backoff_(options.initial_backoff) {}

  void start() {
    std::lock_guard lock(mutex_);
    if (state_ == ProjectionRunnerState::stopped) {
      throw InvalidArgument("projection runner " + name_ +
                            ": start() after stop(); a stopped runner is not restarted, "
                            "construct a new one");
    }
    if (state_ != ProjectionRunnerState::idle) return;
    std::weak_ptr<Core> weak = weak_from_this();
    listener_id_ = store_->add_commit_listener([weak](std::uint64_t head) {
      if (auto self = weak.lock()) self->on_commit(head);
    });
    state_ = ProjectionRunnerState::running;
    started_at_ = Clock::now();
    asio::post(strand_, [self = shared_from_this()] { self->begin(); });
  }

  void stop() noexcept {
    std::optional<std::uint64_t> listener;
    {
      std::lock_guard lock(mutex_);
      if (state_ == ProjectionRunnerState::idle || state_ == ProjectionRunnerState::running) {
        state_ = ProjectionRunnerState::stopped;
      }
      listener = std::exchange(listener_id_, std::nullopt);
      cv_.notify_all();
    }
    if (listener) store_->remove_commit_listener(*listener);
    // The timer belongs to the strand; cancelling it there frees the io_context of our wait.
    try {
      asio::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
    } catch (...) {  // out of memory: the wait then expires and finds the runner stopped
    }
  }

  // The destructor's part: stop, wait for a running handler, let go of what the handlers used.
  void shutdown() noexcept {
    stop();
    std::shared_ptr<SqlEventStore> store;
    std::shared_ptr<Projection> projection;
    std::function<void(std::exception_ptr)> on_failure;
    {
      std::unique_lock lock(mutex_);
      // From inside one of our handlers (a callback destroying the runner) waiting would
      // deadlock; that handler checks the state before it touches anything again.
      if (strand_.running_in_this_thread()) return;
      cv_.wait(lock, [&] { return active_ == 0; });
      store = std::move(store_);
      projection = std::move(projection_);
      on_failure = std::move(on_failure_);
    }
  }

  void rethrow_if_failed() const {
    std::exception_ptr error;
    {
      std::lock_guard lock(mutex_);
      error = error_;
    }
    if (error) std::rethrow_exception(error);
  }

  bool wait_until_caught_up(std::chrono::milliseconds timeout) {
    if (strand_.running_in_this_thread()) {
      throw InvalidArgument("projection runner " + name_ +
                            ": wait_until_caught_up() called from the runner's own handler");
    }
    const auto deadline = Clock::now() + timeout;
    std::shared_ptr<SqlEventStore> store;
    {
      std::lock_guard lock(mutex_);
      if (failure_reported_) std::rethrow_exception(error_);
      store = store_;
    }
    const std::uint64_t target = store->head_position();
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, deadline, [&] {
      return failure_reported_ || state_ == ProjectionRunnerState::stopped || checkpoint_ >= target;
    });
    if (failure_reported_) std::rethrow_exception(error_);
    return checkpoint_ >= target;
  }

  ProjectionRunnerStatus status() const {
    std::lock_guard lock(mutex_);
    ProjectionRunnerStatus s;
    s.projection = name_;
    s.state = state_;
    s.head_position = head_;
    s.checkpoint = checkpoint_;
    s.lag = head_ > checkpoint_ ? head_ - checkpoint_ : 0;
    s.events_applied = events_applied_;
    s.batches = batches_;
    s.retries = retries_;
    s.last_error = last_error_;
    if (state_ != ProjectionRunnerState::idle) {
      const auto now = Clock::now();
      std::uint64_t recent = 0;
      for (const auto& [at, n] : samples_) {
        if (now - at <= kRateWindow) recent += n;
      }
      const std::chrono::duration<double> span =
          std::min<Clock::duration>(now - started_at_, kRateWindow);
      if (span.count() > 0) s.events_per_second = static_cast<double>(recent) / span.count();
    }
    return s;
  }

 private:
  enum class Step : std::uint8_t { batch, poll };
  enum class Wait : std::uint8_t { none, posted, polling, backing_off };

  // Marks a handler as running for the destructor; false if the runner is stopped or failed, in
  // which case the handler must touch nothing but the strand members.
  class Active {
   public:
    explicit Active(Core& core) : core_(core) {
      std::lock_guard lock(core_.mutex_);
      entered_ = core_.state_ == ProjectionRunnerState::running;
      if (entered_) ++core_.active_;
    }
    ~Active() {
      if (!entered_) return;
      std::lock_guard lock(core_.mutex_);
      --core_.active_;
      core_.cv_.notify_all();
    }
    Active(const Active&) = delete;
    Active& operator=(const Active&) = delete;
    explicit operator bool() const noexcept { return entered_; }

   private:
    Core& core_;
    bool entered_ = false;
  };

  // Called by the store after appends through it committed: once per group commit, on the
  // thread that led the group (with group_commit=off, the appending thread). Heads from two
  // groups may arrive out of order, hence the max.
  void on_commit(std::uint64_t head) noexcept {
    std::lock_guard lock(mutex_);
    head_ = std::max(head_, head);
    if (state_ != ProjectionRunnerState::running || wake_pending_) return;
    try {
      asio::post(strand_, [self = shared_from_this()] { self->wake(); });
      wake_pending_ = true;
    } catch (...) {  // out of memory: the next poll picks the append up
    }
  }

  // strand
  void begin() noexcept {
    Active active(*this);
    if (!active) return;
    guarded(Step::batch);
  }

  // strand: an append through our store committed.
  void wake() noexcept {
    {
      std::lock_guard lock(mutex_);
      wake_pending_ = false;
    }
    Active active(*this);
    if (!active) return;
    // A queued batch will see the append anyway; a backoff is kept rather than cut short.
    if (wait_ != Wait::polling) return;
    timer_.cancel();
    schedule_now();
  }

  // strand: runs one step of a schedule that is still current.
  void run(std::uint64_t epoch, Step step) noexcept {
    if (epoch != epoch_) return;  // superseded by a later schedule
    Active active(*this);
    if (!active) return;
    wait_ = Wait::none;
    guarded(step);
  }

  // strand, inside Active: does the step and schedules the next one, turning exceptions into
  // retries or a failure.
  void guarded(Step step) noexcept {
    try {
      if (!prepared_) prepare();
      if (step == Step::poll && !something_new()) {
        schedule_after(poll_interval_, Wait::polling, Step::poll);
        return;
      }
      const bool more = run_batch();
      backoff_ = initial_backoff_;
      {
        std::lock_guard lock(mutex_);
        retries_ = 0;
      }
      if (more) {
        schedule_now();
      } else {
        schedule_after(poll_interval_, Wait::polling, Step::poll);
      }
    } catch (const StoreError& e) {
      if (!e.transient()) {  // the projection's own SQL is wrong: retrying cannot help
        fail(std::current_exception());
        return;
      }
      try {
        {
          std::lock_guard lock(mutex_);
          ++retries_;
          last_error_ = e.what();
        }
        schedule_after(backoff_, Wait::backing_off, Step::batch);
        backoff_ = std::min(backoff_ * 2, max_backoff_);
      } catch (...) {
        fail(std::current_exception());
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // strand
  void prepare() {
    const ProjectionCheckpoint cp = prepare_projection(*store_, *projection_);
    require_version(cp);
    prepared_ = true;
    std::lock_guard lock(mutex_);
    checkpoint_ = cp.position;
  }

  // strand: a cheap read; true if the log has grown past our checkpoint.
  bool something_new() {
    const std::uint64_t head = store_->head_position();
    std::lock_guard lock(mutex_);
    head_ = std::max(head_, head);
    return head > checkpoint_;
  }

  // strand: applies one batch in one write transaction; true if more events follow it.
  bool run_batch() {
    std::vector<RecordedEvent> batch;
    ProjectionCheckpoint cp;
    std::uint64_t head = 0;
    bool marked = false;  // committing() ran: committed() or rolled_back() must follow
    try {
      store_->write_transaction([&](SqlSession& sql) {
        if (auto existing = read_checkpoint(sql, name_)) {
          cp = *existing;
        } else {
          cp = ProjectionCheckpoint{name_, projection_->version(), 0, 0, {}};
        }
        require_version(cp);
        head = head_position(sql);
        batch = read_events(sql, cp.position + 1, batch_size_);
        ProjectionContext ctx(sql);
        cp = apply_events(*projection_, ctx, cp, batch);
        if (!batch.empty()) {
          marked = true;
          projection_->committing(batch);
        }
      });
    } catch (...) {
      if (marked) projection_->rolled_back(batch);
      throw;
    }
    // Before waiters learn of the new checkpoint, so that caches it invalidates are fresh then.
    if (!batch.empty()) projection_->committed(batch);
    {
      std::lock_guard lock(mutex_);
      head_ = std::max(head_, head);
      checkpoint_ = cp.position;
      if (!batch.empty()) {
        events_applied_ += batch.size();
        ++batches_;
        const auto now = Clock::now();
        if (!samples_.empty() && now - samples_.back().first < kRateBucket) {
          samples_.back().second += batch.size();
        } else {
          samples_.emplace_back(now, batch.size());
        }
        while (!samples_.empty() && now - samples_.front().first > kRateWindow) {
          samples_.pop_front();
        }
      }
      cv_.notify_all();
    }
    return cp.position < head;
  }

  void require_version(const ProjectionCheckpoint& cp) const {
    if (cp.version != projection_->version()) {
      throw InvalidArgument("projection runner " + name_ +
                            ": the projection's tables and checkpoint were written by version " +
                            std::to_string(cp.version) + ", this projection is version " +
                            std::to_string(projection_->version()) +
                            "; rebuild it first (annals::rebuild), then start the runner");
    }
  }

  // strand
  void schedule_now() {
    const std::uint64_t epoch = ++epoch_;
    wait_ = Wait::posted;
    asio::post(strand_, [self = shared_from_this(), epoch] { self->run(epoch, Step::batch); });
  }

  // strand
  void schedule_after(std::chrono::milliseconds delay, Wait wait, Step step) {
    const std::uint64_t epoch = ++epoch_;
    wait_ = wait;
    timer_.expires_after(delay);
    timer_.async_wait(asio::bind_executor(
        strand_, [self = shared_from_this(), epoch, step](const boost::system::error_code& ec) {
          if (!ec) self->run(epoch, step);
        }));
  }

  // strand, inside Active: the runner stops at the failing event and tells its owner.
  void fail(std::exception_ptr error) noexcept {
    std::function<void(std::exception_ptr)> on_failure;
    {
      std::lock_guard lock(mutex_);
      state_ = ProjectionRunnerState::failed;
      error_ = error;
      last_error_ = error_text(error);
      on_failure = on_failure_;
    }
    if (on_failure) {
      try {
        on_failure(error);
      } catch (...) {  // documented as ignored
      }
    }
    // Waiters wake only now, so that on_failure has run when they re-throw.
    std::lock_guard lock(mutex_);
    failure_reported_ = true;
    cv_.notify_all();
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // strand

  // Released by shutdown(); used only by handlers inside Active and by the owner's calls.
  std::shared_ptr<SqlEventStore> store_;
  std::shared_ptr<Projection> projection_;

  const std::string name_;
  const std::size_t batch_size_;
  const std::chrono::milliseconds poll_interval_;
  const std::chrono::milliseconds initial_backoff_;
  const std::chrono::milliseconds max_backoff_;
  std::function<void(std::exception_ptr)> on_failure_;

  // strand
  std::uint64_t epoch_ = 0;  // the current schedule; older timer or posted steps do nothing
  Wait wait_ = Wait::none;
  bool prepared_ = false;
  std::chrono::milliseconds backoff_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;  // state, checkpoint, active_ or failure_reported_ changed
  ProjectionRunnerState state_ = ProjectionRunnerState::idle;
  int active_ = 0;  // handlers between Active's constructor and destructor
  std::optional<std::uint64_t> listener_id_;
  bool wake_pending_ = false;
  std::uint64_t head_ = 0;
  std::uint64_t checkpoint_ = 0;
  std::uint64_t events_applied_ = 0;
  std::uint64_t batches_ = 0;
  std::uint32_t retries_ = 0;
  std::string last_error_;
  std::exception_ptr error_;
  bool failure_reported_ = false;
  Clock::time_point started_at_{};
  std::deque<std::pair<Clock::time_point, std::uint64_t>> samples_;  // (bucket start, events)
};

ProjectionRunner::ProjectionRunner(boost::asio::io_context& io,
                                   std::shared_ptr<SqlEventStore> store,
                                   std::shared_ptr<Projection> projection,
                                   ProjectionRunnerOptions options) {
  if (!store) throw InvalidArgument("ProjectionRunner: the store is null");
  if (!projection) throw InvalidArgument("ProjectionRunner: the projection is null");
  const std::string name = projection->name();
  if (options.batch_size == 0) {
    throw InvalidArgument("ProjectionRunner " + name + ": batch_size is 0");
  }
  if (options.poll_interval.count() <= 0) {
    throw InvalidArgument("ProjectionRunner " + name + ": poll_interval is " +
                          std::to_string(options.poll_interval.count()) + " ms, must be positive");
  }
  if (options.initial_backoff.count() <= 0) {
    throw InvalidArgument("ProjectionRunner " + name + ": initial_backoff is " +
                          std::to_string(options.initial_backoff.count()) +
                          " ms, must be positive");
  }
  if (options.max_backoff < options.initial_backoff) {
    throw InvalidArgument("ProjectionRunner " + name + ": max_backoff (" +
                          std::to_string(options.max_backoff.count()) +
                          " ms) is less than initial_backoff (" +
                          std::to_string(options.initial_backoff.count()) + " ms)");
  }
  core_ = std::make_shared<Core>(io, std::move(store), std::move(projection), std::move(options));
}

ProjectionRunner::~ProjectionRunner() { core_->shutdown(); }

void ProjectionRunner::start() { core_->start(); }

void ProjectionRunner::stop() noexcept { core_->stop(); }

void ProjectionRunner::rethrow_if_failed() const { core_->rethrow_if_failed(); }

bool ProjectionRunner::wait_until_caught_up(std::chrono::milliseconds timeout) {
  return core_->wait_until_caught_up(timeout);
}

ProjectionRunnerStatus ProjectionRunner::status() const { return core_->status(); }

}  // namespace annals
