#pragma once

// Pieces every backend shares, so the backends agree on what is valid and on the words of
// their errors. Not installed.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/store/sql_event_store.hpp"

namespace annals::detail {

// InvalidArgument unless the id is 1..1024 bytes with no NUL byte.
void validate_stream_id(std::string_view stream_id, std::string_view operation);

// InvalidArgument unless the batch has parts, each with a valid stream id and at least one
// event whose type is 1..256 bytes, schema version >= 1 and json payload is valid JSON.
void validate_batch(const std::vector<StreamAppend>& batch);

// InvalidArgument unless from (a version or position) is at least 1.
void validate_from(std::uint64_t from, std::string_view what, std::string_view operation);

// ConcurrencyError naming stream, expected and actual version unless expected matches.
void check_expected(std::string_view stream_id, const ExpectedVersion& expected,
                    std::optional<std::uint64_t> actual);

// "append to <stream>: event id <id> is already in the store" as an InvalidArgument.
[[noreturn]] void throw_duplicate_event_id(std::string_view stream_id,
                                           const boost::uuids::uuid& event_id);

// A one-part batch: how the single-stream append() forwards to the batch append().
[[nodiscard]] std::vector<StreamAppend> single_stream(std::string_view stream_id,
                                                      ExpectedVersion expected,
                                                      std::vector<NewEvent> events);

// The store's clock: options.clock if set, else the system clock.
[[nodiscard]] Timestamp read_clock(const StoreOptions& options);

// The columns of annals_events in the order every reader selects them.
inline constexpr const char* kEventColumns =
    "position, stream_id, version, event_id, type, schema_version, payload_format, payload, "
    "tenant_id, actor, correlation_id, causation_id, occurred_at, recorded_at, hash";

// Builds a record from the parts of a row of kEventColumns; IntegrityError (with the position)
// if the stored event id, payload format or hash is damaged.
[[nodiscard]] RecordedEvent make_record(std::uint64_t position, std::string stream_id,
                                        std::uint64_t version, const std::string& event_id,
                                        std::string type, std::uint32_t schema_version,
                                        const std::string& payload_format, std::string payload,
                                        EventMetadata metadata, Timestamp recorded_at,
                                        std::string_view hash);

// The SQLite backend on a file, or (path empty) on a private in-memory database.
std::shared_ptr<SqlEventStore> make_sqlite_event_store(const std::string& path,
                                                       const StoreOptions& options);

// The PostgreSQL backend on a libpq connection string (annals' options already taken out of
// it). Only in a build with ANNALS_HAVE_POSTGRESQL (pg_event_store.cpp).
std::shared_ptr<SqlEventStore> make_pg_event_store(const std::string& conninfo,
                                                   const StoreOptions& options);

}  // namespace annals::detail
