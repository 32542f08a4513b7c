// Graceful shutdown of the annals serve transport: stop() lets a request in flight finish with
// its full response (and "Connection: close"), refuses new connections, closes idle ones, gives
// up on connections after shutdown_grace, and run() returns. stop() twice, stop() before run(),
// a destructor without run(), and run_until_signal() with SIGTERM.

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "annals/serve/server.hpp"
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
using namespace std::chrono_literals;

// A handler that holds "/slow" until released, and tells when it has one.
class Gate {
 public:
  HttpResponse operator()(const HttpRequest& request) {
    HttpResponse response;
    if (request.target == "/slow") {
      entered_.set_value();
      released_.wait_for(30s);  // a bound, so a failing test cannot hang forever
      response.body = std::string(100'000, 's');  // a big body: the whole of it must arrive
    } else {
      response.body = "{}";
    }
    return response;
  }
  void wait_entered() { REQUIRE(entered_future_.wait_for(10s) == std::future_status::ready); }
  void release() { release_.set_value(); }

 private:
  std::promise<void> entered_;
  std::future<void> entered_future_ = entered_.get_future();
  std::promise<void> release_;
  std::shared_future<void> released_ = release_.get_future().share();
};

bool connect_refused(std::uint16_t port) {
  try {
    HttpClient client(port);
    return false;
  } catch (const std::runtime_error&) {
    return true;
  }
}

}  // namespace

TEST_CASE("serve shutdown: stop() finishes the request in flight, refuses new connections and "
          "closes idle ones; run() returns",
          "[serve][shutdown]") {
  auto gate = std::make_shared<Gate>();
  ServerOptions options;
  options.threads = 2;
  auto server = ServerAccess::make([gate](const HttpRequest& r) { return (*gate)(r); }, options);
  const std::uint16_t port = server->port();
  auto running = std::async(std::launch::async, [&] { server->run(); });

  HttpClient idle(port);
  REQUIRE(idle.get("/hello").status == 200);  // a keep-alive connection, idle from here on

  std::optional<HttpReply> slow_reply;
  std::thread slow([&] {
    HttpClient client(port);
    client.send_raw("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    slow_reply = client.read_reply(30s);
  });
  gate->wait_entered();

  server->stop();  // from outside the server's threads, while run() runs: does not block
  CHECK(connect_refused(port));
  CHECK(idle.wait_closed(10s));
  CHECK(running.wait_for(100ms) == std::future_status::timeout);  // still finishing /slow

  gate->release();
  slow.join();
  REQUIRE(slow_reply);
  CHECK(slow_reply->status == 200);
  CHECK(slow_reply->body == std::string(100'000, 's'));
  CHECK(slow_reply->header("connection") == "close");
  REQUIRE(running.wait_for(10s) == std::future_status::ready);
  running.get();
  server->stop();  // again: nothing happens
  CHECK(connect_refused(port));
}

TEST_CASE("serve shutdown: after shutdown_grace a connection still in flight is closed",
          "[serve][shutdown]") {
  auto gate = std::make_shared<Gate>();
  ServerOptions options;
  options.threads = 2;
  options.shutdown_grace = 200ms;
  auto server = ServerAccess::make([gate](const HttpRequest& r) { return (*gate)(r); }, options);
  server->start();
  HttpClient client(server->port());
  client.send_raw("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
  gate->wait_entered();
  // stop() from the thread that called start() blocks until the threads end, which needs the
  // handler to return: release it a while after the grace period has passed.
  std::thread releaser([&] {
    std::this_thread::sleep_for(600ms);
    gate->release();
  });
  server->stop();
  releaser.join();
  // The response was written after the grace period closed the connection: it never arrives.
  CHECK_FALSE(client.read_reply(5s).has_value());
}

TEST_CASE("serve shutdown: stop() twice, stop() before run(), a destructor without run()",
          "[serve][shutdown]") {
  const auto handler = [](const HttpRequest&) { return HttpResponse{}; };
  SECTION("destroyed without ever running") {
    auto server = ServerAccess::make(handler);
    const std::uint16_t port = server->port();
    HttpClient waiting(port);  // accepted by the kernel, never by the server
    server.reset();
    CHECK(connect_refused(port));
    CHECK(waiting.wait_closed(5s));
  }
  SECTION("stop() before run(): run() returns at once") {
    auto server = ServerAccess::make(handler);
    server->stop();
    server->stop();
    auto running = std::async(std::launch::async, [&] { server->run(); });
    CHECK(running.wait_for(10s) == std::future_status::ready);
  }
  SECTION("start(), stop(), stop()") {
    auto server = ServerAccess::make(handler);
    server->start();
    REQUIRE(annals::test::http_get(server->port(), "/").status == 200);
    server->stop();
    server->stop();
    CHECK(connect_refused(server->port()));
  }
  SECTION("stop() from inside a handler") {
    std::atomic<Server*> self{nullptr};
    auto server = ServerAccess::make([&](const HttpRequest&) {
      self.load()->stop();  // on a server thread: must not wait for itself
      return HttpResponse{};
    });
    self = server.get();
    auto running = std::async(std::launch::async, [&] { server->run(); });
    const HttpReply reply = annals::test::http_get(server->port(), "/stop");
    CHECK(reply.status == 200);
    CHECK(reply.header("connection") == "close");
    CHECK(running.wait_for(10s) == std::future_status::ready);
  }
}

TEST_CASE("serve shutdown: run_until_signal() stops on SIGTERM and returns its number",
          "[serve][shutdown]") {
  auto server = ServerAccess::make([](const HttpRequest&) { return HttpResponse{}; });
  std::promise<void> ready;
  auto running = std::async(std::launch::async, [&] {
    return server->run_until_signal([&] { ready.set_value(); });
  });
  // on_ready comes once the signals are caught: a SIGTERM right after it stops the server
  // (were it not caught yet, its default action would end this test program).
  REQUIRE(ready.get_future().wait_for(10s) == std::future_status::ready);
  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  REQUIRE(running.wait_for(10s) == std::future_status::ready);
  CHECK(running.get() == SIGTERM);
  CHECK(connect_refused(server->port()));
}

TEST_CASE("serve shutdown: an on_ready that throws stops the server and the exception comes out",
          "[serve][shutdown]") {
  auto server = ServerAccess::make([](const HttpRequest&) { return HttpResponse{}; });
  CHECK_THROWS_WITH(server->run_until_signal([] { throw std::runtime_error("stdout is gone"); }),
                    "stdout is gone");
  CHECK(connect_refused(server->port()));
}
