#include "annals/repositories/node_execution_repository.hpp"

#include <algorithm>
#include <utility>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"
#include "annals/projections/workflow_projection.hpp"

namespace annals {

namespace {

std::shared_ptr<SqlEventStore> require_store(std::shared_ptr<SqlEventStore> store) {
  if (!store) throw InvalidArgument("NodeExecutionRepository: the event store is null");
  return store;
}

std::optional<std::string> none_if_empty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// Load, command, save, with one retry from fresh state if another writer saved the run first.
// `command` returns false to give up without saving. Returns the saved run, or nullopt if the
// run is unknown, deleted or another tenant's, or the command gave up.
template <class Command>
std::optional<WorkflowRun> command_on_run(AggregateRepository<WorkflowRun>& aggregates,
                                          std::string_view tenant_id, std::string_view run_id,
                                          Command&& command) {
  for (int attempt = 1;; ++attempt) {
    std::optional<WorkflowRun> run;
    try {
      run = aggregates.find(run_id);
    } catch (const InvalidArgument&) {
      return std::nullopt;  // not even a valid stream id: no such run
    }
    if (!run || run->is_deleted() || run->state().tenant_id != tenant_id) return std::nullopt;
    if (!command(*run)) return std::nullopt;
    try {
      aggregates.save(*run);
      return run;
    } catch (const ConcurrencyError&) {
      if (attempt >= 2) throw;
    }
  }
}

}  // namespace

NodeExecutionView node_execution_view(const WorkflowRun& run, const NodeExecution& node) {
  const WorkflowRunState& s = run.state();
  NodeExecutionView v;
  v.id = node.id;
  v.tenant_id = s.tenant_id;
  v.run_id = s.run_id;
  v.app_id = s.app_id;
  v.workflow_id = s.workflow_id;
  v.index = node.index;
  v.node_id = node.node_id;
  v.node_type = node.node_type;
  v.title = node.title;
  v.predecessor_node_id = node.predecessor_node_id;
  v.status = std::string(to_string(node.status));
  v.inputs = node.inputs;
  v.outputs = none_if_empty(node.outputs);
  v.error = none_if_empty(node.error);
  v.elapsed_time = node.elapsed_time;
  v.total_tokens = node.total_tokens;
  v.created_at = node.started_at;
  v.finished_at = node.finished_at;
  return v;
}

NodeExecutionRepository::NodeExecutionRepository(std::shared_ptr<SqlEventStore> store)
    : store_(require_store(std::move(store))), aggregates_(store_) {}

std::vector<NodeExecutionView> NodeExecutionRepository::get_node_executions_by_run_id(
    std::string_view tenant_id, std::string_view run_id) const {
  std::vector<SqlRow> rows;
  store_->read_transaction([&](SqlSession& sql) {
    rows = sql.query(workflow_sql::select_node_executions_by_run(),
                     {std::string(tenant_id), std::string(run_id)});
  });
  std::vector<NodeExecutionView> out;
  out.reserve(rows.size());
  for (const SqlRow& row : rows) out.push_back(workflow_sql::node_execution_from_row(row));
  return out;
}

std::optional<NodeExecutionView> NodeExecutionRepository::get_node_execution_by_id(
    std::string_view tenant_id, std::string_view execution_id) const {
  std::vector<SqlRow> rows;
  store_->read_transaction([&](SqlSession& sql) {
    rows = sql.query(workflow_sql::select_node_execution_by_id(),
                     {std::string(tenant_id), std::string(execution_id)});
  });
  if (rows.empty()) return std::nullopt;
  return workflow_sql::node_execution_from_row(rows.front());
}

NodeExecutionView NodeExecutionRepository::create_node_execution(
    std::string_view tenant_id, std::string_view run_id, std::string_view node_id,
    std::string_view node_type, std::string inputs, std::optional<std::string> outputs,
    std::string_view status) {
  constexpr std::string_view kWhat = "create_node_execution";
  if (status != "running" && status != "succeeded" && status != "failed") {
    throw InvalidArgument(std::string(kWhat) + ": status '" + printable(status) +
                          "' is not one of running, succeeded, failed");
  }
  if (status == "running" && outputs) {
    throw InvalidArgument(std::string(kWhat) +
                          ": outputs are given but status is 'running'; a node execution gets "
                          "outputs when it succeeds or fails");
  }
  if (run_id.empty()) throw InvalidArgument(std::string(kWhat) + ": run_id is empty");
  const std::string execution_id = to_string(new_event_id());
  std::optional<WorkflowRun> run =
      command_on_run(aggregates_, tenant_id, run_id, [&](WorkflowRun& r) {
        NodeStarted started;
        started.node_execution_id = execution_id;
        started.node_id = std::string(node_id);
        started.node_type = std::string(node_type);
        started.inputs = inputs;
        if (!r.node_executions().empty()) {
          started.predecessor_node_id = r.node_executions().back().node_id;
        }
        // Never before the run was created, even if this host's clock is behind its creator's.
        started.started_at = std::max(now(), r.state().created_at);
        const Timestamp started_at = started.started_at;
        r.start_node(std::move(started));
        if (status == "succeeded") {
          NodeCompleted completed;
          completed.node_execution_id = execution_id;
          completed.outputs = outputs.value_or("");
          completed.finished_at = started_at;
          r.complete_node(std::move(completed));
        } else if (status == "failed") {
          NodeFailed failed;
          failed.node_execution_id = execution_id;
          failed.error = "failed when created";
          failed.outputs = outputs.value_or("");
          failed.finished_at = started_at;
          r.fail_node(std::move(failed));
        }
        return true;
      });
  if (!run) {
    throw NotFound(std::string(kWhat) + ": run '" + printable(run_id) +
                   "' does not exist in tenant '" + printable(tenant_id) + "'");
  }
  return node_execution_view(*run, *run->find_node_execution(execution_id));
}

std::optional<NodeExecutionView> NodeExecutionRepository::update_node_execution(
    std::string_view tenant_id, std::string_view execution_id, const NodeExecutionUpdate& changes) {
  constexpr std::string_view kWhat = "update_node_execution";
  if (!changes.status) {
    throw InvalidArgument(std::string(kWhat) +
                          ": status is required (succeeded or failed); a node execution changes "
                          "only by finishing");
  }
  const std::string& status = *changes.status;
  if (status != "succeeded" && status != "failed") {
    throw InvalidArgument(std::string(kWhat) + ": status '" + printable(status) +
                          "' is not succeeded or failed; a node execution changes only by "
                          "finishing");
  }
  if (status == "succeeded" && changes.error) {
    throw InvalidArgument(std::string(kWhat) + ": an error is given but status is 'succeeded'");
  }
  if (status == "failed" && changes.error.value_or("").empty()) {
    throw InvalidArgument(std::string(kWhat) + ": status 'failed' needs a non-empty error");
  }

  // Which run owns it, as the read table of this tenant says.
  std::vector<SqlRow> owner;
  store_->read_transaction([&](SqlSession& sql) {
    owner =
        sql.query("SELECT run_id FROM " + std::string(WorkflowProjection::kNodeExecutionsTable) +
                      " WHERE tenant_id = $1 AND id = $2 ORDER BY created_at, run_id LIMIT 1",
                  {std::string(tenant_id), std::string(execution_id)});
  });
  if (owner.empty()) return std::nullopt;
  const std::string run_id = owner.front().text(0);

  std::optional<WorkflowRun> run =
      command_on_run(aggregates_, tenant_id, run_id, [&](WorkflowRun& r) {
        const NodeExecution* node = r.find_node_execution(execution_id);
        if (node == nullptr) return false;
        const Timestamp finished_at = std::max(now(), node->started_at);
        if (status == "succeeded") {
          NodeCompleted completed;
          completed.node_execution_id = std::string(execution_id);
          completed.outputs = changes.outputs.value_or("");
          completed.finished_at = finished_at;
          r.complete_node(std::move(completed));
        } else {
          NodeFailed failed;
          failed.node_execution_id = std::string(execution_id);
          failed.error = *changes.error;
          failed.outputs = changes.outputs.value_or("");
          failed.finished_at = finished_at;
          r.fail_node(std::move(failed));
        }
        return true;
      });
  if (!run) return std::nullopt;
  return node_execution_view(*run, *run->find_node_execution(execution_id));
}

}  // namespace annals
