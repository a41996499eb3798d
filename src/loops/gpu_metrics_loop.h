#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "health/gpu_cleanliness.h"
#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 1. GPU metrics (10 s): sample GPUs and host, store one metric sample.
class GpuMetricsLoop final : public Loop {
 public:
  // Each sample also verifies the dirty GPUs (`dirty_gpus`, shared with the rental engine).
  GpuMetricsLoop(runtime::Deps d, runtime::Runtime& rt, health::DirtyGpuVerifier& dirty_gpus)
      : d_(d), rt_(rt), dirty_gpus_(dirty_gpus) {}
  const char* Name() const override { return "gpu-metrics"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
  health::DirtyGpuVerifier& dirty_gpus_;
  // The store's GPU rows (claims, dirty marks), re-read only when claims change (or every few
  // minutes); GPU -> deployment from them.
  std::vector<store::GpuRecord> rows_;
  std::map<std::string, std::string> claims_;
  uint64_t claims_generation_ = ~0ull;
  std::chrono::steady_clock::time_point claims_read_{};
};

}  // namespace taolie::loops
