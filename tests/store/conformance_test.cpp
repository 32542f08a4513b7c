// What an EventStore is: every backend must pass every case here.

#include <catch2/catch.hpp>
#include <set>

#include "annals/store/event_store.hpp"
#include "support/backends.hpp"

using namespace annals;
using annals::test::make_event;
using annals::test::make_events;
using Catch::Matchers::Contains;

#define BACKENDS ANNALS_BACKENDS

TEMPLATE_TEST_CASE("a new store is empty", "[store][conformance]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  CHECK(store->head_position() == 0);
  CHECK(store->read_all(1, 100).empty());
  CHECK(store->read_stream("nothing").empty());
  CHECK_FALSE(store->stream_version("nothing").has_value());
  CHECK(store->payload_format() == PayloadFormat::json);
}

TEMPLATE_TEST_CASE("append assigns stream versions and gap-free global positions",
                   "[store][conformance]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  const AppendResult a = store->append("s-1", ExpectedVersion::no_stream(), make_events(3));
  CHECK(a.first_position == 1);
  CHECK(a.last_position == 3);
  CHECK(a.stream_version == 3);
  const AppendResult b = store->append("s-2", ExpectedVersion::any(), make_events(2));
  CHECK(b.first_position == 4);
  CHECK(b.last_position == 5);
  CHECK(b.stream_version == 2);
  const AppendResult c = store->append("s-1", ExpectedVersion::exactly(3), make_events(1));
  CHECK(c.first_position == 6);
  CHECK(c.stream_version == 4);

  CHECK(store->head_position() == 6);
  CHECK(store->stream_version("s-1") == 4u);
  CHECK(store->stream_version("s-2") == 2u);
  const auto all = store->read_all(1, 100);
  REQUIRE(all.size() == 6);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == i + 1);
  const auto s1 = store->read_stream("s-1");
  REQUIRE(s1.size() == 4);
  for (std::size_t i = 0; i < s1.size(); ++i) {
    CHECK(s1[i].version == i + 1);
    CHECK(s1[i].stream_id == "s-1");
  }
  CHECK(s1[3].position == 6);
}

TEMPLATE_TEST_CASE("no_stream rejects an existing stream and writes nothing",
                   "[store][conformance][concurrency]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  store->append("WorkflowRun-42", ExpectedVersion::no_stream(), make_events(3));
  CHECK_THROWS_MATCHES(
      store->append("WorkflowRun-42", ExpectedVersion::no_stream(), make_events(1)),
      ConcurrencyError, Catch::Matchers::Predicate<ConcurrencyError>([](const ConcurrencyError& e) {
        const std::string m = e.what();
        return m.find("WorkflowRun-42") != std::string::npos &&
               m.find("expected no stream") != std::string::npos &&
               m.find("actual version 3") != std::string::npos;
      }));
  CHECK(store->head_position() == 3);
  CHECK(store->stream_version("WorkflowRun-42") == 3u);
}

TEMPLATE_TEST_CASE("exactly(n) rejects a stale or future version",
                   "[store][conformance][concurrency]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  store->append("s", ExpectedVersion::no_stream(), make_events(5));
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::exactly(3), make_events(1)),
                    Contains("append to s: expected version 3, actual version 5"));
  CHECK_THROWS_AS(store->append("s", ExpectedVersion::exactly(6), make_events(1)),
                  ConcurrencyError);
  CHECK_THROWS_WITH(store->append("missing", ExpectedVersion::exactly(1), make_events(1)),
                    Contains("expected version 1, actual no stream"));
  CHECK(store->head_position() == 5);
  CHECK_FALSE(store->stream_version("missing").has_value());
}

TEMPLATE_TEST_CASE("exactly(n) at the current version, any and exactly(0) append",
                   "[store][conformance][concurrency]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  CHECK(store->append("s", ExpectedVersion::exactly(0), make_events(1)).stream_version == 1);
  CHECK_THROWS_AS(store->append("s", ExpectedVersion::exactly(0), make_events(1)),
                  ConcurrencyError);
  CHECK(store->append("s", ExpectedVersion::exactly(1), make_events(2)).stream_version == 3);
  CHECK(store->append("s", ExpectedVersion::any(), make_events(1)).stream_version == 4);
  CHECK(store->append("new", ExpectedVersion::any(), make_events(1)).stream_version == 1);
}

TEMPLATE_TEST_CASE("a batch is all or nothing across streams", "[store][conformance][batch]",
                   BACKENDS) {
  TestType backend;
  auto store = backend.open();
  store->append("a", ExpectedVersion::no_stream(), make_events(2));
  store->append("b", ExpectedVersion::no_stream(), make_events(1));

  std::vector<StreamAppend> stale;
  stale.push_back({"a", ExpectedVersion::exactly(2), make_events(2)});
  stale.push_back({"c", ExpectedVersion::no_stream(), make_events(1)});
  stale.push_back({"b", ExpectedVersion::exactly(7), make_events(1)});
  CHECK_THROWS_WITH(store->append(std::move(stale)),
                    Contains("append to b: expected version 7, actual version 1"));
  CHECK(store->head_position() == 3);
  CHECK(store->stream_version("a") == 2u);
  CHECK_FALSE(store->stream_version("c").has_value());

  std::vector<StreamAppend> good;
  good.push_back({"a", ExpectedVersion::exactly(2), make_events(2)});
  good.push_back({"c", ExpectedVersion::no_stream(), make_events(1)});
  good.push_back({"a", ExpectedVersion::exactly(4), make_events(1)});  // sees the first part
  const AppendResult r = store->append(std::move(good));
  CHECK(r.first_position == 4);
  CHECK(r.last_position == 7);
  CHECK(r.stream_version == 5);
  const auto all = store->read_all(4, 10);
  REQUIRE(all.size() == 4);
  CHECK(all[0].stream_id == "a");
  CHECK(all[2].stream_id == "c");
  CHECK(all[3].stream_id == "a");
  CHECK(all[3].version == 5);
}

TEMPLATE_TEST_CASE("read_stream honours from_version and max_count", "[store][conformance][read]",
                   BACKENDS) {
  TestType backend;
  auto store = backend.open();
  store->append("s", ExpectedVersion::no_stream(), make_events(10));
  store->append("other", ExpectedVersion::no_stream(), make_events(3));
  auto page = store->read_stream("s", 4, 3);
  REQUIRE(page.size() == 3);
  CHECK(page[0].version == 4);
  CHECK(page[2].version == 6);
  CHECK(store->read_stream("s", 9).size() == 2);
  CHECK(store->read_stream("s", 11).empty());
  CHECK(store->read_stream("s", 1, 0).empty());
  CHECK(store->read_stream("s").size() == 10);
  CHECK_THROWS_AS(store->read_stream("s", 0), InvalidArgument);
  CHECK_THROWS_AS(store->read_stream("", 1), InvalidArgument);
}

TEMPLATE_TEST_CASE("read_all pages through the whole log exactly once",
                   "[store][conformance][read]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  for (int i = 0; i < 7; ++i) {
    store->append("s-" + std::to_string(i % 3), ExpectedVersion::any(), make_events(3));
  }
  std::vector<std::uint64_t> seen;
  std::uint64_t from = 1;
  for (;;) {
    auto page = store->read_all(from, 4);
    if (page.empty()) break;
    CHECK(page.size() <= 4);
    for (const auto& e : page) seen.push_back(e.position);
    from = page.back().position + 1;
  }
  REQUIRE(seen.size() == 21);
  for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i + 1);
  CHECK(store->read_all(22, 10).empty());
  CHECK(store->read_all(1, 0).empty());
  CHECK_THROWS_WITH(store->read_all(0, 10), Contains("positions start at 1"));
}

TEMPLATE_TEST_CASE("payloads with NUL bytes and of 1 MiB round-trip byte for byte",
                   "[store][conformance][payload]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  NewEvent nul = make_event("Blob", std::string("a\0b\0\0c\xff", 7));
  nul.payload_format = PayloadFormat::binary;
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) % 256);
  NewEvent large = make_event("Blob", big);
  large.payload_format = PayloadFormat::binary;
  std::string big_json = "{\"text\":\"" + std::string((1 << 20) - 12, 'x') + "\"}";
  NewEvent large_json = make_event("Doc", big_json);
  store->append("blobs", ExpectedVersion::no_stream(), {nul, large, large_json});

  auto check = [&](const std::shared_ptr<EventStore>& s) {
    const auto events = s->read_stream("blobs");
    REQUIRE(events.size() == 3);
    CHECK(events[0].payload == std::string("a\0b\0\0c\xff", 7));
    CHECK(events[0].payload_format == PayloadFormat::binary);
    CHECK(events[1].payload == big);
    CHECK(events[2].payload == big_json);
    CHECK(events[2].payload_format == PayloadFormat::json);
  };
  check(store);
  check(backend.reopen());
}

TEMPLATE_TEST_CASE("metadata and microsecond timestamps round-trip", "[store][conformance]",
                   BACKENDS) {
  TestType backend;
  const Timestamp fixed = from_micros(1'790'000'000'123'457);
  StoreOptions options;
  options.clock = [fixed] { return fixed; };
  auto store = backend.open("", options);
  NewEvent e = make_event("RunCreated", R"({"run_id":"r-1"})");
  e.schema_version = 3;
  e.metadata = EventMetadata{"tenant-ü", "alice@example.com", "corr-1", "cause-1",
                             from_micros(1'789'999'999'000'001)};
  store->append("WorkflowRun-r-1", ExpectedVersion::no_stream(), {e});
  for (const auto& s : {store, backend.reopen()}) {
    const auto events = s->read_stream("WorkflowRun-r-1");
    REQUIRE(events.size() == 1);
    const RecordedEvent& r = events[0];
    CHECK(r.type == "RunCreated");
    CHECK(r.schema_version == 3);
    CHECK(r.payload == R"({"run_id":"r-1"})");
    CHECK(r.metadata == e.metadata);
    CHECK(to_micros(r.metadata.occurred_at) == 1'789'999'999'000'001);
    CHECK(r.recorded_at == fixed);
    CHECK(s->read_all(1, 1).front() == r);
  }
}

TEMPLATE_TEST_CASE("given event ids are kept, nil ones generated, duplicates refused",
                   "[store][conformance]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  NewEvent given = make_event();
  given.event_id = new_event_id();
  store->append("s", ExpectedVersion::any(), {given, make_event(), make_event()});
  const auto events = store->read_stream("s");
  REQUIRE(events.size() == 3);
  CHECK(events[0].event_id == given.event_id);
  CHECK_FALSE(events[1].event_id.is_nil());
  CHECK_FALSE(events[2].event_id.is_nil());
  CHECK(events[1].event_id != events[2].event_id);

  CHECK_THROWS_WITH(store->append("t", ExpectedVersion::any(), {given}),
                    Contains(to_string(given.event_id)) && Contains("already in the store"));
  NewEvent twice = make_event();
  twice.event_id = new_event_id();
  CHECK_THROWS_AS(store->append("t", ExpectedVersion::any(), {twice, twice}), InvalidArgument);
  CHECK(store->head_position() == 3);
  CHECK_FALSE(store->stream_version("t").has_value());
}

TEMPLATE_TEST_CASE("bad appends are refused with the value named and nothing written",
                   "[store][conformance][validation]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  store->append("s", ExpectedVersion::no_stream(), make_events(1));

  CHECK_THROWS_WITH(store->append("", ExpectedVersion::any(), make_events(1)),
                    Contains("stream id is empty"));
  CHECK_THROWS_WITH(store->append(std::string(2000, 'x'), ExpectedVersion::any(), make_events(1)),
                    Contains("2000 bytes"));
  CHECK_THROWS_WITH(store->append(std::string("a\0b", 3), ExpectedVersion::any(), make_events(1)),
                    Contains("NUL"));
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::any(), {}), Contains("no events"));
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::any(), {make_event("")}),
                    Contains("append to s: event 1 of 1 has an empty type"));
  NewEvent v0 = make_event("Thing");
  v0.schema_version = 0;
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::any(), {make_event(), v0}),
                    Contains("event 2 of 2 (Thing) has schema version 0"));
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::any(), {make_event("Thing", "{not json")}),
                    Contains("{not json") && Contains("not a JSON document"));
  CHECK_THROWS_WITH(store->append(std::vector<StreamAppend>{}), Contains("no streams"));
  std::vector<StreamAppend> half_bad;
  half_bad.push_back({"s", ExpectedVersion::any(), make_events(1)});
  half_bad.push_back({"", ExpectedVersion::any(), make_events(1)});
  CHECK_THROWS_AS(store->append(std::move(half_bad)), InvalidArgument);

  CHECK(store->head_position() == 1);
  CHECK(store->stream_version("s") == 1u);
  CHECK(store->read_all(1, 10).size() == 1);
}

TEMPLATE_TEST_CASE("the payload format option is reported to writers", "[store][conformance]",
                   BACKENDS) {
  TestType backend;
  CHECK(backend.open("payload=binary")->payload_format() == PayloadFormat::binary);
}

TEMPLATE_TEST_CASE("reopening keeps everything", "[store][conformance]", BACKENDS) {
  TestType backend;
  auto store = backend.open();
  std::vector<StreamAppend> batch;
  batch.push_back({"x", ExpectedVersion::no_stream(), make_events(4)});
  batch.push_back({"y", ExpectedVersion::no_stream(), make_events(2)});
  store->append(std::move(batch));
  const auto before = store->read_all(1, 100);
  auto again = backend.reopen();
  CHECK(again->read_all(1, 100) == before);
  CHECK(again->head_position() == 6);
  CHECK(again->stream_version("x") == 4u);
  CHECK(again->append("x", ExpectedVersion::exactly(4), make_events(1)).first_position == 7);
}

TEMPLATE_TEST_CASE("recorded_at never runs backwards along the log", "[store][conformance]",
                   BACKENDS) {
  TestType backend;
  std::int64_t next = 2'000'000'000'000'000;
  StoreOptions options;
  options.clock = [&next] { return from_micros(next -= 1'000'000); };  // a clock stepping back
  auto store = backend.open("", options);
  for (int i = 0; i < 4; ++i) store->append("s", ExpectedVersion::any(), make_events(1));
  const auto all = store->read_all(1, 10);
  REQUIRE(all.size() == 4);
  for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i].recorded_at >= all[i - 1].recorded_at);
}

TEMPLATE_TEST_CASE("a payload over the size limit is refused", "[store][conformance][validation]",
                   BACKENDS) {
  TestType backend;
  auto store = backend.open();
  NewEvent huge = make_event("Blob", std::string((64u << 20) + 1, 'x'));
  huge.payload_format = PayloadFormat::binary;
  CHECK_THROWS_WITH(store->append("s", ExpectedVersion::any(), {huge}),
                    Contains("67108865 bytes") && Contains("allowed"));
  CHECK(store->head_position() == 0);
}
