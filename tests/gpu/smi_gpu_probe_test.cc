// SmiGpuProbe against the fake nvidia-smi (tests/fake_nvidia_smi) run by the real
// SubprocessRunner: what each call reads, how many runs a Sample costs, and how an old, failing
// or hanging tool comes back.
#include "gpu/smi_gpu_probe.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

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

// The real runner, with every command line recorded.
class RecordingRunner : public host::CommandRunner {
 public:
  Result<host::CommandOutput> Run(const std::vector<std::string>& argv, std::string_view stdin_data,
                                  std::chrono::milliseconds timeout) override {
    {
      std::lock_guard lock(mu_);
      std::string line;
      for (size_t i = 1; i < argv.size(); ++i) line += (i > 1 ? " " : "") + argv[i];
      calls_.push_back(line);
    }
    return real_.Run(argv, stdin_data, timeout);
  }
  std::vector<std::string> TakeCalls() {
    std::lock_guard lock(mu_);
    return std::exchange(calls_, {});
  }

 private:
  host::SubprocessRunner real_;
  std::mutex mu_;
  std::vector<std::string> calls_;
};

class SmiGpuProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "taolie-smi-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    tool_ = dir_ / "nvidia-smi";
    fs::create_symlink(FAKE_NVIDIA_SMI_PATH, tool_);
    runner_ = std::make_shared<RecordingRunner>();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void WriteScenario(const std::string& text) {
    fs::path tmp = dir_ / "next.ini";
    {
      std::ofstream out(tmp);
      out << text;
    }
    fs::rename(tmp, dir_ / "nvidia-smi.ini");
  }
  std::string TwoGpus() { return ReadFile(fs::path(SCENARIO_DIR) / "two_gpus.ini"); }
  std::unique_ptr<SmiGpuProbe> Make(milliseconds timeout = milliseconds(5000),
                                    std::vector<std::string> exclude = {}) {
    SmiGpuProbe::Options o;
    o.smi_path = tool_.string();
    o.call_timeout = timeout;
    o.exclude_uuids = std::move(exclude);
    auto probe = SmiGpuProbe::Create(o, runner_);
    runner_->TakeCalls();
    return probe;
  }

  fs::path dir_;
  fs::path tool_;
  std::shared_ptr<RecordingRunner> runner_;
};

TEST_F(SmiGpuProbeTest, MissingToolIsUnavailableNotFatal) {
  SmiGpuProbe::Options o;
  o.smi_path = (dir_ / "absent" / "nvidia-smi").string();
  auto probe = SmiGpuProbe::Create(o, runner_);
  EXPECT_FALSE(probe->Available());
  EXPECT_NE(probe->UnavailableReason(), "");
  EXPECT_EQ(probe->Sample().error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(probe->ListGpus().error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(SmiGpuProbeTest, DriverNotRespondingIsUnavailableWithItsMessage) {
  WriteScenario("smi_fail=9\n");
  auto probe = Make();
  EXPECT_FALSE(probe->Available());
  EXPECT_NE(probe->UnavailableReason().find("couldn't communicate with the NVIDIA driver"),
            std::string::npos)
      << probe->UnavailableReason();
  EXPECT_NE(probe->UnavailableReason().find("exited 9"), std::string::npos);
}

TEST_F(SmiGpuProbeTest, DriverAndInventory) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  ASSERT_TRUE(probe->Available()) << probe->UnavailableReason();
  auto drv = probe->Driver();
  ASSERT_TRUE(drv.ok()) << drv.error().ToString();
  EXPECT_EQ(drv->driver_version, "550.54.15");
  EXPECT_EQ(drv->cuda_version, "12.4");
  auto list = probe->ListGpus();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].uuid, kUuid0);
  EXPECT_EQ((*list)[0].name, "NVIDIA GeForce RTX 4090");
  EXPECT_EQ((*list)[0].pci_bus_id, "00000000:01:00.0");
  EXPECT_EQ((*list)[0].memory_total_mb, 24564u);
  EXPECT_EQ((*list)[0].compute_capability, "8.9");
  EXPECT_EQ((*list)[0].mig_mode, "unsupported");
  EXPECT_EQ((*list)[0].serial, "");  // [N/A]
  EXPECT_EQ((*list)[1].mig_mode, "disabled");
  EXPECT_EQ((*list)[1].power_limit_watts, 400.0);
  EXPECT_EQ(runner_->TakeCalls().size(), 3u);  // driver, banner, scan
}

TEST_F(SmiGpuProbeTest, SampleReadsEveryGpuWithOneQuery) {
  WriteScenario(TwoGpus() +
                "pcie_width=8\nretired_sbe=2\nretired_pending=1\nremapped_uncorrectable=1\n"
                "remapped_pending=1\nthrottle_reasons=0x8\nreset_required=1\n");
  auto probe = Make();
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_EQ(s->size(), 2u);
  const GpuSample& a = (*s)[0];
  EXPECT_EQ(a.uuid, kUuid0);
  EXPECT_EQ(a.utilization_percent, 37.0);
  EXPECT_EQ(a.memory_utilization_percent, 12.0);
  EXPECT_EQ(a.memory_used_mb, 1024u);
  EXPECT_EQ(a.memory_free_mb, 24564u - 1024u);
  EXPECT_EQ(a.temperature_c, 54.0);
  EXPECT_DOUBLE_EQ(a.power_draw_watts.value_or(0), 120.5);
  EXPECT_EQ(a.power_limit_watts, 450.0);
  EXPECT_EQ(a.fan_speed_percent, 41.0);
  EXPECT_EQ(a.sm_clock_mhz, 2520u);
  EXPECT_EQ(a.mem_clock_mhz, 10501u);
  EXPECT_FALSE(a.ecc_enabled.has_value());  // ecc=none: [N/A]
  EXPECT_FALSE(a.ecc_volatile_uncorrected.has_value());
  EXPECT_EQ(a.process_pids, std::vector<uint32_t>{4242});  // compute apps only
  const GpuSample& b = (*s)[1];
  EXPECT_EQ(b.uuid, kUuid1);
  EXPECT_FALSE(b.fan_speed_percent.has_value());  // fanless
  EXPECT_EQ(b.ecc_enabled, true);
  EXPECT_EQ(b.ecc_volatile_corrected, 3u);
  EXPECT_EQ(b.ecc_volatile_uncorrected, 0u);
  EXPECT_EQ(b.pcie_width, 8u);
  EXPECT_EQ(b.pcie_max_width, 16u);
  EXPECT_EQ(b.retired_pages_sbe, 2u);
  EXPECT_EQ(b.retired_pages_pending, true);
  EXPECT_EQ(b.remapped_rows_uncorrectable, 1u);
  EXPECT_EQ(b.remapped_rows_pending, true);
  EXPECT_EQ(b.remapped_rows_failure, false);
  EXPECT_EQ(b.throttle_reasons, 8u);
  EXPECT_EQ(b.recovery_action, 1u);
  EXPECT_TRUE(b.process_pids.empty());
  auto calls = runner_->TakeCalls();
  ASSERT_EQ(calls.size(), 3u);  // every GPU in one --query-gpu, then processes and rows
  EXPECT_EQ(calls[0].rfind("--query-gpu=index,uuid,", 0), 0u) << calls[0];
  EXPECT_EQ(calls[1], "--query-compute-apps=gpu_uuid,pid --format=csv,noheader,nounits");
  EXPECT_EQ(calls[2].rfind("--query-remapped-rows=gpu_uuid,", 0), 0u) << calls[2];
  EXPECT_TRUE(probe->DrainXids()->empty());
}

TEST_F(SmiGpuProbeTest, UnsupportedValuesAreAbsent) {
  WriteScenario(TwoGpus() + "smi_not_supported=power.draw,temperature.gpu,clocks.sm\n");
  auto probe = Make();
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  const GpuSample& b = (*s)[1];
  EXPECT_FALSE(b.power_draw_watts.has_value());
  EXPECT_FALSE(b.temperature_c.has_value());
  EXPECT_FALSE(b.sm_clock_mhz.has_value());
  EXPECT_FALSE(b.lost);
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.mem_clock_mhz, 1593u);  // the rest is read
  EXPECT_EQ((*s)[0].temperature_c, 54.0);
}

TEST_F(SmiGpuProbeTest, OlderToolFieldsAreReplacedOrDroppedOnce) {
  std::string text = TwoGpus();
  text.insert(text.find("[gpu0]"),
              "smi_unknown_fields=clocks_event_reasons.active,pcie.link.gen.gpucurrent,"
              "reset_status.reset_required,reset_status.drain_and_reset_recommended,"
              "compute_cap\n");
  text += "throttle_reasons=0x4\npcie_gen=3\n";
  WriteScenario(text);
  auto probe = Make();
  ASSERT_TRUE(probe->Available());
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ((*s)[1].throttle_reasons, 4u);  // read as clocks_throttle_reasons.active
  EXPECT_EQ((*s)[1].pcie_gen, 3u);          // read as pcie.link.gen.current
  EXPECT_FALSE((*s)[1].recovery_action.has_value());
  auto fields = probe->SampleFields();
  EXPECT_NE(std::find(fields.begin(), fields.end(), "clocks_throttle_reasons.active"),
            fields.end());
  EXPECT_EQ(std::find(fields.begin(), fields.end(), "reset_status.reset_required"), fields.end());
  // 4 refused queries, the accepted one, processes, remapped rows.
  EXPECT_EQ(runner_->TakeCalls().size(), 7u);
  ASSERT_TRUE(probe->Sample().ok());
  EXPECT_EQ(runner_->TakeCalls().size(), 3u);  // negotiated once
  auto list = probe->ListGpus();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  EXPECT_EQ((*list)[0].compute_capability, "");
  EXPECT_EQ((*list)[0].name, "NVIDIA GeForce RTX 4090");
}

TEST_F(SmiGpuProbeTest, RemappedRowsRefusedAreNotAskedAgain) {
  std::string text = TwoGpus();
  text.insert(text.find("[gpu0]"), "smi_remapped_rows=unsupported\n");
  WriteScenario(text);
  auto probe = Make();
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_FALSE((*s)[1].remapped_rows_pending.has_value());
  EXPECT_EQ((*s)[1].error, "");  // not an error of the GPU
  EXPECT_EQ(runner_->TakeCalls().size(), 3u);
  ASSERT_TRUE(probe->Sample().ok());
  EXPECT_EQ(runner_->TakeCalls().size(), 2u);
}

TEST_F(SmiGpuProbeTest, LostGpuIsReturnedLostAndTheOthersRead) {
  WriteScenario(TwoGpus());
  auto probe = Make();
  ASSERT_TRUE(probe->ListGpus().ok());
  WriteScenario(TwoGpus() + "lost=1\n");  // gpu1 falls off the bus
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].uuid, kUuid0);
  EXPECT_FALSE((*s)[0].lost);
  EXPECT_EQ((*s)[0].temperature_c, 54.0);
  EXPECT_EQ((*s)[1].uuid, kUuid1);
  EXPECT_TRUE((*s)[1].lost);
  EXPECT_NE((*s)[1].error.find("0000:41:00.0"), std::string::npos) << (*s)[1].error;
  // The next scan keeps the GPU the tool names as unreadable, so it stays reported lost.
  auto list = probe->ListGpus();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].uuid, kUuid1);
  s = probe->Sample();
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_TRUE((*s)[1].lost);
  // A GPU that is simply gone (not named by the tool) leaves the inventory.
  WriteScenario(TwoGpus().replace(TwoGpus().find("gpu_count=2"), 11, "gpu_count=1"));
  list = probe->ListGpus();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(SmiGpuProbeTest, ExcludedGpusAreHidden) {
  WriteScenario(TwoGpus());
  auto probe = Make(milliseconds(5000), {kUuid0});
  auto list = probe->ListGpus();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].uuid, kUuid1);
  auto s = probe->Sample();
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ((*s)[0].uuid, kUuid1);
}

TEST_F(SmiGpuProbeTest, HangingToolIsKilledAtItsDeadline) {
  WriteScenario(TwoGpus());
  auto probe = Make(milliseconds(300));
  ASSERT_TRUE(probe->Available());
  WriteScenario(TwoGpus() + "hang_ms=20000\n");  // gpu1's query hangs
  const auto t0 = steady_clock::now();
  auto s = probe->Sample();
  const auto took = steady_clock::now() - t0;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDeadlineExceeded) << s.error().ToString();
  EXPECT_LT(took, milliseconds(3000));
  EXPECT_EQ(runner_->TakeCalls().size(), 1u);  // nothing more is asked of a hung driver
  WriteScenario(TwoGpus());
  EXPECT_TRUE(probe->Sample().ok());  // the next round reads again
}

}  // namespace
}  // namespace taolie::gpu
