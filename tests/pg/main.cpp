// annals_pg_tests' own main. The binary is the backend-parameterized suites of annals_tests
// compiled with ANNALS_TEST_PG_ONLY (their backend list is PostgreSQL alone) plus the
// PostgreSQL-only tests of tests/pg/. It runs only those: without a test spec on the command
// line it selects the cases over the PostgreSQL fixtures and the [pg] tags; the other cases of
// the shared sources (SQLite's own) stay in annals_tests.
//
// It needs a server: ANNALS_TEST_PG, a libpq connection string to a server where the tests may
// create schemas (scripts/with-pg.sh starts a throwaway one and sets it). Without it, or when the
// server does not answer, it exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77),
// after saying why on stderr; when CI is set (and not "false" or "0") it is a failure instead
// (exit 1). Listing tests (--list-*, as catch_discover_tests does at build time) and --help need
// no server.
//
// `--child <mode> ...` runs a child process of a test (tests/pg/children.cpp).

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "support/pg_backend.hpp"

namespace annals::test {
int run_pg_child(const std::vector<std::string>& args);
}  // namespace annals::test

namespace {

// The PostgreSQL cases: templates over the PostgreSQL fixtures end in the fixture's type name
// (PgBackend, PgFactory, and purge_test.cpp's PgStore); plain cases carry the [pg] tag.
constexpr const char* kPgCases = "*PgBackend,*PgFactory,*PgStore,[pg]";

bool in_ci() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string_view v(ci);
  return !v.empty() && v != "false" && v != "0";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--child") {
    return annals::test::run_pg_child(std::vector<std::string>(argv + 2, argv + argc));
  }
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  Catch::ConfigData& config = session.configData();
  if (config.testsOrTags.empty()) config.testsOrTags.emplace_back(kPgCases);
  const bool needs_server = !(config.listTests || config.listTestNamesOnly || config.listTags ||
                              config.listReporters || config.showHelp || config.libIdentify);
  if (needs_server) {
    const std::string why = annals::test::pg_unavailable_reason();
    if (!why.empty()) {
      if (in_ci()) {
        std::cerr << "annals_pg_tests: FAILED: no PostgreSQL server: " << why
                  << ". CI is set, so this is a failure, not a skip (scripts/with-pg.sh starts "
                     "a throwaway server and sets ANNALS_TEST_PG).\n";
        return 1;
      }
      std::cerr << "annals_pg_tests: SKIPPED (exit 77): no PostgreSQL server: " << why
                << ". Run the tests under scripts/with-pg.sh, which starts a throwaway server "
                   "and sets ANNALS_TEST_PG.\n";
      return 77;
    }
  }
  return session.run();
}
