#pragma once

// Snapshots: an aggregate's state at one stream version, kept beside the log so that loading a
// long stream reads the latest snapshot and only the events after it.
//
//   auto snapshots = annals::open_snapshot_store(sql_store);
//   snapshots->save({.stream_id = "WorkflowRun-42", .version = 500,
//                    .aggregate_type = "WorkflowRun", .schema = 1,
//                    .event_id = id_of_event_500, .payload = bytes});
//   std::optional<annals::Snapshot> s = snapshots->load("WorkflowRun-42");
//
// A snapshot is a cache, never a source of truth: the log alone decides what an aggregate is,
// and a reader must be ready to ignore any snapshot (AggregateRepository does; see
// aggregate_repository.hpp). The store keeps one snapshot per stream, the latest: a save never
// replaces a snapshot of a higher version. Each row carries a SHA-256 checksum over all its
// fields and the id of the stream's event at its version, so a damaged row and a row left from
// another history of the stream (a purged and re-created run) are both recognised.
//
// Thread-safety: a SnapshotStore is safe to share between threads. Cost: save() is one write
// transaction on the store's writer (serialized with appends); load() one read transaction.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "annals/events/event.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

struct Snapshot {
  std::string stream_id{};
  std::uint64_t version = 0;      // the stream version the state is at (>= 1)
  std::string aggregate_type{};   // e.g. "WorkflowRun"; never empty
  std::uint32_t schema = 0;       // the aggregate's snapshot schema: the payload's layout
  boost::uuids::uuid event_id{};  // the id of the stream's event at `version`
  std::string payload{};          // the state, encoded by the aggregate
  Timestamp taken_at{};           // when taken; zero on save means now

  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;

  // Stores `snapshot` as its stream's snapshot, unless the stream already has one of a higher
  // version (one of the same version is replaced). Returns true if it was written. Throws
  // InvalidArgument for an empty stream id or aggregate type or version 0, StoreError when the
  // store cannot write.
  virtual bool save(const Snapshot& snapshot) = 0;

  // The stream's snapshot, or nullopt if it has none. Throws IntegrityError (naming the stream)
  // when the stored row is damaged (its checksum does not match, a column is malformed),
  // StoreError when the store cannot be read.
  [[nodiscard]] virtual std::optional<Snapshot> load(std::string_view stream_id) const = 0;

  // Deletes the stream's snapshot; returns true if there was one. StoreError if it cannot.
  virtual bool remove(std::string_view stream_id) = 0;
};

// A SnapshotStore in the table annals_snapshots of `store`'s database, created by the first
// save() (a store that never saves a snapshot gets no table). Keeps a reference to the store.
// InvalidArgument if store is null.
[[nodiscard]] std::shared_ptr<SnapshotStore> open_snapshot_store(
    std::shared_ptr<SqlEventStore> store);

}  // namespace annals
