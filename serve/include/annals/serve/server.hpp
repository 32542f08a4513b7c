#pragma once

// annals serve: a read-only HTTP API over the workflow read models and the log, for a workflow
// engine's console or an auditor, plus the audit viewer page at "/". docs/serve.md lists every
// endpoint with an example.
//
//   annals::RepositoryFactory factory("sqlite:/var/lib/app/events.db");
//   annals::serve::Server server(factory, annals::serve::KeyRing::load("keys"),
//                                {.address = "127.0.0.1", .port = 8080});
//   server.run_until_signal();   // SIGINT/SIGTERM: stop accepting, finish requests, return
//
// One Boost.Asio io_context runs on `threads` threads. Every /v1 request needs
// "Authorization: Bearer <key>"; the key decides the tenant. No endpoint writes.
//
// Thread-safety: stop() and stats() may be called from any thread (also before or while run()
// runs); the other members from one thread. A request handler that never returns cannot be
// interrupted: run() and stop() wait for it (shutdown_grace closes connections, not handlers).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "annals/repositories/repository_factory.hpp"
#include "annals/serve/keys.hpp"

namespace annals::serve {

struct ServerOptions {
  std::string address = "127.0.0.1";  // an IPv4 or IPv6 literal to listen on
  std::uint16_t port = 0;             // 0: a free port the system picks (see Server::port())
  std::size_t threads = 4;            // io_context threads, 1..64
  std::size_t max_connections = 256;  // beyond it a new connection gets 503 and is closed
  std::size_t max_header_bytes = 8 * 1024;  // request line + headers; more: 431
  std::size_t max_target_bytes = 2 * 1024;  // request target; more: 414
  // A request's head must arrive within this after the connection opens or the previous response
  // was written (keep-alive); otherwise 408 and the connection is closed.
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};  // a response not taken within it: closed
  // stop(): in-flight requests get this long to finish before connections are closed anyway.
  std::chrono::milliseconds shutdown_grace{10'000};
};

// Counters since the server was built; each is read atomically (not all at one instant).
struct ServerStats {
  std::uint64_t connections_accepted = 0;  // connections served (not counting the refused)
  std::uint64_t connections_refused = 0;   // over max_connections: answered 503 and closed
  std::uint64_t requests = 0;              // request heads parsed (any method, any target)
  std::uint64_t responses_4xx = 0;         // every 4xx written, also the transport's own (408...)
  std::uint64_t responses_5xx = 0;         // every 5xx written, also the 503s of refused ones
};

namespace detail {
struct ServerAccess;  // src/transport.hpp: builds a Server around a test's own handler
}  // namespace detail

class Server {
 public:
  // Binds and listens at once (so port() is known before run()). Throws InvalidArgument for bad
  // options (naming the option, its value and the range expected), StoreError if the address
  // cannot be bound (naming it and the system's reason).
  Server(RepositoryFactory factory, KeyRing keys, ServerOptions options = {});
  ~Server();  // stop(), then waits for the threads
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] const ServerOptions& options() const noexcept;

  // Serves on options().threads threads (this one among them) until stop(); returns when every
  // connection is closed.
  void run();
  // run(), and stop() on SIGINT or SIGTERM. Returns the signal number that stopped it (0 if
  // stop() was called). `on_ready`, if given, is called on this thread once the two signals are
  // caught and before serving starts: a program that says "listening" there can be stopped by
  // a signal as soon as it has said so. The signals' default actions come back on return.
  int run_until_signal(const std::function<void()>& on_ready = {});
  // Starts the threads in the background and returns (tests, embedding); stop() ends them.
  void start();
  // Graceful stop: no new connections; idle keep-alive connections are closed; requests in flight
  // are answered (with "Connection: close") within shutdown_grace, then every connection is
  // closed. Idempotent; blocks until the threads have finished only when called from outside
  // them (the destructor, or a thread that called start()).
  void stop();

  [[nodiscard]] ServerStats stats() const;

 private:
  friend struct detail::ServerAccess;
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace annals::serve
