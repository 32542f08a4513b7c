#pragma once

// Driving wrk (Debian's wrk 4.1, https://github.com/wg/wrk) from the benchmark: find the
// program, run it against a loopback URL, and read its --latency report. The parser is strict:
// a report it does not recognise line by line, a run with non-2xx/3xx responses or socket
// errors, or a run that made no request is an error naming what was found. Not installed.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace annals::bench::wrk {

// What one wrk run measured.
struct Report {
  unsigned threads = 0, connections = 0;  // as wrk printed them
  std::uint64_t requests = 0;             // completed requests
  double requests_per_second = 0;         // "Requests/sec:"
  double p50_us = 0, p99_us = 0;          // from "Latency Distribution"
};

// Parses the standard output (with standard error merged in) of
//   wrk -t T -c C -d D --latency [-H ...] URL
// Throws std::runtime_error naming the offending line when the text is not such a report, when
// it reports "Non-2xx or 3xx responses" or "Socket errors", or when it counted no request.
[[nodiscard]] Report parse(std::string_view output);

// wrk's path: the first executable "wrk" on PATH; nullopt when there is none.
[[nodiscard]] std::optional<std::filesystem::path> find();

struct Run {
  std::filesystem::path program;  // find()'s answer
  unsigned threads = 1, connections = 1;
  unsigned seconds = 2;              // -d
  std::vector<std::string> headers;  // each passed as -H
  std::string url;                   // loopback only: http://127.0.0.1:PORT/...
};

// Runs wrk (without a shell) and parses its output; also checks that wrk reports the threads
// and connections asked for. Throws std::runtime_error with wrk's output when it exits with a
// failure status, does not finish within seconds + 60 s (it is then killed), or parse() fails.
[[nodiscard]] Report run(const Run& run);

}  // namespace annals::bench::wrk
