// NvmlGpuProbe against the fake libnvidia-ml.so.1 built from tests/fake_nvml.
#include "gpu/nvml_gpu_probe.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace taolie::gpu {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr char kUuid0[] = "GPU-6e1f6c9a-1d2b-4c3d-8e4f-000000000000";
constexpr char kUuid1[] = "GPU-6e1f6c9a-1d2b-4c3d-8e4f-000000000001";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class NvmlGpuProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "taolie-nvml-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    scenario_ = dir_ / "scenario.ini";
  }
  void TearDown() override {
    unsetenv("TAOLIE_FAKE_NVML_SCENARIO");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Writes the scenario atomically (new inode), so the fake re-reads it on its next call.
  void WriteScenario(const std::string& text) {
    fs::path tmp = dir_ / ("next-" + std::to_string(++writes_) + ".ini");
    {
      std::ofstream out(tmp);
      out << text;
    }
    fs::rename(tmp, scenario_);
    setenv("TAOLIE_FAKE_NVML_SCENARIO", scenario_.c_str(), 1);
  }
  std::string TwoGpus() { return ReadFile(fs::path(SCENARIO_DIR) / "two_gpus.ini"); }
  std::unique_ptr<NvmlGpuProbe> Make(std::vector<std::string> exclude = {},
                                     milliseconds timeout = milliseconds(5000)) {
    NvmlGpuProbe::Options o;
    o.library_path = FAKE_NVML_PATH;
    o.exclude_uuids = std::move(exclude);
    o.call_timeout = timeout;
    return NvmlGpuProbe::Create(std::move(o));
  }

  fs::path dir_;
  fs::path scenario_;
  int writes_ = 0;
};

TEST(CudaVersionStringTest, FormatsNvmlIntegers) {
  EXPECT_EQ(CudaVersionString(12040), "12.4");
  EXPECT_EQ(CudaVersionString(11080), "11.8");
  EXPECT_EQ(CudaVersionString(12000), "12.0");
  EXPECT_EQ(CudaVersionString(0), "");
}

TEST_F(NvmlGpuProbeTest, MissingLibraryIsUnavailableNotFatal) {
  auto probe = NvmlGpuProbe::Create((dir_ / "libnvidia-ml.so.1").string());
  ASSERT_NE(probe, nullptr);
  EXPECT_FALSE(probe->Available());
  EXPECT_NE(probe->UnavailableReason().find("could not be loaded"), std::string::npos)
      << probe->UnavailableReason();
  auto driver = probe->Driver();
  ASSERT_FALSE(driver.ok());
  EXPECT_EQ(driver.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(probe->ListGpus().error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(probe->Sample().error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(probe->DrainXids().error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(NvmlGpuProbeTest, InitFailureIsUnavailableWithNvmlMessage) {
  WriteScenario("init_error=9\n");
  auto probe = Make();
  EXPECT_FALSE(probe->Available());
  EXPECT_NE(probe->UnavailableReason().find("nvmlInit_v2"), std::string::npos);
  EXPECT_NE(probe->UnavailableReason().find("Driver Not Loaded"), std::string::npos)
      << probe->UnavailableReason();
  EXPECT_EQ(probe->Sample().error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(NvmlGpuProbeTest, WithoutScenarioOneDefaultGpu) {
  unsetenv("TAOLIE_FAKE_NVML_SCENARIO");
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].name, "Fake GPU 0");
}

TEST_F(NvmlGpuProbeTest, TwoGpusDriverListAndSample) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  EXPECT_EQ(probe->UnavailableReason(), "");

  auto driver = probe->Driver();
  ASSERT_TRUE(driver.ok()) << driver.error().ToString();
  EXPECT_EQ(driver->driver_version, "550.54.15");
  EXPECT_EQ(driver->cuda_version, "12.4");
  EXPECT_EQ(driver->nvml_version, "12.550.54.15");

  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->size(), 2u);
  const GpuInfo& a = (*gpus)[0];
  const GpuInfo& b = (*gpus)[1];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.name, "NVIDIA GeForce RTX 4090");
  EXPECT_EQ(a.uuid, kUuid0);
  EXPECT_EQ(a.pci_bus_id, "00000000:01:00.0");
  EXPECT_EQ(a.memory_total_mb, 24564u);
  EXPECT_EQ(a.compute_capability, "8.9");
  EXPECT_EQ(a.mig_mode, "unsupported");
  ASSERT_TRUE(a.power_limit_watts.has_value());
  EXPECT_DOUBLE_EQ(*a.power_limit_watts, 450.0);
  EXPECT_EQ(b.index, 1);
  EXPECT_EQ(b.name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(b.uuid, kUuid1);
  EXPECT_EQ(b.memory_total_mb, 81920u);
  EXPECT_EQ(b.compute_capability, "8.0");
  EXPECT_EQ(b.mig_mode, "disabled");

  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  ASSERT_EQ(samples->size(), 2u);
  const GpuSample& s0 = (*samples)[0];
  const GpuSample& s1 = (*samples)[1];
  EXPECT_EQ(s0.uuid, kUuid0);
  EXPECT_FALSE(s0.lost);
  EXPECT_EQ(s0.error, "");
  EXPECT_EQ(s0.utilization_percent, 37.0);
  EXPECT_EQ(s0.memory_used_mb, 1024u);
  EXPECT_EQ(s0.memory_total_mb, 24564u);
  EXPECT_EQ(s0.temperature_c, 54.0);
  EXPECT_EQ(s0.power_draw_watts, 120.5);
  EXPECT_EQ(s0.power_limit_watts, 450.0);
  EXPECT_EQ(s0.fan_speed_percent, 41.0);
  EXPECT_EQ(s0.sm_clock_mhz, 2520u);
  EXPECT_EQ(s0.mem_clock_mhz, 10501u);
  EXPECT_FALSE(s0.ecc_volatile_uncorrected.has_value());  // ecc=none
  EXPECT_EQ(s0.throttle_reasons, 0u);
  EXPECT_EQ(s0.process_pids, (std::vector<uint32_t>{1001, 4242}));

  // Fanless card: the fan is absent, not an error.
  EXPECT_EQ(s1.uuid, kUuid1);
  EXPECT_FALSE(s1.fan_speed_percent.has_value());
  EXPECT_EQ(s1.error, "");
  EXPECT_FALSE(s1.lost);
  EXPECT_EQ(s1.ecc_volatile_uncorrected, 0u);
  EXPECT_EQ(s1.ecc_volatile_corrected, 3u);
  EXPECT_TRUE(s1.process_pids.empty());
}

TEST_F(NvmlGpuProbeTest, GpuLostAfterStartKeepsUuidOthersFine) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  WriteScenario(TwoGpus() + "lost=1\n");  // appended to [gpu1]
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  ASSERT_EQ(samples->size(), 2u);
  EXPECT_FALSE((*samples)[0].lost);
  EXPECT_EQ((*samples)[0].utilization_percent, 37.0);
  EXPECT_TRUE((*samples)[1].lost);
  EXPECT_EQ((*samples)[1].uuid, kUuid1);
  EXPECT_NE((*samples)[1].error.find("GPU is lost"), std::string::npos) << (*samples)[1].error;
  EXPECT_FALSE((*samples)[1].memory_used_mb.has_value());

  // The GPU keeps its identity across a re-scan while lost.
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].uuid, kUuid1);
}

TEST_F(NvmlGpuProbeTest, GpuLostAtStartIsReportedLost) {
  WriteScenario(TwoGpus() + "lost=1\n");
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  ASSERT_EQ(samples->size(), 2u);
  EXPECT_FALSE((*samples)[0].lost);
  EXPECT_TRUE((*samples)[1].lost);
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  EXPECT_EQ(gpus->size(), 1u);  // no identity known: not offered
}

TEST_F(NvmlGpuProbeTest, OtherDeviceErrorIsRecordedNotLost) {
  WriteScenario(TwoGpus() + "error=999\n");
  auto probe = Make();
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  EXPECT_FALSE((*samples)[1].lost);
  EXPECT_NE((*samples)[1].error.find("Unknown Error"), std::string::npos) << (*samples)[1].error;
}

TEST_F(NvmlGpuProbeTest, ExcludedUuidsAreHidden) {
  WriteScenario(TwoGpus() + "xids=43\n");  // XID on gpu1
  auto probe = Make({kUuid1});
  ASSERT_TRUE(probe->Available());
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].uuid, kUuid0);
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  ASSERT_EQ(samples->size(), 1u);
  EXPECT_EQ((*samples)[0].uuid, kUuid0);
  auto xids = probe->DrainXids();
  ASSERT_TRUE(xids.ok());
  EXPECT_TRUE(xids->empty());
}

TEST_F(NvmlGpuProbeTest, XidsAreDrainedOnce) {
  WriteScenario(ReadFile(fs::path(SCENARIO_DIR) / "eight_gpus.ini"));
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto xids = probe->DrainXids();
  ASSERT_TRUE(xids.ok()) << xids.error().ToString();
  ASSERT_EQ(xids->size(), 2u);
  EXPECT_EQ((*xids)[0].uuid, "GPU-8c6b1f2e-0000-4000-8000-000000000005");
  EXPECT_EQ((*xids)[0].xid, 79u);
  EXPECT_EQ((*xids)[1].xid, 48u);
  EXPECT_GT((*xids)[0].at.time_since_epoch().count(), 0);
  auto again = probe->DrainXids();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(samples->size(), 8u);
}

TEST_F(NvmlGpuProbeTest, ManyProcessesUseTheLargerBuffer) {
  std::string pids;
  for (int i = 0; i < 40; ++i) pids += (i ? "," : "") + std::to_string(1000 + i);
  WriteScenario("[gpu0]\nprocesses=" + pids + "\ngraphics_processes=1000,7\n");
  auto probe = Make();
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  ASSERT_EQ(samples->size(), 1u);
  const auto& p = (*samples)[0].process_pids;
  ASSERT_EQ(p.size(), 41u);  // 40 compute + pid 7; 1000 appears in both lists once
  EXPECT_EQ(p.front(), 7u);
  EXPECT_EQ(p.back(), 1039u);
}

TEST_F(NvmlGpuProbeTest, ScenarioChangesArePickedUp) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  auto first = probe->Sample();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)[0].utilization_percent, 37.0);
  std::string changed = TwoGpus();
  changed.replace(changed.find("utilization=37"), 14, "utilization=91");
  changed.replace(changed.find("gpu_count=2"), 11, "gpu_count=3");
  WriteScenario(changed);
  auto second = probe->Sample();
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 3u);
  EXPECT_EQ((*second)[0].utilization_percent, 91.0);
  EXPECT_EQ((*second)[2].uuid, "GPU-fa4e0000-0000-0000-0000-000000000002");
}

TEST_F(NvmlGpuProbeTest, HungDriverHitsDeadlineThenRecovers) {
  WriteScenario(TwoGpus());
  auto probe = Make({}, milliseconds(150));
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  WriteScenario(TwoGpus() + "hang_ms=60000\n");  // gpu1 hangs for a minute

  auto start = steady_clock::now();
  auto hung = probe->Sample();
  auto took = steady_clock::now() - start;
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_LT(took, milliseconds(2000));

  // The worker is still inside the hung call: fail fast, do not queue behind it.
  start = steady_clock::now();
  auto busy = probe->Driver();
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kUnavailable) << busy.error().ToString();
  EXPECT_LT(steady_clock::now() - start, milliseconds(100));

  WriteScenario(TwoGpus());  // the driver "returns"
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {  // bounded: at most ~2 s
    auto s = probe->Sample();
    recovered = s.ok() && s->size() == 2u;
    if (!recovered) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(recovered);
}

TEST_F(NvmlGpuProbeTest, HungInitIsUnavailable) {
  WriteScenario("hang_ms=60000\n");
  auto probe = Make({}, milliseconds(100));
  EXPECT_FALSE(probe->Available());
  EXPECT_NE(probe->UnavailableReason().find("did not return"), std::string::npos)
      << probe->UnavailableReason();
  WriteScenario("hang_ms=0\n");  // lets the worker finish so the destructor joins it
  auto start = steady_clock::now();
  probe.reset();
  EXPECT_LT(steady_clock::now() - start, milliseconds(2500));
}

TEST_F(NvmlGpuProbeTest, ConcurrentCallersAreSerialised) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto s = probe->Sample();
        auto x = probe->DrainXids();
        if (s.ok() && s->size() == 2u && x.ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
}

}  // namespace
}  // namespace taolie::gpu
