// Test helpers for code that runs on an Asio io_context and finishes "eventually".
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <thread>

namespace annals::test {

// An io_context with one thread running it until destroyed.
struct IoThread {
  IoThread() : thread([this] { io.run(); }) {}
  ~IoThread() {
    guard.reset();
    io.stop();
    thread.join();
  }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard =
      boost::asio::make_work_guard(io);
  std::thread thread;  // last: starts once io and guard exist
};

// Polls `condition` every millisecond until it holds or `limit` passes; false on the limit.
// The limit bounds a hang; it is not a timing claim.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace annals::test
