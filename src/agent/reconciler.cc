#include "agent/reconciler.h"

#include <spdlog/spdlog.h>

#include <set>

#include "agent/container_spec.h"

namespace taolie::agent {

using domain::DeploymentState;

Status Reconciler::Run(std::stop_token stop) {
  const auto& deps = ctx_.deps;
  auto active = deps.store.ActiveDeployments();
  if (!active.ok()) return active.error();
  auto containers = deps.docker.List({{kLabelManaged, "true"}, {kLabelAgent, ctx_.rt.agent_id()}});
  if (!containers.ok()) return containers.error();
  std::set<std::string> owned;
  for (const auto& d : *active) owned.insert(d.id);

  // Containers with our labels that no active deployment owns are removed.
  for (const auto& c : *containers) {
    auto it = c.labels.find(kLabelDeployment);
    std::string dep = it == c.labels.end() ? "" : it->second;
    if (owned.count(dep) > 0 || ctx_.work.Busy(DeploymentKey(dep))) continue;
    spdlog::warn("reconcile: removing orphan container {} (deployment '{}')", c.name, dep);
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

}  // namespace taolie::agent
