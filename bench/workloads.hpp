#pragma once

// The workloads W1-W8 of issue 5, each as an annals side and a raw-SQLite side doing the
// equivalent SQL work; with a PostgreSQL server (Options::pg), W1, W2, W3, W5 and W7 again with
// annals on PostgreSQL (W1-PG, ...), against the same raw-SQLite baseline; with wrk
// (Options::wrk), W9: the runs endpoint of annals serve under load. Not installed.

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace annals::bench {

struct Workload {
  std::string name;
  std::string description;
  std::string unit;
  std::string target;
  std::string note;
  bool paged = false;  // W7: value = deep page time, secondary = first page time
  // Builds the workload's template databases, if it has any; runs in the parent (which forks
  // for the work) before the repetitions.
  std::function<void()> prepare;
  // One measurement of each side, on fresh files under the work directory; run in a child.
  std::function<Sample()> annals;
  std::function<Sample()> baseline;
  // W4: secondary = a load from a snapshot, tertiary = a 10-event load (when snapshots exist)
  bool snapshot = false;
  // W8: secondary = the store's average group-commit size (appends per transaction)
  bool group_stats = false;
  // Where annals' side runs: "sqlite" (the durability column is SQLite's synchronous setting)
  // or "postgresql" (the server's settings; the baseline is still the raw SQLite one).
  std::string backend = "sqlite";
  // Repetitions of this workload when --repetitions is not given (0: the scale's default).
  std::size_t repetitions = 0;
  // W9: annals' Sample::extra holds wrk's figures, the baseline's secondary its deep page.
  bool serve = false;
};

// Every workload at the options' scale, working under `dir`.
[[nodiscard]] std::vector<Workload> make_workloads(const Options& options,
                                                   const std::filesystem::path& dir);

}  // namespace annals::bench
