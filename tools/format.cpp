#include "format.hpp"

#include <chrono>
#include <cstdio>
#include <iomanip>
#include <ostream>

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
