#include "engine/reconciler.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <set>

#include "common/time_format.h"
#include "engine/adoption.h"
#include "engine/container_spec.h"

namespace taolie::engine {

using domain::DeploymentState;

bool Reconciler::Adopt(const docker::ContainerInfo& listed) {
  const auto& deps = ctx_.deps;
  auto info = deps.docker.Inspect(listed.id);
  if (!info.ok()) {
    spdlog::warn("reconcile: cannot inspect {}: {}", listed.name, info.error().ToString());
    return info.error().code != ErrorCode::kNotFound;  // gone: nothing to remove
  }
  info->ports = listed.ports;  // what the engine bound, as the list reports it
  auto d = DeploymentFromContainer(*info, deps.cfg.network.ports);
  if (!d.ok()) {
    spdlog::warn("reconcile: ending container {} without a deployment: cannot adopt it ({})",
                 listed.name, d.error().message);
    ctx_.rt.containers_ended_unadoptable++;
    return false;
  }
  auto adopted = deps.store.AdoptDeployment(*d);
  if (!adopted.ok()) {
    if (adopted.error().code == ErrorCode::kFailedPrecondition) {
      spdlog::warn("reconcile: ending container {}: its GPUs or ports are taken ({})", listed.name,
                   adopted.error().message);
      ctx_.rt.containers_ended_unadoptable++;
      return false;
    }
    spdlog::warn("reconcile: adoption of {} failed: {} (retried)", listed.name,
                 adopted.error().ToString());
    return true;  // keep the container; the next round tries again
  }
  ctx_.rt.containers_adopted++;
  ctx_.rt.claims_generation++;
  spdlog::warn(
      "reconcile: adopted container {} of deployment {} from its labels (no row: the database "
      "was lost); GPUs {} claimed, rental ends at {}",
      listed.name, d->id, fmt::join(adopted->gpu_uuids, ","), FormatRfc3339(*d->expires_at));
  return true;
}

Status Reconciler::Run(std::stop_token stop) {
  const auto& deps = ctx_.deps;
  auto active = deps.store.ActiveDeployments();
  if (!active.ok()) return active.error();
  auto containers = deps.docker.List({{kLabelManaged, "true"}, {kLabelAgent, ctx_.rt.agent_id()}});
  if (!containers.ok()) return containers.error();
  std::set<std::string> owned;
  for (const auto& d : *active) owned.insert(d.id);

  // Containers with our labels that no active deployment owns: one whose deployment has a
  // row is left over from an ending and is removed; one without a row outlived the database
  // and is adopted from its labels, or ended when that cannot be done safely (adoption.h).
  for (const auto& c : *containers) {
    if (stop.stop_requested()) break;
    auto it = c.labels.find(kLabelDeployment);
    std::string dep = it == c.labels.end() ? "" : it->second;
    if (owned.count(dep) > 0 || ctx_.work.Busy(DeploymentKey(dep))) continue;
    if (!dep.empty()) {
      auto row = deps.store.GetDeployment(dep);
      if (!row.ok()) return row.error();
      if (!row->has_value()) {
        if (Adopt(c)) continue;
      } else {
        spdlog::warn("reconcile: removing orphan container {} (deployment '{}' has ended)", c.name,
                     dep);
      }
    } else {
      spdlog::warn("reconcile: removing container {} (no deployment label)", c.name);
    }
    Status rm = deps.docker.Remove(c.id, true);
    if (!rm.ok() && rm.error().code != ErrorCode::kNotFound) {
      spdlog::warn("reconcile: could not remove {}: {}", c.name, rm.error().ToString());
    }
  }

  for (const auto& d : *active) {
    if (stop.stop_requested()) break;
    const std::string id = d.id;
    // A worker is driving it (or is about to): never a second driver, never a stale copy.
    if (ctx_.work.Busy(DeploymentKey(id))) continue;
    switch (d.state) {
      case DeploymentState::kRunning:
        break;  // adopted; the duration monitor watches it
      case DeploymentState::kStopping:
        monitor_.QueueEnd(id, "", "");
        break;
      default:
        spdlog::info("reconcile: resuming deployment {} from {}", id,
                     domain::DeploymentStateName(d.state));
        ctx_.work.Submit(Lane::kDeploy, "resume:" + id, DeploymentKey(id),
                         [this, id](std::stop_token s) { runner_.RunById(id, s); });
        break;
    }
  }

  // Commands recorded but not finished (crash between record and result).
  auto pending = deps.store.PendingCommands(100);
  if (!pending.ok()) return pending.error();
  for (const auto& c : *pending) schedule_(c);
  return OkStatus();
}

}  // namespace taolie::engine
