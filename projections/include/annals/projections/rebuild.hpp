#pragma once

// Rebuilding a projection's tables from the whole log without downtime.
//
//   annals::RebuildReport report = annals::rebuild(*store, projection, {
//       .on_progress = [](const annals::RebuildProgress& p) { show(p.processed, p.total); }});
//
// The log is replayed into shadow tables (the live names with a generation suffix) in batches,
// each in its own write transaction, while readers keep reading the live tables and appends
// keep going. Then, in one final write transaction (appends wait for it), the shadow tables
// catch up with the events appended meanwhile, are compared with the live tables (row counts,
// a content checksum, the first differing keys), and replace them: live tables dropped, shadow
// tables renamed, checkpoint set to the head with the projection's version. Readers see the old
// tables or the new ones, never a mixture. A rebuild that fails at any point drops its shadow
// tables and leaves the live tables and checkpoint untouched.

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
  std::uint64_t processed = 0;     // events replayed so far
  std::uint64_t total = 0;         // events in the log when this report was made
  double events_per_second = 0;    // since the rebuild started
  std::chrono::seconds eta{0};     // at that rate, for the rest
};

struct TableComparison {
  std::string table;                // live name
  std::uint64_t live_rows = 0, shadow_rows = 0;
  std::string live_checksum, shadow_checksum;  // hex; equal when the contents are equal
  // Up to RebuildOptions::max_reported_differences keys, e.g. "id=r-7: only in live".
  std::vector<std::string> first_differences;
  [[nodiscard]] bool identical() const noexcept {
    return live_rows == shadow_rows && live_checksum == shadow_checksum;
  }
};

struct RebuildReport {
  std::string projection;
  std::uint64_t events_processed = 0;
  std::uint64_t position = 0;     // the log position the new tables are at
  std::uint64_t generation = 0;   // the checkpoint's generation after the rebuild
  std::vector<TableComparison> tables;  // empty when compare was off
  bool identical = true;          // every table compared equal (true when not compared)
  bool swapped = false;           // the shadow tables replaced the live ones
  std::chrono::milliseconds duration{0};
};

struct RebuildOptions {
  std::size_t batch_size = 1000;
  std::function<void(const RebuildProgress&)> on_progress;  // after every batch
  bool compare = true;                // compare shadow with live before swapping
  bool swap_when_different = true;    // false: keep the live tables if they differ
  std::size_t max_reported_differences = 10;
};

// Throws InvalidArgument for batch_size 0; StoreError if the store fails (nothing changed);
// whatever the projection throws (nothing changed).
RebuildReport rebuild(SqlEventStore& store, Projection& projection,
                      const RebuildOptions& options = {});

}  // namespace annals
