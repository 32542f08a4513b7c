// SKELETON: the http helper implements this file (the one translation unit with Boost.Beast).
#include "annals/serve/server.hpp"

#include "annals/events/error.hpp"
#include "api.hpp"

namespace annals::serve {

struct Server::Impl {
  ServerOptions options;
};

Server::Server(RepositoryFactory, KeyRing, ServerOptions options)
    : impl_(std::make_unique<Impl>(Impl{std::move(options)})) {
  throw InvalidArgument("skeleton");
}
Server::~Server() = default;
std::uint16_t Server::port() const noexcept { return 0; }
const ServerOptions& Server::options() const noexcept { return impl_->options; }
void Server::run() {}
int Server::run_until_signal() { return 0; }
void Server::start() {}
void Server::stop() {}
ServerStats Server::stats() const { return {}; }

}  // namespace annals::serve
