#pragma once
// One health round: the host's verdict (pushed) and each GPU's checks (kept as history).
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "domain/enums.h"

namespace taolie::domain {

struct HealthReport {  // one health round (the health loop writes it, health push sends it)
  int64_t id = 0;
  SystemTime checked_at{};
  bool is_healthy = true;
  std::string status;  // available | busy | unhealthy | draining
  bool temperature_ok = true, power_ok = true, network_ok = true, storage_ok = true;
  double gpu_performance_score = 100;
  double system_stability_score = 100;
  std::string details_json;  // per-GPU checks (ext "gpus" list), JSON text
};

struct GpuHealthRow {  // gpu_health_history
  std::string gpu_uuid;
  GpuHealthState health = GpuHealthState::kHealthy;
  std::string checks_json;
};

}  // namespace taolie::domain
