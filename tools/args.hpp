#pragma once

// How the annals program reads the values of its options: where the store is, times, and whole
// numbers (limits, positions, counts). Pure functions over text, with no CLI11 and no store, so
// the program and fuzz/fuzz_cli_args.cpp link the same code.

#include <annals/events/error.hpp>
#include <annals/events/event.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "commands.hpp"

namespace annals::cli {

// The store URI the target names: "sqlite:" + --db, or --uri. InvalidArgument unless exactly
// one of them is given, and for a --db that is spelled as a PostgreSQL URI (--db takes an SQLite
// file; a PostgreSQL store is given with --uri). The program prints a URI only through
// annals::redact_store_uri(), so a PostgreSQL password is never shown.
[[nodiscard]] std::string store_uri(const Target& target);

// The file of a "sqlite:<path>[?options]" URI; nullopt for other schemes.
[[nodiscard]] std::optional<std::filesystem::path> sqlite_file(std::string_view uri);

// "2026-11-21T09:30:00Z", "2026-11-21T09:30:00.123456Z", with an optional "+HH:MM"/"-HH:MM"
// offset instead of Z, or integer microseconds since the epoch. InvalidArgument otherwise.
[[nodiscard]] Timestamp parse_time(std::string_view text);

// A whole number given to `option` (e.g. "--limit"): decimal digits only (no sign, no 0x, no
// spaces; leading zeros are fine), from min to max. InvalidArgument naming the option, the text
// and the range otherwise. CLI11's own conversion reads "-1" as 2^64-1 and "010" as octal 8.
[[nodiscard]] std::uint64_t parse_unsigned(std::string_view text, std::string_view option,
                                           std::uint64_t min, std::uint64_t max);

// Where `annals serve` listens: --listen HOST:PORT with an IPv4 literal ("127.0.0.1:8080") or a
// bracketed IPv6 literal ("[::1]:8080"), port 0..65535 (0: the system picks a free one).
// InvalidArgument naming the text and what was expected otherwise (host names are refused: the
// address to bind must be unambiguous).
struct ListenAddress {
  std::string host;  // the literal, without brackets
  std::uint16_t port = 0;
};
[[nodiscard]] ListenAddress parse_listen(std::string_view text);

// Whether an address literal (as parse_listen gives it) is a loopback address: 127.0.0.0/8, ::1,
// or an IPv4-mapped 127.x (::ffff:127.0.0.1).
[[nodiscard]] bool is_loopback(std::string_view host);

// "http://HOST:PORT/" for a listening address (IPv6 in brackets).
[[nodiscard]] std::string listen_url(std::string_view host, std::uint16_t port);

}  // namespace annals::cli
