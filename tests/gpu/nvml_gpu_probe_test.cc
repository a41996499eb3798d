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
#include <functional>
#include <sstream>
#include <thread>

#include "thread_count.h"

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
                                     milliseconds timeout = milliseconds(5000),
                                     const char* library = FAKE_NVML_PATH) {
    NvmlGpuProbe::Options o;
    o.library_path = library;
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

TEST(NvmlLibraryCandidatesTest, TheDefaultNameAlsoTriesTheWslDriversPath) {
  EXPECT_EQ(NvmlLibraryCandidates("libnvidia-ml.so.1"),
            (std::vector<std::string>{"libnvidia-ml.so.1", "/usr/lib/wsl/lib/libnvidia-ml.so.1"}));
  // A path the owner chose is the only one tried.
  EXPECT_EQ(NvmlLibraryCandidates("/opt/nvidia/libnvidia-ml.so.1"),
            (std::vector<std::string>{"/opt/nvidia/libnvidia-ml.so.1"}));
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

// One GPU that reports every signal with a distinct value.
constexpr char kAllSignals[] = R"(
[gpu0]
name=NVIDIA A100-SXM4-80GB
uuid=GPU-6e1f6c9a-1d2b-4c3d-8e4f-000000000000
serial=1652320012345
vbios_version=92.00.45.00.03
inforom_image_version=G506.0212.00.02
memory_total_mib=81920
memory_used_mib=2048
memory_reserved_mib=512
utilization=61
memory_utilization=23
fans=30,50
ecc_uncorrected=1
ecc_corrected=7
ecc_aggregate_uncorrected=4
ecc_aggregate_corrected=70
temperature_slowdown=88
temperature_shutdown=93
energy_mj=123456789
pcie_gen=3
pcie_width=8
pcie_max_gen=4
pcie_max_width=16
pcie_replay=17
retired_sbe=5
retired_dbe=2
retired_pending=1
remapped_correctable=3
remapped_uncorrectable=1
remap_pending=1
remap_failure=1
power_violation_ns=4000000000
thermal_violation_ns=250000000
recovery_action=2
persistence=1
throttle_reasons=0x40
)";

// Every function behind the signals issue 8 added, for `unsupported=`.
constexpr char kNewFunctions[] =
    "nvmlDeviceGetSerial,nvmlDeviceGetVbiosVersion,nvmlDeviceGetInforomImageVersion,"
    "nvmlDeviceGetNumFans,nvmlDeviceGetFanSpeed_v2,nvmlDeviceGetFanSpeed,nvmlDeviceGetEccMode,"
    "nvmlDeviceGetTotalEccErrors,nvmlDeviceGetTemperatureThreshold,"
    "nvmlDeviceGetTotalEnergyConsumption,nvmlDeviceGetCurrPcieLinkGeneration,"
    "nvmlDeviceGetCurrPcieLinkWidth,nvmlDeviceGetMaxPcieLinkGeneration,"
    "nvmlDeviceGetMaxPcieLinkWidth,nvmlDeviceGetPcieReplayCounter,nvmlDeviceGetRetiredPages_v2,"
    "nvmlDeviceGetRetiredPagesPendingStatus,nvmlDeviceGetRemappedRows,"
    "nvmlDeviceGetViolationStatus,nvmlDeviceGetFieldValues,nvmlDeviceGetPersistenceMode,"
    "nvmlDeviceValidateInforom";

TEST_F(NvmlGpuProbeTest, EverySignalIsRead) {
  WriteScenario(kAllSignals);
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->size(), 1u);
  const GpuInfo& info = (*gpus)[0];
  EXPECT_EQ(info.serial, "1652320012345");
  EXPECT_EQ(info.vbios_version, "92.00.45.00.03");
  EXPECT_EQ(info.inforom_image_version, "G506.0212.00.02");
  EXPECT_EQ(info.fan_count, 2);
  EXPECT_EQ(info.memory_total_mb, 81920u);

  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  ASSERT_EQ(samples->size(), 1u);
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");
  EXPECT_FALSE(s.lost);
  EXPECT_EQ(s.utilization_percent, 61.0);
  EXPECT_EQ(s.memory_utilization_percent, 23.0);
  // nvmlDeviceGetMemoryInfo_v2: reserved memory is neither used nor free.
  EXPECT_EQ(s.memory_total_mb, 81920u);
  EXPECT_EQ(s.memory_used_mb, 2048u);
  EXPECT_EQ(s.memory_free_mb, 81920u - 2048u - 512u);
  EXPECT_EQ(s.fan_speed_percent, 40.0);  // the mean of both fans
  EXPECT_EQ(s.temperature_slowdown_c, 88.0);
  EXPECT_EQ(s.temperature_shutdown_c, 93.0);
  ASSERT_TRUE(s.energy_joules.has_value());
  EXPECT_DOUBLE_EQ(*s.energy_joules, 123456.789);
  EXPECT_EQ(s.pcie_gen, 3u);
  EXPECT_EQ(s.pcie_width, 8u);
  EXPECT_EQ(s.pcie_max_gen, 4u);
  EXPECT_EQ(s.pcie_max_width, 16u);
  EXPECT_EQ(s.pcie_replay_count, 17u);
  EXPECT_EQ(s.ecc_enabled, true);
  EXPECT_EQ(s.ecc_volatile_uncorrected, 1u);
  EXPECT_EQ(s.ecc_volatile_corrected, 7u);
  EXPECT_EQ(s.ecc_aggregate_uncorrected, 4u);
  EXPECT_EQ(s.ecc_aggregate_corrected, 70u);
  EXPECT_EQ(s.retired_pages_sbe, 5u);
  EXPECT_EQ(s.retired_pages_dbe, 2u);
  EXPECT_EQ(s.retired_pages_pending, true);
  EXPECT_EQ(s.remapped_rows_correctable, 3u);
  EXPECT_EQ(s.remapped_rows_uncorrectable, 1u);
  EXPECT_EQ(s.remapped_rows_pending, true);
  EXPECT_EQ(s.remapped_rows_failure, true);
  EXPECT_EQ(s.power_violation_ns, 4000000000u);
  EXPECT_EQ(s.thermal_violation_ns, 250000000u);
  EXPECT_EQ(s.recovery_action, 2u);
  EXPECT_EQ(s.persistence_mode, true);
  EXPECT_EQ(s.inforom_valid, true);
  EXPECT_EQ(s.throttle_reasons, 0x40u);
}

TEST_F(NvmlGpuProbeTest, FalseAndZeroValuesAreReportedNotAbsent) {
  WriteScenario("[gpu0]\necc=disabled\npersistence=0\ninforom_valid=0\nfan=none\n");
  auto probe = Make();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  EXPECT_EQ((*gpus)[0].fan_count, 0);  // a fanless card
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");  // a corrupted InfoROM is a reading, not a failed call
  EXPECT_EQ(s.ecc_enabled, false);
  EXPECT_FALSE(s.ecc_volatile_uncorrected.has_value());  // counters need ECC on
  EXPECT_EQ(s.persistence_mode, false);
  EXPECT_EQ(s.inforom_valid, false);
  EXPECT_FALSE(s.fan_speed_percent.has_value());
  EXPECT_EQ(s.retired_pages_sbe, 0u);
  EXPECT_EQ(s.retired_pages_pending, false);
  EXPECT_EQ(s.remapped_rows_failure, false);
  EXPECT_EQ(s.recovery_action, 0u);
}

TEST_F(NvmlGpuProbeTest, UnsupportedSignalsAreAbsentNotErrors) {
  WriteScenario(std::string(kAllSignals) + "unsupported=" + kNewFunctions + "\n");
  auto probe = Make();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  const GpuInfo& info = (*gpus)[0];
  EXPECT_EQ(info.serial, "");
  EXPECT_EQ(info.vbios_version, "");
  EXPECT_EQ(info.inforom_image_version, "");
  EXPECT_FALSE(info.fan_count.has_value());
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");
  EXPECT_FALSE(s.lost);
  EXPECT_EQ(s.utilization_percent, 61.0);  // the rest is still read
  EXPECT_EQ(s.memory_used_mb, 2048u);
  EXPECT_FALSE(s.fan_speed_percent.has_value());
  EXPECT_FALSE(s.temperature_slowdown_c.has_value());
  EXPECT_FALSE(s.temperature_shutdown_c.has_value());
  EXPECT_FALSE(s.energy_joules.has_value());
  EXPECT_FALSE(s.pcie_gen.has_value());
  EXPECT_FALSE(s.pcie_width.has_value());
  EXPECT_FALSE(s.pcie_max_gen.has_value());
  EXPECT_FALSE(s.pcie_max_width.has_value());
  EXPECT_FALSE(s.pcie_replay_count.has_value());
  EXPECT_FALSE(s.ecc_enabled.has_value());
  EXPECT_FALSE(s.ecc_volatile_uncorrected.has_value());
  EXPECT_FALSE(s.ecc_aggregate_uncorrected.has_value());
  EXPECT_FALSE(s.ecc_aggregate_corrected.has_value());
  // nvmlDeviceGetRetiredPages (the older name) still answers: the newer one is preferred only
  // where it exists, and a NOT_SUPPORTED answer is not a reason to try the other.
  EXPECT_FALSE(s.retired_pages_sbe.has_value());
  EXPECT_FALSE(s.retired_pages_dbe.has_value());
  EXPECT_FALSE(s.retired_pages_pending.has_value());
  EXPECT_FALSE(s.remapped_rows_correctable.has_value());
  EXPECT_FALSE(s.remapped_rows_uncorrectable.has_value());
  EXPECT_FALSE(s.remapped_rows_pending.has_value());
  EXPECT_FALSE(s.remapped_rows_failure.has_value());
  EXPECT_FALSE(s.power_violation_ns.has_value());
  EXPECT_FALSE(s.thermal_violation_ns.has_value());
  EXPECT_FALSE(s.recovery_action.has_value());
  EXPECT_FALSE(s.persistence_mode.has_value());
  EXPECT_FALSE(s.inforom_valid.has_value());
}

TEST_F(NvmlGpuProbeTest, NoPermissionIsAbsentToo) {
  WriteScenario(std::string(kAllSignals) + "error=4\n");  // every query: NO_PERMISSION
  auto probe = Make();
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");
  EXPECT_FALSE(s.remapped_rows_failure.has_value());
  EXPECT_FALSE(s.memory_used_mb.has_value());
}

TEST_F(NvmlGpuProbeTest, NewestFunctionNamesArePreferred) {
  // The older names answer NOT_SUPPORTED: every value still arrives, so the newer ones ran.
  WriteScenario(std::string(kAllSignals) +
                "unsupported=nvmlDeviceGetMemoryInfo,nvmlDeviceGetFanSpeed,"
                "nvmlDeviceGetCurrentClocksThrottleReasons,nvmlDeviceGetRetiredPages,"
                "nvmlDeviceGetGpuMaxPcieLinkGeneration\n");
  auto probe = Make();
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.memory_used_mb, 2048u);
  EXPECT_EQ(s.memory_free_mb, 81920u - 2048u - 512u);
  EXPECT_EQ(s.fan_speed_percent, 40.0);
  EXPECT_EQ(s.throttle_reasons, 0x40u);
  EXPECT_EQ(s.retired_pages_sbe, 5u);
  EXPECT_EQ(s.pcie_max_gen, 4u);
}

TEST_F(NvmlGpuProbeTest, OlderLibraryIsReadThroughTheFallbackNames) {
  // The fallback build exports none of the newer variants.
  WriteScenario(kAllSignals);
  auto probe = Make({}, milliseconds(5000), FAKE_NVML_FALLBACK_PATH);
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  EXPECT_FALSE((*gpus)[0].fan_count.has_value());  // no nvmlDeviceGetNumFans
  EXPECT_EQ((*gpus)[0].memory_total_mb, 81920u);
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  const GpuSample& s = (*samples)[0];
  EXPECT_EQ(s.error, "");
  // nvmlDeviceGetMemoryInfo counts the reserved memory as used.
  EXPECT_EQ(s.memory_used_mb, 2048u + 512u);
  EXPECT_EQ(s.memory_free_mb, 81920u - 2048u - 512u);
  EXPECT_EQ(s.fan_speed_percent, 30.0);  // nvmlDeviceGetFanSpeed: the first fan
  EXPECT_EQ(s.throttle_reasons, 0x40u);  // ...ClocksThrottleReasons
  EXPECT_EQ(s.retired_pages_sbe, 5u);    // nvmlDeviceGetRetiredPages
  EXPECT_EQ(s.retired_pages_dbe, 2u);
  EXPECT_EQ(s.pcie_max_gen, 4u);  // nvmlDeviceGetGpuMaxPcieLinkGeneration
  EXPECT_EQ(s.remapped_rows_failure, true);

  // And without those either, the values are absent, not errors.
  WriteScenario(std::string(kAllSignals) +
                "unsupported=nvmlDeviceGetMemoryInfo,nvmlDeviceGetFanSpeed,"
                "nvmlDeviceGetCurrentClocksThrottleReasons,nvmlDeviceGetRetiredPages,"
                "nvmlDeviceGetGpuMaxPcieLinkGeneration\n");
  samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  const GpuSample& t = (*samples)[0];
  EXPECT_EQ(t.error, "");
  EXPECT_FALSE(t.memory_used_mb.has_value());
  EXPECT_FALSE(t.fan_speed_percent.has_value());
  EXPECT_FALSE(t.throttle_reasons.has_value());
  EXPECT_FALSE(t.retired_pages_sbe.has_value());
  EXPECT_FALSE(t.pcie_max_gen.has_value());
  EXPECT_EQ(t.pcie_max_width, 16u);
}

TEST_F(NvmlGpuProbeTest, EightMixedGpus) {
  WriteScenario(ReadFile(fs::path(SCENARIO_DIR) / "eight_gpus.ini"));
  auto probe = Make();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 8u);
  EXPECT_EQ((*gpus)[0].fan_count, 0);
  EXPECT_EQ((*gpus)[4].fan_count, 1);
  EXPECT_EQ((*gpus)[7].fan_count, 2);
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok());
  ASSERT_EQ(samples->size(), 8u);
  for (const auto& s : *samples) EXPECT_EQ(s.error, "") << s.index;
  const GpuSample& h100 = (*samples)[0];
  EXPECT_FALSE(h100.fan_speed_percent.has_value());
  EXPECT_EQ(h100.remapped_rows_failure, false);
  EXPECT_FALSE(h100.retired_pages_sbe.has_value());
  EXPECT_EQ(h100.ecc_enabled, true);
  EXPECT_EQ(h100.pcie_gen, 5u);
  const GpuSample& quadro = (*samples)[4];
  EXPECT_EQ(quadro.fan_speed_percent, 33.0);
  EXPECT_EQ(quadro.retired_pages_sbe, 2u);
  EXPECT_EQ(quadro.retired_pages_pending, false);
  EXPECT_FALSE(quadro.remapped_rows_failure.has_value());
  const GpuSample& consumer = (*samples)[7];
  EXPECT_EQ(consumer.fan_speed_percent, 32.0);
  EXPECT_FALSE(consumer.ecc_enabled.has_value());
  EXPECT_FALSE(consumer.ecc_volatile_uncorrected.has_value());
  EXPECT_FALSE(consumer.retired_pages_sbe.has_value());
  EXPECT_FALSE(consumer.remapped_rows_failure.has_value());
  EXPECT_EQ(consumer.persistence_mode, false);
}

TEST_F(NvmlGpuProbeTest, FaultScenarios) {
  struct Case {
    const char* file;
    std::function<void(const GpuSample&)> check;
  };
  const Case cases[] = {
      {"ecc_errors.ini",
       [](const GpuSample& s) {
         EXPECT_EQ(s.ecc_volatile_uncorrected, 2u);
         EXPECT_EQ(s.ecc_aggregate_uncorrected, 5u);
         EXPECT_EQ(s.recovery_action, 1u);
       }},
      {"pending_retirement.ini",
       [](const GpuSample& s) {
         EXPECT_EQ(s.retired_pages_sbe, 3u);
         EXPECT_EQ(s.retired_pages_dbe, 1u);
         EXPECT_EQ(s.retired_pages_pending, true);
       }},
      {"remap_failure.ini",
       [](const GpuSample& s) {
         EXPECT_EQ(s.remapped_rows_failure, true);
         EXPECT_EQ(s.remapped_rows_pending, true);
         EXPECT_EQ(s.remapped_rows_uncorrectable, 9u);
       }},
      {"lost_gpu.ini", [](const GpuSample& s) { EXPECT_TRUE(s.lost); }},
      {"process_left.ini",
       [](const GpuSample& s) {
         EXPECT_EQ(s.process_pids, std::vector<uint32_t>{31337});
         EXPECT_EQ(s.memory_used_mb, 4096u);
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    WriteScenario(ReadFile(fs::path(SCENARIO_DIR) / c.file));
    auto probe = Make();
    ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
    auto samples = probe->Sample();
    ASSERT_TRUE(samples.ok()) << samples.error().ToString();
    ASSERT_EQ(samples->size(), 2u);
    EXPECT_FALSE((*samples)[0].lost);
    EXPECT_EQ((*samples)[0].error, "");
    c.check((*samples)[1]);
  }
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

using test_support::ThreadCount;
using test_support::ThreadCountReaching;

// Issue 18 item 9: a worker thread per GPU (and the global one) exists only while a call is in
// flight. Before, the probe kept one thread per GPU plus one for global calls alive for good.
TEST_F(NvmlGpuProbeTest, AnIdleProbeHoldsNoThread) {
  WriteScenario(TwoGpus());
  const size_t before = ThreadCount();
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  // Initialisation and the first scan left none behind.
  EXPECT_EQ(ThreadCountReaching(before), before);
  for (int round = 0; round < 3; ++round) {
    auto samples = probe->Sample();
    ASSERT_TRUE(samples.ok()) << samples.error().ToString();
    ASSERT_EQ(samples->size(), 2u);
    EXPECT_EQ((*samples)[1].temperature_c, 33.0);  // both GPUs were really read
    auto gpus = probe->ListGpus();
    ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
    EXPECT_EQ(gpus->size(), 2u);
    EXPECT_TRUE(probe->Driver().ok());
    EXPECT_TRUE(probe->DrainXids().ok());
    EXPECT_EQ(ThreadCountReaching(before), before) << "round " << round;
  }
}

TEST_F(NvmlGpuProbeTest, HungGpuIsUnresponsiveWhileTheOthersAreRead) {
  const size_t before = ThreadCount();
  WriteScenario(TwoGpus());
  auto probe = Make({}, milliseconds(150));
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  ASSERT_EQ(probe->ListGpus()->size(), 2u);
  WriteScenario(TwoGpus() + "hang_ms=60000\n");  // every call into gpu1 hangs for a minute

  auto start = steady_clock::now();
  auto first = probe->Sample();
  auto took = steady_clock::now() - start;
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_GE(took, milliseconds(150));   // it waited for gpu1 until the deadline...
  EXPECT_LT(took, milliseconds(2000));  // ...and no longer
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].error, "");
  EXPECT_EQ((*first)[0].utilization_percent, 37.0);  // gpu0 read in the same call
  EXPECT_EQ((*first)[1].uuid, kUuid1);
  EXPECT_FALSE((*first)[1].lost);
  EXPECT_NE((*first)[1].error.find("unresponsive"), std::string::npos) << (*first)[1].error;
  EXPECT_TRUE((*first)[1].unresponsive);
  EXPECT_NE((*first)[1].error.find("did not return"), std::string::npos) << (*first)[1].error;
  EXPECT_FALSE((*first)[1].temperature_c.has_value());
  // Only gpu1's worker, inside the hung call, remains.
  const size_t threads = ThreadCountReaching(before + 1);
  EXPECT_EQ(threads, before + 1);

  // While the call still hangs: gpu1 answers at once (no new call is queued behind it), the
  // rest of the probe works, and no thread is added.
  for (int i = 0; i < 5; ++i) {
    start = steady_clock::now();
    auto again = probe->Sample();
    EXPECT_LT(steady_clock::now() - start, milliseconds(100));
    ASSERT_TRUE(again.ok()) << again.error().ToString();
    ASSERT_EQ(again->size(), 2u);
    EXPECT_EQ((*again)[0].error, "");
    EXPECT_NE((*again)[1].error.find("unresponsive"), std::string::npos) << (*again)[1].error;
    EXPECT_NE((*again)[1].error.find("still blocked"), std::string::npos) << (*again)[1].error;
  }
  auto driver = probe->Driver();
  EXPECT_TRUE(driver.ok()) << driver.error().ToString();
  auto gpus = probe->ListGpus();  // gpu1 keeps its identity while it does not answer
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].uuid, kUuid1);
  EXPECT_EQ((*gpus)[1].name, "NVIDIA A100-SXM4-80GB");
  EXPECT_TRUE(probe->DrainXids().ok());
  EXPECT_EQ(ThreadCountReaching(threads), threads);

  WriteScenario(TwoGpus());  // the driver "returns"
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {  // bounded: at most ~2 s
    auto s = probe->Sample();
    recovered = s.ok() && s->size() == 2u && (*s)[1].error.empty() && (*s)[1].temperature_c == 33.0;
    if (!recovered) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(recovered);
  // The hung call's worker ended once the call returned, and the workers of the calls since
  // ended with their calls: not even that thread remains (issue 18 item 9).
  EXPECT_EQ(ThreadCountReaching(before), before);
}

TEST_F(NvmlGpuProbeTest, OnlyTheNamedFunctionsHang) {
  WriteScenario(TwoGpus());
  auto probe = Make({}, milliseconds(150));
  WriteScenario(TwoGpus() + "hang_ms=60000\nhang_functions=nvmlDeviceGetPowerUsage\n");
  auto samples = probe->Sample();
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  EXPECT_EQ((*samples)[0].error, "");
  EXPECT_NE((*samples)[1].error.find("unresponsive"), std::string::npos) << (*samples)[1].error;
  WriteScenario(TwoGpus());
}

TEST_F(NvmlGpuProbeTest, EightGpusOneHungTheOtherSevenRead) {
  const std::string eight = ReadFile(fs::path(SCENARIO_DIR) / "eight_gpus.ini");
  WriteScenario(eight);
  auto probe = Make({}, milliseconds(200));
  ASSERT_EQ(probe->ListGpus()->size(), 8u);
  // gpu3 hangs in its temperature read (a second [gpu3] section adds to the first).
  WriteScenario(eight + "\n[gpu3]\nhang_ms=60000\nhang_functions=nvmlDeviceGetTemperature\n");
  auto start = steady_clock::now();
  auto samples = probe->Sample();
  EXPECT_LT(steady_clock::now() - start, milliseconds(2000));
  ASSERT_TRUE(samples.ok()) << samples.error().ToString();
  ASSERT_EQ(samples->size(), 8u);
  for (const auto& s : *samples) {
    if (s.index == 3) {
      EXPECT_NE(s.error.find("unresponsive"), std::string::npos) << s.error;
      EXPECT_FALSE(s.lost);
    } else {
      EXPECT_EQ(s.error, "") << s.index;
      EXPECT_EQ(s.temperature_c, 35.0) << s.index;
    }
  }
  WriteScenario(eight);
}

TEST_F(NvmlGpuProbeTest, HungGlobalCallFailsTheSampleThenRecovers) {
  WriteScenario(TwoGpus());
  auto probe = Make({}, milliseconds(150));
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  WriteScenario("hang_ms=60000\nhang_functions=nvmlDeviceGetCount_v2\n" + TwoGpus());

  auto start = steady_clock::now();
  auto hung = probe->Sample();
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.error().code, ErrorCode::kDeadlineExceeded) << hung.error().ToString();
  EXPECT_LT(steady_clock::now() - start, milliseconds(2000));

  // The global worker is still inside the hung call: fail fast, do not queue behind it.
  start = steady_clock::now();
  auto busy = probe->Driver();
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kUnavailable) << busy.error().ToString();
  EXPECT_EQ(probe->Sample().error().code, ErrorCode::kUnavailable);
  EXPECT_LT(steady_clock::now() - start, milliseconds(100));

  WriteScenario(TwoGpus());  // the driver "returns"
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {  // bounded: at most ~2 s
    auto s = probe->Sample();
    recovered = s.ok() && s->size() == 2u && (*s)[1].error.empty();
    if (!recovered) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(recovered);
}

TEST_F(NvmlGpuProbeTest, GpuHungAtStartIsNotListedUntilItAnswers) {
  WriteScenario(TwoGpus() + "hang_ms=60000\n");
  auto probe = Make({}, milliseconds(150));
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto gpus = probe->ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->size(), 1u);  // no identity known yet: not offered
  EXPECT_EQ((*gpus)[0].uuid, kUuid0);
  WriteScenario(TwoGpus());
  bool listed = false;
  for (int i = 0; i < 100 && !listed; ++i) {  // bounded: at most ~2 s
    auto g = probe->ListGpus();
    listed = g.ok() && g->size() == 2u && (*g)[1].uuid == kUuid1;
    if (!listed) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(listed);
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

TEST_F(NvmlGpuProbeTest, ConcurrentCallersShareTheWorkers) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto s = probe->Sample();
        auto x = probe->DrainXids();
        if (s.ok() && s->size() == 2u && x.ok()) {
          ++ok;
        } else {
          ADD_FAILURE() << (s.ok() ? std::to_string(s->size()) : s.error().ToString()) << " / "
                        << (x.ok() ? "" : x.error().ToString());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
}

}  // namespace
}  // namespace taolie::gpu
