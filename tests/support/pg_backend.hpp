#pragma once

// PostgreSQL fixtures of annals_pg_tests, the same shape as SqliteBackend and SqliteFactory.
// ANNALS_TEST_PG is a libpq connection string (keywords or a postgresql:// URI) to a server
// where the tests may create schemas (scripts/with-pg.sh starts one and sets it). Each fixture
// makes a schema of its own, annals_t_<random>, through that admin connection, opens its stores
// with `options=-csearch_path=<schema>` (so every table the store and its projections create
// lands there), and drops the schema (CASCADE) when it goes.

#include <memory>
#include <string>

#include "annals/repositories/repository_factory.hpp"
#include "annals/store/sql_event_store.hpp"

struct pg_conn;  // libpq's PGconn

namespace annals::test {

// ANNALS_TEST_PG, or "" when it is unset.
[[nodiscard]] std::string pg_admin_conninfo();

// "" when ANNALS_TEST_PG is set and the server accepts a connection; otherwise why not.
[[nodiscard]] std::string pg_unavailable_reason();

// A fresh schema annals_t_<16 hex digits>, dropped with everything in it by the destructor.
// Throws std::runtime_error (with the server's message) when it cannot be created.
class PgSchema {
 public:
  PgSchema();
  ~PgSchema();
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // A store URI (libpq keyword string) on this schema. `options` are annals' store options as
  // the SQLite fixtures take them, "payload=binary&synchronous=normal", or "".
  [[nodiscard]] std::string uri(const std::string& options = "") const;
  // Runs SQL through the admin connection (outside every store); returns the first column of
  // the first row, or "" when there is none. Throws std::runtime_error on an error.
  std::string admin(const std::string& sql) const;

 private:
  std::string name_;
};

// Holds the log's write lock from outside every store object, as another process's long
// transaction would: BEGIN; LOCK TABLE annals_events IN EXCLUSIVE MODE on an admin connection
// in the schema, until release() or destruction (ROLLBACK).
class PgWriteLock {
 public:
  explicit PgWriteLock(const PgSchema& schema);
  ~PgWriteLock();
  PgWriteLock(const PgWriteLock&) = delete;
  PgWriteLock& operator=(const PgWriteLock&) = delete;
  void release();

 private:
  pg_conn* conn_ = nullptr;
};

struct PgBackend {
  static constexpr const char* kName = "postgresql";
  static constexpr bool kPersistent = true;

  std::shared_ptr<SqlEventStore> open(const std::string& options = "",
                                      const StoreOptions& base = {}) {
    uri = schema.uri(options);
    base_options = base;
    store = open_sql_event_store(uri, base);
    return store;
  }
  // Drops the store object (its connections) and opens the schema again.
  std::shared_ptr<SqlEventStore> reopen() {
    store.reset();
    store = open_sql_event_store(uri, base_options);
    return store;
  }

  PgSchema schema;  // first: destroyed after the store
  std::string uri;
  StoreOptions base_options;
  std::shared_ptr<SqlEventStore> store;
};

struct PgFactory {
  static constexpr const char* kName = "postgresql";
  RepositoryFactory open() { return RepositoryFactory(schema.uri("synchronous=normal")); }
  PgSchema schema;
};

}  // namespace annals::test
