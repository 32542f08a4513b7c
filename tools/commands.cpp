// The annals program's commands other than demo. Everything goes through the library's public
// API; the only SQL here counts rows and checks that the checkpoint table exists (for stats).

#include "commands.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <annals/events/printable.hpp>
#include <annals/serve/keys.hpp>
#include <annals/serve/server.hpp>
#include <annals/store/export.hpp>
#include <annals/store/hash_chain.hpp>
#include <annals/store/purge.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include "format.hpp"

namespace annals::cli {
namespace {

using json = nlohmann::ordered_json;

std::string hex_bytes(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0x0f];
  }
  return out;
}

std::string seconds_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2fs", seconds);
  return buffer;
}

// ---- stats ---------------------------------------------------------------------------------

std::uintmax_t size_or_zero(const std::filesystem::path& path) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// ---- rebuild progress ----------------------------------------------------------------------

std::string duration_text(std::chrono::seconds s) {
  const auto total = s.count();
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buffer;
}

class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& err, std::string name)
      : err_(err), name_(std::move(name)), terminal_(isatty(STDERR_FILENO) == 1) {}

  void operator()(const RebuildProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.processed >= p.total;
    // A terminal is redrawn up to ten times a second, a log gets a line a second.
    const auto every = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
    if (!done && shown_ && now - last_ < every) return;
    if (done && finished_) return;
    last_ = now;
    shown_ = true;
    finished_ = done;
    const double fraction =
        p.total == 0 ? 1.0 : static_cast<double>(p.processed) / static_cast<double>(p.total);
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", p.events_per_second);
    if (terminal_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.append(static_cast<std::size_t>(kWidth - filled), '-');
      std::ostringstream line;
      line << "\rrebuild " << name_ << " [" << bar << "] " << p.processed << "/" << p.total << "  "
           << rate << " events/s  ETA " << duration_text(p.eta);
      std::string text = line.str();
      // Pad over the remains of a longer previous line.
      if (text.size() < width_) text.append(width_ - text.size(), ' ');
      width_ = std::max(width_, text.size());
      err_ << text << (done ? "\n" : "") << std::flush;
    } else {
      err_ << "rebuild " << name_ << ": " << p.processed << "/" << p.total << " events ("
           << static_cast<int>(fraction * 100) << "%), " << rate << " events/s, ETA "
           << duration_text(p.eta) << "\n"
           << std::flush;
    }
  }

  // Ends a redrawn line left open by an interrupted rebuild.
  void close() {
    if (terminal_ && shown_ && !finished_) err_ << "\n" << std::flush;
  }

 private:
  std::ostream& err_;
  std::string name_;
  bool terminal_;
  bool shown_ = false, finished_ = false;
  std::size_t width_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

// ---- verify checkpoints --------------------------------------------------------------------

std::string read_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidArgument("cannot read the key file '" + path + "'");
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) throw InvalidArgument("the key file '" + path + "' is empty");
  return key;
}

// HMAC-SHA256 over "position:hash", lowercase hex.
std::string sign_checkpoint(const std::string& key, std::uint64_t position,
                            const std::string& hash_hex) {
  const std::string message = std::to_string(position) + ":" + hash_hex;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &mac_size) == nullptr) {
    throw StoreError("HMAC-SHA256 failed (OpenSSL)", false);
  }
  return hex_bytes(mac, mac_size);
}

bool same_text(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

[[noreturn]] void checkpoint_failed(const std::string& file, const std::string& why,
                                    std::uint64_t position = 0) {
  throw IntegrityError("checkpoint " + file + ": " + why, position);
}

// Writes the checkpoint file, refusing to replace one that appeared meanwhile.
void write_checkpoint_file(const std::string& path, const json& content) {
  std::FILE* f = std::fopen(path.c_str(), "wx");
  if (f == nullptr) {
    throw StoreError("cannot create the checkpoint file '" + path + "'", false);
  }
  const std::string text =
      content.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(path.c_str());
    throw StoreError("cannot write the checkpoint file '" + path + "'");
  }
}

// Checks a kept checkpoint against a log whose chain verified: its signature (when keyed) and
// that the event at its position still has its hash. Returns what was checked.
json check_checkpoint(const EventStore& store, const LogVerification& log, const std::string& path,
                      const std::optional<std::string>& key, std::ostream& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StoreError("cannot read the checkpoint file '" + path + "'", false);
  json content;
  try {
    content = json::parse(in);
  } catch (const json::exception& e) {
    checkpoint_failed(path, std::string("not a checkpoint file (") + e.what() + ")");
  }
  if (!content.is_object() || !content.contains("position") ||
      !content["position"].is_number_unsigned() || !content.contains("hash") ||
      !content["hash"].is_string()) {
    checkpoint_failed(path,
                      "not a checkpoint file (expected {\"position\": N, \"hash\": \"...\"})");
  }
  const auto position = content["position"].get<std::uint64_t>();
  const auto hash = content["hash"].get<std::string>();
  const bool signed_file = content.contains("signature");
  std::string signature_status = "absent";
  if (key) {
    if (!signed_file || !content["signature"].is_string()) {
      checkpoint_failed(path, "it carries no signature, but a key was given to check one");
    }
    if (!same_text(content["signature"].get<std::string>(),
                   sign_checkpoint(*key, position, hash))) {
      checkpoint_failed(path,
                        "its signature does not match (the file was edited, or the key is not "
                        "the one it was signed with)");
    }
    signature_status = "valid";
  } else if (signed_file) {
    err << "annals verify: note: checkpoint " << path
        << " is signed; pass --key-file to check its signature\n";
    signature_status = "not checked";
  }
  if (position > log.head_position) {
    checkpoint_failed(path,
                      "the log ends at position " + std::to_string(log.head_position) +
                          ", before the checkpoint's position " + std::to_string(position) +
                          ": events were removed from its end",
                      log.head_position + 1);
  }
  if (position == 0) {
    if (hash != to_hex(EventHash{})) checkpoint_failed(path, "position 0 with a non-zero hash");
  } else {
    const std::vector<RecordedEvent> at = store.read_all(position, 1);
    std::string now;
    if (!at.empty() && at.front().position == position) {
      now = to_hex(at.front().hash);
    } else {
      // A purge since the checkpoint may have removed it; its record keeps the hash.
      std::vector<PurgedPosition> purged;
      if (const auto* sql_store = dynamic_cast<const SqlEventStore*>(&store)) {
        sql_store->read_transaction(
            [&](SqlSession& sql) { purged = purged_positions(sql, position, position); });
      }
      if (purged.empty()) {
        checkpoint_failed(path, "position " + std::to_string(position) + " is no longer in the log",
                          position);
      }
      now = to_hex(purged.front().hash);
    }
    if (now != hash) {
      checkpoint_failed(path,
                        "the event at position " + std::to_string(position) + " has hash " + now +
                            ", the checkpoint says " + hash + ": the log was rewritten",
                        position);
    }
  }
  return json{{"file", path},
              {"action", "checked"},
              {"position", position},
              {"hash", hash},
              {"signature", signature_status},
              {"appended_since", log.head_position - position}};
}

// ---- replay --------------------------------------------------------------------------------

void print_state(std::ostream& out, const WorkflowRunState& s) {
  out << "  run        " << s.run_id << "  (" << s.tenant_id << "/" << s.app_id << ", workflow "
      << s.workflow_id << ", " << s.triggered_from << ", by " << s.created_by << ")\n"
      << "  status     " << to_string(s.status) << (s.deleted ? " (deleted)" : "") << "\n"
      << "  created    " << format_timestamp(s.created_at) << "\n";
  if (s.finished_at) out << "  finished   " << format_timestamp(*s.finished_at) << "\n";
  out << "  totals     " << s.total_steps << " steps, " << s.total_tokens << " tokens, "
      << seconds_text(s.elapsed_time) << "\n";
  if (!s.inputs.empty()) out << "  inputs     " << s.inputs << "\n";
  if (!s.outputs.empty()) out << "  outputs    " << s.outputs << "\n";
  if (!s.error.empty()) out << "  error      " << s.error << "\n";
  out << "  nodes      " << s.node_executions.size() << "\n";
  for (const NodeExecution& n : s.node_executions) {
    out << "    #" << n.index << " " << std::left << std::setw(10) << n.node_id << std::setw(7)
        << n.node_type << std::setw(10) << to_string(n.status) << std::right
        << format_timestamp(n.started_at);
    if (n.total_tokens != 0) out << "  " << n.total_tokens << " tokens";
    if (!n.error.empty()) out << "  error: " << n.error;
    out << "\n";
  }
}

json event_summary(const RecordedEvent& e) {
  return json{{"position", e.position},
              {"version", e.version},
              {"type", e.type},
              {"recorded_at", format_timestamp(e.recorded_at)},
              {"actor", e.metadata.actor}};
}

}  // namespace

// ---- the commands --------------------------------------------------------------------------

int stats(const Target& target, std::ostream& out, std::ostream&) {
  const std::string uri = existing_store_uri(target);
  const std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
  std::uint64_t events = 0, streams = 0, head = 0;
  std::optional<RecordedEvent> first, last;
  std::vector<ProjectionCheckpoint> checkpoints;
  struct ServerStore {
    std::string database, schema;
    std::uintmax_t size = 0;
  };
  std::optional<ServerStore> server;
  store->read_transaction([&](SqlSession& sql) {
    const SqlRow counts =
        sql.query("SELECT COUNT(*), COUNT(DISTINCT stream_id) FROM annals_events").at(0);
    events = static_cast<std::uint64_t>(counts.integer(0));
    streams = static_cast<std::uint64_t>(counts.integer(1));
    head = head_position(sql);
    if (head != 0) {
      if (auto v = read_events(sql, 1, 1); !v.empty()) first = std::move(v.front());
      if (auto v = read_events(sql, head, 1); !v.empty()) last = std::move(v.front());
    }
    if (sql.table_exists("annals_projections")) checkpoints = list_checkpoints(sql);
    if (sql.dialect() == "postgresql") {
      // Where the store is on the server, and the size of its tables (with indexes and TOAST).
      const SqlRow where =
          sql.query("SELECT current_database(), current_schema(), "
                    "COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
                    "current_schema() AND c.relkind = 'r' AND c.relname LIKE 'annals\\_%'")
              .at(0);
      server = ServerStore{where.text(0), where.text(1),
                           static_cast<std::uintmax_t>(where.integer(2))};
    }
  });
  const std::string head_hash = to_hex(last ? last->hash : EventHash{});
  std::uintmax_t file_size = 0, wal_size = 0;
  const auto file = sqlite_file(uri);
  if (file) {
    file_size = size_or_zero(*file);
    wal_size = size_or_zero(file->string() + "-wal");
  }

  if (target.json) {
    json projections = json::array();
    for (const ProjectionCheckpoint& c : checkpoints) {
      projections.push_back(json{{"name", c.name},
                                 {"version", c.version},
                                 {"position", c.position},
                                 {"generation", c.generation},
                                 {"lag", head > c.position ? head - c.position : 0},
                                 {"updated_at", format_timestamp(c.updated_at)}});
    }
    json j{{"store", redact_store_uri(uri)},
           {"events", events},
           {"streams", streams},
           {"head_position", head},
           {"head_hash", head_hash},
           {"first_recorded_at", first ? json(format_timestamp(first->recorded_at)) : json()},
           {"last_recorded_at", last ? json(format_timestamp(last->recorded_at)) : json()},
           {"projections", std::move(projections)}};
    if (file) {
      j["file"] = file->string();
      j["file_size"] = file_size;
      j["wal_size"] = wal_size;
    }
    if (server) {
      j["database"] = server->database;
      j["schema"] = server->schema;
      j["tables_size"] = server->size;
    }
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  out << "store          " << redact_store_uri(uri) << "\n"
      << "events         " << events << "\n"
      << "streams        " << streams << "\n"
      << "head position  " << head << "\n"
      << "head hash      " << head_hash << "\n";
  if (first && last) {
    out << "recorded       " << format_timestamp(first->recorded_at) << " .. "
        << format_timestamp(last->recorded_at) << "\n";
  }
  if (file) {
    out << "file size      " << human_bytes(file_size) << " (" << file_size << " bytes)";
    if (wal_size != 0) out << " + WAL " << human_bytes(wal_size);
    out << "\n";
  }
  if (server) {
    out << "database       " << server->database << ", schema " << server->schema << "\n"
        << "tables size    " << human_bytes(server->size) << " (" << server->size
        << " bytes, with indexes)\n";
  }
  if (checkpoints.empty()) {
    out << "projections    none (read tables are set up on first use, e.g. annals runs)\n";
  } else {
    out << "projections\n";
    out << "  " << std::left << std::setw(18) << "NAME" << std::right << std::setw(8) << "VERSION"
        << std::setw(12) << "POSITION" << std::setw(12) << "GENERATION" << std::setw(10) << "LAG"
        << "  UPDATED\n";
    for (const ProjectionCheckpoint& c : checkpoints) {
      out << "  " << std::left << std::setw(18) << c.name << std::right << std::setw(8) << c.version
          << std::setw(12) << c.position << std::setw(12) << c.generation << std::setw(10)
          << (head > c.position ? head - c.position : 0) << "  " << format_timestamp(c.updated_at)
          << "\n";
    }
  }
  return kExitOk;
}

int runs(const RunsArgs& args, std::ostream& out, std::ostream&) {
  const std::string uri = existing_store_uri(args.target);
  // The factory catches the read tables up with the log first (a freshly imported log has none).
  RepositoryFactory factory(uri);
  const auto page = factory.create_workflow_run_repository().get_paginated_workflow_runs(
      args.tenant, args.app, args.triggered_from, args.limit, args.last_id);
  if (args.target.json) {
    out << to_json(page).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  if (page.data.empty()) {
    out << "no runs of " << args.tenant << "/" << args.app << " triggered from "
        << args.triggered_from << (args.last_id ? " after " + *args.last_id : "") << "\n";
    return kExitOk;
  }
  print_runs_table(out, page.data);
  if (page.has_more) {
    out << "more after " << page.data.back().id << " (--last-id " << page.data.back().id << ")\n";
  }
  return kExitOk;
}

int rebuild(const RebuildArgs& args, std::ostream& out, std::ostream& err) {
  if (args.projection != WorkflowProjection::kName) {
    throw InvalidArgument("unknown projection '" + args.projection +
                          "' (known: " + std::string(WorkflowProjection::kName) + ")");
  }
  const std::string uri = existing_store_uri(args.target);
  const std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
  WorkflowProjection projection;
  ProgressDisplay progress(err, projection.name());
  annals::RebuildOptions options;
  options.batch_size = args.batch_size;
  options.on_progress = [&progress](const RebuildProgress& p) { progress(p); };
  RebuildReport report;
  try {
    report = annals::rebuild(*store, projection, options);
  } catch (...) {
    progress.close();
    throw;
  }
  progress.close();

  if (args.target.json) {
    json tables = json::array();
    for (const TableComparison& t : report.tables) {
      tables.push_back(json{{"table", t.table},
                            {"live_rows", t.live_rows},
                            {"shadow_rows", t.shadow_rows},
                            {"live_checksum", t.live_checksum},
                            {"shadow_checksum", t.shadow_checksum},
                            {"identical", t.identical()},
                            {"first_differences", t.first_differences}});
    }
    out << json{{"projection", report.projection},
                {"events_processed", report.events_processed},
                {"position", report.position},
                {"generation", report.generation},
                {"identical", report.identical},
                {"swapped", report.swapped},
                {"duration_ms", report.duration.count()},
                {"tables", std::move(tables)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
    return kExitOk;
  }
  out << "rebuilt " << report.projection << ": " << report.events_processed
      << " events replayed in " << seconds_text(static_cast<double>(report.duration.count()) / 1000)
      << "; tables at position " << report.position << ", generation " << report.generation << "\n"
      << "identical to the live tables: " << (report.identical ? "yes" : "no")
      << "; swapped in: " << (report.swapped ? "yes" : "no") << "\n";
  for (const TableComparison& t : report.tables) {
    out << "  " << std::left << std::setw(26) << t.table << std::right << " live " << std::setw(7)
        << t.live_rows << " rows, rebuilt " << std::setw(7) << t.shadow_rows << " rows  "
        << (t.identical() ? "identical" : "DIFFERENT") << "\n";
    if (!t.first_differences.empty()) out << "    first differences:\n";
    for (const std::string& d : t.first_differences) out << "      " << d << "\n";
  }
  return kExitOk;
}

int replay(const ReplayArgs& args, std::ostream& out, std::ostream&) {
  if (args.position.has_value() == args.as_of.has_value()) {
    throw InvalidArgument("replay: give exactly one of --position and --as-of");
  }
  std::optional<Timestamp> as_of;
  if (args.as_of) as_of = parse_time(*args.as_of);
  if (args.stream.empty()) throw InvalidArgument("replay: --stream is empty");
  const std::string uri = existing_store_uri(args.target);
  const std::shared_ptr<EventStore> store = open_event_store(uri);

  std::string stream = args.stream;
  std::vector<RecordedEvent> history = store->read_stream(stream);
  if (history.empty() && !stream.starts_with(WorkflowRun::kStreamPrefix)) {
    // A bare run id names its WorkflowRun stream.
    std::vector<RecordedEvent> run_history = store->read_stream(WorkflowRun::stream_id_for(stream));
    if (!run_history.empty()) {
      stream = WorkflowRun::stream_id_for(stream);
      history = std::move(run_history);
    }
  }
  if (history.empty()) throw NotFound("stream '" + printable(stream) + "' has no events");
  const std::size_t total = history.size();

  const std::string point = as_of ? "recorded at or before " + format_timestamp(*as_of)
                                  : "at or before position " + std::to_string(*args.position);
  std::erase_if(history, [&](const RecordedEvent& e) {
    return as_of ? e.recorded_at > *as_of : e.position > *args.position;
  });
  if (history.empty()) {
    throw NotFound("no events of " + printable(stream) + " " + point +
                   " (its first is at position " +
                   std::to_string(store->read_stream(stream, 1, 1).front().position) + ")");
  }
  const RecordedEvent& last = history.back();
  const bool is_run = stream.starts_with(WorkflowRun::kStreamPrefix);

  if (args.target.json) {
    json j{{"stream_id", stream},
           {"version", last.version},
           {"position", last.position},
           {"recorded_at", format_timestamp(last.recorded_at)},
           {"stream_version", total},
           {"as_of", as_of ? json(format_timestamp(*as_of)) : json()},
           {"at_position", args.position ? json(*args.position) : json()}};
    if (is_run) {
      j["state"] = to_json(WorkflowRun::rehydrate(history).state());
    } else {
      json events = json::array();
      for (const RecordedEvent& e : history) events.push_back(event_summary(e));
      j["events"] = std::move(events);
    }
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  out << stream << " " << point << ": version " << last.version << " of " << total
      << " (last event " << last.type << " at position " << last.position << ", recorded "
      << format_timestamp(last.recorded_at) << ")\n";
  if (is_run) {
    print_state(out, WorkflowRun::rehydrate(history).state());
  } else {
    for (const RecordedEvent& e : history) {
      out << "  position " << e.position << "  v" << e.version << "  " << e.type << "  "
          << format_timestamp(e.recorded_at) << "\n";
    }
  }
  return kExitOk;
}

int verify(const VerifyArgs& args, std::ostream& out, std::ostream& err) {
  const std::string uri = existing_store_uri(args.target);
  const std::optional<std::string> key =
      args.key_file ? std::optional<std::string>(read_key(*args.key_file)) : std::nullopt;
  if (key && !args.checkpoint) throw InvalidArgument("--key-file needs --checkpoint");
  const std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);

  json result{{"store", redact_store_uri(uri)}};
  auto fail = [&](const IntegrityError& e) {
    if (args.target.json) {
      result["ok"] = false;
      result["position"] = e.position();
      result["error"] = e.what();
      out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    err << "annals verify: FAILED";
    if (e.position() != 0) err << " at position " << e.position();
    err << ": " << e.what() << "\n";
    return kExitVerificationFailed;
  };

  LogVerification log;
  try {
    log = verify_log(*store);
  } catch (const IntegrityError& e) {
    return fail(e);
  }
  result["events"] = log.events;
  result["purged_events"] = log.purged;
  result["head_position"] = log.head_position;
  result["head_hash"] = to_hex(log.head_hash);
  if (!args.target.json) {
    out << "hash chain verified: " << log.events << " events, head position " << log.head_position
        << "\nhead hash " << to_hex(log.head_hash) << "\n";
    if (log.purged != 0) {
      out << "stepped over " << log.purged
          << " purged events, each recorded with its hash by a purge (annals_purges)\n";
    }
  }

  try {
    for (const std::string& archive : args.archives) {
      const PurgeArchiveVerification a = verify_purge_archive(*store, archive);
      result["archives"].push_back(json{{"file", archive},
                                        {"purge_id", a.purge_id},
                                        {"events", a.events},
                                        {"first_position", a.first_position},
                                        {"last_position", a.last_position},
                                        {"sha256", a.archive_sha256}});
      if (!args.target.json) {
        out << "archive " << archive << " matches purge " << a.purge_id << ": " << a.events
            << " events, positions " << a.first_position << ".." << a.last_position << "\n";
      }
    }
    if (args.checkpoint) {
      const std::string& path = *args.checkpoint;
      std::error_code ec;
      if (std::filesystem::exists(path, ec)) {
        result["checkpoint"] = check_checkpoint(*store, log, path, key, err);
        if (!args.target.json) {
          out << "checkpoint " << path << " holds: position "
              << result["checkpoint"]["position"].get<std::uint64_t>()
              << " still has its hash (signature "
              << result["checkpoint"]["signature"].get<std::string>()
              << "); the log was only appended to since ("
              << result["checkpoint"]["appended_since"].get<std::uint64_t>() << " events)\n";
        }
      } else {
        json content{{"position", log.head_position}, {"hash", to_hex(log.head_hash)}};
        if (key)
          content["signature"] = sign_checkpoint(*key, log.head_position, to_hex(log.head_hash));
        write_checkpoint_file(path, content);
        result["checkpoint"] = json{{"file", path},
                                    {"action", "written"},
                                    {"position", log.head_position},
                                    {"hash", to_hex(log.head_hash)},
                                    {"signed", key.has_value()}};
        if (!args.target.json) {
          out << "checkpoint written to " << path << " (position " << log.head_position
              << (key ? ", signed" : ", unsigned") << ")\n";
        }
      }
    }
  } catch (const IntegrityError& e) {
    return fail(e);
  }
  result["ok"] = true;
  if (args.target.json)
    out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return kExitOk;
}

int export_events(const ExportArgs& args, std::ostream& out, std::ostream&) {
  const std::string uri = existing_store_uri(args.target);
  const std::shared_ptr<EventStore> store = open_event_store(uri);
  annals::ExportOptions options;
  options.from_position = args.from;
  options.payload_json = workflow_payload_json;
  if (!args.output) {
    (void)export_log(*store, out, options);
    out.flush();
    if (!out) throw StoreError("export: writing to standard output failed");
    return kExitOk;
  }
  const std::string& path = *args.output;
  ExportResult result;
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) throw StoreError("export: cannot create '" + path + "'", false);
    try {
      result = export_log(*store, file, options);
      file.flush();
      if (!file) throw StoreError("export: writing '" + path + "' failed");
    } catch (...) {
      file.close();
      std::remove(path.c_str());
      throw;
    }
  }
  if (args.target.json) {
    out << json{{"file", path},
                {"events", result.events},
                {"from_position", args.from},
                {"last_position", result.last_position},
                {"last_hash", to_hex(result.last_hash)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    out << "exported " << result.events << " events (positions " << args.from << ".."
        << result.last_position << ") to " << path << "; last hash " << to_hex(result.last_hash)
        << "\n";
  }
  return kExitOk;
}

int import_events(const ImportArgs& args, std::ostream& out, std::ostream&) {
  const std::string uri = store_uri(args.target);
  std::ifstream file;
  if (args.input) {
    file.open(*args.input, std::ios::binary);
    if (!file) throw InvalidArgument("import: cannot read '" + *args.input + "'");
  }
  std::istream& in = args.input ? static_cast<std::istream&>(file) : std::cin;

  // An SQLite file this import creates is removed again if the import fails: nothing is left.
  // On PostgreSQL the import is one transaction too, so a failed one leaves the schema's store
  // empty (its tables, created by opening, stay).
  const auto db_file = sqlite_file(uri);
  std::error_code ec;
  const bool existed = !db_file || std::filesystem::exists(*db_file, ec);
  ImportResult result;
  try {
    std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
    if (const std::uint64_t head = store->head_position(); head != 0) {
      throw InvalidArgument("import: the store " + printable(redact_store_uri(uri), 200) +
                            " is not empty (head position " +
                            std::to_string(head) + "); import only into an empty store");
    }
    result = import_log(*store, in);
  } catch (...) {
    if (!existed) {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        std::filesystem::remove(db_file->string() + suffix, ec);
      }
    }
    throw;
  }
  if (args.target.json) {
    out << json{{"store", redact_store_uri(uri)},
                {"events", result.events},
                {"head_position", result.head_position},
                {"head_hash", to_hex(result.head_hash)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    out << "imported " << result.events << " events into " << redact_store_uri(uri) << "; head position "
        << result.head_position << ", head hash " << to_hex(result.head_hash)
        << "\n(read tables are built on first use: annals runs, or annals rebuild)\n";
  }
  return kExitOk;
}

int purge(const PurgeArgs& args, std::ostream& out, std::ostream&) {
  const Timestamp before = parse_time(args.before);
  const std::string uri = existing_store_uri(args.target);
  const std::shared_ptr<SqlEventStore> store = open_sql_event_store(uri);
  PurgeOptions options;
  options.tenant_id = args.tenant;
  options.before = before;
  options.archive_path = args.archive;
  options.manifest_path = args.manifest.value_or("");
  const PurgeResult r = purge_runs(*store, options);
  if (args.target.json) {
    out << json{{"purge_id", r.purge_id},
                {"tenant", args.tenant},
                {"before", format_timestamp(before)},
                {"streams", r.streams},
                {"events", r.events},
                {"first_position", r.first_position},
                {"last_position", r.last_position},
                {"archive", r.archive_path},
                {"archive_sha256", r.archive_sha256},
                {"manifest", r.manifest_path},
                {"manifest_sha256", r.manifest_sha256},
                {"stream_ids", r.stream_ids},
                {"held_back", r.held_back},
                {"purged_at", format_timestamp(r.purged_at)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
    return kExitOk;
  }
  if (r.purge_id == 0) {
    out << "nothing to purge: no runs of " << args.tenant << " created before "
        << format_timestamp(before) << "; wrote an empty archive " << r.archive_path << "\n";
  } else {
    out << "purge " << r.purge_id << ": removed " << r.streams << " runs (" << r.events
        << " events, positions " << r.first_position << ".." << r.last_position << ") of "
        << args.tenant << " created before " << format_timestamp(before) << "\n"
        << "archive  " << r.archive_path << "  sha256 " << r.archive_sha256 << "\n"
        << "manifest " << r.manifest_path << "  sha256 " << r.manifest_sha256 << "\n"
        << "check it later with: annals verify --archive " << r.archive_path << "\n";
  }
  if (!r.held_back.empty()) {
    out << "held back (holds the head event; purged by a later run): ";
    for (std::size_t i = 0; i < r.held_back.size(); ++i) out << (i ? ", " : "") << r.held_back[i];
    out << "\n";
  }
  return kExitOk;
}

int serve(const ServeArgs& args, std::ostream& out, std::ostream& err) {
  // Usage errors first (exit 2), then the store (exit 3).
  const ListenAddress listen = parse_listen(args.listen);
  if (!is_loopback(listen.host)) {
    err << "annals serve: warning: listening on " << listen.host
        << ", not loopback: API keys are sent in cleartext HTTP; put a TLS proxy in front"
        << std::endl;
  }
  const std::filesystem::path keys_file = args.keys;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(keys_file, ec)) {
    throw InvalidArgument("--keys '" + printable(args.keys) +
                          "': no such keys file (create one with: annals keys add --keys " +
                          printable(args.keys) + " --tenant TENANT)");
  }
  serve::KeyRing keys = serve::KeyRing::load(keys_file);
  // Tenants are counted from the file (KeyRing does not list them); it parsed, so every line
  // that is not blank or a comment is "<tenant> <hash>".
  std::set<std::string> tenants;
  {
    std::ifstream in(keys_file);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string tenant;
      if (words >> tenant && tenant.front() != '#') tenants.insert(tenant);
    }
  }
  const std::size_t key_count = keys.size();
  if (key_count == 0) {
    err << "annals serve: warning: keys file '" << printable(args.keys)
        << "' holds no key: every /v1 request will be refused (401)\n";
  }
  const std::string uri = existing_store_uri(args.target);
  serve::ServerOptions options;
  options.address = listen.host;
  options.port = listen.port;
  options.threads = args.threads;
  serve::Server server(RepositoryFactory(uri), std::move(keys), options);
  // Said once SIGINT/SIGTERM are caught, so a script may signal as soon as it reads the line.
  const int signal = server.run_until_signal([&] {
    out << "annals serve: listening on " << listen_url(listen.host, server.port()) << " (store "
        << redact_store_uri(uri) << ", " << key_count << (key_count == 1 ? " key" : " keys")
        << " for " << tenants.size() << (tenants.size() == 1 ? " tenant" : " tenants") << ")"
        << std::endl;
  });
  out << "annals serve: stopped"
      << (signal == SIGINT    ? " on SIGINT"
          : signal == SIGTERM ? " on SIGTERM"
                              : "")
      << "; " << server.stats().requests
      << (server.stats().requests == 1 ? " request" : " requests") << " served" << std::endl;
  return kExitOk;
}

int keys_add(const KeysAddArgs& args, std::ostream& out, std::ostream& err) {
  const std::string key = add_key_to_file(args.keys, args.tenant);
  out << key << std::endl;
  err << "annals keys add: a new key for tenant '" << printable(args.tenant) << "'; its SHA-256 is in '"
      << printable(args.keys)
      << "' and the key itself is shown only here. Send it as 'Authorization: Bearer <key>'.\n";
  return kExitOk;
}

int report_error(std::string_view command, std::exception_ptr error, std::ostream& err) noexcept {
  try {
    const std::string prefix =
        "annals" + (command.empty() ? std::string() : " " + std::string(command)) + ": ";
    try {
      std::rethrow_exception(error);
    } catch (const IntegrityError& e) {
      err << prefix << "verification failed";
      if (e.position() != 0) err << " at position " << e.position();
      err << ": " << e.what() << "\n";
      return kExitVerificationFailed;
    } catch (const InvalidArgument& e) {
      err << prefix << e.what() << "\n";
      return kExitUsage;
    } catch (const std::exception& e) {
      err << prefix << e.what() << "\n";
      return kExitStoreError;
    } catch (...) {
      err << prefix << "unknown error\n";
      return kExitStoreError;
    }
  } catch (...) {
    return kExitStoreError;
  }
}

}  // namespace annals::cli
