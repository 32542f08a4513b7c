// The JSON Lines export format (docs/export-format.md). The only translation unit of the store
// that includes nlohmann/json: ordered_json keeps the keys in the documented order, so a line
// is a pure function of the stored event and export -> import -> export gives the same bytes.

#include "annals/store/export.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <span>
#include <vector>

#include "annals/events/printable.hpp"
#include "annals/store/hash_chain.hpp"
#include "store_internal.hpp"

namespace annals {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::size_t kExportPage = 512;  // events read per read_all() while exporting

// nlohmann::json writes, copies and compares values recursively: a payload nested 100,000 levels
// deep (a valid JSON payload; appends accept it) overflowed the stack when exported, and such a
// line when imported. A payload nested deeper than this is shown as null; an import line nested
// deeper than the deepest line an export writes is refused.
constexpr std::size_t kMaxPayloadDepth = 512;
constexpr std::size_t kMaxLineDepth = kMaxPayloadDepth + 1;

// The keys of a line and of its metadata object, in the order they are written.
constexpr const char* kKeys[] = {"position",       "stream_id",      "version",        "event_id",
                                 "type",           "schema_version", "payload_format", "payload",
                                 "payload_base64", "metadata",       "recorded_at",    "hash"};
constexpr const char* kMetadataKeys[] = {"tenant_id", "actor", "correlation_id", "causation_id",
                                         "occurred_at"};

// --- base64 (RFC 4648 standard alphabet, padded) through OpenSSL ----------------------------

std::string base64_encode(std::string_view bytes) {
  // EVP_EncodeBlock takes an int length; whole 3-byte groups per call encode exactly as one
  // call over everything would.
  constexpr std::size_t kChunk = 3 * 16384;
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::vector<unsigned char> buffer(kChunk / 3 * 4 + 1);
  for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, bytes.size() - at);
    const int written =
        EVP_EncodeBlock(buffer.data(), reinterpret_cast<const unsigned char*>(bytes.data() + at),
                        static_cast<int>(n));
    out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(written));
  }
  return out;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes canonical padded base64 only: what base64_encode writes. EVP_DecodeBlock alone would
// skip surrounding whitespace, ignore non-zero padding bits and count padding as zero bytes,
// so the text is checked here first and the padding subtracted after.
std::string base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    throw InvalidArgument("'payload_base64' is " + std::to_string(text.size()) +
                          " characters, not a multiple of 4: not padded base64");
  }
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  for (std::size_t i = 0; i < text.size() - padding; ++i) {
    if (base64_value(text[i]) < 0) {
      throw InvalidArgument("'payload_base64' has '" + std::string(1, text[i]) + "' at offset " +
                            std::to_string(i) + ": not in the standard base64 alphabet");
    }
  }
  if (padding > 0) {
    // The bits after the last whole byte must be zero, or two texts would decode alike.
    const int last = base64_value(text[text.size() - padding - 1]);
    if ((last & (padding == 2 ? 0x0f : 0x03)) != 0) {
      throw InvalidArgument("'payload_base64' is not canonical base64 (non-zero padding bits)");
    }
  }
  constexpr std::size_t kChunk = 4 * 16384;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::vector<unsigned char> buffer(kChunk / 4 * 3);
  for (std::size_t at = 0; at < text.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, text.size() - at);
    const int written =
        EVP_DecodeBlock(buffer.data(), reinterpret_cast<const unsigned char*>(text.data() + at),
                        static_cast<int>(n));
    if (written < 0) throw InvalidArgument("'payload_base64' is not valid base64");
    out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(written));
  }
  out.resize(out.size() - padding);
  return out;
}

// --- reading a line -----------------------------------------------------------------------

std::string describe(const Json& v) {
  std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

const Json& member(const Json& object, const char* key, const char* where = "") {
  auto it = object.find(key);
  if (it == object.end()) {
    throw InvalidArgument(std::string("'") + where + key + "' is missing");
  }
  return *it;
}

const std::string& text_member(const Json& object, const char* key, const char* where = "") {
  const Json& v = member(object, key, where);
  if (!v.is_string()) {
    throw InvalidArgument(std::string("'") + where + key + "' is " + describe(v) +
                          ": expected a string");
  }
  return v.get_ref<const std::string&>();
}

std::uint64_t unsigned_member(const Json& object, const char* key, std::uint64_t min,
                              std::uint64_t max) {
  const Json& v = member(object, key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() < min || v.get<std::uint64_t>() > max) {
    throw InvalidArgument(std::string("'") + key + "' is " + describe(v) +
                          ": expected an integer from " + std::to_string(min) + " to " +
                          std::to_string(max));
  }
  return v.get<std::uint64_t>();
}

Timestamp micros_member(const Json& object, const char* key, const char* where = "") {
  const Json& v = member(object, key, where);
  const bool fits =
      v.is_number_integer() &&
      (!v.is_number_unsigned() || v.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX));
  if (!fits) {
    throw InvalidArgument(std::string("'") + where + key + "' is " + describe(v) +
                          ": expected integer microseconds since the Unix epoch (64-bit)");
  }
  return from_micros(v.get<std::int64_t>());
}

void reject_unknown_keys(const Json& object, std::span<const char* const> known,
                         const char* where) {
  for (const auto& item : object.items()) {
    // Not a structured binding: clang 14 cannot capture one in the lambda.
    const std::string& key = item.key();
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; })) {
      throw InvalidArgument(std::string("unexpected key '") + where + printable(key) + "'");
    }
  }
}

// True if the JSON text nests arrays and objects more than `limit` levels deep. Brackets inside
// strings do not count; the text is not otherwise checked.
bool nested_deeper_than(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// Parses a line, refusing a repeated key in the line's object or in its metadata (a JSON parser
// would silently keep the last one). Keys inside "payload" are not the format's business.
Json parse_strict(std::string_view line) {
  std::vector<std::string> seen_top, seen_metadata;
  bool in_metadata = false;
  std::string last_top_key;
  auto check = [&](int depth, nlohmann::json::parse_event_t event, Json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) &&
        static_cast<std::size_t>(depth) >= kMaxLineDepth) {
      throw InvalidArgument("the line nests arrays and objects more than " +
                            std::to_string(kMaxLineDepth) + " levels deep");
    }
    if (event == E::object_start && depth == 1) {
      in_metadata = last_top_key == "metadata";
      seen_metadata.clear();
    } else if (event == E::key && (depth == 1 || (depth == 2 && in_metadata))) {
      std::vector<std::string>& seen = depth == 1 ? seen_top : seen_metadata;
      const std::string& key = parsed.get_ref<const std::string&>();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        throw InvalidArgument("key '" + std::string(depth == 2 ? "metadata." : "") +
                              printable(key) + "' appears twice");
      }
      seen.push_back(key);
      if (depth == 1) last_top_key = key;
    }
    return true;
  };
  try {
    return Json::parse(line, check);
  } catch (const Json::exception& e) {
    throw InvalidArgument(std::string("not a JSON document: ") + e.what());
  }
}

EventHash parse_hash(const std::string& text) {
  EventHash hash{};
  auto nibble = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bool ok = text.size() == hash.size() * 2;
  for (std::size_t i = 0; ok && i < hash.size(); ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    hash[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  if (!ok) {
    throw InvalidArgument("'hash' is \"" + printable(text) +
                          "\": expected 64 lowercase hex digits");
  }
  return hash;
}

// --- writing a line -----------------------------------------------------------------------

// The payload as a JSON value, or null when it cannot be shown as one.
Json payload_value(const RecordedEvent& event, const ExportOptions& options) {
  std::optional<std::string> text;
  if (event.payload_format == PayloadFormat::json) {
    text = event.payload;
  } else if (options.payload_json) {
    text = options.payload_json(event);
  }
  if (!text || nested_deeper_than(*text, kMaxPayloadDepth)) return nullptr;
  Json value = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? Json(nullptr) : value;
}

std::string export_line(const RecordedEvent& e, const ExportOptions& options) {
  Json line;
  line["position"] = e.position;
  line["stream_id"] = e.stream_id;
  line["version"] = e.version;
  line["event_id"] = to_string(e.event_id);
  line["type"] = e.type;
  line["schema_version"] = e.schema_version;
  line["payload_format"] = std::string(to_string(e.payload_format));
  line["payload"] = payload_value(e, options);
  line["payload_base64"] = base64_encode(e.payload);
  Json metadata;
  metadata["tenant_id"] = e.metadata.tenant_id;
  metadata["actor"] = e.metadata.actor;
  metadata["correlation_id"] = e.metadata.correlation_id;
  metadata["causation_id"] = e.metadata.causation_id;
  metadata["occurred_at"] = to_micros(e.metadata.occurred_at);
  line["metadata"] = std::move(metadata);
  line["recorded_at"] = to_micros(e.recorded_at);
  line["hash"] = to_hex(e.hash);
  try {
    std::string text = line.dump();
    text += '\n';
    return text;
  } catch (const Json::exception&) {
    // Only text that is not UTF-8 fails; replacing it would export an event that no longer
    // matches its hash, so refuse instead.
    throw SerializationError("export: the event at position " + std::to_string(e.position) +
                             " has a stream id, type or metadata field that is not UTF-8 text, "
                             "which a JSON line cannot carry exactly");
  }
}

// --- importing ----------------------------------------------------------------------------

struct LineRef {
  std::uint64_t line = 0;
  std::string prefix() const { return "import line " + std::to_string(line) + ": "; }
};

// Rejects what an append would reject (stream id, type, schema version, payload size and JSON),
// in the append's words.
void validate_like_append(RecordedEvent& e) {
  std::vector<StreamAppend> batch(1);
  batch.front().stream_id = e.stream_id;
  NewEvent& n = batch.front().events.emplace_back();
  n.type = e.type;
  n.schema_version = e.schema_version;
  n.payload_format = e.payload_format;
  n.payload = std::move(e.payload);
  try {
    detail::validate_batch(batch);
  } catch (...) {
    e.payload = std::move(n.payload);
    throw;
  }
  e.payload = std::move(n.payload);
}

void import_event(SqlSession& sql, RecordedEvent e, const LineRef& where,
                  std::uint64_t expected_position, const EventHash& previous,
                  Timestamp previous_recorded_at) {
  if (e.position != expected_position) {
    throw InvalidArgument(where.prefix() + "position " + std::to_string(e.position) +
                          ", expected " + std::to_string(expected_position) +
                          " (an import starts at position 1 and has no gaps)");
  }
  try {
    validate_like_append(e);
  } catch (const InvalidArgument& x) {
    throw InvalidArgument(where.prefix() + x.what());
  }
  const std::int64_t current =
      sql.query("SELECT coalesce(max(version), 0) FROM annals_events WHERE stream_id = $1",
                {e.stream_id})
          .front()
          .integer(0);
  if (e.version != static_cast<std::uint64_t>(current) + 1) {
    throw InvalidArgument(where.prefix() + "stream " + printable(e.stream_id, 1024) + " version " +
                          std::to_string(e.version) + ", expected " + std::to_string(current + 1) +
                          " (versions start at 1 and have no gaps)");
  }
  const std::string event_id = to_string(e.event_id);
  const auto clash =
      sql.query("SELECT position FROM annals_events WHERE event_id = $1", {event_id});
  if (!clash.empty()) {
    throw InvalidArgument(where.prefix() + "event id " + event_id +
                          " is already the event at position " +
                          std::to_string(clash.front().integer(0)));
  }
  if (e.recorded_at < previous_recorded_at) {
    throw InvalidArgument(
        where.prefix() + "recorded_at " + std::to_string(to_micros(e.recorded_at)) +
        " is before the previous event's " + std::to_string(to_micros(previous_recorded_at)) +
        " (a log is recorded in time order)");
  }
  const EventHash computed = chain_hash(previous, e);
  if (computed != e.hash) {
    throw IntegrityError(where.prefix() + "the event at position " + std::to_string(e.position) +
                             " (stream " + printable(e.stream_id, 1024) + ", version " +
                             std::to_string(e.version) +
                             ") does not continue the hash chain: " + "the line says " +
                             to_hex(e.hash) + ", the chain gives " + to_hex(computed),
                         e.position);
  }
  const bool json = e.payload_format == PayloadFormat::json;
  std::vector<SqlValue> row;
  row.reserve(15);
  row.emplace_back(static_cast<std::int64_t>(e.position));
  row.emplace_back(std::move(e.stream_id));
  row.emplace_back(static_cast<std::int64_t>(e.version));
  row.emplace_back(event_id);
  row.emplace_back(std::move(e.type));
  row.emplace_back(static_cast<std::int64_t>(e.schema_version));
  row.emplace_back(std::string(json ? "json" : "binary"));
  // On SQLite TEXT for json so json_extract() reads it, as an append stores it; BLOB for binary.
  // PostgreSQL's payload column is BYTEA for both.
  if (json && sql.dialect() == "sqlite") {
    row.emplace_back(std::move(e.payload));
  } else {
    row.emplace_back(SqlBlob{std::move(e.payload)});
  }
  row.emplace_back(std::move(e.metadata.tenant_id));
  row.emplace_back(std::move(e.metadata.actor));
  row.emplace_back(std::move(e.metadata.correlation_id));
  row.emplace_back(std::move(e.metadata.causation_id));
  row.emplace_back(to_micros(e.metadata.occurred_at));
  row.emplace_back(to_micros(e.recorded_at));
  row.emplace_back(SqlBlob{std::string(e.hash.begin(), e.hash.end())});
  sql.execute(std::string("INSERT INTO annals_events (") + detail::kEventColumns +
                  ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
              row);
}

}  // namespace

void write_export_line(std::ostream& out, const RecordedEvent& event,
                       const ExportOptions& options) {
  const std::string line = export_line(event, options);
  try {
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  } catch (const std::ios_base::failure& e) {
    throw StoreError(std::string("export: writing the event at position ") +
                     std::to_string(event.position) + " failed: " + e.what());
  }
  if (!out) {
    throw StoreError("export: writing the event at position " + std::to_string(event.position) +
                     " failed (disk full or closed output?)");
  }
}

RecordedEvent parse_export_line(std::string_view line) {
  const Json json = parse_strict(line);
  if (!json.is_object()) {
    throw InvalidArgument("a line must be a JSON object, not " + describe(json));
  }
  reject_unknown_keys(json, kKeys, "");
  RecordedEvent e;
  e.position = unsigned_member(json, "position", 1, INT64_MAX);
  e.stream_id = text_member(json, "stream_id");
  e.version = unsigned_member(json, "version", 1, INT64_MAX);
  const std::string& event_id = text_member(json, "event_id");
  e.event_id = parse_uuid(event_id);
  if (to_string(e.event_id) != event_id) {
    throw InvalidArgument("'event_id' is \"" + printable(event_id) +
                          "\": expected the canonical lowercase form of a UUID");
  }
  e.type = text_member(json, "type");
  e.schema_version =
      static_cast<std::uint32_t>(unsigned_member(json, "schema_version", 1, UINT32_MAX));
  e.payload_format = parse_payload_format(text_member(json, "payload_format"));
  (void)member(json, "payload");  // a rendering for readers; the bytes are payload_base64
  e.payload = base64_decode(text_member(json, "payload_base64"));
  const Json& metadata = member(json, "metadata");
  if (!metadata.is_object()) {
    throw InvalidArgument("'metadata' is " + describe(metadata) + ": expected an object");
  }
  reject_unknown_keys(metadata, kMetadataKeys, "metadata.");
  e.metadata.tenant_id = text_member(metadata, "tenant_id", "metadata.");
  e.metadata.actor = text_member(metadata, "actor", "metadata.");
  e.metadata.correlation_id = text_member(metadata, "correlation_id", "metadata.");
  e.metadata.causation_id = text_member(metadata, "causation_id", "metadata.");
  e.metadata.occurred_at = micros_member(metadata, "occurred_at", "metadata.");
  e.recorded_at = micros_member(json, "recorded_at");
  e.hash = parse_hash(text_member(json, "hash"));
  return e;
}

ExportResult export_log(const EventStore& store, std::ostream& out, const ExportOptions& options) {
  detail::validate_from(options.from_position, "from_position", "export");
  // Stop at the head as it was when the export began, so a busy log still ends.
  const std::uint64_t head = store.head_position();
  ExportResult result;
  std::uint64_t next = options.from_position;
  while (next <= head) {
    const std::size_t count =
        static_cast<std::size_t>(std::min<std::uint64_t>(kExportPage, head - next + 1));
    const std::vector<RecordedEvent> page = store.read_all(next, count);
    if (page.empty()) break;
    for (const RecordedEvent& e : page) {
      write_export_line(out, e, options);
      ++result.events;
      result.last_position = e.position;
      result.last_hash = e.hash;
    }
    next = page.back().position + 1;
  }
  try {
    out.flush();
  } catch (const std::ios_base::failure& e) {
    throw StoreError(std::string("export: flushing the output failed: ") + e.what());
  }
  if (!out) throw StoreError("export: flushing the output failed (disk full or closed output?)");
  return result;
}

ImportResult import_log(SqlEventStore& store, std::istream& in) {
  ImportResult result;
  store.write_transaction([&](SqlSession& sql) {
    const std::uint64_t head = head_position(sql);
    if (head != 0) {
      throw InvalidArgument("import: the store is not empty (head position " +
                            std::to_string(head) + "); import only into an empty store");
    }
    ImportResult r;
    Timestamp previous_recorded_at = from_micros(INT64_MIN);
    LineRef where;
    std::string line;
    try {
      while (std::getline(in, line)) {
        ++where.line;
        if (in.eof()) {
          throw InvalidArgument(where.prefix() +
                                "the last line does not end with a newline: the input was cut "
                                "short");
        }
        RecordedEvent e;
        try {
          e = parse_export_line(line);
        } catch (const InvalidArgument& x) {
          throw InvalidArgument(where.prefix() + x.what());
        }
        const EventHash hash = e.hash;
        const Timestamp recorded_at = e.recorded_at;
        import_event(sql, std::move(e), where, r.head_position + 1, r.head_hash,
                     previous_recorded_at);
        ++r.events;
        ++r.head_position;
        r.head_hash = hash;
        previous_recorded_at = recorded_at;
      }
    } catch (const std::ios_base::failure& e) {
      throw StoreError("import: reading line " + std::to_string(where.line + 1) +
                       " failed: " + e.what());
    }
    if (in.bad()) {
      throw StoreError("import: reading line " + std::to_string(where.line + 1) + " failed");
    }
    result = r;
  });
  return result;
}

}  // namespace annals
