#include "agent/admission.h"

namespace taolie::agent {

Result<AdmissionPlan> Admit(const AdmissionInput& in) {
  const DeploySpec& spec = *in.spec;
  if (!in.isolation_problem.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "host cannot isolate rentals: " + in.isolation_problem);
  }
  AdmissionPlan plan;
  plan.gpu_count = spec.gpu_uuids.empty() ? spec.gpu_count : 0;
  plan.gpu_uuids = spec.gpu_uuids;
  HostCapacity cap = in.capacity;
  if (cap.total_gpus == 0) cap.total_gpus = static_cast<int>(in.gpus.size());
  int claimed = spec.gpu_uuids.empty() ? spec.gpu_count : static_cast<int>(spec.gpu_uuids.size());
  // Resource requests beyond this host's caps are refused here, before anything is claimed.
  auto limits = ComputeLimits(spec, *in.deployment, cap, claimed);
  if (!limits.ok()) return MakeError(ErrorCode::kFailedPrecondition, limits.error().message);
  plan.limits = *limits;

  if (plan.gpu_uuids.empty() && plan.gpu_count > 0) {
    int free = 0;
    for (const auto& g : in.gpus) {
      if (g.present && g.deployment_id.empty() && domain::Rentable(g.health)) ++free;
    }
    if (plan.gpu_count > free) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "gpu_count: " + std::to_string(plan.gpu_count) + " requested but only " +
                           std::to_string(free) + " healthy GPU(s) are free");
    }
  }
  for (const auto& uuid : plan.gpu_uuids) {
    const GpuSlot* slot = nullptr;
    for (const auto& g : in.gpus) {
      if (g.uuid == uuid) slot = &g;
    }
    if (slot == nullptr || !slot->present) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "gpu_uuids: " + uuid + " is not on this host");
    }
    if (!slot->deployment_id.empty()) {
      return MakeError(ErrorCode::kFailedPrecondition, "gpu_uuids: " + uuid + " is rented");
    }
    if (!domain::Rentable(slot->health)) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "gpu_uuids: " + uuid + " is " + domain::GpuHealthStateName(slot->health));
    }
  }

  std::vector<int> container_ports;
  for (const auto& p : spec.ports) container_ports.push_back(p.container_port);
  auto ports = AllocatePorts(container_ports, in.named, in.range, [&](int port) {
    return in.ports_in_db.count(port) > 0 || (in.port_in_use && in.port_in_use(port));
  });
  if (!ports.ok()) return MakeError(ErrorCode::kFailedPrecondition, ports.error().message);
  plan.ports = std::move(*ports);
  return plan;
}

Status CheckDeploymentIdentity(const std::string& command_id, const std::string& deployment_id,
                               const std::optional<domain::Deployment>& existing) {
  if (!existing || existing->command_id == command_id) return OkStatus();
  return MakeError(
      ErrorCode::kInvalidArgument,
      "deployment_id: " + deployment_id + " already belongs to another command's deployment");
}

}  // namespace taolie::agent
