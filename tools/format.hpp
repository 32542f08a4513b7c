#pragma once

// Helpers the annals program's commands share: where the store is, reading times from the
// command line, and showing runs as tables or JSON.

#include <annals/annals.hpp>
#include <filesystem>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"

namespace annals::cli {

// The store URI the target names: "sqlite:" + --db, or --uri. InvalidArgument unless exactly
// one of them is given.
[[nodiscard]] std::string store_uri(const Target& target);

// The file of a "sqlite:<path>[?options]" URI; nullopt for other schemes.
[[nodiscard]] std::optional<std::filesystem::path> sqlite_file(std::string_view uri);

// store_uri() for commands that only read: StoreError (exit 3) if the SQLite file does not exist,
// so that reading never creates a database.
[[nodiscard]] std::string existing_store_uri(const Target& target);

// "2026-11-21T09:30:00Z", "2026-11-21T09:30:00.123456Z", with an optional "+HH:MM"/"-HH:MM"
// offset instead of Z, or integer microseconds since the epoch. InvalidArgument otherwise.
[[nodiscard]] Timestamp parse_time(std::string_view text);

[[nodiscard]] nlohmann::ordered_json to_json(const WorkflowRunView& run);
[[nodiscard]] nlohmann::ordered_json to_json(const InfiniteScrollPagination<WorkflowRunView>& page);
[[nodiscard]] nlohmann::ordered_json to_json(const WorkflowRunState& state);
[[nodiscard]] nlohmann::ordered_json optional_time(const std::optional<Timestamp>& t);

// A fixed-width table of runs, with a header line.
void print_runs_table(std::ostream& out, const std::vector<WorkflowRunView>& runs);

// "1.2 MiB" and the like.
[[nodiscard]] std::string human_bytes(std::uintmax_t bytes);

}  // namespace annals::cli
