// GPUs freed by an ended rental are verified at once, also after a restart, and a deploy that
// finds only GPUs under verification waits for them, bounded, instead of being refused
// (issue 17 item 7). The rental engine on fakes (engine_harness.h) on a one-GPU host; the GPU's
// samples are scripted per call; the fake clock's SleepFor advances time, nothing sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/admission.h"
#include "engine/engine_harness.h"
#include "engine/rental_ender.h"
#include "fakes/gpu_samples.h"
#include "health/gpu_cleanliness.h"

namespace taolie::testing {
namespace {

using std::chrono::seconds;

// The GPU shows a left-over process and its memory for its first `busy_samples` samples, idle
// after (a rental's CUDA context torn down a moment after its container went).
class ScriptedGpuProbe final : public FakeGpuProbe {
 public:
  int busy_samples = 0;
  int calls = 0;
  Result<std::vector<gpu::GpuSample>> Sample() override {
    gpu::GpuSample s = HealthySample("GPU-a");
    s.memory_used_mb = 0;
    if (calls++ < busy_samples) {
      s.process_pids = {4242};
      s.memory_used_mb = 3000;
    }
    return std::vector<gpu::GpuSample>{s};
  }
};

class GpuVerification : public EngineTest {
 protected:
  void SetUp() override {
    store.gpus.resize(1);  // a one-GPU host: GPU-a
    Restart();
  }
  // A new engine: as after an agent restart, nothing of the last run is remembered.
  void Restart() {
    engine.reset();
    rt = std::make_unique<runtime::Runtime>("agent-1", "test", TimestampFormat::kRfc3339);
    engine = std::make_unique<engine::RentalEngine>(
        runtime::Deps{cfg, store, docker, scripted, host, api, clock, {}}, *rt, probe,
        engine::RentalEngineOptions{1, 1});
  }
  // GPU-a as the store keeps it after a rental ended (before a restart, say).
  void MarkDirty(const std::string& after) {
    store.gpus[0].deployment_id.clear();
    store.gpus[0].dirty_since = clock.Now();
    store.gpus[0].dirty_after = after;
  }
  std::string Error(const std::string& command_id) {
    auto c = store.GetCommand(command_id);
    return c.ok() && c->has_value() ? (*c)->error : "<none>";
  }
  ScriptedGpuProbe scripted;
};

TEST_F(GpuVerification, AGpuFreedByAnEndedRentalIsVerifiedAtOnce) {
  DeployNow("d1");
  ASSERT_EQ(Result("cmd-d1"), "succeeded");
  ASSERT_EQ(store.gpus[0].deployment_id, "d1");
  ASSERT_TRUE(engine::RentalEnder(engine->context()).End("d1", "terminated", "t", {}).ok());
  EXPECT_FALSE(store.gpus[0].dirty_since.has_value()) << "not verified when its rental ended";
  const auto before = clock.Monotonic();
  DeployNow("d2");
  EXPECT_EQ(Result("cmd-d2"), "succeeded") << Error("cmd-d2");
  EXPECT_EQ(clock.Monotonic(), before);  // nothing waited
}

TEST_F(GpuVerification, AfterARestartTheDirtyGpuIsVerifiedBeforeTheDeployIsRefused) {
  MarkDirty("d0");
  Restart();
  const auto before = clock.Monotonic();
  DeployNow("d2");
  EXPECT_EQ(Result("cmd-d2"), "succeeded") << Error("cmd-d2");
  EXPECT_EQ(store.gpus[0].deployment_id, "d2");
  EXPECT_EQ(clock.Monotonic(), before);
}

TEST_F(GpuVerification, ADeployWaitsForAGpuStillBeingFreed) {
  MarkDirty("d0");
  scripted.busy_samples = 5;  // busy for the first five samples, a second apart
  DeployNow("d2");
  EXPECT_EQ(Result("cmd-d2"), "succeeded") << Error("cmd-d2");
  EXPECT_FALSE(store.gpus[0].dirty_since.has_value());
  EXPECT_EQ(store.gpus[0].deployment_id, "d2");
  EXPECT_GE(scripted.calls, 6);
}

TEST_F(GpuVerification, TheWaitIsBoundedThenTheDeployIsRefusedWithTheReason) {
  MarkDirty("d0");
  scripted.busy_samples = 1000;  // never idle
  const auto before = clock.Monotonic();
  DeployNow("d2");
  const auto waited = std::chrono::duration_cast<seconds>(clock.Monotonic() - before);
  EXPECT_GE(waited, health::kGpuVerificationWait);
  EXPECT_LE(waited, health::kGpuVerificationWait + seconds(2));
  EXPECT_EQ(Result("cmd-d2"), "failed");
  EXPECT_NE(Error("cmd-d2").find("0 healthy GPU(s) are free"), std::string::npos)
      << Error("cmd-d2");
  EXPECT_TRUE(store.gpus[0].dirty_since.has_value());
  EXPECT_LE(scripted.calls, 40);  // one verification a second, not a busy loop
}

TEST_F(GpuVerification, AHeldBackGpuIsNotWaitedFor) {
  cfg.gpu.dirty_timeout_seconds = 0;  // held back at its first verdict
  MarkDirty("d0");
  scripted.busy_samples = 1000;
  const auto before = clock.Monotonic();
  DeployNow("d2");
  EXPECT_EQ(clock.Monotonic(), before);
  EXPECT_EQ(Result("cmd-d2"), "failed");
}

TEST_F(GpuVerification, ANamedGpuUnderVerificationIsWaitedForToo) {
  MarkDirty("d0");
  scripted.busy_samples = 3;
  auto payload = Deploy("d2");
  payload.erase("gpu_count");
  payload["gpu_uuids"] = {"GPU-a"};
  auto c = Command("cmd-d2", "deploy", payload);
  engine->commands().Process(c, std::stop_token());
  EXPECT_EQ(Result("cmd-d2"), "succeeded") << Error("cmd-d2");
}

TEST_F(GpuVerification, AStoppedLaneEndsTheWaitAtOnce) {
  MarkDirty("d0");
  scripted.busy_samples = 1000;
  std::stop_source stop;
  stop.request_stop();  // the lane stops (shutdown): the wait ends at once
  const auto before = clock.Monotonic();
  auto c = Command("cmd-d2", "deploy", Deploy("d2"));
  engine->commands().Process(c, stop.get_token());
  EXPECT_LE(clock.Monotonic() - before, seconds(1));
}

// The pure rule: wait only when GPUs under verification would make the deploy admissible.
TEST(WaitsForGpusUnderVerification, Table) {
  using engine::GpuSlot;
  auto slot = [](std::string uuid, bool dirty, std::string dep = "") {
    GpuSlot s;
    s.uuid = std::move(uuid);
    s.dirty = dirty;
    s.deployment_id = std::move(dep);
    return s;
  };
  const std::vector<GpuSlot> gpus = {slot("A", false), slot("B", true), slot("C", true),
                                     slot("D", false, "rented")};
  auto verifying = [](const std::string& u) { return u == "B"; };  // C is held back
  struct Case {
    int count;
    std::vector<std::string> uuids;
    bool waits;
  } cases[] = {
      {1, {}, false},         // A is free
      {2, {}, true},          // A + B once verified
      {3, {}, false},         // C held back: refused whatever happens
      {0, {}, false},         // no GPU asked for
      {1, {"B"}, true},       // named, under verification
      {1, {"C"}, false},      // named, held back
      {1, {"D"}, false},      // named, rented
      {2, {"A", "B"}, true},  // one free, one under verification
      {1, {"Z"}, false},      // not on this host
  };
  for (const auto& c : cases) {
    rules::DeploySpec spec;
    spec.gpu_count = c.count;
    spec.gpu_uuids = c.uuids;
    EXPECT_EQ(engine::WaitsForGpusUnderVerification(spec, gpus, verifying), c.waits)
        << c.count << " " << (c.uuids.empty() ? "" : c.uuids[0]);
  }
}

}  // namespace
}  // namespace taolie::testing
