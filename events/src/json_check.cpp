// Validating a JSON payload without knowing its type: RapidJSON's SAX reader over the bytes,
// with a handler that keeps nothing.
#include <cereal/archives/json.hpp>  // first: RapidJSON configured as everywhere else
// clang-format off
#include <rapidjson/allocators.h>
#include <rapidjson/reader.h>
// clang-format on

#include <cmath>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "annals/events/event.hpp"
#include "annals/events/json_archive.hpp"
#include "json_number.hpp"

namespace annals {

namespace {

// Refuses what RapidJSON lets through but nlohmann::json (the previous validator) did not:
// numbers beyond double's range (RapidJSON refuses most of them itself; this catches those
// between DBL_MAX and 1e309) and a \uDC00-\uDFFF escape without a high surrogate before it,
// which RapidJSON decodes to the bytes ED B0..BF. Numbers come as text and go through strtod,
// as nlohmann's did: RapidJSON 1.1.0's own full-precision conversion hits undefined behaviour
// (__builtin_clzll(0)) on a zero with a large exponent such as 0e-50.
struct Checker : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Checker> {
  bool Default() { return true; }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    return std::isfinite(detail::json_number_to_double(s, n));
  }
  bool String(const char* s, rapidjson::SizeType n, bool) { return no_lone_surrogate(s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return no_lone_surrogate(s, n); }

  static bool no_lone_surrogate(const char* s, std::size_t n) {
    const char* end = s + n;
    while (const void* hit = std::memchr(s, '\xED', static_cast<std::size_t>(end - s))) {
      const char* p = static_cast<const char*>(hit);
      if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0) return false;
      s = p + 1;
    }
    return true;
  }
};

// In situ, on a copy, so strings are not copied again; iterative,
// so nesting depth costs heap, not stack; stop after the root value so what follows is checked
// here (RapidJSON stops at a NUL byte as if at the end); numbers as text, for the handler.
constexpr unsigned kFlags = rapidjson::kParseInsituFlag | rapidjson::kParseIterativeFlag |
                            rapidjson::kParseStopWhenDoneFlag |
                            rapidjson::kParseNumbersAsStringsFlag;
constexpr std::size_t kLocalBytes = 4096;

}  // namespace

bool is_json_document(std::string_view text) noexcept {
  // UTF-8 is checked over the whole text, eight ASCII bytes at a time, rather than by RapidJSON
  // per character of each string (kParseValidateEncodingFlag, 40% of the parse): outside
  // strings any byte above 0x7F is a syntax error anyway.
  if (!detail::valid_utf8(text)) return false;
  try {
    alignas(std::max_align_t) char local[kLocalBytes];
    alignas(std::max_align_t) char stack_buffer[1024];
    std::unique_ptr<char[]> heap;
    char* copy = local;
    if (text.size() >= kLocalBytes) {
      heap = std::make_unique<char[]>(text.size() + 1);
      copy = heap.get();
    }
    std::memcpy(copy, text.data(), text.size());
    copy[text.size()] = '\0';
    rapidjson::InsituStringStream in(copy);
    rapidjson::MemoryPoolAllocator<> stack(stack_buffer, sizeof stack_buffer);
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>>
        reader(&stack, 256);
    Checker checker;
    if (reader.Parse<kFlags>(in, checker).IsError()) return false;
    for (std::size_t i = in.Tell(); i < text.size(); ++i) {
      const char c = text[i];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    }
    return true;
  } catch (...) {
    return false;  // RapidJSON's assertions throw; an allocation may fail
  }
}

}  // namespace annals
