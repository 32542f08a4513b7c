// SKELETON: the api helper implements this file.
#include "annals/serve/keys.hpp"

#include "annals/events/error.hpp"

namespace annals::serve {

KeyRing KeyRing::load(const std::filesystem::path&) { throw InvalidArgument("skeleton"); }
KeyRing KeyRing::parse(std::string_view, std::string_view) { throw InvalidArgument("skeleton"); }
void KeyRing::add(std::string, const KeyHash&) { throw InvalidArgument("skeleton"); }
std::optional<std::string> KeyRing::authenticate(std::string_view) const { return std::nullopt; }
std::string KeyRing::generate_key() { throw InvalidArgument("skeleton"); }
KeyHash KeyRing::hash_key(std::string_view) { throw InvalidArgument("skeleton"); }
std::string KeyRing::file_line(std::string_view, std::string_view) {
  throw InvalidArgument("skeleton");
}

}  // namespace annals::serve
