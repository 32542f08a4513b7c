#pragma once

// libpq underneath the PostgreSQL backend: one connection (reconnected after a loss), how
// values are bound and read back, how server errors become annals errors, and the SqlSession
// projections and repositories use. Not installed; only in builds with ANNALS_HAVE_POSTGRESQL.

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annals/store/sql.hpp"

namespace annals::detail::pg {

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Type OIDs of the built-in types (pg_type.h is in the server's headers, not libpq's).
inline constexpr Oid kBoolOid = 16, kByteaOid = 17, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23,
                     kTextOid = 25, kOidOid = 26, kFloat4Oid = 700, kFloat8Oid = 701,
                     kNumericOid = 1700;

// Parameters in libpq's binary format: int8 and float8 big-endian, text and bytea as their
// bytes with their lengths (so a value is never cut at a NUL byte). Text and bytes are not
// copied: they must outlive the Params.
class Params {
 public:
  void add_null();
  void add_int(std::int64_t v);
  void add_double(double v);
  // The text must hold no NUL byte (checked by the callers that take caller values).
  void add_text(std::string_view v);
  void add_bytes(std::string_view v);

  [[nodiscard]] int size() const noexcept { return static_cast<int>(types_.size()); }
  [[nodiscard]] const Oid* types() const noexcept { return types_.data(); }
  [[nodiscard]] const char* const* values() const noexcept { return pointers_.data(); }
  [[nodiscard]] const int* lengths() const noexcept { return lengths_.data(); }
  [[nodiscard]] const int* formats() const noexcept { return formats_.data(); }

 private:
  void add(Oid type, const char* data, std::size_t size);
  std::vector<Oid> types_;
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::vector<std::unique_ptr<char[]>> owned_;  // the int8/float8 encodings
};

// The SQLSTATE of a failed result ("" when there is none, e.g. a lost connection).
[[nodiscard]] std::string sqlstate(const PGresult* result);

// Throws the annals error for a failed statement: StoreError naming `what`, the server's
// message (escaped) and the SQLSTATE, transient for a lost connection, serialization failure,
// deadlock, lock timeout, shutdown and resource errors.
[[noreturn]] void throw_error(const std::string& what, PGconn* conn, const PGresult* result,
                              std::chrono::milliseconds busy_timeout);

// An int8 column of a binary-format result.
[[nodiscard]] std::int64_t binary_int(const PGresult* r, int row, int column);
// A text or bytea column of a binary-format result: its bytes.
[[nodiscard]] std::string_view binary_bytes(const PGresult* r, int row, int column);

// One libpq connection. Not thread-safe: the store lends each to one thread at a time.
class Connection {
 public:
  // Connects (StoreError naming `label` and libpq's message on failure; InvalidArgument naming
  // `label` only, for a connection string libpq cannot parse) and runs `setup` (SET statements)
  // on it, again after every reconnection.
  Connection(const std::string& conninfo, std::string label, std::string setup,
             std::chrono::milliseconds busy_timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] PGconn* get() const noexcept { return conn_; }
  [[nodiscard]] std::chrono::milliseconds busy_timeout() const noexcept { return busy_timeout_; }

  // Makes the connection usable again if it was lost (PQreset); a transient StoreError
  // naming `what` when the server cannot be reached.
  void ensure_open(const std::string& what);

  // True when it is connected and outside any transaction: fit to go back to a pool.
  [[nodiscard]] bool reusable() const noexcept;

  // Runs one statement (or several ;-separated, without parameters, when params is null).
  // Throws as throw_error unless it succeeded.
  Result exec(const std::string& what, std::string_view sql, const Params* params = nullptr,
              int result_format = 0);
  // Runs a statement prepared on this connection under `name` (prepared at first use, again
  // after a reconnection), with binary results. checked=false: a failed execution's result is
  // returned for the caller to look at (a failed PREPARE still throws).
  Result exec_prepared(const std::string& what, const char* name, const char* sql,
                       const Params& params, bool checked = true);

  // Runs a prepared statement (prepared at first use) once per parameter set, in libpq's
  // pipeline mode: one round trip per 256 of them instead of one each. Stops at the first that
  // fails and returns its index and result (the transaction is then in error); -1 when all
  // succeeded. Throws StoreError naming `what` if the connection fails.
  std::pair<int, Result> exec_prepared_pipelined(const std::string& what, const char* name,
                                                 const char* sql,
                                                 const std::vector<Params>& sets);

  // Rolls back an open transaction, ignoring failures (a lost connection is reset at next use).
  void rollback_quietly() noexcept;

  // A number for naming a server-side cursor, unique on this connection.
  [[nodiscard]] std::uint64_t next_cursor_id() noexcept { return ++cursors_; }

 private:
  void run_setup();
  PGconn* conn_ = nullptr;
  std::string label_;
  std::string setup_;
  std::chrono::milliseconds busy_timeout_;
  std::set<std::string, std::less<>> prepared_;
  std::uint64_t cursors_ = 0;
};

// SqlSession on one connection (inside a transaction the store opened).
class Session final : public SqlSession {
 public:
  Session(Connection& c, std::string context) : c_(c), context_(std::move(context)) {}
  ~Session() override { *alive_ = false; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void execute_script(std::string_view sql) override;
  [[nodiscard]] std::string_view dialect() const noexcept override { return "postgresql"; }

 protected:
  std::size_t execute_span(std::string_view sql, std::span<const SqlValue> params) override;
  std::vector<SqlRow> query_span(std::string_view sql, std::span<const SqlValue> params) override;
  std::unique_ptr<SqlCursor> cursor_span(std::string_view sql,
                                         std::span<const SqlValue> params) override;

 private:
  // shown: the statement to name in messages (the caller's, when sql wraps it).
  Result run(std::string_view sql, std::span<const SqlValue> params,
             std::string_view shown = {});
  Connection& c_;
  std::string context_;
  // False once the session ended: its cursors then leave the connection alone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annals::detail::pg
