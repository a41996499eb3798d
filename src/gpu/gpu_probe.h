#pragma once
// GpuProbe seam: what the agent knows about the host's GPUs. NvmlGpuProbe implements it.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace taolie::gpu {

struct DriverInfo {
  std::string driver_version;  // e.g. "550.54.15"
  std::string cuda_version;    // e.g. "12.4" (from nvmlSystemGetCudaDriverVersion)
  std::string nvml_version;
};

struct GpuInfo {  // static facts, read once at start (and on re-scan)
  int index = 0;
  std::string uuid;  // hardware UUID, "GPU-..."
  std::string name;
  std::string pci_bus_id;
  uint64_t memory_total_mb = 0;
  std::string compute_capability;  // "8.0"; "" when unknown
  std::optional<double> power_limit_watts;
  std::string mig_mode;  // "enabled" | "disabled" | "unsupported"
};

struct GpuSample {  // one reading of one GPU; an absent optional = the GPU does not report it
  int index = 0;
  std::string uuid;
  bool lost = false;  // GPU fell off the bus / NVML_ERROR_GPU_IS_LOST
  std::string error;  // last error reading this GPU, "" if none
  std::optional<double> utilization_percent;
  std::optional<uint64_t> memory_used_mb;
  std::optional<uint64_t> memory_total_mb;
  std::optional<double> temperature_c;
  std::optional<double> power_draw_watts;
  std::optional<double> power_limit_watts;
  std::optional<double> fan_speed_percent;  // absent on fanless cards
  std::optional<uint32_t> sm_clock_mhz;
  std::optional<uint32_t> mem_clock_mhz;
  std::optional<uint64_t> ecc_volatile_uncorrected;
  std::optional<uint64_t> ecc_volatile_corrected;
  std::optional<uint32_t> throttle_reasons;  // bitmask as NVML reports it
  std::vector<uint32_t> process_pids;        // compute + graphics processes on this GPU
};

struct XidEvent {
  std::string uuid;
  uint64_t xid = 0;
  std::chrono::system_clock::time_point at;
};

class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  // False when NVML could not be loaded/initialised (GPU-less host): a clear state, not an error.
  virtual bool Available() const = 0;
  // Why it is unavailable ("libnvidia-ml.so.1 not found", ...), "" when available.
  virtual std::string UnavailableReason() const = 0;
  virtual Result<DriverInfo> Driver() = 0;
  virtual Result<std::vector<GpuInfo>> ListGpus() = 0;
  // One sample of every GPU. A GPU that fails to read is returned with lost/error set.
  virtual Result<std::vector<GpuSample>> Sample() = 0;
  // XID events seen since the last call (non-blocking).
  virtual Result<std::vector<XidEvent>> DrainXids() = 0;
};

}  // namespace taolie::gpu
