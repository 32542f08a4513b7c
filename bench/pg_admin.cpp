#include "pg_admin.hpp"

#include <stdexcept>

#ifdef ANNALS_BENCH_HAVE_LIBPQ
#include <libpq-fe.h>

#include <memory>
#endif

namespace annals::bench::pg {

std::string store_uri(const std::string& conninfo, std::string_view schema,
                      bool synchronous_full) {
  const std::string synchronous = synchronous_full ? "synchronous=full" : "synchronous=normal";
  const bool url = conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://");
  if (!url) return conninfo + " options=-csearch_path=" + std::string(schema) + " " + synchronous;
  return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") +
         "options=-csearch_path%3D" + std::string(schema) + "&" + synchronous;
}

#ifdef ANNALS_BENCH_HAVE_LIBPQ

namespace {

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

Connection connect(const std::string& conninfo) {
  Connection conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("cannot connect to PostgreSQL: ") +
                             (conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  // DROP SCHEMA ... CASCADE lists what it drops as a NOTICE: not for the benchmark's output.
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

Result exec(PGconn* conn, const std::string& sql, ExecStatusType expected) {
  Result result(PQexec(conn, sql.c_str()), &PQclear);
  if (!result || PQresultStatus(result.get()) != expected) {
    throw std::runtime_error("PostgreSQL: " + sql + ": " + PQerrorMessage(conn));
  }
  return result;
}

// Schema names the benchmark makes: letters, digits and '_' only, so they need no quoting.
void check_name(std::string_view name) {
  if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
                          std::string_view::npos) {
    throw std::logic_error("bench: bad schema name " + std::string(name));
  }
}

}  // namespace

bool available() noexcept { return true; }

void create_schema(const std::string& conninfo, std::string_view schema) {
  check_name(schema);
  const Connection conn = connect(conninfo);
  (void)exec(conn.get(), "CREATE SCHEMA " + std::string(schema), PGRES_COMMAND_OK);
}

void drop_schema(const std::string& conninfo, std::string_view schema) {
  check_name(schema);
  const Connection conn = connect(conninfo);
  (void)exec(conn.get(), "DROP SCHEMA IF EXISTS " + std::string(schema) + " CASCADE",
             PGRES_COMMAND_OK);
}

void drop_schemas(const std::string& conninfo, std::string_view prefix) {
  check_name(prefix);
  const Connection conn = connect(conninfo);
  const Result names = exec(conn.get(),
                            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, '" +
                                std::string(prefix) + "')",
                            PGRES_TUPLES_OK);
  for (int i = 0; i < PQntuples(names.get()); ++i) {
    (void)exec(conn.get(), "DROP SCHEMA IF EXISTS " + std::string(PQgetvalue(names.get(), i, 0)) +
                               " CASCADE",
               PGRES_COMMAND_OK);
  }
}

std::string describe_server(const std::string& conninfo) {
  const Connection conn = connect(conninfo);
  const Result r = exec(conn.get(),
                        "SELECT current_setting('server_version_num'), current_setting('fsync'), "
                        "inet_server_addr() IS NULL",
                        PGRES_TUPLES_OK);
  const std::string version = PQgetvalue(r.get(), 0, 0);  // e.g. 150020
  return "PostgreSQL " + std::to_string(std::stoi(version) / 10000) + "." +
         std::to_string(std::stoi(version) % 10000) + ", fsync=" + PQgetvalue(r.get(), 0, 1) +
         (std::string(PQgetvalue(r.get(), 0, 2)) == "t" ? ", unix socket" : ", TCP");
}

#else

namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error("this annals_bench was built without libpq: no PostgreSQL rows");
}
}  // namespace

bool available() noexcept { return false; }
void create_schema(const std::string&, std::string_view) { unavailable(); }
void drop_schema(const std::string&, std::string_view) { unavailable(); }
void drop_schemas(const std::string&, std::string_view) { unavailable(); }
std::string describe_server(const std::string&) { unavailable(); }

#endif

}  // namespace annals::bench::pg
