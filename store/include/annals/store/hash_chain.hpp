#pragma once

// The log's hash chain: every stored event carries
//   hash = SHA-256(previous event's hash || canonical encoding of the event)
// with 32 zero bytes before the first event. Editing, deleting, inserting or reordering any
// stored event changes every hash from there on, so a verifier that trusts one head hash can
// prove everything before it. docs/audit.md specifies the encoding byte for byte.
//
//   annals::LogVerification v = annals::verify_log(*store);   // IntegrityError if broken
//   std::cout << v.head_position << " " << annals::to_hex(v.head_hash);
//
// Thread-safety: the functions are thread-safe; verify_log reads the store like any reader.

#include <cstdint>
#include <string>

#include "annals/events/event.hpp"
#include "annals/store/event_store.hpp"

namespace annals {

// The canonical encoding of a stored event (everything but its hash): integers big-endian,
// strings and the payload as a 64-bit big-endian length followed by the bytes.
[[nodiscard]] std::string canonical_encoding(const RecordedEvent& event);

// SHA-256(previous || canonical_encoding(event)).
[[nodiscard]] EventHash chain_hash(const EventHash& previous, const RecordedEvent& event);

struct LogVerification {
  std::uint64_t events = 0;         // events checked
  std::uint64_t head_position = 0;  // the last position checked (0: empty log)
  EventHash head_hash{};            // its hash (zero for an empty log)
  std::uint64_t purged = 0;         // positions skipped because a purge recorded them
};

// Recomputes the chain over the whole log, page_size events at a time. Throws IntegrityError
// whose position() is the first position that is missing, out of place, or whose stored hash
// differs from the recomputed one; StoreError if the store cannot be read.
// On an SqlEventStore, positions removed by purge_runs (purge.hpp) are not missing: the chain
// continues from the hash recorded for each (the removed event's own), so what remains after a
// purge verifies; a missing position no purge recorded still fails there. Checking a purge's
// archive against its record is verify_purge_archive's job.
[[nodiscard]] LogVerification verify_log(const EventStore& store, std::size_t page_size = 4096);

}  // namespace annals
