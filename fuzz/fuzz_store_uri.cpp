// libFuzzer target: store URI parsing (parse_store_uri, the parser open_event_store uses).
// Touches no file: only memory: URIs are opened, and only after they parsed.
//
// Properties checked, beyond "no crash, only InvalidArgument":
//   - a parsed URI formats (format_store_uri) to text that parses to the same scheme, path and
//     options, and formatting that again gives the same text;
//   - the options a URI names are the ones it gets, over two different bases;
//   - a memory: URI that parses opens, with the parsed payload format; one naming a VFS opens
//     or is refused as naming no registered VFS (or one that cannot hold the store).
#include <annals/events/error.hpp>
#include <annals/store/event_store.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace annals;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_store_uri: property violated: %s\n", what);
  std::abort();
}

bool same(const StoreUri& a, const StoreUri& b) {
  return a.scheme == b.scheme && a.path == b.path &&
         a.options.payload_format == b.options.payload_format &&
         a.options.synchronous == b.options.synchronous &&
         a.options.busy_timeout == b.options.busy_timeout &&
         a.options.group_commit == b.options.group_commit && a.options.vfs == b.options.vfs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view uri(reinterpret_cast<const char*>(data), size);
  StoreOptions other;
  other.payload_format = PayloadFormat::binary;
  other.synchronous = Synchronous::normal;
  other.busy_timeout = std::chrono::milliseconds(17);
  other.group_commit = false;

  StoreUri parsed;
  try {
    parsed = parse_store_uri(uri);
  } catch (const InvalidArgument& e) {
    // The message names the URI (shown whole).
    if (std::string_view(e.what()).find("store URI '") == std::string_view::npos) {
      fail("an error does not name the URI");
    }
    try {
      (void)parse_store_uri(uri, other);
    } catch (const InvalidArgument&) {
      return 0;
    }
    fail("a URI refused over one base was accepted over another");
  }
  if (parsed.scheme != "memory" && parsed.scheme != "sqlite" && parsed.scheme != "postgresql") {
    fail("unknown scheme accepted");
  }
  if (parsed.scheme == "postgresql") {
    if (!parsed.options.vfs.empty()) fail("a postgresql URI carries a vfs");
    // Redacting never throws, and a redacted URI redacts to itself.
    const std::string shown = redact_store_uri(uri);
    if (redact_store_uri(shown) != shown) fail("redact_store_uri is not idempotent");
  } else {
    if ((parsed.scheme == "memory") != parsed.path.empty()) fail("memory: with a path, or sqlite: without");
    if (parsed.path.find('?') != std::string::npos) fail("a path holds the query's '?'");
  }

  const std::string text = format_store_uri(parsed);
  const StoreUri again = parse_store_uri(text, other);
  if (!same(parsed, again)) fail("format -> parse changed the URI");
  if (format_store_uri(again) != text) fail("format -> parse -> format changed the text");

  // What the URI names wins over the base; what it does not name comes from the base.
  const StoreUri over_other = parse_store_uri(uri, other);
  const std::size_t q = uri.find('?');
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : uri.substr(q);
  const bool names_payload = query.starts_with("?payload=") ||
                             query.find("&payload=") != std::string_view::npos;
  // A keyword string names its options as keywords (maybe inside quoted values): not checked.
  const bool keywords = parsed.scheme == "postgresql" && !uri.starts_with("postgresql://") &&
                        !uri.starts_with("postgres://");
  if (keywords) return 0;
  if (names_payload && over_other.options.payload_format != parsed.options.payload_format) {
    fail("the URI's payload option did not win over the base");
  }
  if (!names_payload && over_other.options.payload_format != PayloadFormat::binary) {
    fail("the base's payload format was lost");
  }

  // A vfs= names a VFS that must be registered when the store opens: the fuzz run registers
  // none of its own, so only SQLite's built-in ones ("unix", "unix-none", ...) can open.
  if (parsed.scheme == "memory" && !parsed.options.vfs.empty()) {
    try {
      const auto store = open_event_store(uri);
      if (store->payload_format() != parsed.options.payload_format) {
        fail("the opened store's payload format is not the parsed one");
      }
    } catch (const InvalidArgument& e) {
      if (std::string_view(e.what()).find("no SQLite VFS named") == std::string_view::npos) {
        fail("a vfs is refused with another reason");
      }
    } catch (const StoreError&) {
      // A built-in VFS that cannot hold the store: refused at open, as documented.
    }
    return 0;
  }
  if (parsed.scheme == "memory") {
    const auto store = open_event_store(uri);
    if (store->payload_format() != parsed.options.payload_format) {
      fail("the opened store's payload format is not the parsed one");
    }
  }
  return 0;
}
