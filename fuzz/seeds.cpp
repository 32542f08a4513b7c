// Writes the seed corpora of the fuzz targets into DIR/<target>/ from the library itself, so they
// stay valid encodings as the formats evolve:
//   build-fuzz/fuzz/fuzz_seeds fuzz/corpus
// (scripts/ci-fuzz.sh runs it into a copy; the committed fuzz/corpus is its output plus the
// inputs that once crashed, which stay as regression seeds.)
#include <annals/annals.hpp>
#include <annals/store/export.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

using namespace annals;
namespace fs = std::filesystem;

fs::path root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

template <class E>
void payload_seeds(int selector, const E& event, const std::string& name) {
  const char json = static_cast<char>(selector);
  const char binary = static_cast<char>(selector | 0x08);
  write("fuzz_payload", name + ".json", std::string(1, json) + encode_payload(event, PayloadFormat::json));
  write("fuzz_payload", name + ".bin", std::string(1, binary) + encode_payload(event, PayloadFormat::binary));
}

void payload_corpus() {
  const Timestamp t = from_micros(1'795'000'000'123'456);
  payload_seeds(0, RunCreated{"r-1", "t-1", "app-1", "wf-1", "app-run", "alice", R"({"q":"hi"})", t},
                "run_created");
  payload_seeds(1, NodeStarted{"r-1", "n-1", 1, "llm", "llm", "Ask", "start", R"({"p":1})", t},
                "node_started");
  payload_seeds(2, NodeCompleted{"r-1", "n-1", R"({"text":"ok"})", 1.25, 412, t}, "node_completed");
  payload_seeds(3, NodeFailed{"r-1", "n-1", "timeout", "", 30.5, t}, "node_failed");
  payload_seeds(4, RunSucceeded{"r-1", R"({"a":"b"})", 2.5, 900, 3, t}, "run_succeeded");
  payload_seeds(5, RunFailed{"r-1", "tool failed", 0.125, 10, 2, t}, "run_failed");
  payload_seeds(6, RunStopped{"r-1", "bob", "user asked", 7.0, 0, 1, t}, "run_stopped");
  payload_seeds(7, RunDeleted{"r-1", "carol", "retention", t}, "run_deleted");
  // Numbers and strings at their edges.
  payload_seeds(2, NodeCompleted{"", "", "", 1e-300, UINT64_MAX, from_micros(INT64_MIN)}, "edges");
  payload_seeds(0, RunCreated{"r\xc3\xa9", "t", "a", "w", "tr", "\xe2\x82\xac", "[]", from_micros(-1)},
                "unicode");
}

std::string export_of(const std::shared_ptr<SqlEventStore>& store) {
  std::ostringstream out;
  export_log(*store, out, {.payload_json = workflow_payload_json});
  return out.str();
}

void import_corpus() {
  for (const PayloadFormat format : {PayloadFormat::json, PayloadFormat::binary}) {
    const std::string name = std::string(to_string(format));
    StoreOptions options;
    options.payload_format = format;
    options.clock = [n = std::int64_t{0}]() mutable { return from_micros(1'795'000'000'000'000 + ++n); };
    RepositoryFactory factory(RepositoryFactoryConfig{.backend = "memory", .store_options = options});
    AggregateRepository<WorkflowRun> runs = factory.create_workflow_run_aggregate_repository();
    WorkflowRun run = WorkflowRun::create(
        RunCreated{.run_id = "r-1", .tenant_id = "t-1", .app_id = "a-1", .workflow_id = "w-1",
                   .triggered_from = "app-run", .created_by = "alice", .inputs = "{}"},
        EventMetadata{.tenant_id = "t-1", .actor = "alice"});
    run.start_node({.node_execution_id = "n-1", .node_id = "llm", .node_type = "llm", .title = "Ask", .inputs = "{}"});
    run.complete_node({.node_execution_id = "n-1", .outputs = R"({"x":1})", .total_tokens = 5});
    run.succeed({.outputs = "{}"});
    runs.save(run);
    const auto store = factory.sql_event_store();
    const std::string all = export_of(store);
    write("fuzz_import", "run_" + name + ".jsonl", all);
    write("fuzz_import", "first_line_" + name + ".jsonl", all.substr(0, all.find('\n') + 1));
  }
  write("fuzz_import", "empty.jsonl", "");
}

void uri_corpus() {
  int i = 0;
  for (const char* uri : {"memory:", "memory:?payload=binary", "sqlite:/data/events.db",
                          "sqlite:/data/events.db?payload=binary&synchronous=normal",
                          "sqlite:events.db?busy_timeout_ms=250&group_commit=off",
                          "memory:?payload=json&synchronous=full&busy_timeout_ms=5000&group_commit=on",
                          "sqlite:", "postgres://db/annals", "memory:?payload", "sqlite::memory:"}) {
    write("fuzz_store_uri", "uri_" + std::to_string(i++), uri);
  }
}

void cli_corpus() {
  using namespace std::string_literals;
  int i = 0;
  const auto seed = [&](char mode, char extra, const std::string& text) {
    write("fuzz_cli_args", "arg_" + std::to_string(i++), std::string{mode, extra} + text);
  };
  for (const char* t : {"2026-11-21T09:30:00Z", "2026-11-21T09:30:00.123456Z", "2026-11-21 09:30:00+02:00",
                        "2026-11-21t09:30:00-05:30", "1795000000000000", "-1", "2026-02-30T00:00:00Z"}) {
    seed(0, 0, t);
  }
  for (const char* n : {"20", "1000", "0", "18446744073709551615", "18446744073709551616", "-1", "010", "0x10"}) {
    seed(1, 0, n);
    seed(1, 1, n);
  }
  seed(2, 0, "events.db");
  seed(2, 0, "\0sqlite:/data/events.db?payload=binary"s);
  seed(2, 0, "events.db?payload=binary");
  seed(2, 0, "a.db\0memory:"s);
  seed(3, 20, "t1\0a1\0app-run"s);
  seed(3, 2, "t1\0a1\0app-run\0r0"s);
  seed(3, 2, "t2\0a1\0app-run\0r0"s);  // another tenant's cursor
  seed(3, 0, "x\0y\0z"s);
  seed(3, static_cast<char>(0xff), "t1\0a1\0debugging"s);
  seed(4, 0, "r0");
  seed(4, 0, "WorkflowRun-r1");
  seed(4, 0, "' OR 1=1 --");
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds DIR\n";
    return 2;
  }
  root = argv[1];
  payload_corpus();
  import_corpus();
  uri_corpus();
  cli_corpus();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "fuzz_seeds: " << e.what() << "\n";
  return 1;
}
