// SKELETON: the api helper replaces this file (routing, auth, JSON).
#include "api.hpp"

#include <nlohmann/json.hpp>
#include <utility>

namespace annals::serve::detail {

HttpResponse error_response(unsigned status, std::string_view code, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = nlohmann::ordered_json{{"error",
                                          {{"status", status},
                                           {"code", std::string(code)},
                                           {"message", std::string(message)}}}}
                      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

Api::Api(RepositoryFactory factory, KeyRing keys)
    : factory_(std::move(factory)), keys_(std::move(keys)) {}

HttpResponse Api::handle(const HttpRequest&) const {
  return error_response(501, "not_implemented", "skeleton");
}

}  // namespace annals::serve::detail
