// Reconciliation on fakes: adopt, resume, finish, remove orphans, never a second driver.
#include <future>

#include "engine/container_spec.h"
#include "engine/engine_harness.h"

namespace taolie::testing {
namespace {

using domain::DeploymentState;
using Kinds = std::vector<std::string>;

docker::ContainerSpec Orphan(const std::string& agent, const std::string& deployment) {
  docker::ContainerSpec s;
  s.name = "deployment-" + deployment;
  s.image = "x";
  s.labels = {{engine::kLabelManaged, "true"},
              {engine::kLabelAgent, agent},
              {engine::kLabelDeployment, deployment}};
  return s;
}

TEST_F(EngineTest, ReconcileAdoptsRunningAndRemovesOnlyOurOrphans) {
  DeployNow("d1");
  auto ours = docker.Create(Orphan("agent-1", "gone"));
  auto foreign = docker.Create(Orphan("someone-else", "theirs"));
  ASSERT_TRUE(ours.ok() && foreign.ok());
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.containers.count(*ours), 0u);
  EXPECT_EQ(docker.containers.count(*foreign), 1u);
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});
}

TEST_F(EngineTest, ReconcileResumesAHalfDoneDeployAndPendingCommands) {
  DeployNow("d1");
  store.deployments["d1"].state = DeploymentState::kReadiness;
  store.deployments["d1"].started_at.reset();
  store.events.clear();
  auto pending = Command("cmd-d2", "deploy", Deploy("d2"));
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});
  EXPECT_EQ(store.Get("d2").state, DeploymentState::kRunning);
  EXPECT_EQ(Result("cmd-d2"), "succeeded");
}

TEST_F(EngineTest, ReconcileLeavesADeploymentAWorkerIsDrivingAlone) {
  DeployNow("d1");
  store.deployments["d1"].state = DeploymentState::kReadiness;
  store.events.clear();
  // A worker holds d1 (e.g. its readiness probe is running).
  std::promise<void> release;
  auto gate = release.get_future().share();
  engine->work().Submit(engine::Lane::kDeploy, "held", engine::DeploymentKey("d1"),
                        [gate](std::stop_token) { gate.wait(); });
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  release.set_value();
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(store.EventKinds("d1").empty());  // no resume was queued, no second success
}

TEST_F(EngineTest, ReconcileFinishesAnEndingAndFailsWhenTheDatabaseIsDown) {
  DeployNow("d1");
  store.deployments["d1"].state = DeploymentState::kStopping;
  store.deployments["d1"].end_status = "terminated";
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kEnded);
  store.down = true;
  Status st = engine->reconciler().Run({});
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  store.down = false;
}

// The database was lost (a fresh, empty store) while the rental's container kept running: the
// container is adopted from its labels, its GPU claimed (never offered again while it runs),
// and it expires on its deadline with its usage.
TEST_F(EngineTest, AfterTheDatabaseIsLostARunningRentalIsAdoptedFromItsLabels) {
  DeployNow("d1", 60);
  clock.Advance(std::chrono::minutes(20));
  const auto before = store.Get("d1");
  // The database is lost: rows, claims and commands gone; the container stays.
  store.deployments.clear();
  store.commands.clear();
  store.events.clear();
  for (auto& g : store.gpus) g.deployment_id.clear();
  store.ReleaseAllPorts();
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  ASSERT_TRUE(Idle());
  ASSERT_EQ(store.deployments.count("d1"), 1u);
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(d.container_id, before.container_id);
  EXPECT_EQ(d.command_id, "cmd-d1");
  EXPECT_EQ(d.gpu_uuids, before.gpu_uuids);
  EXPECT_EQ(d.ports.size(), before.ports.size());
  ASSERT_TRUE(d.price_per_hour.has_value());
  EXPECT_DOUBLE_EQ(*d.price_per_hour, 1.20);
  EXPECT_FALSE(d.ssh_password.has_value());
  EXPECT_EQ(store.gpus[0].deployment_id, "d1");
  EXPECT_EQ(rt->containers_adopted.load(), 1u);
  EXPECT_EQ(docker.containers.size(), 1u);

  // A new deploy cannot take its GPU or its ports.
  auto taken = Command("cmd-d2", "deploy", Deploy("d2"));
  taken.payload_json = nlohmann::json{
      {"deployment_id", "d2"},
      {"image", "registry.local/sshd:1"},
      {"gpu_count", 2},  // GPU-b is the only free one
      {"ports",
       {{"22", 22}}}}.dump();
  engine->commands().Process(taken, {});
  EXPECT_EQ(Result("cmd-d2"), "failed");

  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());  // 40 min left: nothing to do
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  clock.Advance(std::chrono::minutes(40));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").end_status, "expired");
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"terminated"});
  EXPECT_TRUE(docker.containers.empty());
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, AContainerWithoutARowThatCannotBeAdoptedIsEnded) {
  auto spec = Orphan("agent-1", "lost");
  spec.labels[engine::kLabelCommand] = "cmd-lost";  // but no duration or deadline
  auto id = docker.Create(spec);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(docker.Start(*id).ok());
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  EXPECT_EQ(docker.containers.count(*id), 0u);
  EXPECT_EQ(store.deployments.count("lost"), 0u);
  EXPECT_EQ(rt->containers_ended_unadoptable.load(), 1u);
}

TEST_F(EngineTest, AContainerWhoseDeploymentEndedIsRemovedNotAdopted) {
  DeployNow("d1");
  const std::string cid = store.Get("d1").container_id;
  auto d = store.Get("d1");
  d.state = DeploymentState::kEnded;
  store.deployments["d1"] = d;  // ended, but its container was left behind
  ASSERT_TRUE(engine->reconciler().Run({}).ok());
  EXPECT_EQ(docker.containers.count(cid), 0u);
  EXPECT_EQ(rt->containers_adopted.load(), 0u);
}

}  // namespace
}  // namespace taolie::testing
