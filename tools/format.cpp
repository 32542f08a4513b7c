#include "format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <annals/events/printable.hpp>
#include <annals/serve/keys.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "pg_probe.hpp"

namespace annals::cli {

std::string existing_store_uri(const Target& target) {
  std::string uri = store_uri(target);
  if (const auto file = sqlite_file(uri); file && !file->empty()) {
    std::error_code ec;
    const auto status = std::filesystem::status(*file, ec);
    if (!std::filesystem::exists(status)) {
      throw StoreError("database '" + file->string() + "' does not exist", false);
    }
    if (!std::filesystem::is_regular_file(status)) {
      throw StoreError("'" + file->string() + "' is not a database file", false);
    }
  }
  if (parse_store_uri(uri).scheme == "postgresql") require_postgres_store(uri);
  return uri;
}

std::string add_key_to_file(const std::filesystem::path& file, std::string_view tenant) {
  using annals::serve::KeyRing;
  const std::string key = KeyRing::generate_key();
  std::string line = KeyRing::file_line(tenant, key);  // InvalidArgument for a bad tenant id
  const std::string name = printable(file.string());
  std::error_code ec;
  const bool exists = std::filesystem::exists(file, ec);
  std::string text;
  if (exists) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw StoreError("cannot read keys file '" + name + "'", false);
    std::ostringstream content;
    content << in.rdbuf();  // an empty file sets content's failbit, and is fine
    text = content.str();
    if (!text.empty() && text.back() != '\n') line.insert(line.begin(), '\n');
  }
  (void)KeyRing::parse(text + line, file.string());  // refuse to leave a file that will not load
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | (exists ? 0 : O_CREAT | O_EXCL),
                        0600);
  if (fd < 0) {
    throw StoreError("cannot open keys file '" + name + "' to append: " + std::strerror(errno),
                     false);
  }
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw StoreError("cannot write keys file '" + name + "': " + std::strerror(e), false);
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (::close(fd) != 0 || !synced) {
    throw StoreError("cannot write keys file '" + name + "': " +
                         std::strerror(synced ? errno : sync_errno),
                     false);
  }
  return key;
}

void print_runs_table(std::ostream& out, const std::vector<WorkflowRunView>& runs) {
  const auto flags = out.flags();
  out << std::left << std::setw(18) << "RUN" << std::setw(11) << "STATUS" << std::setw(20)
      << "WORKFLOW" << std::setw(10) << "BY" << std::right << std::setw(6) << "STEPS"
      << std::setw(8) << "TOKENS" << std::setw(9) << "ELAPSED"
      << "  " << std::left << "CREATED"
      << "\n";
  for (const WorkflowRunView& r : runs) {
    char elapsed[32];
    std::snprintf(elapsed, sizeof elapsed, "%.1fs", r.elapsed_time);
    out << std::left << std::setw(18) << r.id << std::setw(11) << r.status << std::setw(20)
        << r.workflow_id << std::setw(10) << r.created_by << std::right << std::setw(6)
        << r.total_steps << std::setw(8) << r.total_tokens << std::setw(9) << elapsed << "  "
        << std::left << format_timestamp(r.created_at) << "\n";
  }
  out.flags(flags);
}

std::string human_bytes(std::uintmax_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  if (unit == 0) {
    std::snprintf(buffer, sizeof buffer, "%ju B", bytes);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f %s", value, kUnits[unit]);
  }
  return buffer;
}

}  // namespace annals::cli
