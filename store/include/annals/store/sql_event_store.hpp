#pragma once

// SqlEventStore: an EventStore kept in an SQL database, which lends its connections to
// projections and query repositories so that read tables live in the same database as the log.
//
//   auto store = annals::open_sql_event_store("sqlite:/data/events.db");
//   store->write_transaction([](annals::SqlSession& sql) { sql.execute("..."); });
//   store->read_transaction([](annals::SqlSession& sql) { auto rows = sql.query("..."); });
//
// Thread-safety: as EventStore. write_transaction() is serialized with appends (the same
// writer, BEGIN IMMEDIATE); read_transaction() runs on a pooled read connection in one snapshot.
// A callback must use only the session it is given. Calling back into the same store from
// inside a transaction callback or an AppendHook is not supported: on a file it may wait for
// the lock the caller holds until the busy timeout (StoreError); on memory:, whose readers share
// the writer's connection, a nested transaction fails with StoreError.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "annals/store/event_store.hpp"
#include "annals/store/sql.hpp"

namespace annals {

// Something that runs inside every append's transaction: inline projections.
class AppendHook {
 public:
  virtual ~AppendHook() = default;
  // Called inside the append's transaction, after its events are inserted and before it
  // commits. `appended` are the new events in position order. Throwing rolls the whole append
  // back and the exception reaches the caller of append().
  virtual void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) = 0;
  // Called after that transaction committed, outside any lock.
  virtual void on_commit(const std::vector<RecordedEvent>& appended) noexcept = 0;
  // Called instead of on_commit when the transaction rolled back after on_append() was called
  // on some hook (this one's may have thrown or not run at all).
  virtual void on_rollback(const std::vector<RecordedEvent>& appended) noexcept { (void)appended; }
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

  // Calls fn(head_position) after every append of this store object commits, outside any
  // lock. Returns an id for remove_commit_listener(). fn must not throw.
  virtual std::uint64_t add_commit_listener(std::function<void(std::uint64_t)> fn) = 0;
  virtual void remove_commit_listener(std::uint64_t id) noexcept = 0;
};

// Like open_event_store(), for the backends that are SQL databases (sqlite:, memory:).
// Throws InvalidArgument for a scheme that is not one.
[[nodiscard]] std::shared_ptr<SqlEventStore> open_sql_event_store(std::string_view uri,
                                                                  const StoreOptions& options = {});

// Reads up to max_count events from from_position on through a session (so inside the
// session's transaction or snapshot). The same records read_all() returns.
[[nodiscard]] std::vector<RecordedEvent> read_events(SqlSession& sql, std::uint64_t from_position,
                                                     std::size_t max_count);

// The head position as the session sees it.
[[nodiscard]] std::uint64_t head_position(SqlSession& sql);

}  // namespace annals
