#include "annals/repositories/repository_factory.hpp"

#include <cstdlib>
#include <utility>

#include "annals/events/error.hpp"
#include "annals/projections/engine.hpp"

namespace annals {

namespace {

std::string known_backends_text() {
  std::string out;
  for (const std::string& name : RepositoryFactory::known_backends()) {
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

std::shared_ptr<SqlEventStore> open_configured(const RepositoryFactoryConfig& config) {
  if (config.backend == "sqlite") {
    if (config.path.empty()) {
      throw InvalidArgument("RepositoryFactory: backend 'sqlite' needs a path");
    }
    return open_sql_event_store("sqlite:" + config.path, config.store_options);
  }
  if (config.backend == "memory") {
    if (!config.path.empty()) {
      throw InvalidArgument("RepositoryFactory: backend 'memory' takes no path, got '" +
                            config.path + "'");
    }
    return open_sql_event_store("memory:", config.store_options);
  }
  throw InvalidArgument("RepositoryFactory: unknown backend '" + config.backend +
                        "' (known backends: " + known_backends_text() + ")");
}

}  // namespace

std::vector<std::string> RepositoryFactory::known_backends() { return {"sqlite", "memory"}; }

RepositoryFactory::RepositoryFactory(std::shared_ptr<SqlEventStore> store)
    : store_(std::move(store)), projection_(std::make_shared<WorkflowProjection>()) {
  attach_inline_projections(*store_, {projection_});
}

RepositoryFactory::RepositoryFactory(std::string_view store_uri)
    : RepositoryFactory(open_sql_event_store(store_uri)) {}

RepositoryFactory::RepositoryFactory(const RepositoryFactoryConfig& config)
    : RepositoryFactory(open_configured(config)) {}

RepositoryFactory RepositoryFactory::from_environment() {
  const char* uri = std::getenv(kStoreUriVariable);
  if (uri == nullptr || *uri == '\0') {
    throw InvalidArgument(std::string("RepositoryFactory::from_environment: ") + kStoreUriVariable +
                          " is not set; set it to a store URI such as sqlite:/path/events.db");
  }
  return RepositoryFactory(std::string_view(uri));
}

AggregateRepository<WorkflowRun> RepositoryFactory::create_workflow_run_aggregate_repository()
    const {
  return AggregateRepository<WorkflowRun>(store_);
}

AggregateRepository<WorkflowRun> RepositoryFactory::create_workflow_run_aggregate_repository(
    SnapshotPolicy snapshots) const {
  return AggregateRepository<WorkflowRun>(store_, std::move(snapshots));
}

WorkflowRunRepository RepositoryFactory::create_workflow_run_repository() const {
  return WorkflowRunRepository(store_);
}

NodeExecutionRepository RepositoryFactory::create_node_execution_repository() const {
  return NodeExecutionRepository(store_);
}

}  // namespace annals
