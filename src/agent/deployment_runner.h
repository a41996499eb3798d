#pragma once
// Drives one deployment from its persisted state to running (or failed): pull, create, start,
// readiness, success. Every step records its intent before the side effect and its outcome
// after, so a crash at any point resumes from the row. A terminate cancels it (the runner then
// ends the rental); agent shutdown only pauses it (resumed at the next start).
#include <stop_token>
#include <string>

#include "agent/rental_context.h"
#include "agent/rental_ender.h"

namespace taolie::agent {

class DeploymentRunner {
 public:
  explicit DeploymentRunner(const RentalContext& ctx) : ctx_(ctx), ender_(ctx) {}

  // Re-reads the deployment and drives it (queued work never acts on a stale copy).
  void RunById(const std::string& deployment_id, std::stop_token stop);
  // Drives `d`, which the caller has just read or written. `auth` (the payload's
  // registry_auth) is used for the pull only; once the pull is over it is scrubbed from the
  // stored command.
  void Run(domain::Deployment d, std::stop_token stop, const docker::RegistryAuth& auth = {});
  // Records the failure (intent: stop), then ends the rental and fails its command.
  void Fail(domain::Deployment& d, const std::string& stage, const std::string& error);

 private:
  const RentalContext& ctx_;
  RentalEnder ender_;
};

}  // namespace taolie::agent
