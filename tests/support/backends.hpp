#pragma once

// The backends the conformance suite runs against, behind one fixture shape:
//   Backend b;  auto store = b.open("payload=binary");  store = b.reopen();

#include <memory>
#include <string>

#include "annals/store/event_store.hpp"
#include "support/temp_dir.hpp"

namespace annals::test {

struct MemoryBackend {
  static constexpr const char* kName = "memory";
  static constexpr bool kPersistent = false;

  std::shared_ptr<EventStore> open(const std::string& options = "", const StoreOptions& base = {}) {
    store = open_event_store(options.empty() ? "memory:" : "memory:?" + options, base);
    return store;
  }
  // A memory store lives only as long as its object: "reopening" hands back the same one.
  std::shared_ptr<EventStore> reopen() { return store; }

  std::shared_ptr<EventStore> store;
};

struct SqliteBackend {
  static constexpr const char* kName = "sqlite";
  static constexpr bool kPersistent = true;

  std::shared_ptr<EventStore> open(const std::string& options = "", const StoreOptions& base = {}) {
    uri = dir.sqlite_uri("events.db", options);
    base_options = base;
    store = open_event_store(uri, base);
    return store;
  }
  // Drops every connection and opens the file again.
  std::shared_ptr<EventStore> reopen() {
    store.reset();
    store = open_event_store(uri, base_options);
    return store;
  }

  TempDir dir;
  std::string uri;
  StoreOptions base_options;
  std::shared_ptr<EventStore> store;
};

// A small valid event; payload defaults to a JSON document.
inline NewEvent make_event(std::string type = "Thing", std::string payload = R"({"n":1})") {
  NewEvent e;
  e.type = std::move(type);
  e.payload = std::move(payload);
  return e;
}

inline std::vector<NewEvent> make_events(std::size_t n, const std::string& type = "Thing") {
  std::vector<NewEvent> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(make_event(type, "{\"n\":" + std::to_string(i) + "}"));
  }
  return out;
}

}  // namespace annals::test
