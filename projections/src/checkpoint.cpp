#include "annals/projections/checkpoint.hpp"

namespace annals {

void ensure_checkpoint_table(SqlSession& sql) {
  // Read and written by every inline append: in SQLite the rows live in their key's b-tree
  // (WITHOUT ROWID), so each is one search, not the key's index and then the row.
  // PostgreSQL's INTEGER is 32 bits: positions and microsecond times need BIGINT there.
  const bool sqlite = sql.dialect() == "sqlite";
  const std::string integer = sqlite ? "INTEGER" : "BIGINT";
  sql.execute_script(
      "CREATE TABLE IF NOT EXISTS annals_projections ("
      " name TEXT NOT NULL PRIMARY KEY,"
      " version " +
      integer +
      " NOT NULL,"
      " position " +
      integer +
      " NOT NULL,"
      " generation " +
      integer +
      " NOT NULL,"
      " updated_at " +
      integer + " NOT NULL)" + (sqlite ? " WITHOUT ROWID" : ""));
}

namespace {
ProjectionCheckpoint from_row(const SqlRow& row) {
  return ProjectionCheckpoint{row.text(0), static_cast<std::uint32_t>(row.integer(1)),
                              static_cast<std::uint64_t>(row.integer(2)),
                              static_cast<std::uint64_t>(row.integer(3)),
                              from_micros(row.integer(4))};
}
#define ANNALS_CHECKPOINT_SELECT \
  "SELECT name, version, position, generation, updated_at FROM annals_projections"
constexpr std::string_view kSelectByName = ANNALS_CHECKPOINT_SELECT " WHERE name = $1";
constexpr std::string_view kSelectAll = ANNALS_CHECKPOINT_SELECT " ORDER BY name";
#undef ANNALS_CHECKPOINT_SELECT
// The row exists after a projection's first batch, so writing it is an UPDATE; the INSERT is
// for the first time only. (An UPSERT costs SQLite about a third more: it searches the key
// for the conflict and again for the update.)
constexpr std::string_view kUpdate =
    "UPDATE annals_projections SET version = $2, position = $3, generation = $4,"
    " updated_at = $5 WHERE name = $1";
constexpr std::string_view kInsert =
    "INSERT INTO annals_projections (name, version, position, generation, updated_at)"
    " VALUES ($1, $2, $3, $4, $5)";
}  // namespace

std::optional<ProjectionCheckpoint> read_checkpoint(SqlSession& sql, std::string_view name) {
  const auto rows = sql.query(kSelectByName, {std::string(name)});
  if (rows.empty()) return std::nullopt;
  return from_row(rows.front());
}

void write_checkpoint(SqlSession& sql, const ProjectionCheckpoint& c) {
  const std::vector<SqlValue> params{
      c.name, static_cast<std::int64_t>(c.version), static_cast<std::int64_t>(c.position),
      static_cast<std::int64_t>(c.generation), to_micros(c.updated_at)};
  if (sql.execute(kUpdate, params) == 0) sql.execute(kInsert, params);
}

std::vector<ProjectionCheckpoint> list_checkpoints(SqlSession& sql) {
  std::vector<ProjectionCheckpoint> out;
  for (const SqlRow& row : sql.query(kSelectAll)) {
    out.push_back(from_row(row));
  }
  return out;
}

}  // namespace annals
