// Reconciliation on fakes: adopt, resume, finish, remove orphans, never a second driver.
#include <future>

#include "agent/container_spec.h"
#include "agent/engine_harness.h"

namespace taolie::testing {
namespace {

using domain::DeploymentState;
using Kinds = std::vector<std::string>;

docker::ContainerSpec Orphan(const std::string& agent, const std::string& deployment) {
  docker::ContainerSpec s;
  s.name = "deployment-" + deployment;
  s.image = "x";
  s.labels = {{agent::kLabelManaged, "true"},
              {agent::kLabelAgent, agent},
              {agent::kLabelDeployment, deployment}};
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
  engine->work().Submit(agent::Lane::kDeploy, "held", agent::DeploymentKey("d1"),
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

}  // namespace
}  // namespace taolie::testing
