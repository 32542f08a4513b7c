// Purging old workflow runs into a verified archive. The order of the steps is the safety
// argument: nothing is deleted until the archive and manifest are durable and have been read
// back and checked against the stored events, and the deletion re-checks, under the write lock,
// that the archive still describes exactly what it removes.

#include "annals/store/purge.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "annals/events/printable.hpp"
#include "annals/store/export.hpp"
#include "annals/store/hash_chain.hpp"
#include "store_internal.hpp"

namespace annals {

namespace {

constexpr std::string_view kRunStreamPrefix = "WorkflowRun-";
constexpr const char* kDeleteTrigger = "annals_events_no_delete";

constexpr const char* kPurgeSchema = R"sql(
CREATE TABLE IF NOT EXISTS annals_purges (
  id               INTEGER PRIMARY KEY,
  purged_at        INTEGER NOT NULL,
  tenant_id        TEXT    NOT NULL,
  purged_before    INTEGER NOT NULL,
  events           INTEGER NOT NULL,
  streams          INTEGER NOT NULL,
  first_position   INTEGER NOT NULL,
  last_position    INTEGER NOT NULL,
  archive_path     TEXT    NOT NULL,
  archive_sha256   TEXT    NOT NULL,
  manifest_sha256  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS annals_purged_events (
  position  INTEGER PRIMARY KEY,
  hash      BLOB    NOT NULL,
  purge_id  INTEGER NOT NULL REFERENCES annals_purges (id)
);
CREATE INDEX IF NOT EXISTS annals_purged_events_purge ON annals_purged_events (purge_id, position);
)sql";

// The purge tables in the session's dialect: PostgreSQL's INTEGER is 32 bits and has no BLOB.
std::string purge_schema(std::string_view dialect) {
  std::string sql = kPurgeSchema;
  if (dialect != "postgresql") return sql;
  const auto replace_all = [&](std::string_view from, std::string_view to) {
    for (std::size_t at = sql.find(from); at != std::string::npos; at = sql.find(from, at + to.size())) {
      sql.replace(at, from.size(), to);
    }
  };
  replace_all("INTEGER", "BIGINT ");
  replace_all("BLOB", "BYTEA");
  return sql;
}

std::int64_t sql_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }

std::string error_text(int err) { return std::system_category().message(err); }

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) fail();
  }
  void update(std::string_view bytes) {
    if (EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1) fail();
  }
  // Lowercase hex of the digest; the object is spent afterwards.
  std::string hex() {
    EventHash out{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &length) != 1 || length != out.size()) fail();
    return to_hex(out);
  }

 private:
  [[noreturn]] static void fail() { throw StoreError("SHA-256 through OpenSSL failed", false); }
  struct Free {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

std::filesystem::path parent_of(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
}

// A new file written with write(2) and made durable with fsync, its directory entry too.
// Refuses to replace an existing file.
class NewFile {
 public:
  NewFile(std::string path, std::string_view what) : path_(std::move(path)), what_(what) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      const int err = errno;
      if (err == EEXIST) {
        throw InvalidArgument("purge: the " + what_ + " '" + path_ +
                              "' already exists; it is never overwritten");
      }
      std::error_code ec;
      if (err == ENOENT && !std::filesystem::is_directory(parent_of(path_), ec)) {
        throw StoreError("purge: cannot create the " + what_ + " '" + path_ + "': directory '" +
                             parent_of(path_).string() + "' does not exist",
                         false);
      }
      throw StoreError("purge: cannot create the " + what_ + " '" + path_ + "': " + error_text(err),
                       false);
    }
  }
  ~NewFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  NewFile(const NewFile&) = delete;
  NewFile& operator=(const NewFile&) = delete;

  void write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write", errno);
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // fsyncs the file and its directory, then closes it.
  void sync_and_close() {
    if (::fsync(fd_) != 0) fail("fsync", errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close", errno);
    const int dir = ::open(parent_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) fail("open the directory of", errno);
    const int rc = ::fsync(dir);
    const int err = errno;
    ::close(dir);
    if (rc != 0) fail("fsync the directory of", err);
  }

 private:
  [[noreturn]] void fail(const std::string& op, int err) {
    throw StoreError("purge: cannot " + op + " the " + what_ + " '" + path_ +
                     "': " + error_text(err));
  }
  std::string path_;
  std::string what_;
  int fd_ = -1;
};

// Calls on_line(line, number) for every '\n'-terminated line of a file and returns the
// SHA-256 of its bytes. A last line without '\n' is reported with terminated = false.
template <class OnLine>
std::string read_lines(const std::string& path, std::string_view what, OnLine&& on_line) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StoreError("cannot open the " + std::string(what) + " '" + path + "'", false);
  Sha256 sha;
  std::string line;
  std::uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    const bool terminated = !in.eof();
    sha.update(line);
    if (terminated) sha.update("\n");
    on_line(line, number, terminated);
  }
  if (in.bad()) throw StoreError("cannot read the " + std::string(what) + " '" + path + "'");
  return sha.hex();
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

RecordedEvent record_from_row(const SqlRow& row) {
  return detail::make_record(static_cast<std::uint64_t>(row.integer(0)), row.text(1),
                             static_cast<std::uint64_t>(row.integer(2)), row.text(3), row.text(4),
                             static_cast<std::uint32_t>(row.integer(5)), row.text(6), row.text(7),
                             EventMetadata{row.text(8), row.text(9), row.text(10), row.text(11),
                                           from_micros(row.integer(12))},
                             from_micros(row.integer(13)), row.text(14));
}

std::optional<RecordedEvent> event_at(SqlSession& sql, std::uint64_t position) {
  const auto rows = sql.query(
      std::string("SELECT ") + detail::kEventColumns + " FROM annals_events WHERE position = $1",
      {sql_int(position)});
  if (rows.empty()) return std::nullopt;
  return record_from_row(rows.front());
}

EventHash hash_from(const std::string& bytes, std::uint64_t position, std::string_view table) {
  EventHash h{};
  if (bytes.size() != h.size()) {
    throw IntegrityError("the hash recorded for position " + std::to_string(position) + " in " +
                             std::string(table) + " is " + std::to_string(bytes.size()) +
                             " bytes, expected " + std::to_string(h.size()),
                         position);
  }
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

// The hash the chain had just before `position`: 32 zero bytes before position 1, else the
// hash of position - 1 from `known` (events being purged now), the log, or a purge record.
EventHash hash_before(SqlSession& sql, std::uint64_t position,
                      const std::map<std::uint64_t, EventHash>& known) {
  if (position <= 1) return EventHash{};
  const std::uint64_t previous = position - 1;
  if (auto it = known.find(previous); it != known.end()) return it->second;
  const auto rows =
      sql.query("SELECT hash FROM annals_events WHERE position = $1", {sql_int(previous)});
  if (!rows.empty()) return hash_from(rows.front().text(0), previous, "annals_events");
  const auto purged = purged_positions(sql, previous, previous);
  if (!purged.empty()) return purged.front().hash;
  throw IntegrityError("position " + std::to_string(previous) +
                           " is neither in the log nor recorded as purged; verify the log",
                       previous);
}

// The workflow read tables to clean: the live ones and a rebuild's shadows ("<name>__g<n>").
std::vector<std::string> read_tables(SqlSession& sql, std::string_view base) {
  std::vector<std::string> out;
  const auto rows =
      sql.dialect() == "sqlite"
          ? sql.query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
          : sql.query(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name");
  const std::string shadow = std::string(base) + "__g";
  for (const SqlRow& row : rows) {
    const std::string& name = row.text(0);
    if (name == base) {
      out.push_back(name);
    } else if (name.starts_with(shadow) && name.size() > shadow.size() &&
               std::all_of(name.begin() + static_cast<std::ptrdiff_t>(shadow.size()), name.end(),
                           [](char c) { return c >= '0' && c <= '9'; })) {
      out.push_back(name);
    }
  }
  return out;
}

struct Selected {
  std::uint64_t position = 0;
  EventHash hash{};
  std::size_t stream = 0;  // index into Selection::streams
};

struct Selection {
  std::vector<std::string> streams;           // in order of their RunCreated
  std::vector<std::string> held_back;         // matching, but holding the head
  std::vector<Selected> events;               // position order
  std::map<std::uint64_t, EventHash> hashes;  // position -> hash, the same events
};

// Step 1 (inside a read snapshot): which runs match, and their events' positions and hashes.
Selection select_runs(SqlSession& sql, const PurgeOptions& options) {
  Selection s;
  std::set<std::string> seen;
  std::vector<std::string> candidates;
  {
    auto cursor = sql.open_cursor(std::string("SELECT ") + detail::kEventColumns +
                                      " FROM annals_events WHERE type = $1 AND tenant_id = $2"
                                      " ORDER BY position",
                                  {std::string(RunCreated::kType), options.tenant_id});
    SqlRow row;
    while (cursor->next(row)) {
      const RecordedEvent e = record_from_row(row);
      if (!e.stream_id.starts_with(kRunStreamPrefix) || seen.contains(e.stream_id)) continue;
      const RunCreated created = options.registry.decode<RunCreated>(e);
      if (created.tenant_id != options.tenant_id || created.created_at >= options.before) continue;
      seen.insert(e.stream_id);
      candidates.push_back(e.stream_id);
    }
  }
  const std::uint64_t head = head_position(sql);
  for (const std::string& stream : candidates) {
    const auto rows =
        sql.query("SELECT position, hash FROM annals_events WHERE stream_id = $1 ORDER BY position",
                  {stream});
    if (!rows.empty() && static_cast<std::uint64_t>(rows.back().integer(0)) == head) {
      s.held_back.push_back(stream);
      continue;
    }
    const std::size_t index = s.streams.size();
    s.streams.push_back(stream);
    for (const SqlRow& row : rows) {
      const auto position = static_cast<std::uint64_t>(row.integer(0));
      const EventHash hash = hash_from(row.text(1), position, "annals_events");
      s.events.push_back(Selected{position, hash, index});
      s.hashes.emplace(position, hash);
    }
  }
  std::sort(s.events.begin(), s.events.end(),
            [](const Selected& a, const Selected& b) { return a.position < b.position; });
  return s;
}

std::string manifest_json(const PurgeOptions& options, const PurgeResult& r, const Selection& s) {
  std::string out = "{\n";
  out += "  \"format\": \"annals-purge-manifest\",\n  \"format_version\": 1,\n";
  out += "  \"tenant_id\": " + json_string(options.tenant_id) + ",\n";
  out += "  \"before\": " + json_string(format_timestamp(options.before)) + ",\n";
  out += "  \"before_micros\": " + std::to_string(to_micros(options.before)) + ",\n";
  out += "  \"purged_at\": " + json_string(format_timestamp(r.purged_at)) + ",\n";
  out +=
      "  \"archive\": " + json_string(std::filesystem::path(r.archive_path).filename().string()) +
      ",\n";
  out += "  \"archive_sha256\": " + json_string(r.archive_sha256) + ",\n";
  out += "  \"events\": " + std::to_string(r.events) + ",\n";
  out += "  \"streams\": " + std::to_string(r.streams) + ",\n";
  out += "  \"first_position\": " + std::to_string(r.first_position) + ",\n";
  out += "  \"last_position\": " + std::to_string(r.last_position) + ",\n";
  out += "  \"stream_ids\": [";
  for (std::size_t i = 0; i < s.streams.size(); ++i) {
    out += (i == 0 ? "\n    " : ",\n    ") + json_string(s.streams[i]);
  }
  out += s.streams.empty() ? "],\n" : "\n  ],\n";
  out += "  \"removed\": [";
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    out += (i == 0 ? "\n    " : ",\n    ");
    out += "{\"position\": " + std::to_string(s.events[i].position) +
           ", \"hash\": " + json_string(to_hex(s.events[i].hash)) + "}";
  }
  out += s.events.empty() ? "]\n" : "\n  ]\n";
  return out + "}\n";
}

// Step 3: the archive as read from disk must be byte-for-byte what was written and describe
// exactly the selected events, each of which re-chains.
void check_archive(SqlEventStore& store, const std::string& path, const std::string& sha256,
                   const Selection& s) {
  store.read_transaction([&](SqlSession& sql) {
    std::size_t next = 0;
    const std::string read_sha = read_lines(
        path, "archive", [&](const std::string& line, std::uint64_t number, bool terminated) {
          const std::string where =
              "purge: archive '" + path + "' line " + std::to_string(number) + " ";
          if (!terminated) throw StoreError(where + "has no line end", false);
          RecordedEvent archived;
          try {
            archived = parse_export_line(line);
          } catch (const InvalidArgument& e) {
            throw StoreError(where + "does not parse: " + e.what(), false);
          }
          if (next >= s.events.size() || archived.position != s.events[next].position) {
            throw StoreError(where + "holds position " + std::to_string(archived.position) +
                                 ", which was not archived there",
                             false);
          }
          const std::optional<RecordedEvent> stored = event_at(sql, archived.position);
          if (!stored || !(*stored == archived)) {
            throw StoreError(where + "does not equal the stored event at position " +
                                 std::to_string(archived.position),
                             false);
          }
          if (chain_hash(hash_before(sql, archived.position, s.hashes), archived) !=
              archived.hash) {
            throw IntegrityError("purge: the stored event at position " +
                                     std::to_string(archived.position) +
                                     " does not match its hash; verify the log before purging",
                                 archived.position);
          }
          ++next;
        });
    if (next != s.events.size()) {
      throw StoreError("purge: archive '" + path + "' holds " + std::to_string(next) + " events, " +
                           std::to_string(s.events.size()) + " were written",
                       false);
    }
    if (read_sha != sha256) {
      throw StoreError("purge: archive '" + path + "' reads back with SHA-256 " + read_sha +
                           ", written as " + sha256,
                       false);
    }
  });
}

// Step 4, inside the write transaction.
void remove_runs(SqlSession& sql, const PurgeOptions& options, PurgeResult& r, const Selection& s) {
  // The archive must still describe these streams exactly.
  std::vector<std::vector<const Selected*>> by_stream(s.streams.size());
  for (const Selected& e : s.events) by_stream[e.stream].push_back(&e);
  for (std::size_t i = 0; i < s.streams.size(); ++i) {
    const auto rows =
        sql.query("SELECT position, hash FROM annals_events WHERE stream_id = $1 ORDER BY position",
                  {s.streams[i]});
    bool same = rows.size() == by_stream[i].size();
    for (std::size_t k = 0; same && k < rows.size(); ++k) {
      const auto position = static_cast<std::uint64_t>(rows[k].integer(0));
      same = position == by_stream[i][k]->position &&
             hash_from(rows[k].text(1), position, "annals_events") == by_stream[i][k]->hash;
    }
    if (!same) {
      throw ConcurrencyError("purge: stream " + printable(s.streams[i], 1024) + " changed (" +
                             std::to_string(rows.size()) + " events now, " +
                             std::to_string(by_stream[i].size()) +
                             " archived) since the archive was written; nothing was removed, "
                             "purge again with a new archive path");
    }
  }
  if (!s.events.empty() && s.events.back().position >= head_position(sql)) {
    throw ConcurrencyError("purge: the head event at position " +
                           std::to_string(s.events.back().position) +
                           " would be removed; nothing was removed");
  }

  const auto remove_events = [&] {
    for (const Selected& e : s.events) {
      if (sql.execute("DELETE FROM annals_events WHERE position = $1", {sql_int(e.position)}) !=
          1) {
        throw ConcurrencyError("purge: the event at position " + std::to_string(e.position) +
                               " disappeared; nothing was removed");
      }
    }
  };
  const auto missing_trigger = [] {
    return IntegrityError(std::string("purge: the log's append-only trigger ") + kDeleteTrigger +
                          " is missing; someone changed the schema, verify the log");
  };
  if (sql.dialect() == "sqlite") {
    const auto trigger = sql.query(
        "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = $1 AND tbl_name = "
        "'annals_events'",
        {std::string(kDeleteTrigger)});
    if (trigger.empty() || trigger.front().is_null(0)) throw missing_trigger();
    const std::string trigger_sql = trigger.front().text(0);
    sql.execute_script(std::string("DROP TRIGGER ") + kDeleteTrigger);
    remove_events();
    sql.execute_script(trigger_sql);  // exactly the definition the store created
  } else {
    // PostgreSQL: the trigger is switched off for this transaction's deletes and on again
    // before it commits (ALTER TABLE takes the table's ACCESS EXCLUSIVE lock until then, so
    // readers of the log wait for the rest of this transaction).
    const auto trigger = sql.query(
        "SELECT t.tgenabled FROM pg_catalog.pg_trigger t"
        " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relname = 'annals_events' AND t.tgname = $1",
        {std::string(kDeleteTrigger)});
    if (trigger.empty() || trigger.front().text(0) == "D") throw missing_trigger();
    sql.execute_script(std::string("ALTER TABLE annals_events DISABLE TRIGGER ") + kDeleteTrigger);
    remove_events();
    sql.execute_script(std::string("ALTER TABLE annals_events ENABLE TRIGGER ") + kDeleteTrigger);
  }

  const std::vector<std::string> runs_tables = read_tables(sql, "annals_workflow_runs");
  const std::vector<std::string> node_tables = read_tables(sql, "annals_node_executions");
  const bool has_snapshots = sql.table_exists("annals_snapshots");  // snapshot_store.hpp
  for (const std::string& stream : s.streams) {
    const std::string run_id = stream.substr(kRunStreamPrefix.size());
    for (const std::string& t : runs_tables) {
      sql.execute("DELETE FROM \"" + t + "\" WHERE id = $1", {run_id});
    }
    for (const std::string& t : node_tables) {
      sql.execute("DELETE FROM \"" + t + "\" WHERE run_id = $1", {run_id});
    }
    if (has_snapshots) sql.execute("DELETE FROM annals_snapshots WHERE stream_id = $1", {stream});
  }

  sql.execute_script(purge_schema(sql.dialect()));
  r.purge_id = static_cast<std::uint64_t>(
      sql.query("SELECT coalesce(max(id), 0) + 1 FROM annals_purges").front().integer(0));
  sql.execute(
      "INSERT INTO annals_purges (id, purged_at, tenant_id, purged_before, events, streams,"
      " first_position, last_position, archive_path, archive_sha256, manifest_sha256)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
      {sql_int(r.purge_id), to_micros(r.purged_at), options.tenant_id, to_micros(options.before),
       sql_int(r.events), sql_int(r.streams), sql_int(r.first_position), sql_int(r.last_position),
       r.archive_path, r.archive_sha256, r.manifest_sha256});
  for (const Selected& e : s.events) {
    sql.execute("INSERT INTO annals_purged_events (position, hash, purge_id) VALUES ($1, $2, $3)",
                {sql_int(e.position), SqlBlob{std::string(e.hash.begin(), e.hash.end())},
                 sql_int(r.purge_id)});
  }
}

}  // namespace

std::vector<PurgedPosition> purged_positions(SqlSession& sql, std::uint64_t first,
                                             std::uint64_t last) {
  std::vector<PurgedPosition> out;
  if (first > last || !sql.table_exists("annals_purged_events") ||
      !sql.table_exists("annals_purges")) {
    return out;
  }
  // A removal counts only inside the purge that recorded it: its record must exist, and the
  // position must lie within that purge's span. A row added on its own hides nothing.
  for (const SqlRow& row :
       sql.query("SELECT e.position, e.hash, e.purge_id FROM annals_purged_events e"
                 " JOIN annals_purges p ON p.id = e.purge_id"
                 " WHERE e.position >= $1 AND e.position <= $2"
                 " AND e.position >= p.first_position AND e.position <= p.last_position"
                 " ORDER BY e.position",
                 {sql_int(first), sql_int(last)})) {
    const auto position = static_cast<std::uint64_t>(row.integer(0));
    out.push_back(PurgedPosition{position, hash_from(row.text(1), position, "annals_purged_events"),
                                 static_cast<std::uint64_t>(row.integer(2))});
  }
  return out;
}

PurgeResult purge_runs(SqlEventStore& store, const PurgeOptions& options) {
  if (options.tenant_id.empty()) throw InvalidArgument("purge: the tenant id is empty");
  if (options.archive_path.empty()) throw InvalidArgument("purge: the archive path is empty");
  PurgeResult r;
  r.archive_path = options.archive_path;
  r.manifest_path = options.manifest_path.empty() ? options.archive_path + ".manifest.json"
                                                  : options.manifest_path;
  if (std::filesystem::path(r.manifest_path).lexically_normal() ==
      std::filesystem::path(r.archive_path).lexically_normal()) {
    throw InvalidArgument("purge: the manifest path is the archive path '" + r.archive_path + "'");
  }
  for (const std::string* path : {&r.archive_path, &r.manifest_path}) {
    std::error_code ec;
    if (std::filesystem::exists(*path, ec)) {
      throw InvalidArgument("purge: '" + *path + "' already exists; it is never overwritten");
    }
  }
  r.purged_at = options.clock ? options.clock() : now();

  // Steps 1 and 2: select and archive in one snapshot.
  Selection s;
  store.read_transaction([&](SqlSession& sql) {
    s = select_runs(sql, options);
    NewFile archive(r.archive_path, "archive");
    Sha256 sha;
    const ExportOptions export_options{.from_position = 1, .payload_json = options.payload_json};
    std::ostringstream buffer;
    auto flush = [&] {
      const std::string bytes = std::move(buffer).str();
      sha.update(bytes);
      archive.write(bytes);
      buffer = std::ostringstream();
    };
    for (const Selected& selected : s.events) {
      std::optional<RecordedEvent> e = event_at(sql, selected.position);
      if (!e || e->hash != selected.hash) {
        throw StoreError("purge: the event at position " + std::to_string(selected.position) +
                             " changed inside one snapshot",
                         false);
      }
      write_export_line(buffer, *e, export_options);
      if (static_cast<std::streamoff>(buffer.tellp()) > (1 << 20)) flush();
    }
    flush();
    archive.sync_and_close();
    r.archive_sha256 = sha.hex();
  });
  r.streams = s.streams.size();
  r.events = s.events.size();
  r.stream_ids = s.streams;
  r.held_back = s.held_back;
  if (!s.events.empty()) {
    r.first_position = s.events.front().position;
    r.last_position = s.events.back().position;
  }

  const std::string manifest = manifest_json(options, r, s);
  {
    NewFile file(r.manifest_path, "manifest");
    file.write(manifest);
    file.sync_and_close();
  }
  Sha256 manifest_sha;
  manifest_sha.update(manifest);
  r.manifest_sha256 = manifest_sha.hex();

  // Step 3: read back what the disk now holds.
  check_archive(store, r.archive_path, r.archive_sha256, s);
  if (s.events.empty()) return r;

  // Step 4.
  store.write_transaction([&](SqlSession& sql) { remove_runs(sql, options, r, s); });
  return r;
}

PurgeArchiveVerification verify_purge_archive(const SqlEventStore& store,
                                              const std::string& archive_path) {
  PurgeArchiveVerification v;
  store.read_transaction([&](SqlSession& sql) {
    std::map<std::uint64_t, EventHash> archived;  // position -> hash, lines so far
    std::uint64_t last = 0;
    v.archive_sha256 = read_lines(
        archive_path, "archive",
        [&](const std::string& line, std::uint64_t number, bool terminated) {
          const std::string where =
              "verify archive '" + archive_path + "' line " + std::to_string(number) + ": ";
          if (!terminated) throw IntegrityError(where + "has no line end");
          RecordedEvent e;
          try {
            e = parse_export_line(line);
          } catch (const InvalidArgument& ex) {
            throw IntegrityError(where + "does not parse: " + ex.what());
          }
          if (e.position <= last) {
            throw IntegrityError(
                where + "position " + std::to_string(e.position) + " is out of order", e.position);
          }
          const auto recorded = purged_positions(sql, e.position, e.position);
          if (recorded.empty()) {
            throw IntegrityError(
                where + "position " + std::to_string(e.position) + " is not recorded as purged",
                e.position);
          }
          if (v.purge_id == 0) v.purge_id = recorded.front().purge_id;
          if (recorded.front().purge_id != v.purge_id) {
            throw IntegrityError(where + "position " + std::to_string(e.position) +
                                     " belongs to purge " +
                                     std::to_string(recorded.front().purge_id) + ", not " +
                                     std::to_string(v.purge_id),
                                 e.position);
          }
          const EventHash computed = chain_hash(hash_before(sql, e.position, archived), e);
          if (computed != recorded.front().hash || e.hash != computed) {
            throw IntegrityError(where + "the event at position " + std::to_string(e.position) +
                                     " does not re-chain to the hash recorded when it was "
                                     "purged (recorded " +
                                     to_hex(recorded.front().hash) + ", computed " +
                                     to_hex(computed) + ")",
                                 e.position);
          }
          archived.emplace(e.position, computed);
          if (v.first_position == 0) v.first_position = e.position;
          v.last_position = last = e.position;
          ++v.events;
        });
    if (v.events == 0) return;  // an empty archive: its purge removed nothing
    const auto purge = sql.query("SELECT events, archive_sha256 FROM annals_purges WHERE id = $1",
                                 {sql_int(v.purge_id)});
    if (purge.empty()) {
      throw IntegrityError("verify archive '" + archive_path + "': purge " +
                           std::to_string(v.purge_id) + " has no record in annals_purges");
    }
    const auto recorded_events = static_cast<std::uint64_t>(purge.front().integer(0));
    if (recorded_events != v.events) {
      // The first recorded position of this purge that the archive lacks.
      std::uint64_t missing = 0;
      for (const SqlRow& row :
           sql.query("SELECT position FROM annals_purged_events WHERE purge_id = $1"
                     " ORDER BY position",
                     {sql_int(v.purge_id)})) {
        if (!archived.contains(static_cast<std::uint64_t>(row.integer(0)))) {
          missing = static_cast<std::uint64_t>(row.integer(0));
          break;
        }
      }
      throw IntegrityError("verify archive '" + archive_path + "': it holds " +
                               std::to_string(v.events) + " events, purge " +
                               std::to_string(v.purge_id) + " removed " +
                               std::to_string(recorded_events),
                           missing);
    }
    if (purge.front().text(1) != v.archive_sha256) {
      throw IntegrityError("verify archive '" + archive_path + "': its SHA-256 is " +
                           v.archive_sha256 + ", purge " + std::to_string(v.purge_id) +
                           " recorded " + purge.front().text(1) +
                           "; the file was changed outside its events");
    }
  });
  return v;
}

void check_purge_records(SqlSession& sql) {
  if (!sql.table_exists("annals_purged_events") || !sql.table_exists("annals_purges")) return;
  for (const SqlRow& row :
       sql.query("SELECT p.id, p.events, count(e.position), min(e.position) FROM annals_purges p"
                 " LEFT JOIN annals_purged_events e ON e.purge_id = p.id"
                 " GROUP BY p.id HAVING count(e.position) <> p.events ORDER BY p.id")) {
    throw IntegrityError("purge " + std::to_string(row.integer(0)) + " records " +
                             std::to_string(row.integer(1)) + " removed events but lists " +
                             std::to_string(row.integer(2)) + ": its record was altered",
                         row.is_null(3) ? 0 : static_cast<std::uint64_t>(row.integer(3)));
  }
}

bool purged_range(SqlSession& sql, std::uint64_t first, std::uint64_t last) {
  if (first > last) return true;
  return purged_positions(sql, first, last).size() == last - first + 1;
}

}  // namespace annals
