#pragma once

// An EventStore decorator that fails the next N appends with StoreError before they reach
// the real store, to test what callers do when a write fails.

#include <atomic>
#include <memory>

#include "annals/store/event_store.hpp"

namespace annals::test {

class FaultyStore final : public EventStore {
 public:
  explicit FaultyStore(std::shared_ptr<EventStore> inner) : inner_(std::move(inner)) {}

  void fail_next_appends(int n) { failures_ = n; }

  AppendResult append(std::string_view stream_id, ExpectedVersion expected,
                      std::vector<NewEvent> events) override {
    maybe_fail();
    return inner_->append(stream_id, expected, std::move(events));
  }
  AppendResult append(std::vector<StreamAppend> batch) override {
    maybe_fail();
    return inner_->append(std::move(batch));
  }
  std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::uint64_t from_version,
                                         std::size_t max_count) const override {
    return inner_->read_stream(stream_id, from_version, max_count);
  }
  std::vector<RecordedEvent> read_all(std::uint64_t from_position,
                                      std::size_t max_count) const override {
    return inner_->read_all(from_position, max_count);
  }
  std::uint64_t head_position() const override { return inner_->head_position(); }
  std::optional<std::uint64_t> stream_version(std::string_view stream_id) const override {
    return inner_->stream_version(stream_id);
  }
  PayloadFormat payload_format() const noexcept override { return inner_->payload_format(); }

 private:
  void maybe_fail() {
    if (failures_ > 0) {
      --failures_;
      throw StoreError("injected fault: disk I/O error");
    }
  }

  std::shared_ptr<EventStore> inner_;
  std::atomic<int> failures_{0};
};

}  // namespace annals::test
