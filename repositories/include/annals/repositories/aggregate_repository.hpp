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
// them (and their event ids), so a retry after a StoreError cannot record them twice.
//
// Thread-safety: a repository holds only a shared_ptr to the store and may be shared by
// threads; the aggregates it returns are values owned by the caller.

#include <memory>
#include <optional>
#include <string_view>
#include <utility>

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
    std::vector<RecordedEvent> history = store_->read_stream(A::stream_id_for(id));
    if (history.empty()) return std::nullopt;
    return A::rehydrate(history);
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
    const AppendResult result = store_->append(
        A::stream_id_for(aggregate.id()),
        loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
        aggregate.encode_pending_events(store_->payload_format()));
    aggregate.mark_saved(result.stream_version);
  }

  [[nodiscard]] const std::shared_ptr<EventStore>& event_store() const noexcept { return store_; }

 private:
  std::shared_ptr<EventStore> store_;
};

}  // namespace annals
