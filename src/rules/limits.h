#pragma once
// Container resource limits for a rental: the renter's request checked against the host's
// caps, or defaults sized by the rental's share of the host's GPUs.
#include <cstdint>

#include "common/result.h"
#include "config/config.h"
#include "rules/deploy_spec.h"

namespace taolie::rules {

struct HostCapacity {
  uint64_t ram_bytes = 0;  // 0 = unknown
  int logical_cpus = 0;    // 0 = unknown
  int total_gpus = 0;
};

struct ResourceLimits {  // Docker HostConfig values; 0 = no limit
  int64_t memory_bytes = 0;
  int64_t nano_cpus = 0;
  int64_t shm_bytes = 0;
  int64_t pids_limit = 0;
};

inline constexpr int64_t kMinMemoryBytes = int64_t{256} << 20;

// share = min(1, max(gpus_claimed, 1) / max(total_gpus, 1)).
// Memory: request (memory_limit_mb) or default (default_memory_mb, else floor(ram*0.85*share));
//   cap = max_memory_mb if set, else floor(ram*0.9). A request above the cap, or below the
//   256 MiB floor, is InvalidArgument; a default is cut to the cap and raised to the floor.
// CPUs: request (cpu_limit) or default (default_cpus, else logical*share, at least 1 core);
//   cap = max_cpus if set, else logical CPUs. Request above the cap or below 0.01 is rejected.
// Shm: request (shm_size_mb) or default_shm_mb; cap = max_shm_mb if set, else the memory limit
//   (shm is charged to the container's memory). A request above the cap is rejected.
// Pids: pids_limit (<= 0 = no limit).
// Unknown host RAM / CPU count with no configured cap: no cap, and no limit by default.
Result<ResourceLimits> ComputeLimits(const DeploySpec& spec, const config::DeploymentConfig& cfg,
                                     const HostCapacity& host, int gpus_claimed);

}  // namespace taolie::rules
