#include "harness.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace annals::bench {

namespace {

volatile sig_atomic_t g_interrupted = 0;

void on_signal(int) { g_interrupted = 1; }

// What a child writes back through its pipe: the sample, then an error message if it failed.
struct Report {
  Sample sample;
  int failed = 0;
  std::array<char, 512> message{};
};

void write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR && g_interrupted == 0) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

double peak_rss_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text.data();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

// Throughputs as integers with thousands separators; small values with a few decimals.
std::string figure(double v) {
  if (v >= 1000) {
    std::string digits = std::to_string(static_cast<long long>(v + 0.5));
    std::string out;
    const int n = static_cast<int>(digits.size());
    for (int i = 0; i < n; ++i) {
      if (i > 0 && (n - i) % 3 == 0) out += ',';
      out += digits[static_cast<std::size_t>(i)];
    }
    return out;
  }
  return fixed(v, v >= 100 ? 0 : (v >= 10 ? 1 : 2));
}

std::string range(const Summary& s) {
  return figure(s.median) + " [" + figure(s.min) + "-" + figure(s.max) + "]";
}

}  // namespace

Sample run_in_child(const std::function<Sample()>& fn) {
  if (g_interrupted != 0) throw Interrupted();
  std::array<int, 2> fds{};
  if (::pipe(fds.data()) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::close(fds[0]);
    Report report;
    try {
      report.sample = fn();
      report.sample.peak_rss_mb = peak_rss_mb();
    } catch (const std::exception& e) {
      report.failed = 1;
      std::snprintf(report.message.data(), report.message.size(), "%s", e.what());
    } catch (...) {
      report.failed = 1;
      std::snprintf(report.message.data(), report.message.size(), "unknown exception");
    }
    write_all(fds[1], &report, sizeof report);
    ::close(fds[1]);
    std::fflush(nullptr);
    ::_exit(0);  // no destructors or atexit handlers of the parent's state in the child
  }
  ::close(fds[1]);
  Report report;
  const bool complete = read_all(fds[0], &report, sizeof report);
  ::close(fds[0]);
  if (g_interrupted != 0) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (g_interrupted != 0) throw Interrupted();
  if (!complete) {
    throw std::runtime_error("the measuring child died (wait status " + std::to_string(status) +
                             ")");
  }
  if (report.failed != 0) throw std::runtime_error(report.message.data());
  return report.sample;
}

void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a read of a child's pipe returns EINTR
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

TempDir::TempDir(const std::filesystem::path& parent) {
  std::string pattern = (parent / "annals_bench.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot create a temporary directory under " + parent.string());
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void copy_database(const std::filesystem::path& from, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  remove_database(to);
  fs::copy_file(from, to);
  const fs::path wal = from.string() + "-wal";
  if (fs::exists(wal)) fs::copy_file(wal, to.string() + "-wal");
}

void remove_database(const std::filesystem::path& file) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(file.string() + suffix, ignored);
  }
}

Summary summarize(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {median, values.front(), values.back()};
}

void print_table(std::ostream& out, const std::vector<Result>& results, const std::string& scale,
                 const std::string& synchronous, const std::string& postgresql,
                 const std::string& serve) {
  out << "annals_bench  scale=" << scale << "  synchronous=" << synchronous
      << "  date=" << utc_now() << '\n'
      << "figures: median [min-max] of " << (results.empty() ? 0 : results.front().repetitions)
      << " repetitions (W9: of its own count); ratio = annals/baseline (W7: annals deep/first "
         "page)\n\n";
  const std::array<std::string, 8> head{"id",    "unit",   "annals", "baseline",
                                        "ratio", "target", "RSS MB", "durability"};
  std::vector<std::array<std::string, 8>> rows;
  rows.push_back(head);
  for (const Result& r : results) {
    rows.push_back({r.name, r.unit, range(r.annals), range(r.baseline), fixed(r.ratio, 2), r.target,
                    fixed(r.peak_rss_mb, 1) + " / " + fixed(r.baseline_peak_rss_mb, 1),
                    r.durability});
  }
  std::array<std::size_t, 8> width{};
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out << std::left << std::setw(static_cast<int>(width[i] + 2)) << row[i];
    }
    out << '\n';
  }
  out << '\n';
  for (const Result& r : results) {
    out << r.name << ": " << r.description << '\n';
    if (r.paged) {
      out << "    first page: annals " << figure(r.annals_first) << " us, OFFSET "
          << figure(r.baseline_first) << " us; deep/first: annals " << fixed(r.ratio, 2)
          << ", OFFSET " << fixed(r.offset_ratio, 2) << '\n';
    }
    if (r.snapshot) {
      out << "    with a snapshot: load " << figure(r.snapshot_load_us) << " us vs a 10-event load "
          << figure(r.ten_event_load_us) << " us: " << fixed(r.snapshot_ratio, 2)
          << "x (target <= 2x)\n";
    }
    if (r.group_stats) {
      out << "    appends per transaction (group commit): " << fixed(r.average_group, 2) << '\n';
    }
    if (r.serve) {
      // serve_load::Figure order: first/deep x 1/8 connections, each requests/s then p99 (us).
      const auto& f = r.serve_figures;
      const auto page = [&](std::size_t rps, const char* name) {
        return std::string(name) + " page " + range(f[rps]) + " req/s, p99 " +
               figure(f[rps + 1].median) + " us";
      };
      const auto ratio = [&](std::size_t rps, double baseline) {
        return fixed(baseline > 0 ? f[rps].median / baseline : 0, 3);
      };
      out << "    " << r.repetitions << " repetition(s); 1 connection: " << page(0, "first") << "; "
          << page(2, "deep") << '\n'
          << "    8 connections: " << page(4, "first") << "; " << page(6, "deep") << '\n'
          << "    raw SQLite keyset query in-process: first page " << figure(r.baseline.median)
          << " q/s, deep page " << figure(r.baseline_deep) << " q/s; HTTP/raw: 1 connection "
          << ratio(0, r.baseline.median) << " first, " << ratio(2, r.baseline_deep)
          << " deep; 8 connections " << ratio(4, r.baseline.median) << " first, "
          << ratio(6, r.baseline_deep) << " deep\n";
    }
    if (!r.note.empty()) out << "    " << r.note << '\n';
  }
  out << "RSS MB: peak resident set of the measuring child process, annals / baseline\n"
      << postgresql << '\n'
      << serve << '\n';
}

void print_json(std::ostream& out, const std::vector<Result>& results, const std::string& scale,
                const std::string& synchronous, const std::string& postgresql,
                const std::string& serve) {
  nlohmann::ordered_json doc;
  doc["workloads"] = nlohmann::ordered_json::array();
  for (const Result& r : results) {
    nlohmann::ordered_json w;
    w["name"] = r.name;
    w["description"] = r.description;
    w["unit"] = r.unit;
    w["backend"] = r.backend;
    w["annals"] = r.annals.median;
    w["baseline"] = r.baseline.median;
    w["ratio"] = r.ratio;
    w["min"] = r.annals.min;
    w["max"] = r.annals.max;
    w["baseline_min"] = r.baseline.min;
    w["baseline_max"] = r.baseline.max;
    w["peak_rss_mb"] = r.peak_rss_mb;
    w["baseline_peak_rss_mb"] = r.baseline_peak_rss_mb;
    w["durability"] = r.durability;
    w["target"] = r.target;
    w["repetitions"] = r.repetitions;
    if (r.paged) {
      w["annals_first_page"] = r.annals_first;
      w["offset_first_page"] = r.baseline_first;
      w["offset_ratio"] = r.offset_ratio;
    }
    if (r.snapshot) {
      w["snapshot_load_us"] = r.snapshot_load_us;
      w["ten_event_load_us"] = r.ten_event_load_us;
      w["snapshot_ratio"] = r.snapshot_ratio;
    }
    if (r.group_stats) w["average_group"] = r.average_group;
    if (r.serve) {
      static constexpr std::array<const char*, 8> kNames{
          "first_1_rps", "first_1_p99_us", "deep_1_rps", "deep_1_p99_us",
          "first_8_rps", "first_8_p99_us", "deep_8_rps", "deep_8_p99_us"};
      nlohmann::ordered_json figures, ratios;
      for (std::size_t i = 0; i < kNames.size(); ++i) {
        const Summary& f = r.serve_figures[i];
        figures[kNames[i]] = {{"median", f.median}, {"min", f.min}, {"max", f.max}};
      }
      const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
      ratios["first_1"] = ratio(r.serve_figures[0].median, r.baseline.median);
      ratios["deep_1"] = ratio(r.serve_figures[2].median, r.baseline_deep);
      ratios["first_8"] = ratio(r.serve_figures[4].median, r.baseline.median);
      ratios["deep_8"] = ratio(r.serve_figures[6].median, r.baseline_deep);
      w["serve"] = std::move(figures);
      w["baseline_first_qps"] = r.baseline.median;
      w["baseline_deep_qps"] = r.baseline_deep;
      w["serve_ratios"] = std::move(ratios);
    }
    if (!r.note.empty()) w["note"] = r.note;
    doc["workloads"].push_back(std::move(w));
  }
  doc["scale"] = scale;
  doc["synchronous"] = synchronous;
  doc["postgresql"] = postgresql;
  doc["serve"] = serve;
  doc["date"] = utc_now();
  out << doc.dump(2) << '\n';
}

}  // namespace annals::bench
