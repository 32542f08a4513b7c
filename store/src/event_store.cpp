#include "annals/store/event_store.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "annals/events/json_archive.hpp"
#include "annals/events/printable.hpp"
#include "store_internal.hpp"

namespace annals {

bool ExpectedVersion::matches(std::optional<std::uint64_t> actual) const noexcept {
  switch (kind_) {
    case Kind::any:
      return true;
    case Kind::no_stream:
      return !actual.has_value();
    case Kind::exactly:
      return actual.has_value() && *actual == version_;
  }
  return false;
}

std::string ExpectedVersion::to_string() const {
  switch (kind_) {
    case Kind::any:
      return "any";
    case Kind::no_stream:
      return "no stream";
    case Kind::exactly:
      return "version " + std::to_string(version_);
  }
  return "?";
}

namespace detail {

namespace {
constexpr std::size_t kMaxStreamIdBytes = 1024;
constexpr std::size_t kMaxTypeBytes = 256;
constexpr std::size_t kMaxPayloadBytes = 64u << 20;

// JSON (the export format) carries only UTF-8 text: an event holding other bytes in a text field
// could be stored but never exported or archived, so it is refused before it is written.
void require_utf8(std::string_view value, std::string_view field, const std::string& which) {
  if (!detail::valid_utf8(value)) {
    throw InvalidArgument(which + " has " + std::string(field) + " '" + printable(value) +
                          "' that is not UTF-8 text");
  }
}
}  // namespace

void validate_stream_id(std::string_view stream_id, std::string_view operation) {
  const std::string where(operation);
  if (stream_id.empty()) throw InvalidArgument(where + ": stream id is empty");
  if (stream_id.size() > kMaxStreamIdBytes) {
    throw InvalidArgument(where + ": stream id '" + printable(stream_id) + "' is " +
                          std::to_string(stream_id.size()) + " bytes, more than the " +
                          std::to_string(kMaxStreamIdBytes) + " allowed");
  }
  if (stream_id.find('\0') != std::string_view::npos) {
    throw InvalidArgument(where + ": stream id '" + printable(stream_id) + "' contains a NUL byte");
  }
}

void validate_batch(const std::vector<StreamAppend>& batch) {
  if (batch.empty()) throw InvalidArgument("append: the batch has no streams");
  for (const StreamAppend& part : batch) {
    validate_stream_id(part.stream_id, "append");
    const std::string where = "append to " + printable(part.stream_id, 1024);
    require_utf8(part.stream_id, "stream id", "append");
    if (part.events.empty()) throw InvalidArgument(where + ": no events to append");
    for (std::size_t i = 0; i < part.events.size(); ++i) {
      const NewEvent& e = part.events[i];
      const std::string which =
          where + ": event " + std::to_string(i + 1) + " of " + std::to_string(part.events.size());
      if (e.type.empty()) throw InvalidArgument(which + " has an empty type");
      if (e.type.size() > kMaxTypeBytes || e.type.find('\0') != std::string::npos) {
        throw InvalidArgument(which + " has type '" + printable(e.type) + "': expected 1 to " +
                              std::to_string(kMaxTypeBytes) + " bytes without NUL");
      }
      require_utf8(e.type, "type", which);
      require_utf8(e.metadata.tenant_id, "metadata tenant_id", which);
      require_utf8(e.metadata.actor, "metadata actor", which);
      require_utf8(e.metadata.correlation_id, "metadata correlation_id", which);
      require_utf8(e.metadata.causation_id, "metadata causation_id", which);
      if (e.schema_version == 0) {
        throw InvalidArgument(which + " (" + printable(e.type, kMaxTypeBytes) +
                              ") has schema version 0: versions start at 1");
      }
      if (e.payload_format != PayloadFormat::json && e.payload_format != PayloadFormat::binary) {
        throw InvalidArgument(which + " (" + printable(e.type, kMaxTypeBytes) +
                              ") has an unknown payload format " +
                              std::to_string(static_cast<int>(e.payload_format)));
      }
      if (e.payload.size() > kMaxPayloadBytes) {
        throw InvalidArgument(which + " (" + printable(e.type, kMaxTypeBytes) +
                              ") has a payload of " + std::to_string(e.payload.size()) +
                              " bytes, more than the " + std::to_string(kMaxPayloadBytes) +
                              " allowed");
      }
      if (e.payload_format == PayloadFormat::json && !is_json_document(e.payload)) {
        throw InvalidArgument(which + " (" + printable(e.type, kMaxTypeBytes) +
                              ") is marked json but its payload '" + printable(e.payload) +
                              "' is not a JSON document");
      }
    }
  }
}

void check_expected(std::string_view stream_id, const ExpectedVersion& expected,
                    std::optional<std::uint64_t> actual) {
  if (expected.matches(actual)) return;
  throw ConcurrencyError("append to " + printable(stream_id, 1024) + ": expected " +
                         expected.to_string() + ", actual " +
                         (actual ? "version " + std::to_string(*actual) : "no stream"));
}

void throw_duplicate_event_id(std::string_view stream_id, const boost::uuids::uuid& event_id) {
  throw InvalidArgument("append to " + printable(stream_id, 1024) + ": event id " +
                        to_string(event_id) + " is already in the store");
}

std::vector<StreamAppend> single_stream(std::string_view stream_id, ExpectedVersion expected,
                                        std::vector<NewEvent> events) {
  std::vector<StreamAppend> batch;
  batch.push_back(StreamAppend{std::string(stream_id), expected, std::move(events)});
  return batch;
}

void validate_from(std::uint64_t from, std::string_view what, std::string_view operation) {
  if (from == 0) {
    throw InvalidArgument(std::string(operation) + ": " + std::string(what) +
                          " 0: " + std::string(what == "from_version" ? "versions" : "positions") +
                          " start at 1");
  }
}

Timestamp read_clock(const StoreOptions& options) {
  return options.clock ? options.clock() : now();
}

}  // namespace detail

namespace {

struct ParsedUri {
  std::string scheme;
  std::string path;
  StoreOptions options;
};

constexpr std::string_view kPostgresSchemes[] = {"postgresql://", "postgres://"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool is_postgres_url(std::string_view uri) {
  for (std::string_view scheme : kPostgresSchemes) {
    if (uri.starts_with(scheme)) return true;
  }
  return false;
}

// A libpq keyword string: its first token is `word=` (spaces allowed around the '=', as libpq
// allows them). "sqlite:/x?a=b" is not one: its first word ends at the ':'.
bool is_keyword_string(std::string_view uri) {
  std::size_t i = 0;
  while (i < uri.size() && is_space(uri[i])) ++i;
  const std::size_t word = i;
  while (i < uri.size() && (std::isalnum(static_cast<unsigned char>(uri[i])) != 0 || uri[i] == '_')) {
    ++i;
  }
  if (i == word) return false;
  while (i < uri.size() && is_space(uri[i])) ++i;
  return i < uri.size() && uri[i] == '=';
}


// One `key=value` of a keyword string, the value without its quotes and escapes.
struct Keyword {
  std::string key;
  std::string value;
};

// Splits a libpq keyword string as libpq does (values in single quotes, backslash escapes).
// nullopt when it is malformed; *error then says what is wrong.
std::optional<std::vector<Keyword>> split_keywords(std::string_view text,
                                                   std::string* error = nullptr) {
  std::vector<Keyword> out;
  std::size_t i = 0;
  const auto fail = [&](std::string why) -> std::optional<std::vector<Keyword>> {
    if (error != nullptr) *error = std::move(why);
    return std::nullopt;
  };
  while (true) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i == text.size()) break;
    Keyword k;
    while (i < text.size() && !is_space(text[i]) && text[i] != '=') k.key += text[i++];
    while (i < text.size() && is_space(text[i])) ++i;
    if (i == text.size() || text[i] != '=') {
      return fail("'" + printable(k.key) + "' has no '=value'");
    }
    ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          k.value += text[i + 1];
          i += 2;
        } else if (text[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          k.value += text[i++];
        }
      }
      if (!closed) return fail("the value of '" + printable(k.key) + "' has no closing quote");
    } else {
      while (i < text.size() && !is_space(text[i])) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        k.value += text[i++];
      }
    }
    out.push_back(std::move(k));
  }
  return out;
}

// A keyword's value as libpq reads it back: quoted when it is empty or holds a space, quote or
// backslash.
std::string quote_keyword_value(std::string_view value) {
  const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
    return is_space(c) || c == '\'' || c == '\\';
  });
  if (plain) return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decoded(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

constexpr const char* kRedacted = "***";

std::string redact_url(std::string_view uri) {
  const auto scheme_end = uri.find("://");
  std::string out(uri.substr(0, scheme_end + 3));
  std::string_view rest = uri.substr(scheme_end + 3);
  // libpq reads user:password@ before the first '/', but a password written with a raw '@',
  // '/' (or any other character) may hold either: everything after the first ':' up to the
  // last '@' before the query is hidden. Hiding an '@' that belongs to the path is harmless.
  const std::string_view authority = rest.substr(0, rest.find('?'));
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    if (const auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      out += userinfo.substr(0, colon + 1);
      out += kRedacted;
      rest = rest.substr(at);
    }
  }
  const auto q = rest.find('?');
  out += rest.substr(0, q);
  if (q == std::string_view::npos) return out;
  out += '?';
  std::string_view query = rest.substr(q + 1);
  bool first = true;
  while (true) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    const auto eq = item.find('=');
    if (eq != std::string_view::npos && percent_decoded(item.substr(0, eq)) == "password") {
      out += item.substr(0, eq + 1);
      out += kRedacted;
    } else {
      out += item;
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

std::string redact_keywords(std::string_view text) {
  // Token by token, keeping the text as written except the passwords' values. A string libpq
  // could not split is cut at the first password= (everything after it may be the password).
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t token = i;
    while (i < text.size() && is_space(text[i])) ++i;
    std::string key;
    while (i < text.size() && !is_space(text[i]) && text[i] != '=') key += text[i++];
    while (i < text.size() && is_space(text[i])) ++i;
    if (i == text.size() || text[i] != '=') {
      out += text.substr(token);
      return out;
    }
    ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t value_start = i;
    std::string value;
    const bool quoted = i < text.size() && text[i] == '\'';
    std::size_t value_end = 0;  // of a quoted value: where its closing quote is (or the end)
    if (quoted) {
      ++i;
      while (i < text.size() && text[i] != '\'') {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        value += text[i++];
      }
      value_end = i;
      if (i < text.size()) ++i;
    } else {
      while (i < text.size() && !is_space(text[i])) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        value += text[i++];
      }
    }
    out += text.substr(token, value_start - token);
    if (key == "password") {
      out += kRedacted;
      // A quoted value may run straight into the next keyword: keep them apart, or the next
      // keyword would read as part of the password when the text is redacted again.
      if (i < text.size() && !is_space(text[i])) out += ' ';
    } else if (is_postgres_url(value) && quoted) {
      // Only the inside of the quotes is the URL: its last query value must not take the
      // closing quote with it, or the next keyword would join the value when redacted again.
      out += '\'';
      out += redact_url(text.substr(value_start + 1, value_end - value_start - 1));
      out += text.substr(value_end, i - value_end);
    } else if (is_postgres_url(value)) {
      out += redact_url(text.substr(value_start, i - value_start));
    } else {
      out += text.substr(value_start, i - value_start);
    }
  }
  return out;
}

// Applies one of annals' own options (payload, synchronous, busy_timeout_ms, group_commit,
// vfs) to `options`; false when `key` is none of them.
bool apply_option(const std::string& quoted, const std::string& key, std::string_view value,
                  StoreOptions& options) {
  if (key == "payload") {
    try {
      options.payload_format = parse_payload_format(value);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(quoted + ": " + e.what());
    }
  } else if (key == "synchronous") {
    if (value == "full") {
      options.synchronous = Synchronous::full;
    } else if (value == "normal") {
      options.synchronous = Synchronous::normal;
    } else {
      throw InvalidArgument(quoted + ": synchronous '" + printable(value) +
                            "': expected full or normal");
    }
  } else if (key == "busy_timeout_ms") {
    long long ms = -1;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (ec != std::errc{} || end != value.data() + value.size() || ms < 0 || ms > 3'600'000) {
      throw InvalidArgument(quoted + ": busy_timeout_ms '" + printable(value) +
                            "': expected milliseconds from 0 to 3600000");
    }
    options.busy_timeout = std::chrono::milliseconds(ms);
  } else if (key == "group_commit") {
    if (value == "on") {
      options.group_commit = true;
    } else if (value == "off") {
      options.group_commit = false;
    } else {
      throw InvalidArgument(quoted + ": group_commit '" + printable(value) +
                            "': expected on or off");
    }
  } else if (key == "vfs") {
    if (value.empty()) throw InvalidArgument(quoted + ": vfs is empty: expected a VFS name");
    options.vfs = std::string(value);
  } else {
    return false;
  }
  return true;
}

bool is_postgres_option(std::string_view key) {
  return key == "payload" || key == "synchronous" || key == "busy_timeout_ms" ||
         key == "group_commit" || key == "vfs";
}

void refuse_vfs(const std::string& quoted, std::string_view key) {
  if (key == "vfs") {
    throw InvalidArgument(quoted +
                          ": vfs= names an SQLite VFS; a PostgreSQL store takes no vfs option");
  }
}

// Calls fn(key, value, item) for each key=value item of a URI's query (split at '&'); an item
// without '=' is an InvalidArgument naming it.
template <class Fn>
void for_each_query_item(std::string_view query, const std::string& quoted, Fn&& fn) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      throw InvalidArgument(quoted + ": option '" + printable(item) + "' has no '=value'");
    }
    fn(std::string(item.substr(0, eq)), item.substr(eq + 1), item);
  }
}

// Records that an option of annals was given; InvalidArgument the second time.
void claim_option(std::set<std::string, std::less<>>& seen, const std::string& quoted,
                  const std::string& key) {
  if (!seen.insert(key).second) {
    throw InvalidArgument(quoted + ": option '" + printable(key) + "' given twice");
  }
}

// A postgresql:// or postgres:// URI: annals' options leave its query, the rest stays for libpq.
ParsedUri parse_postgres_url(std::string_view uri, const StoreOptions& base,
                             const std::string& quoted) {
  ParsedUri out{"postgresql", {}, base};
  const auto q = uri.find('?');
  out.path = std::string(uri.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::set<std::string, std::less<>> seen;
  std::string kept;
  for_each_query_item(uri.substr(q + 1), quoted,
                      [&](const std::string& key, std::string_view value, std::string_view item) {
                        if (!is_postgres_option(key)) {
                          kept += kept.empty() ? "?" : "&";
                          kept += item;
                          return;
                        }
                        refuse_vfs(quoted, key);
                        claim_option(seen, quoted, key);
                        apply_option(quoted, key, value, out.options);
                      });
  out.path += kept;
  return out;
}

// A libpq keyword string: annals' keywords leave it, the rest is written back for libpq.
ParsedUri parse_postgres_keywords(std::string_view uri, const StoreOptions& base,
                                  const std::string& quoted) {
  ParsedUri out{"postgresql", {}, base};
  std::string error;
  const auto keywords = split_keywords(uri, &error);
  if (!keywords) throw InvalidArgument(quoted + ": not a libpq keyword string: " + error);
  std::set<std::string, std::less<>> seen;
  for (const Keyword& k : *keywords) {
    // libpq's keywords are words (letters, digits, '_'); anything else would make a path that
    // no longer reads as a keyword string (fuzz_store_uri: "payload=json paylo\xaa=json").
    const bool word = !k.key.empty() && std::all_of(k.key.begin(), k.key.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
    if (!word) {
      throw InvalidArgument(quoted + ": keyword '" + printable(k.key) +
                            "' is not a libpq keyword (letters, digits and '_')");
    }
    if (!is_postgres_option(k.key)) {
      if (!out.path.empty()) out.path += ' ';
      out.path += k.key + "=" + quote_keyword_value(k.value);
      continue;
    }
    refuse_vfs(quoted, k.key);
    claim_option(seen, quoted, k.key);
    apply_option(quoted, k.key, k.value, out.options);
  }
  return out;
}

ParsedUri parse_uri(std::string_view uri, const StoreOptions& base) {
  const std::string quoted = "store URI '" + printable(redact_store_uri(uri), 1024) + "'";
  if (is_postgres_url(uri)) return parse_postgres_url(uri, base, quoted);
  if (is_keyword_string(uri)) return parse_postgres_keywords(uri, base, quoted);
  const auto colon = uri.find(':');
  if (colon == std::string_view::npos) {
    throw InvalidArgument(quoted +
                          ": expected sqlite:<path>, memory:, postgresql://... or a libpq "
                          "keyword string (host=... dbname=...)");
  }
  ParsedUri out{std::string(uri.substr(0, colon)), {}, base};
  if (out.scheme == "postgresql" || out.scheme == "postgres") {
    throw InvalidArgument(quoted + ": expected " + out.scheme +
                          "://[user@][host][:port][/dbname][?param=value...] (a libpq URI)");
  }
  std::string_view rest = uri.substr(colon + 1);
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  out.path = std::string(rest);

  std::set<std::string, std::less<>> seen;
  for_each_query_item(query, quoted,
                      [&](const std::string& key, std::string_view value, std::string_view) {
                        claim_option(seen, quoted, key);
                        if (!apply_option(quoted, key, value, out.options)) {
                          throw InvalidArgument(quoted + ": unknown option '" + printable(key) +
                                                "' (expected payload, synchronous, "
                                                "busy_timeout_ms, group_commit or vfs)");
                        }
                      });
  return out;
}

}  // namespace

std::string redact_store_uri(std::string_view uri) {
  if (is_postgres_url(uri)) return redact_url(uri);
  if (is_keyword_string(uri)) return redact_keywords(uri);
  return std::string(uri);
}

std::shared_ptr<EventStore> open_event_store(std::string_view uri) {
  return open_sql_event_store(uri, StoreOptions{});
}

std::shared_ptr<EventStore> open_event_store(std::string_view uri, const StoreOptions& options) {
  return open_sql_event_store(uri, options);
}

StoreUri parse_store_uri(std::string_view uri, const StoreOptions& base) {
  ParsedUri parsed = parse_uri(uri, base);
  const std::string quoted = "store URI '" + printable(redact_store_uri(uri), 1024) + "'";
  if (parsed.scheme == "memory") {
    if (!parsed.path.empty()) {
      throw InvalidArgument(quoted + ": memory: takes no path");
    }
  } else if (parsed.scheme == "sqlite") {
    if (parsed.path.empty()) throw InvalidArgument(quoted + ": sqlite: needs a file path");
    if (parsed.path == ":memory:" || parsed.path.starts_with("file:")) {
      throw InvalidArgument(quoted +
                            ": expected a plain file path (use memory: for an "
                            "in-process store)");
    }
  } else if (parsed.scheme != "postgresql") {
    throw InvalidArgument(quoted + ": unknown scheme '" + printable(parsed.scheme) +
                          "' (expected sqlite, memory, postgresql or postgres)");
  }
  return StoreUri{std::move(parsed.scheme), std::move(parsed.path), std::move(parsed.options)};
}

std::string format_store_uri(const StoreUri& uri) {
  if (uri.scheme == "postgresql") {
    const bool url = is_postgres_url(uri.path);
    if (!url && !uri.path.empty() && !is_keyword_string(uri.path)) {
      throw InvalidArgument("format_store_uri: postgresql path '" +
                            printable(redact_store_uri(uri.path), 1024) +
                            "' is neither a postgresql:// URI nor a libpq keyword string");
    }
    if (!uri.options.vfs.empty()) {
      throw InvalidArgument("format_store_uri: vfs '" + printable(uri.options.vfs) +
                            "' on a postgresql store, which takes no vfs option");
    }
    const char* sep = url ? "&" : " ";
    std::string text = uri.path;
    if (url) {
      text += uri.path.find('?') == std::string::npos ? "?" : "&";
    } else if (!text.empty()) {
      text += " ";
    }
    text += "payload=";
    text += to_string(uri.options.payload_format);
    text += sep;
    text += uri.options.synchronous == Synchronous::full ? "synchronous=full" : "synchronous=normal";
    text += sep;
    text += "busy_timeout_ms=" + std::to_string(uri.options.busy_timeout.count());
    text += sep;
    text += uri.options.group_commit ? "group_commit=on" : "group_commit=off";
    return text;
  }
  std::string text = uri.scheme + ":" + uri.path;
  text += "?payload=";
  text += to_string(uri.options.payload_format);
  text += uri.options.synchronous == Synchronous::full ? "&synchronous=full" : "&synchronous=normal";
  text += "&busy_timeout_ms=" + std::to_string(uri.options.busy_timeout.count());
  text += uri.options.group_commit ? "&group_commit=on" : "&group_commit=off";
  if (!uri.options.vfs.empty()) {
    // parse_uri splits options at '&': a name holding one cannot be written as an option.
    if (uri.options.vfs.find('&') != std::string::npos) {
      throw InvalidArgument("format_store_uri: vfs '" + printable(uri.options.vfs) +
                            "' holds a '&', which a store URI cannot carry");
    }
    text += "&vfs=" + uri.options.vfs;
  }
  return text;
}

std::shared_ptr<SqlEventStore> open_sql_event_store(std::string_view uri,
                                                    const StoreOptions& options) {
  StoreUri parsed = parse_store_uri(uri, options);
  if (parsed.scheme == "postgresql") {
#ifdef ANNALS_HAVE_POSTGRESQL
    return detail::make_pg_event_store(parsed.path, parsed.options);
#else
    throw InvalidArgument("store URI '" + printable(redact_store_uri(uri), 1024) +
                          "': this build of annals has no PostgreSQL support (libpq was not "
                          "found when it was built; install libpq-dev and rebuild with "
                          "ANNALS_WITH_POSTGRESQL=ON)");
#endif
  }
  return detail::make_sqlite_event_store(parsed.scheme == "memory" ? "" : parsed.path,
                                         parsed.options);
}

}  // namespace annals
