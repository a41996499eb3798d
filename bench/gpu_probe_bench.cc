// One GPU metrics cycle (Sample of 8 GPUs) through NVML against the nvidia-smi fallback, in the
// same run: the fake libnvidia-ml.so.1 and the fake nvidia-smi both serve
// tests/fake_nvml/scenarios/eight_gpus.ini. The fakes answer at once, so the figures are the
// agent's own cost of each path (NVML calls on the watchdog thread vs. three nvidia-smi runs,
// spawned, read and parsed); a real nvidia-smi adds its own start-up (NVML init) per run.
//
// Environment: TAOLIE_BENCH_CYCLES (default 200), TAOLIE_BENCH_REPORT (figures appended).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "gpu/nvml_gpu_probe.h"
#include "gpu/smi_gpu_probe.h"

namespace taolie::gpu {
namespace {

namespace fs = std::filesystem;

void Report(const std::string& line) {
  std::cout << line << "\n" << std::flush;
  if (const char* path = std::getenv("TAOLIE_BENCH_REPORT"); path != nullptr && *path) {
    std::ofstream(path, std::ios::app) << line << "\n";
  }
}

struct Figures {
  double p50 = 0, mean = 0, p99 = 0, max = 0;
};

Figures Measure(int cycles, const std::function<size_t()>& cycle) {
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(cycles));
  for (int i = 0; i < cycles; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    size_t gpus = cycle();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(gpus, 8u) << "cycle " << i;
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
  };
  Figures f;
  f.p50 = at(0.5);
  f.p99 = at(0.99);
  f.max = ms.back();
  f.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  return f;
}

std::string Line(const char* label, const Figures& f) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "  %-22s p50 %7.3f ms  mean %7.3f ms  p99 %7.3f ms  max %7.3f ms",
                label, f.p50, f.mean, f.p99, f.max);
  return buf;
}

TEST(GpuProbeBench, MetricsCycleNvmlVsNvidiaSmi) {
  const char* env_cycles = std::getenv("TAOLIE_BENCH_CYCLES");
  const int cycles = env_cycles != nullptr ? std::max(10, std::atoi(env_cycles)) : 200;
  const fs::path scenario = fs::path(SCENARIO_DIR) / "eight_gpus.ini";
  std::string tmpl = (fs::temp_directory_path() / "taolie-gpubench-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  fs::create_symlink(FAKE_NVIDIA_SMI_PATH, dir / "nvidia-smi");
  fs::copy_file(scenario, dir / "nvidia-smi.ini");
  setenv("TAOLIE_FAKE_NVML_SCENARIO", scenario.c_str(), 1);

  NvmlGpuProbe::Options no;
  no.library_path = FAKE_NVML_PATH;
  auto nvml = NvmlGpuProbe::Create(no);
  ASSERT_TRUE(nvml->Available()) << nvml->UnavailableReason();
  SmiGpuProbe::Options so;
  so.smi_path = (dir / "nvidia-smi").string();
  auto smi = SmiGpuProbe::Create(so);
  ASSERT_TRUE(smi->Available()) << smi->UnavailableReason();
  ASSERT_TRUE(nvml->ListGpus().ok());
  ASSERT_TRUE(smi->ListGpus().ok());

  auto nvml_cycle = [&]() -> size_t {
    auto s = nvml->Sample();
    return s.ok() ? s->size() : 0;
  };
  auto smi_cycle = [&]() -> size_t {
    auto s = smi->Sample();
    return s.ok() ? s->size() : 0;
  };
  Measure(5, nvml_cycle);  // warm-up: field negotiation, page cache
  Measure(5, smi_cycle);
  // Interleaved halves, so a slower stretch of the machine weighs on both paths alike.
  Figures n1 = Measure(cycles / 2, nvml_cycle);
  Figures s1 = Measure(cycles / 2, smi_cycle);
  Figures n2 = Measure(cycles / 2, nvml_cycle);
  Figures s2 = Measure(cycles / 2, smi_cycle);
  auto merge = [](const Figures& a, const Figures& b) {
    return Figures{(a.p50 + b.p50) / 2, (a.mean + b.mean) / 2, std::max(a.p99, b.p99),
                   std::max(a.max, b.max)};
  };
  Figures n = merge(n1, n2), s = merge(s1, s2);
  Report("== GPU metrics cycle: Sample() of 8 GPUs (" + std::to_string(cycles) +
         " cycles each) ==");
  Report(Line("NVML (fake library):", n));
  Report(Line("nvidia-smi (fake tool):", s));
  char buf[160];
  std::snprintf(buf, sizeof(buf), "  ratio nvidia-smi / NVML: p50 %.1f, mean %.1f", s.p50 / n.p50,
                s.mean / n.mean);
  Report(buf);
  unsetenv("TAOLIE_FAKE_NVML_SCENARIO");
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace taolie::gpu
