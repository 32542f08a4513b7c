#pragma once

// A fresh directory under the system temp dir, removed with everything in it on destruction.

#include <filesystem>
#include <string>

namespace annals::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // path()/name as a string.
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  // "sqlite:" + file(name), with `options` ("a=b&c=d") appended after a '?' when given.
  [[nodiscard]] std::string sqlite_uri(const std::string& name = "events.db",
                                       const std::string& options = "") const {
    return "sqlite:" + file(name) + (options.empty() ? "" : "?" + options);
  }

 private:
  std::filesystem::path path_;
};

}  // namespace annals::test
