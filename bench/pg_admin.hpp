#pragma once

// The PostgreSQL side of the benchmark's bookkeeping, on libpq: the schemas its PostgreSQL rows
// work in (each repetition of a write workload in a fresh one, each read workload's dataset in
// one of its own), and what the server's durability settings are. Not installed. In a build
// without libpq every function throws std::runtime_error saying so.

#include <string>
#include <string_view>

namespace annals::bench::pg {

// Whether this build can run the PostgreSQL rows at all.
[[nodiscard]] bool available() noexcept;

// The store URI of schema `schema` on the server `conninfo` (a libpq keyword string or a
// postgresql:// URI): the conninfo with options=-csearch_path=SCHEMA and annals' synchronous
// option added (full: synchronous_commit=on, normal: off; the same setting as the SQLite rows).
[[nodiscard]] std::string store_uri(const std::string& conninfo, std::string_view schema,
                                    bool synchronous_full);

// CREATE SCHEMA / DROP SCHEMA ... CASCADE; drop_schemas drops every schema whose name starts
// with `prefix` (what a killed child left behind).
void create_schema(const std::string& conninfo, std::string_view schema);
void drop_schema(const std::string& conninfo, std::string_view schema);
void drop_schemas(const std::string& conninfo, std::string_view prefix);

// "PostgreSQL 15.x, fsync=on, unix socket" and the like, for the durability column (the rows'
// synchronous_commit is their URI's, see store_uri). Throws std::runtime_error when the server
// cannot be reached.
[[nodiscard]] std::string describe_server(const std::string& conninfo);

}  // namespace annals::bench::pg
