// libFuzzer target: the JSON Lines import (import_log into a memory: store) and the line parser
// under it (parse_export_line). No file is created: memory: stores live in SQLite's memory.
//
// Properties checked, beyond "no crash, no foreign exception":
//   - a line parse_export_line accepts writes back (write_export_line) as a line that parses to
//     the same event and writes back byte-identical;
//   - import_log is all or nothing: when it throws, the store is still empty;
//   - an accepted import exports (export_log) byte-identical to the input once the input is in
//     export form: importing the export into a fresh store exports the very same bytes, and has
//     the same head position and hash; every imported event equals its parsed line.
#include <annals/events/error.hpp>
#include <annals/store/export.hpp>
#include <annals/store/sql_event_store.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace annals;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_import: property violated: %s\n", what);
  std::abort();
}

void check_line(std::string_view line) {
  RecordedEvent event;
  try {
    event = parse_export_line(line);
  } catch (const InvalidArgument&) {
    return;
  }
  std::ostringstream first;
  try {
    write_export_line(first, event);
  } catch (const SerializationError&) {
    return;  // a field that is not UTF-8 (from a \u escape of a lone surrogate, say)
  }
  const RecordedEvent again = parse_export_line(first.str());
  if (!(again == event)) fail("parse -> write -> parse changed the event");
  std::ostringstream second;
  write_export_line(second, again);
  if (second.str() != first.str()) fail("write -> parse -> write changed the line");
}

std::string export_text(const EventStore& store) {
  std::ostringstream out;
  export_log(store, out);
  return out.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  std::vector<std::string> lines;
  bool first_line_parses = false;
  {
    std::istringstream in(input);
    std::string line;
    while (std::getline(in, line)) {
      check_line(line);
      if (lines.empty()) {
        try {
          (void)parse_export_line(line);
          first_line_parses = true;
        } catch (const InvalidArgument&) {
        }
      }
      lines.push_back(line);
    }
  }
  // An import refuses a first line parse_export_line refuses (checked above) before writing:
  // opening stores only for the rest keeps the target fast.
  if (!lines.empty() && !first_line_parses) return 0;

  const auto store = open_sql_event_store("memory:?group_commit=off");
  std::istringstream in(input);
  ImportResult result;
  try {
    result = import_log(*store, in);
  } catch (const InvalidArgument&) {
    if (store->head_position() != 0) fail("a refused import left events behind");
    return 0;
  } catch (const IntegrityError&) {
    if (store->head_position() != 0) fail("a refused import left events behind");
    return 0;
  }
  if (store->head_position() != result.head_position || result.events != lines.size()) {
    fail("import_log's result does not match the store");
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const RecordedEvent parsed = parse_export_line(lines[i]);
    const std::vector<RecordedEvent> stored = store->read_all(i + 1, 1);
    if (stored.size() != 1 || !(stored.front() == parsed)) {
      fail("an imported event differs from its line");
    }
  }
  const std::string exported = export_text(*store);

  const auto copy = open_sql_event_store("memory:?group_commit=off");
  std::istringstream again(exported);
  const ImportResult second = import_log(*copy, again);
  if (second.head_position != result.head_position || second.head_hash != result.head_hash) {
    fail("re-importing the export gave another head");
  }
  if (export_text(*copy) != exported) fail("export -> import -> export changed the bytes");
  return 0;
}
