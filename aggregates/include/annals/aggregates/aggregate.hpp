#pragma once

// Aggregate<Derived, EventVariant>: the event-sourcing half of an aggregate. Derived decides
// (its commands check invariants and call raise()), the base records what was raised and
// replays history.
//
//   class Counter : public annals::Aggregate<Counter, std::variant<Incremented>> {
//    public:
//     static std::string stream_id_for(std::string_view id) { return "Counter-" + std::string(id);
//     } const std::string& id() const { return id_; } void increment() { raise(Incremented{id_},
//     {}); } void apply(const Incremented& e) { id_ = e.id; ++count_; }   // never throws
//    private:
//     friend class annals::Aggregate<Counter, std::variant<Incremented>>;
//     Counter() = default;
//     std::string id_; int count_ = 0;
//   };
//
// Derived provides: a default constructor reachable by the base, `void apply(const E&)` for
// every alternative E of EventVariant (it must not throw: commands validate before raising),
// `static std::string stream_id_for(std::string_view id)` and `const std::string& id() const`.
// It may provide `static const EventTypeRegistry& event_registry()` to read old schema
// versions through upcasters.
//
// Snapshots are opt-in: see Snapshottable below.
//
// Thread-safety: none. An aggregate is a value owned by one thread at a time.

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "annals/events/codec.hpp"
#include "annals/events/error.hpp"
#include "annals/events/event.hpp"

namespace annals {

// An aggregate whose state can be saved as a snapshot and restored from one, so that a repository
// loads it from its latest snapshot plus the events after it (aggregate_repository.hpp):
//   static constexpr std::string_view kAggregateType   names the type in stored snapshots;
//   static constexpr std::uint32_t kSnapshotSchema     the layout of snapshot()'s bytes: raise it
//       whenever they change shape or meaning, so old snapshots are ignored, never misread;
//   std::string snapshot() const                       the state as bytes;
//   static A from_snapshot(std::string_view bytes, std::uint64_t version)
//       the aggregate at `version` with that state and nothing pending (Derived restores its
//       fields, then calls the base's restore(version)); SerializationError when the bytes do
//       not decode, without ever trusting a length in them further than the bytes go.
// The state must be a function of the events alone, which apply() already guarantees: a
// snapshot taken after saving equals the state rebuilt from the same events.
template <class A>
concept Snapshottable = requires(const A& a, std::string_view bytes, std::uint64_t version) {
  { A::kAggregateType } -> std::convertible_to<std::string_view>;
  { A::kSnapshotSchema } -> std::convertible_to<std::uint32_t>;
  { a.snapshot() } -> std::convertible_to<std::string>;
  { A::from_snapshot(bytes, version) } -> std::same_as<A>;
};

template <class Derived, class EventVariant>
class Aggregate {
 public:
  using Event = EventVariant;

  // An event raised by a command and not yet saved.
  struct PendingEvent {
    boost::uuids::uuid event_id{};  // fixed when raised, so a retried save is recognisable
    EventVariant event{};
    EventMetadata metadata{};
    std::string json_payload{};  // encoded when raised: what cannot be encoded is never raised
  };

  // Events applied so far, saved or not.
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }
  // The stream version this object was loaded at or last saved at (0: never saved).
  [[nodiscard]] std::uint64_t persisted_version() const noexcept {
    return version_ - pending_.size();
  }
  [[nodiscard]] const std::vector<PendingEvent>& pending_events() const noexcept {
    return pending_;
  }
  [[nodiscard]] bool has_pending_events() const noexcept { return !pending_.empty(); }

  // The pending events as store records, payloads encoded in `format`.
  [[nodiscard]] std::vector<NewEvent> encode_pending_events(PayloadFormat format) const {
    std::vector<NewEvent> out;
    out.reserve(pending_.size());
    for (const PendingEvent& p : pending_) {
      std::visit(
          [&](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            out.push_back(
                NewEvent{p.event_id, std::string(E::kType), E::kSchemaVersion,
                         format == PayloadFormat::json ? p.json_payload : encode_payload(e, format),
                         p.metadata, format});
          },
          p.event);
    }
    return out;
  }

  // Called by a repository once the pending events are committed at `stream_version`.
  // InvalidArgument if that version does not account for exactly the pending events.
  void mark_saved(std::uint64_t stream_version) {
    if (stream_version != version_) {
      throw InvalidArgument(Derived::stream_id_for(static_cast<const Derived&>(*this).id()) +
                            ": saved at version " + std::to_string(stream_version) +
                            " but the aggregate is at version " + std::to_string(version_));
    }
    pending_.clear();
  }

  // Rebuilds an aggregate from its stream's history (versions 1..n, in order). Throws
  // IntegrityError if versions skip or the stream ids differ, SerializationError if an
  // event does not decode, NotFound if the history is empty.
  [[nodiscard]] static Derived rehydrate(const std::vector<RecordedEvent>& history) {
    if (history.empty()) throw NotFound("rehydrate: the stream has no events");
    Derived aggregate;
    for (const RecordedEvent& r : history) aggregate.replay(r);
    return aggregate;
  }

  // Applies one more recorded event (the next version) to a loaded aggregate.
  void replay(const RecordedEvent& record) {
    if (record.version != version_ + 1 || !pending_.empty()) {
      throw IntegrityError("stream " + record.stream_id + ": expected version " +
                           std::to_string(version_ + 1) + ", got version " +
                           std::to_string(record.version) + " at position " +
                           std::to_string(record.position));
    }
    if (version_ > 0 && record.stream_id != stream_id_) {
      throw IntegrityError("replay: event at position " + std::to_string(record.position) +
                           " belongs to stream " + record.stream_id + ", not " + stream_id_);
    }
    const EventVariant event =
        Derived::event_registry().template decode_variant<EventVariant>(record);
    std::visit([this](const auto& e) { self().apply(e); }, event);
    stream_id_ = record.stream_id;
    ++version_;
  }

  // The registry used to decode history; override in Derived to add upcasters.
  [[nodiscard]] static const EventTypeRegistry& event_registry() {
    static const EventTypeRegistry registry;
    return registry;
  }

 protected:
  Aggregate() = default;
  ~Aggregate() = default;
  Aggregate(const Aggregate&) = default;
  Aggregate(Aggregate&&) noexcept = default;
  Aggregate& operator=(const Aggregate&) = default;
  Aggregate& operator=(Aggregate&&) noexcept = default;

  // For Derived::from_snapshot(): marks this freshly made aggregate, whose fields Derived has
  // just restored, as loaded at stream version `version` with nothing pending; later events
  // replay from version + 1. InvalidArgument if version is 0 or events are pending.
  void restore(std::uint64_t version) {
    const std::string stream = Derived::stream_id_for(static_cast<const Derived&>(*this).id());
    if (version == 0 || !pending_.empty()) {
      throw InvalidArgument(stream + ": cannot restore a snapshot at version " +
                            std::to_string(version) + " with " + std::to_string(pending_.size()) +
                            " pending events");
    }
    version_ = version;
    stream_id_ = stream;
  }

  // Applies the event to Derived and queues it for saving. Commands call this only after
  // every invariant check passed; apply() must not throw. Throws SerializationError, changing
  // nothing, if the event cannot be encoded (text that is not UTF-8, a NaN): the JSON form is
  // made here, so that nothing is raised that a save could not store.
  template <class E>
  void raise(E event, EventMetadata metadata) {
    std::string json = encode_payload(event, PayloadFormat::json);
    PendingEvent pending{new_event_id(), EventVariant(std::move(event)), std::move(metadata),
                         std::move(json)};
    pending_.reserve(pending_.size() + 1);  // the only step that can throw comes first
    std::visit([this](const auto& e) { self().apply(e); }, pending.event);
    pending_.push_back(std::move(pending));
    ++version_;
  }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }

  std::uint64_t version_ = 0;
  std::string stream_id_;  // of the history replayed, for consistency checks
  std::vector<PendingEvent> pending_;
};

}  // namespace annals
