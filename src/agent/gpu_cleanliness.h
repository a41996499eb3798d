#pragma once
// After a rental ends its GPUs are dirty: never claimed until NVML shows none of the rental's
// processes and its memory freed. Pure rules here (table-tested); the GPU metrics loop applies
// them to every sample and the store keeps the dirty mark (gpu_status.dirty_since).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gpu/gpu_probe.h"

namespace taolie::agent {

// A GPU as the agent found it at start: its first successful sample. Processes running then
// (the owner's display server, a monitoring tool) belong to the baseline, not to a rental.
struct GpuBaseline {
  uint64_t memory_used_mb = 0;
  std::vector<uint32_t> pids;
};

// The baseline from a sample; none when the sample has no memory reading (lost, error).
std::optional<GpuBaseline> BaselineFrom(const gpu::GpuSample& s);

enum class GpuCleanliness { kClean, kDirty, kHeldBack };

struct DirtyVerdict {
  GpuCleanliness state = GpuCleanliness::kDirty;
  std::string reason;  // why it is not clean, "" when clean
};

struct DirtyCheck {
  const gpu::GpuSample* sample = nullptr;
  const GpuBaseline* baseline = nullptr;  // null: none taken yet (never clean then)
  int64_t margin_mb = 256;                // gpu.idle_memory_margin_mb
  std::chrono::seconds dirty_for{0};      // how long it has been dirty
  std::chrono::seconds timeout{300};      // gpu.dirty_timeout_seconds
  std::string ended_deployment;           // the rental whose end made it dirty ("" unknown)
};

// Clean when the sample shows no process that was not there at the baseline and used memory
// at most baseline + margin. Otherwise dirty, held back once dirty_for reaches the timeout;
// the reason names what is left ("2 process(es) still on the GPU; memory 3000 MiB used,
// baseline 0 MiB + margin 256; 300 s after deployment d-1 ended").
DirtyVerdict JudgeDirtyGpu(const DirtyCheck& c);

}  // namespace taolie::agent
