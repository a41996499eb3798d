#pragma once
// In-memory Store for unit tests of the rental engine: the five role fakes on one set of tables
// (fake_store_tables.h). Deployments, commands, GPU claims, port allocations and the events
// written with them behave as PgStore's do (one "transaction" per call, forward-only states,
// claims released on kEnded). Everything else (outbox delivery, metrics, health, retention,
// agent state) is not the rental engine's business: a call fails the test loudly. `down` makes
// every call answer Unavailable (PostgreSQL gone). A test of a part that takes one role can use
// that role's fake alone (FakeGpuStore, ...).
#include "fakes/fake_command_store.h"
#include "fakes/fake_deployment_store.h"
#include "fakes/fake_gpu_store.h"
#include "fakes/fake_state_store.h"
#include "fakes/fake_store_tables.h"
#include "fakes/fake_telemetry_store.h"
#include "store/store.h"

namespace taolie::testing {

class FakeStore : public store::Store,
                  public FakeCommandStore,
                  public FakeDeploymentStore,
                  public FakeGpuStore,
                  public FakeTelemetryStore,
                  public FakeStateStore {};

}  // namespace taolie::testing
