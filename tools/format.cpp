#include "format.hpp"

#include <chrono>
#include <cstdio>
#include <iomanip>
#include <ostream>

#include "pg_probe.hpp"

namespace annals::cli {

std::string existing_store_uri(const Target& target) {
  std::string uri = store_uri(target);
  if (const auto file = sqlite_file(uri); file && !file->empty()) {
    std::error_code ec;
    const auto status = std::filesystem::status(*file, ec);
    if (!std::filesystem::exists(status)) {
      throw StoreError("database '" + file->string() + "' does not exist", false);
    }
    if (!std::filesystem::is_regular_file(status)) {
      throw StoreError("'" + file->string() + "' is not a database file", false);
    }
  }
  if (parse_store_uri(uri).scheme == "postgresql") require_postgres_store(uri);
  return uri;
}

nlohmann::ordered_json optional_time(const std::optional<Timestamp>& t) {
  return t ? nlohmann::ordered_json(format_timestamp(*t)) : nlohmann::ordered_json(nullptr);
}

namespace {

nlohmann::ordered_json optional_text(const std::optional<std::string>& s) {
  return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr);
}

}  // namespace

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

void print_runs_table(std::ostream& out, const std::vector<WorkflowRunView>& runs) {
  const auto flags = out.flags();
  out << std::left << std::setw(18) << "RUN" << std::setw(11) << "STATUS" << std::setw(20)
      << "WORKFLOW" << std::setw(10) << "BY" << std::right << std::setw(6) << "STEPS"
      << std::setw(8) << "TOKENS" << std::setw(9) << "ELAPSED"
      << "  " << std::left << "CREATED"
      << "\n";
  for (const WorkflowRunView& r : runs) {
    char elapsed[32];
    std::snprintf(elapsed, sizeof elapsed, "%.1fs", r.elapsed_time);
    out << std::left << std::setw(18) << r.id << std::setw(11) << r.status << std::setw(20)
        << r.workflow_id << std::setw(10) << r.created_by << std::right << std::setw(6)
        << r.total_steps << std::setw(8) << r.total_tokens << std::setw(9) << elapsed << "  "
        << std::left << format_timestamp(r.created_at) << "\n";
  }
  out.flags(flags);
}

std::string human_bytes(std::uintmax_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  if (unit == 0) {
    std::snprintf(buffer, sizeof buffer, "%ju B", bytes);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f %s", value, kUnits[unit]);
  }
  return buffer;
}

}  // namespace annals::cli
