#pragma once

// W9: the runs endpoint of `annals serve` under load. annals' side serves a copy of W7's
// dataset with an in-process annals::serve::Server on 127.0.0.1 (a free port, one generated
// key) and drives it with wrk at 1 and 8 connections, for the first page and for a page deep in
// the table; the baseline runs the same keyset page query on the same data in-process with the
// sqlite3 C API. Not installed.

#include <cstddef>
#include <filesystem>
#include <string>

#include "harness.hpp"

namespace annals::bench::serve_load {

struct Config {
  std::filesystem::path wrk;  // wrk::find()'s answer
  unsigned seconds = 2;       // wrk -d, per run (four runs per repetition)
  std::size_t runs = 0;       // runs in the dataset (W7's)
  std::size_t depth = 0;      // the deep page starts at this row (0-based, newest first)
  std::size_t page_size = 20;
  double baseline_seconds = 0.3;  // how long the baseline repeats each query
};

// Sample::extra of annals' side, in this order; Sample::value is kFirst1Rps.
enum Figure : std::size_t {
  kFirst1Rps,  // first page, 1 connection (wrk -t1 -c1): requests/s
  kFirst1P99,  // ... and its 99th percentile latency, microseconds
  kDeep1Rps,
  kDeep1P99,
  kFirst8Rps,  // 8 connections (wrk -t2 -c8)
  kFirst8P99,
  kDeep8Rps,
  kDeep8P99,
  kFigures
};
static_assert(kFigures == Sample::Extra{}.size());

// The query string of the runs endpoint's page: "/v1/apps/app-1/workflow-runs?..." with
// last_id for the deep page.
[[nodiscard]] std::string target(const Config& config, bool deep);

// annals' side, on the store at `uri` (a copy of W7's dataset). Checks first that both pages
// answer 200 with the expected rows and that a request without the key is a 401; throws
// std::runtime_error if not, or if a wrk run fails (wrk::run).
[[nodiscard]] Sample measure_server(const std::string& uri, const Config& config);

// The baseline, on the SQLite file `file` (a copy of the same dataset): the repository's keyset
// page query (and, for the deep page, its cursor lookup) with prepared statements, the rows
// materialized into strings. value = first-page queries/s, secondary = deep-page queries/s.
[[nodiscard]] Sample measure_raw(const std::filesystem::path& file, bool synchronous_full,
                                 const Config& config);

}  // namespace annals::bench::serve_load
