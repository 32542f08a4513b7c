#pragma once

// A store with several tenants, apps, triggers, runs sharing a created_at, deleted runs and node
// executions, served by an annals::serve::Server on a free loopback port: the setting of the API
// tests (api_test.cpp, tenant_test.cpp).

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/repositories/repository_factory.hpp"
#include "annals/serve/keys.hpp"
#include "annals/serve/server.hpp"
#include "support/http_client.hpp"
#include "support/temp_dir.hpp"

namespace annals::test {

inline Timestamp serve_time(std::int64_t seconds) {
  return from_micros(1'700'000'000'000'000 + seconds * 1'000'000LL);
}

// What the fixture wrote, by role.
struct ServeData {
  std::vector<std::string> acme_app1_runs;     // app-run, current (not deleted)
  std::vector<std::string> acme_deleted_runs;  // app-1, app-run, deleted
  std::vector<std::string> acme_debug_runs;    // app-1, debugging
  std::string acme_long_run;                   // app-2, many node executions (events > 1 page)
  std::vector<std::string> beta_runs;          // tenant beta, app-1 (same app id as acme's)
  std::string acme_only_app = "app-2";         // an app only acme has runs in
};

// Writes the fixture's runs through the aggregate repository (batch saves).
inline ServeData write_serve_data(const RepositoryFactory& factory) {
  ServeData data;
  auto aggregates = factory.create_workflow_run_aggregate_repository();
  std::vector<WorkflowRun> runs;
  const auto create = [&](const std::string& id, const std::string& tenant, const std::string& app,
                          const std::string& trigger, Timestamp created_at) -> WorkflowRun& {
    runs.push_back(WorkflowRun::create(RunCreated{.run_id = id,
                                                  .tenant_id = tenant,
                                                  .app_id = app,
                                                  .workflow_id = "wf-" + app,
                                                  .triggered_from = trigger,
                                                  .created_by = tenant + "-user",
                                                  .inputs = R"({"q":")" + id + "\"}",
                                                  .created_at = created_at},
                                       EventMetadata{.actor = tenant + "-user"}));
    return runs.back();
  };
  const auto add_nodes = [](WorkflowRun& run, int count) {
    for (int n = 1; n <= count; ++n) {
      const std::string node = run.id() + "-n" + std::to_string(n);
      run.start_node(NodeStarted{.node_execution_id = node,
                                 .node_id = "node-" + std::to_string(n),
                                 .node_type = n == 1 ? "start" : "llm",
                                 .title = "Step " + std::to_string(n),
                                 .inputs = "{}"});
      run.complete_node(NodeCompleted{.node_execution_id = node,
                                      .outputs = R"({"n":)" + std::to_string(n) + "}",
                                      .elapsed_time = 0.25 * n,
                                      .total_tokens = static_cast<std::uint64_t>(10 * n)});
    }
  };
  for (int i = 0; i < 40; ++i) {
    // Ids that do not sort like creation order; three runs share each created_at.
    const std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u;
    const std::string id = "acme-" + std::to_string(h % 9973) + "-" + std::to_string(i);
    WorkflowRun& run = create(id, "acme", "app-1", "app-run", serve_time(i / 3));
    if (i % 4 == 0) {
      add_nodes(run, 2);
      run.succeed(RunSucceeded{.outputs = R"({"ok":true})"});
    } else if (i % 7 == 0) {
      add_nodes(run, 1);
      run.fail(RunFailed{.error = "model timed out"});
    }
    if (i == 5 || i == 17 || i == 30) {
      run.mark_deleted(RunDeleted{.deleted_by = "acme-admin", .reason = "test"});
      data.acme_deleted_runs.push_back(id);
    } else {
      data.acme_app1_runs.push_back(id);
    }
  }
  for (int i = 0; i < 6; ++i) {
    const std::string id = "acme-debug-" + std::to_string(i);
    create(id, "acme", "app-1", "debugging", serve_time(100 + i));
    data.acme_debug_runs.push_back(id);
  }
  data.acme_long_run = "acme-long";
  add_nodes(create(data.acme_long_run, "acme", "app-2", "app-run", serve_time(200)), 12);
  create("acme-app2-a", "acme", "app-2", "app-run", serve_time(201));
  for (int i = 0; i < 5; ++i) {
    const std::string id = "beta-" + std::to_string(i);
    WorkflowRun& run = create(id, "beta", "app-1", "app-run", serve_time(i));
    if (i == 0) add_nodes(run, 3);
    data.beta_runs.push_back(id);
  }
  std::vector<WorkflowRun*> batch;
  for (WorkflowRun& run : runs) batch.push_back(&run);
  aggregates.save_all(batch);
  return data;
}

// A server over a fresh SQLite store holding the fixture's runs, with keys for acme, beta and
// gamma (a tenant without runs).
struct ServeFixture {
  TempDir dir;
  RepositoryFactory factory{dir.sqlite_uri()};
  ServeData data = write_serve_data(factory);
  std::string acme_key = serve::KeyRing::generate_key();
  std::string beta_key = serve::KeyRing::generate_key();
  std::string gamma_key = serve::KeyRing::generate_key();
  std::unique_ptr<serve::Server> server = start(factory);
  std::optional<HttpClient> client;

  [[nodiscard]] serve::KeyRing keys() const {
    serve::KeyRing ring;
    ring.add("acme", serve::KeyRing::hash_key(acme_key));
    ring.add("beta", serve::KeyRing::hash_key(beta_key));
    ring.add("gamma", serve::KeyRing::hash_key(gamma_key));
    return ring;
  }

  // A started server over `store` with this fixture's keys (stopped by its destructor).
  [[nodiscard]] std::unique_ptr<serve::Server> start(const RepositoryFactory& store) const {
    auto s = std::make_unique<serve::Server>(store, keys(), serve::ServerOptions{.threads = 2});
    s->start();
    return s;
  }

  // One request on the fixture's keep-alive connection (a new one after the server closed it).
  HttpReply get(const std::string& target, std::optional<std::string> bearer = std::nullopt,
                const std::vector<std::string>& extra_headers = {}) {
    if (!client) client.emplace(server->port());
    HttpReply reply = client->get(target, std::move(bearer), extra_headers);
    if (reply.header("connection") == "close") client.reset();
    return reply;
  }

  HttpReply acme(const std::string& target) { return get(target, acme_key); }

  // GET as acme, expecting 200 and a JSON body.
  nlohmann::ordered_json acme_json(const std::string& target) {
    const HttpReply reply = acme(target);
    INFO(target << " -> " << reply.status << " " << reply.body);
    REQUIRE(reply.status == 200);
    REQUIRE(reply.header("content-type") == "application/json");
    return nlohmann::ordered_json::parse(reply.body);
  }
};

// The error object of a JSON error body, checked for shape and status.
inline nlohmann::json error_of(const HttpReply& reply, int status, const std::string& code) {
  INFO("status " << reply.status << " body " << reply.body);
  REQUIRE(reply.status == status);
  REQUIRE(reply.header("content-type") == "application/json");
  const nlohmann::json body = nlohmann::json::parse(reply.body);
  REQUIRE(body.size() == 1);
  const nlohmann::json& error = body.at("error");
  CHECK(error.at("status") == status);
  CHECK(error.at("code") == code);
  REQUIRE(error.at("message").is_string());
  return error;
}

}  // namespace annals::test
