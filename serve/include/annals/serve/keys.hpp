#pragma once

// API keys for `annals serve`: each key belongs to exactly one tenant, and the keys file holds
// only the keys' SHA-256 hashes, never the keys themselves.
//
//   annals::serve::KeyRing keys = annals::serve::KeyRing::load("/etc/annals/keys");
//   std::optional<std::string> tenant = keys.authenticate(bearer_token);   // nullopt: 401
//
// The keys file is text, one key per line:
//
//   # tenant   sha256 of the key, 64 hex digits
//   acme       9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// Blank lines and lines starting with '#' are ignored. A tenant id is 1..128 bytes of UTF-8
// without blanks or control characters, not starting with '#'. Several keys may belong to one tenant (rotation); one hash may appear once.
//
// Thread-safety: a KeyRing is immutable after it is built; authenticate() may be called from any
// number of threads at once.

#include <array>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace annals::serve {

using KeyHash = std::array<unsigned char, 32>;  // SHA-256 of the key's bytes

class KeyRing {
 public:
  KeyRing() = default;

  // Reads a keys file. Throws InvalidArgument naming the file and line for a malformed line
  // (what was found and what was expected), a repeated hash or a bad tenant id; StoreError if
  // the file cannot be read. An empty file gives an empty ring (every request is then a 401).
  [[nodiscard]] static KeyRing load(const std::filesystem::path& file);
  // The same from text; `source` names it in messages.
  [[nodiscard]] static KeyRing parse(std::string_view text, std::string_view source = "keys");

  // Adds a key's hash for a tenant. InvalidArgument for a bad tenant id or a hash already held.
  void add(std::string tenant_id, const KeyHash& hash);

  // The tenant whose key this is, or nullopt. Compares the key's SHA-256 with every stored hash
  // in constant time (CRYPTO_memcmp, no early exit), so timing reveals neither which hash nor
  // how much of it matched.
  [[nodiscard]] std::optional<std::string> authenticate(std::string_view key) const;

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  // A new random key: "ak_" followed by 43 base64url characters (32 bytes from the OS CSPRNG).
  [[nodiscard]] static std::string generate_key();
  [[nodiscard]] static KeyHash hash_key(std::string_view key);
  // The keys-file line (with its '\n') for a tenant's key: "<tenant> <64 hex digits>\n".
  // InvalidArgument for a bad tenant id.
  [[nodiscard]] static std::string file_line(std::string_view tenant_id, std::string_view key);

 private:
  struct Entry {
    std::string tenant_id;
    KeyHash hash;
  };
  std::vector<Entry> entries_;
};

}  // namespace annals::serve
