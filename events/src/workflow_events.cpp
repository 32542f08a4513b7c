#include "annals/events/workflow_events.hpp"

#include "annals/events/codec.hpp"

namespace annals {

std::optional<std::string> workflow_payload_json(const RecordedEvent& event) {
  try {
    const WorkflowRunEvent decoded = EventTypeRegistry{}.decode_variant<WorkflowRunEvent>(event);
    return std::visit([](const auto& e) { return encode_payload(e, PayloadFormat::json); },
                      decoded);
  } catch (const Error&) {
    return std::nullopt;  // unknown type or version, or bytes that do not decode
  }
}

}  // namespace annals
