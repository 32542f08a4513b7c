#pragma once

// "Stored data is byte-for-byte unchanged", made precise for the hostile-input tests.
//
//   auto before = annals::test::DatabaseImage::capture(path);
//   CHECK_THROWS_AS(call_with_bad_input(), annals::InvalidArgument);
//   REQUIRE_THAT(DatabaseImage::capture(path), SameImage(before));   // or difference()
//
// A DatabaseImage of an SQLite file holds
//   - `dump`: PRAGMA application_id and user_version, every row of sqlite_schema (type, name,
//     table, SQL) in name order, then for every table in name order every row (ordered by all
//     its columns) and every column as its storage class and exact bytes (integers in decimal,
//     reals as %.17g, text and blobs as length-prefixed raw bytes, NULL as N);
//   - `file`: the bytes of the main database file after a PRAGMA wal_checkpoint(TRUNCATE) on a
//     separate connection, so every committed change is in the main file and the WAL is empty.
//     The checkpoint itself writes nothing when nothing was committed since the last one.
// Two images are equal when both are. capture() fails (throws std::runtime_error) if the file
// cannot be opened or the checkpoint does not complete (a reader in the way), so a test never
// compares a half-checkpointed file.
//
// file_bytes(path) is the plain byte comparison for files that are not databases (a truncated
// or foreign file the store refused to open must be left exactly as it was).

#include <string>

namespace annals::test {

struct DatabaseImage {
  std::string dump;
  std::string file;

  [[nodiscard]] static DatabaseImage capture(const std::string& path);

  friend bool operator==(const DatabaseImage&, const DatabaseImage&) = default;
};

// "" when equal; otherwise where they first differ (dump offset with a little context, or the
// file offset), for a failure message.
[[nodiscard]] std::string difference(const DatabaseImage& before, const DatabaseImage& after);

// The whole file, or std::runtime_error if it cannot be read.
[[nodiscard]] std::string file_bytes(const std::string& path);

}  // namespace annals::test
