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
  std::string serial;    // board serial; "" when not reported
  std::string vbios_version;
  std::string inforom_image_version;  // "" when not reported
  std::optional<int> fan_count;       // nvmlDeviceGetNumFans; 0 = a fanless card
};

struct GpuSample {  // one reading of one GPU; an absent optional = the GPU does not report it
  int index = 0;
  std::string uuid;
  bool lost = false;  // GPU fell off the bus / NVML_ERROR_GPU_IS_LOST
  // A call on this GPU missed its deadline (or one still hangs): no values this round.
  bool unresponsive = false;
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

  // Read since issue 8 (each absent when the driver or the card lacks it).
  std::optional<double> memory_utilization_percent;  // memory controller busy
  std::optional<uint64_t> memory_free_mb;
  std::optional<double> temperature_slowdown_c;  // the GPU's own slowdown threshold
  std::optional<double> temperature_shutdown_c;
  std::optional<double> energy_joules;  // total since the driver loaded (mJ counter / 1000)
  std::optional<uint32_t> pcie_gen;     // current link
  std::optional<uint32_t> pcie_width;
  std::optional<uint32_t> pcie_max_gen;
  std::optional<uint32_t> pcie_max_width;
  std::optional<uint64_t> pcie_replay_count;
  std::optional<bool> ecc_enabled;
  std::optional<uint64_t> ecc_aggregate_uncorrected;
  std::optional<uint64_t> ecc_aggregate_corrected;
  // Retired pages (pre-A100): pages retired for single/double-bit errors, and pending.
  std::optional<uint64_t> retired_pages_sbe;
  std::optional<uint64_t> retired_pages_dbe;
  std::optional<bool> retired_pages_pending;
  // Row remapping (A100 and later).
  std::optional<uint64_t> remapped_rows_correctable;
  std::optional<uint64_t> remapped_rows_uncorrectable;
  std::optional<bool> remapped_rows_pending;
  std::optional<bool> remapped_rows_failure;
  // Field values: time (ns, cumulative) the GPU was held back by power / thermal violation,
  // and the driver's recovery action (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: 0 none, 1 reset,
  // 2 reboot, 3 drain P2P, 4 drain and reset).
  std::optional<uint64_t> power_violation_ns;
  std::optional<uint64_t> thermal_violation_ns;
  std::optional<uint32_t> recovery_action;
  std::optional<bool> persistence_mode;
  std::optional<bool> inforom_valid;
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
