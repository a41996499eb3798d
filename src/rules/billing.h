#pragma once
// Usage and refund of one rental (platform-api.md §7 "terminated").
#include <chrono>
#include <cstddef>
#include <optional>

#include "common/clock.h"
#include "domain/metrics.h"
#include "domain/usage.h"

namespace taolie::rules {

// reserved_minutes = duration_minutes (negative counts as 0).
// used_minutes = minutes from started_at (readiness) to ended_at, clamped to [0, reserved]
//   (0 when the deployment never became ready; a clock that went backwards gives 0), rounded
//   half-up to 2 decimals.
// unused_minutes = reserved - used (2 decimals).
// With a price (finite, >= 0; anything else counts as no price):
//   usage_amount = used * price / 60 and refund_amount = unused * price / 60, each rounded
//   half-up to cents; the refund is never negative. Without a price both are absent.
domain::Usage ComputeUsage(int duration_minutes, std::optional<SystemTime> started_at,
                           SystemTime ended_at, std::optional<double> price_per_hour);

// The same from the rental's used time (readiness to stop, measured on the monotonic clock);
// absent = never became ready.
domain::Usage ComputeUsageFromUsed(int duration_minutes,
                                   std::optional<std::chrono::milliseconds> used_time,
                                   std::optional<double> price_per_hour);

// Metering into `usage`: gpu_seconds = used_minutes × 60 × gpu_count (1 decimal); energy_wh (3
// decimals) and mean_gpu_utilization (1 decimal) from the rental's GPU samples, absent when no
// sample reported them (and always for a rental without GPUs).
void AddMetering(domain::Usage& usage, const domain::RentalMetering& metering, size_t gpu_count);

// Rounds half away from zero to `decimals` places, tolerant of binary representation error
// (1.005 -> 1.01).
double RoundHalfUp(double value, int decimals);

}  // namespace taolie::rules
