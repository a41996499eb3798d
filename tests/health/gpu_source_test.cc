// Which GPU source the agent picks: NVML first, the nvidia-smi fallback when NVML cannot be
// loaded, none when neither works; with the fake libnvidia-ml.so.1 and the fake nvidia-smi.
#include "health/gpu_source.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace taolie::health {
namespace {

namespace fs = std::filesystem;

class GpuSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "taolie-gpusrc-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "bin");
    tool_ = dir_ / "bin" / "nvidia-smi";
    fs::create_symlink(FAKE_NVIDIA_SMI_PATH, tool_);
    fs::copy_file(fs::path(SCENARIO_DIR) / "two_gpus.ini", dir_ / "bin" / "nvidia-smi.ini");
    setenv("TAOLIE_FAKE_NVML_SCENARIO", (fs::path(SCENARIO_DIR) / "two_gpus.ini").c_str(), 1);
  }
  void TearDown() override {
    unsetenv("TAOLIE_FAKE_NVML_SCENARIO");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
  fs::path tool_;
};

TEST_F(GpuSourceTest, NvmlFirst) {
  config::GpuConfig c;
  c.nvml_library = FAKE_NVML_PATH;
  c.nvidia_smi_path = tool_.string();
  GpuSource s = SelectGpuSource(c);
  EXPECT_EQ(s.name, "nvml");
  ASSERT_NE(s.probe, nullptr);
  EXPECT_TRUE(s.probe->Available());
  EXPECT_NE(s.detail.find(FAKE_NVML_PATH), std::string::npos) << s.detail;
}

TEST_F(GpuSourceTest, NvidiaSmiWhenNvmlCannotBeLoaded) {
  config::GpuConfig c;
  c.nvml_library = (dir_ / "libnvidia-ml.so.1").string();  // absent
  c.nvidia_smi_path = tool_.string();
  GpuSource s = SelectGpuSource(c);
  EXPECT_EQ(s.name, "nvidia-smi");
  ASSERT_NE(s.probe, nullptr);
  ASSERT_TRUE(s.probe->Available());
  EXPECT_NE(s.detail.find("NVML unavailable"), std::string::npos) << s.detail;
  EXPECT_NE(s.detail.find(tool_.string()), std::string::npos) << s.detail;
  auto list = s.probe->ListGpus();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(GpuSourceTest, NoneWhenNeitherWorks) {
  config::GpuConfig c;
  c.nvml_library = (dir_ / "libnvidia-ml.so.1").string();
  c.nvidia_smi_path = (dir_ / "missing" / "nvidia-smi").string();
  GpuSource s = SelectGpuSource(c);
  EXPECT_EQ(s.name, "none");
  ASSERT_NE(s.probe, nullptr);
  EXPECT_FALSE(s.probe->Available());
  EXPECT_NE(s.detail.find("not found"), std::string::npos) << s.detail;

  // The tool is there but cannot reach the driver: still none, with its message.
  std::ofstream(dir_ / "bin" / "nvidia-smi.ini") << "smi_fail=9\n";
  c.nvidia_smi_path = tool_.string();
  s = SelectGpuSource(c);
  EXPECT_EQ(s.name, "none");
  EXPECT_NE(s.detail.find("couldn't communicate"), std::string::npos) << s.detail;
}

TEST_F(GpuSourceTest, FindOnPath) {
  const std::string bin = (dir_ / "bin").string();
  fs::create_directories(dir_ / "other");
  std::ofstream(dir_ / "other" / "not-exec") << "x";
  EXPECT_EQ(FindOnPath("nvidia-smi", "/nonexistent:" + bin), bin + "/nvidia-smi");
  EXPECT_EQ(FindOnPath("nvidia-smi", "relative/dir:" + (dir_ / "other").string()), "");
  EXPECT_EQ(FindOnPath("not-exec", (dir_ / "other").string()), "");  // not executable
  EXPECT_EQ(FindOnPath("other", dir_.string()), "");                 // a directory
  EXPECT_EQ(FindOnPath(tool_.string(), ""), tool_.string());         // a path is checked itself
  EXPECT_EQ(FindOnPath((dir_ / "none").string(), bin), "");
  EXPECT_EQ(FindOnPath("", bin), "");
  EXPECT_EQ(FindOnPath("nvidia-smi", ""), "");
}

}  // namespace
}  // namespace taolie::health
