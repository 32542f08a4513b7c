#pragma once

// A small projection for engine, runner and rebuild tests: counts events per stream in
// annals_test_counts (stream_id, events, last_type, last_position), and can be told to fail.

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

#include "annals/projections/projection.hpp"

namespace annals::test {

class CountingProjection : public Projection {
 public:
  explicit CountingProjection(std::string name = "test_counts", std::uint32_t version = 1)
      : name_(std::move(name)), version_(version) {}

  std::string name() const override { return name_; }
  std::uint32_t version() const override { return version_; }
  std::vector<std::string> handled_types() const override { return {}; }
  std::vector<ProjectionTable> tables() const override { return {{table_, {"stream_id"}}}; }

  void setup(ProjectionContext& ctx) override {
    ctx.sql().execute_script("CREATE TABLE IF NOT EXISTS " + ctx.table(table_) +
                             " (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL,"
                             " last_type TEXT NOT NULL, last_position INTEGER NOT NULL)");
  }

  void apply(const RecordedEvent& e, ProjectionContext& ctx) override {
    if (!fail_on_type.empty() && e.type == fail_on_type) {
      throw std::runtime_error("CountingProjection told to fail on " + e.type + " at position " +
                               std::to_string(e.position));
    }
    // The alias: PostgreSQL finds a bare "events" ambiguous (the row or excluded's).
    ctx.sql().execute(
        "INSERT INTO " + ctx.table(table_) +
            " AS t (stream_id, events, last_type, last_position) VALUES ($1, 1, $2, $3)"
            " ON CONFLICT (stream_id) DO UPDATE SET events = t.events + 1,"
            " last_type = excluded.last_type, last_position = excluded.last_position",
        {e.stream_id, e.type, static_cast<std::int64_t>(e.position)});
    ++applied;
  }

  void committed(const std::vector<RecordedEvent>& events) noexcept override {
    committed_events += events.size();
  }
  void reset() noexcept override { ++resets; }

  // Set before the projection runs: apply() throws on events of this type.
  std::string fail_on_type;
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> committed_events{0};
  std::atomic<std::uint64_t> resets{0};

 private:
  std::string name_;
  std::uint32_t version_;
  std::string table_ = "annals_test_counts";
};

}  // namespace annals::test
