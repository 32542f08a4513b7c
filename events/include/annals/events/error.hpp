#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace annals {

// Every exception a public annals call throws derives from Error. The class tells the
// caller what to do next; the message names the offending value.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Optimistic concurrency lost: another writer appended first. Reload, decide again, save.
class ConcurrencyError : public Error {
 public:
  using Error::Error;
};

// The stream, aggregate or row asked for does not exist.
class NotFound : public Error {
 public:
  using Error::Error;
};

// The caller passed a value the API does not accept. A bug in the caller: do not retry.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A payload could not be encoded or decoded (unknown type, corrupt bytes, missing field).
class SerializationError : public Error {
 public:
  using Error::Error;
};

// The store could not do its work (busy, locked, I/O, disk full, not an annals file, SQL it
// refused). Nothing partial was written. transient() says whether the same call may succeed
// later unchanged (busy, locked, I/O, disk full) or not (a constraint or SQL error in a
// projection's statement, a file that is not an annals store): retry only the former.
class StoreError : public Error {
 public:
  explicit StoreError(const std::string& what, bool transient = true)
      : Error(what), transient_(transient) {}
  [[nodiscard]] bool transient() const noexcept { return transient_; }

 private:
  bool transient_;
};

// The log failed verification or holds what it never could have written. Never retried.
// position() is the first log position found broken, when there is one (0 otherwise).
class IntegrityError : public Error {
 public:
  explicit IntegrityError(const std::string& what, std::uint64_t position = 0)
      : Error(what), position_(position) {}
  [[nodiscard]] std::uint64_t position() const noexcept { return position_; }

 private:
  std::uint64_t position_;
};

}  // namespace annals
