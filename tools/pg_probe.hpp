#pragma once

// Whether a PostgreSQL database holds an annals store, asked without opening one: opening a store
// creates its tables, and the program's reading commands must never create a store (as they never
// create an SQLite file). Built on libpq when the program is built with PostgreSQL support.

#include <string>

namespace annals::cli {

// Connects with `uri`'s libpq connection string and checks that the connection's current schema
// holds annals_events. StoreError (exit 3) naming the database and schema when it does not, when
// the search_path names no existing schema, or when the server cannot be reached. Does nothing
// in a build without PostgreSQL support (opening the store then says so).
void require_postgres_store(const std::string& uri);

}  // namespace annals::cli
