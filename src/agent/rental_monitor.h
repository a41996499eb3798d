#pragma once
// The duration monitor's round: expiry warnings, expiries, and containers that died or were
// removed behind the agent's back. Endings are queued on the stop lane, so they never wait
// behind deploys.
#include <stop_token>

#include "agent/rental_context.h"
#include "agent/rental_ender.h"

namespace taolie::agent {

class RentalMonitor {
 public:
  explicit RentalMonitor(const RentalContext& ctx) : ctx_(ctx), ender_(ctx) {}

  Status CheckOnce(std::stop_token stop);
  // Queues the end of a deployment on the stop lane (deduplicated; re-reads when it runs).
  void QueueEnd(const std::string& id, const std::string& end_status, const std::string& reason);

 private:
  Status WarnExpiry(domain::Deployment& d, std::chrono::milliseconds left);
  // Advances the rental's clock to now (adopting a row that has none from its wall times),
  // notes a wall-clock step, and persists the checkpoint. Returns the time left.
  std::chrono::milliseconds Tick(domain::Deployment& d, const ClockReading& now);
  const RentalContext& ctx_;
  RentalEnder ender_;
};

}  // namespace taolie::agent
