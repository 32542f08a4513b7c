#pragma once

// A projection turns the event log into read tables.
//
//   class RunCounts : public annals::Projection {
//     std::string name() const override { return "run_counts"; }
//     std::uint32_t version() const override { return 1; }
//     std::vector<std::string> handled_types() const override { return {"RunCreated"}; }
//     std::vector<annals::ProjectionTable> tables() const override {
//       return {{"annals_run_counts", {"tenant_id"}}};
//     }
//     void setup(annals::ProjectionContext& ctx) override {
//       ctx.sql().execute_script("CREATE TABLE IF NOT EXISTS " + ctx.table("annals_run_counts") +
//                                " (tenant_id TEXT PRIMARY KEY, runs INTEGER NOT NULL)");
//     }
//     void apply(const annals::RecordedEvent& e, annals::ProjectionContext& ctx) override {...}
//   };
//
// The engine (inline hook, async runner, rebuild) calls apply() for each handled event in
// position order inside a transaction that also advances the projection's checkpoint, so the
// rows and the checkpoint always commit together and no event is applied twice.
//
// Table names: a projection names its tables and indexes through ctx.table() and ctx.index(),
// never literally, so that a rebuild can build them as shadow tables beside the live ones.
// Live table names start with "annals_".
//
// Thread-safety: the engine calls a projection from one thread at a time per store object;
// committed() and reset() may come from any thread (after a commit) and must be thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "annals/events/event.hpp"
#include "annals/store/sql.hpp"

namespace annals {

// What a projection's SQL runs against: a session inside the engine's transaction, and the
// physical names of the tables being written (live, or a rebuild's shadow).
class ProjectionContext {
 public:
  explicit ProjectionContext(SqlSession& sql, std::string suffix = {})
      : sql_(sql), suffix_(std::move(suffix)) {}

  [[nodiscard]] SqlSession& sql() const noexcept { return sql_; }
  // The physical name of a table the projection owns: `live_name`, or its shadow.
  [[nodiscard]] std::string table(std::string_view live_name) const {
    return std::string(live_name) + suffix_;
  }
  // The physical name of an index; unique for every rebuild generation.
  [[nodiscard]] std::string index(std::string_view base_name) const {
    return std::string(base_name) + suffix_;
  }
  [[nodiscard]] bool is_shadow() const noexcept { return !suffix_.empty(); }
  [[nodiscard]] const std::string& suffix() const noexcept { return suffix_; }

 private:
  SqlSession& sql_;
  std::string suffix_;
};

// A table a projection owns, by its live name, with the columns that identify a row (what a
// rebuild compares and reports by).
struct ProjectionTable {
  std::string name;
  std::vector<std::string> key_columns;
};

class Projection {
 public:
  virtual ~Projection() = default;

  // Stable name, the key of its checkpoint, e.g. "workflow_runs".
  [[nodiscard]] virtual std::string name() const = 0;
  // Bump when apply() changes meaning: the tables are then rebuilt from the log.
  [[nodiscard]] virtual std::uint32_t version() const = 0;
  // The event types apply() wants; empty for all. Others only advance the checkpoint.
  [[nodiscard]] virtual std::vector<std::string> handled_types() const = 0;
  // Every table the projection writes.
  [[nodiscard]] virtual std::vector<ProjectionTable> tables() const = 0;

  // Creates the tables and indexes if missing (CREATE ... IF NOT EXISTS).
  virtual void setup(ProjectionContext& ctx) = 0;
  // Applies one event. Throwing rolls back the whole batch (or the append, when inline).
  virtual void apply(const RecordedEvent& event, ProjectionContext& ctx) = 0;

  // Inside the transaction that applied `events` to the live tables, just before it commits:
  // the rows they touch are about to change. Followed by committed() or rolled_back() with the
  // same events. (A cache stops serving those rows in between.)
  virtual void committing(const std::vector<RecordedEvent>& events) noexcept { (void)events; }
  // After a transaction that applied `events` to the live tables committed.
  virtual void committed(const std::vector<RecordedEvent>& events) noexcept { (void)events; }
  // After that transaction rolled back instead.
  virtual void rolled_back(const std::vector<RecordedEvent>& events) noexcept { (void)events; }
  // After a rebuild replaced the live tables: any cached row may have changed.
  virtual void reset() noexcept {}
};

}  // namespace annals
