#pragma once

// Retention: moving a tenant's old workflow runs out of the log into a verified archive.
//
//   annals::PurgeResult r = annals::purge_runs(*store, {.tenant_id = "acme",
//                                                      .before = cutoff,
//                                                      .archive_path = "/backup/acme-2025.jsonl"});
//   annals::verify_log(*store);                                      // still passes
//   annals::verify_purge_archive(*store, "/backup/acme-2025.jsonl");  // the archive is the one
//
// A purge runs in four steps, and removes nothing unless all of them succeed:
//  1. In one read snapshot it selects the tenant's runs created before the cutoff (the streams
//     "WorkflowRun-<id>" whose RunCreated, tenant and created_at as decoded from the payload,
//     match) and writes every event of those streams, in position order, to the archive in the
//     export format (export.hpp), then fsyncs it.
//  2. It writes a manifest next to it (JSON: tenant, cutoff, counts, first and last position,
//     the archive's SHA-256, and every removed position with its hash) and fsyncs it.
//  3. It reads the archive back: its SHA-256 must be the one computed while writing, every line
//     must parse, and each line's event must equal the stored one, hash included.
//  4. In one write transaction (appends wait for it) it checks that those streams still hold
//     exactly the archived events, deletes them (the append-only trigger is lifted for this
//     transaction only and re-created from its own stored definition), deletes the runs' rows
//     from the workflow read tables (annals_workflow_runs, annals_node_executions and the shadow
//     tables of a rebuild in progress) and their snapshots (annals_snapshots) where they exist,
//     and records the purge in
//     annals_purges with the removed positions and hashes in annals_purged_events.
// The gaps the purge leaves in the positions are recorded, so verify_log continues the chain
// over them from the recorded hashes; a missing position that no purge recorded still fails.
//
// The stream holding the head event is never purged (it is reported in held_back, and a later
// purge takes it once newer events exist): removing the head would lower head_position() and
// the next append would reuse positions and chain from the wrong hash.
//
// Thread-safety: purge_runs may run beside appends, readers and other purges on the same store;
// it holds the write lock only for step 4. A concurrent append to a selected run makes it fail
// with ConcurrencyError (run it again, with a new archive path). Cost: the archive is written
// by streaming; memory holds one position, stream and hash per purged event.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "annals/events/codec.hpp"
#include "annals/events/event.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

struct PurgeOptions {
  std::string tenant_id{};      // required
  Timestamp before{};           // runs whose RunCreated.created_at is strictly earlier are purged
  std::string archive_path{};   // required; must not exist yet
  std::string manifest_path{};  // empty: archive_path + ".manifest.json"; must not exist yet
  // Decodes RunCreated; give it the upcasters older RunCreated schema versions need.
  EventTypeRegistry registry{};
  // How the archive shows payloads as JSON (ExportOptions::payload_json).
  std::function<std::optional<std::string>(const RecordedEvent&)> payload_json =
      workflow_payload_json;
  // Source of purged_at; the system clock when empty.
  std::function<Timestamp()> clock{};
};

struct PurgeResult {
  std::uint64_t purge_id = 0;  // the annals_purges row; 0 when nothing matched
  std::uint64_t streams = 0;   // runs purged
  std::uint64_t events = 0;    // events removed from the log
  std::uint64_t first_position = 0, last_position = 0;  // of the removed events; 0 if none
  std::string archive_sha256{};                         // lowercase hex of the archive file
  std::string manifest_sha256{};                        // lowercase hex of the manifest file
  std::string archive_path{}, manifest_path{};
  std::vector<std::string> stream_ids{};  // the purged streams, in position order of creation
  std::vector<std::string> held_back{};   // matching streams kept because they hold the head
  Timestamp purged_at{};
};

// Purges as described above. A purge that matches nothing still writes an (empty) archive and
// its manifest, records nothing and returns purge_id 0: a record would claim removals that did
// not happen, and a no-op should not take the write lock.
// Throws InvalidArgument for an empty tenant or archive path, an archive or manifest file that
// already exists (never overwritten: it may be the only copy of an earlier purge); StoreError when a file cannot be written, synced or read back as written
// (a missing directory included) or the store fails; ConcurrencyError when a selected run got
// new events or lost some before the final transaction; IntegrityError if the log's append-only
// trigger is missing; SerializationError if a RunCreated does not decode. On any exception
// nothing was removed from the store; the archive and manifest files written so far are left
// in place for inspection (delete them before running the purge again with the same paths).
// On PostgreSQL the final transaction switches the delete trigger off and on again with ALTER
// TABLE, which holds annals_events' ACCESS EXCLUSIVE lock until it commits: readers of the log
// wait for that transaction (appends wait for every write transaction anyway).
PurgeResult purge_runs(SqlEventStore& store, const PurgeOptions& options);

struct PurgeArchiveVerification {
  std::uint64_t purge_id = 0;  // the purge this archive belongs to; 0 for an empty archive
  std::uint64_t events = 0;
  std::uint64_t first_position = 0, last_position = 0;
  std::string archive_sha256{};
};

// Checks an archive file against the store's record of its purge: every line parses, each
// event re-chains (SHA-256 of the hash before its position, from the log or from a purge
// record, and its canonical encoding) to its own hash, that hash is the one recorded for its
// position, all lines belong to one purge, that purge's every position is in the file, and
// the file's SHA-256 is the one recorded. An empty file (a purge that matched nothing) passes
// with events 0. Throws IntegrityError (position() is the first archived position that does
// not match, 0 when the fault is not one position's) otherwise; StoreError if the file or the
// store cannot be read. Read-only; safe beside anything.
[[nodiscard]] PurgeArchiveVerification verify_purge_archive(const SqlEventStore& store,
                                                            const std::string& archive_path);

struct PurgedPosition {
  std::uint64_t position = 0;
  EventHash hash{};  // the removed event's own hash: the chain continues from it
  std::uint64_t purge_id = 0;
};

// The recorded removals of positions first..last (inclusive), ascending; empty when none (also
// when no purge ever ran). For readers that walk positions: a gap is legitimate exactly when
// every position in it is returned here (verify_log uses it; projections replaying the log
// should too). Throws StoreError if the query fails.
[[nodiscard]] std::vector<PurgedPosition> purged_positions(SqlSession& sql, std::uint64_t first,
                                                           std::uint64_t last);

// IntegrityError if a purge record lists another number of removed events than it says it
// removed (a record altered after the fact). verify_log calls it first.
void check_purge_records(SqlSession& sql);

// True if every position from first to last (inclusive) was removed by a recorded purge: a gap
// a reader walking the log may step over. True for an empty range (first > last).
[[nodiscard]] bool purged_range(SqlSession& sql, std::uint64_t first, std::uint64_t last);

}  // namespace annals
