#include "reliability/harness.hpp"

#include <algorithm>
#include <stdexcept>

#include "annals/projections/checkpoint.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/projections/workflow_projection.hpp"

namespace annals::reliability {

std::string to_hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// ---- the workflow workload ---------------------------------------------------------------------

WorkflowWorkload::WorkflowWorkload(std::uint64_t seed, std::string run_prefix)
    : rng_(seed), prefix_(std::move(run_prefix)) {}

WorkflowRun& WorkflowWorkload::create_run(const EventMetadata& meta) {
  const std::string id = prefix_ + "-r" + std::to_string(next_run_++);
  EventMetadata m = meta;
  m.tenant_id = "t" + std::to_string(rng_() % 3);
  WorkflowRun run = WorkflowRun::create({.run_id = id,
                                         .tenant_id = m.tenant_id,
                                         .app_id = "app-" + std::to_string(rng_() % 2),
                                         .workflow_id = "wf",
                                         .triggered_from = rng_() % 2 ? "app-run" : "debugging",
                                         .created_by = "crash-test",
                                         .inputs = R"({"q":"hello"})",
                                         .created_at = now()},
                                        m);
  return runs_.insert_or_assign(id, std::move(run)).first->second;
}

void WorkflowWorkload::advance(WorkflowRun& run, const EventMetadata& meta, bool may_finish) {
  const NodeExecution* running = nullptr;
  for (const auto& n : run.node_executions()) {
    if (n.status == NodeStatus::running) running = &n;
  }
  const auto roll = rng_() % 100;
  if (may_finish && roll < 6) {
    run.mark_deleted({.deleted_by = "ops", .deleted_at = now()}, meta);
    return;
  }
  if (may_finish && roll < 12) {
    run.stop({.stopped_by = "ops", .finished_at = now()}, meta);
    return;
  }
  if (running != nullptr) {
    const std::string id = running->id;
    if (roll < 80) {
      run.complete_node({.node_execution_id = id,
                         .outputs = R"({"answer":)" + std::to_string(rng_() % 1000) + "}",
                         .total_tokens = rng_() % 500,
                         .finished_at = now()},
                        meta);
    } else {
      run.fail_node({.node_execution_id = id, .error = "node error", .finished_at = now()}, meta);
    }
    if (may_finish && (run.node_executions().size() >= 5 || roll % 5 == 0)) {
      if (roll < 90) {
        run.succeed({.outputs = R"({"done":true})", .finished_at = now()}, meta);
      } else {
        run.fail({.error = "run failed", .finished_at = now()}, meta);
      }
    }
    return;
  }
  const std::size_t index = run.node_executions().size();
  run.start_node({.node_execution_id = run.id() + "-n" + std::to_string(index),
                  .node_id = "node" + std::to_string(index),
                  .node_type = index % 2 ? "llm" : "tool",
                  .title = "step " + std::to_string(index),
                  .predecessor_node_id = index == 0 ? "" : "node" + std::to_string(index - 1),
                  .inputs = R"({"i":)" + std::to_string(index) + "}",
                  .started_at = now()},
                 meta);
}

std::vector<WorkflowRun*> WorkflowWorkload::next(const std::string& correlation_id) {
  const EventMetadata meta{.actor = "crash-test", .correlation_id = correlation_id};
  const auto roll = rng_() % 100;
  std::vector<WorkflowRun*> out;
  if (roll < 20 || runs_.size() < 2) {
    WorkflowRun& run = create_run(meta);
    if (roll % 2 == 0) advance(run, meta, false);
    out.push_back(&run);
  } else if (roll < 65) {
    auto it = std::next(runs_.begin(), static_cast<long>(rng_() % runs_.size()));
    advance(it->second, meta, true);
    out.push_back(&it->second);
  } else {
    // A batch over two or three runs: existing ones and sometimes a new one.
    const std::size_t parts = 2 + rng_() % 2;
    std::vector<std::string> ids;
    for (const auto& [id, run] : runs_) ids.push_back(id);
    std::shuffle(ids.begin(), ids.end(), rng_);
    for (std::size_t i = 0; i < parts; ++i) {
      if (i < ids.size() && rng_() % 4 != 0) {
        WorkflowRun& run = runs_.at(ids[i]);
        advance(run, meta, true);
        if (rng_() % 3 == 0 && !run.is_finished() && !run.is_deleted()) advance(run, meta, true);
        out.push_back(&run);
      } else {
        WorkflowRun& run = create_run(meta);
        advance(run, meta, false);
        out.push_back(&run);
      }
    }
  }
  return out;
}

void WorkflowWorkload::saved(const std::vector<WorkflowRun*>& runs) {
  std::vector<std::string> finished;
  for (WorkflowRun* run : runs) {
    if (run->is_finished() || run->is_deleted()) finished.push_back(run->id());
  }
  for (const auto& id : finished) runs_.erase(id);
}

std::vector<SentEvent> pending_of(const std::vector<WorkflowRun*>& runs, PayloadFormat format) {
  std::vector<SentEvent> out;
  for (WorkflowRun* run : runs) {
    const std::vector<NewEvent> events = run->encode_pending_events(format);
    std::uint64_t version = run->persisted_version();
    for (const NewEvent& e : events) {
      out.push_back({run->stream_id(), ++version, to_string(e.event_id), e.type, e.payload});
    }
  }
  return out;
}

std::vector<std::pair<std::uint64_t, SentEvent>> append_runs(
    EventStore& store, const std::vector<WorkflowRun*>& runs) {
  const PayloadFormat format = store.payload_format();
  std::vector<SentEvent> sent = pending_of(runs, format);
  std::vector<StreamAppend> batch;
  for (WorkflowRun* run : runs) {
    const std::uint64_t loaded = run->persisted_version();
    batch.push_back({run->stream_id(),
                     loaded == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(loaded),
                     run->encode_pending_events(format)});
  }
  const AppendResult result =
      batch.size() == 1
          ? store.append(batch[0].stream_id, batch[0].expected, std::move(batch[0].events))
          : store.append(std::move(batch));
  std::vector<std::pair<std::uint64_t, SentEvent>> out;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    out.emplace_back(result.first_position + i, std::move(sent[i]));
  }
  for (WorkflowRun* run : runs) {
    run->mark_saved(run->persisted_version() + run->pending_events().size());
  }
  return out;
}

// ---- checks ---------------------------------------------------------------------------------

std::string compare_with_rebuild(SqlEventStore& store) {
  WorkflowProjection projection;
  const RebuildReport report = rebuild(store, projection, {.swap_when_different = false});
  if (report.identical) return "";
  std::string out =
      "read tables differ from a rebuild at position " + std::to_string(report.position) + ":";
  for (const auto& t : report.tables) {
    out += " " + t.table + " live " + std::to_string(t.live_rows) + " rows, rebuilt " +
           std::to_string(t.shadow_rows) + " rows";
    for (const auto& d : t.first_differences) out += "; " + d;
  }
  return out;
}

std::optional<std::uint64_t> workflow_checkpoint(SqlEventStore& store) {
  std::optional<std::uint64_t> out;
  store.read_transaction([&](SqlSession& sql) {
    if (sql.query("SELECT 1 FROM sqlite_master WHERE name = 'annals_projections'").empty()) return;
    if (auto c = read_checkpoint(sql, WorkflowProjection::kName)) out = c->position;
  });
  return out;
}

std::vector<std::string> table_names(SqlEventStore& store) {
  std::vector<std::string> out;
  store.read_transaction([&](SqlSession& sql) {
    for (const SqlRow& row :
         sql.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) {
      out.push_back(row.text(0));
    }
  });
  return out;
}

}  // namespace annals::reliability
