// How the annals program reads option values (tools/args.hpp), including what fuzz_cli_args found.

#include "args.hpp"

#include <annals/store/event_store.hpp>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "support/matchers.hpp"

using namespace annals;
using namespace annals::cli;
using annals::test::WhatContains;

TEST_CASE("parse_time reads ISO 8601 UTC, offsets and integer microseconds", "[tools][args]") {
  CHECK(parse_time("2026-11-21T09:30:00Z") == from_micros(1'795'253'400'000'000));
  CHECK(parse_time("2026-11-21T09:30:00.000123Z") == from_micros(1'795'253'400'000'123));
  CHECK(parse_time("2026-11-21T11:30:00+02:00") == parse_time("2026-11-21T09:30:00Z"));
  CHECK(parse_time("1795253400000000") == parse_time("2026-11-21T09:30:00Z"));
  CHECK(parse_time("-1") == from_micros(-1));
}

TEST_CASE("parse_time refuses a sign where the format has digits", "[tools][args][hostile]") {
  // fuzz_cli_args: from_chars takes a '-', so these read as hour, minute, second or offset -1.
  for (const char* text : {"2026-11-21T-1:00:00Z", "2026-11-21T09:-1:00Z", "2026-11-21T09:30:-1Z",
                           "2026-11-21T09:30:00+-1:00", "2026-11-21T09:30:00+00:-1",
                           "2026-11-2-T09:30:00Z", "2026--1-21T09:30:00Z", "-026-11-21T09:30:00Z",
                           "2026-11-21T+1:00:00Z"}) {
    CAPTURE(text);
    CHECK_THROWS_MATCHES(parse_time(text), InvalidArgument, WhatContains(std::string("'") + text + "'"));
  }
}

TEST_CASE("parse_unsigned reads decimal digits in range and names the option otherwise",
          "[tools][args][hostile]") {
  CHECK(parse_unsigned("20", "--limit", 0, UINT64_MAX) == 20);
  CHECK(parse_unsigned("010", "--limit", 0, UINT64_MAX) == 10);  // decimal, not octal
  CHECK(parse_unsigned("18446744073709551615", "--position", 1, UINT64_MAX) == UINT64_MAX);
  for (const char* text : {"", "-1", "+1", "0x10", " 1", "1 ", "1e3", "18446744073709551616",
                           "1.5", "ten"}) {
    CAPTURE(text);
    CHECK_THROWS_MATCHES(parse_unsigned(text, "--limit", 0, UINT64_MAX), InvalidArgument,
                         WhatContains(std::string("--limit '") + text + "'"));
  }
  CHECK_THROWS_MATCHES(parse_unsigned("0", "--from", 1, UINT64_MAX), InvalidArgument,
                       WhatContains("from 1 to 18446744073709551615"));
  CHECK_THROWS_MATCHES(parse_unsigned("1000001", "--runs", 1, 1000000), InvalidArgument,
                       WhatContains("out of range"));
}

TEST_CASE("the file the program checks is the file the store URI opens", "[tools][args]") {
  CHECK(sqlite_file("sqlite:/data/e.db?payload=binary") == std::filesystem::path("/data/e.db"));
  CHECK_FALSE(sqlite_file("memory:").has_value());
  CHECK(parse_store_uri("sqlite:/data/e.db?payload=binary").path == "/data/e.db");
  CHECK(store_uri(Target{.db = "e.db"}) == "sqlite:e.db");
  CHECK_THROWS_MATCHES(store_uri(Target{.db = "a", .uri = "memory:"}), InvalidArgument,
                       WhatContains("not both"));
  CHECK_THROWS_AS(store_uri(Target{}), InvalidArgument);
}

TEST_CASE("only an sqlite: URI names a file the program checks for", "[tools][args]") {
  for (const char* uri : {"postgresql://u@localhost/annals", "postgres:///annals?host=/tmp",
                          "host=/tmp/x port=5432 dbname=annals", "dbname=sqlite:x"}) {
    CAPTURE(uri);
    CHECK_FALSE(sqlite_file(uri).has_value());
    CHECK(parse_store_uri(uri).scheme == "postgresql");
  }
}

TEST_CASE("a PostgreSQL URI goes with --uri, --db takes a file", "[tools][args]") {
  CHECK(store_uri(Target{.uri = "postgresql://h/db"}) == "postgresql://h/db");
  CHECK(store_uri(Target{.uri = "host=/tmp dbname=annals"}) == "host=/tmp dbname=annals");
  CHECK_THROWS_MATCHES(store_uri(Target{.db = "postgresql://alice:s3cret@h/db"}), InvalidArgument,
                       WhatContains("give a PostgreSQL store with --uri"));
  try {
    (void)store_uri(Target{.db = "postgres://alice:s3cret@h/db"});
    FAIL("no exception");
  } catch (const InvalidArgument& e) {
    CHECK(std::string(e.what()).find("s3cret") == std::string::npos);
  }
}
