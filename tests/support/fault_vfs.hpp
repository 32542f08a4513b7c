#pragma once

// A fault-injecting SQLite VFS for tests: a shim over the default VFS, registered under its own
// name (never the default), that counts the I/O calls of the files opened through it and fails
// the Nth call of a kind on request.
//
//   FaultVfs& vfs = FaultVfs::instance();                  // registers "annals_fault" once
//   auto store = open_sql_event_store(dir.sqlite_uri("events.db", "vfs=annals_fault"));
//   vfs.arm(IoKind::write, 3, SQLITE_FULL);                // the 3rd write from now fails
//   ... store->append(...) throws StoreError ...
//   vfs.disarm();
//
// Counters and the armed fault are process-wide (every connection on the VFS shares them) and
// thread-safe. Every method but xRead/xWrite/xSync/xTruncate/xFileSize/xShmMap/xShmLock is
// forwarded untouched; the counted ones are forwarded unless the armed fault fires, in which case
// they return its code without touching the file (a failed write writes nothing).

#include <array>
#include <cstdint>
#include <mutex>
#include <string>

namespace annals::test {

enum class IoKind : std::uint8_t { read, write, sync, truncate, file_size, shm_map, shm_lock };
inline constexpr std::size_t kIoKinds = 7;

// "read", "write", ... for messages.
[[nodiscard]] const char* to_string(IoKind kind) noexcept;

class FaultVfs {
 public:
  static constexpr const char* kName = "annals_fault";

  // The shim, registered (not as the default) on first use. Thread-safe.
  static FaultVfs& instance();

  // Calls of `kind` made through the shim since the process started (or the last reset).
  [[nodiscard]] std::uint64_t calls(IoKind kind) const;
  [[nodiscard]] std::array<std::uint64_t, kIoKinds> snapshot() const;
  // How many calls the armed fault has failed since it was armed.
  [[nodiscard]] std::uint64_t fired() const;

  // Fails the nth (1-based) call of `kind` made from now on with `code` (an SQLite result code
  // such as SQLITE_IOERR_WRITE or SQLITE_FULL); with `sticky`, that call and every later one of
  // the kind (a disk that stays full). Replaces a fault armed before.
  void arm(IoKind kind, std::uint64_t nth, int code, bool sticky = false);
  // No call fails from now on.
  void disarm();

  // While set, main database files are opened read-only, as SQLite's unix VFS opens a file the
  // process may not write (chmod a-w, for a user that is not root): the connection is then
  // read-only and every write is refused with SQLITE_READONLY. Files already open are unchanged.
  void set_read_only(bool read_only);
  // While set, a -wal file that already exists is opened read-only, as the unix VFS opens one
  // another user (such as root) created: the database file stays writable, but every write of
  // the connection is refused with SQLITE_READONLY. Files already open are unchanged.
  void set_wal_read_only(bool read_only);

  // Used by the shim's methods: counts the call and returns the code to fail it with, or 0.
  int on_call(IoKind kind);
  [[nodiscard]] bool read_only() const;
  [[nodiscard]] bool wal_read_only() const;

 private:
  FaultVfs() = default;

  mutable std::mutex mutex_;
  std::array<std::uint64_t, kIoKinds> calls_{};
  bool armed_ = false;
  IoKind kind_ = IoKind::read;
  std::uint64_t target_ = 0;  // the value of calls_[kind_] at which to fail
  int code_ = 0;
  bool sticky_ = false;
  std::uint64_t fired_ = 0;
  bool read_only_ = false;
  bool wal_read_only_ = false;
};

// Disarms the shim when it goes out of scope (a failed REQUIRE must not leave a fault armed).
class FaultGuard {
 public:
  FaultGuard() = default;
  ~FaultGuard() {
    FaultVfs::instance().disarm();
    FaultVfs::instance().set_read_only(false);
    FaultVfs::instance().set_wal_read_only(false);
  }
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;
};

}  // namespace annals::test
