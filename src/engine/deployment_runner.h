#pragma once
// Drives one deployment from its persisted state to running (or failed): pull, create, start,
// readiness, success. Every step records its intent before the side effect and its outcome
// after, so a crash at any point resumes from the row. A terminate cancels it (the runner then
// ends the rental); agent shutdown only pauses it (resumed at the next start).
#include <stop_token>
#include <string>
#include <string_view>

#include "engine/rental_context.h"
#include "engine/rental_ender.h"

namespace taolie::engine {

// The error of a deploy whose registry credentials were lost in a restart before its pull
// (they are held in memory only; the platform's next delivery of the command brings them again,
// but a deploy already resumed without them fails with this).
inline constexpr std::string_view kRegistryCredentialsLost =
    "registry credentials lost in a restart (they are never stored); deploy again";

class DeploymentRunner {
 public:
  explicit DeploymentRunner(const RentalContext& ctx) : ctx_(ctx), ender_(ctx) {}

  // Re-reads the deployment and drives it (queued work never acts on a stale copy).
  void RunById(const std::string& deployment_id, std::stop_token stop);
  // Drives `d`, which the caller has just read or written. `auth` (the payload's
  // registry_auth, never stored) is used for the pull only. Without it, a deployment whose
  // command came with credentials fails at the pull with kRegistryCredentialsLost.
  void Run(domain::Deployment d, std::stop_token stop, const docker::RegistryAuth& auth = {});
  // Records the failure (intent: stop), then ends the rental and fails its command.
  void Fail(domain::Deployment& d, const std::string& stage, const std::string& error);

 private:
  const RentalContext& ctx_;
  RentalEnder ender_;
};

}  // namespace taolie::engine
