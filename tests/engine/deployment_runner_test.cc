// The runner and the command handler on fakes: every state and crash point, cancellation of a
// hanging pull, identity, and stale copies. Time is the FakeClock's; nothing sleeps.
#include <future>
#include <thread>

#include "engine/container_spec.h"
#include "engine/engine_harness.h"
#include "fakes/fake_clock.h"

namespace taolie::testing {
namespace {

using domain::DeploymentState;
using std::chrono::minutes;
using std::chrono::seconds;
using Kinds = std::vector<std::string>;

TEST_F(EngineTest, DeployRunsToSuccessWithGpuPinnedAndLabels) {
  DeployNow("d1");
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});
  EXPECT_EQ(Result("cmd-d1"), "succeeded");
  ASSERT_EQ(store.AckBodies("cmd-d1").size(), 1u);
  ASSERT_EQ(docker.containers.count(d.container_id), 1u);
  const auto& info = docker.containers.at(d.container_id);
  EXPECT_TRUE(info.running);
  EXPECT_EQ(info.device_request_ids, std::vector<std::string>{"GPU-a"});
  EXPECT_EQ(info.labels.at(engine::kLabelAgent), "agent-1");
  EXPECT_EQ(info.labels.at(engine::kLabelDeployment), "d1");
  EXPECT_EQ(info.labels.count(engine::kLabelExpires), 1u);
  EXPECT_EQ(d.gpu_uuids, std::vector<std::string>{"GPU-a"});
  EXPECT_EQ(store.gpus[0].deployment_id, "d1");
}

TEST_F(EngineTest, ReadinessBacksOffOnTheClockNotTheWallOfTheTest) {
  probe.probes_until_ready = 12;  // ssh answers on the 13th probe
  auto before = clock.Monotonic();
  DeployNow("d1");
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  EXPECT_GT(clock.sleeps(), 3);
  auto waited = clock.Monotonic() - before;
  EXPECT_GT(waited, std::chrono::milliseconds(100));  // 25 ms doubling, then 500 ms
  EXPECT_LT(waited, seconds(10));
}

TEST_F(EngineTest, NotReadyInTimeFailsCleansUpAndFreesTheGpu) {
  probe.probes_until_ready = -1;
  auto before = clock.Monotonic();
  DeployNow("d1");
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.error_stage, "readiness");
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"failed"});
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_TRUE(docker.containers.empty());
  EXPECT_EQ(docker.Count("Stop "), 1);
  EXPECT_NE(std::find(docker.calls.begin(), docker.calls.end(), "Stop " + d.container_id + " 0"),
            docker.calls.end());  // never ready: no grace period
  EXPECT_EQ(store.gpus[0].deployment_id, "");
  EXPECT_GE(clock.Monotonic() - before, seconds(120));
}

TEST_F(EngineTest, PullFailureWithoutALocalCopyFails) {
  docker.pull_mode = FakeDocker::PullMode::kFail;
  DeployNow("d1");
  EXPECT_EQ(store.Get("d1").error_stage, "pull");
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"failed"});
  EXPECT_EQ(docker.Count("Create "), 0);
}

TEST_F(EngineTest, PullFailureWithALocalCopyOfAPrefetchImageUsesIt) {
  docker.pull_mode = FakeDocker::PullMode::kFail;
  docker.local_images.insert("registry.local/sshd:1");
  cfg.docker.prefetch_images = {"registry.local/sshd:1"};
  DeployNow("d1");
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
}

TEST_F(EngineTest, PullFailureNeverFallsBackToALocalCopyTheOwnerDidNotList) {
  docker.pull_mode = FakeDocker::PullMode::kFail;
  docker.local_images.insert("registry.local/sshd:1");
  cfg.docker.prefetch_images = {"registry.local/other:1", "registry.local/sshd:2"};
  DeployNow("d1");
  EXPECT_EQ(store.Get("d1").error_stage, "pull");
  EXPECT_EQ(docker.Count("ImageExists "), 0);
  EXPECT_EQ(docker.Count("Create "), 0);
}

TEST_F(EngineTest, RegistryAuthServesThePullOnlyAndIsNeverStored) {
  auto payload = Deploy("d1");
  payload["registry_auth"] = {{"username", "renter"}, {"password", "hunter2-secret"}};
  auto c = Command("cmd-d1", "deploy", payload);
  engine->commands().Process(c, std::stop_token());
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  ASSERT_EQ(docker.pull_auths.size(), 1u);
  EXPECT_EQ(docker.pull_auths[0].username, "renter");
  EXPECT_EQ(docker.pull_auths[0].password, "hunter2-secret");
  // Nothing stored keeps it: not the command, not the deployment's spec, not an event.
  auto stored = store.GetCommand("cmd-d1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->payload_json.find("hunter2"), std::string::npos);
  EXPECT_EQ((*stored)->payload_json.find("registry_auth"), std::string::npos);
  EXPECT_NE((*stored)->payload_json.find("\"ports\""), std::string::npos);  // the rest stays
  EXPECT_EQ(store.Get("d1").spec_json.find("hunter2"), std::string::npos);
  for (const auto& e : store.events) EXPECT_EQ(e.body.find("hunter2"), std::string::npos);
}

// Issue 17 item 5: the credentials live in memory only. After a restart the store's copy of
// the command has none: a deploy that needs them fails with a clear error before anything is
// claimed or pulled, unless the platform's delivery of the command (which brings them again)
// is the copy that runs.
TEST_F(EngineTest, RegistryCredentialsLostInARestartFailTheDeployClearly) {
  auto payload = Deploy("d1");
  payload["registry_auth"] = {{"username", "renter"}, {"password", "hunter2-secret"}};
  Command("cmd-d1", "deploy", payload);
  auto stored = store.GetCommand("cmd-d1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_TRUE((*stored)->registry_auth_withheld);
  engine->commands().Process(**stored, std::stop_token());  // the reconciler's copy
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(store.commands["cmd-d1"].error, std::string(engine::kRegistryCredentialsLost));
  EXPECT_EQ(store.deployments.count("d1"), 0u);  // nothing claimed
  EXPECT_EQ(docker.Count("Pull "), 0);
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"failed"});

  // Delivered again by the platform (the poll loop schedules its copy): it runs, with them.
  auto again = payload;
  again["deployment_id"] = "d2";
  auto c2 = Command("cmd-d2", "deploy", again);
  store::CommandRecord delivered = *(*store.GetCommand("cmd-d2"));
  delivered.payload_json = c2.payload_json;
  engine->commands().Process(delivered, std::stop_token());
  EXPECT_EQ(store.Get("d2").state, DeploymentState::kRunning);
  ASSERT_EQ(docker.pull_auths.size(), 1u);
  EXPECT_EQ(docker.pull_auths[0].password, "hunter2-secret");
}

TEST_F(EngineTest, AResumedPullWhoseCredentialsWereLostFailsWithoutPulling) {
  auto payload = Deploy("d1");
  payload["registry_auth"] = {{"username", "renter"}, {"password", "hunter2-secret"}};
  auto c = Command("cmd-d1", "deploy", payload);
  engine->commands().Process(c, std::stop_token());
  auto d = store.Get("d1");
  ASSERT_EQ(d.state, DeploymentState::kRunning);
  ASSERT_EQ(docker.pull_auths.size(), 1u);
  // A crash before the pull: the row at kPulling, the command pending, no container.
  store.events.clear();
  ASSERT_TRUE(docker.Remove(d.container_id, true).ok());
  store.deployments["d1"].state = DeploymentState::kPulling;
  store.deployments["d1"].started_at.reset();
  store.deployments["d1"].container_id.clear();
  store.commands["cmd-d1"].state = store::CommandState::kPending;
  engine->runner().RunById("d1", std::stop_token());  // resumed by the reconciler
  EXPECT_EQ(docker.pull_auths.size(), 1u);            // no pull without them
  d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.error_stage, "pull");
  EXPECT_EQ(d.error, std::string(engine::kRegistryCredentialsLost));
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"failed"});
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, ADeployWithoutRegistryAuthPullsWithoutCredentials) {
  DeployNow("d1");
  ASSERT_EQ(docker.pull_auths.size(), 1u);
  EXPECT_TRUE(docker.pull_auths[0].empty());
}

TEST_F(EngineTest, AnImageOnTheAgentsApiPortIsRefusedBeforeAnyClaimOrPull) {
  cfg.api.port = 9109;
  auto payload = Deploy("d1");
  payload["image"] = "127.0.0.1:9109/taolie-test/sshd:1";
  auto c = Command("cmd-d1", "deploy", payload);
  engine->commands().Process(c, std::stop_token());
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"failed"});
  int reasons = 0;
  for (const auto& e : store.events) {
    reasons += e.deployment_id == "d1" && e.body.find("\"validate\"") != std::string::npos &&
               e.body.find(
                   "127.0.0.1:9109 is a loopback address (port 9109 is the agent's API "
                   "port)") != std::string::npos;
  }
  EXPECT_EQ(reasons, 1);
  EXPECT_TRUE(store.deployments.empty());
  EXPECT_EQ(docker.Count("Pull "), 0);
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, ARegistryNameIsRefusedWhenNothingCanResolveIt) {
  auto payload = Deploy("d1");
  payload["image"] = "registry.example.com/app:1";
  auto c = Command("cmd-d1", "deploy", payload);
  engine->commands().Process(c, std::stop_token());  // the harness has no resolver
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(docker.Count("Pull "), 0);
}

TEST_F(EngineTest, StartFailureFailsAtStart) {
  docker.start_fails = true;
  DeployNow("d1");
  EXPECT_EQ(store.Get("d1").error_stage, "start");
  EXPECT_TRUE(docker.containers.empty());
}

// The disk quota bounds the writable layer with StorageOpt where the driver has it.
TEST_F(EngineTest, ADiskQuotaBoundsTheWritableLayerWithStorageOpt) {
  cfg.deployment.disk_quota_mb = 2048;
  DeployNow("d1");
  auto d = store.Get("d1");
  ASSERT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(docker.specs.at(d.container_id).storage_size_bytes, int64_t{2048} << 20);
  EXPECT_EQ(rt->storage_opt.load(), runtime::Runtime::StorageOpt::kSupported);
}

// A driver without StorageOpt (overlay2 on ext4) refuses the create: it is made again without,
// the quota is measured instead, and later rentals do not try again.
TEST_F(EngineTest, AStorageDriverWithoutStorageOptFallsBackToMeasuringOnce) {
  cfg.deployment.disk_quota_mb = 2048;
  docker.refuse_storage_opt = true;
  DeployNow("d1");
  auto d1 = store.Get("d1");
  ASSERT_EQ(d1.state, DeploymentState::kRunning) << d1.error_stage;
  EXPECT_EQ(docker.specs.at(d1.container_id).storage_size_bytes, 0);
  EXPECT_EQ(rt->storage_opt.load(), runtime::Runtime::StorageOpt::kRefused);
  EXPECT_EQ(docker.Count("Create "), 2);
  DeployNow("d2");
  ASSERT_EQ(store.Get("d2").state, DeploymentState::kRunning);
  EXPECT_EQ(docker.Count("Create "), 3);  // d2: once, without StorageOpt
}

// An image removed between the pull and the create is pulled once more; gone again, the
// rental fails at create.
TEST_F(EngineTest, AnImageGoneBeforeTheCreateIsPulledOnceMore) {
  docker.creates_without_image = 1;
  DeployNow("d1");
  ASSERT_EQ(store.Get("d1").state, DeploymentState::kRunning) << store.Get("d1").error_stage;
  EXPECT_EQ(docker.Count("Pull "), 2);
  EXPECT_EQ(docker.Count("Create "), 2);
  docker.creates_without_image = 2;
  DeployNow("d2");
  EXPECT_EQ(store.Get("d2").error_stage, "create");
  EXPECT_EQ(docker.Count("Pull "), 4);
  EXPECT_EQ(docker.Count("Create "), 4);
}

// Without a quota nothing is asked of the driver.
TEST_F(EngineTest, NoDiskQuotaSetsNoStorageOpt) {
  cfg.deployment.disk_quota_mb = 0;
  host.facts.storage_total_bytes = 0;
  DeployNow("d1");
  auto d = store.Get("d1");
  ASSERT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(docker.specs.at(d.container_id).storage_size_bytes, 0);
  EXPECT_EQ(rt->storage_opt.load(), runtime::Runtime::StorageOpt::kUnknown);
}

// A crash leaves the row at any state before running: the runner resumes from there and the
// rental reports success exactly once.
TEST_F(EngineTest, ResumesFromEveryStateAfterACrash) {
  const DeploymentState states[] = {DeploymentState::kAccepted, DeploymentState::kPulling,
                                    DeploymentState::kCreating, DeploymentState::kStarting,
                                    DeploymentState::kReadiness};
  int n = 0;
  for (DeploymentState at : states) {
    SCOPED_TRACE(domain::DeploymentStateName(at));
    std::string id = "r" + std::to_string(n++);
    // Run it fully once to learn the container, then rewind the row and the container to what
    // a crash at `at` leaves behind.
    DeployNow(id);
    auto d = store.Get(id);
    ASSERT_EQ(d.state, DeploymentState::kRunning);
    store.events.clear();
    auto& row = store.deployments[id];
    row.state = at;
    row.started_at.reset();
    if (at < DeploymentState::kStarting) {
      ASSERT_TRUE(docker.Remove(d.container_id, true).ok());
      row.container_id.clear();
    } else if (at == DeploymentState::kStarting) {
      docker.containers.at(d.container_id).running = false;
    }
    store.commands["cmd-" + id].state = store::CommandState::kPending;
    engine->runner().RunById(id, std::stop_token());
    EXPECT_EQ(store.Get(id).state, DeploymentState::kRunning);
    EXPECT_EQ(store.EventKinds(id), Kinds{"success"});
    EXPECT_EQ(Result("cmd-" + id), "succeeded");
    EXPECT_EQ(docker.List({{engine::kLabelDeployment, id}})->size(), 1u);
    // Done with it: end it so the next round has a free GPU.
    ASSERT_TRUE(engine::RentalEnder(engine->context()).End(id, "terminated", "t", {}).ok());
    // Its GPU is dirty until found idle (the GPU metrics loop's job): idle at once here.
    for (const auto& g : store.gpus) ASSERT_TRUE(store.MarkGpuClean(g.uuid).ok());
  }
}

TEST_F(EngineTest, AStaleCopyNeverReportsSuccessTwiceNorMovesTheStart) {
  DeployNow("d1");
  auto fresh = store.Get("d1");
  domain::Deployment stale = fresh;
  stale.state = DeploymentState::kReadiness;  // as queued before the first run finished
  clock.Advance(minutes(10));
  engine->runner().Run(stale, std::stop_token());
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});
  EXPECT_EQ(store.Get("d1").started_at, fresh.started_at);
  // Once scrubbed (after success is delivered), a stale write never restores the password.
  store.deployments["d1"].ssh_password.reset();
  domain::Deployment with_password = fresh;
  ASSERT_TRUE(store.UpdateDeployment(with_password, {}).ok());
  EXPECT_FALSE(store.Get("d1").ssh_password.has_value());
}

TEST_F(EngineTest, AReusedDeploymentIdIsRefusedAndTheFirstRentalIsUntouched) {
  DeployNow("d1");
  auto second = Command("cmd-other", "deploy", Deploy("d1"));
  engine->commands().Process(second, std::stop_token());
  EXPECT_EQ(Result("cmd-other"), "rejected");
  auto acks = store.AckBodies("cmd-other");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_NE(acks[0].find("already belongs to another command"), std::string::npos) << acks[0];
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  EXPECT_EQ(store.Get("d1").command_id, "cmd-d1");
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});
}

TEST_F(EngineTest, ARedeliveredDeployIsAckedFromTheRowWithoutDeployingAgain) {
  DeployNow("d1");
  store.commands["cmd-d1"].state = store::CommandState::kPending;  // ack lost, re-delivered
  engine->commands().Process(store.commands["cmd-d1"], std::stop_token());
  EXPECT_EQ(Result("cmd-d1"), "succeeded");
  EXPECT_EQ(docker.Count("Create "), 1);
  EXPECT_EQ(store.AckBodies("cmd-d1").size(), 2u);
}

TEST_F(EngineTest, ATerminateCancelsAHangingPullAndEndsTheRental) {
  Build({1, 1});
  docker.pull_mode = FakeDocker::PullMode::kHang;
  engine->commands().Schedule(Command("cmd-d1", "deploy", Deploy("d1")));
  ASSERT_TRUE(docker.WaitPulling(seconds(10)));
  engine->commands().Schedule(
      Command("cmd-t1", "terminate", {{"deployment_id", "d1"}, {"reason", "renter"}}));
  ASSERT_TRUE(Idle());
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(Result("cmd-t1"), "succeeded");
  EXPECT_EQ(docker.Count("Create "), 0);
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, ATerminateOfAQueuedDeployNeverWaitsForADeployThread) {
  Build({1, 1});
  docker.pull_mode = FakeDocker::PullMode::kHang;
  // The only deploy thread hangs on d0's pull; d1's deploy is queued behind it.
  engine->commands().Schedule(Command("cmd-d0", "deploy", Deploy("d0")));
  ASSERT_TRUE(docker.WaitPulling(seconds(10)));
  engine->commands().Schedule(Command("cmd-d1", "deploy", Deploy("d1")));
  engine->commands().Schedule(Command("cmd-t1", "terminate", {{"deployment_id", "d1"}}));
  // The terminate completes while d0 still hangs.
  for (int i = 0; i < 1000 && Result("cmd-t1") == ""; ++i) {
    engine->work().WaitIdle(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Result("cmd-t1"), "succeeded");
  EXPECT_EQ(Result("cmd-d1"), "failed");
  EXPECT_EQ(store.deployments.count("d1"), 0u);  // never admitted
  EXPECT_EQ(Result("cmd-d0"), "");               // still pulling
  engine->commands().Schedule(Command("cmd-t0", "terminate", {{"deployment_id", "d0"}}));
  ASSERT_TRUE(Idle());
  EXPECT_EQ(Result("cmd-t0"), "succeeded");
}

TEST_F(EngineTest, AnUnknownCommandTypeIsRejected) {
  auto c = Command("cmd-x", "reboot", nlohmann::json::object());
  engine->commands().Process(c, std::stop_token());
  EXPECT_EQ(Result("cmd-x"), "rejected");
}

TEST_F(EngineTest, ABadPayloadIsRejectedWithAFailedEventAndNothingClaimed) {
  auto c = Command("cmd-bad", "deploy", {{"deployment_id", "d9"}, {"image", "-evil"}});
  engine->commands().Process(c, std::stop_token());
  EXPECT_EQ(Result("cmd-bad"), "rejected");
  EXPECT_EQ(store.EventKinds("d9"), Kinds{"failed"});
  EXPECT_TRUE(store.deployments.empty());
  EXPECT_EQ(docker.calls.size(), 0u);
}

TEST_F(EngineTest, DatabaseDownLeavesTheCommandPendingAndChangesNothing) {
  auto c = Command("cmd-d1", "deploy", Deploy("d1"));
  store.down = true;
  engine->commands().Process(c, std::stop_token());
  store.down = false;
  EXPECT_EQ(store.commands["cmd-d1"].state, store::CommandState::kPending);
  EXPECT_TRUE(docker.calls.empty());
  engine->commands().Process(c, std::stop_token());  // the next poll re-delivers it
  EXPECT_EQ(Result("cmd-d1"), "succeeded");
}

}  // namespace
}  // namespace taolie::testing
