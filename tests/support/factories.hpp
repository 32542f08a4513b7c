#pragma once

// RepositoryFactory fixtures for TEMPLATE_TEST_CASEs over both backends:
//   TEMPLATE_TEST_CASE("...", "[repositories]", ANNALS_FACTORIES) { TestType b; auto f = b.open();
//   }

#include "annals/repositories/repository_factory.hpp"
#include "support/temp_dir.hpp"

namespace annals::test {

struct MemoryFactory {
  static constexpr const char* kName = "memory";
  RepositoryFactory open() { return RepositoryFactory("memory:"); }
};

struct SqliteFactory {
  static constexpr const char* kName = "sqlite";
  RepositoryFactory open() {
    return RepositoryFactory(dir.sqlite_uri("events.db", "synchronous=normal"));
  }
  TempDir dir;
};

}  // namespace annals::test

// As ANNALS_BACKENDS (support/backends.hpp): PostgreSQL alone in annals_pg_tests.
#ifdef ANNALS_TEST_PG_ONLY
#include "support/pg_backend.hpp"
#define ANNALS_FACTORIES annals::test::PgFactory
#else
#define ANNALS_FACTORIES annals::test::MemoryFactory, annals::test::SqliteFactory
#endif
