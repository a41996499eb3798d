#pragma once
// Where the agent reads its GPUs from: NVML first; when NVML cannot be used and nvidia-smi can,
// the nvidia-smi fallback (gpu.nvidia_smi_path); else none. Shown on /status as `gpu_source`
// with `gpu_source_detail` (why).
#include <memory>
#include <string>

#include "config/config.h"
#include "gpu/gpu_probe.h"

namespace taolie::health {

struct GpuSource {
  std::unique_ptr<gpu::GpuProbe> probe;  // never null
  std::string name;                      // "nvml" | "nvidia-smi" | "none"
  std::string detail;                    // why this source, in words
};

// Creates the probe of the source to use (runs nvidia-smi once when NVML is unavailable).
GpuSource SelectGpuSource(const config::GpuConfig& cfg);

// `name` as the shell would find it on `path_env` (a colon-separated PATH), or "" when no
// executable file of that name is there; a name holding a '/' is itself checked.
std::string FindOnPath(const std::string& name, const std::string& path_env);

}  // namespace taolie::health
