#pragma once

// The projection engine: applying the log to projections in transactions that also move their
// checkpoints, and running projections inline inside appends.
//
//   auto store = annals::open_sql_event_store("sqlite:/data/events.db");
//   auto runs = std::make_shared<annals::WorkflowProjection>();
//   annals::attach_inline_projections(store, {runs});   // set up, caught up, then inline
//   // every append now updates the read tables in its own transaction

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "annals/projections/checkpoint.hpp"
#include "annals/projections/projection.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

// Applies `events` (positions checkpoint.position + 1 onwards, contiguous) to the projection
// inside the caller's transaction and writes the advanced checkpoint there too; returns it.
// Events of types the projection does not handle only advance the checkpoint. A gap in the
// positions is stepped over only where a recorded purge removed them. Throws IntegrityError if
// the events do not otherwise follow the checkpoint; whatever apply() throws passes
// through (the caller's transaction then rolls back rows and checkpoint together).
ProjectionCheckpoint apply_events(Projection& projection, ProjectionContext& ctx,
                                  const ProjectionCheckpoint& checkpoint,
                                  const std::vector<RecordedEvent>& events);

// What apply_events does without the checkpoint: applies `events`, which must follow
// after_position in order (stepping over gaps only where a recorded purge removed positions),
// to the tables ctx names, and returns the last position applied. Rebuilds use it for shadow
// tables. Throws IntegrityError naming the first position out of place.
std::uint64_t replay_events(Projection& projection, ProjectionContext& ctx,
                            std::uint64_t after_position, const std::vector<RecordedEvent>& events);

// Creates the checkpoint table and, for a projection that never ran, its live tables (setup())
// and a checkpoint at position 0; returns the checkpoint. setup() runs only then (and in a
// rebuild), never again on existing tables. One write transaction.
ProjectionCheckpoint prepare_projection(SqlEventStore& store, Projection& projection);

// Applies the log from the projection's checkpoint to the head, batch_size events per write
// transaction, then calls projection.committed() for each batch. Returns the events applied.
// Throws InvalidArgument if batch_size is 0, the projection was never prepared in this store
// (prepare_projection first), or the tables were written by another version of the projection
// (rebuild them first); StoreError ("catch_up <name>: ...") if the store fails,
// in which case the failed batch's rows and checkpoint are rolled back together and the batches
// before it stay committed.
std::uint64_t catch_up(SqlEventStore& store, Projection& projection, std::size_t batch_size = 1000);

// True if every table the projection names exists (an operator may drop read tables).
[[nodiscard]] bool live_tables_exist(SqlEventStore& store, const Projection& projection);

// Runs projections inside every append of `store` (read-your-writes: a read right after the
// append sees its rows). Each projection is first set up, rebuilt if its version changed or a
// table of it was dropped, and caught up to the head. If an append comes from a store object
// without this hook (another process), the next hooked append applies the missed events first. The
// projections stay attached for the life of the store object.
void attach_inline_projections(SqlEventStore& store,
                               const std::vector<std::shared_ptr<Projection>>& projections);

}  // namespace annals
