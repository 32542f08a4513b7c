#include "pg_session.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstring>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"

namespace annals::detail::pg {

namespace {

std::string sql_excerpt(std::string_view sql) {
  std::string s(sql.substr(0, 120));
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return sql.size() > 120 ? s + "..." : s;
}

std::uint64_t to_big_endian(std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap64(v);
  return v;
}

// libpq's messages end with a newline; the message goes between other text.
std::string trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The texts a connection message must not quote: the password option libpq parsed, and the
// password of a URL's user:PASSWORD@ as redact_store_uri finds it (after the first ':' up to
// the last '@' before the '?'), whole and in its pieces between '/', '@' and ':' (with a raw '/'
// in it libpq reads parts of it as the port or the database name, and quotes them), of three
// characters or more.
std::vector<std::string> secrets_of(const std::string& conninfo, const PQconninfoOption* parsed) {
  std::vector<std::string> secrets;
  for (const PQconninfoOption* o = parsed; o != nullptr && o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr && *o->val != '\0') {
      secrets.emplace_back(o->val);
    }
  }
  const std::string_view all(conninfo);
  const auto scheme_end = all.find("://");
  if (scheme_end != std::string_view::npos && all.substr(0, scheme_end).starts_with("postgres")) {
    const std::string_view rest = all.substr(scheme_end + 3);
    const std::string_view authority = rest.substr(0, rest.find('?'));
    const auto at = authority.rfind('@');
    const auto colon = authority.find(':');
    if (at != std::string_view::npos && colon < at) {
      const std::string_view secret = authority.substr(colon + 1, at - colon - 1);
      if (!secret.empty()) secrets.emplace_back(secret);
      std::size_t start = 0;
      for (std::size_t i = 0; i <= secret.size(); ++i) {
        if (i == secret.size() || secret[i] == '/' || secret[i] == '@' || secret[i] == ':') {
          // Pieces of one or two characters would garble the message more than they hide.
          if (i - start >= 3 && i - start < secret.size()) {
            secrets.emplace_back(secret.substr(start, i - start));
          }
          start = i + 1;
        }
      }
    }
  }
  // Longest first, so that a piece never leaves the rest of a longer secret behind.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return secrets;
}

std::string scrubbed(std::string message, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    for (auto at = message.find(secret); at != std::string::npos; at = message.find(secret, at + 3)) {
      message.replace(at, secret.size(), "***");
    }
  }
  return message;
}

bool is_transient(const std::string& state) {
  // Class 08 is connection trouble, except 08P01 (a protocol violation: retrying cannot help).
  return (state.starts_with("08") && state != "08P01") || state.starts_with("53") ||
         state == "40001" ||
         state == "40P01" || state == "55P03" || state == "57P01" || state == "57P02" ||
         state == "57P03" || state == "58030";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string bytea_from_text(const char* text, int length) {
  if (length >= 2 && text[0] == '\\' && text[1] == 'x') {
    std::string out;
    out.reserve(static_cast<std::size_t>(length - 2) / 2);
    for (int i = 2; i + 1 < length; i += 2) {
      out += static_cast<char>(hex_value(text[i]) * 16 + hex_value(text[i + 1]));
    }
    return out;
  }
  // The old escape format (bytea_output = escape).
  std::size_t size = 0;
  unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
  if (bytes == nullptr) throw StoreError("cannot decode a bytea value", false);
  std::string out(reinterpret_cast<const char*>(bytes), size);
  PQfreemem(bytes);
  return out;
}

SqlValue text_value(const PGresult* r, int row, int column) {
  if (PQgetisnull(r, row, column) != 0) return nullptr;
  const char* text = PQgetvalue(r, row, column);
  const int length = PQgetlength(r, row, column);
  const std::string_view view(text, static_cast<std::size_t>(length));
  const Oid type = PQftype(r, column);
  switch (type) {
    case kInt8Oid:
    case kInt2Oid:
    case kInt4Oid:
    case kOidOid:
    case kNumericOid: {
      std::int64_t i = 0;
      const auto [end, ec] = std::from_chars(text, text + length, i);
      if (ec == std::errc{} && end == text + length) return i;
      if (type != kNumericOid) break;
      [[fallthrough]];
    }
    case kFloat4Oid:
    case kFloat8Oid: {
      double d = 0;
      const auto [end, ec] = std::from_chars(text, text + length, d);
      if (ec == std::errc{} && end == text + length) return d;
      break;
    }
    case kBoolOid:
      return static_cast<std::int64_t>(view == "t" ? 1 : 0);
    case kByteaOid:
      return bytea_from_text(text, length);
    default:
      break;
  }
  return std::string(view);
}

std::vector<SqlRow> rows_of(const PGresult* r) {
  const int rows = PQntuples(r);
  const int columns = PQnfields(r);
  std::vector<SqlRow> out(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    auto& values = out[static_cast<std::size_t>(i)].values();
    values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) values.push_back(text_value(r, i, c));
  }
  return out;
}

bool identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The highest $n placeholder of a statement, as the server will count them: literals, quoted
// identifiers, dollar-quoted strings and comments are skipped. Every $1..$max must appear, and
// a '?' (SQLite's anonymous placeholder) is refused, so that SQL written for both backends
// fails the same way on both.
std::size_t count_placeholders(std::string_view sql) {
  std::vector<bool> seen;
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (c == '\'') {
      const bool escapes = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                           (i == 1 || !identifier_char(sql[i - 2]));
      ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == '\'') {
          if (i + 1 < n && sql[i + 1] == '\'') {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
    } else if (c == '"') {
      ++i;
      while (i < n) {
        if (sql[i] == '"') {
          if (i + 1 < n && sql[i + 1] == '"') {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      int depth = 0;
      while (i < n) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '$' && (i == 0 || !identifier_char(sql[i - 1]))) {
      if (i + 1 < n && std::isdigit(static_cast<unsigned char>(sql[i + 1])) != 0) {
        std::size_t number = 0;
        ++i;
        while (i < n && std::isdigit(static_cast<unsigned char>(sql[i])) != 0) {
          number = std::min<std::size_t>(number * 10 + static_cast<std::size_t>(sql[i] - '0'),
                                         100000);
          ++i;
        }
        if (number == 0 || number > 65535) {
          throw InvalidArgument("SQL placeholder $" + std::to_string(number) +
                                " is out of range: " + sql_excerpt(sql));
        }
        if (seen.size() < number) seen.resize(number, false);
        seen[number - 1] = true;
        continue;
      }
      // A dollar-quoted string: $tag$ ... $tag$ (the tag may be empty).
      std::size_t end = i + 1;
      while (end < n && sql[end] != '$' && identifier_char(sql[end])) ++end;
      if (end < n && sql[end] == '$') {
        const std::string_view tag = sql.substr(i, end - i + 1);
        const std::size_t close = sql.find(tag, end + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        ++i;
      }
    } else if (c == '?') {
      throw InvalidArgument(
          "SQL must number its placeholders $1..$n, not '?' (for jsonb's ? operators call "
          "jsonb_exists, jsonb_exists_any or jsonb_exists_all): " +
          sql_excerpt(sql));
    } else if (identifier_char(c)) {
      while (i < n && identifier_char(sql[i])) ++i;  // $ inside an identifier is not a placeholder
    } else {
      ++i;
    }
  }
  for (std::size_t k = 0; k < seen.size(); ++k) {
    if (!seen[k]) {
      throw InvalidArgument("SQL must number its placeholders $1..$" + std::to_string(seen.size()) +
                            " ($" + std::to_string(k + 1) + " is missing): " + sql_excerpt(sql));
    }
  }
  return seen.size();
}

void read_row(const PGresult* r, int i, SqlRow& row) {
  const int columns = PQnfields(r);
  auto& values = row.values();
  values.clear();
  values.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) values.push_back(text_value(r, i, c));
}

// True if the statement is a query a cursor can be declared for.
bool is_query(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) != 0 || sql[i] == '(')) ++i;
  std::string word;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])) != 0) {
    word += static_cast<char>(std::tolower(static_cast<unsigned char>(sql[i++])));
  }
  return word == "select" || word == "with" || word == "values" || word == "table";
}

// A server-side cursor (DECLARE ... NO SCROLL CURSOR, then FETCH in growing batches): a large
// result never has to fit in memory, and the connection is free between fetches. It is closed
// as soon as it is read to the end, or when it goes away unread while its session (so its
// transaction) is still running: an open cursor keeps its tables in use, and the same
// transaction could not drop them (a rebuild drops its shadow tables).
class ServerCursor final : public SqlCursor {
 public:
  ServerCursor(Connection& c, std::string name, std::string context,
               std::shared_ptr<const bool> session_alive)
      : c_(c), name_(std::move(name)), context_(std::move(context)),
        session_alive_(std::move(session_alive)) {}

  ~ServerCursor() override {
    if (done_ || !*session_alive_ || PQtransactionStatus(c_.get()) != PQTRANS_INTRANS) return;
    // Only if it still exists (a rollback to a savepoint may have closed it): a failing CLOSE
    // would abort the transaction it runs in.
    const std::string sql = "SELECT 1 FROM pg_cursors WHERE name = '" + name_ + "'";
    Result exists(PQexec(c_.get(), sql.c_str()));
    if (PQresultStatus(exists.get()) != PGRES_TUPLES_OK || PQntuples(exists.get()) != 1) return;
    Result closed(PQexec(c_.get(), ("CLOSE " + name_).c_str()));
  }

  bool next(SqlRow& row) override {
    while (!batch_ || row_ >= PQntuples(batch_.get())) {
      if (done_) return false;
      // The connection went back to the store (and may serve another thread, or be closed).
      if (!*session_alive_) {
        throw InvalidArgument(context_ + ": a cursor was used after its transaction ended; "
                                         "read it inside the callback that opened it");
      }
      batch_ = c_.exec(context_, "FETCH FORWARD " + std::to_string(fetch_) + " FROM " + name_);
      row_ = 0;
      if (PQntuples(batch_.get()) < fetch_) {
        done_ = true;
        (void)c_.exec(context_, "CLOSE " + name_);
      }
      fetch_ = std::min(fetch_ * 4, 4096);
    }
    read_row(batch_.get(), row_++, row);
    return true;
  }

 private:
  Connection& c_;
  std::string name_;
  std::string context_;
  std::shared_ptr<const bool> session_alive_;
  Result batch_;
  int row_ = 0;
  int fetch_ = 64;
  bool done_ = false;
};

class RowsCursor final : public SqlCursor {
 public:
  explicit RowsCursor(std::vector<SqlRow> rows) : rows_(std::move(rows)) {}
  bool next(SqlRow& row) override {
    if (next_ == rows_.size()) return false;
    row = std::move(rows_[next_++]);
    return true;
  }

 private:
  std::vector<SqlRow> rows_;
  std::size_t next_ = 0;
};

}  // namespace

// ---- Params -----------------------------------------------------------------------------

void Params::add(Oid type, const char* data, std::size_t size) {
  if (size > static_cast<std::size_t>(INT32_MAX)) {
    throw InvalidArgument("SQL parameter $" + std::to_string(types_.size() + 1) + " is " +
                          std::to_string(size) + " bytes, more than PostgreSQL binds");
  }
  types_.push_back(type);
  pointers_.push_back(data);
  lengths_.push_back(static_cast<int>(size));
  formats_.push_back(1);
}

void Params::add_null() {
  types_.push_back(0);
  pointers_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(1);
}

void Params::add_int(std::int64_t v) {
  auto bytes = std::make_unique<char[]>(8);
  const std::uint64_t be = to_big_endian(static_cast<std::uint64_t>(v));
  std::memcpy(bytes.get(), &be, 8);
  add(kInt8Oid, bytes.get(), 8);
  owned_.push_back(std::move(bytes));
}

void Params::add_double(double v) {
  auto bytes = std::make_unique<char[]>(8);
  const std::uint64_t be = to_big_endian(std::bit_cast<std::uint64_t>(v));
  std::memcpy(bytes.get(), &be, 8);
  add(kFloat8Oid, bytes.get(), 8);
  owned_.push_back(std::move(bytes));
}

void Params::add_text(std::string_view v) { add(kTextOid, v.empty() ? "" : v.data(), v.size()); }

void Params::add_bytes(std::string_view v) { add(kByteaOid, v.empty() ? "" : v.data(), v.size()); }

// ---- errors -----------------------------------------------------------------------------

std::string sqlstate(const PGresult* result) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? state : "";
}

void throw_error(const std::string& what, PGconn* conn, const PGresult* result,
                 std::chrono::milliseconds busy_timeout) {
  const std::string state = sqlstate(result);
  std::string message;
  if (result != nullptr && PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) != nullptr) {
    message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) {
      message += " (";
      message += detail;
      message += ")";
    }
  } else if (result != nullptr && *PQresultErrorMessage(result) != '\0') {
    message = trimmed(PQresultErrorMessage(result));
  } else {
    message = trimmed(PQerrorMessage(conn));
  }
  std::string text = what + ": " + printable(message, 1024);
  if (!state.empty()) text += " (SQLSTATE " + state + ")";
  if (PQstatus(conn) == CONNECTION_BAD) {
    throw StoreError(text +
                     "; the connection to the server was lost (the store reconnects at its "
                     "next use), retry later");
  }
  if (state == "55P03") {
    throw StoreError(text + "; the store stayed locked past busy_timeout (" +
                     std::to_string(busy_timeout.count()) +
                     " ms) by another transaction, retry later");
  }
  if (state == "25006") {
    throw StoreError(text + "; a read transaction cannot write: use a write transaction", false);
  }
  throw StoreError(text, is_transient(state));
}

std::int64_t binary_int(const PGresult* r, int row, int column) {
  if (PQgetlength(r, row, column) != 8) {
    throw StoreError("a result column " + std::to_string(column) + " is not an int8", false);
  }
  std::uint64_t be = 0;
  std::memcpy(&be, PQgetvalue(r, row, column), 8);
  return static_cast<std::int64_t>(to_big_endian(be));
}

std::string_view binary_bytes(const PGresult* r, int row, int column) {
  return {PQgetvalue(r, row, column), static_cast<std::size_t>(PQgetlength(r, row, column))};
}

// ---- Connection -------------------------------------------------------------------------

Connection::Connection(const std::string& conninfo, std::string label, std::string setup,
                       std::chrono::milliseconds busy_timeout)
    : label_(std::move(label)), setup_(std::move(setup)), busy_timeout_(busy_timeout) {
  // libpq's message for a connection string it cannot parse quotes the offending text, which
  // may be the password or the whole URI: it is checked first, and that message not shown.
  // A string that does not parse is the caller's mistake, not a server condition.
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    const bool out_of_memory = parse_error == nullptr;
    PQfreemem(parse_error);
    if (out_of_memory) throw StoreError(label_ + ": libpq ran out of memory parsing the connection string");
    throw InvalidArgument(label_ +
                          ": libpq cannot parse the connection string (a bad percent-escape, "
                          "port, bracketed IPv6 host, quoting or an unknown keyword?); libpq's "
                          "own message is not shown because it may quote the password");
  }
  std::vector<std::string> secrets;
  try {
    secrets = secrets_of(conninfo, parsed);
  } catch (...) {
    PQconninfoFree(parsed);
    throw;
  }
  PQconninfoFree(parsed);
  // After a good parse libpq's connection errors name the host, port, user and database, never
  // the connection string; a port or database name that is really a piece of a URL password
  // with a raw '/' in it is hidden all the same.
  conn_ = PQconnectdb(conninfo.c_str());
  if (conn_ == nullptr) throw StoreError(label_ + ": libpq could not allocate a connection");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string message = scrubbed(trimmed(PQerrorMessage(conn_)), secrets);
    PQfinish(conn_);
    conn_ = nullptr;
    throw StoreError(label_ + ": cannot connect: " + printable(message, 1024));
  }
  // A library prints nothing: the server's notices (DROP ... IF EXISTS skipping) are dropped.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  try {
    run_setup();
  } catch (...) {
    PQfinish(conn_);
    conn_ = nullptr;
    throw;
  }
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

void Connection::run_setup() {
  if (setup_.empty()) return;
  Result r(PQexec(conn_, setup_.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    throw_error(label_ + ": setting up the connection", conn_, r.get(), busy_timeout_);
  }
}

void Connection::ensure_open(const std::string& what) {
  if (PQstatus(conn_) == CONNECTION_OK) return;
  prepared_.clear();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    throw StoreError(what + ": the connection to the server was lost and cannot be made again: " +
                     printable(trimmed(PQerrorMessage(conn_)), 1024) + "; retry later");
  }
  run_setup();
}

bool Connection::reusable() const noexcept {
  return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

Result Connection::exec(const std::string& what, std::string_view sql, const Params* params,
                        int result_format) {
  const std::string text(sql);
  Result r(params == nullptr && result_format == 0
               ? PQexec(conn_, text.c_str())
               : PQexecParams(conn_, text.c_str(), params ? params->size() : 0,
                              params ? params->types() : nullptr,
                              params ? params->values() : nullptr,
                              params ? params->lengths() : nullptr,
                              params ? params->formats() : nullptr, result_format));
  const ExecStatusType status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw_error(what, conn_, r.get(), busy_timeout_);
  }
  return r;
}

Result Connection::exec_prepared(const std::string& what, const char* name, const char* sql,
                                 const Params& params, bool checked) {
  if (prepared_.find(std::string_view(name)) == prepared_.end()) {
    Result p(PQprepare(conn_, name, sql, params.size(), params.types()));
    if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) throw_error(what, conn_, p.get(), busy_timeout_);
    prepared_.insert(name);
  }
  Result r(PQexecPrepared(conn_, name, params.size(), params.values(), params.lengths(),
                          params.formats(), 1));
  const ExecStatusType status = PQresultStatus(r.get());
  if (checked && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw_error(what, conn_, r.get(), busy_timeout_);
  }
  return r;
}

std::pair<int, Result> Connection::exec_prepared_pipelined(const std::string& what,
                                                           const char* name, const char* sql,
                                                           const std::vector<Params>& sets) {
  if (sets.empty()) return {-1, nullptr};
  if (sets.size() == 1) {  // one statement: no pipeline needed
    Result r = exec_prepared(what, name, sql, sets.front(), /*checked=*/false);
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {-1, nullptr};
    if (PQstatus(conn_) == CONNECTION_BAD) throw_error(what, conn_, r.get(), busy_timeout_);
    return {0, std::move(r)};
  }
  if (prepared_.find(std::string_view(name)) == prepared_.end()) {
    Result p(PQprepare(conn_, name, sql, sets.front().size(), sets.front().types()));
    if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) throw_error(what, conn_, p.get(), busy_timeout_);
    prepared_.insert(name);
  }
  // At most this many statements are in flight, so that their results (tens of bytes each)
  // never fill the socket's buffers while this thread is still sending: a blocking connection
  // would wait for the server as the server waits for it.
  constexpr std::size_t kChunk = 256;
  for (std::size_t start = 0; start < sets.size(); start += kChunk) {
    const std::size_t end = std::min(sets.size(), start + kChunk);
    if (PQenterPipelineMode(conn_) != 1) throw_error(what, conn_, nullptr, busy_timeout_);
    // Leaving pipeline mode fails while results are still pending (an error thrown before
    // they were all read: a send or sync that failed, too many empty results). The connection
    // would then stay in pipeline mode, where every later PQexec fails, and look healthy: it is
    // made again instead (what was in its transaction is lost, and the caller is throwing).
    struct Exit {
      Connection& self;
      ~Exit() {
        if (PQexitPipelineMode(self.conn_) == 1) return;
        self.prepared_.clear();
        PQreset(self.conn_);
        if (PQstatus(self.conn_) != CONNECTION_OK) return;  // reset again at its next use
        try {
          self.run_setup();
        } catch (...) {
          // A setup that failed leaves settings unknown: the next use makes it again.
          PQreset(self.conn_);
        }
      }
    } exit{*this};
    bool sent = true;
    for (std::size_t i = start; i < end && sent; ++i) {
      const Params& p = sets[i];
      sent = PQsendQueryPrepared(conn_, name, p.size(), p.values(), p.lengths(), p.formats(), 1) == 1;
    }
    if (!sent || PQpipelineSync(conn_) != 1) throw_error(what, conn_, nullptr, busy_timeout_);
    // One result per statement (PGRES_PIPELINE_ABORTED for those after a failure), nulls
    // between them, and the sync's result at the end.
    int failed = -1;
    Result failure;
    std::size_t index = start;
    int nulls = 0;
    while (true) {
      Result r(PQgetResult(conn_));
      if (!r) {
        if (PQstatus(conn_) == CONNECTION_BAD || ++nulls > static_cast<int>(2 * kChunk + 8)) {
          throw_error(what, conn_, nullptr, busy_timeout_);
        }
        continue;
      }
      nulls = 0;
      const ExecStatusType status = PQresultStatus(r.get());
      if (status == PGRES_PIPELINE_SYNC) break;
      if (failed < 0 && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        failed = static_cast<int>(index);
        failure = std::move(r);
      }
      ++index;
    }
    if (failed >= 0) return {failed, std::move(failure)};
  }
  return {-1, nullptr};
}

void Connection::rollback_quietly() noexcept {
  if (PQstatus(conn_) != CONNECTION_OK || PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  PGresult* r = PQexec(conn_, "ROLLBACK");
  if (r != nullptr) PQclear(r);
}

// ---- Session ----------------------------------------------------------------------------

void Session::execute_script(std::string_view sql) {
  if (sql.find('\0') != std::string_view::npos) {
    throw InvalidArgument("SQL script holds a NUL byte: " + sql_excerpt(sql));
  }
  c_.exec(context_ + ": " + sql_excerpt(sql), sql);
}

Result Session::run(std::string_view sql, std::span<const SqlValue> params,
                    std::string_view shown) {
  if (shown.empty()) shown = sql;
  if (sql.find('\0') != std::string_view::npos) {
    throw InvalidArgument("SQL holds a NUL byte: " + sql_excerpt(shown));
  }
  const std::size_t expected = count_placeholders(shown);
  if (params.size() != expected) {
    throw InvalidArgument("SQL expects " + std::to_string(expected) + " parameters, got " +
                          std::to_string(params.size()) + ": " + sql_excerpt(shown));
  }
  Params p;
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::nullptr_t>) {
            p.add_null();
          } else if constexpr (std::is_same_v<V, std::int64_t>) {
            p.add_int(v);
          } else if constexpr (std::is_same_v<V, double>) {
            p.add_double(v);
          } else if constexpr (std::is_same_v<V, std::string>) {
            if (v.find('\0') != std::string::npos) {
              throw InvalidArgument("SQL text parameter $" + std::to_string(i + 1) + " '" +
                                    printable(v) +
                                    "' holds a NUL byte, which PostgreSQL text cannot store "
                                    "(bind bytes as SqlBlob): " +
                                    sql_excerpt(shown));
            }
            p.add_text(v);
          } else {
            p.add_bytes(v.bytes);
          }
        },
        params[i]);
  }
  return c_.exec(context_ + ": " + sql_excerpt(shown), sql, &p, 0);
}

std::size_t Session::execute_span(std::string_view sql, std::span<const SqlValue> params) {
  Result r = run(sql, params);
  const char* tuples = PQcmdTuples(r.get());
  std::size_t n = 0;
  if (tuples != nullptr) std::from_chars(tuples, tuples + std::strlen(tuples), n);
  return n;
}

std::vector<SqlRow> Session::query_span(std::string_view sql, std::span<const SqlValue> params) {
  Result r = run(sql, params);
  return rows_of(r.get());
}

std::unique_ptr<SqlCursor> Session::cursor_span(std::string_view sql,
                                                std::span<const SqlValue> params) {
  // Inside a transaction a query gets a server-side cursor, fetched in batches; anything else
  // (a statement that is no query, or no transaction open) has its rows fetched at once. Either
  // way the connection stays free for the calls made between rows, and several cursors may be
  // open at once. A cursor ends with its transaction.
  if (!is_query(sql) || PQtransactionStatus(c_.get()) != PQTRANS_INTRANS) {
    Result r = run(sql, params);
    return std::make_unique<RowsCursor>(rows_of(r.get()));
  }
  const std::string name = "annals_cursor_" + std::to_string(c_.next_cursor_id());
  const std::string declare = "DECLARE " + name + " NO SCROLL CURSOR FOR " + std::string(sql);
  (void)run(declare, params, sql);
  return std::make_unique<ServerCursor>(c_, name, context_ + ": " + sql_excerpt(sql), alive_);
}

}  // namespace annals::detail::pg
