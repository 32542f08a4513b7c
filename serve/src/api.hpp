#pragma once

// The API's logic, free of any transport: a request's method, target and Authorization header
// in, a status and a body out. http_server.cpp (Boost.Beast) parses requests, enforces sizes,
// timeouts and connection limits, and calls Api::handle for every request it could parse.
// Internal to the serve component.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annals/repositories/repository_factory.hpp"
#include "annals/serve/keys.hpp"

namespace annals::serve::detail {

struct HttpRequest {
  std::string_view method;         // as sent, e.g. "GET"
  std::string_view target;         // origin-form, e.g. "/v1/apps/a/workflow-runs?limit=5"
  std::string_view authorization;  // the Authorization header's value; empty if none
  bool has_authorization = false;  // whether the header was present (even empty)
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers{};  // extra headers
};

// The JSON error body every 4xx/5xx carries:
//   {"error": {"status": 404, "code": "not_found", "message": "no run 'r-9' in app 'bot'"}}
// `code` is a stable machine-readable word; `message` says what was wrong (the value, what was
// expected). A 401 also carries WWW-Authenticate: Bearer.
[[nodiscard]] HttpResponse error_response(unsigned status, std::string_view code,
                                          std::string_view message);

// The endpoints and their errors are listed in docs/serve.md. Every /v1 target is authenticated
// before anything else in it is looked at; the tenant is the key's. A run of another tenant is
// answered exactly as an unknown one (same status, same body).
class Api {
 public:
  Api(RepositoryFactory factory, KeyRing keys);
  ~Api();
  Api(Api&&) noexcept;
  Api& operator=(Api&&) noexcept;

  // Routes and answers one request. Never throws: a failure inside is a 500 with a JSON error
  // whose message says nothing of the cause (the cause goes to stderr, one line); a store error
  // that says "retry later" is a 503 with Retry-After: 1. Thread-safe.
  [[nodiscard]] HttpResponse handle(const HttpRequest& request) const;

 private:
  struct Endpoints;  // the repositories and the verification cache (api.cpp)

  HttpResponse route(const HttpRequest& request) const;

  RepositoryFactory factory_;
  KeyRing keys_;
  std::unique_ptr<Endpoints> endpoints_;
};

// The queries GET /v1/apps walks the runs page index with (a skip-scan): the tenant's first
// (app_id, triggered_from) pair ($1 tenant), and the pair after a given one ($2 app, $3 trigger).
// Each is one index seek; tests EXPLAIN them.
[[nodiscard]] std::string first_app_trigger_sql();
[[nodiscard]] std::string next_app_trigger_sql();

// The audit viewer page (serve/viewer/index.html, embedded at build time).
[[nodiscard]] std::string_view viewer_html() noexcept;

}  // namespace annals::serve::detail
