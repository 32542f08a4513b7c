// The hash chain: what verify proves and where it says the log broke.

#include "annals/store/hash_chain.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <openssl/evp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "support/backends.hpp"
#include "support/test_vector.hpp"

using namespace annals;
using annals::test::make_event;
using annals::test::make_events;

namespace {

// The log of every test below: 6 events in three streams.
void write_log(EventStore& store) {
  store.append("a", ExpectedVersion::no_stream(), make_events(2));
  store.append("b", ExpectedVersion::no_stream(), make_events(3));
  store.append("a", ExpectedVersion::exactly(2), make_events(1));
}

std::uint64_t broken_at(const EventStore& store) {
  try {
    (void)verify_log(store);
  } catch (const IntegrityError& e) {
    INFO(e.what());
    return e.position();
  }
  return 0;
}

// A raw connection with the append-only triggers dropped, as a tamperer would.
SQLite::Database tamper(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  db.exec("DROP TRIGGER annals_events_no_update; DROP TRIGGER annals_events_no_delete;");
  return db;
}

}  // namespace

TEST_CASE("the canonical encoding and chain hash match the documented test vector",
          "[store][hash]") {
  // docs/audit.md gives this event and hash; an independent implementation produced it.
  const RecordedEvent e = test::test_vector_event();
  const EventHash previous = test::test_vector_previous_hash();
  CHECK(canonical_encoding(e).size() == 166);
  CHECK(to_hex(chain_hash(previous, e)) == test::kTestVectorHash);
}

TEST_CASE("chain_hash is SHA-256 of previous and the canonical encoding at every payload size",
          "[store][hash]") {
  // chain_hash feeds OpenSSL through a buffer and hands large pieces over directly: every
  // split must digest exactly previous || canonical_encoding(e).
  auto reference = [](const EventHash& previous, const RecordedEvent& e) {
    std::string input(reinterpret_cast<const char*>(previous.data()), previous.size());
    input += canonical_encoding(e);
    EventHash out{};
    unsigned int length = 0;
    REQUIRE(EVP_Digest(input.data(), input.size(), out.data(), &length, EVP_sha256(), nullptr) ==
            1);
    REQUIRE(length == out.size());
    return out;
  };
  RecordedEvent e;
  e.position = 3;
  e.stream_id = "WorkflowRun-r-9";
  e.version = 1;
  e.event_id = parse_uuid("123e4567-e89b-12d3-a456-426614174000");
  e.type = "RunCreated";
  e.metadata = {"acme", "alice", "c", "d", from_micros(5)};
  e.recorded_at = from_micros(6);
  EventHash previous;
  previous.fill(0x5a);
  for (std::size_t size : {0, 1, 200, 900, 1023, 1024, 1025, 4096, 100'000}) {
    e.payload.assign(size, 'x');
    INFO("payload of " << size << " bytes");
    CHECK(chain_hash(previous, e) == reference(previous, e));
  }
  e.stream_id.assign(2000, 's');  // a long stream id, not only a long payload
  CHECK(chain_hash(previous, e) == reference(previous, e));

  // The digest context is per thread: threads hashing at once get the same values.
  e.payload.assign(300, 'y');
  const EventHash expected = reference(previous, e);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (chain_hash(previous, e) != expected) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(wrong == 0);
}

TEMPLATE_TEST_CASE("every stored event carries the chain hash and the log verifies",
                   "[store][hash][conformance]", ANNALS_BACKENDS) {
  TestType backend;
  auto store = backend.open();
  CHECK(verify_log(*store).events == 0);
  write_log(*store);
  EventHash previous{};
  for (const RecordedEvent& e : store->read_all(1, 100)) {
    CHECK(e.hash == chain_hash(previous, e));
    previous = e.hash;
  }
  const LogVerification v = verify_log(*store, 4);  // pages smaller than the log
  CHECK(v.events == 6);
  CHECK(v.head_position == 6);
  CHECK(v.head_hash == previous);
  CHECK(store->read_stream("b").front().hash == store->read_all(3, 1).front().hash);
  CHECK(verify_log(*backend.reopen()).head_hash == previous);
}

TEST_CASE("verify reports the first position of an edited event", "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  db.exec(R"(UPDATE annals_events SET payload = '{"n":999}' WHERE position = 4)");
  CHECK(broken_at(*store) == 4);
}

TEST_CASE("verify reports an edited actor or timestamp, not only payloads",
          "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  db.exec("UPDATE annals_events SET occurred_at = occurred_at + 1 WHERE position = 5");
  CHECK(broken_at(*store) == 5);
  db.exec("UPDATE annals_events SET actor = 'mallory' WHERE position = 2");
  CHECK(broken_at(*store) == 2);
}

TEST_CASE("verify reports a deleted event as missing", "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  db.exec("DELETE FROM annals_events WHERE position = 3");
  CHECK(broken_at(*store) == 3);
  db.exec("DELETE FROM annals_events WHERE position = 6");  // the head: only a kept head hash
  CHECK(broken_at(*store) == 3);                            // (a checkpoint) can show that
}

TEST_CASE("verify reports reordered events at the first moved position", "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  // Swap positions 2 and 5 (the whole rows, hashes included).
  db.exec(
      "UPDATE annals_events SET position = -1 WHERE position = 2;"
      "UPDATE annals_events SET position = 2 WHERE position = 5;"
      "UPDATE annals_events SET position = 5 WHERE position = -1;");
  CHECK(broken_at(*store) == 2);
}

TEST_CASE("verify reports an inserted event", "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  // Make room at position 4 and copy event 6 there under a new id.
  db.exec(
      "UPDATE annals_events SET position = position + 100 WHERE position >= 4;"
      "UPDATE annals_events SET position = position - 99 WHERE position >= 104;");
  db.exec(
      "INSERT INTO annals_events SELECT 4, stream_id, 99, 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',"
      " type, schema_version, payload_format, payload, tenant_id, actor, correlation_id,"
      " causation_id, occurred_at, recorded_at, hash FROM annals_events WHERE position = 7");
  CHECK(broken_at(*store) == 4);
}

TEST_CASE("a damaged hash is an IntegrityError with its position", "[store][hash][tamper]") {
  annals::test::SqliteBackend backend;
  auto store = backend.open();
  write_log(*store);
  auto db = tamper(backend.dir.file("events.db"));
  db.exec("UPDATE annals_events SET hash = x'00' WHERE position = 6");
  CHECK(broken_at(*store) == 6);
  CHECK_THROWS_AS(store->append("c", ExpectedVersion::any(), make_events(1)), IntegrityError);
}
