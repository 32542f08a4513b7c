#pragma once

// Projection checkpoints: how far each projection has applied the log, in the table
// annals_projections beside its read tables. Written only in the transaction that writes the
// projection's rows.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/events/event.hpp"
#include "annals/store/sql.hpp"

namespace annals {

struct ProjectionCheckpoint {
  std::string name;
  std::uint32_t version = 0;     // of the projection that wrote the tables
  std::uint64_t position = 0;    // last log position applied (0: none)
  std::uint64_t generation = 0;  // how many rebuilds replaced its tables
  Timestamp updated_at{};

  friend bool operator==(const ProjectionCheckpoint&, const ProjectionCheckpoint&) = default;
};

// Creates annals_projections if missing.
void ensure_checkpoint_table(SqlSession& sql);
// The checkpoint of `name`, or nullopt if it never ran.
[[nodiscard]] std::optional<ProjectionCheckpoint> read_checkpoint(SqlSession& sql,
                                                                  std::string_view name);
// Inserts or replaces the checkpoint.
void write_checkpoint(SqlSession& sql, const ProjectionCheckpoint& checkpoint);
// Every checkpoint, by name.
[[nodiscard]] std::vector<ProjectionCheckpoint> list_checkpoints(SqlSession& sql);

}  // namespace annals
