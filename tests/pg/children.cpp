// The child processes of annals_pg_tests: `<binary> --child <mode> <args...>` (tests/pg/main.cpp).
//
//   tail-writer URI PROCESS THREADS OPS
//     THREADS threads, each with a store object of its own (its own connections) on URI, make
//     OPS appends each: single appends of 1-3 events to a stream of their own and all-or-nothing
//     batches over 2-3 streams. After each append returns, the child prints one line per event
//     it acknowledged, "ack\t<event id>\t<position>"; an exception prints "error\t<what>". At
//     the end "done\t<events>"; the exit status is 0 when no append failed.

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

int tail_writer(const std::string& uri, const std::string& process, int threads, int ops) {
  std::mutex out_mutex;
  std::uint64_t acknowledged = 0;
  bool failed = false;
  auto thread_body = [&](int t) {
    const std::string writer = "w" + process + "-t" + std::to_string(t);
    try {
      auto store = open_sql_event_store(uri);
      std::uint64_t n = 0;
      for (int op = 0; op < ops; ++op) {
        std::vector<NewEvent> sent;
        AppendResult result;
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
  write_out("done\t" + std::to_string(acknowledged) + "\n");
  return failed ? 1 : 0;
}

}  // namespace

std::uint64_t tail_writer_events(int threads, int ops) {
  std::uint64_t per_thread = 0;
  for (int op = 0; op < ops; ++op) {
    per_thread += op % 2 == 0 ? 1 + op % 3 : ((op / 2) % 2 == 0 ? 3 : 4);
  }
  return per_thread * static_cast<std::uint64_t>(threads);
}

int run_pg_child(const std::vector<std::string>& args) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
  try {
    if (args.size() == 5 && args[0] == "tail-writer") {
      return tail_writer(args[1], args[2], std::stoi(args[3]), std::stoi(args[4]));
    }
  } catch (const std::exception& e) {
    write_out(std::string("error\t") + e.what() + "\n");
    return 1;
  }
  write_out("error\tunknown child mode\n");
  return 2;
}

}  // namespace annals::test
