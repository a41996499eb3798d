#pragma once
// Pure GPU/host health rules: from samples and thresholds to verdicts (table-tested).
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "gpu/gpu_probe.h"
#include "domain/health_report.h"

namespace taolie::agent {

struct HealthCheck {
  std::string name;  // driver, temperature, power, ecc, fan, throttle, xid, memory
  bool ok = true;
  std::optional<double> value;
  std::optional<double> threshold;
  std::string message;
  std::string severity = "ok";  // ok | warning | unhealthy
};

struct GpuHealth {
  int index = 0;
  std::string uuid;
  std::string health = "healthy";  // healthy | warning | unhealthy
  std::vector<HealthCheck> checks;
  std::vector<gpu::XidEvent> recent_xids;
};

GpuHealth EvaluateGpu(const gpu::GpuSample& sample, const config::GpuThresholds& t,
                      const std::vector<gpu::XidEvent>& recent_xids);

struct HostHealthInput {
  std::vector<GpuHealth> gpus;
  std::vector<gpu::GpuSample> samples;
  bool gpu_probe_available = true;
  uint64_t storage_total_bytes = 0;
  uint64_t storage_available_bytes = 0;
  bool platform_reachable = true;  // a platform call succeeded recently
  bool draining = false;
  int free_healthy_gpus = 0;
  int active_deployments = 0;
  int loop_failures_recent = 0;
};

// Builds the health report (scores, flags, status); details_json holds the ext per-GPU list.
domain::HealthReport BuildHealthReport(const HostHealthInput& in, SystemTime now);

std::string GpuHealthToJson(const GpuHealth& g);  // one ext "gpus" element

}  // namespace taolie::agent
