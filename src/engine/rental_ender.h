#pragma once
// Ends a rental: records the intent, stops the container (SIGTERM, grace, kill), removes it,
// checks that no process of it is left on its GPUs, releases GPUs and ports, computes usage
// and refund, and queues `terminated` (or `failed` when it never became ready) in the same
// transaction. Idempotent: an ended deployment is left alone; a half-ended one is finished.
#include <optional>
#include <stop_token>
#include <string>

#include "engine/rental_context.h"

namespace taolie::engine {

class RentalEnder {
 public:
  explicit RentalEnder(const RentalContext& ctx) : ctx_(ctx) {}

  // Unavailable while a deploy of it is still in flight (the deploy is cancelled and ends it).
  // `stopped_at`: when the container was already stopped (at expiry, while the database was
  // down): the rental is billed to then, not to now.
  Status End(const std::string& deployment_id, const std::string& end_status,
             const std::string& reason, std::stop_token stop,
             const std::optional<rules::ClockReading>& stopped_at = std::nullopt);

 private:
  void CheckGpuLeftovers(const domain::Deployment& d, std::stop_token stop);
  const RentalContext& ctx_;
};

}  // namespace taolie::engine
