// Hostile input to the JSON Lines export/import and to store URIs, from fuzz/fuzz_import.cpp and
// fuzz/fuzz_store_uri.cpp: deep nesting, which nlohmann::json writes and copies recursively, and
// URIs that must parse the same after formatting.

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "annals/store/event_store.hpp"
#include "annals/store/export.hpp"
#include "annals/store/sql_event_store.hpp"
#include "support/matchers.hpp"

using namespace annals;
using annals::test::WhatContains;

namespace {

std::string exported(const EventStore& store) {
  std::ostringstream out;
  export_log(store, out);
  return out.str();
}

}  // namespace

TEST_CASE("a JSON payload nested 100,000 deep exports as null and imports back",
          "[store][export][hostile]") {
  // Appends accept it (RapidJSON validates iteratively); the export used to overflow the stack
  // writing the "payload" rendering recursively.
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  const std::string shallow = std::string(512, '[') + std::string(512, ']');
  const auto store = open_sql_event_store("memory:");
  (void)store->append("s-1", ExpectedVersion::any(),
                      {NewEvent{.type = "Deep", .payload = deep},
                       NewEvent{.type = "Shallow", .payload = shallow}});
  const std::string text = exported(*store);
  const std::string first = text.substr(0, text.find('\n'));
  CHECK_THAT(first, Catch::Matchers::Contains(R"("payload":null,)"));
  CHECK_THAT(text.substr(first.size() + 1),
             Catch::Matchers::Contains("\"payload\":" + shallow + ","));

  const auto copy = open_sql_event_store("memory:");
  std::istringstream in(text);
  CHECK(import_log(*copy, in).events == 2);
  CHECK(copy->read_all(1, 1).front().payload == deep);
  CHECK(exported(*copy) == text);
}

TEST_CASE("an import line nested deeper than an export writes is refused, nothing written",
          "[store][export][hostile]") {
  // fuzz_import: each of these overflowed the stack (describing the bad value, or copying it).
  const std::string nest(200'000, '[');
  const std::string close(200'000, ']');
  for (const std::string& line :
       {R"({"position":)" + nest + close + "}\n", R"({"position":)" + nest + "\n",
        R"({"position":1,"payload":)" + nest + close + "}\n",
        R"({"position":1,"stream_id":)" + std::string(600, '[') + std::string(600, ']') + "}\n"}) {
    const auto store = open_sql_event_store("memory:");
    std::istringstream in(line);
    CHECK_THROWS_MATCHES(import_log(*store, in), InvalidArgument,
                         WhatContains("import line 1: the line nests arrays and objects more "
                                      "than 513 levels deep"));
    CHECK(store->head_position() == 0);
  }
}

TEST_CASE("a store URI naming a VFS formats with it, and one it cannot carry is refused",
          "[store][uri][hostile]") {
  // Found by fuzz_store_uri: format_store_uri dropped vfs=, so the formatted URI opened on
  // another VFS than the parsed one.
  const StoreUri uri = parse_store_uri("memory:?vfs=5555json&synchronous=full");
  CHECK(uri.options.vfs == "5555json");
  const std::string text = format_store_uri(uri);
  CHECK(text == "memory:?payload=json&synchronous=full&busy_timeout_ms=5000&group_commit=on&"
                "vfs=5555json");
  CHECK(parse_store_uri(text).options.vfs == "5555json");
  CHECK_THROWS_MATCHES(open_event_store(text), InvalidArgument,
                       WhatContains("no SQLite VFS named '5555json'"));
  StoreUri odd = uri;
  odd.options.vfs = "a&b";
  CHECK_THROWS_MATCHES(format_store_uri(odd), InvalidArgument,
                       WhatContains("vfs 'a&b' holds a '&'"));
  // A hostile URI is escaped in the message, never copied raw.
  CHECK_THROWS_MATCHES(parse_store_uri(std::string("sqlite:/x?bogus\n\x1b=1")), InvalidArgument,
                       WhatContains("unknown option 'bogus\\x0a\\x1b'"));
}

TEST_CASE("a parsed store URI formats to a URI that parses the same", "[store][uri][hostile]") {
  const StoreUri uri = parse_store_uri("sqlite:/data/a&b=c.db?synchronous=normal&payload=binary");
  CHECK(uri.scheme == "sqlite");
  CHECK(uri.path == "/data/a&b=c.db");
  CHECK(uri.options.payload_format == PayloadFormat::binary);
  CHECK(uri.options.synchronous == Synchronous::normal);
  const std::string text = format_store_uri(uri);
  CHECK(text ==
        "sqlite:/data/a&b=c.db?payload=binary&synchronous=normal&busy_timeout_ms=5000&"
        "group_commit=on");
  const StoreUri again = parse_store_uri(text);
  CHECK(again.path == uri.path);
  CHECK(again.options.payload_format == uri.options.payload_format);
  CHECK(format_store_uri(again) == text);
  CHECK(format_store_uri(parse_store_uri("memory:")) ==
        "memory:?payload=json&synchronous=full&busy_timeout_ms=5000&group_commit=on");
  // The same refusals as open_event_store, without touching a file.
  CHECK_THROWS_MATCHES(parse_store_uri("sqlite:"), InvalidArgument, WhatContains("needs a file path"));
  CHECK_THROWS_MATCHES(parse_store_uri("memory:x"), InvalidArgument, WhatContains("takes no path"));
  CHECK_THROWS_MATCHES(parse_store_uri("ftp:x"), InvalidArgument, WhatContains("unknown scheme 'ftp'"));
}
