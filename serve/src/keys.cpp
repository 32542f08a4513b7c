#include "annals/serve/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>

#include "annals/events/error.hpp"
#include "annals/events/printable.hpp"

namespace annals::serve {
namespace {

constexpr std::size_t kMaxTenantBytes = 128;

bool valid_tenant_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxTenantBytes) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string tenant_problem(std::string_view id) {
  return "tenant id '" + printable(id) + "' (" + std::to_string(id.size()) +
         " bytes): expected 1.." + std::to_string(kMaxTenantBytes) +
         " bytes of letters, digits, '.', '_' or '-'";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<KeyHash> parse_hash(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  KeyHash hash{};
  for (std::size_t i = 0; i < hash.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    hash[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return hash;
}

std::string to_hex(const KeyHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (const unsigned char b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// The whitespace-separated fields of a line (spaces and tabs; a trailing '\r' is taken off
// first so a file written on Windows reads the same).
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !is_blank(line[i])) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

}  // namespace

KeyRing KeyRing::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw StoreError("keys file '" + printable(file.string()) +
                         "' cannot be read: " + std::generic_category().message(error),
                     false);
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw StoreError("keys file '" + printable(file.string()) + "' cannot be read: I/O error",
                     false);
  }
  return parse(text, file.string());
}

KeyRing KeyRing::parse(std::string_view text, std::string_view source) {
  KeyRing ring;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::vector<std::string_view> fields = split_fields(line);
    if (fields.empty() || fields.front().front() == '#') continue;
    const std::string where = printable(source) + ":" + std::to_string(line_number) + ": ";
    if (fields.size() != 2) {
      throw InvalidArgument(where + "found " + std::to_string(fields.size()) + " field" +
                            (fields.size() == 1 ? "" : "s") + " in '" + printable(line) +
                            "': expected '<tenant> <sha256 of the key, 64 hex digits>'");
    }
    if (!valid_tenant_id(fields[0])) throw InvalidArgument(where + tenant_problem(fields[0]));
    const std::optional<KeyHash> hash = parse_hash(fields[1]);
    if (!hash) {
      throw InvalidArgument(where + "key hash '" + printable(fields[1]) + "' (" +
                            std::to_string(fields[1].size()) +
                            " bytes): expected the key's SHA-256 as 64 hex digits");
    }
    for (const Entry& entry : ring.entries_) {
      if (entry.hash == *hash) {
        throw InvalidArgument(where + "key hash " + to_hex(*hash) + " appears twice (tenant '" +
                              printable(entry.tenant_id) + "' and tenant '" + printable(fields[0]) +
                              "'): expected each key once");
      }
    }
    ring.entries_.push_back(Entry{std::string(fields[0]), *hash});
  }
  return ring;
}

void KeyRing::add(std::string tenant_id, const KeyHash& hash) {
  if (!valid_tenant_id(tenant_id)) throw InvalidArgument(tenant_problem(tenant_id));
  for (const Entry& entry : entries_) {
    if (entry.hash == hash) {
      throw InvalidArgument("key hash " + to_hex(hash) + " is already held (tenant '" +
                            printable(entry.tenant_id) + "'): expected each key once");
    }
  }
  entries_.push_back(Entry{std::move(tenant_id), hash});
}

std::optional<std::string> KeyRing::authenticate(std::string_view key) const {
  const KeyHash hash = hash_key(key);
  // Every entry is compared, whatever matched before: the time taken depends only on how many
  // entries there are. The match is folded in with masks rather than a branch on the result.
  std::size_t found = entries_.size();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const int diff = CRYPTO_memcmp(entries_[i].hash.data(), hash.data(), hash.size());
    const std::size_t equal = static_cast<std::size_t>(diff == 0);
    const std::size_t mask = std::size_t{0} - equal;  // all ones when equal
    found = (i & mask) | (found & ~mask);
  }
  if (found == entries_.size()) return std::nullopt;
  return entries_[found].tenant_id;
}

std::string KeyRing::generate_key() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw StoreError("generating a key: the OpenSSL random generator failed (RAND_bytes)", false);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string key = "ak_";
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const unsigned char b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      key += kAlphabet[(buffer >> bits) & 0x3f];
    }
  }
  if (bits > 0) key += kAlphabet[(buffer << (6 - bits)) & 0x3f];  // no '=' padding
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

KeyHash KeyRing::hash_key(std::string_view key) {
  KeyHash hash{};
  unsigned int length = 0;
  if (EVP_Digest(key.data(), key.size(), hash.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != hash.size()) {
    throw StoreError("SHA-256 of a key through OpenSSL (EVP_Digest) failed", false);
  }
  return hash;
}

std::string KeyRing::file_line(std::string_view tenant_id, std::string_view key) {
  if (!valid_tenant_id(tenant_id)) throw InvalidArgument(tenant_problem(tenant_id));
  if (key.empty()) throw InvalidArgument("an empty key: expected a key such as generate_key()'s");
  return std::string(tenant_id) + " " + to_hex(hash_key(key)) + "\n";
}

}  // namespace annals::serve
