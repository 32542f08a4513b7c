#pragma once

// Child processes of a test binary: the binary itself re-executed with posix_spawn as
// `<this binary> --child <args...>` (so the child inherits no threads), its stdout a pipe the
// parent reads lines from. The binary's main() dispatches `--child` to its own child modes
// (tests/reliability/main.cpp, tests/pg/main.cpp).

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace annals::test {

// A child running `<this binary> --child <args...>`. The child dies with SIGKILL if the parent
// dies first.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args);
  ~Child();  // kills and reaps the child if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Reads complete lines until `until` or EOF; returns false at EOF. Lines are appended to
  // lines(); a partial last line is kept back until its '\n' arrives (and dropped at EOF).
  bool read_until(std::chrono::steady_clock::time_point until);
  // Reads until at least `count` lines arrived in total, EOF, or the timeout.
  bool read_lines(std::size_t count, std::chrono::milliseconds timeout);
  // SIGKILL, then reads what the pipe still holds (everything the child wrote before dying).
  void kill_and_drain();
  // Waits for the child; returns its wait status.
  int wait();

  [[nodiscard]] const std::vector<std::string>& lines() const noexcept { return lines_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string partial_;
  std::vector<std::string> lines_;
};

// "killed by SIGKILL", "exit 3", ...
[[nodiscard]] std::string describe_status(int status);

// Writes all of `text` to fd 1 (the pipe), retrying short writes. Child side.
void write_out(const std::string& text);

// Splits a line on tabs.
[[nodiscard]] std::vector<std::string> split_tabs(const std::string& line);

}  // namespace annals::test
