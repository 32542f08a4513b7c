#pragma once

// A small blocking HTTP/1.1 client over a loopback TCP socket, for the serve tests: it sends
// exactly the bytes it is given (so tests can send malformed requests) and reads responses that
// carry Content-Length (annals serve always sends it). Not thread-safe; one per thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace annals::test {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  [[nodiscard]] std::string header(const std::string& lowercase_name) const;
};

class HttpClient {
 public:
  // Connects to host:port (IPv4 literal). Throws std::runtime_error if it cannot.
  explicit HttpClient(std::uint16_t port, std::string host = "127.0.0.1");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends "GET target HTTP/1.1" with Host, the bearer key (if any) and extra header lines
  // ("Name: value"), then reads the response. Throws std::runtime_error if the connection
  // closes or no full response arrives within `timeout`.
  HttpReply get(std::string_view target, std::optional<std::string> bearer = std::nullopt,
                const std::vector<std::string>& extra_headers = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Sends raw bytes. Returns false if the peer closed the connection (EPIPE/ECONNRESET).
  bool send_raw(std::string_view bytes);
  // Reads one response; nullopt if the peer closed the connection before a full one arrived.
  // Throws std::runtime_error on timeout.
  std::optional<HttpReply> read_reply(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Whether the peer closes the connection (EOF or reset) within `timeout`, discarding any bytes.
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buffer_;  // bytes read but not yet consumed
};

// One request on a fresh connection.
HttpReply http_get(std::uint16_t port, std::string_view target,
                   std::optional<std::string> bearer = std::nullopt);

}  // namespace annals::test
