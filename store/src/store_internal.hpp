#pragma once

// Pieces every backend shares, so the backends agree on what is valid and on the words of
// their errors. Not installed.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "annals/store/event_store.hpp"

namespace annals::detail {

// InvalidArgument unless the id is 1..1024 bytes with no NUL byte.
void validate_stream_id(std::string_view stream_id, std::string_view operation);

// InvalidArgument unless the batch has parts, each with a valid stream id and at least one
// event whose type is 1..256 bytes, schema version >= 1 and json payload is valid JSON.
void validate_batch(const std::vector<StreamAppend>& batch);

// ConcurrencyError naming stream, expected and actual version unless expected matches.
void check_expected(std::string_view stream_id, const ExpectedVersion& expected,
                    std::optional<std::uint64_t> actual);

// "append to <stream>: event id <id> is already in the store" as an InvalidArgument.
[[noreturn]] void throw_duplicate_event_id(std::string_view stream_id,
                                           const boost::uuids::uuid& event_id);

// A one-part batch: how each backend's single-stream append() forwards to its batch append().
[[nodiscard]] std::vector<StreamAppend> single_stream(std::string_view stream_id,
                                                      ExpectedVersion expected,
                                                      std::vector<NewEvent> events);

// The store's clock: options.clock if set, else the system clock.
[[nodiscard]] Timestamp read_clock(const StoreOptions& options);

std::shared_ptr<EventStore> make_memory_event_store(const StoreOptions& options);
std::shared_ptr<EventStore> make_sqlite_event_store(const std::string& path,
                                                    const StoreOptions& options);

}  // namespace annals::detail
