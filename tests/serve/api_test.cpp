// The API's endpoints over a real loopback port: what they answer equals what the repositories,
// the log and verify_log say, field by field; and every malformed request is a 4xx naming the
// value. (Tenant isolation and the 401 rules are in tenant_test.cpp.)
#include "api.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "annals/serve/views_json.hpp"
#include "annals/store/export.hpp"
#include "annals/store/hash_chain.hpp"
#include "serve/serve_fixture.hpp"

using namespace annals;
using annals::test::error_of;
using annals::test::HttpReply;
using annals::test::ServeFixture;
using Json = nlohmann::ordered_json;

namespace {

// Pages through /v1/apps/{app}/workflow-runs following last_id until has_more is false, checking
// every page against the repository's page for the same arguments. Returns the ids in order.
std::vector<std::string> page_through(ServeFixture& f, const std::string& key,
                                      const std::string& tenant, const std::string& app,
                                      const std::string& trigger,
                                      std::optional<std::size_t> limit) {
  const WorkflowRunRepository runs = f.factory.create_workflow_run_repository();
  std::vector<std::string> ids;
  std::optional<std::string> last_id;
  for (int pages = 0;; ++pages) {
    REQUIRE(pages < 100);
    std::string target = "/v1/apps/" + app + "/workflow-runs?triggered_from=" + trigger;
    if (limit) target += "&limit=" + std::to_string(*limit);
    if (last_id) target += "&last_id=" + *last_id;
    const HttpReply reply = f.get(target, key);
    INFO(target << " -> " << reply.body);
    REQUIRE(reply.status == 200);
    const Json page = Json::parse(reply.body);
    const auto expected =
        runs.get_paginated_workflow_runs(tenant, app, trigger, limit.value_or(20), last_id);
    CHECK(page == serve::to_json(expected));
    for (const Json& run : page.at("data")) ids.push_back(run.at("id").get<std::string>());
    if (!page.at("has_more").get<bool>()) break;
    last_id = ids.back();
  }
  return ids;
}

}  // namespace

TEST_CASE("paging through the runs endpoint gives the repository's pages, field by field",
          "[serve][api]") {
  ServeFixture f;
  const std::vector<std::optional<std::size_t>> limits = {1, 7, std::nullopt, 39, 1000};
  for (const auto& limit : limits) {
    CAPTURE(limit.value_or(0));
    const std::vector<std::string> ids =
        page_through(f, f.acme_key, "acme", "app-1", "app-run", limit);
    // Every current run once, no deleted one, newest first with ties broken by id.
    CHECK(std::set<std::string>(ids.begin(), ids.end()) ==
          std::set<std::string>(f.data.acme_app1_runs.begin(), f.data.acme_app1_runs.end()));
    CHECK(ids.size() == f.data.acme_app1_runs.size());
  }
  const auto debug = page_through(f, f.acme_key, "acme", "app-1", "debugging", 4);
  CHECK(debug.size() == f.data.acme_debug_runs.size());
  CHECK(page_through(f, f.acme_key, "acme", "app-2", "app-run", 1).size() == 2);
  const auto beta = page_through(f, f.beta_key, "beta", "app-1", "app-run", 2);
  CHECK(std::set<std::string>(beta.begin(), beta.end()) ==
        std::set<std::string>(f.data.beta_runs.begin(), f.data.beta_runs.end()));

  // triggered_from defaults to app-run and limit to 20.
  const Json first = f.acme_json("/v1/apps/app-1/workflow-runs");
  CHECK(first.at("limit") == 20);
  CHECK(first.at("data").size() == 20);
  CHECK(first.at("has_more") == true);
  CHECK(first ==
        serve::to_json(f.factory.create_workflow_run_repository().get_paginated_workflow_runs(
            "acme", "app-1", "app-run", 20)));
  // The run object's fields, in order (docs/serve.md).
  std::vector<std::string> keys;
  for (const auto& item : first.at("data").at(0).items()) keys.push_back(item.key());
  CHECK(keys == std::vector<std::string>{"id", "tenant_id", "app_id", "workflow_id",
                                         "triggered_from", "status", "inputs", "outputs", "error",
                                         "elapsed_time", "total_tokens", "total_steps",
                                         "created_by", "created_at", "finished_at", "version"});
  // An app nobody has runs in is an empty page, not an error.
  const Json none = f.acme_json("/v1/apps/no-such-app/workflow-runs?limit=5");
  CHECK(none == Json{{"data", Json::array()}, {"limit", 5}, {"has_more", false}});
}

TEST_CASE("a last_id that is not a current run of the list is a 404 naming it", "[serve][api]") {
  ServeFixture f;
  const std::string deleted = f.data.acme_deleted_runs.front();
  for (const std::string& last_id : {std::string("nope"), deleted, f.data.acme_debug_runs[0]}) {
    const auto error =
        error_of(f.acme("/v1/apps/app-1/workflow-runs?last_id=" + last_id), 404, "not_found");
    CHECK(error.at("message") ==
          "last_id '" + last_id + "' is not a run in app 'app-1' with triggered_from 'app-run'");
  }
}

TEST_CASE("a run by id is the repository's view; deleted, unknown or in another app is a 404",
          "[serve][api]") {
  ServeFixture f;
  const WorkflowRunRepository runs = f.factory.create_workflow_run_repository();
  for (const std::string& id : {f.data.acme_app1_runs[0], f.data.acme_app1_runs[7]}) {
    const Json run = f.acme_json("/v1/apps/app-1/workflow-runs/" + id);
    CHECK(run == serve::to_json(*runs.get_workflow_run_by_id("acme", "app-1", id)));
  }
  const Json long_run = f.acme_json("/v1/apps/app-2/workflow-runs/acme-long");
  CHECK(long_run.at("app_id") == "app-2");
  CHECK(long_run.at("status") == "running");
  CHECK(long_run.at("finished_at").is_null());

  const auto deleted = error_of(
      f.acme("/v1/apps/app-1/workflow-runs/" + f.data.acme_deleted_runs[0]), 404, "not_found");
  CHECK(deleted.at("message") == "no run '" + f.data.acme_deleted_runs[0] + "' in app 'app-1'");
  const auto other_app = error_of(
      f.acme("/v1/apps/app-2/workflow-runs/" + f.data.acme_app1_runs[0]), 404, "not_found");
  CHECK(other_app.at("message") == "no run '" + f.data.acme_app1_runs[0] + "' in app 'app-2'");
  // Percent-encoded ids are decoded per segment: an id may hold '/' or a space.
  const auto odd = error_of(f.acme("/v1/apps/a%2Fb/workflow-runs/r%20%C3%A9"), 404, "not_found");
  CHECK(odd.at("message") == "no run 'r \xc3\xa9' in app 'a/b'");
}

TEST_CASE("node executions come in index order as the repository gives them", "[serve][api]") {
  ServeFixture f;
  const NodeExecutionRepository nodes = f.factory.create_node_execution_repository();
  const Json long_nodes = f.acme_json("/v1/workflow-runs/acme-long/node-executions");
  REQUIRE(long_nodes.size() == 1);
  REQUIRE(long_nodes.at("data").size() == 12);
  Json expected = Json::array();
  for (const auto& n : nodes.get_node_executions_by_run_id("acme", "acme-long")) {
    expected.push_back(serve::to_json(n));
  }
  CHECK(long_nodes.at("data") == expected);
  for (std::size_t i = 0; i < 12; ++i) {
    CHECK(long_nodes.at("data").at(i).at("index") == i + 1);
    CHECK(long_nodes.at("data").at(i).at("title") == "Step " + std::to_string(i + 1));
  }
  // A run without node executions: an empty list, not a 404.
  CHECK(f.acme_json("/v1/workflow-runs/" + f.data.acme_debug_runs[0] + "/node-executions") ==
        Json{{"data", Json::array()}});
  // A deleted run's node executions are gone with it (its history is not: see the events).
  const auto error =
      error_of(f.acme("/v1/workflow-runs/" + f.data.acme_deleted_runs[0] + "/node-executions"), 404,
               "not_found");
  CHECK(error.at("message") == "no run '" + f.data.acme_deleted_runs[0] + "'");
}

TEST_CASE("events page by version; each is the export line, whose hash checks against the chain",
          "[serve][api]") {
  ServeFixture f;
  const auto store = f.factory.event_store();
  const std::vector<RecordedEvent> history =
      store->read_stream(WorkflowRun::stream_id_for("acme-long"));
  REQUIRE(history.size() == 25);  // RunCreated, 12 x (NodeStarted, NodeCompleted)

  std::vector<RecordedEvent> seen;
  std::uint64_t after = 0;
  for (int pages = 0;; ++pages) {
    REQUIRE(pages < 10);
    const Json page = f.acme_json("/v1/workflow-runs/acme-long/events?limit=7&after_version=" +
                                  std::to_string(after));
    CHECK(page.at("limit") == 7);
    for (const Json& event : page.at("data")) {
      // Exactly the line export_log writes for this event, parsed back with its hash.
      const RecordedEvent parsed = parse_export_line(event.dump());
      seen.push_back(parsed);
      after = parsed.version;
    }
    if (!page.at("has_more").get<bool>()) break;
    CHECK(page.at("data").size() == 7);
  }
  REQUIRE(seen.size() == history.size());
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CAPTURE(i);
    CHECK(seen[i] == history[i]);  // every field, the hash included
    const std::vector<RecordedEvent> previous = seen[i].position > 1
                                                    ? store->read_all(seen[i].position - 1, 1)
                                                    : std::vector<RecordedEvent>{};
    const EventHash before = previous.empty() ? EventHash{} : previous.front().hash;
    CHECK(chain_hash(before, seen[i]) == seen[i].hash);
  }

  // The default page holds 100; the line's fields are all there, the payload decoded.
  const Json all = f.acme_json("/v1/workflow-runs/acme-long/events");
  CHECK(all.at("limit") == 100);
  CHECK(all.at("has_more") == false);
  REQUIRE(all.at("data").size() == 25);
  const Json& created = all.at("data").at(0);
  std::vector<std::string> keys;
  for (const auto& item : created.items()) keys.push_back(item.key());
  CHECK(keys == std::vector<std::string>{"position", "stream_id", "version", "event_id", "type",
                                         "schema_version", "payload_format", "payload",
                                         "payload_base64", "metadata", "recorded_at", "hash"});
  CHECK(created.at("type") == "RunCreated");
  CHECK(created.at("payload").at("tenant_id") == "acme");
  CHECK(created.at("metadata").at("actor") == "acme-user");
  CHECK(created.at("metadata").at("correlation_id") == "acme-long");
  CHECK(created.at("hash") == to_hex(history[0].hash));

  // Past the end: an empty page; the largest after_version accepted is 2^63.
  for (const std::string after_version :
       {"25", "1000", "9223372036854775807", "9223372036854775808"}) {
    CHECK(f.acme_json("/v1/workflow-runs/acme-long/events?after_version=" + after_version) ==
          Json{{"data", Json::array()}, {"limit", 100}, {"has_more", false}});
  }
  // A deleted run's history stays readable, its RunDeleted last.
  const Json deleted = f.acme_json("/v1/workflow-runs/" + f.data.acme_deleted_runs[0] + "/events");
  CHECK(deleted.at("data").back().at("type") == "RunDeleted");
  CHECK(deleted.at("data").back().at("metadata").at("actor") == "acme-admin");
  // Unknown run: 404.
  const auto error = error_of(f.acme("/v1/workflow-runs/nope/events"), 404, "not_found");
  CHECK(error.at("message") == "no run 'nope'");
}

TEST_CASE("verify reports verify_log's result, and the first bad position after tampering",
          "[serve][api]") {
  ServeFixture f;
  const LogVerification expected = verify_log(*f.factory.event_store());
  const Json ok = f.acme_json("/v1/verify");
  CHECK(ok == Json{{"ok", true},
                   {"head_position", expected.head_position},
                   {"head_hash", to_hex(expected.head_hash)},
                   {"events", expected.events},
                   {"purged", 0}});
  CHECK(f.acme_json("/v1/verify") == ok);  // again (from the cache): the same answer

  // Another save moves the head: the next answer covers it.
  auto aggregates = f.factory.create_workflow_run_aggregate_repository();
  WorkflowRun run = WorkflowRun::create(RunCreated{.run_id = "late",
                                                   .tenant_id = "acme",
                                                   .app_id = "app-1",
                                                   .workflow_id = "w",
                                                   .triggered_from = "app-run",
                                                   .created_by = "u",
                                                   .inputs = "{}"});
  aggregates.save(run);
  const Json after = f.acme_json("/v1/verify");
  CHECK(after.at("ok") == true);
  CHECK(after.at("head_position") == expected.head_position + 1);
  CHECK(after.at("head_hash") == to_hex(verify_log(*f.factory.event_store()).head_hash));

  // Edit one stored payload behind the store's back, as a tamperer with the file would (the
  // append-only triggers dropped first); a server started afterwards reports the position.
  {
    SQLite::Database db(f.dir.file("events.db"), SQLite::OPEN_READWRITE);
    db.exec("DROP TRIGGER annals_events_no_update; DROP TRIGGER annals_events_no_delete;");
    db.exec(R"(UPDATE annals_events SET payload = '{"tampered":1}' WHERE position = 9)");
  }
  auto fresh = f.start(f.factory);
  const HttpReply reply = test::HttpClient(fresh->port()).get("/v1/verify", f.beta_key);
  REQUIRE(reply.status == 200);
  const Json broken = Json::parse(reply.body);
  CHECK(broken.at("ok") == false);
  CHECK(broken.at("first_bad_position") == 9);
  CHECK(broken.at("head_position") == expected.head_position + 1);
  // The message names the position, not the stream there (it may be another tenant's run).
  CHECK(broken.at("message") ==
        "the hash chain is broken at position 9: an event there was changed, inserted, removed "
        "or moved (run `annals verify` on the store for the details)");
  CHECK(broken.at("message").get<std::string>().find("WorkflowRun-") == std::string::npos);
}

TEST_CASE("healthz and the page need no key; every response carries the common headers",
          "[serve][api]") {
  ServeFixture f;
  const HttpReply health = f.get("/healthz");
  REQUIRE(health.status == 200);
  CHECK(Json::parse(health.body) ==
        Json{{"status", "ok"}, {"head_position", f.factory.event_store()->head_position()}});

  const HttpReply page = f.get("/");
  REQUIRE(page.status == 200);
  CHECK(page.header("content-type") == "text/html; charset=utf-8");
  CHECK(page.body == serve::detail::viewer_html());
  CHECK(f.get("/?key=x&%zz").body == page.body);  // the page's query string is ignored
  CHECK(page.header("content-security-policy") ==
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
        "'unsafe-inline'; connect-src 'self'; img-src 'self' data:");

  for (const HttpReply& reply :
       {health, page, f.acme("/v1/verify"), f.get("/v1/verify"), f.acme("/v1/nope")}) {
    CHECK(reply.header("cache-control") == "no-store");
    CHECK(reply.header("x-content-type-options") == "nosniff");
    CHECK(reply.header("content-length") == std::to_string(reply.body.size()));
  }
}

TEST_CASE("every malformed request is a 4xx whose JSON error names the value", "[serve][api]") {
  ServeFixture f;
  struct Row {
    std::string target;
    int status;
    std::string code;
    std::string message_part;
  };
  const std::string runs = "/v1/apps/app-1/workflow-runs";
  const std::string events = "/v1/workflow-runs/acme-long/events";
  const std::string limit_range = "expected a whole number from 1 to 1000, in decimal digits only";
  const std::vector<Row> rows = {
      // limits
      {runs + "?limit=abc", 400, "invalid_parameter", "limit 'abc': " + limit_range},
      {runs + "?limit=-1", 400, "invalid_parameter", "limit '-1': " + limit_range},
      {runs + "?limit=0", 400, "invalid_parameter", "limit '0': " + limit_range},
      {runs + "?limit=1001", 400, "invalid_parameter", "limit '1001': " + limit_range},
      {runs + "?limit=99999999999999999999999999", 400, "invalid_parameter",
       "limit '99999999999999999999999999'"},
      {runs + "?limit=1e3", 400, "invalid_parameter", "limit '1e3'"},
      {runs + "?limit=%205", 400, "invalid_parameter", "limit ' 5'"},
      {runs + "?limit=+5", 400, "invalid_parameter", "limit ' 5'"},  // '+' is a space
      {runs + "?limit=%2B5", 400, "invalid_parameter", "limit '+5'"},
      {runs + "?limit=5.0", 400, "invalid_parameter", "limit '5.0'"},
      {runs + "?limit=", 400, "invalid_parameter", "limit ''"},
      {runs + "?limit", 400, "invalid_parameter", "limit ''"},
      {runs + "?limit=0x10", 400, "invalid_parameter", "limit '0x10'"},
      {events + "?limit=1001", 400, "invalid_parameter", "limit '1001': " + limit_range},
      {events + "?after_version=-1", 400, "invalid_parameter",
       "after_version '-1': expected a whole number from 0 to 9223372036854775808"},
      {events + "?after_version=9223372036854775809", 400, "invalid_parameter",
       "after_version '9223372036854775809'"},
      {events + "?after_version=1.5", 400, "invalid_parameter", "after_version '1.5'"},
      // 2^63 * 10 and 2^64 wrap around to 0 in 64 bits: still refused
      {events + "?after_version=92233720368547758080", 400, "invalid_parameter",
       "after_version '92233720368547758080'"},
      {events + "?after_version=18446744073709551616", 400, "invalid_parameter",
       "after_version '18446744073709551616'"},
      {events + "?limit=18446744073709551617", 400, "invalid_parameter",
       "limit '18446744073709551617'"},
      // repeated and unknown parameters
      {runs + "?limit=5&limit=6", 400, "invalid_parameter",
       "query parameter 'limit' is given more than once ('5' and '6')"},
      {runs + "?last_id=a&last_id=a", 400, "invalid_parameter",
       "'last_id' is given more than once"},
      {runs + "?bogus=1", 400, "invalid_parameter",
       "unknown query parameter 'bogus': this endpoint takes triggered_from, limit, last_id"},
      {runs + "?Limit=5", 400, "invalid_parameter", "unknown query parameter 'Limit'"},
      {events + "?last_id=x", 400, "invalid_parameter", "unknown query parameter 'last_id'"},
      {"/v1/verify?x=1", 400, "invalid_parameter",
       "unknown query parameter 'x': this endpoint takes none"},
      {"/healthz?verbose", 400, "invalid_parameter", "unknown query parameter 'verbose'"},
      {runs + "?last_id=", 400, "invalid_parameter", "last_id ''"},
      {runs + "?triggered_from=", 400, "invalid_parameter", "triggered_from ''"},
      // percent-encoding
      {"/v1/apps/a%zzb/workflow-runs", 400, "invalid_parameter",
       "path segment 'a%zzb': the '%' at byte 2 is not followed by two hex digits"},
      {"/v1/apps/a%2/workflow-runs", 400, "invalid_parameter", "path segment 'a%2'"},
      {"/v1/apps/a%/workflow-runs", 400, "invalid_parameter", "path segment 'a%'"},
      {"/v1/apps/a%00b/workflow-runs", 400, "invalid_parameter",
       "path segment 'a%00b': %00 decodes to a NUL byte"},
      {"/v1/apps/%ff/workflow-runs", 400, "invalid_parameter",
       "path segment '%ff' is not UTF-8 once percent-decoded (decoded: '\\xff')"},
      {"/v1/apps/%c0%af/workflow-runs", 400, "invalid_parameter", "path segment '%c0%af'"},
      {"/v1/apps/%ed%a0%80/workflow-runs", 400, "invalid_parameter", "is not UTF-8"},
      {runs + "?last_id=%zz", 400, "invalid_parameter", "query parameter 'last_id' value '%zz'"},
      {runs + "?last_id=%00", 400, "invalid_parameter", "NUL"},
      {runs + "?%ZZ=1", 400, "invalid_parameter", "query parameter name '%ZZ'"},
      // paths that are no endpoint: traversal, trailing or doubled slashes, other versions
      {"/v1/apps/../verify", 404, "not_found", "no endpoint GET '/v1/apps/../verify'"},
      {"/v1/workflow-runs/../../healthz", 404, "not_found", "'/v1/workflow-runs/../../healthz'"},
      {"/v1/verify/", 404, "not_found", "no endpoint GET '/v1/verify/'"},
      {runs + "/", 404, "not_found", "no endpoint GET '/v1/apps/app-1/workflow-runs/'"},
      {"/v1/apps//workflow-runs", 404, "not_found", "'/v1/apps//workflow-runs'"},
      {"//v1/verify", 404, "not_found", "'//v1/verify'"},
      {"/healthz/", 404, "not_found", "'/healthz/'"},
      {"/v1", 404, "not_found", "'/v1'"},
      {"/v2/verify", 404, "not_found", "'/v2/verify'"},
      {"/index.html", 404, "not_found", "'/index.html'"},
      {"/v1/workflow-runs/acme-long", 404, "not_found", "'/v1/workflow-runs/acme-long'"},
      // very long ids: a 404 naming the id's start and its length; past the target limit, 414
      {"/v1/workflow-runs/" + std::string(1500, 'x') + "/events", 404, "not_found",
       "no run '" + std::string(80, 'x') + "... (1500 bytes)'"},
      {"/v1/apps/app-1/workflow-runs/" + std::string(1500, 'y'), 404, "not_found",
       "... (1500 bytes)' in app 'app-1'"},
      {"/v1/workflow-runs/" + std::string(3000, 'x') + "/events", 414, "uri_too_long", "3"},
      // not a path: absolute-form
      {"http://127.0.0.1/v1/verify", 400, "bad_request",
       "request target 'http://127.0.0.1/v1/verify': expected a path starting with '/'"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.target.substr(0, 120));
    const HttpReply reply = f.acme(row.target);
    const auto error = error_of(reply, row.status, row.code);
    const std::string message = error.at("message");
    CAPTURE(message);
    CHECK(message.find(row.message_part) != std::string::npos);
  }
  // The server still answers afterwards.
  CHECK(f.acme_json("/v1/verify").at("ok") == true);
}

TEST_CASE("a failure inside the store is a 500 whose body says nothing of the cause",
          "[serve][api]") {
  ServeFixture f;
  {
    SQLite::Database db(f.dir.file("events.db"), SQLite::OPEN_READWRITE);
    db.exec("DROP TABLE annals_node_executions");
  }
  const auto error =
      error_of(f.acme("/v1/workflow-runs/acme-long/node-executions"), 500, "internal");
  const std::string message = error.at("message");
  CHECK(message.find("annals_node_executions") == std::string::npos);
  CHECK(message.find("SQL") == std::string::npos);
  // Other endpoints keep answering.
  CHECK(f.acme_json("/v1/workflow-runs/acme-long/events?limit=1").at("data").size() == 1);
}

TEST_CASE("apps lists the tenant's app ids with their triggers, by a skip-scan of the index",
          "[serve][api]") {
  ServeFixture f;
  CHECK(f.acme_json("/v1/apps") ==
        Json::parse(R"({"data":[{"app_id":"app-1","triggered_from":["app-run","debugging"]},
                                {"app_id":"app-2","triggered_from":["app-run"]}],
                        "has_more":false})"));
  CHECK(Json::parse(f.get("/v1/apps", f.beta_key).body) ==
        Json::parse(R"({"data":[{"app_id":"app-1","triggered_from":["app-run"]}],
                        "has_more":false})"));
  CHECK(Json::parse(f.get("/v1/apps", f.gamma_key).body) ==
        Json::parse(R"({"data":[],"has_more":false})"));
  error_of(f.acme("/v1/apps?limit=5"), 400, "invalid_parameter");

  // Each step is one seek on the page index: no table scan, no sort, whatever the run count.
  const auto store = f.factory.sql_event_store();
  const auto plan_of = [&](const std::string& sql, const std::vector<SqlValue>& params) {
    std::vector<std::string> details;
    store->read_transaction([&](SqlSession& session) {
      for (const SqlRow& row : session.query("EXPLAIN QUERY PLAN " + sql, params)) {
        details.push_back(row.text(3));
      }
    });
    return details;
  };
  for (const auto& plan :
       {plan_of(serve::detail::first_app_trigger_sql(), {std::string("acme")}),
        plan_of(serve::detail::next_app_trigger_sql(),
                {std::string("acme"), std::string("app-1"), std::string("app-run")})}) {
    CAPTURE(plan);
    bool seek = false;
    for (const std::string& step : plan) {
      CHECK(step.find("TEMP B-TREE") == std::string::npos);
      CHECK(step.rfind("SCAN", 0) != 0);
      seek = seek || step.find("COVERING INDEX annals_workflow_runs_page") != std::string::npos;
    }
    CHECK(seek);
  }
}

TEST_CASE("random targets built from hostile pieces never throw and always get a JSON answer",
          "[serve][api]") {
  // Api::handle directly (the transport would refuse some of these bytes before it): whatever
  // the target, an answer with a known status and, for an error, the error body.
  test::TempDir dir;
  RepositoryFactory factory(dir.sqlite_uri());
  test::write_serve_data(factory);
  serve::KeyRing keys;
  keys.add("acme", serve::KeyRing::hash_key("k"));
  const serve::detail::Api api(factory, std::move(keys));
  const std::vector<std::string> pieces = {"/",
                                           "/",
                                           "v1",
                                           "apps",
                                           "app-1",
                                           "workflow-runs",
                                           "events",
                                           "node-executions",
                                           "verify",
                                           "healthz",
                                           "?",
                                           "&",
                                           "=",
                                           "limit",
                                           "last_id",
                                           "after_version",
                                           "triggered_from",
                                           "5",
                                           "0",
                                           "-1",
                                           "1001",
                                           "%",
                                           "%4",
                                           "%41",
                                           "%00",
                                           "%ff",
                                           "%c3%a9",
                                           "%2F",
                                           "+",
                                           "..",
                                           ".",
                                           std::string("\0", 1),
                                           "\xff",
                                           "\xc3\xa9",
                                           "acme-long",
                                           "beta-0",
                                           "99999999999999999999999",
                                           " ",
                                           "#",
                                           "%%",
                                           "\x1b[31m"};
  std::uint32_t state = 12345;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::map<unsigned, int> statuses;
  for (int i = 0; i < 3000; ++i) {
    std::string target;
    const std::uint32_t count = 1 + next() % 10;
    for (std::uint32_t k = 0; k < count; ++k) target += pieces[next() % pieces.size()];
    if (next() % 4 != 0) target.insert(0, "/");
    serve::detail::HttpRequest request;
    request.method = "GET";
    request.target = target;
    if (next() % 3 != 0) {
      request.authorization = "Bearer k";
      request.has_authorization = true;
    }
    CAPTURE(target);
    serve::detail::HttpResponse response;
    REQUIRE_NOTHROW(response = api.handle(request));
    ++statuses[response.status];
    CHECK((response.status == 200 || response.status == 400 || response.status == 401 ||
           response.status == 404));
    if (response.status != 200) {
      const nlohmann::json body = nlohmann::json::parse(response.body);
      CHECK(body.at("error").at("status") == response.status);
      CHECK(body.at("error").at("message").is_string());
    } else if (response.content_type == "application/json") {
      CHECK(nlohmann::json::accept(response.body));
    }
  }
  // The pieces reach every kind of answer.
  CHECK(statuses.size() == 4);
}

TEST_CASE("a run and a node execution have every field, in order, with null for the absent ones",
          "[serve][api][json]") {
  WorkflowRunView run;
  run.id = "r-1";
  run.tenant_id = "acme";
  run.app_id = "bot";
  run.workflow_id = "w";
  run.triggered_from = "app-run";
  run.status = "failed";
  run.inputs = R"({"q":"\u00e9"})";
  run.error = "boom \"quoted\"\n";
  run.elapsed_time = 1.5;
  run.total_tokens = 42;
  run.total_steps = 3;
  run.created_by = "carol";
  run.created_at = from_micros(1'700'000'000'000'001);
  run.finished_at = from_micros(1'700'000'001'500'001);
  run.version = 7;
  CHECK(serve::to_json(run).dump() ==
        R"({"id":"r-1","tenant_id":"acme","app_id":"bot","workflow_id":"w",)"
        R"("triggered_from":"app-run","status":"failed","inputs":"{\"q\":\"\\u00e9\"}",)"
        R"("outputs":null,"error":"boom \"quoted\"\n","elapsed_time":1.5,"total_tokens":42,)"
        R"("total_steps":3,"created_by":"carol","created_at":"2023-11-14T22:13:20.000001Z",)"
        R"("finished_at":"2023-11-14T22:13:21.500001Z","version":7})");
  InfiniteScrollPagination<WorkflowRunView> page{.data = {run, run}, .limit = 2, .has_more = true};
  const std::string one = serve::to_json(run).dump();
  CHECK(serve::to_json(page).dump() ==
        R"({"data":[)" + one + "," + one + R"(],"limit":2,"has_more":true})");

  NodeExecutionView node;
  node.id = "n-1";
  node.tenant_id = "acme";
  node.run_id = "r-1";
  node.app_id = "bot";
  node.workflow_id = "w";
  node.index = 2;
  node.node_id = "llm";
  node.node_type = "llm";
  node.title = "Draft";
  node.predecessor_node_id = "start";
  node.status = "running";
  node.inputs = "{}";
  node.outputs = R"({"a":1})";
  node.elapsed_time = 0;
  node.total_tokens = 0;
  node.created_at = from_micros(1'700'000'000'000'000);
  CHECK(serve::to_json(node).dump() ==
        R"({"id":"n-1","tenant_id":"acme","run_id":"r-1","app_id":"bot","workflow_id":"w",)"
        R"("index":2,"node_id":"llm","node_type":"llm","title":"Draft",)"
        R"("predecessor_node_id":"start","status":"running","inputs":"{}",)"
        R"("outputs":"{\"a\":1}","error":null,"elapsed_time":0.0,"total_tokens":0,)"
        R"("created_at":"2023-11-14T22:13:20.000000Z","finished_at":null})");
}

TEST_CASE("an event whose stored text is not UTF-8 is shown lossily and flagged, not a 500",
          "[serve][api]") {
  ServeFixture f;
  const auto store = f.factory.event_store();
  const RecordedEvent second =
      store->read_stream(WorkflowRun::stream_id_for("acme-long"), 2, 1).at(0);
  std::ostringstream line;
  write_export_line(line, second);
  const Json exported = Json::parse(line.str());
  {
    SQLite::Database db(f.dir.file("events.db"), SQLite::OPEN_READWRITE);
    db.exec("DROP TRIGGER annals_events_no_update; DROP TRIGGER annals_events_no_delete;");
    db.exec("UPDATE annals_events SET actor = X'41FF42' WHERE position = " +
            std::to_string(second.position));
  }
  const Json page = f.acme_json("/v1/workflow-runs/acme-long/events?limit=3");
  REQUIRE(page.at("data").size() == 3);
  const Json& bad = page.at("data").at(1);
  CHECK(bad.at("not_utf8") == true);
  CHECK(bad.at("metadata").at("actor") ==
        "A\xef\xbf\xbd"
        "B");  // U+FFFD for the 0xFF byte
  CHECK(bad.at("position") == second.position);
  CHECK(bad.at("hash") == to_hex(second.hash));
  CHECK(bad.at("payload").is_null());
  CHECK(bad.at("payload_base64") == exported.at("payload_base64"));  // the exact bytes
  // Its neighbours are exact export lines still; verify names the position.
  CHECK_FALSE(page.at("data").at(0).contains("not_utf8"));
  CHECK(parse_export_line(page.at("data").at(2).dump()).version == 3);
  auto fresh = f.start(f.factory);
  const Json verified =
      Json::parse(test::HttpClient(fresh->port()).get("/v1/verify", f.acme_key).body);
  CHECK(verified.at("ok") == false);
  CHECK(verified.at("first_bad_position") == second.position);
}

TEST_CASE("a page is bounded by bytes as well as by count, and paging still gets every item",
          "[serve][api]") {
  ServeFixture f;
  // Runs whose outputs are a megabyte each, and a run whose node outputs are: a page of them
  // stops once its body passes 4 MiB, with has_more, however large the limit.
  const std::string big = R"({"text":")" + std::string(1 << 20, 'x') + "\"}";
  auto aggregates = f.factory.create_workflow_run_aggregate_repository();
  std::vector<WorkflowRun> runs;
  for (int i = 0; i < 10; ++i) {
    runs.push_back(WorkflowRun::create(RunCreated{.run_id = "big-" + std::to_string(i),
                                                  .tenant_id = "acme",
                                                  .app_id = "big",
                                                  .workflow_id = "w",
                                                  .triggered_from = "app-run",
                                                  .created_by = "u",
                                                  .inputs = "{}",
                                                  .created_at = test::serve_time(i)}));
    runs.back().succeed(RunSucceeded{.outputs = big});
  }
  runs.push_back(WorkflowRun::create(RunCreated{.run_id = "big-events",
                                                .tenant_id = "acme",
                                                .app_id = "big-2",
                                                .workflow_id = "w",
                                                .triggered_from = "app-run",
                                                .created_by = "u",
                                                .inputs = "{}"}));
  for (int n = 0; n < 8; ++n) {
    const std::string id = "big-n" + std::to_string(n);
    runs.back().start_node(
        NodeStarted{.node_execution_id = id, .node_id = "n", .node_type = "llm"});
    runs.back().complete_node(NodeCompleted{.node_execution_id = id, .outputs = big});
  }
  // Many small runs and events, to cross the server's reads of 100 at a time.
  for (int i = 0; i < 230; ++i) {
    runs.push_back(WorkflowRun::create(RunCreated{.run_id = "many-" + std::to_string(i),
                                                  .tenant_id = "acme",
                                                  .app_id = "many",
                                                  .workflow_id = "w",
                                                  .triggered_from = "app-run",
                                                  .created_by = "u",
                                                  .inputs = "{}",
                                                  .created_at = test::serve_time(i / 7)}));
  }
  for (int n = 0; n < 110; ++n) {
    const std::string id = "many-0-n" + std::to_string(n);
    runs[11].start_node(NodeStarted{.node_execution_id = id, .node_id = "n", .node_type = "llm"});
    runs[11].complete_node(NodeCompleted{.node_execution_id = id, .outputs = "{}"});
  }
  std::vector<WorkflowRun*> batch;
  for (WorkflowRun& run : runs) batch.push_back(&run);
  aggregates.save_all(batch);

  const Json first = f.acme_json("/v1/apps/big/workflow-runs?limit=1000");
  CHECK(first.at("limit") == 1000);
  CHECK(first.at("has_more") == true);
  CHECK(first.at("data").size() >= 1);
  CHECK(first.at("data").size() < 10);
  std::vector<std::string> ids = page_through(f, f.acme_key, "acme", "many", "app-run", 1000);
  CHECK(ids.size() == 230);  // one page of 230 (three reads), equal to the repository's
  // Paging the big ones by last_id gets all ten, newest first.
  std::vector<std::string> big_ids;
  std::string target = "/v1/apps/big/workflow-runs?limit=1000";
  for (int pages = 0; pages < 20; ++pages) {
    const Json page = f.acme_json(target);
    CHECK(f.acme(target).body.size() < (std::size_t{4} << 20) + (std::size_t{2} << 20));
    for (const Json& run : page.at("data")) big_ids.push_back(run.at("id"));
    if (!page.at("has_more").get<bool>()) break;
    target = "/v1/apps/big/workflow-runs?limit=1000&last_id=" + big_ids.back();
  }
  CHECK(big_ids == std::vector<std::string>{"big-9", "big-8", "big-7", "big-6", "big-5", "big-4",
                                            "big-3", "big-2", "big-1", "big-0"});

  // Events: the same by after_version.
  const auto history =
      f.factory.event_store()->read_stream(WorkflowRun::stream_id_for("big-events"));
  REQUIRE(history.size() == 17);
  std::vector<std::uint64_t> versions;
  std::uint64_t after = 0;
  int pages = 0;
  for (; pages < 20; ++pages) {
    const Json page = f.acme_json("/v1/workflow-runs/big-events/events?limit=1000&after_version=" +
                                  std::to_string(after));
    for (const Json& event : page.at("data")) versions.push_back(event.at("version"));
    after = versions.back();
    if (!page.at("has_more").get<bool>()) break;
  }
  CHECK(pages > 1);
  CHECK(versions.size() == 17);
  for (std::size_t i = 0; i < versions.size(); ++i) CHECK(versions[i] == i + 1);
  const Json many = f.acme_json("/v1/workflow-runs/many-0/events?limit=1000");
  CHECK(many.at("has_more") == false);
  CHECK(many.at("data").size() == 221);  // RunCreated + 110 x 2, across three reads
  CHECK(f.acme_json("/v1/workflow-runs/many-0/events?limit=221").at("has_more") == false);
  CHECK(f.acme_json("/v1/workflow-runs/many-0/events?limit=220").at("has_more") == true);
  CHECK(f.acme_json("/v1/workflow-runs/many-0/events?limit=100").at("has_more") == true);
}

TEST_CASE("concurrent verifies never wait for each other: the answer, the last answer or a 503",
          "[serve][api]") {
  ServeFixture f;
  REQUIRE(f.acme("/v1/verify").status == 200);  // a last answer exists from here on
  auto aggregates = f.factory.create_workflow_run_aggregate_repository();
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      test::HttpClient client(f.server->port());
      for (int i = 0; i < 20; ++i) {
        if (t == 0) {  // moves the head, so verifications keep running
          WorkflowRun run = WorkflowRun::create(RunCreated{.run_id = "v-" + std::to_string(i),
                                                           .tenant_id = "acme",
                                                           .app_id = "v",
                                                           .workflow_id = "w",
                                                           .triggered_from = "app-run",
                                                           .created_by = "u",
                                                           .inputs = "{}"});
          aggregates.save(run);
        }
        const HttpReply reply = client.get("/v1/verify", f.acme_key);
        if (reply.status == 200 && Json::parse(reply.body).at("ok") == true) {
          ++ok;
        } else if (reply.status == 503 && reply.header("retry-after") == "1" &&
                   Json::parse(reply.body).at("error").at("code") == "unavailable") {
          ++busy;
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(other == 0);
  CHECK(ok + busy == 160);
  CHECK(ok > 0);
}
