#include "annals/repositories/workflow_run_repository.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_set>
#include <utility>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"
#include "annals/projections/workflow_projection.hpp"

namespace annals {

namespace {

std::shared_ptr<SqlEventStore> require_store(std::shared_ptr<SqlEventStore> store,
                                             std::string_view owner) {
  if (!store) throw InvalidArgument(std::string(owner) + ": the event store is null");
  return store;
}

std::int64_t sql_count(std::size_t n) {
  return static_cast<std::int64_t>(std::min<std::size_t>(n, INT64_MAX));
}

std::optional<std::string> none_if_empty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// The keyset page of (created_at, id) pairs delete_runs_by_app walks: the pagination index
// covers it.
std::string select_run_keys(bool after_cursor) {
  return "SELECT created_at, id FROM " + std::string(WorkflowProjection::kRunsTable) +
         " WHERE tenant_id = $1 AND app_id = $2 AND triggered_from = $3" +
         (after_cursor ? " AND (created_at, id) < ($4, $5)" : "") +
         " ORDER BY created_at DESC, id DESC LIMIT " + (after_cursor ? "$6" : "$4");
}

}  // namespace

WorkflowRunView workflow_run_view(const WorkflowRun& run) {
  const WorkflowRunState& s = run.state();
  WorkflowRunView v;
  v.id = s.run_id;
  v.tenant_id = s.tenant_id;
  v.app_id = s.app_id;
  v.workflow_id = s.workflow_id;
  v.triggered_from = s.triggered_from;
  v.status = std::string(to_string(s.status));
  v.inputs = s.inputs;
  v.outputs = none_if_empty(s.outputs);
  v.error = none_if_empty(s.error);
  v.elapsed_time = s.elapsed_time;
  v.total_tokens = s.total_tokens;
  v.total_steps = s.total_steps;
  v.created_by = s.created_by;
  v.created_at = s.created_at;
  v.finished_at = s.finished_at;
  v.version = run.version();
  return v;
}

WorkflowRunRepository::WorkflowRunRepository(std::shared_ptr<SqlEventStore> store)
    : store_(require_store(std::move(store), "WorkflowRunRepository")), aggregates_(store_) {}

InfiniteScrollPagination<WorkflowRunView> WorkflowRunRepository::get_paginated_workflow_runs(
    std::string_view tenant_id, std::string_view app_id, std::string_view triggered_from,
    std::size_t limit, std::optional<std::string> last_id) const {
  if (limit < 1 || limit > kMaxPageSize) {
    throw InvalidArgument("get_paginated_workflow_runs: limit " + std::to_string(limit) +
                          " is outside 1.." + std::to_string(kMaxPageSize));
  }
  const std::string tenant(tenant_id), app(app_id), trigger(triggered_from);
  const std::int64_t fetch = sql_count(limit + 1);  // one more than asked: has_more
  std::vector<SqlRow> rows;
  bool cursor_found = true;
  store_->read_transaction([&](SqlSession& sql) {
    if (!last_id) {
      rows = sql.query(workflow_sql::select_runs_page(false), {tenant, app, trigger, fetch});
      return;
    }
    // The cursor must be a current run of the same tenant, app and trigger: an id from
    // anywhere else would leak where it sits in someone else's list.
    const std::vector<SqlRow> cursor =
        sql.query("SELECT created_at, id FROM " + std::string(WorkflowProjection::kRunsTable) +
                      " WHERE id = $1 AND tenant_id = $2 AND app_id = $3 AND triggered_from = $4",
                  {*last_id, tenant, app, trigger});
    if (cursor.empty()) {
      cursor_found = false;
      return;
    }
    rows =
        sql.query(workflow_sql::select_runs_page(true),
                  {tenant, app, trigger, cursor.front().integer(0), cursor.front().text(1), fetch});
  });
  if (!cursor_found) {
    throw NotFound("get_paginated_workflow_runs: last_id '" + printable(*last_id) +
                   "' is not a run of tenant '" + printable(tenant) + "', app '" + printable(app) +
                   "' and triggered_from '" + printable(trigger) + "'");
  }
  InfiniteScrollPagination<WorkflowRunView> page;
  page.limit = limit;
  page.has_more = rows.size() > limit;
  if (page.has_more) rows.resize(limit);
  page.data.reserve(rows.size());
  for (const SqlRow& row : rows) page.data.push_back(workflow_sql::run_from_row(row));
  return page;
}

std::optional<WorkflowRunView> WorkflowRunRepository::get_workflow_run_by_id(
    std::string_view tenant_id, std::string_view app_id, std::string_view run_id) const {
  std::vector<SqlRow> rows;
  store_->read_transaction([&](SqlSession& sql) {
    rows = sql.query("SELECT " + workflow_sql::run_columns() + " FROM " +
                         std::string(WorkflowProjection::kRunsTable) +
                         " WHERE id = $1 AND tenant_id = $2 AND app_id = $3",
                     {std::string(run_id), std::string(tenant_id), std::string(app_id)});
  });
  if (rows.empty()) return std::nullopt;
  return workflow_sql::run_from_row(rows.front());
}

std::vector<WorkflowRunView> WorkflowRunRepository::get_expired_runs_batch(
    std::string_view tenant_id, Timestamp before, std::size_t batch_size) const {
  if (batch_size == 0) throw InvalidArgument("get_expired_runs_batch: batch_size is 0");
  std::vector<SqlRow> rows;
  store_->read_transaction([&](SqlSession& sql) {
    rows = sql.query(workflow_sql::select_expired_runs(),
                     {std::string(tenant_id), to_micros(before), sql_count(batch_size)});
  });
  std::vector<WorkflowRunView> out;
  out.reserve(rows.size());
  for (const SqlRow& row : rows) out.push_back(workflow_sql::run_from_row(row));
  return out;
}

std::size_t WorkflowRunRepository::delete_runs_by_ids(std::string_view tenant_id,
                                                      const std::vector<std::string>& run_ids) {
  std::vector<std::string> distinct;
  std::unordered_set<std::string> seen;
  for (const std::string& id : run_ids) {
    if (!id.empty() && seen.insert(id).second) distinct.push_back(id);
  }
  if (distinct.empty()) return 0;
  return delete_batch(tenant_id, distinct);
}

std::size_t WorkflowRunRepository::delete_runs_by_app(std::string_view tenant_id,
                                                      std::string_view app_id,
                                                      std::size_t batch_size) {
  if (batch_size == 0) throw InvalidArgument("delete_runs_by_app: batch_size is 0");
  const std::string tenant(tenant_id), app(app_id);
  std::vector<std::string> triggers;
  store_->read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row : sql.query("SELECT DISTINCT triggered_from FROM " +
                                           std::string(WorkflowProjection::kRunsTable) +
                                           " WHERE tenant_id = $1 AND app_id = $2",
                                       {tenant, app})) {
      triggers.push_back(row.text(0));
    }
  });
  // Walk each trigger's runs with the pagination keyset, so every run is visited once even if
  // the read table still shows runs this call already deleted (an asynchronous projection).
  std::size_t deleted = 0;
  for (const std::string& trigger : triggers) {
    std::optional<std::pair<std::int64_t, std::string>> cursor;
    for (;;) {
      std::vector<SqlRow> rows;
      store_->read_transaction([&](SqlSession& sql) {
        if (cursor) {
          rows = sql.query(select_run_keys(true), {tenant, app, trigger, cursor->first,
                                                   cursor->second, sql_count(batch_size)});
        } else {
          rows = sql.query(select_run_keys(false), {tenant, app, trigger, sql_count(batch_size)});
        }
      });
      if (rows.empty()) break;
      std::vector<std::string> ids;
      ids.reserve(rows.size());
      for (const SqlRow& row : rows) ids.push_back(row.text(1));
      cursor.emplace(rows.back().integer(0), rows.back().text(1));
      deleted += delete_batch(tenant_id, ids);
      if (rows.size() < batch_size) break;
    }
  }
  return deleted;
}

std::size_t WorkflowRunRepository::delete_batch(std::string_view tenant_id,
                                                const std::vector<std::string>& ids) {
  for (int attempt = 1;; ++attempt) {
    std::vector<WorkflowRun> runs;
    runs.reserve(ids.size());
    for (const std::string& id : ids) {
      std::optional<WorkflowRun> run;
      try {
        run = aggregates_.find(id);
      } catch (const InvalidArgument&) {
        continue;  // not even a valid stream id (too long, a NUL byte): no such run
      }
      if (!run || run->is_deleted() || run->state().tenant_id != tenant_id) continue;
      RunDeleted deleted;
      deleted.reason = "deleted by the application";
      deleted.deleted_at = std::max(now(), run->state().created_at);
      run->mark_deleted(std::move(deleted));
      runs.push_back(std::move(*run));
    }
    if (runs.empty()) return 0;
    std::vector<WorkflowRun*> pointers;
    pointers.reserve(runs.size());
    for (WorkflowRun& run : runs) pointers.push_back(&run);
    try {
      aggregates_.save_all(pointers);
      return runs.size();
    } catch (const ConcurrencyError&) {
      if (attempt >= 2) throw;  // someone else keeps changing these runs: let the caller decide
    }
  }
}

}  // namespace annals
