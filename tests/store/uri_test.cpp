#include <catch2/catch.hpp>

#include "annals/store/event_store.hpp"
#include "support/temp_dir.hpp"

using namespace annals;
using Catch::Matchers::Contains;

TEST_CASE("store URIs with an unknown or missing scheme are InvalidArgument",
          "[store][uri][validation]") {
  CHECK_THROWS_MATCHES(open_event_store("mysql://db/annals"), InvalidArgument,
                       Catch::Matchers::Predicate<InvalidArgument>([](const InvalidArgument& e) {
                         const std::string m = e.what();
                         return m.find("mysql://db/annals") != std::string::npos &&
                                m.find("unknown scheme 'mysql'") != std::string::npos;
                       }));
  CHECK_THROWS_WITH(open_event_store("events.db"), Contains("expected sqlite:<path>, memory:"));
  CHECK_THROWS_WITH(open_event_store(""), Contains("expected sqlite:<path>, memory:"));
}

TEST_CASE("store URI options are checked", "[store][uri][validation]") {
  CHECK_THROWS_WITH(open_event_store("memory:?colour=red"), Contains("unknown option 'colour'"));
  CHECK_THROWS_WITH(open_event_store("memory:?payload=xml"),
                    Contains("'xml'") && Contains("expected json or binary"));
  CHECK_THROWS_WITH(open_event_store("memory:?synchronous=off"),
                    Contains("expected full or normal"));
  CHECK_THROWS_WITH(open_event_store("memory:?busy_timeout_ms=-4"), Contains("'-4'"));
  CHECK_THROWS_WITH(open_event_store("memory:?busy_timeout_ms=12x"), Contains("'12x'"));
  CHECK_THROWS_WITH(open_event_store("memory:?payload"), Contains("has no '=value'"));
  CHECK_THROWS_WITH(open_event_store("memory:?payload=json&payload=binary"),
                    Contains("given twice"));
  CHECK_THROWS_WITH(open_event_store("memory:somewhere"), Contains("memory: takes no path"));
  CHECK_THROWS_WITH(open_event_store("sqlite:"), Contains("needs a file path"));
  CHECK_THROWS_WITH(open_event_store("sqlite::memory:"), Contains("use memory:"));
  CHECK_THROWS_AS(open_event_store("sqlite:?payload=binary"), InvalidArgument);
}

TEST_CASE("store URI options apply", "[store][uri]") {
  CHECK(open_event_store("memory:?payload=binary")->payload_format() == PayloadFormat::binary);
  CHECK(open_event_store("memory:?payload=json&busy_timeout_ms=10")->payload_format() ==
        PayloadFormat::json);
  annals::test::TempDir dir;
  auto store = open_event_store(
      dir.sqlite_uri("e.db", "payload=binary&synchronous=normal&busy_timeout_ms=250"));
  CHECK(store->payload_format() == PayloadFormat::binary);
  StoreOptions base;
  base.payload_format = PayloadFormat::binary;
  CHECK(open_event_store("memory:", base)->payload_format() == PayloadFormat::binary);
  CHECK(open_event_store("memory:?payload=json", base)->payload_format() == PayloadFormat::json);
}
