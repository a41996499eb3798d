// The nvidia-smi fallback end to end (issue 8, item 4): the agent binary, given an NVML library
// it cannot load and the fake nvidia-smi, registers the GPUs the tool reports, says on /status
// that it reads them through nvidia-smi and why, and its health round judges them (a GPU lost
// while it runs is unhealthy).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SmiFallbackTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    std::string tmpl = (fs::temp_directory_path() / "taolie-smi-e2e-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_symlink(FAKE_NVIDIA_SMI_PATH, dir_ / "nvidia-smi");
    fs::copy_file(fs::path(SCENARIO_DIR) / "two_gpus.ini", dir_ / "nvidia-smi.ini");
  }
  void TearDown() override {
    AgentE2eTest::TearDown();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string ReadScenario() {
    std::ifstream in(fs::path(SCENARIO_DIR) / "two_gpus.ini");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

TEST_F(SmiFallbackTest, GpusAreReadThroughNvidiaSmiWhenNvmlCannotBeLoaded) {
  HarnessOptions o;
  o.nvml_library = "/nonexistent/libnvidia-ml.so.1";
  o.gpu_yaml = "  nvidia_smi_path: " + (dir_ / "nvidia-smi").string() + "\n";
  StartAgent(o);
  json reg = json::parse(*sim_->LatestRegistration());
  EXPECT_EQ(reg["gpu_count"], 2) << reg.dump();
  EXPECT_EQ(reg["gpu_name"], "NVIDIA GeForce RTX 4090");
  EXPECT_EQ(reg["driver_version"], "550.54.15");
  EXPECT_EQ(reg["cuda_version"], "12.4");
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["gpu_source"], "nvidia-smi");
  EXPECT_NE(st["gpu_source_detail"].get<std::string>().find("NVML unavailable"), std::string::npos)
      << st["gpu_source_detail"];
  EXPECT_EQ(st["gpu_probe"], "ok");
  EXPECT_NE(agent_->Log().find("GPU source: nvidia-smi fallback"), std::string::npos);
  // The health push judges both GPUs from the tool's values: healthy.
  auto health_push = [&](const std::string& gpu1_health) {
    return sim::Simulator::WaitFor(
        [&] {
          for (const auto& r : sim_->Requests("/api/host-agents/health")) {
            json h = json::parse(r.body, nullptr, false);
            if (h.is_object() && h.contains("gpus") && h["gpus"].size() == 2 &&
                h["gpus"][0]["health"] == "healthy" && h["gpus"][1]["health"] == gpu1_health &&
                h["is_healthy"] == true) {
              return true;
            }
          }
          return false;
        },
        30s);
  };
  ASSERT_TRUE(health_push("healthy"));
  // GPU 1 falls off the bus: nvidia-smi prints its error line instead of its row; the GPU is
  // judged unhealthy, GPU 0 keeps the host healthy.
  {
    std::ofstream out(dir_ / "next.ini");
    out << ReadScenario() << "lost=1\n";
  }
  fs::rename(dir_ / "next.ini", dir_ / "nvidia-smi.ini");
  EXPECT_TRUE(health_push("unhealthy"));
}

TEST_F(SmiFallbackTest, NeitherNvmlNorNvidiaSmiIsNone) {
  HarnessOptions o;
  o.nvml_library = "/nonexistent/libnvidia-ml.so.1";
  o.gpu_yaml = "  nvidia_smi_path: /nonexistent/nvidia-smi\n";
  StartAgent(o);
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["gpu_source"], "none");
  EXPECT_NE(st["gpu_source_detail"].get<std::string>().find("not found"), std::string::npos)
      << st["gpu_source_detail"];
  EXPECT_EQ(json::parse(*sim_->LatestRegistration())["gpu_count"], 0);
}

}  // namespace
}  // namespace taolie::testing
