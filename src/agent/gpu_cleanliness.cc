#include "agent/gpu_cleanliness.h"

#include <algorithm>

namespace taolie::agent {

std::optional<GpuBaseline> BaselineFrom(const gpu::GpuSample& s) {
  if (s.lost || !s.memory_used_mb) return std::nullopt;
  return GpuBaseline{*s.memory_used_mb, s.process_pids};
}

DirtyVerdict JudgeDirtyGpu(const DirtyCheck& c) {
  std::vector<std::string> left;
  const gpu::GpuSample& s = *c.sample;
  if (c.baseline == nullptr) {
    left.emplace_back("no baseline of its idle memory yet");
  } else if (s.lost) {
    left.emplace_back("the GPU is lost");
  } else if (!s.memory_used_mb) {
    left.emplace_back("its memory use cannot be read" + (s.error.empty() ? "" : ": " + s.error));
  } else {
    size_t foreign = std::count_if(s.process_pids.begin(), s.process_pids.end(), [&](uint32_t p) {
      return std::find(c.baseline->pids.begin(), c.baseline->pids.end(), p) ==
             c.baseline->pids.end();
    });
    if (foreign > 0) left.push_back(std::to_string(foreign) + " process(es) still on the GPU");
    int64_t limit = static_cast<int64_t>(c.baseline->memory_used_mb) + c.margin_mb;
    if (static_cast<int64_t>(*s.memory_used_mb) > limit) {
      left.push_back("memory " + std::to_string(*s.memory_used_mb) + " MiB used, baseline " +
                     std::to_string(c.baseline->memory_used_mb) + " MiB + margin " +
                     std::to_string(c.margin_mb));
    }
  }
  if (left.empty()) return {GpuCleanliness::kClean, ""};
  std::string reason;
  for (const auto& l : left) reason += (reason.empty() ? "" : "; ") + l;
  reason += "; " + std::to_string(c.dirty_for.count()) + " s after " +
            (c.ended_deployment.empty() ? std::string("its last rental")
                                        : "deployment " + c.ended_deployment) +
            " ended";
  bool held = c.dirty_for >= c.timeout;
  return {held ? GpuCleanliness::kHeldBack : GpuCleanliness::kDirty, reason};
}

}  // namespace taolie::agent
