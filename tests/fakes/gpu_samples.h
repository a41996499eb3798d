#pragma once
// A GPU sample that every health rule passes: the starting point of the health and alert tests,
// which change one value at a time.
#include <string>

#include "gpu/gpu_probe.h"

namespace taolie::testing {

inline gpu::GpuSample HealthySample(std::string uuid = "GPU-1") {
  gpu::GpuSample s;
  s.index = 0;
  s.uuid = std::move(uuid);
  s.temperature_c = 50;
  s.power_draw_watts = 100;
  s.power_limit_watts = 300;
  s.memory_used_mb = 100;
  s.memory_total_mb = 1000;
  s.fan_speed_percent = 40;
  s.ecc_enabled = true;
  s.ecc_volatile_uncorrected = 0;
  s.ecc_volatile_corrected = 0;
  s.throttle_reasons = 0;
  return s;
}

}  // namespace taolie::testing
