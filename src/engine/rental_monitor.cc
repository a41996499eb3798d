#include "engine/rental_monitor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "engine/container_spec.h"
#include "platform/messages.h"
#include "rules/deploy_spec.h"
#include "rules/disk_quota.h"

namespace taolie::engine {

using domain::DeploymentState;
using std::chrono::milliseconds;

void RentalMonitor::QueueEnd(const std::string& id, const std::string& end_status,
                             const std::string& reason) {
  ctx_.work.Submit(Lane::kStop, "end:" + id, DeploymentKey(id),
                   [this, id, end_status, reason](std::stop_token s) {
                     if (Status st = ender_.End(id, end_status, reason, s, StoppedAt(id));
                         !st.ok()) {
                       spdlog::warn("end {}: {} (retried)", id, st.error().ToString());
                     }
                   });
}

size_t RentalMonitor::KnownRentals() const {
  std::lock_guard l(mu_);
  return known_.size();
}

std::optional<rules::ClockReading> RentalMonitor::StoppedAt(const std::string& id) const {
  std::lock_guard l(mu_);
  auto it = known_.find(id);
  return it == known_.end() ? std::nullopt : it->second.stopped_at;
}

milliseconds RentalMonitor::Tick(domain::Deployment& d, const rules::ClockReading& now) {
  const milliseconds duration = std::chrono::minutes(d.duration_minutes);
  if (d.clock_boot_id.empty()) {
    // A row from before the rental clock, or adopted from labels: its elapsed time is taken
    // from its wall times once.
    auto from_wall =
        d.expires_at ? duration - std::chrono::duration_cast<milliseconds>(*d.expires_at - now.wall)
                     : milliseconds(0);
    rules::SetCheckpoint(d, rules::StartClock(now));
    d.elapsed_ms = std::max<int64_t>(0, from_wall.count());
    runtime::WarnIfError(ctx_.deps.store.SaveDeploymentClock(d), "save clock of " + d.id);
    return duration - milliseconds(d.elapsed_ms);
  }
  rules::ElapsedNow e = rules::Advance(rules::CheckpointOf(d), now);
  if (std::chrono::abs(milliseconds(e.wall_step_ms)) >= rules::kClockStepThreshold) {
    ctx_.rt.clock_steps++;
    ctx_.rt.last_clock_step_ms = e.wall_step_ms;
    spdlog::warn(
        "wall clock stepped by {:+.1f} s against the monotonic clock; rental {} keeps its "
        "time ({} of {} min used)",
        e.wall_step_ms / 1000.0, d.id, e.elapsed_ms / 60000, d.duration_minutes);
  }
  if (e.rebooted) {
    spdlog::info("deployment {}: host rebooted; {} s of the gap counted (at most {} min)", d.id,
                 (e.elapsed_ms - d.elapsed_ms) / 1000, rules::kRebootGapCap.count());
  }
  rules::SetCheckpoint(d, e.checkpoint);
  runtime::WarnIfError(ctx_.deps.store.SaveDeploymentClock(d), "save clock of " + d.id);
  return duration - milliseconds(e.elapsed_ms);
}

Status WriteToRenter(docker::DockerClient& docker, const std::string& container_id,
                     const std::string& file, const std::string& message,
                     std::chrono::seconds timeout) {
  auto r = docker.Exec(
      container_id,
      {"sh", "-c",
       "mkdir -p /run/taolie && printf '%s\\n' \"$2\" > \"/run/taolie/$1\"; "
       "for t in /dev/pts/[0-9]*; do [ -c \"$t\" ] && printf '\\r\\n%s\\r\\n' \"$2\" > \"$t\"; "
       "done 2>/dev/null; true",
       "sh", file, message},
      timeout);
  if (!r.ok()) return r.error();
  return OkStatus();
}

void RentalMonitor::WriteInside(const domain::Deployment& d, const std::string& file,
                                const std::string& msg) {
  if (Status st =
          WriteToRenter(ctx_.deps.docker, d.container_id, file, msg, std::chrono::seconds(10));
      !st.ok()) {
    spdlog::warn("deployment {}: {} warning not delivered inside: {}", d.id, file,
                 st.error().message);
  }
}

SystemTime RentalMonitor::DeliverWarning(const domain::Deployment& d, int64_t left) {
  auto ends_at = ctx_.deps.clock.Now() + std::chrono::seconds(left);
  WriteInside(d, "expiry",
              "TAOLIE: this rental ends at " + FormatRfc3339(ends_at) + " (in " +
                  std::to_string(left) + " s). Save your work now.");
  return ends_at;
}

void RentalMonitor::CheckDiskQuotas(const std::vector<domain::Deployment>& rentals) {
  std::vector<std::pair<const domain::Deployment*, rules::DeploySpec>> quoted;
  for (const auto& d : rentals) {
    auto spec = rules::SpecFromJson(d.spec_json);
    if (spec.ok() && spec->admitted_disk_mb > 0) quoted.emplace_back(&d, std::move(*spec));
  }
  std::set<std::string> still;
  for (const auto& [d, spec] : quoted) still.insert(d->id);
  std::erase_if(disk_warned_, [&](const std::string& id) { return still.count(id) == 0; });
  if (quoted.empty()) return;
  // One list call for every rental's writable layer, then each rental's bind volumes.
  auto sizes = ctx_.deps.docker.WritableLayerSizes(
      {{kLabelManaged, "true"}, {kLabelAgent, ctx_.rt.agent_id()}});
  if (!sizes.ok()) {
    spdlog::warn("disk quotas not measured this round: {}", sizes.error().ToString());
    return;
  }
  for (const auto& [d, spec] : quoted) {
    auto layer = sizes->find(d->container_id);
    if (layer == sizes->end()) continue;  // gone: the round's other checks end it
    auto used = static_cast<uint64_t>(layer->second);
    for (const auto& [host_path, container_path] : spec.volumes) {
      auto tree = ctx_.deps.host.TreeBytes(host_path, kMaxVolumeEntries);
      if (!tree.ok()) {
        spdlog::warn("deployment {}: volume {} not measured: {}", d->id, host_path,
                     tree.error().message);
        continue;
      }
      if (tree->truncated) {
        spdlog::warn("deployment {}: volume {} has more than {} entries; counted the first", d->id,
                     host_path, kMaxVolumeEntries);
      }
      used += tree->bytes;
    }
    switch (rules::DecideDiskQuota(used, spec.admitted_disk_mb, disk_warned_.count(d->id) > 0)) {
      case rules::DiskQuotaAction::kNone:
        break;
      case rules::DiskQuotaAction::kWarn:
        spdlog::warn("deployment {}: uses {} MiB of its {} MiB disk quota: warned", d->id,
                     used >> 20, spec.admitted_disk_mb);
        WriteInside(*d, "disk", rules::DiskQuotaWarning(used, spec.admitted_disk_mb));
        disk_warned_.insert(d->id);
        break;
      case rules::DiskQuotaAction::kEnd:
        spdlog::warn("deployment {}: uses {} MiB, past its {} MiB disk quota: ending it", d->id,
                     used >> 20, spec.admitted_disk_mb);
        QueueEnd(d->id, "failed", rules::kDiskQuotaReason);
        break;
    }
  }
}

Status RentalMonitor::WarnExpiry(domain::Deployment& d, milliseconds left_ms) {
  auto left =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(left_ms).count());
  SystemTime ends_at = DeliverWarning(d, left);
  d.warned_at = ctx_.deps.clock.Now();
  return ctx_.deps.store.UpdateDeployment(
      d, {ctx_.events.Deployment(d.id, domain::EventKind::kExpiring,
                                 platform::BuildExpiringBody(d.id, ends_at, left, ctx_.events.ts()),
                                 true)});
}

void RentalMonitor::QueueOfflineStop(const std::string& id, const std::string& container) {
  ctx_.work.Submit(
      Lane::kStop, "offline-stop:" + id, DeploymentKey(id), [this, id, container](std::stop_token) {
        auto grace = std::chrono::seconds(ctx_.deps.cfg.deployment.stop_grace_seconds);
        Status st = ctx_.deps.docker.Stop(container, grace);
        std::lock_guard l(mu_);
        auto it = known_.find(id);
        if (it == known_.end()) return;
        if (!st.ok() && st.error().code != ErrorCode::kNotFound) {
          it->second.stop_queued = false;  // tried again next round
          spdlog::warn("deployment {}: stop at expiry failed: {}", id, st.error().ToString());
          return;
        }
        it->second.stopped_at = ctx_.ReadNow();
        ctx_.rt.offline_expiries++;
        spdlog::warn(
            "deployment {}: expired and stopped while the database is unavailable; it is "
            "recorded and reported when the database answers again",
            id);
      });
}

void RentalMonitor::EnforceWithoutStore(const rules::ClockReading& now, std::stop_token stop) {
  const auto& deps = ctx_.deps;
  ctx_.rt.store_down_rounds++;
  // Docker's view: a rental container the monitor has not seen yet is enforced from its labels.
  auto listed = deps.docker.List({{kLabelManaged, "true"}, {kLabelAgent, ctx_.rt.agent_id()}});
  struct Action {
    domain::Deployment d;
    bool stop = false;
    int64_t warn_left_s = 0;
  };
  std::vector<Action> actions;
  std::set<std::string> running;  // containers Docker reports running (when it answers)
  if (listed.ok()) {
    for (const auto& c : *listed) {
      if (c.running) running.insert(c.id);
    }
  }
  {
    std::lock_guard l(mu_);
    if (listed.ok()) {
      for (const auto& c : *listed) {
        auto dep = c.labels.find(kLabelDeployment);
        auto exp = c.labels.find(kLabelExpires);
        if (dep == c.labels.end() || known_.count(dep->second) > 0 || !c.running) continue;
        Known k;
        k.d.id = dep->second;
        k.d.container_id = c.id;
        k.d.state = DeploymentState::kRunning;
        if (exp != c.labels.end()) k.d.expires_at = ParseTimestamp(exp->second);
        if (!k.d.expires_at) continue;
        spdlog::warn("deployment {}: enforced from its container's labels (ends at {})", k.d.id,
                     exp->second);
        known_.emplace(k.d.id, std::move(k));
      }
    }
    const auto warn = std::chrono::seconds(deps.cfg.deployment.expiry_warning_seconds);
    for (auto& [id, k] : known_) {
      if (k.stop_queued || k.stopped_at) continue;
      // Ended meanwhile, or stopped by someone else: nothing to enforce.
      if (listed.ok() && running.count(k.d.container_id) == 0) continue;
      milliseconds left{0};
      if (!k.d.clock_boot_id.empty()) {
        rules::ElapsedNow e = rules::Advance(rules::CheckpointOf(k.d), now);
        rules::SetCheckpoint(k.d, e.checkpoint);
        left = std::chrono::minutes(k.d.duration_minutes) - milliseconds(e.elapsed_ms);
      } else if (k.d.expires_at) {
        left = std::chrono::duration_cast<milliseconds>(*k.d.expires_at - now.wall);
      } else {
        continue;
      }
      if (left <= milliseconds(0)) {
        k.stop_queued = true;
        actions.push_back({k.d, true, 0});
      } else if (!k.d.warned_at && !k.warned_ends && left <= warn) {
        int64_t s = std::chrono::duration_cast<std::chrono::seconds>(left).count();
        k.d.warned_at = deps.clock.Now();
        k.warned_left_s = s;
        k.warned_ends = k.d.warned_at;  // replaced by the deadline once delivered
        actions.push_back({k.d, false, s});
      }
    }
  }
  for (const auto& a : actions) {
    if (stop.stop_requested()) break;
    if (a.stop) {
      spdlog::warn("deployment {}: rental time is up; stopping it without the database", a.d.id);
      QueueOfflineStop(a.d.id, a.d.container_id);
      continue;
    }
    SystemTime ends_at = DeliverWarning(a.d, a.warn_left_s);
    ctx_.rt.offline_warnings++;
    std::lock_guard l(mu_);
    if (auto it = known_.find(a.d.id); it != known_.end()) it->second.warned_ends = ends_at;
  }
}

bool RentalMonitor::WriteBack() {
  bool wrote = false;
  std::vector<std::pair<std::string, Known>> pending;
  {
    std::lock_guard l(mu_);
    for (auto& [id, k] : known_) {
      if (k.warned_ends) pending.emplace_back(id, k);
    }
  }
  for (auto& [id, k] : pending) {
    auto row = ctx_.deps.store.GetDeployment(id);
    if (!row.ok()) return wrote;  // still not answering: next round
    if (row->has_value() && (*row)->state == DeploymentState::kRunning && !(*row)->warned_at) {
      domain::Deployment d = **row;
      d.warned_at = k.d.warned_at;
      Status st = ctx_.deps.store.UpdateDeployment(
          d, {ctx_.events.Deployment(
                 id, domain::EventKind::kExpiring,
                 platform::BuildExpiringBody(id, *k.warned_ends, k.warned_left_s, ctx_.events.ts()),
                 true)});
      if (!st.ok()) {
        spdlog::warn("deployment {}: warning not recorded yet: {}", id, st.error().ToString());
        return wrote;
      }
      spdlog::info("deployment {}: expiry warning given without the database recorded", id);
      ctx_.rt.NotifyOutbox();
      wrote = true;
    }
    std::lock_guard l(mu_);
    if (auto it = known_.find(id); it != known_.end()) it->second.warned_ends.reset();
  }
  return wrote;
}

void RentalMonitor::Remember(const std::vector<domain::Deployment>& running) {
  std::lock_guard l(mu_);
  std::map<std::string, Known> next;
  for (const auto& d : running) {
    Known k;
    if (auto it = known_.find(d.id); it != known_.end()) k = it->second;
    k.d = d;
    next[d.id] = std::move(k);
  }
  // A rental stopped without the database keeps its stop time until its ending has run.
  for (auto& [id, k] : known_) {
    if (k.stopped_at && next.count(id) == 0 && ctx_.work.Busy(DeploymentKey(id))) {
      next[id] = std::move(k);
    }
  }
  known_ = std::move(next);
}

Status RentalMonitor::CheckOnce(std::stop_token stop) {
  const auto& deps = ctx_.deps;
  const rules::ClockReading now = ctx_.ReadNow();
  auto active = deps.store.ActiveDeployments();
  if (!active.ok()) {
    if (!store_down_) {
      spdlog::error(
          "database unavailable ({}): enforcing warnings and expiry from memory and "
          "Docker until it answers",
          active.error().ToString());
    }
    store_down_ = true;
    EnforceWithoutStore(now, stop);
    return active.error();
  }
  if (store_down_) {
    spdlog::info("database answers again: recording what was enforced without it");
    store_down_ = false;
  }
  if (WriteBack()) {  // rows changed: read them again
    active = deps.store.ActiveDeployments();
    if (!active.ok()) return active.error();
  }
  auto warn = std::chrono::seconds(deps.cfg.deployment.expiry_warning_seconds);
  std::vector<domain::Deployment> running;
  std::vector<domain::Deployment> alive;  // running, not being ended: their disk is measured
  for (auto& d : *active) {
    if (stop.stop_requested()) break;
    if (d.state == DeploymentState::kStopping) {
      QueueEnd(d.id, "", "");  // a half-done ending (Docker was unavailable): finish it
      continue;
    }
    if (d.state != DeploymentState::kRunning) continue;
    if (StoppedAt(d.id)) {  // stopped at expiry without the database: end it as of then
      QueueEnd(d.id, "expired", "rental duration elapsed");
      running.push_back(d);
      continue;
    }
    const milliseconds left = Tick(d, now);
    running.push_back(d);
    if (left <= milliseconds(0)) {
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
    alive.push_back(d);
  }
  if (!stop.stop_requested()) CheckDiskQuotas(alive);
  Remember(running);
  ctx_.rt.active_deployments = static_cast<int>(active->size());
  return OkStatus();
}

}  // namespace taolie::engine
