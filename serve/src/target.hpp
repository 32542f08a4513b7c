#pragma once

// Splitting an HTTP request target (origin-form, "/path?query") into percent-decoded path
// segments and query parameters, strictly: a '%' not followed by two hex digits, a decoded NUL
// byte or a decoded text that is not UTF-8 is refused with an InvalidArgument naming the text.
// Internal to the serve component (api.cpp); a pure function, thread-safe.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace annals::serve::detail {

struct RequestTarget {
  std::string_view path;                                   // raw, from the leading '/'
  std::vector<std::string> segments;                       // path split on '/', each decoded
  std::vector<std::pair<std::string, std::string>> query;  // in order, decoded, '+' is a space
};

// Throws InvalidArgument when the target does not start with '/' or a piece does not decode;
// the message names the piece ("path segment 'a%zz'", "query item 'limit=%zz'").
// "/" gives one empty segment; "/a/b/" gives "a", "b", "". An empty query item ("a=1&&b=2",
// a trailing '&') is skipped; an item without '=' has an empty value.
[[nodiscard]] RequestTarget parse_target(std::string_view target);

// Percent-decodes `text` (with '+' as a space when plus_is_space). Throws InvalidArgument naming
// `what` and the text for a bad escape, a decoded NUL or invalid UTF-8.
[[nodiscard]] std::string percent_decode(std::string_view text, bool plus_is_space,
                                         std::string_view what);

// Whether `text` is valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points above
// U+10FFFF).
[[nodiscard]] bool is_utf8(std::string_view text) noexcept;

}  // namespace annals::serve::detail
