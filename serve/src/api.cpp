#include "api.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/serve/views_json.hpp"
#include "annals/store/export.hpp"
#include "annals/store/hash_chain.hpp"
#include "target.hpp"

namespace annals::serve::detail {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:";
constexpr std::uint64_t kMaxRunsLimit = WorkflowRunRepository::kMaxPageSize;  // 1000
constexpr std::uint64_t kDefaultRunsLimit = 20;
constexpr std::uint64_t kMaxEventsLimit = 1000;
constexpr std::uint64_t kDefaultEventsLimit = 100;
constexpr std::uint64_t kMaxAfterVersion = std::uint64_t{1} << 63;
constexpr std::size_t kMaxStreamIdBytes = 1024;  // the store refuses longer stream ids
constexpr std::chrono::seconds kVerifyMaxAge{60};
constexpr std::size_t kMaxAppTriggers = 1000;
// A page stops growing once its body has this many bytes (it always holds at least one item).
constexpr std::size_t kPageBytes = std::size_t{4} << 20;
constexpr std::uint64_t kRunsPerRead = 100;
constexpr std::uint64_t kEventsPerRead = 100;  // (app, trigger) pairs /v1/apps lists at most

// An answer a handler decided on; thrown to handle(), which turns it into the error body.
struct ApiError {
  unsigned status;
  std::string code;
  std::string message;
};

ApiError invalid_parameter(std::string message) {
  return ApiError{400, "invalid_parameter", std::move(message)};
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse json_response(std::string body) {
  HttpResponse response;
  response.body = std::move(body);
  return response;
}

// The query parameters of one endpoint: each at most once, and only those it knows.
class Query {
 public:
  Query(const std::vector<std::pair<std::string, std::string>>& items,
        std::initializer_list<std::string_view> allowed) {
    for (const auto& [name, value] : items) {
      bool known = false;
      for (const std::string_view a : allowed) known = known || a == name;
      if (!known) {
        std::string expected;
        for (const std::string_view a : allowed)
          expected += (expected.empty() ? "" : ", ") + std::string(a);
        throw invalid_parameter("unknown query parameter '" + printable(name) + "': " +
                                (allowed.size() == 0 ? std::string("this endpoint takes none")
                                                     : "this endpoint takes " + expected));
      }
      for (const auto& [seen, seen_value] : values_) {
        if (seen == name) {
          throw invalid_parameter("query parameter '" + printable(name) +
                                  "' is given more than once ('" + printable(seen_value) +
                                  "' and '" + printable(value) + "'): expected it at most once");
        }
      }
      values_.emplace_back(name, value);
    }
  }

  [[nodiscard]] std::optional<std::string> get(std::string_view name) const {
    for (const auto& [n, v] : values_) {
      if (n == name) return v;
    }
    return std::nullopt;
  }

  // A whole number in min..max written in decimal digits only (no sign, space, exponent or
  // fraction), or `fallback` when the parameter is absent.
  [[nodiscard]] std::uint64_t number(std::string_view name, std::uint64_t min, std::uint64_t max,
                                     std::uint64_t fallback) const {
    const std::optional<std::string> text = get(name);
    if (!text) return fallback;
    const auto problem = [&] {
      return invalid_parameter(std::string(name) + " '" + printable(*text) +
                               "': expected a whole number from " + std::to_string(min) + " to " +
                               std::to_string(max) + ", in decimal digits only");
    };
    if (text->empty()) throw problem();
    std::uint64_t value = 0;
    bool too_large = false;  // kept apart from value, which must not wrap around
    for (const char c : *text) {
      if (c < '0' || c > '9') throw problem();
      const auto digit = static_cast<std::uint64_t>(c - '0');
      if (too_large || value > (max - digit) / 10) {
        too_large = true;
        continue;
      }
      value = value * 10 + digit;
    }
    if (too_large || value < min) throw problem();
    return value;
  }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Whether a stream's first event is a RunCreated of this tenant: the run is the tenant's.
bool created_by_tenant(const RecordedEvent& first, std::string_view tenant) {
  if (first.type != RunCreated::kType) return false;
  const std::optional<std::string> payload = workflow_payload_json(first);
  if (!payload) return false;
  const Json json = Json::parse(*payload, nullptr, false);
  if (!json.is_object()) return false;
  const auto it = json.find("tenant_id");
  return it != json.end() && it->is_string() && it->get_ref<const std::string&>() == tenant;
}

std::string base64(std::string_view bytes) {
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max() / 2)) return {};
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(bytes.data()),
                                      static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

// An event that has no export line (a stream id, type or metadata field that is not UTF-8, which
// append refuses, so only a changed file holds one): the line's fields with the bad bytes
// replaced by U+FFFD, "payload" null, and "not_utf8": true. Its hash no longer checks against
// these fields (payload_base64 is still exact); /v1/verify reports the position.
std::string lossy_event_json(const RecordedEvent& e) {
  const Json line{{"position", e.position},
                  {"stream_id", e.stream_id},
                  {"version", e.version},
                  {"event_id", to_string(e.event_id)},
                  {"type", e.type},
                  {"schema_version", e.schema_version},
                  {"payload_format", std::string(to_string(e.payload_format))},
                  {"payload", nullptr},
                  {"payload_base64", base64(e.payload)},
                  {"metadata",
                   {{"tenant_id", e.metadata.tenant_id},
                    {"actor", e.metadata.actor},
                    {"correlation_id", e.metadata.correlation_id},
                    {"causation_id", e.metadata.causation_id},
                    {"occurred_at", to_micros(e.metadata.occurred_at)}}},
                  {"recorded_at", to_micros(e.recorded_at)},
                  {"hash", to_hex(e.hash)},
                  {"not_utf8", true}};
  return dump(line);
}

void log_internal_error(const HttpRequest& request, std::string_view what) {
  const std::string line = "annals serve: internal error answering " + printable(request.method) +
                           " " + printable(request.target, 200) + ": " + printable(what, 1000) +
                           "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

HttpResponse error_response(unsigned status, std::string_view code, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = dump(
      Json{{"error",
            {{"status", status}, {"code", std::string(code)}, {"message", std::string(message)}}}});
  if (status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

std::string first_app_trigger_sql() {
  return "SELECT app_id, triggered_from FROM " + std::string(WorkflowProjection::kRunsTable) +
         " WHERE tenant_id = $1 ORDER BY app_id, triggered_from LIMIT 1";
}
std::string next_app_trigger_sql() {
  return "SELECT app_id, triggered_from FROM " + std::string(WorkflowProjection::kRunsTable) +
         " WHERE tenant_id = $1 AND (app_id, triggered_from) > ($2, $3)"
         " ORDER BY app_id, triggered_from LIMIT 1";
}

struct Api::Endpoints {
  explicit Endpoints(const RepositoryFactory& factory)
      : store(factory.sql_event_store()),
        runs(factory.create_workflow_run_repository()),
        nodes(factory.create_node_execution_repository()) {}

  std::shared_ptr<SqlEventStore> store;
  WorkflowRunRepository runs;
  NodeExecutionRepository nodes;

  // /v1/verify: one verification at a time (verify_mutex, only ever try-locked); its answer is
  // kept for the head it covered, for at most kVerifyMaxAge (a change made behind the store's
  // back leaves the head where it was). cache_mutex guards the four fields below.
  std::mutex verify_mutex;
  std::mutex cache_mutex;
  std::optional<std::uint64_t> verified_head;
  std::chrono::steady_clock::time_point verified_at;
  std::string verified_body;
};

Api::Api(RepositoryFactory factory, KeyRing keys)
    : factory_(std::move(factory)),
      keys_(std::move(keys)),
      endpoints_(std::make_unique<Endpoints>(factory_)) {}
Api::~Api() = default;
Api::Api(Api&&) noexcept = default;
Api& Api::operator=(Api&&) noexcept = default;

HttpResponse Api::handle(const HttpRequest& request) const {
  try {
    return route(request);
  } catch (const ApiError& e) {
    return error_response(e.status, e.code, e.message);
  } catch (const NotFound&) {
    return error_response(404, "not_found", "not found");
  } catch (const InvalidArgument& e) {
    return error_response(400, "bad_request", e.what());
  } catch (const StoreError& e) {
    if (e.transient()) {
      HttpResponse response =
          error_response(503, "unavailable",
                         "the store cannot answer now (busy, locked or I/O); retry in a moment");
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    log_internal_error(request, e.what());
  } catch (const std::exception& e) {
    log_internal_error(request, e.what());
  } catch (...) {
    log_internal_error(request, "an exception that is not a std::exception");
  }
  return error_response(500, "internal",
                        "the server failed to answer this request; its log says why");
}

namespace {

HttpResponse viewer_page() {
  HttpResponse response;
  response.content_type = "text/html; charset=utf-8";
  response.body = std::string(viewer_html());
  response.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  return response;
}

// The tenant of the request's bearer key; a 401 ApiError saying what is wrong (never repeating
// what was sent) otherwise.
std::string authenticate(const KeyRing& keys, const HttpRequest& request) {
  const auto unauthorized = [](std::string message) {
    return ApiError{401, "unauthorized", std::move(message)};
  };
  if (!request.has_authorization && request.authorization.empty()) {
    throw unauthorized("this endpoint needs an API key: send 'Authorization: Bearer <key>'");
  }
  const std::string_view value = trim(request.authorization);
  if (value.empty()) {
    throw unauthorized("the Authorization header is empty: expected 'Bearer <key>'");
  }
  const std::size_t space = value.find_first_of(" \t");
  if (!iequals(value.substr(0, space), "Bearer")) {
    throw unauthorized(
        "the Authorization header is not of the Bearer scheme: expected 'Bearer <key>'");
  }
  const std::string_view key =
      space == std::string_view::npos ? std::string_view() : trim(value.substr(space));
  if (key.empty() || key.find_first_of(" \t") != std::string_view::npos) {
    throw unauthorized(
        "the Authorization header does not hold one key after 'Bearer': expected 'Bearer <key>'");
  }
  std::optional<std::string> found = keys.authenticate(key);
  if (!found) throw unauthorized("the key is not known to this server");
  return std::move(*found);
}

}  // namespace

HttpResponse Api::route(const HttpRequest& request) const {
  if (request.method != "GET") {
    ApiError e{405, "method_not_allowed",
               "method '" + printable(request.method) +
                   "' is not allowed; every endpoint answers GET only"};
    HttpResponse response = error_response(e.status, e.code, e.message);
    response.headers.emplace_back("Allow", "GET");
    return response;
  }
  const std::string_view target = request.target;
  if (target.empty() || target.front() != '/') {
    throw ApiError{400, "bad_request",
                   "request target '" + printable(target) +
                       "': expected a path starting with '/' (origin-form)"};
  }
  const std::string_view raw_path = target.substr(0, target.find('?'));

  // Every /v1 target is authenticated first, whatever else is wrong with it: a client without
  // a key learns nothing about what the API would have said.
  std::optional<std::string> authenticated;
  if (raw_path == "/v1" || raw_path.starts_with("/v1/")) {
    authenticated = authenticate(keys_, request);
  }
  if (raw_path == "/") return viewer_page();  // its query string is ignored

  RequestTarget parsed;
  try {
    parsed = parse_target(target);
  } catch (const InvalidArgument& e) {
    throw invalid_parameter(e.what());
  }
  const std::vector<std::string>& s = parsed.segments;
  Endpoints& api = *endpoints_;
  const auto not_found_path = [&] {
    return ApiError{
        404, "not_found",
        "no endpoint GET '" + printable(raw_path, 200) + "' (docs/serve.md lists the endpoints)"};
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    // An empty segment ("//", a trailing '/') is no endpoint; "/" alone is the page.
    if (s[i].empty() && s.size() > 1) throw not_found_path();
  }

  if (s.size() == 1 && s[0] == "healthz") {
    const Query query(parsed.query, {});
    return json_response(
        dump(Json{{"status", "ok"}, {"head_position", api.store->head_position()}}));
  }

  if (s.empty() || s[0] != "v1") throw not_found_path();
  // A first segment that only decodes to "v1" ("/%761/...") is /v1 as well, and needs the key.
  if (!authenticated) authenticated = authenticate(keys_, request);
  const std::string& tenant = *authenticated;

  // GET /v1/verify
  if (s.size() == 2 && s[1] == "verify") {
    const Query query(parsed.query, {});
    // One verification at a time, and never an io thread parked behind it: while one runs, the
    // last answer (it names the head it covered) or, before the first, a 503.
    const std::unique_lock flight(api.verify_mutex, std::try_to_lock);
    if (!flight.owns_lock()) {
      const std::lock_guard cache(api.cache_mutex);
      if (!api.verified_body.empty()) return json_response(api.verified_body);
      HttpResponse response = error_response(
          503, "unavailable", "a verification of the log is running; retry in a moment");
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    const std::uint64_t head = api.store->head_position();
    const auto now = std::chrono::steady_clock::now();
    {
      const std::lock_guard cache(api.cache_mutex);
      if (api.verified_head && *api.verified_head == head &&
          now - api.verified_at < kVerifyMaxAge) {
        return json_response(api.verified_body);
      }
    }
    std::uint64_t covered = head;
    Json body;
    try {
      const LogVerification v = verify_log(*api.store);
      covered = v.head_position;
      body = Json{{"ok", true},
                  {"head_position", v.head_position},
                  {"head_hash", to_hex(v.head_hash)},
                  {"events", v.events},
                  {"purged", v.purged}};
    } catch (const IntegrityError& e) {
      // Not verify_log's own message: it names the stream at the bad position, which may be
      // another tenant's run. The position is the same for everyone; the log gets the details.
      const std::string line = "annals serve: /v1/verify: " + printable(e.what(), 1000) + "\n";
      std::fwrite(line.data(), 1, line.size(), stderr);
      const std::string where =
          e.position() == 0 ? std::string("the log") : "position " + std::to_string(e.position());
      body = Json{{"ok", false},
                  {"head_position", head},
                  {"first_bad_position", e.position()},
                  {"message", "the hash chain is broken at " + where +
                                  ": an event there was changed, inserted, removed or moved "
                                  "(run `annals verify` on the store for the details)"}};
    }
    const std::lock_guard cache(api.cache_mutex);
    api.verified_body = dump(body);
    api.verified_head = covered;
    api.verified_at = now;
    return json_response(api.verified_body);
  }

  // GET /v1/apps: the tenant's app ids, each with the triggers it has runs of. A skip-scan of
  // the page index (tenant_id, app_id, triggered_from, ...): one index seek per pair found,
  // whatever the number of runs, and at most kMaxAppTriggers pairs.
  if (s.size() == 2 && s[1] == "apps") {
    const Query query(parsed.query, {});
    std::vector<std::pair<std::string, std::string>> pairs;
    bool has_more = false;
    api.store->read_transaction([&](SqlSession& sql) {
      pairs.clear();
      has_more = false;
      std::vector<SqlRow> rows = sql.query(first_app_trigger_sql(), {tenant});
      while (!rows.empty()) {
        if (pairs.size() == kMaxAppTriggers) {
          has_more = true;
          break;
        }
        pairs.emplace_back(rows.front().text(0), rows.front().text(1));
        rows = sql.query(next_app_trigger_sql(), {tenant, pairs.back().first, pairs.back().second});
      }
    });
    Json data = Json::array();
    for (const auto& [app, trigger] : pairs) {
      if (data.empty() || data.back().at("app_id") != app) {
        data.push_back(Json{{"app_id", app}, {"triggered_from", Json::array()}});
      }
      data.back().at("triggered_from").push_back(trigger);
    }
    return json_response(dump(Json{{"data", std::move(data)}, {"has_more", has_more}}));
  }

  // GET /v1/apps/{app_id}/workflow-runs
  if (s.size() == 4 && s[1] == "apps" && s[3] == "workflow-runs") {
    const std::string& app_id = s[2];
    const Query query(parsed.query, {"triggered_from", "limit", "last_id"});
    const std::string trigger = query.get("triggered_from").value_or("app-run");
    if (trigger.empty()) {
      throw invalid_parameter(
          "triggered_from '': expected a trigger such as app-run (the default) or debugging");
    }
    const std::uint64_t limit = query.number("limit", 1, kMaxRunsLimit, kDefaultRunsLimit);
    const std::optional<std::string> last_id = query.get("last_id");
    if (last_id && last_id->empty()) {
      throw invalid_parameter("last_id '': expected the id of the last run of the previous page");
    }
    // The page is read kRunsPerRead runs at a time and ends early, with has_more, once its body
    // passes kPageBytes: a page's memory is bounded by bytes, not only by count (one run's
    // outputs may be megabytes). Keyset pagination makes the pieces one list.
    std::string body = "{\"data\":[";
    std::uint64_t count = 0;
    bool has_more = false;
    std::optional<std::string> cursor = last_id;
    for (bool first = true;; first = false) {
      const auto want = static_cast<std::size_t>(std::min(limit - count, kRunsPerRead));
      InfiniteScrollPagination<WorkflowRunView> page;
      try {
        page = api.runs.get_paginated_workflow_runs(tenant, app_id, trigger, want, cursor);
      } catch (const NotFound&) {
        if (first) {
          throw ApiError{404, "not_found",
                         "last_id '" + printable(*last_id) + "' is not a run in app '" +
                             printable(app_id) + "' with triggered_from '" + printable(trigger) +
                             "'"};
        }
        has_more = true;  // the run this read continued from was deleted meanwhile: end here
        break;
      }
      bool stop = false;
      for (std::size_t i = 0; i < page.data.size(); ++i) {
        if (count > 0) body += ',';
        body += dump(to_json(page.data[i]));
        ++count;
        cursor = page.data[i].id;
        if (count == limit || body.size() >= kPageBytes) {
          has_more = i + 1 < page.data.size() || page.has_more;
          stop = true;
          break;
        }
      }
      if (stop || !page.has_more) break;
    }
    body += "],\"limit\":" + std::to_string(limit) +
            ",\"has_more\":" + (has_more ? "true" : "false") + "}";
    return json_response(std::move(body));
  }

  // GET /v1/apps/{app_id}/workflow-runs/{run_id}
  if (s.size() == 5 && s[1] == "apps" && s[3] == "workflow-runs") {
    const Query query(parsed.query, {});
    const std::optional<WorkflowRunView> run = api.runs.get_workflow_run_by_id(tenant, s[2], s[4]);
    if (!run) {
      throw ApiError{404, "not_found",
                     "no run '" + printable(s[4]) + "' in app '" + printable(s[2]) + "'"};
    }
    return json_response(dump(to_json(*run)));
  }

  if (s.size() == 4 && s[1] == "workflow-runs" && (s[3] == "node-executions" || s[3] == "events")) {
    const std::string& run_id = s[2];
    // One message for a run that does not exist, was deleted (node executions) or is another
    // tenant's: the answer must not tell them apart.
    const ApiError no_run{404, "not_found", "no run '" + printable(run_id) + "'"};

    // GET /v1/workflow-runs/{run_id}/node-executions
    if (s[3] == "node-executions") {
      const Query query(parsed.query, {});
      bool exists = false;
      std::vector<SqlRow> rows;
      api.store->read_transaction([&](SqlSession& sql) {
        exists = !sql.query("SELECT 1 FROM " + std::string(WorkflowProjection::kRunsTable) +
                                " WHERE id = $1 AND tenant_id = $2",
                            {run_id, tenant})
                      .empty();
        if (exists) {
          rows = sql.query(workflow_sql::select_node_executions_by_run(), {tenant, run_id});
        }
      });
      if (!exists) throw no_run;
      Json data = Json::array();
      for (const SqlRow& row : rows)
        data.push_back(to_json(workflow_sql::node_execution_from_row(row)));
      return json_response(dump(Json{{"data", std::move(data)}}));
    }

    // GET /v1/workflow-runs/{run_id}/events
    const Query query(parsed.query, {"after_version", "limit"});
    const std::uint64_t after = query.number("after_version", 0, kMaxAfterVersion, 0);
    const std::uint64_t limit = query.number("limit", 1, kMaxEventsLimit, kDefaultEventsLimit);
    const std::string stream = WorkflowRun::stream_id_for(run_id);
    if (stream.size() > kMaxStreamIdBytes) throw no_run;  // no stream can have this id
    const std::vector<RecordedEvent> first = api.store->read_stream(stream, 1, 1);
    if (first.empty() || !created_by_tenant(first.front(), tenant)) throw no_run;
    // Each event is its export line (docs/export-format.md) as it is, so a client can recompute
    // the hash chain from exactly the fields an export would give it. Read kEventsPerRead at a
    // time; the page ends early, with has_more, once its body passes kPageBytes.
    std::ostringstream lines;
    const ExportOptions options{.payload_json = workflow_payload_json};
    std::string body = "{\"data\":[";
    std::uint64_t count = 0;
    bool has_more = false;
    std::uint64_t next = after + 1;
    // Versions are at most 2^63 - 1, so nothing follows an after_version that large.
    bool reading = after < static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    while (reading) {
      const auto want = static_cast<std::size_t>(std::min(limit - count, kEventsPerRead));
      std::vector<RecordedEvent> events = api.store->read_stream(stream, next, want + 1);
      const bool more = events.size() > want;  // one more than asked: whether any follow
      if (more) events.resize(want);
      reading = more;
      for (std::size_t i = 0; i < events.size(); ++i) {
        lines.str({});
        std::string line;
        try {
          write_export_line(lines, events[i], options);
          line = lines.str();
          if (!line.empty() && line.back() == '\n') line.pop_back();
        } catch (const SerializationError&) {
          line = lossy_event_json(events[i]);
        }
        if (count > 0) body += ',';
        body += line;
        ++count;
        next = events[i].version + 1;
        if (count == limit || body.size() >= kPageBytes) {
          has_more = i + 1 < events.size() || more;
          reading = false;
          break;
        }
      }
    }
    body += "],\"limit\":" + std::to_string(limit) +
            ",\"has_more\":" + (has_more ? "true" : "false") + "}";
    return json_response(std::move(body));
  }

  throw not_found_path();
}

}  // namespace annals::serve::detail
