// The HTTP transport of annals serve on Boost.Beast + Asio: the one translation unit that
// includes Beast (slow to compile). It parses requests, enforces the size, time and connection
// limits of ServerOptions, and hands every request it could parse to a handler (detail::Api in
// production, anything in tests: transport.hpp). Each connection is a Session on its own strand.
//
// A session's life: read a request head (request_timeout; 408 on expiry) -> check it (405, 413,
// 414, 400) -> call the handler -> write the response (write_timeout) -> read the next head
// (keep-alive) or close. Closing after an error response is "lingering": the send side is shut
// down and what the client still sends is read and dropped for a short while, so that the
// response is not destroyed by a TCP reset when unread bytes remain in the receive buffer.

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <csignal>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"
#include "annals/serve/server.hpp"
#include "api.hpp"
#include "transport.hpp"

namespace annals::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

std::string_view sv(beast::string_view text) { return {text.data(), text.size()}; }

using Strand = asio::strand<asio::io_context::executor_type>;
using Response = http::response<http::string_body>;

// How long a closing connection keeps reading (and dropping) what the client still sends, and
// how much of it; then it is closed anyway.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr std::size_t kLingerBytes = 1 << 20;

template <typename Int>
void require_range(std::string_view option, Int value, Int min, Int max) {
  if (value < min || value > max) {
    throw InvalidArgument("ServerOptions." + std::string(option) + " is " +
                          std::to_string(value) + "; expected " + std::to_string(min) + ".." +
                          std::to_string(max));
  }
}

void require_duration(std::string_view option, std::chrono::milliseconds value,
                      std::chrono::milliseconds min) {
  require_range<long long>(option, static_cast<long long>(value.count()),
                           static_cast<long long>(min.count()), 24LL * 3600 * 1000);
}

void validate(const ServerOptions& o) {
  require_range<std::size_t>("threads", o.threads, 1, 64);
  require_range<std::size_t>("max_connections", o.max_connections, 1, 1'000'000);
  require_range<std::size_t>("max_header_bytes", o.max_header_bytes, 64, 1 << 20);
  require_range<std::size_t>("max_target_bytes", o.max_target_bytes, 1, 1 << 20);
  require_duration("request_timeout (ms)", o.request_timeout, std::chrono::milliseconds(1));
  require_duration("write_timeout (ms)", o.write_timeout, std::chrono::milliseconds(1));
  require_duration("shutdown_grace (ms)", o.shutdown_grace, std::chrono::milliseconds(0));
}

std::string endpoint_text(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

}  // namespace

struct Server::Impl {
  class Session;

  ServerOptions options;
  detail::Handler handler;

  // Declared before the io_context: sessions destroyed while it shuts down still reach them.
  // Guards sessions, the acceptor's operations and stopping's transition. Recursive: a session
  // whose last reference is dropped while it is held unregisters itself.
  std::recursive_mutex mutex;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::atomic<bool> stopping{false};
  std::atomic<bool> grace_over{false};  // stop()'s shutdown_grace has passed
  std::atomic<bool> destroying{false};
  std::atomic<std::size_t> live{0};  // sessions counted against max_connections
  std::atomic<int> signal_number{0};
  std::atomic<std::uint64_t> accepted{0}, refused{0}, requests{0}, responses_4xx{0},
      responses_5xx{0};
  std::mutex threads_mutex;
  std::vector<std::thread> background;  // start()'s threads

  asio::io_context ioc;
  Strand control{asio::make_strand(ioc)};  // the grace timer and the signal set
  tcp::acceptor acceptor{control};
  asio::steady_timer accept_retry{control};
  asio::steady_timer grace{control};
  std::optional<asio::signal_set> signals;
  std::uint16_t port = 0;

  Impl(detail::Handler h, ServerOptions o)
      : options(std::move(o)), handler(std::move(h)), ioc(static_cast<int>(options.threads)) {}

  void listen();
  void accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  void stop();
  void on_session_closed(Session* session);
  void run_threads(std::size_t count);
  void serve_thread();
  [[nodiscard]] bool on_io_thread() const noexcept;

  void count(unsigned status) {
    if (status >= 500) {
      responses_5xx.fetch_add(1, std::memory_order_relaxed);
    } else if (status >= 400) {
      responses_4xx.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

namespace {
thread_local const void* tl_io_impl = nullptr;  // the server this io thread runs
}  // namespace

bool Server::Impl::on_io_thread() const noexcept { return tl_io_impl == this; }

class Server::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket, bool counted)
      : server_(server),
        strand_(asio::make_strand(server.ioc)),
        socket_(std::move(socket)),
        timer_(strand_),
        buffer_(server.options.max_header_bytes + 4096),
        counted_(counted) {}

  ~Session() {
    if (counted_) server_.live.fetch_sub(1);
    server_.on_session_closed(this);
  }

  // Runs on the session's strand.
  void start(bool refuse) {
    if (refuse) {
      send(detail::error_response(503, "too_many_connections",
                                  "the server holds its limit of " +
                                      std::to_string(server_.options.max_connections) +
                                      " connections; retry later"),
           11, true);
      return;
    }
    read();
  }

  // stop(): idle connections close now; a request in flight is answered first (with
  // "Connection: close"); a closing connection goes on closing.
  void on_stop() {
    if (phase_ == Phase::reading) {
      aborted_ = true;
      error_code ignored;
      socket_.cancel(ignored);
    } else if (phase_ == Phase::writing) {
      close_after_write_ = true;
    }
  }

  // The grace period is over: close whatever remains.
  void force_close() { close(); }

  Strand& strand() { return strand_; }

 private:
  enum class Phase { reading, handling, writing, lingering, closed };

  void arm_timer(std::chrono::milliseconds after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), generation = ++timer_generation_](
                          const error_code& ec) {
      if (!ec && generation == self->timer_generation_) self->on_timer();
    });
  }
  void disarm_timer() {
    ++timer_generation_;
    timer_.cancel();
  }

  void on_timer() {
    error_code ignored;
    if (phase_ == Phase::reading) {
      timed_out_ = true;
      socket_.cancel(ignored);  // the read completes with operation_aborted, then 408
    } else {
      close();  // a write or a lingering close that took too long
    }
  }

  void read() {
    if (server_.stopping.load()) {
      close();
      return;
    }
    phase_ = Phase::reading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    arm_timer(server_.options.request_timeout);
    http::async_read_header(socket_, buffer_, *parser_,
                            asio::bind_executor(strand_, [self = shared_from_this()](
                                                             const error_code& ec, std::size_t) {
                              self->on_read(ec);
                            }));
  }

  void on_read(const error_code& ec) {
    disarm_timer();
    if (phase_ == Phase::closed) return;
    if (!ec) {  // a whole head, even if the deadline or stop() came just after it
      handle();
      return;
    }
    if (timed_out_) {
      send(detail::error_response(
               408, "request_timeout",
               "no complete request head within " +
                   std::to_string(server_.options.request_timeout.count()) + " ms"),
           11, true);
      return;
    }
    if (aborted_ || ec == http::error::end_of_stream || ec == asio::error::operation_aborted) {
      close();
      return;
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      send(too_large(), 11, true);
      return;
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::partial_message) {
      send(detail::error_response(400, "bad_request", "malformed HTTP request: " + ec.message()),
           11, true);
      return;
    }
    close();  // the connection failed or the client left mid-request
  }

  // A head over max_header_bytes: 414 if it is the request line that is too long (Beast parses
  // the request line first: when it did not get through it, the line alone overflowed), else 431.
  detail::HttpResponse too_large() const {
    const std::size_t target = parser_->get().target().size();
    if (target == 0 || target > server_.options.max_target_bytes) {
      return detail::error_response(414, "uri_too_long",
                                    "the request target is longer than the limit of " +
                                        std::to_string(server_.options.max_target_bytes) +
                                        " bytes");
    }
    return detail::error_response(431, "header_too_large",
                                  "the request line and headers are longer than the limit of " +
                                      std::to_string(server_.options.max_header_bytes) +
                                      " bytes");
  }

  void handle() {
    phase_ = Phase::handling;
    server_.requests.fetch_add(1, std::memory_order_relaxed);
    const auto& request = parser_->get();
    const unsigned version = request.version();
    const bool has_body = !parser_->is_done() || parser_->chunked() ||
                          (parser_->content_length() && *parser_->content_length() > 0);
    bool keep_alive = request.keep_alive() && !has_body;

    detail::HttpResponse response;
    if (version != 10 && version != 11) {
      response = detail::error_response(
          400, "bad_request",
          "unsupported HTTP version " + std::to_string(version / 10) + "." +
              std::to_string(version % 10) + "; expected HTTP/1.1 or HTTP/1.0");
      keep_alive = false;
    } else if (request.method() != http::verb::get) {
      response = detail::error_response(
          405, "method_not_allowed",
          "method '" + printable(sv(request.method_string())) +
              "' is not allowed; every endpoint answers GET only");
      response.headers.emplace_back("Allow", "GET");
    } else if (has_body) {
      response = detail::error_response(413, "payload_too_large",
                                        "a GET request must not carry a body (Content-Length "
                                        "or Transfer-Encoding was sent)");
    } else if (request.target().size() > server_.options.max_target_bytes) {
      response = detail::error_response(
          414, "uri_too_long",
          "the request target is " + std::to_string(request.target().size()) +
              " bytes, longer than the limit of " +
              std::to_string(server_.options.max_target_bytes));
      keep_alive = false;
    } else if (request.count(http::field::authorization) > 1) {
      response = detail::error_response(400, "bad_request",
                                        "the Authorization header was sent more than once");
      keep_alive = false;
    } else {
      const auto authorization = request.find(http::field::authorization);
      detail::HttpRequest call;
      call.method = sv(request.method_string());
      call.target = sv(request.target());
      if (authorization != request.end()) {
        call.has_authorization = true;
        call.authorization = sv(authorization->value());
      }
      try {
        response = server_.handler(call);
      } catch (...) {
        response = detail::error_response(500, "internal", "internal error");
      }
      // A status Beast cannot send with a body (1xx, 204, 304) or no status at all: the
      // handler is broken, not the request.
      if (response.status < 200 || response.status > 599 || response.status == 204 ||
          response.status == 304) {
        response = detail::error_response(500, "internal", "internal error");
      }
    }
    send(response, version == 10 ? 10 : 11, !keep_alive);
  }

  void send(const detail::HttpResponse& response, unsigned version, bool close_after) {
    if (server_.grace_over.load()) {  // a handler returned after shutdown_grace: too late
      close();
      return;
    }
    phase_ = Phase::writing;
    close_after_write_ = close_after || server_.stopping.load();
    server_.count(response.status);
    response_.emplace();
    Response& res = *response_;
    res.version(version);
    res.result(response.status);
    res.set(http::field::server, "annals");
    res.set(http::field::content_type, response.content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : response.headers) res.set(name, value);  // may override ours
    res.body() = response.body;
    res.keep_alive(!close_after_write_);
    res.prepare_payload();
    arm_timer(server_.options.write_timeout);
    http::async_write(socket_, res,
                      asio::bind_executor(strand_, [self = shared_from_this()](
                                                       const error_code& ec, std::size_t) {
                        self->on_write(ec);
                      }));
  }

  void on_write(const error_code& ec) {
    disarm_timer();
    response_.reset();
    if (phase_ == Phase::closed) return;
    if (ec) {
      close();
    } else if (close_after_write_) {
      linger();
    } else {
      read();
    }
  }

  void linger() {
    phase_ = Phase::lingering;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm_timer(std::min(kLingerTime, server_.options.request_timeout));
    drain();
  }

  void drain() {
    socket_.async_read_some(
        asio::buffer(drain_),
        asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec,
                                                                 std::size_t n) {
          self->drained_ += n;
          if (ec || self->drained_ > kLingerBytes || self->phase_ == Phase::closed) {
            self->close();
          } else {
            self->drain();
          }
        }));
  }

  void close() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    disarm_timer();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  Impl& server_;
  Strand strand_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::optional<Response> response_;
  std::array<char, 4096> drain_{};
  std::size_t drained_ = 0;
  Phase phase_ = Phase::reading;
  bool timed_out_ = false;
  bool aborted_ = false;
  bool close_after_write_ = false;
  bool counted_;
};

void Server::Impl::listen() {
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(options.address, ec);
  if (ec) {
    throw InvalidArgument("ServerOptions.address '" + printable(options.address) +
                          "' is not an IPv4 or IPv6 address literal (e.g. 127.0.0.1 or ::1)");
  }
  const tcp::endpoint endpoint(address, options.port);
  const auto fail = [&](std::string_view what) {
    throw StoreError("cannot listen on " + endpoint_text(options.address, options.port) + ": " +
                         std::string(what) + ": " + ec.message(),
                     false);
  };
  if (acceptor.open(endpoint.protocol(), ec)) fail("open");
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec)) fail("setsockopt");
  if (acceptor.bind(endpoint, ec)) fail("bind");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec)) fail("listen");
  port = acceptor.local_endpoint(ec).port();
  if (ec) fail("getsockname");
}

// Called with `mutex` held.
void Server::Impl::accept() {
  if (stopping.load() || !acceptor.is_open()) return;
  acceptor.async_accept(asio::make_strand(ioc), [this](const error_code& ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Server::Impl::on_accept(const error_code& ec, tcp::socket socket) {
  std::lock_guard lock(mutex);
  if (stopping.load() || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of file descriptors or the like: try again a little later rather than spin.
    accept_retry.expires_after(std::chrono::milliseconds(50));
    accept_retry.async_wait([this](const error_code& wait_ec) {
      if (wait_ec) return;
      std::lock_guard again(mutex);
      accept();
    });
    return;
  }
  const bool refuse = live.load() >= options.max_connections;
  if (refuse) {
    refused.fetch_add(1, std::memory_order_relaxed);
  } else {
    live.fetch_add(1);
    accepted.fetch_add(1, std::memory_order_relaxed);
  }
  auto session = std::make_shared<Session>(*this, std::move(socket), !refuse);
  sessions.emplace(session.get(), session);
  asio::post(session->strand(), [session, refuse] { session->start(refuse); });
  accept();
}

void Server::Impl::on_session_closed(Session* session) {
  std::lock_guard lock(mutex);
  sessions.erase(session);
  if (sessions.empty() && stopping.load() && !destroying.load()) {
    asio::post(control, [this] { grace.cancel(); });
  }
}

void Server::Impl::stop() {
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(mutex);
    if (stopping.exchange(true)) return;
    error_code ignored;
    acceptor.close(ignored);  // new connections are refused from here on
    accept_retry.cancel();
    for (const auto& [key, weak] : sessions) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
  }
  for (const auto& session : open) {
    asio::post(session->strand(), [session] { session->on_stop(); });
  }
  asio::post(control, [this] {
    if (signals) {
      error_code ignored;
      signals->cancel(ignored);
    }
    grace.expires_after(options.shutdown_grace);
    grace.async_wait([this](const error_code& ec) {
      if (ec) return;  // every connection closed in time
      grace_over.store(true);
      std::vector<std::shared_ptr<Session>> left;  // destroyed after the lock is released
      {
        std::lock_guard lock(mutex);
        for (const auto& [key, weak] : sessions) {
          if (auto session = weak.lock()) left.push_back(std::move(session));
        }
      }
      for (const auto& session : left) {
        asio::post(session->strand(), [session] { session->force_close(); });
      }
    });
    std::lock_guard lock(mutex);
    if (sessions.empty()) grace.cancel();
  });
}

// One server thread. An exception out of a completion handler (memory exhausted while building
// a response, say) ends only that connection's chain of handlers; the thread goes on serving.
void Server::Impl::serve_thread() {
  tl_io_impl = this;
  for (;;) {
    try {
      ioc.run();
      break;
    } catch (...) {
    }
  }
  tl_io_impl = nullptr;
}

void Server::Impl::run_threads(std::size_t count) {
  const auto body = [this] { serve_thread(); };
  std::vector<std::thread> extra;
  extra.reserve(count - 1);
  for (std::size_t i = 1; i < count; ++i) extra.emplace_back(body);
  body();
  for (std::thread& t : extra) t.join();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  validate(impl_->options);
  impl_->listen();
  std::lock_guard lock(impl_->mutex);
  impl_->accept();
}

Server::Server(RepositoryFactory factory, KeyRing keys, ServerOptions options)
    : Server(std::make_unique<Impl>(
                 [api = std::make_shared<const detail::Api>(std::move(factory), std::move(keys))](
                     const detail::HttpRequest& request) { return api->handle(request); },
                 std::move(options))) {}

Server::~Server() {
  stop();
  impl_->destroying.store(true);
}

std::uint16_t Server::port() const noexcept { return impl_->port; }
const ServerOptions& Server::options() const noexcept { return impl_->options; }

void Server::run() { impl_->run_threads(impl_->options.threads); }

int Server::run_until_signal(const std::function<void()>& on_ready) {
  impl_->signals.emplace(impl_->control, SIGINT, SIGTERM);
  impl_->signals->async_wait([impl = impl_.get()](const error_code& ec, int signal) {
    if (ec) return;
    impl->signal_number.store(signal);
    impl->stop();
  });
  if (on_ready) {
    try {
      on_ready();
    } catch (...) {
      stop();
      run();  // the stop, then the io_context runs out of work
      impl_->signals.reset();
      throw;
    }
  }
  run();
  impl_->signals.reset();  // the signals' default actions again
  return impl_->signal_number.load();
}

void Server::start() {
  std::lock_guard lock(impl_->threads_mutex);
  for (std::size_t i = 0; i < impl_->options.threads; ++i) {
    impl_->background.emplace_back([impl = impl_.get()] { impl->serve_thread(); });
  }
}

void Server::stop() {
  impl_->stop();
  if (impl_->on_io_thread()) return;
  std::lock_guard lock(impl_->threads_mutex);
  for (std::thread& t : impl_->background) {
    if (t.joinable()) t.join();
  }
  impl_->background.clear();
}

ServerStats Server::stats() const {
  return {impl_->accepted.load(), impl_->refused.load(), impl_->requests.load(),
          impl_->responses_4xx.load(), impl_->responses_5xx.load()};
}

std::unique_ptr<Server> detail::ServerAccess::make(Handler handler, ServerOptions options) {
  return std::unique_ptr<Server>(
      new Server(std::make_unique<Server::Impl>(std::move(handler), std::move(options))));
}

}  // namespace annals::serve
