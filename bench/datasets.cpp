#include "datasets.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>

#include "annals/events/codec.hpp"
#include "annals/projections/engine.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/store/sql_event_store.hpp"
#include "raw_sqlite.hpp"

namespace annals::bench {

namespace {

constexpr std::int64_t kEpochMicros = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

std::string json_text(std::size_t length) {
  // {"text":"aaa..."}: 11 bytes of frame.
  const std::size_t fill = length > 11 ? length - 11 : 0;
  return R"({"text":")" + std::string(fill, 'a') + R"("})";
}

std::string node_execution_id(std::size_t run, std::size_t node) {
  std::array<char, 48> text{};
  std::snprintf(text.data(), text.size(), "ne-%08zu-%06zu", run, node);
  return text.data();
}

template <class E>
std::size_t encoded_size(const E& event) {
  return encode_payload(event, PayloadFormat::json).size();
}

// The text that makes the event's payload kPayloadBytes long: the payload is measured with an
// empty text, then the text is padded with letters, which need no escaping.
template <class E, class Set>
std::string sized_text(E event, Set set) {
  set(event, json_text(11));
  const std::size_t base = encoded_size(event);
  return json_text(base >= kPayloadBytes ? 11 : kPayloadBytes - base + 11);
}

NodeStarted node_started(std::size_t run, std::size_t node, const std::string& inputs,
                         Timestamp at) {
  NodeStarted e;
  e.run_id = run_id(run);
  e.node_execution_id = node_execution_id(run, node);
  e.index = static_cast<std::uint32_t>(node);
  e.node_id = "llm";
  e.node_type = "llm";
  e.title = "LLM";
  e.predecessor_node_id = node > 1 ? "llm" : "";
  e.inputs = inputs;
  e.started_at = at;
  return e;
}

NodeCompleted node_completed(std::size_t run, std::size_t node, const std::string& outputs,
                             Timestamp at) {
  NodeCompleted e;
  e.run_id = run_id(run);
  e.node_execution_id = node_execution_id(run, node);
  e.outputs = outputs;
  e.elapsed_time = 0.001;
  e.total_tokens = 42;
  e.finished_at = at;
  return e;
}

RunCreated run_created(std::size_t run, const std::string& inputs, Timestamp at) {
  RunCreated e;
  e.run_id = run_id(run);
  e.tenant_id = std::string(kTenant);
  e.app_id = std::string(kApp);
  e.workflow_id = "workflow-1";
  e.triggered_from = std::string(kTrigger);
  e.created_by = "bench";
  e.inputs = inputs;
  e.created_at = at;
  return e;
}

RunSucceeded run_succeeded(std::size_t run, std::size_t nodes, const std::string& outputs,
                           Timestamp at) {
  RunSucceeded e;
  e.run_id = run_id(run);
  e.outputs = outputs;
  e.elapsed_time = 0.5;
  e.total_tokens = 42 * nodes;
  e.total_steps = static_cast<std::uint32_t>(nodes);
  e.finished_at = at;
  return e;
}

Texts make_texts() {
  const Timestamp t = from_micros(kEpochMicros);
  Texts texts;
  texts.run_inputs = sized_text(run_created(0, "", t),
                                [](RunCreated& e, std::string s) { e.inputs = std::move(s); });
  texts.node_inputs = sized_text(node_started(0, 1, "", t),
                                 [](NodeStarted& e, std::string s) { e.inputs = std::move(s); });
  texts.node_outputs = sized_text(node_completed(0, 1, "", t), [](NodeCompleted& e, std::string s) {
    e.outputs = std::move(s);
  });
  texts.run_outputs = sized_text(run_succeeded(0, 4, "", t),
                                 [](RunSucceeded& e, std::string s) { e.outputs = std::move(s); });
  return texts;
}

template <class E>
NewEvent new_event(const E& e, std::size_t run, Timestamp at) {
  NewEvent out;
  out.type = std::string(E::kType);
  out.schema_version = E::kSchemaVersion;
  out.payload = encode_payload(e, PayloadFormat::json);
  out.metadata.tenant_id = std::string(kTenant);
  out.metadata.actor = "bench";
  out.metadata.correlation_id = run_id(run);
  out.metadata.occurred_at = at;
  out.payload_format = PayloadFormat::json;
  return out;
}

}  // namespace

std::string run_id(std::size_t run) {
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "run-%08zu", run);
  return text.data();
}

std::string stream_id(std::size_t run) { return WorkflowRun::stream_id_for(run_id(run)); }

Timestamp created_at(std::size_t run) {
  return from_micros(kEpochMicros + static_cast<std::int64_t>(run) * 1000);
}

const Texts& texts() {
  static const Texts texts = make_texts();
  return texts;
}

std::string_view run_event_type(std::size_t events, std::size_t version) {
  if (version == 1) return RunCreated::kType;
  if (version == events) return RunSucceeded::kType;
  return version % 2 == 0 ? NodeStarted::kType : NodeCompleted::kType;
}

NewEvent run_event(std::size_t run, std::size_t events, std::size_t version) {
  const Texts& t = texts();
  const Timestamp at = created_at(run) + std::chrono::microseconds(version);
  if (version == 1) return new_event(run_created(run, t.run_inputs, at), run, at);
  if (version == events) {
    return new_event(run_succeeded(run, (events - 2) / 2, t.run_outputs, at), run, at);
  }
  const std::size_t node = (version - 2) / 2 + 1;
  if (version % 2 == 0) return new_event(node_started(run, node, t.node_inputs, at), run, at);
  return new_event(node_completed(run, node, t.node_outputs, at), run, at);
}

WorkflowRun create_run(std::size_t run) {
  RunCreated e = run_created(run, texts().run_inputs, Timestamp{});
  return WorkflowRun::create(std::move(e));
}

void raise_event(WorkflowRun& aggregate, std::size_t run, std::size_t events, std::size_t version) {
  const Texts& t = texts();
  // run_id and timestamps are left empty: the aggregate fills in its own id and the clock.
  if (version == events) {
    RunSucceeded e = run_succeeded(run, 0, t.run_outputs, Timestamp{});
    e.run_id.clear();
    e.elapsed_time = 0;
    e.total_tokens = 0;
    e.total_steps = 0;
    aggregate.succeed(std::move(e));
    return;
  }
  const std::size_t node = (version - 2) / 2 + 1;
  if (version % 2 == 0) {
    NodeStarted e = node_started(run, node, t.node_inputs, Timestamp{});
    e.run_id.clear();
    aggregate.start_node(std::move(e));
  } else {
    NodeCompleted e = node_completed(run, node, t.node_outputs, Timestamp{});
    e.run_id.clear();
    aggregate.complete_node(std::move(e));
  }
}

const std::string& raw_payload(std::string_view type) {
  static const std::map<std::string, std::string, std::less<>> payloads = [] {
    std::map<std::string, std::string, std::less<>> out;
    for (std::size_t version = 1; version <= 4; ++version) {
      NewEvent e = run_event(0, 4, version);
      out.emplace(e.type, std::move(e.payload));
    }
    return out;
  }();
  const auto it = payloads.find(type);
  if (it == payloads.end()) throw std::logic_error("no baseline payload for " + std::string(type));
  return it->second;
}

std::string raw_event_id(std::uint64_t n) {
  std::array<char, 48> text{};
  std::snprintf(text.data(), text.size(), "00000000-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(n));
  return text.data();
}

std::string store_uri(const std::filesystem::path& file, bool synchronous_full) {
  return "sqlite:" + file.string() +
         (synchronous_full ? "?synchronous=full" : "?synchronous=normal");
}

void build_annals_dataset(const std::filesystem::path& file, std::size_t runs,
                          std::size_t events_per_run, bool with_projection) {
  build_annals_dataset_at(store_uri(file, false), runs, events_per_run, with_projection);
}

void build_annals_dataset_at(const std::string& uri, std::size_t runs, std::size_t events_per_run,
                             bool with_projection) {
  constexpr std::size_t kBatchEvents = 10'000;
  std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
  if (with_projection) {
    attach_inline_projections(*store, {std::make_shared<WorkflowProjection>()});
  }
  std::vector<StreamAppend> batch;
  std::size_t in_batch = 0;
  const auto flush = [&] {
    if (batch.empty()) return;
    (void)store->append(std::move(batch));
    batch.clear();
    in_batch = 0;
  };
  for (std::size_t run = 0; run < runs; ++run) {
    for (std::size_t from = 1; from <= events_per_run; from += kBatchEvents) {
      const std::size_t to = std::min(events_per_run, from + kBatchEvents - 1);
      StreamAppend part{stream_id(run), ExpectedVersion::exactly(from - 1), {}};
      part.events.reserve(to - from + 1);
      for (std::size_t v = from; v <= to; ++v)
        part.events.push_back(run_event(run, events_per_run, v));
      in_batch += part.events.size();
      batch.push_back(std::move(part));
      if (in_batch >= kBatchEvents) flush();
    }
  }
  flush();
}

void build_raw_dataset(const std::filesystem::path& file, std::size_t runs,
                       std::size_t events_per_run) {
  raw::Database db(file, false);
  raw::create_events_table(db);
  raw::Statement insert(db.handle(), raw::kInsertEvent);
  db.exec("BEGIN");
  std::uint64_t n = 0;
  for (std::size_t run = 0; run < runs; ++run) {
    const std::string stream = stream_id(run);
    for (std::size_t v = 1; v <= events_per_run; ++v) {
      const std::string_view type = run_event_type(events_per_run, v);
      const std::string event_id = raw_event_id(++n);
      insert.bind_text(1, stream)
          .bind(2, static_cast<std::int64_t>(v))
          .bind_text(3, event_id)
          .bind_text(4, type)
          .bind_blob(5, raw_payload(type))
          .bind(6, to_micros(created_at(run)) + static_cast<std::int64_t>(v));
      insert.run();
    }
  }
  db.exec("COMMIT");
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace annals::bench
