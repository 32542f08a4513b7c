// Reading the log through an SqlSession: what projections use inside their transactions.

#include <algorithm>
#include <cstdint>

#include "annals/store/sql_event_store.hpp"
#include "store_internal.hpp"

namespace annals {

namespace detail {

RecordedEvent make_record(std::uint64_t position, std::string stream_id, std::uint64_t version,
                          const std::string& event_id, std::string type,
                          std::uint32_t schema_version, const std::string& payload_format,
                          std::string payload, EventMetadata metadata, Timestamp recorded_at,
                          std::string_view hash) {
  RecordedEvent r{position,
                  std::move(stream_id),
                  version,
                  {},
                  std::move(type),
                  schema_version,
                  std::move(payload),
                  std::move(metadata),
                  recorded_at,
                  PayloadFormat::json};
  try {
    r.event_id = parse_uuid(event_id);
    r.payload_format = parse_payload_format(payload_format);
    if (hash.size() != r.hash.size()) {
      throw InvalidArgument("its hash is " + std::to_string(hash.size()) + " bytes, expected " +
                            std::to_string(r.hash.size()));
    }
    std::copy(hash.begin(), hash.end(), r.hash.begin());
  } catch (const InvalidArgument& e) {
    throw IntegrityError("event at position " + std::to_string(r.position) + " in stream " +
                             r.stream_id + " is damaged: " + e.what(),
                         r.position);
  }
  return r;
}

}  // namespace detail

std::vector<RecordedEvent> read_events(SqlSession& sql, std::uint64_t from_position,
                                       std::size_t max_count) {
  detail::validate_from(from_position, "from_position", "read_events");
  std::vector<RecordedEvent> out;
  if (max_count == 0) return out;
  // No LIMIT -1 for "all" (SQLite's spelling, an error in PostgreSQL): INT64_MAX is both's.
  const std::int64_t limit = max_count > static_cast<std::size_t>(INT64_MAX)
                                 ? INT64_MAX
                                 : static_cast<std::int64_t>(max_count);
  auto cursor = sql.open_cursor(std::string("SELECT ") + detail::kEventColumns +
                                    " FROM annals_events WHERE position >= $1 ORDER BY position"
                                    " LIMIT $2",
                                {static_cast<std::int64_t>(from_position), limit});
  SqlRow row;
  while (cursor->next(row)) {
    out.push_back(detail::make_record(static_cast<std::uint64_t>(row.integer(0)), row.text(1),
                                      static_cast<std::uint64_t>(row.integer(2)), row.text(3),
                                      row.text(4), static_cast<std::uint32_t>(row.integer(5)),
                                      row.text(6), row.text(7),
                                      EventMetadata{row.text(8), row.text(9), row.text(10),
                                                    row.text(11), from_micros(row.integer(12))},
                                      from_micros(row.integer(13)), row.text(14)));
  }
  return out;
}

std::uint64_t head_position(SqlSession& sql) {
  return static_cast<std::uint64_t>(
      sql.query("SELECT coalesce(max(position), 0) FROM annals_events").front().integer(0));
}

}  // namespace annals
