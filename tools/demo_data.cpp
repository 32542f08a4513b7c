// `annals demo`: realistic workflow runs written through the repositories, as a workflow engine
// would write them. The data is pseudo-random from a seed, so a fresh database always gets the
// same runs; a database that already holds events gets other run ids (the seed is mixed with its
// head position), so running the demo twice appends rather than clashes.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "format.hpp"

namespace annals::cli {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

struct App {
  const char* id;
  std::vector<const char*> workflows;
  std::vector<const char*> questions;
};

const std::vector<App>& apps() {
  static const std::vector<App> kApps = {
      {"support-bot",
       {"answer-question", "lookup-order", "refund-request"},
       {"Where is my order?", "How do I reset my password?", "Can I get a refund for A-1042?",
        "My invoice shows the wrong address."}},
      {"sales-assistant",
       {"qualify-lead", "draft-email"},
       {"Lead: 40 seats, EU, needs SSO", "Follow up with Initech about the renewal",
        "Compare the Pro and Team plans"}},
      {"doc-summarizer",
       {"summarize", "translate"},
       {"Summarize the Q3 board minutes", "Translate the onboarding guide to German",
        "Summarize incident report INC-2231"}},
  };
  return kApps;
}

// Each tenant uses some of the apps; the first tenant uses them all.
struct Tenant {
  const char* id;
  std::vector<std::size_t> apps;
  std::vector<const char*> users;
};

const std::vector<Tenant>& tenants() {
  static const std::vector<Tenant> kTenants = {
      {"acme", {0, 1, 2}, {"alice", "bob", "carol"}},
      {"globex", {0, 2}, {"dan", "erin"}},
      {"initech", {1, 0}, {"frank", "grace", "heidi"}},
      {"umbrella", {2}, {"ivan"}},
  };
  return kTenants;
}

constexpr const char* kDemoTenant = "acme";
constexpr const char* kDemoApp = "support-bot";
constexpr const char* kDemoTrigger = "app-run";

// 2026-11-01T00:00:00Z: runs are spread over the two weeks after it.
constexpr std::int64_t kDemoEpochMicros = 1'793'491'200'000'000;
constexpr std::int64_t kDemoSpanMicros = 14LL * 24 * 3600 * 1'000'000;

class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<>(lo, hi)(engine_); }
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(engine_);
  }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<std::size_t>(between(0, static_cast<std::int64_t>(items.size()) - 1))];
  }
  bool chance(double p) { return uniform(0, 1) < p; }
  std::string hex(int digits) {
    std::string s;
    for (int i = 0; i < digits; ++i) s += "0123456789abcdef"[between(0, 15)];
    return s;
  }

 private:
  std::mt19937_64 engine_;
};

microseconds seconds_f(double s) { return microseconds(static_cast<std::int64_t>(s * 1e6)); }

struct Step {
  const char* node_id;
  const char* node_type;
  const char* title;
};

// The nodes a run goes through: start, one or two llm calls around a tool, end.
std::vector<Step> plan(Random& rng) {
  std::vector<Step> steps = {{"start", "start", "Start"}};
  if (rng.chance(0.3)) steps.push_back({"classify", "llm", "Classify the request"});
  if (rng.chance(0.6)) steps.push_back({"lookup", "tool", "Call the backend API"});
  steps.push_back({"answer", "llm", "Draft the answer"});
  steps.push_back({"end", "end", "End"});
  return steps;
}

enum class Outcome { succeed, fail, stop, keep_running };

Outcome draw_outcome(Random& rng) {
  const double r = rng.uniform(0, 1);
  if (r < 0.68) return Outcome::succeed;
  if (r < 0.84) return Outcome::fail;
  if (r < 0.95) return Outcome::stop;
  return Outcome::keep_running;
}

const std::vector<std::string>& tool_errors() {
  static const std::vector<std::string> kErrors = {
      "HTTP 503 from orders service", "timeout after 30s calling crm.lookup",
      "HTTP 401: credentials for the ticketing API expired"};
  return kErrors;
}

const std::vector<std::string>& llm_errors() {
  static const std::vector<std::string> kErrors = {"model rate limit exceeded (429)",
                                                   "context length 16385 exceeded by 2048 tokens",
                                                   "content filter rejected the completion"};
  return kErrors;
}

struct Written {
  std::size_t runs = 0, deleted = 0;
};

// One run, saved in two appends (after its first nodes, then when it ends), like an engine.
void write_run(Random& rng, std::size_t i, std::size_t total,
               AggregateRepository<WorkflowRun>& repo, Written& written) {
  // Weighted so that the page the demo shows (the first tenant's first app) is a full one.
  const double t = rng.uniform(0, 1);
  const Tenant& tenant = tenants()[t < 0.45 ? 0 : t < 0.7 ? 1 : t < 0.9 ? 2 : 3];
  const App& app = apps()[rng.chance(0.5) ? tenant.apps.front() : rng.pick(tenant.apps)];
  const std::string user = rng.pick(tenant.users);
  const std::string run_id = "run-" + rng.hex(10);
  const std::int64_t slot =
      kDemoSpanMicros / static_cast<std::int64_t>(std::max<std::size_t>(total, 1));
  Timestamp at = from_micros(kDemoEpochMicros + slot * static_cast<std::int64_t>(i) +
                             rng.between(0, std::max<std::int64_t>(slot - 1, 0) / 2));
  const std::string question = rng.pick(app.questions);

  WorkflowRun run =
      WorkflowRun::create(RunCreated{.run_id = run_id,
                                     .tenant_id = tenant.id,
                                     .app_id = app.id,
                                     .workflow_id = rng.pick(app.workflows),
                                     .triggered_from = rng.chance(0.85) ? "app-run" : "debugging",
                                     .created_by = user,
                                     .inputs = nlohmann::ordered_json{{"query", question}}.dump(),
                                     .created_at = at});

  const std::vector<Step> steps = plan(rng);
  const Outcome outcome = draw_outcome(rng);
  // Where a failure, stop or unfinished run ends: a node after start.
  const std::size_t last =
      outcome == Outcome::succeed
          ? steps.size() - 1
          : static_cast<std::size_t>(rng.between(1, static_cast<std::int64_t>(steps.size()) - 2));
  std::string predecessor;
  for (std::size_t k = 0; k <= last; ++k) {
    const Step& step = steps[k];
    const std::string exec_id = run_id + "-n" + std::to_string(k + 1);
    at += milliseconds(rng.between(5, 120));
    run.start_node({.node_execution_id = exec_id,
                    .node_id = step.node_id,
                    .node_type = step.node_type,
                    .title = step.title,
                    .predecessor_node_id = predecessor,
                    .inputs = k == 0 ? nlohmann::ordered_json{{"query", question}}.dump() : "{}",
                    .started_at = at});
    if (k == 1) repo.save(run);  // the engine saves as it goes
    const bool is_llm = std::string_view(step.node_type) == "llm";
    const bool is_tool = std::string_view(step.node_type) == "tool";
    const double took = is_llm    ? rng.uniform(0.8, 9.0)
                        : is_tool ? rng.uniform(0.1, 3.5)
                                  : rng.uniform(0.001, 0.02);
    if (k == last && outcome != Outcome::succeed) {
      if (outcome == Outcome::fail) {
        at += seconds_f(took);
        const std::string error = is_tool ? rng.pick(tool_errors()) : rng.pick(llm_errors());
        run.fail_node({.node_execution_id = exec_id, .error = error, .finished_at = at});
        run.fail({.error = std::string("node ") + step.node_id + " failed: " + error,
                  .finished_at = at + milliseconds(3)});
      } else if (outcome == Outcome::stop) {
        at += seconds_f(took * rng.uniform(0.1, 0.9));
        run.stop({.stopped_by =
                      rng.chance(0.5) ? user : std::string("operator-") + rng.pick(tenant.users),
                  .reason = rng.chance(0.5) ? "user cancelled" : "customer closed the chat",
                  .finished_at = at});
      }
      break;  // keep_running: the last node stays running
    }
    at += seconds_f(took);
    const std::uint64_t tokens = is_llm ? static_cast<std::uint64_t>(rng.between(150, 3200)) : 0;
    run.complete_node(
        {.node_execution_id = exec_id,
         .outputs = is_llm
                        ? nlohmann::ordered_json{{"text", "Drafted reply for: " + question}}.dump()
                        : "{}",
         .elapsed_time = took,
         .total_tokens = tokens,
         .finished_at = at});
    predecessor = step.node_id;
  }
  if (outcome == Outcome::succeed) {
    run.succeed(
        {.outputs = nlohmann::ordered_json{{"answer", "Drafted reply for: " + question}}.dump(),
         .finished_at = at + milliseconds(2)});
  }
  repo.save(run);
  ++written.runs;

  // A few finished runs are deleted later by retention or by a user.
  if (run.is_finished() && rng.chance(0.04)) {
    WorkflowRun again = repo.load(run_id);
    again.mark_deleted({.deleted_by = rng.chance(0.5) ? user : "retention-bot",
                        .reason = "removed from the run history",
                        .deleted_at = at + std::chrono::hours(rng.between(1, 48))});
    repo.save(again);
    ++written.deleted;
  }
}

// The text as one shell word: as it is when it holds only safe characters, else single-quoted
// (a keyword string has spaces).
std::string shell_word(const std::string& text) {
  const bool safe = !text.empty() && text.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_./:=@%+,") == std::string::npos;
  if (safe) return text;
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int demo(const DemoArgs& args, std::ostream& out, std::ostream& err) {
  const std::string uri = store_uri(args.target);
  RepositoryFactory factory(uri);
  AggregateRepository<WorkflowRun> repo = factory.create_workflow_run_aggregate_repository();
  const std::shared_ptr<EventStore> store = factory.event_store();
  const std::uint64_t head_before = store->head_position();
  Random rng(args.seed ^ (head_before * 0x9e3779b97f4a7c15ULL));

  Written written;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < args.runs; ++i) write_run(rng, i, args.runs, repo, written);
  const auto took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::uint64_t head = store->head_position();

  const auto page = factory.create_workflow_run_repository().get_paginated_workflow_runs(
      kDemoTenant, kDemoApp, kDemoTrigger, 20);

  // A key for the viewer: its hash goes to the keys file `annals serve --keys` reads.
  std::optional<std::string> keys_file = args.keys;
  if (!keys_file && !args.target.db.empty()) keys_file = args.target.db + ".keys";
  std::optional<std::string> key;
  if (keys_file) key = add_key_to_file(*keys_file, kDemoTenant);
  const std::string target_option =
      args.target.db.empty() ? "--uri " + shell_word(redact_store_uri(uri))
                             : "--db " + shell_word(args.target.db);
  const std::string serve_command =
      keys_file ? shell_word(args.program) + " serve " + target_option + " --keys " +
                      shell_word(*keys_file) + " --listen 127.0.0.1:8080"
                : std::string();
  if (args.target.json) {
    out << nlohmann::ordered_json{{"store", redact_store_uri(uri)},
                                  {"runs_written", written.runs},
                                  {"runs_deleted", written.deleted},
                                  {"events_written", head - head_before},
                                  {"head_position", head},
                                  {"tenant", kDemoTenant},
                                  {"app", kDemoApp},
                                  {"triggered_from", kDemoTrigger},
                                  {"keys_file", keys_file ? nlohmann::ordered_json(*keys_file)
                                                          : nlohmann::ordered_json()},
                                  {"key", key ? nlohmann::ordered_json(*key)
                                              : nlohmann::ordered_json()},
                                  {"serve_command", keys_file ? nlohmann::ordered_json(serve_command)
                                                              : nlohmann::ordered_json()},
                                  {"page", to_json(page)}}
               .dump()
        << "\n";
    return kExitOk;
  }
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.2fs", took);
  out << "wrote " << written.runs << " workflow runs (" << written.deleted << " later deleted), "
      << (head - head_before) << " events, to " << redact_store_uri(uri) << " in " << rate
      << "; head position "
      << head << "\n\n"
      << "newest runs of " << kDemoTenant << "/" << kDemoApp << " (" << kDemoTrigger
      << "), first page:\n";
  print_runs_table(out, page.data);
  if (page.has_more && !page.data.empty()) {
    out << "\nmore: annals runs " << target_option << " --tenant " << kDemoTenant << " --app "
        << kDemoApp << " --last-id " << page.data.back().id << "\n";
  }
  if (key) {
    out << "\nbrowse them in the audit viewer: run\n  " << serve_command
        << "\nthen open http://127.0.0.1:8080/ and paste this key for tenant " << kDemoTenant
        << " (shown only now; its SHA-256 is in " << shell_word(*keys_file) << "):\n  " << *key
        << "\n";
  } else {
    out << "\nno key for the audit viewer was written: give --keys FILE to get one\n";
  }
  (void)err;
  return kExitOk;
}

}  // namespace annals::cli
