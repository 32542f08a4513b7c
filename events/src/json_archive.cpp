#include "annals/events/json_archive.hpp"

#include <rapidjson/error/en.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "json_number.hpp"

namespace annals {

namespace {
// Insitu: strings are unescaped inside the copy, never copied again into the DOM. Iterative:
// nesting depth costs heap, not stack. Numbers as text, converted by NumberConverter below.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag | rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;
constexpr std::size_t kParseStackBytes = 512;

// Builds the DOM as RapidJSON's own number parsing would, but converts each number from its text
// here: RapidJSON 1.1.0's full-precision conversion has undefined behaviour (__builtin_clzll(0))
// for a zero with a large exponent such as 0e-50, and its normal precision is not exact. Integers
// become the narrowest of int, unsigned, int64 and uint64 that holds them, as RapidJSON does;
// everything else a double, correctly rounded by strtod in the "C" locale. A number beyond
// double's range stops the parse (out_of_range).
template <class Document>
struct NumberConverter : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, NumberConverter<Document>> {
  explicit NumberConverter(Document& d) : document(d) {}
  Document& document;
  bool out_of_range = false;

  bool Null() { return document.Null(); }
  bool Bool(bool b) { return document.Bool(b); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return document.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return document.Key(s, n, copy); }
  bool StartObject() { return document.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return document.EndObject(n); }
  bool StartArray() { return document.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return document.EndArray(n); }

  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    const char* end = s + n;
    if (std::find_if(s, end, [](char c) { return c == '.' || c == 'e' || c == 'E'; }) == end) {
      if (*s == '-') {
        std::int64_t i = 0;
        if (const auto r = std::from_chars(s, end, i); r.ec == std::errc{} && r.ptr == end) {
          return i >= INT32_MIN ? document.Int(static_cast<int>(i)) : document.Int64(i);
        }
      } else {
        std::uint64_t u = 0;
        if (const auto r = std::from_chars(s, end, u); r.ec == std::errc{} && r.ptr == end) {
          if (u <= INT32_MAX) return document.Int(static_cast<int>(u));
          if (u <= UINT32_MAX) return document.Uint(static_cast<unsigned>(u));
          if (u <= INT64_MAX) return document.Int64(static_cast<std::int64_t>(u));
          return document.Uint64(u);
        }
      }
    }
    const double d = detail::json_number_to_double(s, n);
    if (!std::isfinite(d)) {
      out_of_range = true;
      return false;
    }
    return document.Double(d);
  }
};
}  // namespace

JsonInputArchive::JsonInputArchive(std::string_view text)
    : cereal::InputArchive<JsonInputArchive>(this),
      pool_(pool_buffer_, kPoolBytes),
      stack_(stack_buffer_, kStackBytes),
      document_(&pool_, kParseStackBytes, &stack_) {
  // RapidJSON reads the copy up to its terminating NUL: a NUL byte inside would hide the rest.
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    throw cereal::Exception("malformed JSON: a NUL byte at offset " +
                            std::to_string(static_cast<const char*>(nul) - text.data()));
  }
  char* copy = static_cast<char*>(pool_.Malloc(text.size() + 1));
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  rapidjson::ParseResult result;
  bool out_of_range = false;
  auto parse = [&](Document& document) {
    rapidjson::GenericInsituStringStream<rapidjson::UTF8<>> in(copy);
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, Allocator> reader(
        &stack_, kParseStackBytes);
    NumberConverter<Document> handler(document);
    result = reader.Parse<kParseFlags>(in, handler);
    out_of_range = handler.out_of_range;
    return !result.IsError();
  };
  document_.Populate(parse);
  if (out_of_range) {
    throw cereal::Exception("malformed JSON at offset " + std::to_string(result.Offset()) +
                            ": a number beyond the range of a double");
  }
  if (result.IsError()) detail::throw_json_parse_error(result.Code(), result.Offset());
  levels_.reserve(8);
  if (document_.IsObject()) {
    levels_.push_back({nullptr, document_.MemberBegin(), document_.MemberCount(), 0, false});
  } else if (document_.IsArray()) {
    levels_.push_back({document_.Begin(), {}, document_.Size(), 0, true});
  } else {
    throw cereal::Exception("the JSON text is not an object or an array");
  }
}

JsonInputArchive::~JsonInputArchive() = default;

namespace detail {

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII runs, eight bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf)) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string long_double_text(long double value) {
  std::ostringstream out;  // exactly cereal's formatting
  out.precision(std::numeric_limits<long double>::max_digits10);
  out << value;
  return std::move(out).str();
}

long double parse_long_double(const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const long double value = strtold_l(text.c_str(), &end, detail::c_numeric_locale());
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE) {
    throw cereal::Exception("\"" + text + "\" is not a long double");
  }
  return value;
}

namespace {
template <class T>
T parse_integer(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw cereal::Exception("\"" + std::string(text) + "\" is not an integer in range");
  }
  return value;
}
}  // namespace

long long parse_long_long(std::string_view text) { return parse_integer<long long>(text); }
unsigned long long parse_unsigned_long_long(std::string_view text) {
  return parse_integer<unsigned long long>(text);
}

void throw_json_parse_error(int code, std::size_t offset) {
  throw cereal::Exception("malformed JSON at offset " + std::to_string(offset) + ": " +
                          rapidjson::GetParseError_En(static_cast<rapidjson::ParseErrorCode>(code)));
}

void throw_json_type_error(const char* name, const char* expected) {
  throw cereal::Exception(name != nullptr
                              ? "member \"" + std::string(name) + "\" is not " + expected
                              : "a value is not " + std::string(expected));
}

}  // namespace detail
}  // namespace annals
