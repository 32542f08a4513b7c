// The HTTP transport of annals serve (serve/src/http_server.cpp), driven over real loopback
// sockets by annals::test::HttpClient with an injected handler (src/transport.hpp): what it
// answers to hostile requests, its limits and timeouts, keep-alive and pipelining, a handler that
// throws, and many concurrent clients. After every hostile request the server must still answer.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/serve/server.hpp"
#include "serve/serve_fixture.hpp"
#include "support/http_client.hpp"
#include "transport.hpp"

namespace {

using annals::serve::Server;
using annals::serve::ServerOptions;
using annals::serve::detail::HttpRequest;
using annals::serve::detail::HttpResponse;
using annals::serve::detail::ServerAccess;
using annals::test::HttpClient;
using annals::test::HttpReply;
using nlohmann::json;
using namespace std::chrono_literals;
using namespace std::string_literals;

// Answers with what it was given; "/throw" throws, as a failing handler would.
HttpResponse echo(const HttpRequest& request) {
  if (request.target == "/throw") throw std::runtime_error("secret internals: /var/db password");
  HttpResponse response;
  response.body = json{{"method", std::string(request.method)},
                       {"target", std::string(request.target)},
                       {"authorization", std::string(request.authorization)},
                       {"has_authorization", request.has_authorization}}
                      .dump();
  return response;
}

std::unique_ptr<Server> serve(ServerOptions options = {}) {
  auto server = ServerAccess::make(echo, std::move(options));
  server->start();
  return server;
}

// The reply is the JSON error the design names: {"error":{"status","code","message"}}.
void check_error(const HttpReply& reply, int status, const std::string& code) {
  INFO("body: " << reply.body);
  CHECK(reply.status == status);
  CHECK(reply.header("content-type") == "application/json");
  CHECK(reply.header("content-length") == std::to_string(reply.body.size()));
  const json body = json::parse(reply.body);
  CHECK(body.at("error").at("status") == status);
  CHECK(body.at("error").at("code") == code);
  CHECK_FALSE(body.at("error").at("message").get<std::string>().empty());
}

// A fresh connection gets a normal answer.
void check_still_serving(std::uint16_t port) {
  const HttpReply reply = annals::test::http_get(port, "/healthz");
  REQUIRE(reply.status == 200);
  CHECK(json::parse(reply.body).at("target") == "/healthz");
}

// Runs kClients threads, each making kRequests requests on one keep-alive connection to `port`;
// right(client, c, i) makes request i of client c and says whether its answer was right.
// Returns how many answers were wrong (a client whose connection fails counts one).
constexpr int kClients = 8;
constexpr int kRequests = 500;
template <class Right>
int wrong_answers(std::uint16_t port, Right right) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      try {
        HttpClient client(port);
        for (int i = 0; i < kRequests; ++i) {
          if (!right(client, c, i)) ++wrong;
        }
      } catch (const std::exception&) {
        ++wrong;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  return wrong;
}

}  // namespace

TEST_CASE("serve http: a request reaches the handler; the response carries the common headers",
          "[serve][http]") {
  auto server = serve();
  REQUIRE(server->port() != 0);
  HttpClient client(server->port());
  const HttpReply reply = client.get("/v1/apps/a/workflow-runs?limit=5", std::string("ak_key"));
  REQUIRE(reply.status == 200);
  const json body = json::parse(reply.body);
  CHECK(body.at("method") == "GET");
  CHECK(body.at("target") == "/v1/apps/a/workflow-runs?limit=5");
  CHECK(body.at("authorization") == "Bearer ak_key");
  CHECK(body.at("has_authorization") == true);
  CHECK(reply.header("server") == "annals");
  CHECK(reply.header("content-type") == "application/json");
  CHECK(reply.header("content-length") == std::to_string(reply.body.size()));
  CHECK(reply.header("cache-control") == "no-store");
  CHECK(reply.header("x-content-type-options") == "nosniff");
  CHECK(reply.header("connection").empty());  // HTTP/1.1 keep-alive is the default

  const HttpReply empty = client.get("/x", std::nullopt, {"Authorization:"});
  CHECK(json::parse(empty.body).at("has_authorization") == true);
  CHECK(json::parse(empty.body).at("authorization") == "");
  const HttpReply none = client.get("/x");
  CHECK(json::parse(none.body).at("has_authorization") == false);
  // "Content-Length: 0" is no body: answered, and the connection stays open.
  CHECK(client.get("/zero", std::nullopt, {"Content-Length: 0"}).status == 200);
  CHECK(client.get("/after-zero").status == 200);
}

TEST_CASE("serve http: hostile requests get a 4xx JSON error and the server keeps serving",
          "[serve][http]") {
  struct Row {
    std::string name;
    std::string bytes;
    int status;
    std::string code;
    bool closes;  // the server closes the connection after answering
  };
  const std::string big(20'000, 'x');
  const std::vector<Row> rows = {
      {"malformed request line", "GARBAGE\r\n\r\n", 400, "bad_request", true},
      {"request line without a version", "GET /\r\n\r\n", 400, "bad_request", true},
      {"bad HTTP version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400, "bad_request", true},
      {"unsupported HTTP version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "bad_request",
       true},
      {"header without a colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "bad_request", true},
      {"NUL byte in the target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, 400,
       "bad_request", true},
      {"NUL byte in a header value", "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"s, 400,
       "bad_request", true},
      {"huge header", "GET / HTTP/1.1\r\nX-Big: " + big + "\r\n\r\n", 431, "header_too_large",
       true},
      {"many headers", [] {
         std::string r = "GET / HTTP/1.1\r\n";
         for (int i = 0; i < 2000; ++i) r += "X-H" + std::to_string(i) + ": v\r\n";
         return r + "\r\n";
       }(),
       431, "header_too_large", true},
      {"target over max_target_bytes", "GET /" + std::string(3000, 'a') + " HTTP/1.1\r\n\r\n",
       414, "uri_too_long", true},
      {"target over max_header_bytes", "GET /" + big + " HTTP/1.1\r\n\r\n", 414, "uri_too_long",
       true},
      {"GET with a Content-Length body",
       "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 413, "payload_too_large",
       true},
      {"GET with a chunked body",
       "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       413, "payload_too_large", true},
      {"POST", "POST /v1/verify HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}", 405,
       "method_not_allowed", true},
      {"PUT without a body", "PUT / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "method_not_allowed",
       false},
      {"DELETE", "DELETE /v1/apps/a/workflow-runs/r-1 HTTP/1.1\r\nHost: a\r\n\r\n", 405,
       "method_not_allowed", false},
      {"HEAD", "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 405, "method_not_allowed", false},
      {"Authorization twice",
       "GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", 400,
       "bad_request", true},
  };
  auto server = serve();
  for (const Row& row : rows) {
    SECTION(row.name) {
      HttpClient client(server->port());
      client.send_raw(row.bytes);  // the server may answer and close before taking it all
      const auto reply = client.read_reply(5s);
      REQUIRE(reply);
      check_error(*reply, row.status, row.code);
      if (row.status == 405) CHECK(reply->header("allow") == "GET");
      if (row.closes) {
        CHECK(reply->header("connection") == "close");
        CHECK(client.wait_closed(5s));
      } else {
        CHECK(client.get("/after").status == 200);  // the same connection goes on
      }
      check_still_serving(server->port());
    }
  }
  CHECK(server->stats().responses_5xx == 0);
}

TEST_CASE("serve http: a slow client gets 408 and is closed while others are served",
          "[serve][http]") {
  ServerOptions options;
  options.request_timeout = 300ms;
  options.threads = 2;
  auto server = serve(options);

  SECTION("half a request head") {
    HttpClient slow(server->port());
    REQUIRE(slow.send_raw("GET /slow HTTP/1.1\r\nHost: a\r\nX-Part"));
    check_still_serving(server->port());  // meanwhile another client is answered
    const auto reply = slow.read_reply(10s);
    REQUIRE(reply);
    check_error(*reply, 408, "request_timeout");
    CHECK(reply->header("connection") == "close");
    CHECK(slow.wait_closed(5s));
  }
  SECTION("an idle keep-alive connection") {
    HttpClient idle(server->port());
    REQUIRE(idle.get("/first").status == 200);
    const auto reply = idle.read_reply(10s);  // nothing sent: the timeout closes it
    REQUIRE(reply);
    check_error(*reply, 408, "request_timeout");
    CHECK(idle.wait_closed(5s));
  }
  check_still_serving(server->port());
  CHECK(server->stats().responses_4xx >= 1);
}

TEST_CASE("serve http: over max_connections a connection gets 503 until one closes",
          "[serve][http]") {
  ServerOptions options;
  options.max_connections = 2;
  auto server = serve(options);
  auto first = std::make_unique<HttpClient>(server->port());
  HttpClient second(server->port());
  REQUIRE(first->get("/1").status == 200);  // both are sessions now
  REQUIRE(second.get("/2").status == 200);

  {
    HttpClient third(server->port());
    third.send_raw("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    const auto reply = third.read_reply(5s);
    REQUIRE(reply);
    check_error(*reply, 503, "too_many_connections");
    CHECK(third.wait_closed(5s));
  }
  CHECK(server->stats().connections_refused == 1);

  first.reset();  // the server sees the close and frees the slot (soon, not at once)
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    HttpClient next(server->port());
    served = next.get("/again").status == 200;
    if (!served) std::this_thread::sleep_for(10ms);
  }
  CHECK(served);
  CHECK(second.get("/still").status == 200);
}

TEST_CASE("serve http: keep-alive and pipelined requests on one connection", "[serve][http]") {
  auto server = serve();
  HttpClient client(server->port());
  SECTION("one after the other") {
    for (int i = 0; i < 20; ++i) {
      const HttpReply reply = client.get("/k/" + std::to_string(i));
      REQUIRE(reply.status == 200);
      CHECK(json::parse(reply.body).at("target") == "/k/" + std::to_string(i));
    }
    CHECK(server->stats().connections_accepted == 1);
    CHECK(server->stats().requests == 20);
  }
  SECTION("pipelined: three requests in one write, three responses in order") {
    std::string batch;
    for (int i = 0; i < 3; ++i) batch += "GET /p/" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    REQUIRE(client.send_raw(batch));
    for (int i = 0; i < 3; ++i) {
      const auto reply = client.read_reply(5s);
      REQUIRE(reply);
      REQUIRE(reply->status == 200);
      CHECK(json::parse(reply->body).at("target") == "/p/" + std::to_string(i));
    }
  }
  SECTION("HTTP/1.0 without keep-alive: one response, then closed") {
    REQUIRE(client.send_raw("GET /old HTTP/1.0\r\n\r\n"));
    const auto reply = client.read_reply(5s);
    REQUIRE(reply);
    CHECK(reply->status == 200);
    CHECK(client.wait_closed(5s));
  }
  SECTION("Connection: close is honoured") {
    const HttpReply reply = client.get("/bye", std::nullopt, {"Connection: close"});
    CHECK(reply.status == 200);
    CHECK(reply.header("connection") == "close");
    CHECK(client.wait_closed(5s));
  }
}

TEST_CASE("serve http: a handler that throws is a 500 without internals; the connection goes on",
          "[serve][http]") {
  auto server = serve();
  HttpClient client(server->port());
  const HttpReply failed = client.get("/throw");
  check_error(failed, 500, "internal");
  CHECK(failed.body.find("secret") == std::string::npos);
  CHECK(client.get("/next").status == 200);
  CHECK(server->stats().responses_5xx == 1);
}

TEST_CASE("serve http: a handler answering a status that cannot carry a body is a 500",
          "[serve][http]") {
  auto server = ServerAccess::make([](const HttpRequest& request) {
    HttpResponse response;
    response.status = static_cast<unsigned>(std::stoul(std::string(request.target.substr(1))));
    response.body = "{}";
    return response;
  });
  server->start();
  HttpClient client(server->port());
  for (const char* status : {"0", "42", "101", "204", "304", "600", "1000"}) {
    INFO("status " << status);
    check_error(client.get(std::string("/") + status), 500, "internal");
  }
  CHECK(client.get("/200").status == 200);
  CHECK(client.get("/404").status == 404);
}

TEST_CASE("serve http: 8 clients x 500 keep-alive requests, every answer right", "[serve][http]") {
  ServerOptions options;
  options.threads = 4;
  auto server = serve(options);
  std::atomic<int> right{0};
  const int wrong = wrong_answers(server->port(), [&](HttpClient& client, int c, int i) {
    const std::string target = "/c/" + std::to_string(c) + "/" + std::to_string(i);
    const HttpReply reply = client.get(target);
    const bool ok = reply.status == 200 && json::parse(reply.body).at("target") == target;
    if (ok) ++right;
    return ok;
  });
  CHECK(wrong == 0);
  CHECK(right == kClients * kRequests);
  CHECK(server->stats().requests == kClients * kRequests);
  CHECK(server->stats().connections_accepted == kClients);
}

TEST_CASE("serve http: bad options name the option, the value and the range", "[serve][http]") {
  const auto refused = [](ServerOptions options, const std::string& words) {
    INFO(words);
    CHECK_THROWS_AS(ServerAccess::make(echo, options), annals::InvalidArgument);
    CHECK_THROWS_WITH(ServerAccess::make(echo, options), Catch::Matchers::Contains(words));
  };
  ServerOptions o;
  o.threads = 0;
  refused(o, "threads is 0; expected 1..64");
  o = {};
  o.threads = 65;
  refused(o, "threads is 65");
  o = {};
  o.max_connections = 0;
  refused(o, "max_connections is 0");
  o = {};
  o.max_header_bytes = 0;
  refused(o, "max_header_bytes is 0");
  o = {};
  o.max_target_bytes = 0;
  refused(o, "max_target_bytes is 0");
  o = {};
  o.request_timeout = 0ms;
  refused(o, "request_timeout (ms) is 0");
  o = {};
  o.write_timeout = -5ms;
  refused(o, "write_timeout (ms) is -5");
  o = {};
  o.address = "localhost";
  refused(o, "'localhost' is not an IPv4 or IPv6 address literal");
}

TEST_CASE("serve http: an address in use is a StoreError naming it and the reason",
          "[serve][http]") {
  auto first = serve();
  ServerOptions o;
  o.port = first->port();
  const std::string where = "127.0.0.1:" + std::to_string(first->port());
  CHECK_THROWS_AS(ServerAccess::make(echo, o), annals::StoreError);
  CHECK_THROWS_WITH(ServerAccess::make(echo, o),
                       Catch::Matchers::Contains(where) &&
                           Catch::Matchers::Contains("in use", Catch::CaseSensitive::No));
}

TEST_CASE("serve http: IPv6 loopback", "[serve][http]") {
  ServerOptions o;
  o.address = "::1";
  std::unique_ptr<Server> server;
  try {
    server = ServerAccess::make(echo, o);
  } catch (const annals::StoreError& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  CHECK(server->port() != 0);
}

// The same transport in front of the real API (detail::Api over a SQLite store with several
// tenants, tests/serve/serve_fixture.hpp): many keep-alive clients at once, each answer equal to
// the one a lone client gets.
TEST_CASE("serve http: 8 clients x 500 requests against the real API, every answer the lone one",
          "[serve][http]") {
  annals::test::ServeFixture fixture;
  const std::string app_runs = "/v1/apps/app-1/workflow-runs";
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/healthz", ""},
      {app_runs + "?limit=5", fixture.acme_key},
      {app_runs + "?limit=3&last_id=" + fixture.data.acme_app1_runs.front(), fixture.acme_key},
      {app_runs + "/" + fixture.data.acme_app1_runs.back(), fixture.acme_key},
      {"/v1/workflow-runs/" + fixture.data.acme_long_run + "/node-executions", fixture.acme_key},
      {"/v1/workflow-runs/" + fixture.data.acme_long_run + "/events?limit=4", fixture.acme_key},
      {app_runs + "?limit=5", fixture.beta_key},
      {app_runs + "/" + fixture.data.acme_app1_runs.back(), fixture.beta_key},  // 404: acme's
      {app_runs + "?limit=5", "ak_not_a_key"},                                  // 401
  };
  std::vector<HttpReply> expected;
  for (const auto& [target, key] : requests) {
    expected.push_back(annals::test::http_get(
        fixture.server->port(), target,
        key.empty() ? std::nullopt : std::optional<std::string>(key)));
  }
  CHECK(expected[0].status == 200);
  CHECK(expected[1].status == 200);
  CHECK(expected[7].status == 404);
  CHECK(expected[8].status == 401);

  std::atomic<int> right{0};
  const int wrong = wrong_answers(fixture.server->port(), [&](HttpClient& client, int c, int i) {
    const std::size_t which = static_cast<std::size_t>(c + i) % requests.size();
    const auto& [target, key] = requests[which];
    const HttpReply reply =
        client.get(target, key.empty() ? std::nullopt : std::optional<std::string>(key));
    const bool ok = reply.status == expected[which].status && reply.body == expected[which].body;
    if (ok) ++right;
    return ok;
  });
  CHECK(wrong == 0);
  CHECK(right == kClients * kRequests);
}
