#pragma once

// Everything annals offers, in one include.

#include "annals/aggregates/aggregate.hpp"
#include "annals/aggregates/workflow_run.hpp"
#include "annals/events/codec.hpp"
#include "annals/events/error.hpp"
#include "annals/events/event.hpp"
#include "annals/events/workflow_events.hpp"
#include "annals/repositories/aggregate_repository.hpp"
#include "annals/store/event_store.hpp"
