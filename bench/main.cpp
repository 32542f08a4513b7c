// annals_bench: each workload of issue 5 against annals and against a raw-SQLite baseline, in
// the same run, interleaved, each measurement in its own child process on fresh files.
// Command-line parsing lives here only (the one translation unit that includes CLI11).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <unistd.h>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"
#include "pg_admin.hpp"
#include "workloads.hpp"
#include "wrk.hpp"

namespace {

using namespace annals::bench;

Result measure(const Workload& w, const Options& options, std::size_t repetitions,
               const std::filesystem::path& dir) {
  std::vector<double> annals, baseline, annals_first, baseline_first, annals_third;
  std::array<std::vector<double>, Sample::Extra{}.size()> extra;
  Result r;
  if (options.repetitions == 0 && w.repetitions != 0) repetitions = w.repetitions;
  w.prepare();
  for (std::size_t rep = 0; rep < repetitions; ++rep) {
    const Sample b = run_in_child(w.baseline);
    const Sample a = run_in_child(w.annals);
    remove_database(dir / "rep.annals.db");
    remove_database(dir / "rep.raw.db");
    baseline.push_back(b.value);
    annals.push_back(a.value);
    baseline_first.push_back(b.secondary);
    annals_first.push_back(a.secondary);
    annals_third.push_back(a.tertiary);
    for (std::size_t i = 0; i < extra.size(); ++i) extra[i].push_back(a.extra[i]);
    r.peak_rss_mb = std::max(r.peak_rss_mb, a.peak_rss_mb);
    r.baseline_peak_rss_mb = std::max(r.baseline_peak_rss_mb, b.peak_rss_mb);
  }
  r.name = w.name;
  r.description = w.description;
  r.unit = w.unit;
  r.target = w.target;
  r.note = w.note;
  r.backend = w.backend;
  r.durability = w.backend == "postgresql"
                     ? options.pg_durability
                     : (options.synchronous_full ? "synchronous=FULL, WAL" : "synchronous=NORMAL, WAL");
  r.repetitions = repetitions;
  r.annals = summarize(annals);
  r.baseline = summarize(baseline);
  r.paged = w.paged;
  if (w.paged) {
    r.annals_first = summarize(annals_first).median;
    r.baseline_first = summarize(baseline_first).median;
    r.ratio = r.annals_first > 0 ? r.annals.median / r.annals_first : 0;
    r.offset_ratio = r.baseline_first > 0 ? r.baseline.median / r.baseline_first : 0;
  } else {
    r.ratio = r.baseline.median > 0 ? r.annals.median / r.baseline.median : 0;
  }
  if (w.snapshot) {
    r.snapshot = true;
    r.snapshot_load_us = summarize(annals_first).median;
    r.ten_event_load_us = summarize(annals_third).median;
    r.snapshot_ratio = r.ten_event_load_us > 0 ? r.snapshot_load_us / r.ten_event_load_us : 0;
  }
  if (w.group_stats) {
    r.group_stats = true;
    r.average_group = summarize(annals_first).median;
  }
  if (w.serve) {
    r.serve = true;
    for (std::size_t i = 0; i < extra.size(); ++i) r.serve_figures[i] = summarize(extra[i]);
    r.baseline_deep = summarize(baseline_first).median;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "annals_bench: the workloads W1-W9 against annals and against raw SQLite (prepared "
      "statements, an event-shaped table, WAL, the same synchronous setting), interleaved in "
      "one run. Each figure is the median of the repetitions, with min and max."};
  app.name("annals_bench");
  Options options;
  std::string scale = "small", synchronous = "normal", only;
  app.add_option("--scale", scale, "small: a quick smoke run; full: the sizes of issue 5")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "full"}));
  app.add_option("--synchronous", synchronous, "SQLite's synchronous setting for both sides")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "full"}));
  app.add_option("--only", only, "comma-separated workloads to run, e.g. W1,W3");
  app.add_option("--repetitions", options.repetitions,
                 "repetitions per workload (default: 3 small, 5 full; W9 1 small, 3 full)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  app.add_flag("--json", options.json, "print a JSON document instead of the table");
  app.add_option("--dir", options.dir,
                 "directory for the temporary databases (default: the system's temp directory)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--pg", options.pg,
                 "libpq connection string of a PostgreSQL server where the benchmark may create "
                 "schemas: adds the rows W1-PG, W2-PG, W3-PG, W5-PG, W7-PG (default: "
                 "$ANNALS_BENCH_PG)");
  CLI11_PARSE(app, argc, argv);
  if (options.pg.empty()) {
    if (const char* env = std::getenv("ANNALS_BENCH_PG"); env != nullptr) options.pg = env;
  }

  options.scale = scale == "full" ? Scale::full : Scale::small;
  options.synchronous_full = synchronous == "full";
  const std::size_t repetitions =
      options.repetitions != 0 ? options.repetitions : (options.scale == Scale::full ? 5 : 3);
  for (std::size_t start = 0; !only.empty() && start <= only.size();) {
    const std::size_t comma = std::min(only.find(',', start), only.size());
    std::string name = only.substr(start, comma - start);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!name.empty()) options.only.push_back(name);
    start = comma + 1;
  }

  stop_on_signals();
  std::string postgresql = "PostgreSQL rows skipped: no --pg given";
  if (!options.pg.empty()) {
    if (!pg::available()) {
      std::cerr << "annals_bench: --pg given, but this build has no libpq\n";
      return 2;
    }
    try {
      // annals' synchronous option on PostgreSQL: full is synchronous_commit=on, normal off.
      options.pg_durability = pg::describe_server(options.pg) +
                              (options.synchronous_full ? ", synchronous_commit=on"
                                                        : ", synchronous_commit=off");
    } catch (const std::exception& e) {
      std::cerr << "annals_bench: --pg: " << e.what() << '\n';
      return 2;
    }
    options.pg_schema_prefix = "annals_bench_" + std::to_string(static_cast<long>(::getpid())) + "_";
    postgresql = "PostgreSQL rows: " + options.pg_durability + "; each in schemas " +
                 options.pg_schema_prefix + "*, dropped at the end";
  }
  std::cerr << postgresql << std::endl;
  // W9 needs wrk (Debian's package wrk; scripts/install-deps.sh installs it).
  std::string serve;
  if (const std::optional<std::filesystem::path> wrk = wrk::find()) {
    options.wrk = *wrk;
    serve = "W9 (annals serve under load): wrk at " + wrk->string();
  } else {
    serve = "W9 (annals serve under load) skipped: wrk not found on PATH (apt-get install wrk)";
  }
  std::cerr << serve << std::endl;
  // Drops the PostgreSQL rows' schemas however the run ends.
  struct DropSchemas {
    const Options& options;
    ~DropSchemas() {
      if (options.pg.empty()) return;
      try {
        pg::drop_schemas(options.pg, options.pg_schema_prefix);
      } catch (const std::exception& e) {
        std::cerr << "annals_bench: could not drop the schemas " << options.pg_schema_prefix
                  << "*: " << e.what() << '\n';
      }
    }
  } drop_schemas{options};
  try {
    const TempDir dir(options.dir.empty() ? std::filesystem::temp_directory_path() : options.dir);
    std::vector<Workload> workloads = make_workloads(options, dir.path());
    for (const std::string& name : options.only) {
      if (name == "W9" && options.wrk.empty()) continue;  // skipped: the serve line says why
      if (std::none_of(workloads.begin(), workloads.end(),
                       [&](const Workload& w) { return w.name == name; })) {
        std::cerr << "annals_bench: unknown workload '" << name << "' (W1..W9, W8-NOGC"
                  << (options.pg.empty() ? "" : "; W1-PG, W2-PG, W3-PG, W5-PG, W7-PG") << ")\n";
        return 2;
      }
    }
    std::vector<Result> results;
    int status = 0;
    const double start = now_seconds();
    for (const Workload& w : workloads) {
      if (!options.only.empty() &&
          std::find(options.only.begin(), options.only.end(), w.name) == options.only.end()) {
        continue;
      }
      std::cerr << "[" << static_cast<long>(now_seconds() - start) << " s] " << w.name << ": "
                << w.description << std::endl;
      try {
        const double began = now_seconds();
        results.push_back(measure(w, options, repetitions, dir.path()));
        const Result& r = results.back();
        std::cerr << "    annals " << r.annals.median << " [" << r.annals.min << ", "
                  << r.annals.max << "], baseline " << r.baseline.median << " [" << r.baseline.min
                  << ", " << r.baseline.max << "] " << r.unit << ", ratio " << r.ratio
                  << (r.paged ? ", OFFSET deep/first " + std::to_string(r.offset_ratio) : "")
                  << ", peak RSS " << r.peak_rss_mb << " MB (" << (now_seconds() - began) << " s)"
                  << std::endl;
      } catch (const Interrupted&) {
        std::cerr << "annals_bench: interrupted during " << w.name << "; printing what finished\n";
        status = 130;
        break;
      } catch (const std::exception& e) {
        std::cerr << "annals_bench: " << w.name << " failed: " << e.what() << '\n';
        status = 1;
      }
    }
    if (options.json) {
      print_json(std::cout, results, scale, synchronous, postgresql, serve);
    } else {
      print_table(std::cout, results, scale, synchronous, postgresql, serve);
    }
    return status;
  } catch (const std::exception& e) {
    std::cerr << "annals_bench: " << e.what() << '\n';
    return 1;
  }
}
