// The in-process backend: one vector of records under a reader/writer lock. It exists to give
// tests and examples the exact semantics of the SQLite backend without a file.

#include <boost/container_hash/hash.hpp>
#include <boost/uuid/uuid_hash.hpp>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "store_internal.hpp"

namespace annals::detail {
namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

class MemoryEventStore final : public EventStore {
 public:
  explicit MemoryEventStore(StoreOptions options) : options_(std::move(options)) {}

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    return append(single_stream(stream_id, expected, std::move(events)));
  }

  AppendResult append(std::vector<StreamAppend> batch) override {
    validate_batch(batch);
    const Timestamp recorded_at = read_clock(options_);
    std::unique_lock lock(mutex_);

    // Stage everything first; the log changes only once nothing can fail.
    std::map<std::string, std::uint64_t, std::less<>> staged_versions;
    std::unordered_set<boost::uuids::uuid, boost::hash<boost::uuids::uuid>> staged_ids;
    std::vector<RecordedEvent> staged;
    std::uint64_t position = log_.size();
    AppendResult result{position + 1, 0, 0};
    for (StreamAppend& part : batch) {
      std::optional<std::uint64_t> actual;
      if (auto it = staged_versions.find(part.stream_id); it != staged_versions.end()) {
        actual = it->second;
      } else if (auto s = streams_.find(part.stream_id); s != streams_.end()) {
        actual = s->second.size();
      }
      check_expected(part.stream_id, part.expected, actual);
      std::uint64_t version = actual.value_or(0);
      for (NewEvent& e : part.events) {
        if (e.event_id.is_nil()) e.event_id = new_event_id();
        if (ids_.contains(e.event_id) || !staged_ids.insert(e.event_id).second) {
          throw_duplicate_event_id(part.stream_id, e.event_id);
        }
        staged.push_back(RecordedEvent{++position, part.stream_id, ++version, e.event_id,
                                       std::move(e.type), e.schema_version, std::move(e.payload),
                                       std::move(e.metadata), recorded_at, e.payload_format});
      }
      staged_versions.insert_or_assign(part.stream_id, version);
      result.stream_version = version;
    }
    result.last_position = position;

    // Reserve so the commit below cannot throw half-way.
    log_.reserve(log_.size() + staged.size());
    ids_.reserve(ids_.size() + staged.size());
    for (const auto& [id, version] : staged_versions) {
      auto& indexes = streams_[id];
      indexes.reserve(version);
    }
    for (RecordedEvent& r : staged) {
      ids_.insert(r.event_id);
      streams_.find(r.stream_id)->second.push_back(log_.size());
      log_.push_back(std::move(r));
    }
    return result;
  }

  std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::uint64_t from_version,
                                         std::size_t max_count) const override {
    validate_stream_id(stream_id, "read_stream");
    if (from_version == 0) {
      throw InvalidArgument("read_stream " + std::string(stream_id) +
                            ": from_version 0: versions start at 1");
    }
    std::shared_lock lock(mutex_);
    std::vector<RecordedEvent> out;
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return out;
    const auto& indexes = it->second;
    for (std::size_t v = from_version - 1; v < indexes.size() && out.size() < max_count; ++v) {
      out.push_back(log_[indexes[v]]);
    }
    return out;
  }

  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    if (from_position == 0) {
      throw InvalidArgument("read_all: from_position 0: positions start at 1");
    }
    std::shared_lock lock(mutex_);
    std::vector<RecordedEvent> out;
    for (std::uint64_t p = from_position; p <= log_.size() && out.size() < max_count; ++p) {
      out.push_back(log_[p - 1]);
    }
    return out;
  }

  std::uint64_t head_position() const override {
    std::shared_lock lock(mutex_);
    return log_.size();
  }

  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    validate_stream_id(stream_id, "stream_version");
    std::shared_lock lock(mutex_);
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return std::nullopt;
    return it->second.size();
  }

  PayloadFormat payload_format() const noexcept override { return options_.payload_format; }

 private:
  const StoreOptions options_;
  mutable std::shared_mutex mutex_;
  std::vector<RecordedEvent> log_;  // log_[p - 1] is position p
  std::unordered_map<std::string, std::vector<std::size_t>, StringHash, std::equal_to<>> streams_;
  std::unordered_set<boost::uuids::uuid, boost::hash<boost::uuids::uuid>> ids_;
};

}  // namespace

std::shared_ptr<EventStore> make_memory_event_store(const StoreOptions& options) {
  return std::make_shared<MemoryEventStore>(options);
}

}  // namespace annals::detail
