#include "engine/rental_ender.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/failpoints.h"
#include "platform/messages.h"
#include "rules/billing.h"

namespace taolie::engine {

using domain::DeploymentState;

Status RentalEnder::End(const std::string& deployment_id, const std::string& end_status,
                        const std::string& reason, std::stop_token stop,
                        const std::optional<rules::ClockReading>& stopped_at) {
  const auto& deps = ctx_.deps;
  auto found = deps.store.GetDeployment(deployment_id);
  if (!found.ok()) return found.error();
  if (!found->has_value()) {
    return MakeError(ErrorCode::kNotFound, "no deployment " + deployment_id);
  }
  domain::Deployment d = **found;
  if (d.state == DeploymentState::kEnded) return OkStatus();
  if (d.state != DeploymentState::kRunning && d.state != DeploymentState::kStopping &&
      ctx_.cancels.Cancel(d.id)) {
    // Still deploying: the deploy job sees the cancellation and ends it.
    return MakeError(ErrorCode::kUnavailable, "deploy of " + d.id + " is being cancelled");
  }
  if (d.state != DeploymentState::kStopping) {
    d.end_status = end_status;
    d.end_reason = reason;
    d.state = DeploymentState::kStopping;
    TAOLIE_RETURN_IF_ERROR(deps.store.UpdateDeployment(d, {}));
  }
  Failpoint("after_stop_intent");
  std::string target = d.container_id.empty() ? d.container_name : d.container_id;
  spdlog::info("deployment {}: stopping ({}: {})", d.id, d.end_status, d.end_reason);
  // A renter who never got access has nothing to save: no grace period then.
  auto grace = d.started_at ? std::chrono::seconds(deps.cfg.deployment.stop_grace_seconds)
                            : std::chrono::seconds(0);
  Status stopped = deps.docker.Stop(target, grace);
  if (!stopped.ok() && stopped.error().code != ErrorCode::kNotFound) return stopped.error();
  Status removed = deps.docker.Remove(target, true);
  if (!removed.ok() && removed.error().code != ErrorCode::kNotFound) return removed.error();
  Failpoint("after_remove");
  CheckGpuLeftovers(d, stop);

  d.state = DeploymentState::kEnded;
  d.ssh_password.reset();
  domain::Usage usage;
  if (!d.clock_boot_id.empty()) {
    // Billed on the rental's monotonic clock: a wall-clock step changes nothing.
    rules::ElapsedNow end =
        rules::Advance(rules::CheckpointOf(d), stopped_at ? *stopped_at : ctx_.ReadNow());
    rules::SetCheckpoint(d, end.checkpoint);
    d.ended_at = end.checkpoint.wall;
    std::optional<std::chrono::milliseconds> used;
    if (d.ready_elapsed_ms) used = std::chrono::milliseconds(end.elapsed_ms - *d.ready_elapsed_ms);
    usage = rules::ComputeUsageFromUsed(d.duration_minutes, used, d.price_per_hour);
  } else {  // a row from before the rental clock, or a deploy that never got that far
    d.ended_at = stopped_at ? stopped_at->wall : deps.clock.Now();
    usage = rules::ComputeUsage(d.duration_minutes, d.started_at, *d.ended_at, d.price_per_hour);
  }
  auto metering = deps.store.RentalMeteringOf(d.id);
  if (!metering.ok()) return metering.error();
  rules::AddMetering(usage, *metering, d.gpu_uuids.size());
  std::vector<store::OutboxEvent> events;
  if (!d.error_stage.empty() && !d.started_at) {
    // Never became ready: the platform hears `failed` with the stage, not an ending.
    events.push_back(ctx_.events.Failed(d.id, d.error_stage, d.error));
  } else {
    events.push_back(ctx_.events.Deployment(
        d.id, domain::EventKind::kTerminated,
        platform::BuildTerminatedBody(d.id, d.end_status, d.end_reason, d.started_at, *d.ended_at,
                                      usage, ctx_.events.ts()),
        true));
  }
  TAOLIE_RETURN_IF_ERROR(deps.store.UpdateDeployment(d, events));
  ctx_.rt.claims_generation++;
  spdlog::info("deployment {} ended ({}), used {:.2f} of {} min", d.id, d.end_status,
               usage.used_minutes, d.duration_minutes);
  ctx_.rt.NotifyOutbox();
  // Its GPUs are dirty now: verified at once, so the next rental need not wait for the
  // metrics loop's next sample (issue 17 item 7).
  if (!d.gpu_uuids.empty()) (void)ctx_.dirty_gpus.VerifyNow();
  return OkStatus();
}

// The GPU must show no process of this rental before it is handed out again: a process on a
// claimed GPU whose cgroup names the container is one of the rental's.
void RentalEnder::CheckGpuLeftovers(const domain::Deployment& d, std::stop_token stop) {
  const auto& deps = ctx_.deps;
  if (!deps.gpus.Available() || d.gpu_uuids.empty() || d.container_id.empty()) return;
  constexpr int kAttempts = 10;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    size_t leftover = 0;
    if (auto samples = deps.gpus.Sample(); samples.ok()) {
      for (const auto& s : *samples) {
        if (std::find(d.gpu_uuids.begin(), d.gpu_uuids.end(), s.uuid) == d.gpu_uuids.end()) {
          continue;
        }
        for (uint32_t pid : s.process_pids) {
          if (deps.host.ProcessInContainer(pid, d.container_id)) ++leftover;
        }
      }
    }
    if (leftover == 0) return;
    if (attempt == kAttempts - 1) {
      spdlog::warn(
          "deployment {}: {} process(es) of the rental still on its GPU(s); GPUs marked warning",
          d.id, leftover);
      for (const auto& u : d.gpu_uuids) {
        runtime::WarnIfError(deps.store.SetGpuHealth(u, domain::GpuHealthState::kWarning),
                             "mark GPU " + u);
      }
      return;
    }
    if (!deps.clock.SleepFor(std::chrono::milliseconds(500), stop)) return;
  }
}

}  // namespace taolie::engine
