#pragma once

// Rebuilding a projection's tables from the whole log without downtime.
//
//   annals::RebuildReport report = annals::rebuild(*store, projection, {
//       .on_progress = [](const annals::RebuildProgress& p) { show(p.processed, p.total); }});
//
// The log is replayed into shadow tables (the live names with the suffix "__g<generation>") in
// batches, each in its own write transaction, while readers keep reading the live tables and
// appends keep going. Then, in one final write transaction (appends wait for it), the shadow tables
// catch up with the events appended meanwhile, are compared with the live tables (row counts,
// a content checksum, the first differing keys), and replace them: live tables dropped, shadow
// tables renamed, checkpoint set to the head with the projection's version and the next
// generation. Readers see the old tables or the new ones, never a mixture. A rebuild that fails
// at any point drops its shadow tables and leaves the live tables and checkpoint untouched.
//
// Schema: a projection that never ran gets its live tables and checkpoint first. Live tables
// written by another version of the projection are not set up again (its setup() may not fit
// them); tables() names that do not exist live are simply renamed in. A view of the host
// application over a live table keeps working: it reads the new table after the swap (SQLite).
// Shadow tables left by a rebuild that crashed are dropped by the next one.
//
// Two rebuilds of one projection (two processes deploying the same version bump): a rebuild
// claims the projection in the table annals_rebuilds; a later rebuild takes the claim over, and
// the earlier one then fails with ConcurrencyError at its next batch, touching nothing of the
// later one's: of rebuilds that overlap, only the one that started last swaps.
//
// Cost: memory is bounded by one batch of events plus two rows per compared table (both are
// streamed through cursors in key order). The final transaction holds the writer for the
// catch-up, one ordered scan of each live and shadow table, and the renames.
//
// Thread-safety: rebuild() may run on any thread, beside appends, readers and runners on the
// same store. The projection's setup() and apply() are called on the calling thread inside the
// store's write transactions (so never at the same time as an inline hook of the same store
// object); reset() after the swap committed.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "annals/projections/projection.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

struct RebuildProgress {
  std::uint64_t processed = 0;   // events replayed so far
  std::uint64_t total = 0;       // events in the log when this report was made
  double events_per_second = 0;  // since the rebuild started
  std::chrono::seconds eta{0};   // at that rate, for the rest
};

struct TableComparison {
  std::string table;  // live name
  std::uint64_t live_rows = 0, shadow_rows = 0;
  // A 64-bit checksum (FNV-1a's step, a 64-bit word at a time) over the column names and every
  // value of every row in key order (key columns compared bytewise, as SQLite's BINARY
  // collation), 16 hex digits; equal when the contents are. Comparable within one build only.
  std::string live_checksum, shadow_checksum;
  // Up to RebuildOptions::max_reported_differences keys in key order, e.g. "id=r-7: only in
  // live", "id=r-8: only in shadow", "id=r-9: differs" (several key columns: "a=1, b=x: ...").
  // When the live table has other columns than the shadow (written by another version), rows
  // are not matched and the one entry is "columns differ: live (...), shadow (...)".
  std::vector<std::string> first_differences;
  [[nodiscard]] bool identical() const noexcept {
    return live_rows == shadow_rows && live_checksum == shadow_checksum;
  }
};

struct RebuildReport {
  std::string projection;
  std::uint64_t events_processed = 0;
  std::uint64_t position = 0;           // the log position the new tables are at
  std::uint64_t generation = 0;         // the checkpoint's generation after the rebuild
  std::vector<TableComparison> tables;  // empty when compare was off
  bool identical = true;                // every table compared equal (true when not compared)
  bool swapped = false;                 // the shadow tables replaced the live ones
  std::chrono::milliseconds duration{0};
};

struct RebuildOptions {
  std::size_t batch_size = 1000;
  // Called on the calling thread after every replay batch commits and once more after the swap
  // (processed == total == the new position), never inside a transaction: it may read from or
  // append to the store. Throwing abandons the rebuild (nothing changed) and the exception
  // propagates; from the last call, after the swap committed, it propagates all the same.
  std::function<void(const RebuildProgress&)> on_progress{};
  bool compare = true;              // compare shadow with live before swapping
  bool swap_when_different = true;  // false: keep the live tables if they differ
  std::size_t max_reported_differences = 10;
};

// Returns what was compared and whether the tables were swapped; after a swap calls
// projection.reset(). Throws InvalidArgument for batch_size 0, a table named twice or a key
// column that is not a column; StoreError ("rebuild of <name>: ...") if the store fails; ConcurrencyError if a later rebuild
// of the projection took over; whatever the projection or on_progress throws. In every case
// nothing changed, except for an exception from the last on_progress call (see above).
RebuildReport rebuild(SqlEventStore& store, Projection& projection,
                      const RebuildOptions& options = {});

}  // namespace annals
