#include "annals/projections/checkpoint.hpp"

namespace annals {

void ensure_checkpoint_table(SqlSession& sql) {
  sql.execute_script(
      "CREATE TABLE IF NOT EXISTS annals_projections ("
      " name TEXT PRIMARY KEY,"
      " version INTEGER NOT NULL,"
      " position INTEGER NOT NULL,"
      " generation INTEGER NOT NULL,"
      " updated_at INTEGER NOT NULL)");
}

namespace {
ProjectionCheckpoint from_row(const SqlRow& row) {
  return ProjectionCheckpoint{row.text(0), static_cast<std::uint32_t>(row.integer(1)),
                              static_cast<std::uint64_t>(row.integer(2)),
                              static_cast<std::uint64_t>(row.integer(3)),
                              from_micros(row.integer(4))};
}
constexpr const char* kSelect =
    "SELECT name, version, position, generation, updated_at FROM annals_projections";
}  // namespace

std::optional<ProjectionCheckpoint> read_checkpoint(SqlSession& sql, std::string_view name) {
  const auto rows = sql.query(std::string(kSelect) + " WHERE name = $1", {std::string(name)});
  if (rows.empty()) return std::nullopt;
  return from_row(rows.front());
}

void write_checkpoint(SqlSession& sql, const ProjectionCheckpoint& c) {
  sql.execute(
      "INSERT INTO annals_projections (name, version, position, generation, updated_at)"
      " VALUES ($1, $2, $3, $4, $5)"
      " ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
      " position = excluded.position, generation = excluded.generation,"
      " updated_at = excluded.updated_at",
      {c.name, static_cast<std::int64_t>(c.version), static_cast<std::int64_t>(c.position),
       static_cast<std::int64_t>(c.generation), to_micros(c.updated_at)});
}

std::vector<ProjectionCheckpoint> list_checkpoints(SqlSession& sql) {
  std::vector<ProjectionCheckpoint> out;
  for (const SqlRow& row : sql.query(std::string(kSelect) + " ORDER BY name")) {
    out.push_back(from_row(row));
  }
  return out;
}

}  // namespace annals
