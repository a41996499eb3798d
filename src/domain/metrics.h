#pragma once
// One metrics round: the host and every GPU, as stored and pushed.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace taolie::domain {

struct GpuMetricRow {  // one GPU in one sample round
  std::string gpu_uuid;
  int gpu_index = 0;
  std::optional<double> utilization;
  std::optional<int64_t> memory_used_mb;
  std::optional<int64_t> memory_total_mb;
  std::optional<double> temperature_c;
  std::optional<double> power_draw_watts;
  std::optional<double> power_limit_watts;
  std::optional<double> fan_speed_percent;
  std::optional<int64_t> sm_clock_mhz;
  std::optional<int64_t> mem_clock_mhz;
  std::string deployment_id;

  // Since issue 8 (absent = the GPU or driver does not report it).
  std::optional<double> memory_utilization;  // memory controller busy, %
  std::optional<int64_t> memory_free_mb;
  std::optional<double> energy_joules;  // counter since the driver loaded
  std::optional<int64_t> pcie_gen;
  std::optional<int64_t> pcie_width;
  std::optional<int64_t> pcie_replay_count;
  std::optional<int64_t> throttle_reasons;  // NVML clock-event bitmask
  std::optional<int64_t> ecc_volatile_corrected;
  std::optional<int64_t> ecc_volatile_uncorrected;
  std::optional<int64_t> ecc_aggregate_corrected;
  std::optional<int64_t> ecc_aggregate_uncorrected;
  std::optional<int64_t> retired_pages_sbe;
  std::optional<int64_t> retired_pages_dbe;
  std::optional<bool> retired_pages_pending;
  std::optional<int64_t> remapped_rows_correctable;
  std::optional<int64_t> remapped_rows_uncorrectable;
  std::optional<bool> remapped_rows_pending;
  std::optional<bool> remapped_rows_failure;
  std::optional<int64_t> power_violation_ns;
  std::optional<int64_t> thermal_violation_ns;
  int process_count = 0;  // compute + graphics processes seen on the GPU
};

// What one rental used, from the GPU samples taken while its GPUs were claimed (kept as
// running totals per GPU, so retention pruning old samples loses nothing).
struct RentalMetering {
  int samples = 0;                         // GPU samples counted, all GPUs
  std::optional<double> energy_wh;         // energy-counter deltas; absent: not reported
  std::optional<double> mean_utilization;  // over the samples that reported utilization
};

struct HostMetricRow {
  double cpu_utilization = 0;
  double ram_used_gb = 0;
  double storage_used_gb = 0;
  double network_utilization = 0;
  double upload_mbps = 0;
  double download_mbps = 0;
  int64_t uptime_hours = 0;
};

struct MetricSample {  // one sample round, pushed as one metrics request
  int64_t id = 0;      // assigned by the store
  SystemTime taken_at{};
  HostMetricRow host;
  std::vector<GpuMetricRow> gpus;
};

}  // namespace taolie::domain
