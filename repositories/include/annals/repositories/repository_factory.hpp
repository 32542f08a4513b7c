#pragma once

// RepositoryFactory: the one object an embedding application opens. It opens the event store,
// sets up the workflow read tables beside the log and runs the WorkflowProjection inline, so a
// query right after a save sees it, and hands out the repositories.
//
//   annals::RepositoryFactory factory("sqlite:/var/lib/app/events.db");
//   auto runs = factory.create_workflow_run_aggregate_repository();    // commands
//   auto queries = factory.create_workflow_run_repository();           // reads, deletes
//   auto nodes = factory.create_node_execution_repository();
//
//   // or from configuration:
//   annals::RepositoryFactory a({.backend = "sqlite", .path = "/data/events.db"});
//   auto b = annals::RepositoryFactory::from_environment();  // reads ANNALS_STORE_URI
//
// Opening catches the read tables up with the log (rebuilding them first if they were written by
// another version of the projection), so the first open of a large log takes a while.
//
// Thread-safety: a factory and every repository it hands out may be used from any number of
// threads at once; they share one store object. Copies share it too.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "annals/aggregates/workflow_run.hpp"
#include "annals/projections/workflow_projection.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/repositories/node_execution_repository.hpp"
#include "annals/repositories/workflow_run_repository.hpp"
#include "annals/store/event_store.hpp"
#include "annals/store/sql_event_store.hpp"

namespace annals {

// Where the store is, by backend name.
struct RepositoryFactoryConfig {
  std::string backend = "sqlite";  // "sqlite" (a file) or "memory" (in-process, for tests)
  std::string path{};              // the SQLite file, for "sqlite"; must be empty for "memory"
  StoreOptions store_options{};    // payload format, durability, busy timeout, clock
};

class RepositoryFactory {
 public:
  // The environment variable from_environment() reads.
  static constexpr const char* kStoreUriVariable = "ANNALS_STORE_URI";

  // Opens the store at `store_uri` ("sqlite:<path>", "memory:", with options after '?', as
  // open_event_store() takes them), creates the read tables if missing, catches them up with the
  // log and attaches the WorkflowProjection inline. Throws InvalidArgument for a URI that is not
  // an SQL store; StoreError if it cannot be opened.
  explicit RepositoryFactory(std::string_view store_uri);
  // The same from a config. Throws InvalidArgument for an unknown backend (listing the known
  // ones), a "sqlite" backend without a path or a "memory" one with one.
  explicit RepositoryFactory(const RepositoryFactoryConfig& config);

  // From the store URI in ANNALS_STORE_URI. Throws InvalidArgument if it is unset or empty.
  [[nodiscard]] static RepositoryFactory from_environment();

  // The backends a config may name: "sqlite", "memory".
  [[nodiscard]] static std::vector<std::string> known_backends();

  [[nodiscard]] std::shared_ptr<EventStore> event_store() const { return store_; }
  [[nodiscard]] std::shared_ptr<SqlEventStore> sql_event_store() const { return store_; }
  // The projection keeping the read tables, e.g. to subscribe to its change notifications.
  [[nodiscard]] std::shared_ptr<WorkflowProjection> workflow_projection() const {
    return projection_;
  }

  [[nodiscard]] AggregateRepository<WorkflowRun> create_workflow_run_aggregate_repository() const;
  // The same with snapshots beside the log as `snapshots` says (aggregate_repository.hpp).
  [[nodiscard]] AggregateRepository<WorkflowRun> create_workflow_run_aggregate_repository(
      SnapshotPolicy snapshots) const;
  [[nodiscard]] WorkflowRunRepository create_workflow_run_repository() const;
  [[nodiscard]] NodeExecutionRepository create_node_execution_repository() const;

 private:
  explicit RepositoryFactory(std::shared_ptr<SqlEventStore> store);

  std::shared_ptr<SqlEventStore> store_;
  std::shared_ptr<WorkflowProjection> projection_;
};

}  // namespace annals
