#pragma once
// Store seam: the agent's durable state. PgStore implements it on PostgreSQL via libpq.
// Every method is one transaction. Methods that take `events` append them to the outbox in
// the same transaction as the state change (crash safety: the change and its report are one).
//
// The seam is five roles, one per table group; a part of the agent that needs one group can
// take just that role (a test then fakes just that role: tests/fakes/fake_*_store.h):
//   CommandStore     command_store.h     commands received and the outbox (OutboxHead)
//   DeploymentStore  deployment_store.h  rentals, their GPU claims (GpuClaim) and ports
//   GpuStore         gpu_store.h         GPU inventory, health, quarantine, XIDs
//   TelemetryStore   telemetry_store.h   metrics, health history, retention (Prune)
//   StateStore       state_store.h       agent key/value state, liveness (Ping)
// Store is all of them. The roles are virtual bases so that an implementation may be made of
// one class per role (as the test fake is) and still be one Store.
#include "store/command_store.h"
#include "store/deployment_store.h"
#include "store/gpu_store.h"
#include "store/state_store.h"
#include "store/telemetry_store.h"

namespace taolie::store {

class Store : public virtual CommandStore,
              public virtual DeploymentStore,
              public virtual GpuStore,
              public virtual TelemetryStore,
              public virtual StateStore {
 public:
  ~Store() override = default;
};

}  // namespace taolie::store
