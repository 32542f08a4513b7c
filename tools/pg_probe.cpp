#include "pg_probe.hpp"

#include <annals/events/error.hpp>
#include <annals/events/printable.hpp>
#include <annals/store/event_store.hpp>

#ifdef ANNALS_CLI_HAVE_LIBPQ
#include <libpq-fe.h>

#include <memory>
#endif

namespace annals::cli {

#ifdef ANNALS_CLI_HAVE_LIBPQ

void require_postgres_store(const std::string& uri) {
  const std::string shown = printable(redact_store_uri(uri), 200);
  // The connection string without annals' own options (payload=, synchronous=, ...).
  const std::string conninfo = parse_store_uri(uri).path;
  const std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  const auto server_error = [&](const std::string& what) {
    std::string message = conn ? PQerrorMessage(conn.get()) : "out of memory";
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return StoreError(what + " (" + shown + "): " + printable(message, 400));
  };
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw server_error("cannot connect to PostgreSQL");
  }
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(
      PQexec(conn.get(),
             "SELECT current_database(), current_schema(), CASE WHEN current_schema() IS NULL "
             "THEN false ELSE to_regclass(quote_ident(current_schema()) || '.annals_events') IS "
             "NOT NULL END"),
      &PQclear);
  if (!result || PQresultStatus(result.get()) != PGRES_TUPLES_OK || PQntuples(result.get()) != 1) {
    throw server_error("cannot look for an annals store");
  }
  const std::string database = PQgetvalue(result.get(), 0, 0);
  if (PQgetisnull(result.get(), 0, 1)) {
    throw StoreError("the search_path of " + shown + " names no existing schema in database '" +
                         printable(database) + "': no annals store to read",
                     false);
  }
  const std::string schema = PQgetvalue(result.get(), 0, 1);
  if (std::string(PQgetvalue(result.get(), 0, 2)) != "t") {
    throw StoreError("no annals store in schema '" + printable(schema) + "' of database '" +
                         printable(database) + "' (" + shown +
                         "): nothing to read (write one with demo or import)",
                     false);
  }
}

#else

void require_postgres_store(const std::string&) {}

#endif

}  // namespace annals::cli
