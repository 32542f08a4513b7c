#include "serve_load.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "annals/events/printable.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "annals/serve/keys.hpp"
#include "annals/serve/server.hpp"
#include "datasets.hpp"
#include "raw_sqlite.hpp"
#include "wrk.hpp"

namespace annals::bench::serve_load {

namespace {

volatile std::uint64_t g_sink = 0;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("W9: " + what); }

struct HttpAnswer {
  unsigned status = 0;
  std::string body;
};

// One GET over a fresh loopback connection ("Connection: close"), read to the end. Just enough
// HTTP/1.1 for the checks before the load: the status line and a Content-Length body.
HttpAnswer http_get(std::uint16_t port, const std::string& target, const std::string& key) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    fail("connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!key.empty()) request += "Authorization: Bearer " + key + "\r\n";
  request += "Connection: close\r\n\r\n";
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("send: ") + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(std::string("recv: ") + std::strerror(errno));
    if (n == 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  const std::size_t head_end = response.find("\r\n\r\n");
  unsigned status = 0;
  if (head_end == std::string::npos ||
      std::sscanf(response.c_str(), "HTTP/1.1 %3u", &status) != 1) {
    fail("GET " + target + ": not an HTTP/1.1 response: '" + printable(response, 120) + "'");
  }
  return {status, response.substr(head_end + 4)};
}

// The page's rows must be the runs that start at `first_row` (newest first), page_size of them,
// with more after.
void check_page(const HttpAnswer& answer, const std::string& target, const Config& config,
                std::size_t first_row) {
  if (answer.status != 200) {
    fail("GET " + target + " answered " + std::to_string(answer.status) + ": '" +
         printable(answer.body, 200) + "'");
  }
  const nlohmann::json page = nlohmann::json::parse(answer.body, nullptr, false);
  const std::string expected = run_id(config.runs - 1 - first_row);
  if (page.is_discarded() || !page.contains("data") || !page["data"].is_array() ||
      page["data"].size() != config.page_size || page["data"].front().value("id", "") != expected ||
      page.value("has_more", false) != true) {
    fail("GET " + target + ": expected " + std::to_string(config.page_size) + " runs from '" +
         expected + "' and has_more, got '" + printable(answer.body, 160) + "'");
  }
}

Sample::Extra run_load(std::uint16_t port, const std::string& key, const Config& config) {
  Sample::Extra figures{};
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  struct Setting {
    unsigned threads, connections;
    bool deep;
    Figure rps, p99;
  };
  for (const Setting& s :
       {Setting{1, 1, false, kFirst1Rps, kFirst1P99}, Setting{1, 1, true, kDeep1Rps, kDeep1P99},
        Setting{2, 8, false, kFirst8Rps, kFirst8P99}, Setting{2, 8, true, kDeep8Rps, kDeep8P99}}) {
    const wrk::Report report = wrk::run({config.wrk,
                                         s.threads,
                                         s.connections,
                                         config.seconds,
                                         {"Authorization: Bearer " + key},
                                         base + target(config, s.deep)});
    figures[s.rps] = report.requests_per_second;
    figures[s.p99] = report.p99_us;
    std::fprintf(stderr,
                 "    [wrk -t%u -c%u -d%us, %s page: %llu requests, %.0f req/s, p50 %.0f us, "
                 "p99 %.0f us]\n",
                 s.threads, s.connections, config.seconds, s.deep ? "deep" : "first",
                 static_cast<unsigned long long>(report.requests), report.requests_per_second,
                 report.p50_us, report.p99_us);
  }
  return figures;
}

// Calls fn until min_seconds passed; returns calls per second.
template <class Fn>
double calls_per_second(Fn&& fn, double min_seconds) {
  return 1.0 / seconds_per_call(std::forward<Fn>(fn), min_seconds);
}

// SQL written with PostgreSQL's $n placeholders, for SQLite's ?n (the same numbering).
std::string sqlite_placeholders(std::string sql) {
  for (char& c : sql) {
    if (c == '$') c = '?';
  }
  return sql;
}

}  // namespace

std::string target(const Config& config, bool deep) {
  std::string t = "/v1/apps/" + std::string(kApp) +
                  "/workflow-runs?triggered_from=" + std::string(kTrigger) +
                  "&limit=" + std::to_string(config.page_size);
  // Newest first: the row at depth d (0-based) is run n-1-d, so the page that starts at
  // depth `depth` comes after run n-depth.
  if (deep) t += "&last_id=" + run_id(config.runs - config.depth);
  return t;
}

Sample measure_server(const std::string& uri, const Config& config) {
  annals::serve::KeyRing keys;
  const std::string key = annals::serve::KeyRing::generate_key();
  keys.add(std::string(kTenant), annals::serve::KeyRing::hash_key(key));
  annals::serve::Server server(RepositoryFactory(uri), std::move(keys),
                               {.address = "127.0.0.1", .port = 0});
  server.start();
  const std::uint16_t port = server.port();
  check_page(http_get(port, target(config, false), key), target(config, false), config, 0);
  check_page(http_get(port, target(config, true), key), target(config, true), config, config.depth);
  if (const HttpAnswer unauthenticated = http_get(port, target(config, false), "");
      unauthenticated.status != 401) {
    fail("GET " + target(config, false) + " without a key answered " +
         std::to_string(unauthenticated.status) + ", expected 401");
  }
  Sample sample;
  sample.extra = run_load(port, key, config);
  sample.value = sample.extra[kFirst1Rps];
  server.stop();
  return sample;
}

Sample measure_raw(const std::filesystem::path& file, bool synchronous_full, const Config& config) {
  raw::Database db(file, synchronous_full);
  const std::string runs_table(WorkflowProjection::kRunsTable);
  raw::Statement first_page(db.handle(),
                            sqlite_placeholders(workflow_sql::select_runs_page(false)));
  raw::Statement cursor(db.handle(), "SELECT created_at, id FROM " + runs_table +
                                         " WHERE id = ?1 AND tenant_id = ?2 AND app_id = ?3 AND "
                                         "triggered_from = ?4");
  raw::Statement after_page(db.handle(), sqlite_placeholders(workflow_sql::select_runs_page(true)));
  const auto fetch = static_cast<std::int64_t>(config.page_size + 1);  // +1: has_more
  const std::string last_id = run_id(config.runs - config.depth);
  std::vector<std::string> cells(16);
  const auto read_page = [&](raw::Statement& select, std::size_t first_row) {
    std::size_t rows = 0;
    while (select.step()) {
      if (rows == 0 && select.text(0) != run_id(config.runs - 1 - first_row)) {
        fail("baseline: the page starts at the wrong run '" + std::string(select.text(0)) + "'");
      }
      for (int c = 0; c < 16; ++c) cells[static_cast<std::size_t>(c)].assign(select.text(c));
      ++rows;
    }
    select.reset();
    if (rows != config.page_size + 1) fail("baseline: short page");
    g_sink = g_sink + rows;
  };
  const double first = calls_per_second(
      [&] {
        first_page.bind_text(1, kTenant).bind_text(2, kApp).bind_text(3, kTrigger).bind(4, fetch);
        read_page(first_page, 0);
      },
      config.baseline_seconds);
  const double deep = calls_per_second(
      [&] {
        cursor.bind_text(1, last_id)
            .bind_text(2, kTenant)
            .bind_text(3, kApp)
            .bind_text(4, kTrigger);
        if (!cursor.step()) fail("baseline: no cursor row for " + last_id);
        const std::int64_t created_at = cursor.integer(0);
        const std::string id(cursor.text(1));
        cursor.reset();
        after_page.bind_text(1, kTenant).bind_text(2, kApp).bind_text(3, kTrigger);
        after_page.bind(4, created_at).bind_text(5, id).bind(6, fetch);
        read_page(after_page, config.depth);
      },
      config.baseline_seconds);
  return Sample{first, deep};
}

}  // namespace annals::bench::serve_load
