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
// Thread-safety: a repository holds only a shared_ptr to the store and may be shared by
// threads; the aggregates it returns are values owned by the caller.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annals/store/event_store.hpp"

namespace annals {

template <class A>
class AggregateRepository {
 public:
  // InvalidArgument if store is null.
  explicit AggregateRepository(std::shared_ptr<EventStore> store) : store_(std::move(store)) {
    if (!store_) throw InvalidArgument("AggregateRepository: the event store is null");
  }

  // The aggregate rebuilt from its whole stream, or nullopt if the stream does not exist.
  // Throws SerializationError / IntegrityError if its history does not decode.
  [[nodiscard]] std::optional<A> find(std::string_view id) const {
    if (id.empty()) throw InvalidArgument("find: aggregate id is empty");
    const std::string stream = A::stream_id_for(id);
    std::vector<RecordedEvent> history = store_->read_stream(stream);
    if (history.empty()) return std::nullopt;
    A aggregate = A::rehydrate(history);
    if (aggregate.id() != id) {  // a stream whose history names another aggregate
      throw IntegrityError("stream " + stream + " holds the history of aggregate '" +
                           aggregate.id() + "', not '" + std::string(id) + "'");
    }
    return aggregate;
  }

  // Like find(), but throws NotFound naming the stream when it does not exist.
  [[nodiscard]] A load(std::string_view id) const {
    std::optional<A> found = find(id);
    if (!found) throw NotFound("load: stream " + A::stream_id_for(id) + " does not exist");
    return std::move(*found);
  }

  // Appends the aggregate's pending events; a no-op when it has none.
  void save(A& aggregate) {
    if (!aggregate.has_pending_events()) return;
    const std::uint64_t loaded = aggregate.persisted_version();
    const std::string stream = A::stream_id_for(aggregate.id());
    try {
      const AppendResult result = store_->append(
          stream, loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
          aggregate.encode_pending_events(store_->payload_format()));
      aggregate.mark_saved(result.stream_version);
    } catch (const ConcurrencyError&) {
      if (!already_saved(stream, aggregate)) throw;
      aggregate.mark_saved(aggregate.version());  // an earlier attempt did commit
    }
  }

  // Appends the pending events of several aggregates in one all-or-nothing batch append: either
  // every aggregate is saved or none is (and all keep their pending events). Aggregates without
  // pending events are skipped; a no-op when none has any. Throws InvalidArgument for a null
  // pointer or two aggregates with the same id, ConcurrencyError (naming the stream) if any of
  // them is no longer at the version it was loaded at.
  void save_all(const std::vector<A*>& aggregates) {
    std::vector<StreamAppend> batch;
    std::vector<A*> saving;
    std::set<std::string> streams;
    for (A* aggregate : aggregates) {
      if (aggregate == nullptr) throw InvalidArgument("save_all: an aggregate is null");
      if (!aggregate->has_pending_events()) continue;
      std::string stream = A::stream_id_for(aggregate->id());
      if (!streams.insert(stream).second) {
        throw InvalidArgument("save_all: stream " + stream + " is given twice");
      }
      const std::uint64_t loaded = aggregate->persisted_version();
      batch.push_back(StreamAppend{
          std::move(stream),
          loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
          aggregate->encode_pending_events(store_->payload_format())});
      saving.push_back(aggregate);
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
  }

  [[nodiscard]] const std::shared_ptr<EventStore>& event_store() const noexcept { return store_; }

 private:
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
};

}  // namespace annals
