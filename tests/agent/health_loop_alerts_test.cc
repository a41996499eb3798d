// The GPU health loop raises alerts through the runtime's sink (issue 8 item 5): on a
// verdict change and a quarantine, once, not again while nothing changes; and the platform
// silent past monitoring.alerts.platform_unreachable_seconds. Fakes and a FakeClock only.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/loops.h"
#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"
#include "telemetry/alerter.h"

namespace taolie::agent {
namespace {

using std::chrono::seconds;

// The store calls a health round makes besides the GPU table: accepted.
class HealthStore final : public testing::FakeStore {
 public:
  Status SyncGpus(const std::vector<store::GpuRecord>&) override { return OkStatus(); }
  Result<int64_t> InsertHealthReport(const domain::HealthReport&,
                                     const std::vector<domain::GpuHealthRow>&) override {
    return ++reports;
  }
  Result<PruneResult> Prune(const PruneLimits&) override { return PruneResult{}; }
  int64_t reports = 0;
};

class ListingGpuProbe final : public testing::FakeGpuProbe {
 public:
  std::vector<gpu::GpuInfo> infos;
  Result<std::vector<gpu::GpuInfo>> ListGpus() override { return infos; }
  Result<std::vector<gpu::XidEvent>> DrainXids() override { return std::vector<gpu::XidEvent>{}; }
};

class RecordingSink final : public telemetry::AlertSink {
 public:
  void Raise(telemetry::Alert a) override { alerts.push_back(std::move(a)); }
  std::vector<telemetry::Alert> alerts;
};

gpu::GpuSample Sample() {
  gpu::GpuSample s;
  s.index = 0;
  s.uuid = "GPU-a";
  s.temperature_c = 50;
  s.power_draw_watts = 100;
  s.power_limit_watts = 300;
  s.memory_used_mb = 100;
  s.memory_total_mb = 1000;
  s.ecc_enabled = true;
  s.ecc_volatile_uncorrected = 0;
  s.ecc_volatile_corrected = 0;
  s.throttle_reasons = 0;
  return s;
}

struct HealthLoopAlerts : ::testing::Test {
  HealthLoopAlerts() {
    cfg.logging.file = "";  // no rotated logs to prune
    cfg.monitoring.alerts.platform_unreachable_seconds = 600;
    store.AddGpu("GPU-a");
    gpu::GpuInfo info;
    info.uuid = "GPU-a";
    info.index = 0;
    info.memory_total_mb = 1000;
    info.fan_count = 0;
    gpus.infos = {info};
    gpus.samples = {Sample()};
    rt.set_alerts(&sink);
  }
  std::vector<telemetry::Alert> Round(GpuHealthLoop& loop, bool platform_answers = true) {
    if (platform_answers) rt.MarkPlatformOk(clock.Now());
    sink.alerts.clear();
    EXPECT_TRUE(loop.RunOnce(std::stop_token{}).ok());
    clock.Advance(seconds(60));
    return sink.alerts;
  }

  config::Config cfg;
  HealthStore store;
  testing::FakeDocker docker;
  ListingGpuProbe gpus;
  testing::FakeHostProbe host;
  testing::StrictPlatformApi api;
  FakeClock clock;
  Runtime rt{"agent-1", "test", TimestampFormat::kRfc3339};
  RecordingSink sink;
  Deps deps{cfg, store, docker, gpus, host, api, clock, {}};
};

TEST_F(HealthLoopAlerts, AVerdictChangeAndItsQuarantineAreRaisedOnce) {
  GpuHealthLoop loop(deps, rt);
  EXPECT_TRUE(Round(loop).empty());  // healthy from the start: nothing to say
  EXPECT_TRUE(Round(loop).empty());
  gpus.samples[0].ecc_volatile_uncorrected = 2;  // unhealthy: quarantined at once
  auto a = Round(loop);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, "gpu_verdict");
  EXPECT_EQ(a[0].state, "unhealthy");
  EXPECT_EQ(a[0].gpu_uuid, "GPU-a");
  EXPECT_EQ(a[1].kind, "gpu_quarantined");
  EXPECT_EQ(a[1].at, clock.Now() - seconds(60));
  EXPECT_TRUE(Round(loop).empty());  // still unhealthy, still quarantined: said already
  EXPECT_TRUE(Round(loop).empty());
}

TEST_F(HealthLoopAlerts, APlatformSilentPastItsLimitIsRaisedOnceAndItsReturnToo) {
  GpuHealthLoop loop(deps, rt);
  EXPECT_TRUE(Round(loop).empty());
  std::vector<telemetry::Alert> all;
  for (int i = 0; i < 12; ++i) {  // 12 rounds of 60 s without an answer
    auto a = Round(loop, /*platform_answers=*/false);
    all.insert(all.end(), a.begin(), a.end());
  }
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].kind, "platform_unreachable");
  auto back = Round(loop);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].kind, "platform_reachable");
}

TEST_F(HealthLoopAlerts, NoSinkNoAlerts) {
  rt.set_alerts(nullptr);
  GpuHealthLoop loop(deps, rt);
  gpus.samples[0].ecc_volatile_uncorrected = 2;
  EXPECT_TRUE(Round(loop).empty());
  EXPECT_EQ(store.reports, 1);  // the round itself ran
}

}  // namespace
}  // namespace taolie::agent
