#pragma once

// The annals program's commands, one function each, free of any command-line parsing (main.cpp
// parses with CLI11 and calls these). Each writes its results to `out`, its progress and
// diagnostics to `err`, and returns the process exit code; errors it does not handle itself are
// annals exceptions, which exit_code_for() maps to an exit code.
//
// Exit codes: 0 success, 1 verification failed (IntegrityError), 2 bad usage (InvalidArgument
// and command-line errors), 3 store error (StoreError, NotFound and anything else).

#include <cstddef>
#include <cstdint>
#include <exception>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace annals::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitVerificationFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitStoreError = 3;

// Where the store is: exactly one of --db PATH (an SQLite file) or --uri URI.
struct Target {
  std::string db{};
  std::string uri{};
  bool json = false;  // --json: machine-readable output
};

struct DemoArgs {
  Target target{};
  std::size_t runs = 200;
  std::uint64_t seed = 42;
  // Where the demo key's hash goes (for `annals serve`); unset: "<db>.keys" with --db, and no
  // key with --uri.
  std::optional<std::string> keys{};
  std::string program = "annals";  // how to call this program in the command the demo prints
};

// `annals serve`: the HTTP read API and the audit viewer (docs/serve.md).
struct ServeArgs {
  Target target{};
  std::string listen{};  // HOST:PORT, parse_listen()
  std::string keys{};    // the keys file, KeyRing::load()
  std::size_t threads = 4;
};

// `annals keys add`: a new key for a tenant, its hash appended to the keys file.
struct KeysAddArgs {
  std::string keys{};
  std::string tenant{};
};

struct RunsArgs {
  Target target{};
  std::string tenant{}, app{};
  std::string triggered_from = "app-run";
  std::size_t limit = 20;
  std::optional<std::string> last_id{};
};

struct RebuildArgs {
  Target target{};
  std::string projection = "workflow_runs";
  std::size_t batch_size = 1000;
};

struct ReplayArgs {
  Target target{};
  std::string stream{};
  std::optional<std::uint64_t> position{};
  std::optional<std::string> as_of{};  // ISO 8601 or integer microseconds since the epoch
};

struct VerifyArgs {
  Target target{};
  std::optional<std::string> checkpoint{};
  std::optional<std::string> key_file{};
  std::vector<std::string> archives{};  // purge archives to check against their purge records
};

struct ExportArgs {
  Target target{};
  std::optional<std::string> output{};  // stdout when unset
  std::uint64_t from = 1;
};

struct ImportArgs {
  Target target{};
  std::optional<std::string> input{};  // stdin when unset
};

struct PurgeArgs {
  Target target{};
  std::string tenant{};
  std::string before{};  // as parse_time() reads it
  std::string archive{};
  std::optional<std::string> manifest{};
};

int demo(const DemoArgs& options, std::ostream& out, std::ostream& err);
int stats(const Target& target, std::ostream& out, std::ostream& err);
int runs(const RunsArgs& options, std::ostream& out, std::ostream& err);
int rebuild(const RebuildArgs& options, std::ostream& out, std::ostream& err);
int replay(const ReplayArgs& options, std::ostream& out, std::ostream& err);
int verify(const VerifyArgs& options, std::ostream& out, std::ostream& err);
int export_events(const ExportArgs& options, std::ostream& out, std::ostream& err);
int import_events(const ImportArgs& options, std::ostream& out, std::ostream& err);
int purge(const PurgeArgs& options, std::ostream& out, std::ostream& err);
// Serves until SIGINT or SIGTERM, then exits 0. Prints one line when listening (with the real
// port when --listen gave port 0) and one when stopping, each flushed at once.
int serve(const ServeArgs& options, std::ostream& out, std::ostream& err);
// Prints the new key (only to `out`, once) and says on `err` where its hash went.
int keys_add(const KeysAddArgs& options, std::ostream& out, std::ostream& err);

// Prints "annals <command>: <what>" to err and returns the exit code for the exception.
int report_error(std::string_view command, std::exception_ptr error, std::ostream& err) noexcept;

}  // namespace annals::cli
