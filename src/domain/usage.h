#pragma once
// Usage and refund of one rental (rules/billing computes it; platform/messages reports it).
#include <optional>

namespace taolie::domain {

struct Usage {
  double reserved_minutes = 0;
  double used_minutes = 0;  // from readiness to stop
  double unused_minutes = 0;
  std::optional<double> price_per_hour;
  std::optional<double> usage_amount;   // cents-rounded
  std::optional<double> refund_amount;  // cents-rounded, never negative

  // Metering (issue 8): GPUs held × used time; energy and mean utilization from the GPU samples
  // taken while the rental held its GPUs (absent when the GPUs do not report them).
  double gpu_seconds = 0;
  std::optional<double> energy_wh;
  std::optional<double> mean_gpu_utilization;
};

}  // namespace taolie::domain
