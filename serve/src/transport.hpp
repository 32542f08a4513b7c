#pragma once

// The transport's seam, internal to the serve component and its tests: a Server whose requests
// go to any handler instead of detail::Api (tests inject slow or throwing handlers). The handler
// is called on the server's threads, concurrently, for every request the transport could parse
// (GET only; the transport answers every other method, oversized or malformed request itself).
// An exception it throws becomes a 500 "internal" and the connection keeps serving.

#include <functional>
#include <memory>

#include "annals/serve/server.hpp"
#include "api.hpp"

namespace annals::serve::detail {

using Handler = std::function<HttpResponse(const HttpRequest&)>;

struct ServerAccess {
  // Validates the options, binds and listens, like Server's public constructor.
  [[nodiscard]] static std::unique_ptr<Server> make(Handler handler, ServerOptions options = {});
};

}  // namespace annals::serve::detail
