#pragma once
// The rental workflow: deploy (validate -> claim -> pull -> create -> start -> readiness ->
// success), terminate, expiry, dead-container detection and reconciliation after a crash.
// Every step records its intent in the store before the side effect and its outcome after,
// so a deployment can be resumed or rolled back from whatever state a crash left.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "agent/rules/deploy_spec.h"
#include "agent/runtime.h"
#include "agent/work_queue.h"
#include "store/records.h"

namespace taolie::agent {

class DeploymentManager {
 public:
  DeploymentManager(Deps deps, Runtime& rt, WorkQueue& work);

  // Schedules a recorded command (new, or pending after a restart). Called from the poll loop.
  void Schedule(const store::CommandRecord& cmd);
  // Processes one command to its durable end (runs on a worker; tests call it directly).
  void Process(const store::CommandRecord& cmd, std::stop_token stop);

  // Start-up and periodic reconciliation of the store against Docker.
  Status Reconcile(std::stop_token stop);
  // Duration monitor round: warnings, expiries, containers that died behind our back.
  Status CheckDeployments(std::stop_token stop);

  // Ends a deployment (stop, remove, free, usage, report). Idempotent.
  Status EndDeployment(const std::string& deployment_id, const std::string& end_status,
                       const std::string& reason, std::stop_token stop);

  static std::string ContainerName(const std::string& deployment_id) {
    return "deployment-" + deployment_id;
  }

 private:
  void ProcessDeploy(const store::CommandRecord& cmd, std::stop_token stop);
  void ProcessTerminate(const store::CommandRecord& cmd, std::stop_token stop);
  void FinishCommand(const store::CommandRecord& cmd, const std::string& result,
                     const std::string& error, const std::string& deployment_id,
                     std::vector<store::OutboxEvent> extra_events);
  // Drives a deployment forward from its persisted state to running (or failed).
  void RunDeployment(domain::Deployment d, std::stop_token stop);
  void FailDeployment(domain::Deployment& d, const std::string& stage,
                      const std::string& error);
  Status ReadinessCheck(const domain::Deployment& d, std::stop_token stop, std::string* why);
  Status WarnExpiry(domain::Deployment& d);
  docker::ContainerSpec BuildContainerSpec(const domain::Deployment& d, const DeploySpec& spec,
                                           std::string* error);
  std::string ResultOf(const domain::Deployment& d, std::string* error) const;
  bool HostPortTaken(int port) const;
  std::string RejectedDeploymentId(const store::CommandRecord& cmd) const;
  // The deploy payload's deployment_id when well-formed, else the command id (the rule
  // ParseDeployPayload applies), without validating the rest.
  static std::string PayloadDeploymentId(const store::CommandRecord& cmd);
  ValidationLimits Limits() const;

  store::OutboxEvent Event(const std::string& deployment_id, domain::EventKind kind,
                           std::string body, bool ext) const;
  store::OutboxEvent AckEvent(const std::string& command_id, const std::string& result,
                              const std::string& error, const std::string& deployment_id) const;

  Deps d_;
  Runtime& rt_;
  WorkQueue& work_;
  std::mutex admit_mu_;  // admission (GPU/port choice) is serialised
  std::mutex cancel_mu_;
  std::map<std::string, std::shared_ptr<std::stop_source>> cancels_;  // in-flight deploys
};

// Parses "/api/host-agents/<agent>/commands/<command>/ack" back to the command id.
std::optional<std::string> CommandIdFromAckPath(const std::string& path);

}  // namespace taolie::agent
