#include "annals/serve/views_json.hpp"

#include <utility>

namespace annals::serve {

nlohmann::ordered_json optional_time(const std::optional<Timestamp>& t) {
  return t ? nlohmann::ordered_json(format_timestamp(*t)) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json optional_text(const std::optional<std::string>& s) {
  return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr);
}

namespace {

// An object built by appending its members to its storage, in order. nlohmann's initializer
// lists build every member as a two-element array first and then copy it into the object; for
// a page of runs that was a third of the server's CPU (annals_bench W9 profile).
class ObjectBuilder {
 public:
  explicit ObjectBuilder(std::size_t members) : json_(nlohmann::ordered_json::object()) {
    members_().reserve(members);
  }
  template <class V>
  ObjectBuilder& add(const char* key, V&& value) {
    members_().emplace_back(key, std::forward<V>(value));  // keys are distinct by construction
    return *this;
  }
  [[nodiscard]] nlohmann::ordered_json take() { return std::move(json_); }

 private:
  nlohmann::ordered_json::object_t& members_() {
    return json_.get_ref<nlohmann::ordered_json::object_t&>();
  }
  nlohmann::ordered_json json_;
};

}  // namespace

nlohmann::ordered_json to_json(const WorkflowRunView& run) {
  return ObjectBuilder(16)
      .add("id", run.id)
      .add("tenant_id", run.tenant_id)
      .add("app_id", run.app_id)
      .add("workflow_id", run.workflow_id)
      .add("triggered_from", run.triggered_from)
      .add("status", run.status)
      .add("inputs", run.inputs)
      .add("outputs", optional_text(run.outputs))
      .add("error", optional_text(run.error))
      .add("elapsed_time", run.elapsed_time)
      .add("total_tokens", run.total_tokens)
      .add("total_steps", run.total_steps)
      .add("created_by", run.created_by)
      .add("created_at", format_timestamp(run.created_at))
      .add("finished_at", optional_time(run.finished_at))
      .add("version", run.version)
      .take();
}

nlohmann::ordered_json to_json(const InfiniteScrollPagination<WorkflowRunView>& page) {
  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  auto& runs = data.get_ref<nlohmann::ordered_json::array_t&>();
  runs.reserve(page.data.size());
  for (const WorkflowRunView& run : page.data) runs.push_back(to_json(run));
  return ObjectBuilder(3)
      .add("data", std::move(data))
      .add("limit", page.limit)
      .add("has_more", page.has_more)
      .take();
}

nlohmann::ordered_json to_json(const NodeExecutionView& n) {
  return ObjectBuilder(18)
      .add("id", n.id)
      .add("tenant_id", n.tenant_id)
      .add("run_id", n.run_id)
      .add("app_id", n.app_id)
      .add("workflow_id", n.workflow_id)
      .add("index", n.index)
      .add("node_id", n.node_id)
      .add("node_type", n.node_type)
      .add("title", n.title)
      .add("predecessor_node_id", n.predecessor_node_id)
      .add("status", n.status)
      .add("inputs", n.inputs)
      .add("outputs", optional_text(n.outputs))
      .add("error", optional_text(n.error))
      .add("elapsed_time", n.elapsed_time)
      .add("total_tokens", n.total_tokens)
      .add("created_at", format_timestamp(n.created_at))
      .add("finished_at", optional_time(n.finished_at))
      .take();
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
