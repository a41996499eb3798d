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
