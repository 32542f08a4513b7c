// libFuzzer target: how the annals program reads ids, cursors and numbers (tools/args.hpp), and
// what it does with them in the library: runs' tenant/app/trigger/--last-id cursor/--limit
// against a seeded memory: store, and replay's --stream lookup. No file is created.
//
// Input: byte 0 picks what is fuzzed, the rest is the text (split at NUL bytes into fields).
// Properties checked, beyond "no crash, only annals errors":
//   - parse_time: an accepted ISO time has digits wherever the format has digits; integer
//     microseconds and the formatted time (years 0000..9999) read back to the same instant;
//   - parse_unsigned: an accepted number is all digits, in range, and is the text's value;
//   - --db/--uri: exactly one given; the file the program checks for (sqlite_file) is the file
//     the library would open (parse_store_uri);
//   - runs: every row has the asked tenant, app and trigger, a page holds at most `limit` rows,
//     has_more only on a full page, limit outside 1..1000 is InvalidArgument, a cursor that is
//     not one of that tenant/app/trigger's runs is NotFound;
//   - replay: reading any stream id returns only that stream's events.
#include <annals/annals.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"

namespace {

using namespace annals;
using namespace annals::cli;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_cli_args: property violated: %s\n", what);
  std::abort();
}

std::vector<std::string> fields(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t nul = text.find('\0');
    out.emplace_back(text.substr(0, nul));
    if (nul == std::string_view::npos) return out;
    text.remove_prefix(nul + 1);
  }
}

bool digits(std::string_view text) {
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return !text.empty();
}

void fuzz_time(std::string_view text) {
  Timestamp t;
  try {
    t = parse_time(text);
  } catch (const InvalidArgument&) {
    return;
  }
  if (text.size() >= 19 && text[4] == '-') {  // the ISO form
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) {
      if (text[i] < '0' || text[i] > '9') fail("an ISO time with a non-digit where digits go");
    }
  }
  if (parse_time(std::to_string(to_micros(t))) != t) fail("integer microseconds read back wrong");
  const std::string formatted = format_timestamp(t);
  const bool four_digit_year = formatted.size() == 27 && formatted[4] == '-' && digits(formatted.substr(0, 4));
  if (four_digit_year && parse_time(formatted) != t) fail("a formatted time reads back wrong");
}

void fuzz_number(std::string_view text, std::uint8_t which) {
  static constexpr std::uint64_t kRanges[][2] = {{0, UINT64_MAX}, {1, 1000}, {1, 1000000}, {1, UINT64_MAX}};
  const auto& range = kRanges[which % 4];
  std::uint64_t value = 0;
  try {
    value = parse_unsigned(text, "--limit", range[0], range[1]);
  } catch (const InvalidArgument& e) {
    if (std::string_view(e.what()).find("--limit '") != 0) fail("an error does not name the option");
    return;
  }
  if (!digits(text)) fail("accepted a number that is not all digits");
  if (value < range[0] || value > range[1]) fail("accepted a number out of range");
  const std::string canonical = std::to_string(value);
  const std::size_t zeros = std::min(text.find_first_not_of('0'), text.size() - 1);
  if (text.substr(zeros) != canonical) fail("the value is not the text's value");
}

void fuzz_target(const std::vector<std::string>& f) {
  Target target;
  target.db = f[0];
  if (f.size() > 1) target.uri = f[1];
  std::string uri;
  try {
    uri = store_uri(target);
  } catch (const InvalidArgument&) {
    // Refused: both, neither, or a PostgreSQL URI given to --db (which takes a file only).
    const bool postgres_db = target.uri.empty() && (target.db.starts_with("postgresql://") ||
                                                    target.db.starts_with("postgres://"));
    if (target.db.empty() != target.uri.empty() && !postgres_db) {
      fail("refused exactly one of --db and --uri");
    }
    return;
  }
  if (target.uri.empty() &&
      (target.db.starts_with("postgresql://") || target.db.starts_with("postgres://"))) {
    fail("accepted a PostgreSQL URI as --db");
  }
  if (target.db.empty() == target.uri.empty()) fail("accepted both or neither of --db and --uri");
  const auto file = sqlite_file(uri);
  StoreUri parsed;
  try {
    parsed = parse_store_uri(uri);
  } catch (const InvalidArgument&) {
    return;
  }
  if ((parsed.scheme == "sqlite") != file.has_value()) fail("sqlite_file disagrees on the scheme");
  if (file && file->string() != parsed.path) fail("the file checked is not the file opened");
}

struct Seeded {
  RepositoryFactory factory{"memory:?group_commit=off"};
  WorkflowRunRepository runs = factory.create_workflow_run_repository();
  std::vector<WorkflowRunView> all;  // every run, every tenant

  Seeded() {
    AggregateRepository<WorkflowRun> writer = factory.create_workflow_run_aggregate_repository();
    int n = 0;
    for (const char* tenant : {"t1", "t2"}) {
      for (const char* app : {"a1", "a2"}) {
        for (const char* trigger : {"app-run", "debugging"}) {
          for (int i = 0; i < 3; ++i, ++n) {
            WorkflowRun run = WorkflowRun::create(
                RunCreated{.run_id = "r" + std::to_string(n),
                           .tenant_id = tenant,
                           .app_id = app,
                           .workflow_id = "w",
                           .triggered_from = trigger,
                           .created_by = "fuzz",
                           .inputs = "{}",
                           .created_at = from_micros(1'700'000'000'000'000 + (n % 4) * 1'000'000)});
            writer.save(run);
          }
        }
      }
    }
    for (const char* tenant : {"t1", "t2"}) {
      for (const char* app : {"a1", "a2"}) {
        for (const char* trigger : {"app-run", "debugging"}) {
          const auto page = runs.get_paginated_workflow_runs(tenant, app, trigger, 1000);
          all.insert(all.end(), page.data.begin(), page.data.end());
        }
      }
    }
    if (all.size() != static_cast<std::size_t>(n)) fail("seeding: not every run is in the read table");
  }
};

Seeded& seeded() {
  static Seeded s;
  return s;
}

void fuzz_runs(const std::vector<std::string>& f, std::uint8_t limit_byte) {
  Seeded& s = seeded();
  // Short names from a small alphabet often hit the seeded ones; the text otherwise.
  const std::string tenant = f[0].size() == 1 ? "t" + std::string(1, static_cast<char>('1' + (f[0][0] & 1))) : f[0];
  const std::string app = f.size() > 1 && f[1].size() == 1 ? "a" + std::string(1, static_cast<char>('1' + (f[1][0] & 1)))
                                                           : (f.size() > 1 ? f[1] : "a1");
  const std::string trigger = f.size() > 2 && f[2].size() == 1 ? ((f[2][0] & 1) != 0 ? "debugging" : "app-run")
                                                               : (f.size() > 2 ? f[2] : "app-run");
  std::optional<std::string> last_id;
  if (f.size() > 3) last_id = f[3].size() == 1 ? "r" + std::to_string(static_cast<unsigned char>(f[3][0]) % 30) : f[3];
  const std::size_t limit = limit_byte == 255 ? SIZE_MAX : limit_byte == 254 ? 1001 : limit_byte % 8;

  bool cursor_known = false;
  if (last_id) {
    for (const WorkflowRunView& r : s.all) {
      cursor_known |= r.id == *last_id && r.tenant_id == tenant && r.app_id == app && r.triggered_from == trigger;
    }
  }
  InfiniteScrollPagination<WorkflowRunView> page;
  try {
    page = s.runs.get_paginated_workflow_runs(tenant, app, trigger, limit, last_id);
  } catch (const InvalidArgument&) {
    if (limit >= 1 && limit <= 1000) fail("InvalidArgument for a limit in 1..1000");
    return;
  } catch (const NotFound&) {
    if (!last_id || cursor_known) fail("NotFound for a cursor of this tenant, app and trigger");
    return;
  }
  if (limit < 1 || limit > 1000) fail("a limit outside 1..1000 was accepted");
  if (last_id && !cursor_known) fail("a cursor from another tenant, app or trigger was accepted");
  if (page.data.size() > limit) fail("a page longer than its limit");
  if (page.has_more && page.data.size() != limit) fail("has_more on a page that is not full");
  for (const WorkflowRunView& r : page.data) {
    if (r.tenant_id != tenant || r.app_id != app || r.triggered_from != trigger) {
      fail("a row of another tenant, app or trigger");
    }
    if (last_id && r.id == *last_id) fail("the cursor's own run is on the next page");
  }
}

void fuzz_stream(const std::string& text) {
  Seeded& s = seeded();
  for (const std::string& stream : {text, WorkflowRun::stream_id_for(text)}) {
    try {
      for (const RecordedEvent& e : s.factory.event_store()->read_stream(stream)) {
        if (e.stream_id != stream) fail("read_stream returned another stream's event");
      }
    } catch (const InvalidArgument&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0], extra = data[1];
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (mode % 5) {
    case 0: fuzz_time(text); break;
    case 1: fuzz_number(text, extra); break;
    case 2: fuzz_target(fields(text)); break;
    case 3: fuzz_runs(fields(text), extra); break;
    default: fuzz_stream(std::string(text)); break;
  }
  return 0;
}
