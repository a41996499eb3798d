#include "rules/billing.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace taolie::rules {

double RoundHalfUp(double value, int decimals) {
  if (!std::isfinite(value)) return value;
  double scale = std::pow(10.0, decimals);
  double scaled = std::fabs(value) * scale;
  // A few ulps of slack so that values like 1.005 (stored as 1.00499999...) round up.
  double nudge = scaled * 8 * std::numeric_limits<double>::epsilon();
  double rounded = std::floor(scaled + 0.5 + nudge) / scale;
  return std::copysign(rounded, value);
}

domain::Usage ComputeUsage(int duration_minutes, std::optional<SystemTime> started_at,
                           SystemTime ended_at, std::optional<double> price_per_hour) {
  std::optional<std::chrono::milliseconds> used;
  if (started_at) {
    used = std::chrono::duration_cast<std::chrono::milliseconds>(ended_at - *started_at);
  }
  return ComputeUsageFromUsed(duration_minutes, used, price_per_hour);
}

domain::Usage ComputeUsageFromUsed(int duration_minutes,
                                   std::optional<std::chrono::milliseconds> used_time,
                                   std::optional<double> price_per_hour) {
  domain::Usage u;
  u.reserved_minutes = std::max(duration_minutes, 0);
  double used = 0;
  if (used_time) {
    std::chrono::duration<double, std::ratio<60>> elapsed = *used_time;
    used = std::clamp(elapsed.count(), 0.0, u.reserved_minutes);
  }
  u.used_minutes = RoundHalfUp(used, 2);
  u.unused_minutes = RoundHalfUp(u.reserved_minutes - u.used_minutes, 2);
  if (price_per_hour && std::isfinite(*price_per_hour) && *price_per_hour >= 0) {
    double price = *price_per_hour;
    u.price_per_hour = price;
    u.usage_amount = RoundHalfUp(u.used_minutes * price / 60.0, 2);
    u.refund_amount = std::max(0.0, RoundHalfUp(u.unused_minutes * price / 60.0, 2));
  }
  return u;
}

void AddMetering(domain::Usage& usage, const domain::RentalMetering& metering, size_t gpu_count) {
  usage.gpu_seconds = RoundHalfUp(usage.used_minutes * 60.0 * static_cast<double>(gpu_count), 1);
  if (gpu_count == 0) return;
  if (metering.energy_wh) usage.energy_wh = RoundHalfUp(*metering.energy_wh, 3);
  if (metering.mean_utilization) {
    usage.mean_gpu_utilization = RoundHalfUp(*metering.mean_utilization, 1);
  }
}

}  // namespace taolie::rules
