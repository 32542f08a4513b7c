// Placeholder until the rebuild lands: keeps the library linkable.
#include "annals/projections/rebuild.hpp"

#include "annals/events/error.hpp"

namespace annals {

RebuildReport rebuild(SqlEventStore&, Projection& projection, const RebuildOptions&) {
  throw StoreError("rebuild of " + projection.name() + ": not implemented yet");
}

}  // namespace annals
