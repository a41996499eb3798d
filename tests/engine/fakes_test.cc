// The fakes fail loudly on calls a test did not set up.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"

namespace taolie::testing {
namespace {

TEST(Fakes, FailLoudlyOnUnexpectedCalls) {
  FakeStore store;
  EXPECT_NONFATAL_FAILURE((void)store.InsertMetricSample({}),
                          "unexpected call to InsertMetricSample");
  EXPECT_NONFATAL_FAILURE((void)store.OutboxHeads(1), "unexpected call to OutboxHeads");
  FakeDocker docker;
  EXPECT_NONFATAL_FAILURE((void)docker.Kill("c1", "KILL"), "unexpected Kill");
  FakeGpuProbe gpus;
  EXPECT_NONFATAL_FAILURE((void)gpus.DrainXids(), "unexpected call to DrainXids");
  FakeHostProbe host;
  EXPECT_NONFATAL_FAILURE((void)host.Sample(), "unexpected call to Sample");
  StrictPlatformApi api;
  EXPECT_NONFATAL_FAILURE((void)api.Send(platform::Method::kGet, "/api/x", "", {}),
                          "unexpected request to /api/x");
}

TEST(Fakes, StoreEnforcesTheTransitionInvariants) {
  FakeStore store;
  store.AddGpu("GPU-a");
  domain::Deployment d;
  d.id = "d1";
  d.command_id = "c1";
  ASSERT_TRUE(store.CreateDeployment(d, {1, {}}, {}).ok());
  store::OutboxEvent success;
  success.deployment_id = "d1";
  success.kind = domain::EventKind::kSuccess;
  success.path = "/api/deployments/d1/success";
  d.state = domain::DeploymentState::kRunning;
  EXPECT_EQ(store.UpdateDeployment(d, {success}).error().code, ErrorCode::kFailedPrecondition);
  d.state = domain::DeploymentState::kReadiness;
  ASSERT_TRUE(store.UpdateDeployment(d, {}).ok());
  d.state = domain::DeploymentState::kRunning;
  ASSERT_TRUE(store.UpdateDeployment(d, {success}).ok());
  EXPECT_EQ(store.UpdateDeployment(d, {success}).error().code, ErrorCode::kFailedPrecondition);
  d.state = domain::DeploymentState::kAccepted;
  EXPECT_EQ(store.UpdateDeployment(d, {}).error().code, ErrorCode::kFailedPrecondition);
}

}  // namespace
}  // namespace taolie::testing
