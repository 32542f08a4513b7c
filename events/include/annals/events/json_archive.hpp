#pragma once

// annals' own cereal JSON archives: the same JSON shape as cereal's JSONOutputArchive and
// JSONInputArchive (members named by NVPs, unnamed ones "value0", "value1"...; containers
// with a size tag as arrays; long long, unsigned long long and long double as strings), read
// and written in memory with RapidJSON instead of through iostreams.
//
//   annals::JsonOutputArchive out;
//   event.serialize(out);                       // members straight into the root object
//   std::string text = std::move(out).finish();  // {"run_id":"r-1",...}
//   annals::JsonInputArchive in(text);
//   decoded.serialize(in);
//
// JsonInputArchive parses the whole text up front (RapidJSON, iteratively, so nesting depth
// cannot overflow the stack) and throws cereal::Exception for text that is not one JSON object
// or array, for a member it cannot find and for a value of the wrong type or range. Unlike
// cereal's reader it refuses NaN/Infinity tokens, trailing bytes after the root value and
// integers out of the target type's range, and keeps NUL characters in strings.
//
// JsonOutputArchive throws JsonRefusal for what JSON cannot carry faithfully: text that is not
// UTF-8, NUL characters in strings and NaN or infinite numbers.
//
// Thread-safety: an archive is used by one thread; distinct archives are independent.

// cereal's JSON header first: it configures RapidJSON (assertions throw, write and parse
// defaults), and every translation unit must see RapidJSON configured the same way.
#include <cereal/archives/json.hpp>
// clang-format off
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
// clang-format on

#include <cereal/cereal.hpp>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annals/events/printable.hpp"

namespace annals {

// Thrown by JsonOutputArchive for a value JSON cannot hold faithfully; what() says which.
class JsonRefusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;
// Text for a long double exactly as cereal's JSON archive writes it.
[[nodiscard]] std::string long_double_text(long double value);
[[nodiscard]] long double parse_long_double(const std::string& text);
[[nodiscard]] long long parse_long_long(std::string_view text);
[[nodiscard]] unsigned long long parse_unsigned_long_long(std::string_view text);
[[noreturn]] void throw_json_parse_error(int code, std::size_t offset);
[[noreturn]] void throw_json_type_error(const char* name, const char* expected);
}  // namespace detail

class JsonOutputArchive : public cereal::OutputArchive<JsonOutputArchive>,
                          public cereal::traits::TextArchive {
  enum class Node : std::uint8_t { start_object, in_object, start_array, in_array };
  using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                   rapidjson::CrtAllocator, rapidjson::kWriteNoFlags>;

 public:
  JsonOutputArchive() : cereal::OutputArchive<JsonOutputArchive>(this), writer_(buffer_) {
    nodes_.reserve(8);
    nodes_.push_back({Node::start_object, 0});
  }

  // Closes the root and returns the text: {} when nothing was written.
  [[nodiscard]] std::string finish() && {
    while (!nodes_.empty()) finishNode();
    return std::string(buffer_.GetString(), buffer_.GetSize());
  }

  void saveBinaryValue(const void* data, std::size_t size, const char* name = nullptr) {
    setNextName(name);
    writeName();
    saveValue(cereal::base64::encode(static_cast<const unsigned char*>(data), size));
  }

  // The interface cereal's prologue/epilogue functions below drive, as in cereal's archive.
  void startNode() {
    writeName();
    nodes_.push_back({Node::start_object, 0});
  }
  void finishNode() {
    switch (nodes_.back().type) {
      case Node::start_array:
        writer_.StartArray();
        [[fallthrough]];
      case Node::in_array:
        writer_.EndArray();
        break;
      case Node::start_object:
        writer_.StartObject();
        [[fallthrough]];
      case Node::in_object:
        writer_.EndObject();
        break;
    }
    nodes_.pop_back();
  }
  void setNextName(const char* name) noexcept { next_name_ = name; }
  void makeArray() noexcept { nodes_.back().type = Node::start_array; }

  void writeName() {
    Level& level = nodes_.back();
    if (level.type == Node::start_array) {
      writer_.StartArray();
      level.type = Node::in_array;
      return;
    }
    if (level.type == Node::in_array) return;
    if (level.type == Node::start_object) {
      writer_.StartObject();
      level.type = Node::in_object;
    }
    if (next_name_ == nullptr) {
      write_string("value" + std::to_string(level.counter++));
    } else {
      write_string(std::string_view(next_name_));
      next_name_ = nullptr;
    }
  }

  void saveValue(bool b) { writer_.Bool(b); }
  void saveValue(std::nullptr_t) { writer_.Null(); }
  void saveValue(const std::string& s) { write_string(s); }
  void saveValue(const char* s) { write_string(std::string_view(s)); }
  template <class T>
  requires std::is_arithmetic_v<T> && (!std::is_same_v<T, bool>)
  void saveValue(T t) {
    if constexpr (std::is_floating_point_v<T> && sizeof(T) <= sizeof(double)) {
      if (!writer_.Double(static_cast<double>(t))) throw JsonRefusal("a number is NaN or infinite");
    } else if constexpr (std::is_floating_point_v<T>) {
      write_string(detail::long_double_text(t));  // as cereal: long double as a string
    } else if constexpr (std::is_same_v<T, long long> || std::is_same_v<T, unsigned long long>) {
      // cereal writes long long as a string where it is not std::int64_t (LP64: long is).
      if constexpr (std::is_same_v<T, std::int64_t>) {
        writer_.Int64(t);
      } else if constexpr (std::is_same_v<T, std::uint64_t>) {
        writer_.Uint64(t);
      } else {
        write_string(std::to_string(t));
      }
    } else if constexpr (std::is_signed_v<T>) {
      if constexpr (sizeof(T) <= sizeof(int)) {
        writer_.Int(static_cast<int>(t));
      } else {
        writer_.Int64(static_cast<std::int64_t>(t));
      }
    } else if constexpr (sizeof(T) <= sizeof(unsigned)) {
      writer_.Uint(static_cast<unsigned>(t));
    } else {
      writer_.Uint64(static_cast<std::uint64_t>(t));
    }
  }

 private:
  struct Level {
    Node type;
    std::uint32_t counter;
  };

  void write_string(std::string_view s) {
    if (!detail::valid_utf8(s)) {
      throw JsonRefusal("a string is not valid UTF-8: '" + printable(s) + "'");
    }
    if (std::memchr(s.data(), '\0', s.size()) != nullptr) {
      throw JsonRefusal("a string holds a NUL character: '" + printable(s) + "'");
    }
    writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  }

  rapidjson::StringBuffer buffer_;
  Writer writer_;
  const char* next_name_ = nullptr;
  std::vector<Level> nodes_;
};

class JsonInputArchive : public cereal::InputArchive<JsonInputArchive>,
                         public cereal::traits::TextArchive {
  using Allocator = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
  using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator, Allocator>;
  using Value = rapidjson::GenericValue<rapidjson::UTF8<>, Allocator>;

 public:
  // Parses a copy of `text` (strings are decoded in place in the copy). Throws cereal::Exception when it
  // is not exactly one JSON object or array, optionally surrounded by whitespace.
  explicit JsonInputArchive(std::string_view text);
  JsonInputArchive(const JsonInputArchive&) = delete;
  JsonInputArchive& operator=(const JsonInputArchive&) = delete;
  ~JsonInputArchive();

  void loadBinaryValue(void* data, std::size_t size, const char* name = nullptr) {
    next_name_ = name;
    std::string encoded;
    loadValue(encoded);
    const std::string decoded = cereal::base64::decode(encoded);
    if (decoded.size() != size) {
      throw cereal::Exception("decoded binary data size does not match the specified size");
    }
    std::memcpy(data, decoded.data(), decoded.size());
  }

  void startNode() {
    const Value& v = next_value();
    if (v.IsArray()) {
      levels_.push_back({v.Begin(), {}, v.Size(), 0, true});
    } else if (v.IsObject()) {
      levels_.push_back({nullptr, v.MemberBegin(), v.MemberCount(), 0, false});
    } else {
      detail::throw_json_type_error(last_name_, "an object or an array");
    }
  }
  void finishNode() {
    levels_.pop_back();
    ++levels_.back().index;
  }
  // The name of the next member, or nullptr at the end of an object or inside an array.
  [[nodiscard]] const char* getNodeName() const {
    const Level& level = levels_.back();
    if (level.is_array || level.index >= level.size) return nullptr;
    return level.members[level.index].name.GetString();
  }
  void setNextName(const char* name) noexcept { next_name_ = name; }

  void loadValue(bool& b) {
    const Value& v = next_value();
    if (!v.IsBool()) detail::throw_json_type_error(last_name_, "true or false");
    b = v.GetBool();
    ++levels_.back().index;
  }
  void loadValue(std::nullptr_t&) {
    if (!next_value().IsNull()) detail::throw_json_type_error(last_name_, "null");
    ++levels_.back().index;
  }
  void loadValue(std::string& s) {
    const Value& v = next_value();
    if (!v.IsString()) detail::throw_json_type_error(last_name_, "a string");
    s.assign(v.GetString(), v.GetStringLength());
    ++levels_.back().index;
  }
  template <class T>
  requires std::is_arithmetic_v<T> && (!std::is_same_v<T, bool>)
  void loadValue(T& t) {
    if constexpr (std::is_floating_point_v<T> && sizeof(T) <= sizeof(double)) {
      const Value& v = next_value();
      if (!v.IsNumber()) detail::throw_json_type_error(last_name_, "a number");
      t = static_cast<T>(v.GetDouble());
      ++levels_.back().index;
    } else if constexpr (std::is_floating_point_v<T>) {
      std::string text;
      loadValue(text);
      t = detail::parse_long_double(text);
    } else if constexpr ((std::is_same_v<T, long long> || std::is_same_v<T, unsigned long long>)&&(
                             !std::is_same_v<T, std::int64_t> && !std::is_same_v<T, std::uint64_t>)) {
      std::string text;
      loadValue(text);
      if constexpr (std::is_signed_v<T>) {
        t = detail::parse_long_long(text);
      } else {
        t = detail::parse_unsigned_long_long(text);
      }
    } else if constexpr (std::is_signed_v<T>) {
      const Value& v = next_value();
      if constexpr (sizeof(T) <= sizeof(int)) {
        if (!v.IsInt() || v.GetInt() < std::numeric_limits<T>::min() ||
            v.GetInt() > std::numeric_limits<T>::max()) {
          detail::throw_json_type_error(last_name_, "an integer in the field's range");
        }
        t = static_cast<T>(v.GetInt());
      } else {
        if (!v.IsInt64()) detail::throw_json_type_error(last_name_, "a 64-bit integer");
        t = static_cast<T>(v.GetInt64());
      }
      ++levels_.back().index;
    } else {
      const Value& v = next_value();
      if constexpr (sizeof(T) <= sizeof(unsigned)) {
        if (!v.IsUint() || v.GetUint() > std::numeric_limits<T>::max()) {
          detail::throw_json_type_error(last_name_, "a non-negative integer in the field's range");
        }
        t = static_cast<T>(v.GetUint());
      } else {
        if (!v.IsUint64()) {
          detail::throw_json_type_error(last_name_, "a non-negative 64-bit integer");
        }
        t = static_cast<T>(v.GetUint64());
      }
      ++levels_.back().index;
    }
  }

  // The number of elements of the array being read (a size tag).
  void loadSize(cereal::size_type& size) const {
    const Level& level = levels_.back();
    if (!level.is_array) detail::throw_json_type_error(last_name_, "an array");
    size = level.size;
  }

 private:
  struct Level {
    const Value* values;                    // when is_array
    Value::ConstMemberIterator members;     // when an object
    rapidjson::SizeType size;
    rapidjson::SizeType index;
    bool is_array;
  };

  // The value the next load reads: the member named by the pending NVP (the next one in
  // order when it has that name, else found by name, as cereal does), or the next in order.
  const Value& next_value() {
    const char* name = next_name_;
    next_name_ = nullptr;
    last_name_ = name;
    Level& level = levels_.back();
    if (name != nullptr) {
      if (level.is_array) detail::throw_json_type_error(name, "a member of an object, not an array element");
      const std::size_t length = std::strlen(name);
      const auto named = [&](rapidjson::SizeType i) {
        const Value& key = level.members[i].name;
        return key.GetStringLength() == length && std::memcmp(key.GetString(), name, length) == 0;
      };
      if (level.index >= level.size || !named(level.index)) {
        rapidjson::SizeType i = 0;
        while (i < level.size && !named(i)) ++i;
        if (i == level.size) throw cereal::Exception("no member \"" + std::string(name) + "\"");
        level.index = i;
      }
      return level.members[level.index].value;
    }
    if (level.index >= level.size) throw cereal::Exception("no more values to read");
    return level.is_array ? level.values[level.index] : level.members[level.index].value;
  }

  static constexpr std::size_t kPoolBytes = 4096;
  static constexpr std::size_t kStackBytes = 1024;
  alignas(std::max_align_t) char pool_buffer_[kPoolBytes];
  alignas(std::max_align_t) char stack_buffer_[kStackBytes];
  Allocator pool_;
  Allocator stack_;
  Document document_;
  std::vector<Level> levels_;
  const char* next_name_ = nullptr;
  const char* last_name_ = nullptr;
};

// cereal's JSON prologue/epilogue rules, for annals' archives: NVPs and size tags set names
// and array-ness; arithmetic values and strings write their name; every other type is a node.
template <class T>
void prologue(JsonOutputArchive&, const cereal::NameValuePair<T>&) {}
template <class T>
void prologue(JsonInputArchive&, const cereal::NameValuePair<T>&) {}
template <class T>
void epilogue(JsonOutputArchive&, const cereal::NameValuePair<T>&) {}
template <class T>
void epilogue(JsonInputArchive&, const cereal::NameValuePair<T>&) {}
template <class T>
void prologue(JsonOutputArchive&, const cereal::DeferredData<T>&) {}
template <class T>
void prologue(JsonInputArchive&, const cereal::DeferredData<T>&) {}
template <class T>
void epilogue(JsonOutputArchive&, const cereal::DeferredData<T>&) {}
template <class T>
void epilogue(JsonInputArchive&, const cereal::DeferredData<T>&) {}
template <class T>
void prologue(JsonOutputArchive& ar, const cereal::SizeTag<T>&) {
  ar.makeArray();
}
template <class T>
void prologue(JsonInputArchive&, const cereal::SizeTag<T>&) {}
template <class T>
void epilogue(JsonOutputArchive&, const cereal::SizeTag<T>&) {}
template <class T>
void epilogue(JsonInputArchive&, const cereal::SizeTag<T>&) {}

template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_output_serialization, JsonOutputArchive>::value,
              !cereal::traits::has_minimal_output_serialization<T, JsonOutputArchive>::value> =
              cereal::traits::sfinae>
void prologue(JsonOutputArchive& ar, const T&) {
  ar.startNode();
}
template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_input_serialization, JsonInputArchive>::value,
              !cereal::traits::has_minimal_input_serialization<T, JsonInputArchive>::value> =
              cereal::traits::sfinae>
void prologue(JsonInputArchive& ar, const T&) {
  ar.startNode();
}
template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_output_serialization, JsonOutputArchive>::value,
              !cereal::traits::has_minimal_output_serialization<T, JsonOutputArchive>::value> =
              cereal::traits::sfinae>
void epilogue(JsonOutputArchive& ar, const T&) {
  ar.finishNode();
}
template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_input_serialization, JsonInputArchive>::value,
              !cereal::traits::has_minimal_input_serialization<T, JsonInputArchive>::value> =
              cereal::traits::sfinae>
void epilogue(JsonInputArchive& ar, const T&) {
  ar.finishNode();
}

inline void prologue(JsonOutputArchive& ar, const std::nullptr_t&) { ar.writeName(); }
inline void prologue(JsonInputArchive&, const std::nullptr_t&) {}
inline void epilogue(JsonOutputArchive&, const std::nullptr_t&) {}
inline void epilogue(JsonInputArchive&, const std::nullptr_t&) {}

template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void prologue(JsonOutputArchive& ar, const T&) {
  ar.writeName();
}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void prologue(JsonInputArchive&, const T&) {}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void epilogue(JsonOutputArchive&, const T&) {}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void epilogue(JsonInputArchive&, const T&) {}

template <class C, class Traits, class Alloc>
void prologue(JsonOutputArchive& ar, const std::basic_string<C, Traits, Alloc>&) {
  ar.writeName();
}
template <class C, class Traits, class Alloc>
void prologue(JsonInputArchive&, const std::basic_string<C, Traits, Alloc>&) {}
template <class C, class Traits, class Alloc>
void epilogue(JsonOutputArchive&, const std::basic_string<C, Traits, Alloc>&) {}
template <class C, class Traits, class Alloc>
void epilogue(JsonInputArchive&, const std::basic_string<C, Traits, Alloc>&) {}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(JsonOutputArchive& ar, const cereal::NameValuePair<T>& t) {
  ar.setNextName(t.name);
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(JsonInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar.setNextName(t.name);
  ar(t.value);
}
inline void CEREAL_SAVE_FUNCTION_NAME(JsonOutputArchive& ar, const std::nullptr_t& t) {
  ar.saveValue(t);
}
inline void CEREAL_LOAD_FUNCTION_NAME(JsonInputArchive& ar, std::nullptr_t& t) { ar.loadValue(t); }
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_SAVE_FUNCTION_NAME(JsonOutputArchive& ar, const T& t) {
  ar.saveValue(t);
}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_LOAD_FUNCTION_NAME(JsonInputArchive& ar, T& t) {
  ar.loadValue(t);
}
template <class C, class Traits, class Alloc>
void CEREAL_SAVE_FUNCTION_NAME(JsonOutputArchive& ar, const std::basic_string<C, Traits, Alloc>& s) {
  ar.saveValue(s);
}
template <class C, class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(JsonInputArchive& ar, std::basic_string<C, Traits, Alloc>& s) {
  ar.loadValue(s);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(JsonOutputArchive&, const cereal::SizeTag<T>&) {}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(JsonInputArchive& ar, cereal::SizeTag<T>& st) {
  ar.loadSize(st.size);
}

}  // namespace annals

CEREAL_REGISTER_ARCHIVE(annals::JsonInputArchive)
CEREAL_REGISTER_ARCHIVE(annals::JsonOutputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(annals::JsonInputArchive, annals::JsonOutputArchive)
