#pragma once
// Admission: may this host take this rental, and with what? Pure: a validated deploy spec and
// the host's state in, a claim plan (GPUs, host ports, resource limits) or a refusal out.
// The caller claims the plan atomically with the deployment row.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/rules/deploy_spec.h"
#include "agent/rules/limits.h"
#include "agent/rules/port_policy.h"
#include "common/result.h"
#include "config/config.h"
#include "domain/deployment.h"
#include "domain/enums.h"

namespace taolie::agent {

struct GpuSlot {  // one GPU as admission sees it
  std::string uuid;
  bool present = true;
  domain::GpuHealthState health = domain::GpuHealthState::kHealthy;
  std::string deployment_id;  // "" = free
};

struct AdmissionInput {
  const DeploySpec* spec = nullptr;
  std::vector<GpuSlot> gpus;
  std::set<int> ports_in_db;  // host ports held by other deployments
  HostCapacity capacity;      // total_gpus is filled from `gpus` when 0
  const config::DeploymentConfig* deployment = nullptr;
  NamedPorts named;
  PortRangeSpec range;
  std::function<bool(int)> port_in_use;  // is the host port bound by something else?
  // Why the host cannot isolate rentals now (rental_isolation.h), "" when it can or the owner
  // waived it (deployment.require_isolation: false).
  std::string isolation_problem;
};

struct AdmissionPlan {
  int gpu_count = 0;                   // claim this many free GPUs (when gpu_uuids is empty)
  std::vector<std::string> gpu_uuids;  // or exactly these
  std::vector<domain::PortAllocation> ports;
  ResourceLimits limits;
};

// FailedPrecondition with a reason a renter can read ("gpu_count: 2 requested but only 1
// healthy GPU(s) are free", "no free host port ...", a limit above the host cap ...).
Result<AdmissionPlan> Admit(const AdmissionInput& in);

// A deploy's deployment_id must be new, or belong to this very command (a re-delivery or a
// resume). One that belongs to another command is refused: InvalidArgument with the reason.
Status CheckDeploymentIdentity(const std::string& command_id, const std::string& deployment_id,
                               const std::optional<domain::Deployment>& existing);

}  // namespace taolie::agent
