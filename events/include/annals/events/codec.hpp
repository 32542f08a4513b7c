#pragma once

// The typed-event codec: typed events <-> payload bytes, and the registry that reads old
// schema versions through upcasters.
//
//   std::string bytes = annals::encode_payload(RunStopped{"42"}, annals::PayloadFormat::json);
//   // bytes == R"({"run_id":"42",...})"
//   annals::EventTypeRegistry registry;
//   registry.add_upcaster<RunCreatedV1, RunCreated>([](RunCreatedV1 v1) { return RunCreated{...};
//   }); RunCreated e = registry.decode<RunCreated>(recorded);   // v1 records come back as v2
//
// JSON payloads are one object with a member per field (json_extract(payload, '$.run_id')
// works on them), in cereal's JSON shape, written and read in memory by annals' own archives
// (json_archive.hpp); binary payloads are cereal's portable binary format, read by annals' own
// BinaryInputArchive (binary_archive.hpp), which bounds every length by the bytes left.
// Timestamps are encoded as integer microseconds since the Unix epoch in both.
//
// Thread-safety: the free functions are thread-safe. An EventTypeRegistry may be read
// from many threads at once once it is built; building it is not synchronized.

#include <any>
#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "annals/events/binary_archive.hpp"
#include "annals/events/error.hpp"
#include "annals/events/event.hpp"
#include "annals/events/json_archive.hpp"

namespace cereal {

// Timestamps serialize as integer microseconds since the epoch, in every archive.
template <class Archive>
std::int64_t save_minimal(const Archive&, const annals::Timestamp& t) {
  return annals::to_micros(t);
}
template <class Archive>
void load_minimal(const Archive&, annals::Timestamp& t, const std::int64_t& micros) {
  t = annals::from_micros(micros);
}

}  // namespace cereal

namespace annals {

namespace detail {
// Throws SerializationError naming the record: its type, schema version, stream and position.
[[noreturn]] void throw_decode_error(const RecordedEvent& record, std::string_view what);
// Throws the SerializationError for a value the JSON format refuses (JsonRefusal).
[[noreturn]] void throw_json_refusal(std::string_view type, const JsonRefusal& refusal);

}  // namespace detail

// Encodes a typed event's fields. Throws SerializationError if cereal fails or, for JSON, if
// a string is not UTF-8 or holds a NUL character, or a number is NaN or infinite.
template <TypedEvent E>
[[nodiscard]] std::string encode_payload(const E& event, PayloadFormat format) {
  try {
    if (format == PayloadFormat::json) {
      JsonOutputArchive archive;
      // Serialize the members straight into the root object: no "value0" wrapper.
      const_cast<E&>(event).serialize(archive);
      return std::move(archive).finish();
    }
    std::ostringstream out;
    {
      cereal::PortableBinaryOutputArchive archive(out);
      const_cast<E&>(event).serialize(archive);
    }
    return std::move(out).str();
  } catch (const Error&) {
    throw;
  } catch (const JsonRefusal& refusal) {
    detail::throw_json_refusal(E::kType, refusal);
  } catch (const std::exception& e) {
    throw SerializationError("encode " + std::string(E::kType) + ": " + e.what());
  }
}

// Decodes payload bytes into E, exactly as stored (no upcasting). Throws SerializationError
// naming the type and the cause when the bytes do not decode; `record` only supplies context.
template <TypedEvent E>
[[nodiscard]] E decode_payload(std::string_view payload, PayloadFormat format,
                               const RecordedEvent& context) {
  E event{};
  try {
    if (format == PayloadFormat::json) {
      JsonInputArchive archive(payload);
      event.serialize(archive);
    } else {
      BinaryInputArchive archive(payload);  // lengths bounded by the bytes left
      event.serialize(archive);
      if (archive.remaining() != 0) {
        detail::throw_decode_error(context, std::to_string(archive.remaining()) +
                                                " trailing bytes after the last field");
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    detail::throw_decode_error(context, e.what());
  }
  return event;
}

// Maps (type, schema version) to a way of reading it as the type's current struct.
class EventTypeRegistry {
 public:
  // Registers E as a known event type at E::kSchemaVersion.
  template <TypedEvent E>
  EventTypeRegistry& add() {
    entries_[Key{std::string(E::kType), E::kSchemaVersion}].decode = &decode_any<E>;
    return *this;
  }

  // Registers Old (an older struct of the same type name) and how to turn it into New, the
  // next schema version. Chains compose: v1 -> v2 -> v3 are each registered once.
  template <TypedEvent Old, TypedEvent New, class Fn>
  requires std::is_invocable_r_v<New, Fn, Old> EventTypeRegistry& add_upcaster(Fn fn) {
    static_assert(Old::kSchemaVersion < New::kSchemaVersion, "upcasters go from old to new");
    if (std::string_view(Old::kType) != std::string_view(New::kType)) {
      throw InvalidArgument("upcaster from " + std::string(Old::kType) + " to " +
                            std::string(New::kType) + ": both must have the same kType");
    }
    add<New>();
    Entry& entry = entries_[Key{std::string(Old::kType), Old::kSchemaVersion}];
    entry.decode = &decode_any<Old>;
    entry.next_version = New::kSchemaVersion;
    entry.upcast = [fn = std::move(fn)](std::any old) -> std::any {
      return std::any(New(std::invoke(fn, std::any_cast<Old&&>(std::move(old)))));
    };
    return *this;
  }

  // True if (type, schema_version) can be read.
  [[nodiscard]] bool contains(std::string_view type, std::uint32_t schema_version) const {
    return entries_.contains(Key{std::string(type), schema_version});
  }

  // Reads a record as E, upcasting older schema versions. Throws SerializationError when the
  // record is of another type, of a version with no upcaster, of a version newer than E, or
  // when its payload does not decode.
  template <TypedEvent E>
  [[nodiscard]] E decode(const RecordedEvent& record) const {
    if (record.type != std::string_view(E::kType)) {
      detail::throw_decode_error(record, "expected an event of type " + std::string(E::kType));
    }
    if (record.schema_version == E::kSchemaVersion) {
      return decode_payload<E>(record.payload, record.payload_format, record);
    }
    if (record.schema_version > E::kSchemaVersion) {
      detail::throw_decode_error(
          record, "schema version is newer than this build's " + std::to_string(E::kSchemaVersion));
    }
    std::uint32_t version = record.schema_version;
    const Entry* entry = find(record.type, version);
    if (entry == nullptr || !entry->upcast) {
      detail::throw_decode_error(record, "no upcaster registered from this schema version");
    }
    std::any value = entry->decode(record);
    while (version != E::kSchemaVersion) {
      entry = find(record.type, version);
      if (entry == nullptr || !entry->upcast) {
        detail::throw_decode_error(
            record, "no upcaster registered from schema version " + std::to_string(version));
      }
      try {
        value = entry->upcast(std::move(value));
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        detail::throw_decode_error(record, "the upcaster from schema version " +
                                               std::to_string(version) + " failed: " + e.what());
      }
      version = entry->next_version;
    }
    if (E* event = std::any_cast<E>(&value)) return std::move(*event);
    detail::throw_decode_error(record,
                               "the upcasters do not end in the requested struct (same "
                               "kType and version, different C++ type)");
  }

  // Reads a record as whichever alternative of Variant has its type name. Throws
  // SerializationError naming type, stream and position for an unknown type.
  template <class Variant>
  [[nodiscard]] Variant decode_variant(const RecordedEvent& record) const {
    std::optional<Variant> out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((std::string_view(std::variant_alternative_t<I, Variant>::kType) == record.type &&
              (out.emplace(std::in_place_index<I>,
                           decode<std::variant_alternative_t<I, Variant>>(record)),
               true)) ||
             ...);
    }
    (std::make_index_sequence<std::variant_size_v<Variant>>{});
    if (!out) detail::throw_decode_error(record, "unknown event type");
    return std::move(*out);
  }

 private:
  using Key = std::pair<std::string, std::uint32_t>;
  struct Entry {
    std::any (*decode)(const RecordedEvent&) = nullptr;
    std::function<std::any(std::any)> upcast;  // empty for a current version
    std::uint32_t next_version = 0;
  };

  template <TypedEvent E>
  static std::any decode_any(const RecordedEvent& record) {
    return std::any(decode_payload<E>(record.payload, record.payload_format, record));
  }

  const Entry* find(const std::string& type, std::uint32_t version) const {
    auto it = entries_.find(Key{type, version});
    return it == entries_.end() ? nullptr : &it->second;
  }

  std::map<Key, Entry> entries_;
};

}  // namespace annals
