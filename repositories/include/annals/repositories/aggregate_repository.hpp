#pragma once

// AggregateRepository<A>: loads aggregates from their streams and saves what they raised.
//
//   annals::AggregateRepository<annals::WorkflowRun> runs(store);
//   annals::WorkflowRun run = runs.load("r-1");        // NotFound if there is no such run
//   run.complete_node({.node_execution_id = "n-1"});
//   runs.save(run);                                     // ConcurrencyError if someone saved first
//
// save() appends the pending events with expected version = the version the aggregate was
// loaded (or last saved) at, so two writers that loaded the same version cannot both win:
// the loser gets ConcurrencyError, reloads, decides again and saves. Pending events are
// cleared only after the append committed; after any exception the aggregate still holds
// them with their event ids, so save() may simply be called again after a StoreError: if the
// first attempt did commit, the retry finds those ids in the stream and succeeds without
// writing them twice.
//
// Snapshots (for a Snapshottable A, aggregate.hpp), opt-in with a SnapshotPolicy:
//
//   annals::AggregateRepository<annals::WorkflowRun> runs(store, {.every = 500});
//
// A load then reads the stream's latest snapshot and only the events after it; the result is
// the same aggregate (state, version(), persisted_version()) as a load from all events. A
// snapshot is used only if its aggregate type and snapshot schema are this build's, its row is
// intact (checksum), the stream's event at its version is the one it was taken after (so a
// snapshot left from a purged and re-created stream is not), and it decodes to this aggregate
// id; otherwise it is ignored with a message to SnapshotPolicy::log and the aggregate is loaded
// from all its events, as is any aggregate when reading the snapshot fails. Snapshots are
// taken by save() and save_all() when a save carries a stream across a multiple of `every`
// events, and by a load that had to replay `every` events or more past the latest usable
// snapshot (none yet, an unusable one), so streams written before snapshots were enabled or by
// another build catch up. Taking one happens after the save committed, in its own transaction:
// a failure is only logged, never thrown, and never undoes or fails the save or the load.
//
// Thread-safety: a repository holds only shared_ptrs to the stores and may be shared by
// threads; the aggregates it returns are values owned by the caller. SnapshotPolicy::log may
// be called from several threads at once.

#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annals/aggregates/aggregate.hpp"
#include "annals/events/printable.hpp"
#include "annals/store/event_store.hpp"
#include "annals/store/snapshot_store.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

// When an AggregateRepository takes snapshots, and where it reports ignoring or failing one.
struct SnapshotPolicy {
  // Snapshot every `every` events of a stream (see above). 0: snapshots are neither read nor
  // written.
  std::uint64_t every = 0;
  // Receives one line per ignored snapshot or failed snapshot write; std::cerr when empty.
  // Must not throw (what it throws is dropped).
  std::function<void(std::string_view)> log{};
};

template <class A>
class AggregateRepository {
 public:
  // Without snapshots. InvalidArgument if store is null.
  explicit AggregateRepository(std::shared_ptr<EventStore> store) : store_(std::move(store)) {
    if (!store_) throw InvalidArgument("AggregateRepository: the event store is null");
  }

  // With snapshots as `policy` says, kept beside the log when the store is an SqlEventStore
  // (sqlite:, memory:); for any other store snapshots are off, which is logged once here.
  // InvalidArgument if store is null.
  AggregateRepository(std::shared_ptr<EventStore> store,
                      SnapshotPolicy policy) requires Snapshottable<A>
      : AggregateRepository(store, sql_snapshots(store), std::move(policy)) {
    if (policy_.every > 0 && !snapshots_) {
      report("snapshots of " + std::string(A::kAggregateType) +
             " are off: the event store is not an SqlEventStore; give the repository a "
             "SnapshotStore");
    }
  }

  // With snapshots in `snapshots` (null: off), e.g. open_snapshot_store() of the SQL store
  // behind a decorated `store`. InvalidArgument if store is null.
  AggregateRepository(std::shared_ptr<EventStore> store, std::shared_ptr<SnapshotStore> snapshots,
                      SnapshotPolicy policy) requires Snapshottable<A>
      : store_(std::move(store)), snapshots_(std::move(snapshots)), policy_(std::move(policy)) {
    if (!store_) throw InvalidArgument("AggregateRepository: the event store is null");
  }

  // The aggregate rebuilt from its stream (from its latest usable snapshot and the events after
  // it, when snapshots are on), or nullopt if the stream does not exist. Throws
  // SerializationError / IntegrityError if its history does not decode, StoreError if the log
  // cannot be read; never because of a snapshot.
  [[nodiscard]] std::optional<A> find(std::string_view id) const {
    if (id.empty()) throw InvalidArgument("find: aggregate id is empty");
    const std::string stream = A::stream_id_for(id);
    if constexpr (Snapshottable<A>) {
      if (snapshots_on()) return find_with_snapshot(stream, id);
    }
    return from_events(stream, id, store_->read_stream(stream));
  }

  // Like find(), but throws NotFound naming the stream when it does not exist.
  [[nodiscard]] A load(std::string_view id) const {
    std::optional<A> found = find(id);
    if (!found) throw NotFound("load: stream " + A::stream_id_for(id) + " does not exist");
    return std::move(*found);
  }

  // Appends the aggregate's pending events; a no-op when it has none. May then take a
  // snapshot (see above), whose failure is only logged.
  void save(A& aggregate) {
    if (!aggregate.has_pending_events()) return;
    const std::uint64_t loaded = aggregate.persisted_version();
    const std::string stream = A::stream_id_for(aggregate.id());
    const boost::uuids::uuid last_event_id = aggregate.pending_events().back().event_id;
    try {
      const AppendResult result = store_->append(
          stream, loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
          aggregate.encode_pending_events(store_->payload_format()));
      aggregate.mark_saved(result.stream_version);
    } catch (const ConcurrencyError&) {
      if (!already_saved(stream, aggregate)) throw;
      aggregate.mark_saved(aggregate.version());  // an earlier attempt did commit
    }
    after_save(aggregate, stream, loaded, last_event_id);
  }

  // Appends the pending events of several aggregates in one all-or-nothing batch append: either
  // every aggregate is saved or none is (and all keep their pending events). Aggregates without
  // pending events are skipped; a no-op when none has any. Throws InvalidArgument for a null
  // pointer or two aggregates with the same id, ConcurrencyError (naming the stream) if any of
  // them is no longer at the version it was loaded at.
  void save_all(const std::vector<A*>& aggregates) {
    std::vector<StreamAppend> batch;
    std::vector<A*> saving;
    std::vector<std::pair<std::uint64_t, boost::uuids::uuid>> before;  // loaded at, last event
    std::set<std::string> streams;
    for (A* aggregate : aggregates) {
      if (aggregate == nullptr) throw InvalidArgument("save_all: an aggregate is null");
      if (!aggregate->has_pending_events()) continue;
      std::string stream = A::stream_id_for(aggregate->id());
      if (!streams.insert(stream).second) {
        throw InvalidArgument("save_all: stream " + printable(stream, 1024) + " is given twice");
      }
      const std::uint64_t loaded = aggregate->persisted_version();
      batch.push_back(StreamAppend{
          std::move(stream),
          loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
          aggregate->encode_pending_events(store_->payload_format())});
      saving.push_back(aggregate);
      before.emplace_back(loaded, aggregate->pending_events().back().event_id);
    }
    if (batch.empty()) return;
    try {
      (void)store_->append(std::move(batch));
    } catch (const ConcurrencyError&) {
      for (const A* aggregate : saving) {
        if (!already_saved(A::stream_id_for(aggregate->id()), *aggregate)) throw;
      }
    }
    // The batch committed with each part at its expected version: every stream is now at the
    // version its aggregate reached.
    for (A* aggregate : saving) aggregate->mark_saved(aggregate->version());
    for (std::size_t i = 0; i < saving.size(); ++i) {
      after_save(*saving[i], A::stream_id_for(saving[i]->id()), before[i].first, before[i].second);
    }
  }

  [[nodiscard]] const std::shared_ptr<EventStore>& event_store() const noexcept { return store_; }
  // The snapshot store in use; null when snapshots are off for lack of one.
  [[nodiscard]] const std::shared_ptr<SnapshotStore>& snapshot_store() const noexcept {
    return snapshots_;
  }
  [[nodiscard]] const SnapshotPolicy& snapshot_policy() const noexcept { return policy_; }

 private:
  static std::shared_ptr<SnapshotStore> sql_snapshots(const std::shared_ptr<EventStore>& store) {
    auto sql = std::dynamic_pointer_cast<SqlEventStore>(store);
    return sql ? open_snapshot_store(std::move(sql)) : nullptr;
  }

  bool snapshots_on() const noexcept { return snapshots_ && policy_.every > 0; }

  std::optional<A> from_events(const std::string& stream, std::string_view id,
                               const std::vector<RecordedEvent>& history) const {
    if (history.empty()) return std::nullopt;
    A aggregate = A::rehydrate(history);
    if (aggregate.id() != id) {  // a stream whose history names another aggregate
      throw IntegrityError("stream " + printable(stream, 1024) +
                           " holds the history of aggregate '" + printable(aggregate.id()) +
                           "', not '" + printable(id) + "'");
    }
    return aggregate;
  }

  std::optional<A> find_with_snapshot(const std::string& stream, std::string_view id) const {
    std::optional<Snapshot> snapshot;
    try {
      snapshot = snapshots_->load(stream);
    } catch (const std::exception& e) {  // a cache that cannot be read is no reason to fail
      report("snapshot of " + printable(stream, 1024) +
             " ignored, loading from events: " + e.what());
    }
    if (snapshot) {
      boost::uuids::uuid last_event_id{};
      if (std::optional<A> aggregate = from_snapshot(*snapshot, stream, id, last_event_id)) {
        if (aggregate->version() - snapshot->version >= policy_.every) {
          take_snapshot(*aggregate, stream, last_event_id);
        }
        return aggregate;
      }
    }
    const std::vector<RecordedEvent> history = store_->read_stream(stream);
    std::optional<A> aggregate = from_events(stream, id, history);
    if (aggregate && aggregate->version() >= policy_.every) {
      take_snapshot(*aggregate, stream, history.back().event_id);
    }
    return aggregate;
  }

  // The aggregate from `snapshot` and the events after it, or nullopt (reported) when the
  // snapshot is not usable. Errors reading or decoding the events after it are the log's and
  // propagate, as they would from a load without the snapshot.
  std::optional<A> from_snapshot(const Snapshot& snapshot, const std::string& stream,
                                 std::string_view id, boost::uuids::uuid& last_event_id) const {
    const std::string what = "snapshot of " + printable(stream, 1024) + " at version " +
                             std::to_string(snapshot.version) + " ignored, loading from events: ";
    if (snapshot.aggregate_type != A::kAggregateType || snapshot.schema != A::kSnapshotSchema) {
      report(what + "it is " + snapshot.aggregate_type + " snapshot schema " +
             std::to_string(snapshot.schema) + ", this build reads " +
             std::string(A::kAggregateType) + " snapshot schema " +
             std::to_string(A::kSnapshotSchema));
      return std::nullopt;
    }
    // Read from the snapshot's own version, to check it was taken after this stream's event.
    const std::vector<RecordedEvent> events = store_->read_stream(stream, snapshot.version);
    if (events.empty() || events.front().version != snapshot.version ||
        events.front().event_id != snapshot.event_id) {
      report(what + "it was taken after event " + annals::to_string(snapshot.event_id) +
             (events.empty()
                  ? std::string(", and the stream has no event at that version")
                  : ", the stream's event there is " + annals::to_string(events.front().event_id)) +
             " (the stream was purged or re-created)");
      return std::nullopt;
    }
    std::optional<A> aggregate;
    try {
      aggregate.emplace(A::from_snapshot(snapshot.payload, snapshot.version));
    } catch (const std::exception& e) {
      report(what + e.what());
      return std::nullopt;
    }
    if (aggregate->id() != id || aggregate->version() != snapshot.version ||
        aggregate->has_pending_events()) {
      report(what + "it decodes to aggregate '" + printable(aggregate->id()) + "' at version " +
             std::to_string(aggregate->version()) + ", expected '" + printable(id) + "'");
      return std::nullopt;
    }
    for (std::size_t i = 1; i < events.size(); ++i) aggregate->replay(events[i]);
    last_event_id = events.back().event_id;
    return aggregate;
  }

  void after_save(const A& aggregate, const std::string& stream, std::uint64_t loaded,
                  const boost::uuids::uuid& last_event_id) const noexcept {
    if constexpr (Snapshottable<A>) {
      if (snapshots_on() && loaded / policy_.every != aggregate.version() / policy_.every) {
        take_snapshot(aggregate, stream, last_event_id);
      }
    }
  }

  // Writes a snapshot of a saved aggregate whose last event is `last_event_id`; a failure is
  // reported, never thrown: the save or load that asked for it has succeeded.
  void take_snapshot(const A& aggregate, const std::string& stream,
                     const boost::uuids::uuid& last_event_id) const noexcept {
    try {
      Snapshot snapshot{};
      snapshot.stream_id = stream;
      snapshot.version = aggregate.version();
      snapshot.aggregate_type = std::string(A::kAggregateType);
      snapshot.schema = A::kSnapshotSchema;
      snapshot.event_id = last_event_id;
      snapshot.payload = aggregate.snapshot();
      (void)snapshots_->save(snapshot);
    } catch (const std::exception& e) {
      report_not_written(stream, aggregate.version(), e.what());
    } catch (...) {
      report_not_written(stream, aggregate.version(), "unknown error");
    }
  }

  void report_not_written(const std::string& stream, std::uint64_t version,
                          const char* why) const noexcept {
    try {
      report("snapshot of " + printable(stream, 1024) + " at version " + std::to_string(version) +
             " not written (the stream is unaffected): " + why);
    } catch (...) {  // no memory for the message
    }
  }

  void report(const std::string& message) const noexcept {
    try {
      if (policy_.log) {
        policy_.log(message);
      } else {
        std::cerr << "annals: " << message << std::endl;
      }
    } catch (...) {  // a log sink is no reason to fail a load or a save
    }
  }

  // True if the stream already holds exactly the aggregate's pending events (same ids, right
  // after the version it was loaded at): a save retried after an ambiguous failure.
  bool already_saved(const std::string& stream, const A& aggregate) const {
    const auto& pending = aggregate.pending_events();
    const auto stored =
        store_->read_stream(stream, aggregate.persisted_version() + 1, pending.size());
    if (stored.size() != pending.size()) return false;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (stored[i].event_id != pending[i].event_id) return false;
    }
    return true;
  }

  std::shared_ptr<EventStore> store_;
  std::shared_ptr<SnapshotStore> snapshots_{};
  SnapshotPolicy policy_{};
};

}  // namespace annals
