#pragma once

// The JSON form of the read models, shared by `annals serve` and the annals program's --json
// output: one shape everywhere (docs/serve.md shows it). Times are ISO 8601 UTC with
// microseconds (format_timestamp), absent optionals are null.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/workflow_views.hpp"
#include "annals/repositories/pagination.hpp"

namespace annals::serve {

[[nodiscard]] nlohmann::ordered_json to_json(const WorkflowRunView& run);
[[nodiscard]] nlohmann::ordered_json to_json(const InfiniteScrollPagination<WorkflowRunView>& page);
[[nodiscard]] nlohmann::ordered_json to_json(const NodeExecutionView& node);
[[nodiscard]] nlohmann::ordered_json to_json(const WorkflowRunState& state);
[[nodiscard]] nlohmann::ordered_json optional_time(const std::optional<Timestamp>& t);
[[nodiscard]] nlohmann::ordered_json optional_text(const std::optional<std::string>& s);

}  // namespace annals::serve
