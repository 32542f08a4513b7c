// The child processes of annals_pg_tests: `<binary> --child <mode> <args...>` (tests/pg/main.cpp).
//
//   tail-writer URI PROCESS THREADS OPS own|shared
//     THREADS threads, each with a store object of its own (own: its own connections) or all on
//     one store object (shared: their appends meet in group commit), make OPS appends each:
//     single appends of 1-3 events to a stream of their own, all-or-nothing batches over 2-3
//     streams, and every fifth op an append that must be refused (no_stream on a stream that
//     exists). After each append returns, the child prints one line per event it acknowledged,
//     "ack\t<event id>\t<position>"; for a refused one "refused\t<event id>"; any other
//     exception (or a refusal that did not come) "error\t<what>". At the end (shared) the largest
//     group commit's size, "groups\t<appends>", and "done\t<events>";
//     the exit status is 0 when nothing unexpected happened.

#include <sys/prctl.h>

#include <boost/uuid/uuid_io.hpp>
#include <csignal>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "annals/store/sql_event_store.hpp"
#include "support/child_process.hpp"

namespace annals::test {
namespace {

NewEvent tail_event(const std::string& writer, std::uint64_t n) {
  NewEvent e;
  e.event_id = new_event_id();
  e.type = "Tailed";
  e.payload = "{\"writer\":\"" + writer + "\",\"n\":" + std::to_string(n) + "}";
  return e;
}

int tail_writer(const std::string& uri, const std::string& process, int threads, int ops,
                bool shared) {
  std::mutex out_mutex;
  std::uint64_t acknowledged = 0;
  bool failed = false;
  const std::shared_ptr<SqlEventStore> shared_store = shared ? open_sql_event_store(uri) : nullptr;
  auto thread_body = [&](int t) {
    const std::string writer = "w" + process + "-t" + std::to_string(t);
    try {
      auto store = shared ? shared_store : open_sql_event_store(uri);
      std::uint64_t n = 0;
      for (int op = 0; op < ops; ++op) {
        std::vector<NewEvent> sent;
        AppendResult result;
        if (op % 5 == 4) {  // refused: "-single-0" exists since op 0
          const NewEvent doomed = tail_event(writer, 0);
          std::string line;
          try {
            (void)store->append(writer + "-single-0", ExpectedVersion::no_stream(), {doomed});
            line = "error\t" + writer + ": an append to an existing stream with no_stream passed\n";
          } catch (const ConcurrencyError&) {
            line = "refused\t" + boost::uuids::to_string(doomed.event_id) + "\n";
          }
          const std::lock_guard lock(out_mutex);
          write_out(line);
          if (line.starts_with("error")) failed = true;
          continue;
        }
        if (op % 2 == 0) {
          std::vector<NewEvent> events;
          for (int i = 0; i <= op % 3; ++i) events.push_back(tail_event(writer, ++n));
          sent = events;
          result = store->append(writer + "-single-" + std::to_string(op % 4),
                                 ExpectedVersion::any(), std::move(events));
        } else {
          std::vector<StreamAppend> batch;
          for (int s = 0; s < 2 + (op / 2) % 2; ++s) {
            StreamAppend part{.stream_id = writer + "-batch-" + std::to_string(s)};
            for (int i = 0; i <= s % 2; ++i) {
              part.events.push_back(tail_event(writer, ++n));
              sent.push_back(part.events.back());
            }
            batch.push_back(std::move(part));
          }
          result = store->append(std::move(batch));
        }
        std::string lines;
        for (std::size_t i = 0; i < sent.size(); ++i) {
          lines += "ack\t" + boost::uuids::to_string(sent[i].event_id) + "\t" +
                   std::to_string(result.first_position + i) + "\n";
        }
        const std::lock_guard lock(out_mutex);
        write_out(lines);
        acknowledged += sent.size();
      }
    } catch (const std::exception& e) {
      std::string what = e.what();
      for (char& c : what) {
        if (c == '\n' || c == '\t') c = ' ';
      }
      const std::lock_guard lock(out_mutex);
      write_out("error\t" + writer + ": " + what + "\n");
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(thread_body, t);
  for (auto& th : pool) th.join();
  if (shared) {  // how many appends group commit put in one transaction, at most
    write_out("groups\t" + std::to_string(shared_store->group_commit_stats().max_group) + "\n");
  }
  write_out("done\t" + std::to_string(acknowledged) + "\n");
  return failed ? 1 : 0;
}

}  // namespace

std::uint64_t tail_writer_events(int threads, int ops) {
  std::uint64_t per_thread = 0;
  for (int op = 0; op < ops; ++op) {
    if (op % 5 == 4) continue;  // refused
    per_thread += op % 2 == 0 ? 1 + op % 3 : ((op / 2) % 2 == 0 ? 3 : 4);
  }
  return per_thread * static_cast<std::uint64_t>(threads);
}

int run_pg_child(const std::vector<std::string>& args) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
  try {
    if (args.size() == 6 && args[0] == "tail-writer" && (args[5] == "own" || args[5] == "shared")) {
      return tail_writer(args[1], args[2], std::stoi(args[3]), std::stoi(args[4]),
                         args[5] == "shared");
    }
  } catch (const std::exception& e) {
    write_out(std::string("error\t") + e.what() + "\n");
    return 1;
  }
  write_out("error\tunknown child mode\n");
  return 2;
}

}  // namespace annals::test
