#pragma once
// Pure: from one health round's facts to the alerts it raises (docs/alerts.md). No I/O, no
// clock; what it needs from earlier rounds is in AlertMemory, which the health loop keeps.
//
// Alerts are raised on transitions only:
// - gpu_verdict: a GPU's verdict changed (healthy / warning / unhealthy); a GPU first seen
//   with a verdict other than healthy counts as a change.
// - gpu_threshold: a threshold check changed state: temperature (temperature_max, or the GPU's
//   own slowdown threshold when lower) and power (power_max or the enforced limit, sustained),
//   both as health_rules judged them, with its hysteresis and sustain; utilization under
//   utilization_min while the GPU is rented, back when it is kUtilizationHysteresis points
//   above it (or the rental ends, silently). When a threshold change moves the verdict in the
//   same round, one gpu_threshold alert says both (no separate gpu_verdict alert).
// - gpu_quarantined / gpu_released: the GPU entered or left quarantine.
// - platform_unreachable / platform_reachable: no platform answer for
//   platform_unreachable_seconds (counted from the first round when it never answered), and
//   the first answer after that.
// A value hovering at a threshold thus raises one alert: health_rules keeps the check raised
// until the value is back under by its margin.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "health/health_rules.h"
#include "store/records.h"
#include "telemetry/alert.h"

namespace taolie::health {

inline constexpr double kUtilizationHysteresis = 5.0;  // percentage points

struct GpuAlertInput {
  const GpuHealth* health = nullptr;  // this round's verdict and checks
  std::optional<double> utilization_percent;
  bool quarantined = false;  // after this round's quarantine decisions
  std::string quarantine_reason;
  std::string deployment_id;  // the rental holding the GPU, "" = free
};

struct AlertRulesInput {
  std::vector<GpuAlertInput> gpus;
  double utilization_min = 0;  // monitoring.gpu_thresholds.utilization_min; 0 = off
  SystemTime now{};
  std::optional<SystemTime> last_platform_ok;  // nullopt: no answer yet in this run
  int platform_unreachable_seconds = 600;
};

struct GpuAlertMemory {
  std::string verdict;                            // "" = not seen yet
  std::map<std::string, std::string> thresholds;  // check -> its severity last round
  bool quarantined = false;
  bool idle = false;  // rented and under utilization_min
};

struct AlertMemory {
  std::map<std::string, GpuAlertMemory> gpus;  // by uuid
  bool platform_down = false;
  std::optional<SystemTime> first_round;
};

std::vector<telemetry::Alert> DeriveAlerts(const AlertRulesInput& in, AlertMemory& mem);

// The health loop's facts as DeriveAlerts wants them: each verdict with its sample's
// utilization and its store record (quarantine, rental). `verdicts` must outlive the result.
AlertRulesInput AlertInputFrom(const std::vector<GpuHealth>& verdicts,
                               const std::vector<gpu::GpuSample>& samples,
                               const std::vector<store::GpuRecord>& records,
                               const config::MonitoringConfig& cfg, SystemTime now,
                               SystemTime last_platform_ok);

}  // namespace taolie::health
