#include "agent/rental_monitor.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "platform/messages.h"

namespace taolie::agent {

using domain::DeploymentState;

void RentalMonitor::QueueEnd(const std::string& id, const std::string& end_status,
                             const std::string& reason) {
  ctx_.work.Submit(Lane::kStop, "end:" + id, DeploymentKey(id),
                   [this, id, end_status, reason](std::stop_token s) {
                     if (Status st = ender_.End(id, end_status, reason, s); !st.ok()) {
                       spdlog::warn("end {}: {} (retried)", id, st.error().ToString());
                     }
                   });
}

std::chrono::milliseconds RentalMonitor::Tick(domain::Deployment& d, const ClockReading& now) {
  using std::chrono::milliseconds;
  const milliseconds duration = std::chrono::minutes(d.duration_minutes);
  if (d.clock_boot_id.empty()) {
    // A row from before the rental clock: its elapsed time is taken from its wall times once.
    auto from_wall =
        d.expires_at ? duration - std::chrono::duration_cast<milliseconds>(*d.expires_at - now.wall)
                     : milliseconds(0);
    SetCheckpoint(d, StartClock(now));
    d.elapsed_ms = std::max<int64_t>(0, from_wall.count());
    WarnIfError(ctx_.deps.store.SaveDeploymentClock(d), "save clock of " + d.id);
    return duration - milliseconds(d.elapsed_ms);
  }
  ElapsedNow e = Advance(CheckpointOf(d), now);
  if (std::chrono::abs(milliseconds(e.wall_step_ms)) >= kClockStepThreshold) {
    ctx_.rt.clock_steps++;
    ctx_.rt.last_clock_step_ms = e.wall_step_ms;
    spdlog::warn(
        "wall clock stepped by {:+.1f} s against the monotonic clock; rental {} keeps its "
        "time ({} of {} min used)",
        e.wall_step_ms / 1000.0, d.id, e.elapsed_ms / 60000, d.duration_minutes);
  }
  if (e.rebooted) {
    spdlog::info("deployment {}: host rebooted; {} s of the gap counted (at most {} min)", d.id,
                 (e.elapsed_ms - d.elapsed_ms) / 1000, kRebootGapCap.count());
  }
  SetCheckpoint(d, e.checkpoint);
  WarnIfError(ctx_.deps.store.SaveDeploymentClock(d), "save clock of " + d.id);
  return duration - milliseconds(e.elapsed_ms);
}

Status RentalMonitor::WarnExpiry(domain::Deployment& d, std::chrono::milliseconds left_ms) {
  const auto& deps = ctx_.deps;
  auto now = deps.clock.Now();
  auto left =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(left_ms).count());
  auto ends_at = now + std::chrono::seconds(left);
  std::string msg = "TAOLIE: this rental ends at " + FormatRfc3339(ends_at) + " (in " +
                    std::to_string(left) + " s). Save your work now.";
  auto r = deps.docker.Exec(
      d.container_id,
      {"sh", "-c",
       "mkdir -p /run/taolie && printf '%s\\n' \"$1\" > /run/taolie/expiry; "
       "for t in /dev/pts/[0-9]*; do [ -c \"$t\" ] && printf '\\r\\n%s\\r\\n' \"$1\" > \"$t\"; "
       "done 2>/dev/null; true",
       "sh", msg},
      std::chrono::seconds(10));
  if (!r.ok()) {
    spdlog::warn("deployment {}: expiry warning not delivered inside: {}", d.id, r.error().message);
  }
  d.warned_at = now;
  return deps.store.UpdateDeployment(
      d, {ctx_.events.Deployment(d.id, domain::EventKind::kExpiring,
                                 platform::BuildExpiringBody(d.id, ends_at, left, ctx_.events.ts()),
                                 true)});
}

Status RentalMonitor::CheckOnce(std::stop_token stop) {
  const auto& deps = ctx_.deps;
  auto active = deps.store.ActiveDeployments();
  if (!active.ok()) return active.error();
  const ClockReading now = ctx_.ReadNow();
  auto warn = std::chrono::seconds(deps.cfg.deployment.expiry_warning_seconds);
  for (auto& d : *active) {
    if (stop.stop_requested()) break;
    if (d.state == DeploymentState::kStopping) {
      QueueEnd(d.id, "", "");  // a half-done ending (Docker was unavailable): finish it
      continue;
    }
    if (d.state != DeploymentState::kRunning) continue;
    const std::chrono::milliseconds left = Tick(d, now);
    if (left <= std::chrono::milliseconds(0)) {
      QueueEnd(d.id, "expired", "rental duration elapsed");
      continue;
    }
    auto info = deps.docker.Inspect(d.container_id);
    if (!info.ok() && info.error().code == ErrorCode::kNotFound) {
      QueueEnd(d.id, "failed", "container was removed outside the agent");
      continue;
    }
    if (info.ok() && !info->running && info->state != "restarting") {
      QueueEnd(d.id, "failed",
               info->state == "removing" ? "container was removed outside the agent"
                                         : "container " + info->state + " with exit code " +
                                               std::to_string(info->exit_code) +
                                               (info->oom_killed ? " (out of memory)" : ""));
      continue;
    }
    if (!d.warned_at && left <= warn) {
      if (Status st = WarnExpiry(d, left); !st.ok()) {
        spdlog::warn("warn {}: {}", d.id, st.error().ToString());
      }
      ctx_.rt.NotifyOutbox();
    }
  }
  ctx_.rt.active_deployments = static_cast<int>(active->size());
  return OkStatus();
}

}  // namespace taolie::agent
