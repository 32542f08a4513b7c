#include "annals/store/snapshot_store.hpp"

#include <openssl/evp.h>

#include <atomic>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "annals/events/printable.hpp"
#include "store_internal.hpp"

namespace annals {

namespace {

constexpr const char* kTable = "annals_snapshots";

std::string create_table_sql(std::string_view dialect) {
  // PostgreSQL's INTEGER is 32 bits: versions and microsecond times need BIGINT there.
  const bool pg = dialect == "postgresql";
  const std::string blob = pg ? "BYTEA" : "BLOB";
  const std::string integer = pg ? "BIGINT" : "INTEGER";
  return "CREATE TABLE IF NOT EXISTS annals_snapshots (\n"
         "  stream_id       TEXT PRIMARY KEY,\n"
         "  version         " +
         integer +
         " NOT NULL,\n"
         "  aggregate_type  TEXT NOT NULL,\n"
         "  snapshot_schema " +
         integer +
         " NOT NULL,\n"
         "  event_id        TEXT NOT NULL,\n"
         "  payload         " +
         blob +
         " NOT NULL,\n"
         "  checksum        TEXT NOT NULL,\n"
         "  taken_at        " +
         integer +
         " NOT NULL\n"
         ")";
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// SHA-256 over every field but taken_at, each length-prefixed, as lowercase hex: a row whose
// payload or any identifying column was changed no longer matches.
std::string checksum(const Snapshot& s) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  auto u64 = [&](std::uint64_t v) {
    unsigned char b[8];
    for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<unsigned char>(v & 0xff);
    ok = ok && EVP_DigestUpdate(ctx.get(), b, sizeof b) == 1;
  };
  auto bytes = [&](std::string_view text) {
    u64(text.size());
    ok = ok && EVP_DigestUpdate(ctx.get(), text.data(), text.size()) == 1;
  };
  bytes(s.stream_id);
  u64(s.version);
  bytes(s.aggregate_type);
  u64(s.schema);
  ok = ok && EVP_DigestUpdate(ctx.get(), s.event_id.data, s.event_id.size()) == 1;
  bytes(s.payload);
  EventHash digest{};
  unsigned int length = 0;
  ok = ok && EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) == 1 && length == digest.size();
  if (!ok) throw StoreError("snapshot of " + s.stream_id + ": SHA-256 failed in OpenSSL", false);
  return to_hex(digest);
}

std::int64_t sql_int(std::uint64_t v, const Snapshot& s) {
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw InvalidArgument("save snapshot of " + s.stream_id + ": version " + std::to_string(v) +
                          " is out of range");
  }
  return static_cast<std::int64_t>(v);
}

class SqlSnapshotStore final : public SnapshotStore {
 public:
  explicit SqlSnapshotStore(std::shared_ptr<SqlEventStore> store) : store_(std::move(store)) {}

  bool save(const Snapshot& snapshot) override {
    detail::validate_stream_id(snapshot.stream_id, "save snapshot");
    if (snapshot.version == 0) {
      throw InvalidArgument("save snapshot of " + snapshot.stream_id + ": version is 0");
    }
    if (snapshot.aggregate_type.empty()) {
      throw InvalidArgument("save snapshot of " + snapshot.stream_id + ": aggregate type is empty");
    }
    const std::int64_t version = sql_int(snapshot.version, snapshot);
    const std::string sum = checksum(snapshot);
    const Timestamp taken_at = snapshot.taken_at != Timestamp{} ? snapshot.taken_at : now();
    std::size_t changed = 0;
    store_->write_transaction([&](SqlSession& sql) {
      // Every time, not once per object: cheap next to the write, and a dropped table comes back.
      sql.execute_script(create_table_sql(sql.dialect()));
      // Equal versions replace: rewriting the same point repairs a damaged or incompatible row;
      // a lower version never replaces a higher one.
      changed = sql.execute(
          "INSERT INTO annals_snapshots (stream_id, version, aggregate_type, snapshot_schema,"
          " event_id, payload, checksum, taken_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
          " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,"
          " aggregate_type = excluded.aggregate_type, snapshot_schema = excluded.snapshot_schema,"
          " event_id = excluded.event_id, payload = excluded.payload,"
          " checksum = excluded.checksum, taken_at = excluded.taken_at"
          " WHERE excluded.version >= annals_snapshots.version",
          {snapshot.stream_id, version, snapshot.aggregate_type,
           static_cast<std::int64_t>(snapshot.schema), to_string(snapshot.event_id),
           SqlBlob{snapshot.payload}, sum, to_micros(taken_at)});
    });
    return changed > 0;
  }

  std::optional<Snapshot> load(std::string_view stream_id) const override {
    detail::validate_stream_id(stream_id, "load snapshot");
    std::vector<SqlRow> rows;
    store_->read_transaction([&](SqlSession& sql) {
      // Until a load has seen the table, look before querying: no table means no snapshots,
      // not an error to report on every load.
      if (!table_seen_.load(std::memory_order_acquire)) {
        if (!sql.table_exists(kTable)) return;
        table_seen_.store(true, std::memory_order_release);
      }
      rows = sql.query(
          "SELECT version, aggregate_type, snapshot_schema, event_id, payload, checksum, taken_at"
          " FROM annals_snapshots WHERE stream_id = $1",
          {std::string(stream_id)});
    });
    if (rows.empty()) return std::nullopt;
    return from_row(stream_id, rows.front());
  }

  bool remove(std::string_view stream_id) override {
    detail::validate_stream_id(stream_id, "remove snapshot");
    std::size_t changed = 0;
    store_->write_transaction([&](SqlSession& sql) {
      if (sql.table_exists(kTable)) {
        changed = sql.execute("DELETE FROM annals_snapshots WHERE stream_id = $1",
                              {std::string(stream_id)});
      }
    });
    return changed > 0;
  }

 private:
  // A row whose columns do not hold what save() writes is as damaged as one whose checksum
  // fails: both are IntegrityError, never a partly-filled Snapshot.
  static Snapshot from_row(std::string_view stream_id, const SqlRow& row) {
    const std::string context = "snapshot of " + printable(stream_id, 1024);
    Snapshot s;
    s.stream_id = std::string(stream_id);
    try {
      const std::int64_t version = row.integer(0);
      const std::int64_t schema = row.integer(2);
      if (version < 1)
        throw IntegrityError(context + ": stored version " + std::to_string(version));
      if (schema < 0 || schema > std::numeric_limits<std::uint32_t>::max()) {
        throw IntegrityError(context + ": stored schema " + std::to_string(schema));
      }
      s.version = static_cast<std::uint64_t>(version);
      s.aggregate_type = row.text(1);
      s.schema = static_cast<std::uint32_t>(schema);
      s.event_id = parse_uuid(row.text(3));
      s.payload = row.text(4);
      s.taken_at = from_micros(row.integer(6));
      if (row.text(5) != checksum(s)) {
        throw IntegrityError(context + " at version " + std::to_string(s.version) +
                             ": the checksum does not match the stored row (damaged)");
      }
    } catch (const IntegrityError&) {
      throw;
    } catch (const Error& e) {  // a column of the wrong type, an event id that is not a UUID
      throw IntegrityError(context + ": malformed row: " + e.what());
    }
    return s;
  }

  std::shared_ptr<SqlEventStore> store_;
  mutable std::atomic<bool> table_seen_{false};  // a load found the table
};

}  // namespace

std::shared_ptr<SnapshotStore> open_snapshot_store(std::shared_ptr<SqlEventStore> store) {
  if (!store) throw InvalidArgument("open_snapshot_store: the event store is null");
  return std::make_shared<SqlSnapshotStore>(std::move(store));
}

}  // namespace annals
