#include "annals/store/event_store.hpp"

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

ParsedUri parse_uri(std::string_view uri, const StoreOptions& base) {
  const std::string quoted = "store URI '" + printable(uri, 1024) + "'";
  const auto colon = uri.find(':');
  if (colon == std::string_view::npos) {
    throw InvalidArgument(quoted + ": expected sqlite:<path> or memory:");
  }
  ParsedUri out{std::string(uri.substr(0, colon)), {}, base};
  std::string_view rest = uri.substr(colon + 1);
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  out.path = std::string(rest);

  std::set<std::string, std::less<>> seen;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      throw InvalidArgument(quoted + ": option '" + printable(item) + "' has no '=value'");
    }
    const std::string key(item.substr(0, eq));
    const std::string_view value = item.substr(eq + 1);
    if (!seen.insert(key).second)
      throw InvalidArgument(quoted + ": option '" + printable(key) + "' given twice");
    if (key == "payload") {
      try {
        out.options.payload_format = parse_payload_format(value);
      } catch (const InvalidArgument& e) {
        throw InvalidArgument(quoted + ": " + e.what());
      }
    } else if (key == "synchronous") {
      if (value == "full") {
        out.options.synchronous = Synchronous::full;
      } else if (value == "normal") {
        out.options.synchronous = Synchronous::normal;
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
      out.options.busy_timeout = std::chrono::milliseconds(ms);
    } else if (key == "group_commit") {
      if (value == "on") {
        out.options.group_commit = true;
      } else if (value == "off") {
        out.options.group_commit = false;
      } else {
        throw InvalidArgument(quoted + ": group_commit '" + printable(value) +
                              "': expected on or off");
      }
    } else if (key == "vfs") {
      if (value.empty()) throw InvalidArgument(quoted + ": vfs is empty: expected a VFS name");
      out.options.vfs = std::string(value);
    } else {
      throw InvalidArgument(
          quoted + ": unknown option '" + printable(key) +
          "' (expected payload, synchronous, busy_timeout_ms, group_commit or vfs)");
    }
  }
  return out;
}

}  // namespace

std::shared_ptr<EventStore> open_event_store(std::string_view uri) {
  return open_sql_event_store(uri, StoreOptions{});
}

std::shared_ptr<EventStore> open_event_store(std::string_view uri, const StoreOptions& options) {
  return open_sql_event_store(uri, options);
}

StoreUri parse_store_uri(std::string_view uri, const StoreOptions& base) {
  ParsedUri parsed = parse_uri(uri, base);
  const std::string quoted = "store URI '" + printable(uri, 1024) + "'";
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
  } else {
    throw InvalidArgument(quoted + ": unknown scheme '" + printable(parsed.scheme) +
                          "' (expected sqlite or memory)");
  }
  return StoreUri{std::move(parsed.scheme), std::move(parsed.path), std::move(parsed.options)};
}

std::string format_store_uri(const StoreUri& uri) {
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
  return detail::make_sqlite_event_store(parsed.scheme == "memory" ? "" : parsed.path,
                                         parsed.options);
}

}  // namespace annals
