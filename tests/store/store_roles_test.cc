// The Store seam as five roles, one per table group (issue 18 item 5): PgStore and FakeStore
// are each every role; a part that takes one role runs on that role's fake alone; FakeStore's
// roles share one set of tables, as PgStore's share one database; a test's override of one
// method still wins through any role.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "fakes/fake_store.h"
#include "store/pg_store.h"
#include "store/store.h"

namespace taolie::testing {
namespace {

template <typename T>
constexpr bool kIsEveryRole = std::is_base_of_v<store::CommandStore, T>&&
    std::is_base_of_v<store::DeploymentStore, T>&& std::is_base_of_v<store::GpuStore, T>&&
        std::is_base_of_v<store::TelemetryStore, T>&& std::is_base_of_v<store::StateStore, T>;
static_assert(kIsEveryRole<store::Store>);
static_assert(kIsEveryRole<store::PgStore>);
static_assert(kIsEveryRole<FakeStore>);
static_assert(!std::is_abstract_v<FakeStore>);
// A role's fake is that role and no other: a test using it cannot reach another table group.
static_assert(std::is_base_of_v<store::GpuStore, FakeGpuStore> &&
              !std::is_base_of_v<store::DeploymentStore, FakeGpuStore> &&
              !std::is_abstract_v<FakeGpuStore>);
static_assert(std::is_base_of_v<store::CommandStore, FakeCommandStore> &&
              !std::is_base_of_v<store::Store, FakeCommandStore> &&
              !std::is_abstract_v<FakeCommandStore>);
static_assert(!std::is_abstract_v<FakeDeploymentStore> && !std::is_abstract_v<FakeTelemetryStore> &&
              !std::is_abstract_v<FakeStateStore>);

// A part of the agent that needs only the GPU table takes only GpuStore.
Result<int> CountQuarantined(store::GpuStore& gpus) {
  auto list = gpus.ListGpus();
  if (!list.ok()) return list.error();
  int n = 0;
  for (const auto& g : *list) n += g.quarantined_since ? 1 : 0;
  return n;
}

domain::Deployment Rental(const std::string& id, int host_port) {
  domain::Deployment d;
  d.id = id;
  d.command_id = "cmd-" + id;
  d.image = "127.0.0.1:5555/taolie-test/sshd:1";
  d.ports = {domain::PortAllocation{host_port, 22, "ssh"}};
  return d;
}

TEST(StoreRoles, APartTakingGpuStoreRunsOnTheGpuFakeAlone) {
  FakeGpuStore fake;
  fake.AddGpu("GPU-a");
  fake.AddGpu("GPU-b");
  store::GpuStore& gpus = fake;
  ASSERT_TRUE(gpus.QuarantineGpu("GPU-b", "xid 79", /*needs_reset=*/true, {}).ok());
  EXPECT_EQ(CountQuarantined(gpus).value_or(-1), 1);
  EXPECT_TRUE(fake.gpus[1].needs_reset);
  ASSERT_TRUE(gpus.ReleaseGpu("GPU-b").ok());
  EXPECT_EQ(CountQuarantined(gpus).value_or(-1), 0);
  EXPECT_EQ(gpus.MarkGpuClean("GPU-x").error().code, ErrorCode::kNotFound);
  fake.down = true;
  EXPECT_EQ(CountQuarantined(gpus).error().code, ErrorCode::kUnavailable);
}

// Each role's fake on its own: what it keeps, and the database gone.
TEST(StoreRoles, EachRoleFakeWorksAloneAndGoesDownAlone) {
  FakeCommandStore commands;
  store::CommandRecord c;
  c.command_id = "c1";
  c.command_type = "deploy";
  c.payload_json = R"({"image":"x","registry_auth":{"password":"p"}})";
  EXPECT_TRUE(commands.RecordCommand(c).value_or(false));
  EXPECT_FALSE(commands.RecordCommand(c).value_or(true));  // known: only seen again
  EXPECT_TRUE(commands.commands.at("c1").registry_auth_withheld);
  EXPECT_EQ(commands.commands.at("c1").times_seen, 2);

  FakeDeploymentStore deployments;
  auto created = deployments.CreateDeployment(Rental("d1", 40022), store::GpuClaim{}, {});
  ASSERT_TRUE(created.ok()) << created.error().ToString();
  EXPECT_EQ(deployments.AllocatedPorts()->size(), 1u);
  EXPECT_EQ(deployments.CreateDeployment(Rental("d2", 40022), store::GpuClaim{}, {}).error().code,
            ErrorCode::kFailedPrecondition);  // port taken

  FakeTelemetryStore telemetry;
  telemetry.metering["d1"].samples = 3;
  EXPECT_EQ(telemetry.RentalMeteringOf("d1")->samples, 3);
  EXPECT_EQ(telemetry.RentalMeteringOf("d9")->samples, 0);

  FakeStateStore state;
  EXPECT_TRUE(state.Ping().ok());

  // One role fake down leaves the others up: each has its own tables.
  state.down = true;
  EXPECT_EQ(state.Ping().error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(deployments.ActiveDeployments().ok());
  commands.down = true;
  EXPECT_EQ(commands.GetCommand("c1").error().code, ErrorCode::kUnavailable);
  telemetry.down = true;
  EXPECT_EQ(telemetry.RentalMeteringOf("d1").error().code, ErrorCode::kUnavailable);
}

// FakeStore is one set of tables behind five roles: a claim made through DeploymentStore is in
// GpuStore's list and attributes an XID to the rental; `down` takes every role down.
TEST(StoreRoles, FakeStoreRolesShareOneSetOfTables) {
  FakeStore fake;
  fake.AddGpu("GPU-a");
  store::DeploymentStore& deployments = fake;
  store::GpuStore& gpus = fake;
  store::CommandStore& commands = fake;
  store::TelemetryStore& telemetry = fake;
  store::StateStore& state = fake;

  auto d = deployments.CreateDeployment(Rental("d1", 40022), store::GpuClaim{1, {}}, {});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->gpu_uuids, std::vector<std::string>{"GPU-a"});
  auto list = gpus.ListGpus();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)[0].deployment_id, "d1");
  store::XidRecord xid;
  xid.gpu_uuid = "GPU-a";
  xid.xid = 48;
  ASSERT_TRUE(gpus.RecordXids({xid}, std::nullopt).ok());
  EXPECT_EQ(fake.xids.at(0).deployment_id, "d1");

  // Ending the rental through DeploymentStore leaves the GPU dirty in GpuStore's view.
  domain::Deployment ended = *d;
  ended.state = domain::DeploymentState::kEnded;
  ASSERT_TRUE(deployments.UpdateDeployment(ended, {}).ok());
  EXPECT_TRUE(gpus.ListGpus()->at(0).dirty_since.has_value());
  ASSERT_TRUE(gpus.MarkGpuClean("GPU-a").ok());
  EXPECT_FALSE(fake.gpus[0].dirty_since.has_value());

  fake.down = true;
  EXPECT_EQ(state.Ping().error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(gpus.ListGpus().error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(deployments.ActiveDeployments().error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(commands.GetCommand("c1").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(telemetry.RentalMeteringOf("d1").error().code, ErrorCode::kUnavailable);
}

// A call the test did not set up fails it, whichever fake answers it.
TEST(StoreRoles, AnUnexpectedCallFailsTheTestThroughEveryFake) {
  FakeTelemetryStore telemetry;
  EXPECT_NONFATAL_FAILURE((void)telemetry.Prune({}), "unexpected call to Prune");
  FakeStore fake;
  store::CommandStore& commands = fake;
  EXPECT_NONFATAL_FAILURE((void)commands.PendingEvents(10), "unexpected call to PendingEvents");
  store::StateStore& state = fake;
  EXPECT_NONFATAL_FAILURE((void)state.GetState("agent_id"), "unexpected call to GetState");
}

// A test's FakeStore that accepts one more call (as the health loop's tests do) is reached
// through the role that declares it, and through Store.
class SyncingStore final : public FakeStore {
 public:
  Status SyncGpus(const std::vector<store::GpuRecord>& present) override {
    synced += static_cast<int>(present.size());
    return OkStatus();
  }
  Result<PruneResult> Prune(const PruneLimits&) override { return PruneResult{7, false}; }
  int synced = 0;
};

TEST(StoreRoles, ADerivedFakesOverrideWinsThroughEveryRole) {
  SyncingStore fake;
  store::GpuStore& gpus = fake;
  store::Store& all = fake;
  ASSERT_TRUE(gpus.SyncGpus({store::GpuRecord{}}).ok());
  ASSERT_TRUE(all.SyncGpus({store::GpuRecord{}, store::GpuRecord{}}).ok());
  EXPECT_EQ(fake.synced, 3);
  store::TelemetryStore& telemetry = fake;
  EXPECT_EQ(telemetry.Prune(store::Store::PruneLimits{})->rows, 7);
}

}  // namespace
}  // namespace taolie::testing
