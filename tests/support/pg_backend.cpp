#include "support/pg_backend.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

namespace annals::test {
namespace {

struct PgConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct PgResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Connects to ANNALS_TEST_PG; throws std::runtime_error saying why not.
PgConn admin_connect() {
  const std::string conninfo = pg_admin_conninfo();
  if (conninfo.empty()) throw std::runtime_error("ANNALS_TEST_PG is not set");
  // ANNALS_TEST_PG expanded as a connection string, with a bound on the wait for a server that
  // does not answer (a skip should not hang).
  const char* keywords[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {conninfo.c_str(), "10", nullptr};
  PgConn conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (!conn) throw std::runtime_error("PQconnectdb: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to the PostgreSQL server ANNALS_TEST_PG names: " +
                             trimmed(PQerrorMessage(conn.get())));
  }
  // No NOTICEs on the test's output ("drop cascades to ...").
  PgResult quiet(PQexec(conn.get(), "SET client_min_messages = warning"));
  return conn;
}

std::string run(PGconn* conn, const std::string& sql) {
  PgResult res(PQexec(conn, sql.c_str()));
  const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("admin SQL '" + sql + "' failed: " + trimmed(PQerrorMessage(conn)));
  }
  if (status == PGRES_TUPLES_OK && PQntuples(res.get()) > 0 && PQnfields(res.get()) > 0) {
    return PQgetvalue(res.get(), 0, 0);
  }
  return "";
}

// A keyword value as libpq reads it: bare when it can be, else single-quoted.
std::string quoted(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '\'' || c == '\\' || c == '\t' || c == '\n') plain = false;
  }
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

std::string random_schema_name() {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  std::uint64_t bits = rng();
  std::string name = "annals_t_";
  for (int i = 0; i < 16; ++i, bits >>= 4) name.push_back(kDigits[bits & 15]);
  return name;
}

}  // namespace

std::string pg_admin_conninfo() {
  const char* v = std::getenv("ANNALS_TEST_PG");
  return v != nullptr ? v : "";
}

std::string pg_unavailable_reason() {
  if (pg_admin_conninfo().empty()) {
    return "ANNALS_TEST_PG is not set (a libpq connection string to a PostgreSQL server where "
           "the tests may create schemas)";
  }
  try {
    (void)admin_connect();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

PgSchema::PgSchema() : name_(random_schema_name()) {
  PgConn conn = admin_connect();
  run(conn.get(), "CREATE SCHEMA " + name_);
}

PgSchema::~PgSchema() {
  try {
    PgConn conn = admin_connect();
    // A store connection of the test that is still closing may hold a lock a moment longer.
    run(conn.get(), "SET lock_timeout = '60s'");
    run(conn.get(), "DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
  } catch (const std::exception& e) {
    std::cerr << "warning: test schema " << name_ << " left behind: " << e.what() << '\n';
  }
}

std::string PgSchema::uri(const std::string& options) const {
  // The admin connection string taken apart (keywords or a URI alike) and written back as
  // keywords, with the schema added to the server options.
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(pg_admin_conninfo().c_str(), &error);
  if (parsed == nullptr) {
    const std::string why = error != nullptr ? trimmed(error) : "out of memory";
    PQfreemem(error);
    throw std::runtime_error("ANNALS_TEST_PG is not a libpq connection string: " + why);
  }
  std::string out;
  std::string server_options;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::string(o->keyword) == "options") {
      server_options = o->val;
      continue;
    }
    out += std::string(out.empty() ? "" : " ") + o->keyword + "=" + quoted(o->val);
  }
  PQconninfoFree(parsed);
  server_options += std::string(server_options.empty() ? "" : " ") + "-csearch_path=" + name_;
  out += " options=" + quoted(server_options);
  // annals' own options, "a=b&c=d", as keywords.
  std::size_t start = 0;
  while (start < options.size()) {
    std::size_t amp = options.find('&', start);
    if (amp == std::string::npos) amp = options.size();
    if (amp > start) out += " " + options.substr(start, amp - start);
    start = amp + 1;
  }
  return out;
}

PgWriteLock::PgWriteLock(const PgSchema& schema) {
  PgConn conn = admin_connect();
  run(conn.get(), "SET search_path = " + schema.name());
  run(conn.get(), "BEGIN");
  run(conn.get(), "LOCK TABLE annals_events IN EXCLUSIVE MODE");
  conn_ = conn.release();
}

PgWriteLock::~PgWriteLock() { release(); }

void PgWriteLock::release() {
  if (conn_ == nullptr) return;
  PgConn conn(conn_);  // closing the connection ends the transaction too
  conn_ = nullptr;
  run(conn.get(), "ROLLBACK");
}

std::string PgSchema::admin(const std::string& sql) const {
  PgConn conn = admin_connect();
  run(conn.get(), "SET search_path = " + name_);
  return run(conn.get(), sql);
}

}  // namespace annals::test
