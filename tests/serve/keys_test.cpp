// KeyRing: the keys file's format and its errors, authentication against every entry, and the
// keys `annals keys add` / `annals demo` generate.
#include "annals/serve/keys.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <string>

#include "annals/events/error.hpp"
#include "support/temp_dir.hpp"

using annals::serve::KeyHash;
using annals::serve::KeyRing;

namespace {

// SHA-256("abc") from FIPS 180-2, and of the empty string.
constexpr const char* kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmptyHex =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string message_of(std::string_view text) {
  try {
    (void)KeyRing::parse(text, "keys.txt");
  } catch (const annals::InvalidArgument& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("hash_key is SHA-256 of the key's bytes", "[serve][keys]") {
  KeyRing ring = KeyRing::parse(std::string("acme ") + kAbcHex + "\n");
  CHECK(ring.authenticate("abc") == std::optional<std::string>("acme"));
  CHECK(KeyRing::file_line("acme", "abc") == std::string("acme ") + kAbcHex + "\n");
}

TEST_CASE("a keys file with comments, blank lines, tabs, CRLF and several keys per tenant parses",
          "[serve][keys]") {
  const std::string text = std::string("# tenant  sha256\n\n   \n  # indented comment\n") +
                           "acme\t" + kAbcHex + "\r\n" + "  beta   " + kEmptyHex + "  \n" +
                           KeyRing::file_line("acme", "second-acme-key") + "t.x_y-Z9 " +
                           std::string(64, 'A');  // uppercase hex, no final newline
  const KeyRing ring = KeyRing::parse(text);
  CHECK(ring.size() == 4);
  CHECK(ring.authenticate("abc") == std::optional<std::string>("acme"));
  CHECK(ring.authenticate("") == std::optional<std::string>("beta"));
  CHECK(ring.authenticate("second-acme-key") == std::optional<std::string>("acme"));
  CHECK_FALSE(ring.authenticate("abd").has_value());
  CHECK_FALSE(ring.authenticate("abc ").has_value());
  CHECK_FALSE(ring.authenticate(kAbcHex).has_value());  // the hash is not the key
}

TEST_CASE("an empty keys file gives an empty ring that authenticates nobody", "[serve][keys]") {
  for (const char* text : {"", "\n\n", "# only a comment\n"}) {
    const KeyRing ring = KeyRing::parse(text);
    CHECK(ring.size() == 0);
    CHECK_FALSE(ring.authenticate("abc").has_value());
    CHECK_FALSE(ring.authenticate("").has_value());
  }
}

TEST_CASE("every malformed keys line is an InvalidArgument naming file, line, value and form",
          "[serve][keys]") {
  const std::string good = std::string("acme ") + kAbcHex + "\n";
  struct Row {
    std::string text;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Row> rows = {
      {good + "acme\n", {"keys.txt:2:", "found 1 field in 'acme'", "expected '<tenant> <sha256"}},
      {good + "acme " + kEmptyHex + " extra\n",
       {"keys.txt:2:", "found 3 fields", "extra", "expected '<tenant>"}},
      {"acme 1234\n", {"keys.txt:1:", "key hash '1234' (4 bytes)", "64 hex digits"}},
      {"acme " + std::string(63, 'a') + "g\n", {"keys.txt:1:", "aag' (64 bytes)", "64 hex digits"}},
      {"acme " + std::string(65, 'a') + "\n", {"(65 bytes)", "64 hex digits"}},
      {"ac/me " + std::string(kAbcHex) + "\n",
       {"keys.txt:1:", "tenant id 'ac/me' (5 bytes)", "letters, digits"}},
      {std::string(129, 't') + " " + kAbcHex + "\n", {"(129 bytes)", "expected 1..128 bytes"}},
      {"caf\xc3\xa9 " + std::string(kAbcHex) + "\n", {"tenant id 'caf\xc3\xa9'"}},
      {"a\x1b[31m " + std::string(kAbcHex) + "\n", {"tenant id 'a\\x1b[31m'"}},
      {good + "\n# c\nbeta " + kAbcHex + "\n",
       {"keys.txt:4:", std::string("key hash ") + kAbcHex + " appears twice", "tenant 'acme'",
        "tenant 'beta'"}},
      {good + "acme " + std::string(kAbcHex).substr(0, 62) + "AD\n",  // same hash, other case
       {"keys.txt:2:", "appears twice"}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    const std::string message = message_of(row.text);
    for (const std::string& part : row.expected) {
      CAPTURE(message);
      CHECK(message.find(part) != std::string::npos);
    }
  }
}

TEST_CASE("load reads a file and names it in errors; an unreadable file is a StoreError",
          "[serve][keys]") {
  annals::test::TempDir dir;
  const auto path = dir.path() / "keys";
  {
    std::ofstream out(path);
    out << KeyRing::file_line("acme", "k1") << "bad line here\n";
  }
  try {
    (void)KeyRing::load(path);
    FAIL("expected InvalidArgument");
  } catch (const annals::InvalidArgument& e) {
    CHECK(std::string(e.what()).find(path.string() + ":2:") != std::string::npos);
  }
  {
    std::ofstream out(path);
    out << KeyRing::file_line("acme", "k1") << KeyRing::file_line("beta", "k2");
  }
  const KeyRing ring = KeyRing::load(path);
  CHECK(ring.size() == 2);
  CHECK(ring.authenticate("k2") == std::optional<std::string>("beta"));

  try {
    (void)KeyRing::load(dir.path() / "missing");
    FAIL("expected StoreError");
  } catch (const annals::StoreError& e) {
    CHECK(std::string(e.what()).find("missing' cannot be read") != std::string::npos);
    CHECK_FALSE(e.transient());
  }
}

TEST_CASE("add refuses a bad tenant id and a hash already held", "[serve][keys]") {
  KeyRing ring;
  ring.add("acme", KeyRing::hash_key("k1"));
  CHECK_THROWS_AS(ring.add("", KeyRing::hash_key("k2")), annals::InvalidArgument);
  CHECK_THROWS_AS(ring.add("a b", KeyRing::hash_key("k2")), annals::InvalidArgument);
  CHECK_THROWS_WITH(ring.add("beta", KeyRing::hash_key("k1")),
                    Catch::Contains("already held (tenant 'acme')"));
  CHECK(ring.size() == 1);
}

TEST_CASE("authenticate finds the key whatever its place in the ring", "[serve][keys]") {
  // Every entry is compared; the one found must be the right one at the first, a middle and the
  // last place, and a key whose hash shares a prefix with a stored one is not accepted.
  KeyRing ring;
  for (int i = 0; i < 50; ++i) {
    ring.add("tenant-" + std::to_string(i), KeyRing::hash_key("key-" + std::to_string(i)));
  }
  for (int i : {0, 1, 24, 48, 49}) {
    CHECK(ring.authenticate("key-" + std::to_string(i)) ==
          std::optional<std::string>("tenant-" + std::to_string(i)));
  }
  CHECK_FALSE(ring.authenticate("key-50").has_value());
  CHECK_FALSE(ring.authenticate("key-").has_value());
}

TEST_CASE("generate_key gives ak_ and 43 base64url characters, different every time",
          "[serve][keys]") {
  std::set<std::string> keys;
  for (int i = 0; i < 200; ++i) {
    const std::string key = KeyRing::generate_key();
    REQUIRE(key.size() == 46);
    CHECK(key.rfind("ak_", 0) == 0);
    for (const char c : key.substr(3)) {
      const bool base64url = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '_';
      CHECK(base64url);
    }
    keys.insert(key);
  }
  CHECK(keys.size() == 200);
}

TEST_CASE("file_line round-trips through parse, and refuses a bad tenant or an empty key",
          "[serve][keys]") {
  const std::string key = KeyRing::generate_key();
  const std::string line = KeyRing::file_line("acme", key);
  CHECK(line.size() == 4 + 1 + 64 + 1);
  CHECK(line.back() == '\n');
  const KeyRing ring = KeyRing::parse(line);
  CHECK(ring.authenticate(key) == std::optional<std::string>("acme"));
  CHECK_FALSE(ring.authenticate(KeyRing::generate_key()).has_value());
  CHECK_THROWS_WITH(KeyRing::file_line("a b", key), Catch::Contains("tenant id 'a b'"));
  CHECK_THROWS_AS(KeyRing::file_line("acme", ""), annals::InvalidArgument);
}
