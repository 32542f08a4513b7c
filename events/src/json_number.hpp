// Internal to annals_events: how a JSON number's text becomes a double. RapidJSON 1.1.0's own
// full-precision conversion hits undefined behaviour (__builtin_clzll(0)) on a zero with a large
// exponent such as 0e-50, so both the payload reader and the validator take numbers as text
// (kParseNumbersAsStringsFlag) and convert them here.
#pragma once

#include <clocale>
#include <cstdlib>
#include <cstring>
#include <string>

namespace annals::detail {

// The "C" locale, for number conversions the host application's LC_NUMERIC must not change.
inline locale_t c_numeric_locale() {
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t{});
  return c_locale;
}

// strtod in the "C" locale over text that is not NUL-terminated. May return an infinity for numbers beyond
// double's range; callers refuse those.
inline double json_number_to_double(const char* s, std::size_t n) {
  char local[64];
  std::string heap;
  const char* text = local;
  if (n < sizeof local) {
    std::memcpy(local, s, n);
    local[n] = '\0';
  } else {
    heap.assign(s, n);
    text = heap.c_str();
  }
  return strtod_l(text, nullptr, c_numeric_locale());
}

}  // namespace annals::detail
