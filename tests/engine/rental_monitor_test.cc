// The duration monitor on fakes and the FakeClock: an hour of rental in microseconds.
#include <future>

#include "engine/engine_harness.h"
#include "fakes/fake_clock.h"

namespace taolie::testing {
namespace {

using domain::DeploymentState;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using Kinds = std::vector<std::string>;

TEST_F(EngineTest, WarnsOnceThenExpiresOnTimeAndBillsTheHour) {
  DeployNow("d1", 60);
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.EventKinds("d1"), Kinds{"success"});  // nothing due yet

  clock.Advance(minutes(55) + seconds(1));  // inside the 300 s warning window
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());  // warned once only
  EXPECT_EQ(store.EventKinds("d1"), (Kinds{"success", "expiring"}));
  ASSERT_EQ(docker.execs.size(), 1u);
  EXPECT_NE(docker.execs[0].back().find("this rental ends at"), std::string::npos);

  clock.Advance(minutes(5));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.end_status, "expired");
  EXPECT_EQ(store.EventKinds("d1"), (Kinds{"success", "expiring", "terminated"}));
  const auto& body = store.events.back().body;
  auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["status"], "expired") << body;
  EXPECT_TRUE(docker.containers.empty());
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, ExpiryIsNeverQueuedBehindHangingDeploys) {
  Build({2, 1});
  DeployNow("d1", 30);
  docker.pull_mode = FakeDocker::PullMode::kHang;
  store.AddGpu("GPU-c");
  store.AddGpu("GPU-d");
  for (const char* id : {"p1", "p2", "p3"}) {  // more hanging pulls than deploy threads
    engine->commands().Schedule(Command(std::string("cmd-") + id, "deploy", Deploy(id)));
  }
  ASSERT_TRUE(docker.WaitPulling(seconds(10)));
  clock.Advance(minutes(31));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  for (int i = 0; i < 1000 && store.Get("d1").state != DeploymentState::kEnded; ++i) {
    engine->work().WaitIdle(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(store.Get("d1").end_status, "expired");
}

TEST_F(EngineTest, AContainerRemovedBehindOurBackEndsTheRentalAsFailed) {
  DeployNow("d1");
  ASSERT_TRUE(docker.Remove(store.Get("d1").container_id, true).ok());
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  auto d = store.Get("d1");
  EXPECT_EQ(d.end_status, "failed");
  EXPECT_EQ(d.end_reason, "container was removed outside the agent");
}

TEST_F(EngineTest, AContainerThatExitedEndsTheRentalWithItsExitCode) {
  DeployNow("d1");
  docker.Exit(store.Get("d1").container_id, 137);
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").end_reason, "container exited with exit code 137");
}

TEST_F(EngineTest, AnEndingLeftHalfDoneByDockerIsFinishedLater) {
  DeployNow("d1");
  docker.down = true;
  engine->commands().Process(Command("cmd-t", "terminate", {{"deployment_id", "d1"}}), {});
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kStopping);
  EXPECT_EQ(Result("cmd-t"), "");  // pending: the platform re-delivers it
  docker.down = false;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kEnded);
  EXPECT_EQ(store.EventKinds("d1"), (Kinds{"success", "terminated"}));
}

TEST_F(EngineTest, ProcessesOfTheRentalLeftOnItsGpuMarkItWarning) {
  DeployNow("d1");
  auto d = store.Get("d1");
  gpu::GpuSample s;
  s.uuid = "GPU-a";
  s.process_pids = {4242};
  gpus.samples = {s};
  host.container_pids = {{4242, d.container_id}};
  engine->commands().Process(Command("cmd-t", "terminate", {{"deployment_id", "d1"}}), {});
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kEnded);
  EXPECT_EQ(store.gpus[0].health, domain::GpuHealthState::kWarning);
  // Checked 10 times on the clock, 500 ms apart, no real sleep; then once more when the ended
  // rental's GPU is verified (gpu_cleanliness.h: still dirty here, the process is left).
  EXPECT_EQ(gpus.sample_calls, 11);
  EXPECT_TRUE(store.gpus[0].dirty_since.has_value());
}

nlohmann::json Terminated(const FakeStore& store) {
  for (auto it = store.events.rbegin(); it != store.events.rend(); ++it) {
    if (it->kind == domain::EventKind::kTerminated) return nlohmann::json::parse(it->body);
  }
  ADD_FAILURE() << "no terminated event";
  return {};
}
double UsedMinutes(const FakeStore& store) {
  return Terminated(store)["used_minutes"].get<double>();
}

TEST_F(EngineTest, AWallClockStepForwardNeitherEndsNorBillsARental) {
  DeployNow("d1", 60);
  clock.Advance(minutes(20));
  clock.StepWall(hours(2));  // NTP step: the wall clock is now past expires_at
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
  EXPECT_EQ(rt->clock_steps.load(), 1u);
  EXPECT_EQ(rt->last_clock_step_ms.load(), 2 * 3600 * 1000);
  clock.Advance(minutes(10));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(rt->clock_steps.load(), 1u);  // reported once
  engine->commands().Process(Command("cmd-t", "terminate", {{"deployment_id", "d1"}}), {});
  ASSERT_EQ(store.Get("d1").state, DeploymentState::kEnded);
  EXPECT_DOUBLE_EQ(UsedMinutes(store), 30.0);  // real time, not 2 h 30
}

TEST_F(EngineTest, AWallClockStepBackNeitherExtendsARentalNorRefundsIt) {
  DeployNow("d1", 60);
  clock.Advance(minutes(30));
  clock.StepWall(-hours(3));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  clock.Advance(minutes(30));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.end_status, "expired");
  EXPECT_DOUBLE_EQ(UsedMinutes(store), 60.0);
  EXPECT_DOUBLE_EQ(Terminated(store)["refund_amount"].get<double>(), 0.0);
}

TEST_F(EngineTest, AcrossARebootTheWallGapCountsUpToTheCap) {
  DeployNow("d1", 120);
  clock.Advance(minutes(10));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.Get("d1").elapsed_ms, 10 * 60 * 1000);
  // The host reboots: a new boot_id, the monotonic clock restarts, 5 min of wall time passed.
  host.boot_id = "boot-2";
  Build({1, 1});
  clock.StepWall(minutes(5));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.Get("d1").elapsed_ms, 15 * 60 * 1000);
  // Down for 5 hours: only the cap counts.
  host.boot_id = "boot-3";
  Build({1, 1});
  clock.StepWall(hours(5));
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.Get("d1").elapsed_ms, (15 + 15) * 60 * 1000);
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
}

TEST_F(EngineTest, ARowWithoutARentalClockIsAdoptedFromItsWallTimes) {
  DeployNow("d1", 60);
  auto& row = store.deployments["d1"];
  row.clock_boot_id.clear();  // as written before the rental clock existed
  row.elapsed_ms = 0;
  row.expires_at = clock.Now() + minutes(20);  // 40 of 60 minutes gone
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.Get("d1").elapsed_ms, 40 * 60 * 1000);
  EXPECT_EQ(store.Get("d1").clock_boot_id, "boot-1");
}

// PostgreSQL down: the warning and the expiry are still enforced, from the monitor's memory of
// the rental (its clock advanced on the monotonic clock), and written when it returns.
TEST_F(EngineTest, WithoutTheDatabaseWarningsAndExpiryAreEnforcedAndRecordedAfter) {
  cfg.deployment.stop_grace_seconds = 7;
  DeployNow("d1", 60);
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());  // remembered
  EXPECT_EQ(engine->monitor().KnownRentals(), 1u);
  store.down = true;
  clock.Advance(minutes(56));  // inside the 300 s warning window
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  ASSERT_EQ(docker.execs.size(), 1u);  // warned inside the container all the same
  EXPECT_NE(docker.execs[0].back().find("this rental ends at"), std::string::npos);
  EXPECT_EQ(rt->offline_warnings.load(), 1u);
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(docker.execs.size(), 1u);  // once

  clock.Advance(minutes(4) + seconds(1));  // past the hour
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  const std::string cid = store.Get("d1").container_id;  // read while down: the map, not a call
  EXPECT_FALSE(docker.containers.at(cid).running) << "stopped at expiry without the database";
  EXPECT_NE(std::find(docker.calls.begin(), docker.calls.end(), "Stop " + cid + " 7"),
            docker.calls.end());
  EXPECT_EQ(rt->offline_expiries.load(), 1u);
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);  // nothing written yet

  clock.Advance(minutes(20));  // the database answers again 20 min later
  store.down = false;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  auto d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.end_status, "expired");
  EXPECT_TRUE(d.warned_at.has_value());
  EXPECT_EQ(store.EventKinds("d1"), (Kinds{"success", "expiring", "terminated"}));
  EXPECT_DOUBLE_EQ(UsedMinutes(store), 60.0);
  // Ended as of the stop, not of the database's return.
  ASSERT_TRUE(d.ended_at.has_value());
  EXPECT_LT(*d.ended_at, clock.Now() - minutes(19));
  EXPECT_TRUE(docker.containers.empty());
  EXPECT_EQ(store.gpus[0].deployment_id, "");
}

TEST_F(EngineTest, AWarningGivenWithoutTheDatabaseIsWrittenWhenItReturns) {
  DeployNow("d1", 60);
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  store.down = true;
  clock.Advance(minutes(57));
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  store.down = false;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(store.EventKinds("d1"), (Kinds{"success", "expiring"}));
  EXPECT_EQ(docker.execs.size(), 1u);  // the renter is not warned twice
  auto body = nlohmann::json::parse(store.events.back().body);
  EXPECT_EQ(body["seconds_left"], 180) << body.dump();
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);
}

TEST_F(EngineTest, WithoutTheDatabaseAnUnseenContainerIsExpiredFromItsLabels) {
  DeployNow("d1", 60);  // never seen by the monitor: no memory of it
  store.down = true;
  clock.Advance(minutes(61));
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(engine->monitor().KnownRentals(), 1u);
  const std::string cid = store.Get("d1").container_id;
  EXPECT_FALSE(docker.containers.at(cid).running);
  store.down = false;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").end_status, "expired");
  EXPECT_DOUBLE_EQ(UsedMinutes(store), 60.0);
}

TEST_F(EngineTest, WithoutTheDatabaseNothingEndsEarly) {
  DeployNow("d1", 60);
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  store.down = true;
  clock.Advance(minutes(30));
  clock.StepWall(hours(2));  // and the wall clock jumps past the deadline meanwhile
  EXPECT_FALSE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(docker.containers.at(store.Get("d1").container_id).running);
  EXPECT_TRUE(docker.execs.empty());
}

}  // namespace
}  // namespace taolie::testing
