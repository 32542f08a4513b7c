#include "wrk.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace annals::bench::wrk {

namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("wrk: " + what); }

std::string shown(std::string_view line) {
  constexpr std::size_t kMax = 160;  // the harness passes at most 512 bytes of message back
  std::string out = "'" + std::string(line.substr(0, kMax)) + (line.size() > kMax ? "...'" : "'");
  return out;
}

// "167.00us", "8.40ms", "1.02s", "1.50m", "2.00h" (wrk's format_time_us) in microseconds.
double time_us(const std::string& number, const std::string& unit) {
  const double v = std::strtod(number.c_str(), nullptr);
  if (unit == "us") return v;
  if (unit == "ms") return v * 1e3;
  if (unit == "s") return v * 1e6;
  if (unit == "m") return v * 60e6;
  if (unit == "h") return v * 3600e6;
  fail("unknown time unit '" + unit + "'");
}

unsigned small_count(const std::string& digits, std::string_view line) {
  const unsigned long v = std::strtoul(digits.c_str(), nullptr, 10);
  if (digits.size() > 6) fail("implausible count in " + shown(line));
  return static_cast<unsigned>(v);
}

}  // namespace

Report parse(std::string_view output) {
  // The lines of `wrk --latency`, as wrk 4.1 prints them (src/wrk.c, src/units.c).
  static const std::regex running(R"(Running \S+ test @ \S+)");
  static const std::regex threads(R"((\d+) threads and (\d+) connections)");
  static const std::regex stats_head(R"(Thread Stats\s+Avg\s+Stdev\s+Max\s+\+/- Stdev)");
  static const std::regex stats_row(R"((Latency|Req/Sec)\s+\S+\s+\S+\s+\S+\s+\S+%)");
  static const std::regex percentile(R"((\d+)%\s+([0-9]+\.[0-9]+)(us|ms|s|m|h))");
  static const std::regex requests(R"((\d+) requests in \S+, \S+ read)");
  static const std::regex rate(R"(Requests/sec:\s+([0-9]+\.[0-9]+))");
  static const std::regex transfer(R"(Transfer/sec:\s+\S+)");

  Report report;
  bool seen_running = false, seen_threads = false, seen_distribution = false, seen_requests = false,
       seen_rate = false, seen_p50 = false, seen_p99 = false;
  std::size_t start = 0;
  while (start < output.size()) {
    const std::size_t end = std::min(output.find('\n', start), output.size());
    const std::string_view raw = output.substr(start, end - start);
    start = end + 1;
    const std::string line(trim(raw));
    if (line.empty()) continue;
    std::smatch m;
    if (line.rfind("Non-2xx or 3xx responses:", 0) == 0 || line.rfind("Socket errors:", 0) == 0) {
      fail("the run had failures: " + shown(line));
    }
    if (std::regex_match(line, running)) {
      seen_running = true;
    } else if (std::regex_match(line, m, threads)) {
      report.threads = small_count(m[1], line);
      report.connections = small_count(m[2], line);
      seen_threads = true;
    } else if (std::regex_match(line, stats_head) || std::regex_match(line, stats_row) ||
               std::regex_match(line, transfer)) {
      // the per-thread averages: not used
    } else if (line == "Latency Distribution") {
      seen_distribution = true;
    } else if (std::regex_match(line, m, percentile)) {
      if (!seen_distribution) fail("a percentile before 'Latency Distribution': " + shown(line));
      const double us = time_us(m[2], m[3]);
      if (m[1] == "50") {
        report.p50_us = us;
        seen_p50 = true;
      } else if (m[1] == "99") {
        report.p99_us = us;
        seen_p99 = true;
      } else if (m[1] != "75" && m[1] != "90") {
        fail("unexpected percentile " + shown(line));
      }
    } else if (std::regex_match(line, m, requests)) {
      report.requests = std::strtoull(m[1].str().c_str(), nullptr, 10);
      seen_requests = true;
    } else if (std::regex_match(line, m, rate)) {
      report.requests_per_second = std::strtod(m[1].str().c_str(), nullptr);
      seen_rate = true;
    } else {
      fail("unrecognised line in its report: " + shown(line));
    }
  }
  const auto need = [](bool seen, const char* what) {
    if (!seen)
      fail(std::string("its report has no ") + what + " (is it wrk 4.x run with --latency?)");
  };
  need(seen_running, "'Running ... test @ URL' line");
  need(seen_threads, "'N threads and N connections' line");
  need(seen_distribution && seen_p50 && seen_p99, "'Latency Distribution' with 50% and 99%");
  need(seen_requests, "'N requests in T, B read' line");
  need(seen_rate, "'Requests/sec:' line");
  if (report.requests == 0 || report.requests_per_second <= 0) {
    fail("the run completed no request (" + std::to_string(report.requests) + " requests)");
  }
  return report;
}

std::optional<std::filesystem::path> find() {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const std::size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    if (!dir.empty()) {
      const std::filesystem::path candidate = std::filesystem::path(dir) / "wrk";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string_view::npos) return std::nullopt;
    dirs.remove_prefix(colon + 1);
  }
}

Report run(const Run& r) {
  if (r.url.rfind("http://127.0.0.1:", 0) != 0) {
    fail("refusing to run against '" + r.url + "': loopback (http://127.0.0.1:PORT) only");
  }
  std::vector<std::string> args{r.program.string(), "-t" + std::to_string(r.threads),
                                "-c" + std::to_string(r.connections),
                                "-d" + std::to_string(r.seconds) + "s", "--latency"};
  for (const std::string& h : r.headers) {
    args.push_back("-H");
    args.push_back(h);
  }
  args.push_back(r.url);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) fail("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (spawned != 0) {
    ::close(fds[0]);
    fail("cannot start " + r.program.string() + ": " + std::strerror(spawned));
  }

  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(r.seconds + 60);
  std::array<char, 4096> buffer{};
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fds[0], buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) fail("did not finish within " + std::to_string(r.seconds + 60) + " s; killed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail("exited with wait status " + std::to_string(status) + ": " +
         shown(trim(output.substr(0, 300))));
  }
  const Report report = parse(output);
  if (report.threads != r.threads || report.connections != r.connections) {
    fail("ran " + std::to_string(report.threads) + " threads and " +
         std::to_string(report.connections) + " connections; asked for " +
         std::to_string(r.threads) + " and " + std::to_string(r.connections));
  }
  return report;
}

}  // namespace annals::bench::wrk
