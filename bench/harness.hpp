#pragma once

// The benchmark harness: what a measurement is, how it is run (each in a forked child, so its
// peak RSS is its own), and how the results are summarised and printed. Not installed.

#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <vector>

namespace annals::bench {

enum class Scale { small, full };

struct Options {
  Scale scale = Scale::small;
  bool synchronous_full = false;  // --synchronous full
  std::vector<std::string> only;  // workload names; empty: all
  std::size_t repetitions = 0;    // 0: the scale's default
  bool json = false;
  std::filesystem::path dir{};  // where the temp directory goes; empty: the system's
  // PostgreSQL rows: the server (--pg or ANNALS_BENCH_PG; empty: no PostgreSQL rows), the
  // prefix of the schemas they work in, and how the server makes commits durable.
  std::string pg{};
  std::string pg_schema_prefix{};
  std::string pg_durability{};
  std::filesystem::path wrk{};  // W9's load generator; empty: W9 is skipped
};

// One timed run of one side of a workload.
struct Sample {
  double value = 0;        // the figure, in the workload's unit
  double secondary = 0;    // W7: the first page's time; W4: a load with a snapshot (us);
                           // W8: the average group-commit size
  double tertiary = 0;     // W4: a 10-event load (us)
  double peak_rss_mb = 0;  // the measuring process's peak resident set
  // W9: wrk's figures (serve_load::Figure); a fixed array, so a Sample stays a plain value the
  // harness can pass back through a pipe.
  using Extra = std::array<double, 8>;
  Extra extra{};
};

// Thrown by run_in_child() once SIGINT or SIGTERM arrived (see stop_on_signals()).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// Makes SIGINT and SIGTERM stop the run cleanly: the measuring child is killed and
// run_in_child() throws Interrupted, so the caller can remove its files and exit.
void stop_on_signals();

// Runs fn in a forked child and returns what it measured, with the child's peak RSS.
// Throws std::runtime_error with the child's message if fn threw or the child died.
// The calling process must not hold SQLite connections or threads across this call.
Sample run_in_child(const std::function<Sample()>& fn);

// Seconds on the monotonic clock.
double now_seconds();

// Seconds per call of fn, calling it until at least min_seconds passed (and at least once).
template <class Fn>
double seconds_per_call(Fn&& fn, double min_seconds) {
  std::size_t calls = 0;
  const double start = now_seconds();
  double elapsed = 0;
  do {
    fn();
    ++calls;
    elapsed = now_seconds() - start;
  } while (elapsed < min_seconds);
  return elapsed / static_cast<double>(calls);
}

// A directory that is removed with everything in it when this object goes.
class TempDir {
 public:
  explicit TempDir(const std::filesystem::path& parent);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// Copies an SQLite file (and its -wal, if any) to a fresh name.
void copy_database(const std::filesystem::path& from, const std::filesystem::path& to);
// Removes an SQLite file and its -wal and -shm.
void remove_database(const std::filesystem::path& file);

struct Summary {
  double median = 0, min = 0, max = 0;
};
[[nodiscard]] Summary summarize(std::vector<double> values);

// One workload's results, as printed.
struct Result {
  std::string name;
  std::string description;
  std::string unit;
  std::string target;
  std::string durability;
  Summary annals{}, baseline{};
  double ratio = 0;
  double peak_rss_mb = 0, baseline_peak_rss_mb = 0;  // max over the repetitions
  std::size_t repetitions = 0;
  std::string note;
  // W7 only: first-page times and the OFFSET query's deep/first.
  bool paged = false;
  double annals_first = 0, baseline_first = 0, offset_ratio = 0;
  // W4 only, when the snapshot API exists: a load from a snapshot against a 10-event load.
  bool snapshot = false;
  double snapshot_load_us = 0, ten_event_load_us = 0, snapshot_ratio = 0;
  // W8 only: appends per transaction in annals' store (median over the repetitions).
  bool group_stats = false;
  double average_group = 0;
  std::string backend = "sqlite";  // where annals' side ran: "sqlite" or "postgresql"
  // W9 only: wrk's figures (median [min-max] of each, in serve_load::Figure order) and the
  // baseline's deep-page queries/s; ratio is then the 1-connection first page over the
  // baseline's first page.
  bool serve = false;
  std::array<Summary, 8> serve_figures{};
  double baseline_deep = 0;
};

// `postgresql`: what the PostgreSQL rows ran against, or why there are none ("skipped: ...");
// `serve`: the wrk W9 ran with, or why it was skipped.
void print_table(std::ostream& out, const std::vector<Result>& results, const std::string& scale,
                 const std::string& synchronous, const std::string& postgresql,
                 const std::string& serve);
void print_json(std::ostream& out, const std::vector<Result>& results, const std::string& scale,
                const std::string& synchronous, const std::string& postgresql,
                const std::string& serve);

}  // namespace annals::bench
