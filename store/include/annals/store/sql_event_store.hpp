#pragma once

// SqlEventStore: an EventStore kept in an SQL database, which lends its connections to
// projections and query repositories so that read tables live in the same database as the log.
//
//   auto store = annals::open_sql_event_store("sqlite:/data/events.db");
//   store->write_transaction([](annals::SqlSession& sql) { sql.execute("..."); });
//   store->read_transaction([](annals::SqlSession& sql) { auto rows = sql.query("..."); });
//
// Thread-safety: as EventStore. write_transaction() is serialized with appends (the same
// writer, BEGIN IMMEDIATE; on PostgreSQL the same LOCK TABLE annals_events IN EXCLUSIVE MODE as
// appends, across processes); read_transaction() runs on a pooled read connection in one
// snapshot (PostgreSQL: REPEATABLE READ READ ONLY).
// A callback must use only the session it is given. Calling append() or write_transaction() on
// the same store from inside a write transaction callback, an AppendHook's on_append(), or (on
// memory:, whose reads use the writer's connection) a read or read transaction callback, on the
// thread that runs it, would wait for itself: it throws InvalidArgument instead. Commit
// listeners and on_commit() run after the writer is released and may append; on_rollback() runs
// while the writer is held (often inside the transaction) and must not: it is noexcept, so the
// InvalidArgument thrown out of it calls std::terminate.
//
// Group commit (StoreOptions::group_commit, on by default, the same on SQLite and PostgreSQL):
// appends that arrive while the writer is busy queue up; the thread that finds the writer free becomes the leader and runs
// the queued appends (up to 64 of them, about 4096 events) in one transaction, each inside its
// own SAVEPOINT, then commits once (one fsync). Each append is checked on its own: one that
// fails (ConcurrencyError, a duplicate event id, a hook throwing) is rolled back to its
// savepoint and its caller alone gets the exception; the others continue at the next position,
// so positions stay gap-free and the hash chain intact. Every caller returns after the commit
// that holds its events (or throws if it failed: if BEGIN or COMMIT fails, every append of the
// group not already refused on its own gets a StoreError naming its own stream, the transaction
// is rolled back and nothing of the group is written). An error that ends the whole transaction
// part way (an I/O error making SQLite roll back) likewise fails every append of the group,
// including those written before it. on_append() and on_rollback() run on the leader's thread,
// possibly another caller's; on_commit() runs on each append's own thread; commit listeners run
// once per group on the leader's thread after the group's callers were released.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "annals/store/event_store.hpp"
#include "annals/store/sql.hpp"

namespace annals {

// Something that runs inside every append's transaction: inline projections.
// With group commit, several appends share one transaction; each append's hook calls are its
// own: on_append() for append A, then (if A failed) on_rollback() for A while the transaction
// goes on with other appends, or, after the shared commit, on_commit() for A. Calls for one
// store object never overlap inside the transaction (one writer), and hooks see appends in
// position order.
class AppendHook {
 public:
  virtual ~AppendHook() = default;
  // Called inside the append's transaction (with group commit: inside the append's savepoint),
  // after its events are inserted and before it commits. `appended` are the new events in
  // position order. Throwing rolls this append back (to its savepoint) and the exception
  // reaches that append's caller alone.
  virtual void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) = 0;
  // Called after the transaction holding this append committed, outside the writer's lock,
  // on the appending thread itself, before append() returns (it never makes the other appends
  // of its group wait).
  virtual void on_commit(const std::vector<RecordedEvent>& appended) noexcept = 0;
  // Called instead of on_commit when this append's changes were rolled back after on_append()
  // was called on some hook (this one's may have thrown or not run at all). The rollback may
  // be to the append's savepoint while the transaction continues with later appends (whose
  // positions may then reuse `appended`'s), or of the whole transaction when it failed or was
  // lost (then each append of the group whose on_append() was called hears it; appends not yet
  // reached never do). Called exactly once per append whose on_append() was called, instead of
  // on_commit. Runs on the writer's thread while it holds the writer: it must not append or
  // open a write transaction on the store (refused with InvalidArgument, which thrown out of
  // this noexcept function calls std::terminate).
  virtual void on_rollback(const std::vector<RecordedEvent>& appended) noexcept { (void)appended; }
};

// What group commit did on a store object since it was opened.
struct GroupCommitStats {
  std::uint64_t groups = 0;    // append transactions run (one per group)
  std::uint64_t requests = 0;   // append calls they carried (kept or refused)
  std::uint64_t max_group = 0;  // the most append calls one transaction carried
  std::uint64_t queued = 0;     // append calls waiting for a group right now
};

class SqlEventStore : public EventStore {
 public:
  // Runs fn in a write transaction: committed if fn returns, rolled back if it throws (the
  // exception is rethrown). Serialized with appends, across processes too.
  virtual void write_transaction(const std::function<void(SqlSession&)>& fn) = 0;

  // Runs fn in a read transaction: every query inside sees the same committed snapshot.
  virtual void read_transaction(const std::function<void(SqlSession&)>& fn) const = 0;

  // Adds a hook to every later append of this store object. Hooks run in the order added.
  virtual void add_append_hook(std::shared_ptr<AppendHook> hook) = 0;

  // Calls fn(head_position) after every append transaction of this store object commits,
  // outside any lock (with group commit: once per group, with the group's last position, on
  // the leader's thread after the group's callers were released, so another caller of the
  // group may already have returned). Returns an id for remove_commit_listener(). fn must not
  // throw.
  virtual std::uint64_t add_commit_listener(std::function<void(std::uint64_t)> fn) = 0;
  virtual void remove_commit_listener(std::uint64_t id) noexcept = 0;

  // Counters of append transactions (with group commit off, one per append call), for
  // benchmarks and tests: requests / groups is the average group size. Thread-safe.
  [[nodiscard]] virtual GroupCommitStats group_commit_stats() const noexcept { return {}; }
};

// Like open_event_store(), for the backends that are SQL databases (sqlite:, memory:, and
// postgresql:// / postgres:// / libpq keyword strings, whose sessions' dialect() is
// "postgresql"). Throws InvalidArgument for a scheme that is not one.
[[nodiscard]] std::shared_ptr<SqlEventStore> open_sql_event_store(std::string_view uri,
                                                                  const StoreOptions& options = {});

// Reads up to max_count events from from_position on through a session (so inside the
// session's transaction or snapshot). The same records read_all() returns.
[[nodiscard]] std::vector<RecordedEvent> read_events(SqlSession& sql, std::uint64_t from_position,
                                                     std::size_t max_count);

// The head position as the session sees it.
[[nodiscard]] std::uint64_t head_position(SqlSession& sql);

}  // namespace annals
