#include "annals/serve/views_json.hpp"

#include <utility>

namespace annals::serve {

nlohmann::ordered_json optional_time(const std::optional<Timestamp>& t) {
  return t ? nlohmann::ordered_json(format_timestamp(*t)) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json optional_text(const std::optional<std::string>& s) {
  return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json to_json(const WorkflowRunView& run) {
  return nlohmann::ordered_json{{"id", run.id},
                                {"tenant_id", run.tenant_id},
                                {"app_id", run.app_id},
                                {"workflow_id", run.workflow_id},
                                {"triggered_from", run.triggered_from},
                                {"status", run.status},
                                {"inputs", run.inputs},
                                {"outputs", optional_text(run.outputs)},
                                {"error", optional_text(run.error)},
                                {"elapsed_time", run.elapsed_time},
                                {"total_tokens", run.total_tokens},
                                {"total_steps", run.total_steps},
                                {"created_by", run.created_by},
                                {"created_at", format_timestamp(run.created_at)},
                                {"finished_at", optional_time(run.finished_at)},
                                {"version", run.version}};
}

nlohmann::ordered_json to_json(const InfiniteScrollPagination<WorkflowRunView>& page) {
  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  for (const WorkflowRunView& run : page.data) data.push_back(to_json(run));
  return nlohmann::ordered_json{
      {"data", std::move(data)}, {"limit", page.limit}, {"has_more", page.has_more}};
}

nlohmann::ordered_json to_json(const NodeExecutionView& n) {
  return nlohmann::ordered_json{{"id", n.id},
                                {"tenant_id", n.tenant_id},
                                {"run_id", n.run_id},
                                {"app_id", n.app_id},
                                {"workflow_id", n.workflow_id},
                                {"index", n.index},
                                {"node_id", n.node_id},
                                {"node_type", n.node_type},
                                {"title", n.title},
                                {"predecessor_node_id", n.predecessor_node_id},
                                {"status", n.status},
                                {"inputs", n.inputs},
                                {"outputs", optional_text(n.outputs)},
                                {"error", optional_text(n.error)},
                                {"elapsed_time", n.elapsed_time},
                                {"total_tokens", n.total_tokens},
                                {"created_at", format_timestamp(n.created_at)},
                                {"finished_at", optional_time(n.finished_at)}};
}

nlohmann::ordered_json to_json(const WorkflowRunState& s) {
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (const NodeExecution& n : s.node_executions) {
    nodes.push_back(nlohmann::ordered_json{{"id", n.id},
                                           {"index", n.index},
                                           {"node_id", n.node_id},
                                           {"node_type", n.node_type},
                                           {"title", n.title},
                                           {"predecessor_node_id", n.predecessor_node_id},
                                           {"status", std::string(to_string(n.status))},
                                           {"inputs", n.inputs},
                                           {"outputs", n.outputs},
                                           {"error", n.error},
                                           {"elapsed_time", n.elapsed_time},
                                           {"total_tokens", n.total_tokens},
                                           {"started_at", format_timestamp(n.started_at)},
                                           {"finished_at", optional_time(n.finished_at)}});
  }
  return nlohmann::ordered_json{{"run_id", s.run_id},
                                {"tenant_id", s.tenant_id},
                                {"app_id", s.app_id},
                                {"workflow_id", s.workflow_id},
                                {"triggered_from", s.triggered_from},
                                {"created_by", s.created_by},
                                {"status", std::string(to_string(s.status))},
                                {"deleted", s.deleted},
                                {"inputs", s.inputs},
                                {"outputs", s.outputs},
                                {"error", s.error},
                                {"elapsed_time", s.elapsed_time},
                                {"total_tokens", s.total_tokens},
                                {"total_steps", s.total_steps},
                                {"created_at", format_timestamp(s.created_at)},
                                {"finished_at", optional_time(s.finished_at)},
                                {"node_executions", std::move(nodes)}};
}

}  // namespace annals::serve
