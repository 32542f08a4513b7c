#pragma once

// Helpers the annals program's commands share: whether the store exists, and showing runs as
// tables or JSON. Reading option values (URIs, times, numbers) is in args.hpp.

#include <annals/annals.hpp>
#include <annals/serve/views_json.hpp>
#include <filesystem>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "commands.hpp"

namespace annals::cli {

// store_uri() for commands that only read: StoreError (exit 3) if the SQLite file does not exist,
// or if the PostgreSQL database holds no annals store in its current schema, so that reading
// never creates a store.
[[nodiscard]] std::string existing_store_uri(const Target& target);

// Runs, pages and states as JSON: the same shape `annals serve` answers with.
using annals::serve::optional_time;
using annals::serve::to_json;

// A new key for the tenant (KeyRing::generate_key), its hash line appended to the keys file
// (created with mode 0600 if missing). Returns the key, which is stored nowhere else.
// InvalidArgument for a bad tenant id, or if the file does not parse as a keys file with the line
// added (nothing is written then); StoreError if the file cannot be read or written.
[[nodiscard]] std::string add_key_to_file(const std::filesystem::path& file,
                                          std::string_view tenant);

// A fixed-width table of runs, with a header line.
void print_runs_table(std::ostream& out, const std::vector<WorkflowRunView>& runs);

// "1.2 MiB" and the like.
[[nodiscard]] std::string human_bytes(std::uintmax_t bytes);

}  // namespace annals::cli
