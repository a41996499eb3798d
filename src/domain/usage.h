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
};

}  // namespace taolie::domain
