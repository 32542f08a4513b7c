// Authentication and tenant isolation over a real loopback port: every /v1 endpoint is a 401
// without a valid key, and another tenant's run, app, node executions, events or cursor are
// answered byte for byte as if they did not exist at all.
#include <catch2/catch.hpp>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "serve/serve_fixture.hpp"

using namespace annals;
using annals::test::error_of;
using annals::test::HttpReply;
using annals::test::ServeFixture;
using Json = nlohmann::ordered_json;

namespace {

// One target per /v1 endpoint (and two that are no endpoint), with ids that exist for acme.
std::vector<std::string> v1_targets(const ServeFixture& f) {
  const std::string run = f.data.acme_app1_runs[0];
  return {"/v1/verify",
          "/v1/apps",
          "/v1/apps/app-1/workflow-runs",
          "/v1/apps/app-1/workflow-runs?limit=5&last_id=" + run,
          "/v1/apps/app-1/workflow-runs/" + run,
          "/v1/workflow-runs/" + run + "/node-executions",
          "/v1/workflow-runs/" + run + "/events?after_version=0&limit=10",
          "/v1/nope",
          "/v1",
          "/v1/apps/app-1/workflow-runs?limit=0&bogus=%zz",  // bad query: still 401 first
          "/%761/verify",                                    // "v1" percent-encoded
          "/%76%31/apps/app-1/workflow-runs",
          "/v%31/workflow-runs/" + run + "/events"};
}

}  // namespace

TEST_CASE("every /v1 endpoint is a 401 without a valid bearer key, and says why without the key",
          "[serve][tenant]") {
  ServeFixture f;
  const std::string wrong_key = serve::KeyRing::generate_key();
  struct Credential {
    std::string description;
    std::vector<std::string> headers;  // Authorization lines sent
    std::string message_part;
  };
  const std::vector<Credential> credentials = {
      {"no header", {}, "this endpoint needs an API key"},
      {"an empty header", {"Authorization: "}, "the Authorization header is empty"},
      {"blanks only", {"Authorization: \t "}, "the Authorization header is empty"},
      {"Basic credentials", {"Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "Bearer scheme"},
      {"the key without a scheme", {"Authorization: " + f.acme_key}, "Bearer scheme"},
      {"Bearer alone", {"Authorization: Bearer"}, "does not hold one key"},
      {"Bearer and blanks", {"Authorization: Bearer   "}, "does not hold one key"},
      {"Bearer: with a colon", {"Authorization: Bearer: " + f.acme_key}, "Bearer scheme"},
      {"two keys",
       {"Authorization: Bearer " + f.acme_key + " " + f.acme_key},
       "does not hold one key"},
      {"a wrong key", {"Authorization: Bearer " + wrong_key}, "the key is not known"},
      {"a key one character short",
       {"Authorization: Bearer " + f.acme_key.substr(0, f.acme_key.size() - 1)},
       "the key is not known"},
      {"a key with a character more",
       {"Authorization: Bearer " + f.acme_key + "x"},
       "the key is not known"},
      {"the key's hash",
       {"Authorization: Bearer " + serve::KeyRing::file_line("acme", f.acme_key).substr(5, 64)},
       "the key is not known"},
      {"the key in a query parameter", {}, "this endpoint needs an API key"},
  };
  for (const std::string& target : v1_targets(f)) {
    for (const Credential& c : credentials) {
      CAPTURE(target, c.description);
      const std::string sent =
          c.description == "the key in a query parameter"
              ? target + (target.find('?') == std::string::npos ? "?" : "&") + "key=" + f.acme_key
              : target;
      const HttpReply reply = f.get(sent, std::nullopt, c.headers);
      const auto error = error_of(reply, 401, "unauthorized");
      CHECK(reply.header("www-authenticate") == "Bearer");
      const std::string message = error.at("message");
      CHECK(message.find(c.message_part) != std::string::npos);
      CHECK(reply.body.find(f.acme_key.substr(3, 20)) == std::string::npos);
      CHECK(reply.body.find(wrong_key.substr(3, 20)) == std::string::npos);
      CHECK(reply.body.find("YWxhZGRp") == std::string::npos);
    }
  }
  // A percent-encoded "v1" is /v1 (RFC 3986: the same resource), with the key it answers.
  CHECK(f.get("/%761/verify", f.acme_key).body == f.get("/v1/verify", f.acme_key).body);
  CHECK(f.get("/%76%31/apps/app-1/workflow-runs", f.acme_key).body ==
        f.get("/v1/apps/app-1/workflow-runs", f.acme_key).body);
  // The scheme is case-insensitive (RFC 7235); the key itself is not.
  CHECK(f.get("/v1/verify", std::nullopt, {"Authorization: bearer " + f.acme_key}).status == 200);
  CHECK(f.get("/v1/verify", std::nullopt, {"Authorization: BEARER  " + f.acme_key}).status == 200);
  std::string upper = f.acme_key;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != f.acme_key) CHECK(f.get("/v1/verify", upper).status == 401);
  // Outside /v1 no key is needed.
  CHECK(f.get("/healthz").status == 200);
  CHECK(f.get("/").status == 200);
}

TEST_CASE("another tenant's runs are answered byte for byte as runs that do not exist",
          "[serve][tenant]") {
  ServeFixture f;
  // The same keys over an empty store: there, every id below truly does not exist.
  RepositoryFactory empty_store("memory:");
  const auto empty_server = f.start(empty_store);
  test::HttpClient empty(empty_server->port());

  const std::string acme_run = f.data.acme_app1_runs[0];
  const std::string acme_deleted = f.data.acme_deleted_runs[0];
  const std::vector<std::string> targets = {
      // beta asking for acme's run, its node executions, its events
      "/v1/apps/app-1/workflow-runs/" + acme_run,
      "/v1/workflow-runs/" + acme_run + "/node-executions",
      "/v1/workflow-runs/" + acme_run + "/events",
      "/v1/workflow-runs/" + acme_run + "/events?after_version=1&limit=1",
      "/v1/workflow-runs/acme-long/events",
      // acme's run as beta's cursor in beta's own list of the same app id
      "/v1/apps/app-1/workflow-runs?last_id=" + acme_run,
      "/v1/apps/app-1/workflow-runs?triggered_from=debugging&last_id=" + f.data.acme_debug_runs[0],
      // an app only acme has runs in
      "/v1/apps/app-2/workflow-runs",
      "/v1/apps/app-2/workflow-runs/acme-long",
      // acme's deleted run
      "/v1/apps/app-1/workflow-runs/" + acme_deleted,
      "/v1/workflow-runs/" + acme_deleted + "/node-executions",
      "/v1/workflow-runs/" + acme_deleted + "/events",
  };
  for (const std::string& target : targets) {
    CAPTURE(target);
    const HttpReply as_beta = f.get(target, f.beta_key);
    const HttpReply unknown = empty.get(target, f.beta_key);
    CHECK(as_beta.status == unknown.status);
    CHECK(as_beta.body == unknown.body);
    CHECK(as_beta.headers == unknown.headers);
    // And acme itself sees them (except a deleted run and its node executions).
    if (target.find(acme_deleted) == std::string::npos ||
        target.find("/events") != std::string::npos) {
      CHECK(f.acme(target).body != as_beta.body);
    }
    // gamma, a tenant without any runs, gets the same answer as beta.
    CHECK(f.get(target, f.gamma_key).body == as_beta.body);
  }
  // Each of beta's answers above was the 404 (or the empty page) an unknown id gets.
  CHECK(error_of(f.get("/v1/workflow-runs/" + acme_run + "/events", f.beta_key), 404, "not_found")
            .at("message") == "no run '" + acme_run + "'");
  CHECK(Json::parse(f.get("/v1/apps/app-2/workflow-runs", f.beta_key).body) ==
        Json{{"data", Json::array()}, {"limit", 20}, {"has_more", false}});
  // A deleted run of one's own: node executions and run are 404 like an unknown one; its
  // history stays readable to its tenant only.
  CHECK(f.acme("/v1/workflow-runs/" + acme_deleted + "/node-executions").body ==
        empty.get("/v1/workflow-runs/" + acme_deleted + "/node-executions", f.acme_key).body);
  CHECK(f.acme("/v1/workflow-runs/" + acme_deleted + "/events").status == 200);
}

TEST_CASE("each tenant's lists hold its own runs only, though they share an app id",
          "[serve][tenant]") {
  ServeFixture f;
  const auto ids_of = [&](const std::string& key, const std::string& target) {
    std::set<std::string> ids;
    const HttpReply reply = f.get(target, key);
    REQUIRE(reply.status == 200);
    const Json page = Json::parse(reply.body);
    for (const auto& run : page.at("data")) {
      ids.insert(run.at("id").get<std::string>());
    }
    return ids;
  };
  const auto beta = ids_of(f.beta_key, "/v1/apps/app-1/workflow-runs?limit=1000");
  CHECK(beta == std::set<std::string>(f.data.beta_runs.begin(), f.data.beta_runs.end()));
  const auto acme = ids_of(f.acme_key, "/v1/apps/app-1/workflow-runs?limit=1000");
  CHECK(acme == std::set<std::string>(f.data.acme_app1_runs.begin(), f.data.acme_app1_runs.end()));
  CHECK(ids_of(f.gamma_key, "/v1/apps/app-1/workflow-runs?limit=1000").empty());
  // beta's own run with node executions is visible to beta, with beta's tenant on every row.
  const HttpReply nodes = f.get("/v1/workflow-runs/beta-0/node-executions", f.beta_key);
  REQUIRE(nodes.status == 200);
  const Json data = Json::parse(nodes.body).at("data");
  CHECK(data.size() == 3);
  for (const auto& node : data) CHECK(node.at("tenant_id") == "beta");
  // ...and is a 404 to acme.
  CHECK(f.acme("/v1/workflow-runs/beta-0/node-executions").status == 404);
  CHECK(f.acme("/v1/workflow-runs/beta-0/events").status == 404);
}
