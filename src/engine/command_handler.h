#pragma once
// Turns platform commands into rental work: a deploy is validated, checked for identity,
// admitted (GPUs, ports and limits claimed with the deployment row) and handed to the runner
// on the deploy lane; a terminate cancels an in-flight deploy at once and ends the rental on
// the stop lane. Every command ends with exactly one recorded result and ack.
#include <stop_token>
#include <string>

#include "engine/deployment_runner.h"
#include "engine/rental_context.h"
#include "engine/rental_ender.h"

namespace taolie::engine {

class CommandHandler {
 public:
  CommandHandler(const RentalContext& ctx, DeploymentRunner& runner)
      : ctx_(ctx), runner_(runner), ender_(ctx) {}

  // Queues a recorded command (new, or pending after a restart). Called by the poll loop.
  void Schedule(const store::CommandRecord& cmd);
  // Processes one command to its durable end (runs on a worker; tests call it directly).
  void Process(const store::CommandRecord& cmd, std::stop_token stop);

 private:
  void ProcessDeploy(const store::CommandRecord& cmd, std::stop_token stop);
  void ProcessTerminate(const store::CommandRecord& cmd, std::stop_token stop);
  std::string RejectedDeploymentId(const store::CommandRecord& cmd) const;

  const RentalContext& ctx_;
  DeploymentRunner& runner_;
  RentalEnder ender_;
  std::mutex admit_mu_;  // admission (choice of GPUs and ports) is serialised, nothing else
};

// The deploy payload's deployment_id when well-formed, else the command id (the rule
// ParseDeployPayload applies), without validating the rest.
std::string PayloadDeploymentId(const store::CommandRecord& cmd);

}  // namespace taolie::engine
