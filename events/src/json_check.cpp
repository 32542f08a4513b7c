// The only translation unit that includes nlohmann/json: validating a JSON payload is the
// one JSON job the codec's cereal/RapidJSON reader cannot do without knowing the type.
#include <nlohmann/json.hpp>

#include "annals/events/event.hpp"

namespace annals {

bool is_json_document(std::string_view text) noexcept {
  try {
    return nlohmann::json::accept(text);
  } catch (...) {
    return false;
  }
}

}  // namespace annals
