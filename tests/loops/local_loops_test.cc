// The loops that work on this host only (issue 18 item 2): the GPU metrics loop (one sample
// stored per round, with each GPU's rental; claims re-read when they change; dirty GPUs
// verified), the duration monitor (expiry enforced every round, Docker reconciled every 10th)
// and the image prefetch (one round queues one background job that pulls the list in order,
// and a pull that failed is tried again). Fakes and a FakeClock; the engine's lanes are waited
// for with WorkQueue::WaitIdle (bounded); nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine_harness.h"
#include "fakes/gpu_samples.h"
#include "loops/duration_monitor_loop.h"
#include "loops/gpu_metrics_loop.h"
#include "loops/image_prefetch.h"
#include "loops/loop_test_support.h"

namespace taolie::loops {
namespace {

using std::chrono::minutes;

// The metric samples a round inserts, kept.
class MetricsStore final : public testing::FakeStore {
 public:
  std::vector<domain::MetricSample> inserted;
  Result<int64_t> InsertMetricSample(const domain::MetricSample& s) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    inserted.push_back(s);
    return static_cast<int64_t>(inserted.size());
  }
};

class SamplingHost final : public testing::FakeHostProbe {
 public:
  std::optional<host::HostSample> sample;  // none: the host cannot be read
  Result<host::HostSample> Sample() override {
    if (sample) return *sample;
    return Error{ErrorCode::kUnavailable, "/proc unreadable"};
  }
};

class GpuMetricsLoopTest
    : public ::testing::Test,
      public testing::LoopSeams<MetricsStore, SamplingHost, testing::StrictPlatformApi> {
 protected:
  GpuMetricsLoopTest() {
    store.AddGpu("GPU-a");
    store.AddGpu("GPU-b");
    gpu::GpuSample b = testing::HealthySample("GPU-b");
    b.index = 1;
    gpus.samples = {testing::HealthySample("GPU-a"), b};
    host.sample = host::HostSample{};
    host.sample->cpu_utilization_percent = 12.5;
    host.sample->uptime_seconds = 7200;
  }
  // The GPU rows the round stored, by uuid: their rental.
  std::map<std::string, std::string> Claims(const domain::MetricSample& s) {
    std::map<std::string, std::string> out;
    for (const auto& g : s.gpus) out[g.gpu_uuid] = g.deployment_id;
    return out;
  }

  health::DirtyGpuVerifier dirty{deps, rt};
  GpuMetricsLoop loop{deps, rt, dirty};
};

TEST_F(GpuMetricsLoopTest, ARoundStoresOneSampleWithEachGpusRental) {
  store.gpus[1].deployment_id = "d1";
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_EQ(store.inserted.size(), 1u);
  const auto& s = store.inserted[0];
  EXPECT_EQ(s.taken_at, clock.Now());
  EXPECT_DOUBLE_EQ(s.host.cpu_utilization, 12.5);
  EXPECT_EQ(s.host.uptime_hours, 2);
  ASSERT_EQ(s.gpus.size(), 2u);
  EXPECT_EQ(s.gpus[0].memory_used_mb, 100);
  EXPECT_EQ(Claims(s), (std::map<std::string, std::string>{{"GPU-a", ""}, {"GPU-b", "d1"}}));
  SystemTime at{};
  EXPECT_EQ(rt.LatestGpuSamples(&at).size(), 2u);
  EXPECT_EQ(at, clock.Now());
  EXPECT_EQ(gpus.sample_calls.load(), 1);
}

// The store's GPU rows are read again when the claims change (claims_generation), not every
// round.
TEST_F(GpuMetricsLoopTest, ClaimsAreReadAgainWhenTheyChange) {
  ASSERT_TRUE(loop.RunOnce({}).ok());
  store.gpus[0].deployment_id = "d2";  // claimed, but nobody said so yet
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(Claims(store.inserted[1])["GPU-a"], "");
  rt.claims_generation++;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(Claims(store.inserted[2])["GPU-a"], "d2");
}

// A GPU left dirty by an ended rental is verified with the round's sample: nothing of the
// rental left on it, so it is clean again.
TEST_F(GpuMetricsLoopTest, ADirtyGpuIsVerifiedWithTheRoundsSample) {
  store.gpus[0].dirty_since = clock.Now();
  store.gpus[0].dirty_after = "d0";
  const uint64_t generation = rt.claims_generation;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_FALSE(store.gpus[0].dirty_since.has_value());
  EXPECT_GT(rt.claims_generation.load(), generation);
}

// The host unreadable: the GPUs' sample is still stored, and the round reports the host.
TEST_F(GpuMetricsLoopTest, AnUnreadableHostStillStoresTheGpusSample) {
  host.sample.reset();
  auto st = loop.RunOnce({});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("/proc unreadable"), std::string::npos);
  ASSERT_EQ(store.inserted.size(), 1u);
  EXPECT_EQ(store.inserted[0].gpus.size(), 2u);
}

using DurationMonitorLoopTest = testing::EngineTest;

// Every round checks the rentals (an expired one is ended); every 10th also reconciles with
// Docker (the only List call while the database answers).
TEST_F(DurationMonitorLoopTest, EachRoundEnforcesExpiryAndEveryTenthReconciles) {
  DeployNow("d1", 60);
  auto lists = [&] { return std::count(docker.calls.begin(), docker.calls.end(), "List"); };
  const auto before = lists();
  DurationMonitorLoop loop(engine->monitor(), engine->reconciler());
  clock.Advance(minutes(61));
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").state, domain::DeploymentState::kEnded);
  EXPECT_EQ(store.Get("d1").end_status, "expired");
  for (int round = 2; round <= 9; ++round) ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(lists() - before, 0);
  ASSERT_TRUE(loop.RunOnce({}).ok());  // the 10th
  EXPECT_EQ(lists() - before, 1);
  for (int round = 11; round <= 20; ++round) ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(lists() - before, 2);
  EXPECT_STREQ(loop.Name(), "duration-monitor");
}

using PrefetchLoopTest = testing::EngineTest;

// One round queues one job (on the deploy lane) that pulls the list in order; a pull that
// fails is logged with what to check, the next image is still pulled, and the failed one is
// pulled again at the next round (still missing).
TEST_F(PrefetchLoopTest, ARoundQueuesThePullsAndAFailedOneIsTriedAgain) {
  testing::LogCapture log;
  PrefetchLoop loop(docker, engine->work(), engine->pulls(), {"a:1", "b:1"});
  docker.pull_mode = testing::FakeDocker::PullMode::kFail;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.calls, (std::vector<std::string>{"Pull a:1", "Pull b:1"}));
  EXPECT_EQ(loop.pulled(), 0u);
  EXPECT_EQ(log.Count("images.prefetch"), 2) << log.Text();
  docker.pull_mode = testing::FakeDocker::PullMode::kOk;
  docker.calls.clear();
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.calls, (std::vector<std::string>{"ImageExists a:1", "ImageExists b:1",
                                                    "Pull a:1", "Pull b:1"}));
  EXPECT_EQ(loop.pulled(), 2u);
  EXPECT_STREQ(loop.Name(), "image-prefetch");
}

// The start-up round (every listed image, present or not) is not lost when it could not be
// queued (a prefetch job still there): the next round is the start-up round.
TEST_F(PrefetchLoopTest, AStartUpRoundThatCouldNotBeQueuedComesAgain) {
  PrefetchLoop loop(docker, engine->work(), engine->pulls(), {"a:1"});
  docker.local_images = {"a:1"};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ASSERT_TRUE(engine->work().Submit(
      engine::Lane::kDeploy, "prefetch", "prefetch",
      [released](std::stop_token) { released.wait_for(std::chrono::seconds(10)); }));
  ASSERT_TRUE(loop.RunOnce({}).ok());  // its job is refused: one is queued already
  release.set_value();
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(docker.calls.empty());
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.calls, (std::vector<std::string>{"Pull a:1"}));  // present, pulled anyway
}

// An empty list does nothing at all.
TEST_F(PrefetchLoopTest, AnEmptyListTouchesNothing) {
  PrefetchLoop loop(docker, engine->work(), engine->pulls(), {});
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(docker.calls.empty());
}

}  // namespace
}  // namespace taolie::loops
