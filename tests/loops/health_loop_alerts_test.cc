// The GPU health loop raises alerts through the runtime's sink (issue 8 item 5): on a
// verdict change and a quarantine, once, not again while nothing changes; and the platform
// silent past monitoring.alerts.platform_unreachable_seconds. Fakes and a FakeClock only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"
#include "fakes/gpu_samples.h"
#include "host/command_runner.h"
#include "loops/loops.h"
#include "telemetry/alerter.h"

namespace taolie::loops {
namespace {

using std::chrono::seconds;

// The store calls a health round makes besides the GPU table: accepted.
class HealthStore final : public testing::FakeStore {
 public:
  Status SyncGpus(const std::vector<store::GpuRecord>&) override { return OkStatus(); }
  Result<int64_t> InsertHealthReport(const domain::HealthReport& r,
                                     const std::vector<domain::GpuHealthRow>&) override {
    last_details = r.details_json;
    return ++reports;
  }
  Result<PruneResult> Prune(const PruneLimits&) override { return PruneResult{}; }
  int64_t reports = 0;
  std::string last_details;  // the last report's ext per-GPU list
};

class ListingGpuProbe final : public testing::FakeGpuProbe {
 public:
  std::vector<gpu::GpuInfo> infos;
  Result<std::vector<gpu::GpuInfo>> ListGpus() override { return infos; }
  std::vector<gpu::XidEvent> xids;  // handed out by the next DrainXids
  Result<std::vector<gpu::XidEvent>> DrainXids() override { return std::exchange(xids, {}); }
};

class RecordingSink final : public telemetry::AlertSink {
 public:
  void Raise(telemetry::Alert a) override { alerts.push_back(std::move(a)); }
  std::vector<telemetry::Alert> alerts;
};

gpu::GpuSample Sample() {
  gpu::GpuSample s = taolie::testing::HealthySample("GPU-a");
  s.fan_speed_percent.reset();  // as this test's fake GPU reports it
  return s;
}

struct HealthLoopAlerts : ::testing::Test {
  HealthLoopAlerts() {
    cfg.logging.file = "";   // no rotated logs to prune
    cfg.gpu.kmsg_path = "";  // the kernel log only where a test names a file
    cfg.monitoring.alerts.platform_unreachable_seconds = 600;
    store.AddGpu("GPU-a");
    gpu::GpuInfo info;
    info.uuid = "GPU-a";
    info.index = 0;
    info.memory_total_mb = 1000;
    info.fan_count = 0;
    info.pci_bus_id = "00000000:3B:00.0";
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
  runtime::Runtime rt{"agent-1", "test", TimestampFormat::kRfc3339};
  RecordingSink sink;
  runtime::Deps deps{cfg, store, docker, gpus, host, api, clock, {}};
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

// XIDs are recorded with the rental holding the GPU: one seen through NVML's event and the
// kernel log is one XID; a kernel-only one is recorded from the log; the log's cursor is kept
// with them, and a line is never read twice.
TEST_F(HealthLoopAlerts, XidsFromNvmlAndTheKernelLogAreRecordedOnceWithTheRental) {
  char tmpl[] = "/tmp/taolie-kmsg-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string path = tmpl;
  cfg.gpu.kmsg_path = path;
  store.gpus[0].deployment_id = "rent-1";
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  std::ofstream(path) << "3,10," << usec << ",-;NVRM: Xid (PCI:0000:3b:00): 79, pid=7, name=a, "
                      << "GPU has fallen off the bus.\n"
                      << "3,11," << usec << ",-;NVRM: Xid (PCI:0000:3b:00): 31, pid=8, name=b, "
                      << "MMU Fault\n";
  gpus.xids = {{"GPU-a", 79, clock.Now()}};
  GpuHealthLoop loop(deps, rt);
  Round(loop);
  ASSERT_EQ(store.xids.size(), 2u);
  EXPECT_EQ(store.xids[0].xid, 79u);
  EXPECT_EQ(store.xids[0].source, "nvml");
  EXPECT_EQ(store.xids[0].deployment_id, "rent-1");
  EXPECT_EQ(store.xids[0].severity, "failure");
  EXPECT_EQ(store.xids[1].xid, 31u);
  EXPECT_EQ(store.xids[1].source, "kmsg");
  EXPECT_EQ(store.xids[1].gpu_uuid, "GPU-a");
  EXPECT_EQ(store.xids[1].pid, std::optional<uint32_t>(8));
  EXPECT_EQ(store.xids[1].deployment_id, "rent-1");
  ASSERT_TRUE(store.kmsg_cursor.has_value());
  EXPECT_EQ(store.kmsg_cursor->next_seq, 12u);
  Round(loop);
  EXPECT_EQ(store.xids.size(), 2u) << "nothing new in the log";
  GpuHealthLoop restarted(deps, rt);  // a new start: the cursor comes from the store
  Round(restarted);
  EXPECT_EQ(store.xids.size(), 2u);
  std::remove(path.c_str());
}

// A GPU reset by `nvidia-smi -r`: the volatile ECC counts of the fake GPU clear, as a real
// reset clears them.
class ResettingRunner final : public host::CommandRunner {
 public:
  explicit ResettingRunner(gpu::GpuSample& sample) : sample_(sample) {}
  Result<host::CommandOutput> Run(const std::vector<std::string>& argv, std::string_view,
                                  std::chrono::milliseconds) override {
    calls.push_back(argv);
    sample_.ecc_volatile_uncorrected = 0;
    return host::CommandOutput{0, "GPU reset", "GPU reset"};
  }
  std::vector<std::vector<std::string>> calls;

 private:
  gpu::GpuSample& sample_;
};

// Issue 17 item 7: volatile uncorrectable ECC errors quarantine the GPU with needs_reset; with
// gpu.allow_reset and no rental the agent resets it and releases it after the healthy time.
// The health push's entry shows the quarantine and its reason meanwhile.
TEST_F(HealthLoopAlerts, VolatileEccIsResetAndReleasedWithAllowReset) {
  rt.set_alerts(nullptr);
  cfg.gpu.allow_reset = true;
  cfg.monitoring.quarantine_clear_seconds = 180;
  ResettingRunner runner(gpus.samples[0]);
  GpuHealthLoop loop(deps, rt, &runner);
  auto entry = [&] { return nlohmann::json::parse(store.last_details).at(0); };
  Round(loop);
  EXPECT_EQ(entry().at("quarantined"), false);
  EXPECT_TRUE(entry().at("quarantine_reason").is_null());

  gpus.samples[0].ecc_volatile_uncorrected = 2;
  Round(loop);
  ASSERT_TRUE(store.gpus[0].quarantined_since.has_value());
  EXPECT_TRUE(store.gpus[0].needs_reset);
  EXPECT_TRUE(runner.calls.empty());  // quarantined this round, reset from the next
  EXPECT_EQ(entry().at("quarantined"), true);
  EXPECT_NE(entry().at("quarantine_reason").get<std::string>().find("uncorrected ECC"),
            std::string::npos)
      << entry();

  Round(loop);  // still unhealthy (the count lasts until a reset): reset now
  ASSERT_EQ(runner.calls.size(), 1u);
  EXPECT_EQ(runner.calls[0], (std::vector<std::string>{"nvidia-smi", "-r", "-i", "GPU-a"}));
  EXPECT_FALSE(store.gpus[0].needs_reset);
  EXPECT_TRUE(store.gpus[0].quarantined_since.has_value());

  int rounds = 0;  // healthy rounds of 60 s until released: bounded
  while (store.gpus[0].quarantined_since && rounds < 10) {
    EXPECT_EQ(entry().at("quarantined"), true);
    Round(loop);
    ++rounds;
  }
  EXPECT_FALSE(store.gpus[0].quarantined_since.has_value());
  EXPECT_EQ(rounds, 4);  // the healthy run of 180 s starts at the first round after the reset
  EXPECT_EQ(entry().at("quarantined"), false);
  EXPECT_EQ(runner.calls.size(), 1u);
}

// Without gpu.allow_reset nothing is reset and the GPU stays out, saying why.
TEST_F(HealthLoopAlerts, VolatileEccWithoutAllowResetStaysQuarantined) {
  rt.set_alerts(nullptr);
  cfg.monitoring.quarantine_clear_seconds = 60;
  ResettingRunner runner(gpus.samples[0]);
  GpuHealthLoop loop(deps, rt, &runner);
  gpus.samples[0].ecc_volatile_uncorrected = 2;
  for (int i = 0; i < 5; ++i) Round(loop);
  EXPECT_TRUE(runner.calls.empty());
  EXPECT_TRUE(store.gpus[0].quarantined_since.has_value());
  EXPECT_TRUE(store.gpus[0].needs_reset);
  EXPECT_NE(nlohmann::json::parse(store.last_details).at(0).dump().find("operator"),
            std::string::npos);
}

}  // namespace
}  // namespace taolie::loops
