#include "engine/deployment_runner.h"

#include <spdlog/spdlog.h>

#include "common/failpoints.h"
#include "docker/engine_api.h"
#include "engine/admission.h"
#include "engine/container_spec.h"
#include "engine/pull_tracker.h"
#include "isolation/rental_isolation.h"
#include "isolation/rental_network.h"
#include "platform/messages.h"
#include "rules/limits.h"
#include "rules/registry_policy.h"

namespace taolie::engine {

using domain::DeploymentState;

void DeploymentRunner::RunById(const std::string& deployment_id, std::stop_token stop) {
  auto found = ctx_.deps.store.GetDeployment(deployment_id);
  if (!found.ok()) {
    spdlog::warn("deployment {}: store unavailable: {} (retried)", deployment_id,
                 found.error().ToString());
    return;
  }
  if (!found->has_value()) return;
  Run(**found, stop);
}

void DeploymentRunner::Fail(domain::Deployment& d, const std::string& stage,
                            const std::string& error) {
  spdlog::warn("deployment {} failed at {}: {}", d.id, stage, error);
  // Intent first: the container must go before the GPU and ports are handed out again.
  d.error_stage = stage;
  d.error = error;
  d.end_status = "failed";
  d.end_reason = stage + ": " + error;
  d.state = DeploymentState::kStopping;
  if (Status st = ctx_.deps.store.UpdateDeployment(d, {}); !st.ok()) {
    spdlog::error("deployment {}: could not record failure: {}", d.id, st.error().ToString());
    return;
  }
  // When Docker is unavailable the deployment stays in kStopping and the monitor retries.
  if (Status st = ender_.End(d.id, "failed", d.end_reason, std::stop_token()); !st.ok()) {
    spdlog::error("deployment {}: cleanup after failure incomplete: {} (retried)", d.id,
                  st.error().ToString());
    return;
  }
  ctx_.rt.deploys_failed++;
  ctx_.FinishPendingCommand(d.command_id, "failed", d.end_reason, d.id);
}

void DeploymentRunner::Run(domain::Deployment d, std::stop_token stop,
                           const docker::RegistryAuth& auth) {
  const auto& deps = ctx_.deps;
  if (d.state == DeploymentState::kRunning || d.state == DeploymentState::kStopping ||
      d.state == DeploymentState::kEnded) {
    return;
  }
  auto spec_r = rules::SpecFromJson(d.spec_json);
  if (!spec_r.ok()) {
    Fail(d, "validate", "stored spec unreadable: " + spec_r.error().message);
    return;
  }
  const rules::DeploySpec& spec = *spec_r;

  // Own stop source: a terminate cancels this deploy; agent shutdown only pauses it.
  auto cancel = ctx_.cancels.Register(d.id, d.command_id);
  std::stop_callback on_shutdown(stop, [cancel] { cancel->request_stop(); });
  struct Unregister {
    DeployCancels& c;
    std::string id, cmd;
    ~Unregister() { c.Remove(id, cmd); }
  } unregister{ctx_.cancels, d.id, d.command_id};
  std::stop_token st = cancel->get_token();

  auto interrupted = [&]() -> bool {
    if (!st.stop_requested()) return false;
    if (stop.stop_requested()) {
      spdlog::info("deployment {}: paused at {} by shutdown; resumed at next start", d.id,
                   domain::DeploymentStateName(d.state));
      return true;
    }
    spdlog::info("deployment {}: terminated while deploying", d.id);
    ctx_.cancels.Remove(d.id, d.command_id);
    if (Status s = ender_.End(d.id, "terminated", "terminated while deploying", std::stop_token());
        !s.ok()) {
      spdlog::warn("deployment {}: {}", d.id, s.error().ToString());
    }
    ctx_.FinishPendingCommand(d.command_id, "failed", "terminated while deploying", d.id);
    return true;
  };
  auto save = [&](std::vector<store::OutboxEvent> ev = {}) -> bool {
    d.updated_at = deps.clock.Now();
    Status s = deps.store.UpdateDeployment(d, ev);
    if (!s.ok()) spdlog::error("deployment {}: store write failed: {}", d.id, s.error().ToString());
    return s.ok();
  };

  bool repulled = false;
  // The pull: progress at info at most every PullTracker::kProgressLogInterval and at the end,
  // and on the status page while it lasts.
  auto pull = [&]() -> Status {
    spdlog::info("deployment {}: pulling {}", d.id, d.image);
    PullTracker tracker(d.image, deps.clock);
    PullBoardEntry on_board(ctx_.pulls, d.id);
    ctx_.pulls.Set(d.id, tracker.Snapshot());
    Status pulled = deps.docker.Pull(
        d.image,
        [&](const docker::PullProgress& p) {
          const bool due = tracker.Add(p);
          const PullSnapshot s = tracker.Snapshot();
          ctx_.pulls.Set(d.id, s);
          if (due) spdlog::info("deployment {}: pulling {}: {}", d.id, d.image, DescribePull(s));
        },
        st, auth);
    const PullSnapshot s = tracker.Snapshot();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(s.elapsed).count();
    if (pulled.ok()) {
      spdlog::info("deployment {}: pulled {} in {} s: {}", d.id, d.image, secs,
                   DescribePull(s, s.average_bytes_per_s()));
    } else {
      spdlog::info("deployment {}: pull of {} ended after {} s at {}", d.id, d.image, secs,
                   DescribePull(s, s.average_bytes_per_s()));
    }
    return pulled;
  };
  while (true) {
    if (interrupted()) return;
    switch (d.state) {
      case DeploymentState::kAccepted:
        d.state = DeploymentState::kPulling;
        if (!save()) return;
        break;
      case DeploymentState::kPulling: {
        if (auth.empty()) {
          // Credentials live in memory only (never in the store): a command that came with
          // some and is resumed after a restart without them cannot pull.
          auto cmd = deps.store.GetCommand(d.command_id);
          if (!cmd.ok()) {
            spdlog::warn("deployment {}: store unavailable: {} (retried)", d.id,
                         cmd.error().ToString());
            return;
          }
          if (cmd->has_value() && (*cmd)->registry_auth_withheld) {
            Fail(d, "pull", std::string(kRegistryCredentialsLost));
            return;
          }
        }
        Status pulled = pull();
        if (interrupted()) return;
        if (!pulled.ok()) {
          // Only an image the owner listed for prefetch may come from the local copy.
          bool listed = rules::IsListedImage(d.image, deps.cfg.docker.prefetch_images);
          auto present = listed ? deps.docker.ImageExists(d.image) : Result<bool>(false);
          if (present.ok() && *present) {
            spdlog::warn("deployment {}: pull failed ({}), using the local copy of {}", d.id,
                         pulled.error().message, d.image);
          } else {
            Fail(d, "pull", pulled.error().message);
            return;
          }
        }
        d.state = DeploymentState::kCreating;
        // The rental's time starts now, on the monotonic clock; expires_at is the wall time
        // it is expected to end at (shown to the renter and the platform).
        rules::SetCheckpoint(d, rules::StartClock(ctx_.ReadNow()));
        d.expires_at = d.clock_wall + std::chrono::minutes(d.duration_minutes);
        if (!save()) return;
        Failpoint("after_pull");
        break;
      }
      case DeploymentState::kCreating: {
        host::HostFacts facts;
        if (auto f = deps.host.Facts(); f.ok()) facts = *f;
        auto gpus = deps.store.ListGpus();
        rules::HostCapacity cap{facts.ram_total_bytes, facts.cpu_logical,
                                gpus.ok() ? static_cast<int>(gpus->size()) : 0};
        auto limits = rules::ComputeLimits(spec, deps.cfg.deployment, cap,
                                           static_cast<int>(d.gpu_uuids.size()));
        if (!limits.ok()) {
          Fail(d, "create", limits.error().message);
          return;
        }
        ContainerSpecInput in;
        in.deployment = &d;
        in.spec = &spec;
        in.limits = AdmittedLimits(spec, *limits);
        in.agent_id = ctx_.rt.agent_id();
        in.deployment_cfg = &deps.cfg.deployment;
        in.bind_ip = deps.cfg.network.bind_ip;
        if (const isolation::RentalIsolation* iso = ctx_.rt.isolation();
            iso != nullptr && iso->Current().network_ready) {
          in.network = isolation::kRentalNetworkName;
        }
        using StorageOpt = runtime::Runtime::StorageOpt;
        in.storage_opt = ctx_.rt.storage_opt.load() != StorageOpt::kRefused;
        docker::ContainerSpec cs = BuildContainerSpec(in);
        // A crash after create but before recording leaves a container with our name: adopt it.
        auto existing = deps.docker.Inspect(d.container_name);
        if (existing.ok() && existing->labels.count(kLabelDeployment) > 0 &&
            existing->labels.at(kLabelDeployment) == d.id) {
          d.container_id = existing->id;
        } else {
          if (existing.ok()) {
            Fail(d, "create", "a container named " + d.container_name + " exists and is not ours");
            return;
          }
          auto id = deps.docker.Create(cs);
          if (!id.ok() && cs.storage_size_bytes > 0 &&
              docker::IsStorageOptUnsupported(id.error().message)) {
            // Once per agent: the quota is measured each monitor round instead.
            if (ctx_.rt.storage_opt.exchange(StorageOpt::kRefused) != StorageOpt::kRefused) {
              spdlog::warn(
                  "disk quotas: the storage driver has no StorageOpt size ({}); each rental's "
                  "disk use is measured every monitor round instead",
                  id.error().message);
            }
            cs.storage_size_bytes = 0;
            id = deps.docker.Create(cs);
          } else if (id.ok() && cs.storage_size_bytes > 0) {
            ctx_.rt.storage_opt.store(StorageOpt::kSupported);
          }
          if (!id.ok() && !repulled && docker::IsNoSuchImage(id.error().message)) {
            // Removed between the pull and the create (by the owner, or an image collection
            // that read the store before this rental was accepted): pulled once more.
            spdlog::warn("deployment {}: {} is gone since its pull; pulling it again", d.id,
                         d.image);
            repulled = true;
            if (Status again = pull(); !again.ok()) {
              if (interrupted()) return;
              Fail(d, "pull", again.error().message);
              return;
            }
            if (interrupted()) return;
            id = deps.docker.Create(cs);
          }
          if (!id.ok()) {
            Fail(d, "create", id.error().message);
            return;
          }
          d.container_id = *id;
        }
        d.state = DeploymentState::kStarting;
        if (!save()) return;
        Failpoint("after_create");
        break;
      }
      case DeploymentState::kStarting: {
        Status started = deps.docker.Start(d.container_id);
        if (!started.ok()) {
          Fail(d, "start", started.error().message);
          return;
        }
        d.state = DeploymentState::kReadiness;
        if (!save()) return;
        Failpoint("after_start");
        break;
      }
      case DeploymentState::kReadiness: {
        // What is reported is what the engine really bound.
        auto info = deps.docker.Inspect(d.container_id);
        if (!info.ok()) {
          Fail(d, "start", info.error().message);
          return;
        }
        for (const auto& p : d.ports) {
          bool found = false;
          for (const auto& b : info->ports) {
            if (b.container_port == p.container_port && b.host_port == p.host_port) found = true;
          }
          if (!found) {
            Fail(d, "start",
                 "port " + std::to_string(p.host_port) + " for container port " +
                     std::to_string(p.container_port) + " is not bound");
            return;
          }
        }
        std::string why;
        ReadinessOptions ro;
        ro.bind_ip = deps.cfg.network.bind_ip;
        ro.timeout = std::chrono::seconds(deps.cfg.deployment.readiness_timeout_seconds);
        ro.require_ssh = deps.cfg.deployment.require_ssh;
        Status ready = WaitUntilReady(d, ro, ctx_.probe, deps.docker, deps.clock, st, &why);
        if (interrupted()) return;
        if (!ready.ok()) {
          Fail(d, "readiness", why);
          return;
        }
        rules::ElapsedNow at_ready = rules::Advance(rules::CheckpointOf(d), ctx_.ReadNow());
        rules::SetCheckpoint(d, at_ready.checkpoint);
        d.ready_elapsed_ms = at_ready.elapsed_ms;
        d.started_at = at_ready.checkpoint.wall;
        d.state = DeploymentState::kRunning;
        const auto left = std::chrono::minutes(d.duration_minutes) -
                          std::chrono::milliseconds(at_ready.elapsed_ms);
        platform::AccessInfo access;
        access.public_ip = deps.cfg.network.public_ip;
        access.ssh_username = d.ssh_username;
        access.ssh_password = d.ssh_password.value_or("");
        access.jupyter_token = d.jupyter_token;
        for (const auto& p : d.ports) {
          access.port_mappings[p.container_port] = p.host_port;
          if (p.container_port == 22) access.ssh_port = p.host_port;
          if (p.role == "rental_port_1") access.jupyter_host_port = p.host_port;
          if (p.role == "rental_port_2") access.custom_host_port = p.host_port;
        }
        Failpoint("before_success_event");
        auto body =
            platform::BuildSuccessBody(d.id, d.container_id, access, d.gpu_uuids, *d.started_at,
                                       *d.started_at + left, ctx_.events.ts());
        if (!save({ctx_.events.Deployment(d.id, domain::EventKind::kSuccess, body, false)})) {
          return;
        }
        ctx_.rt.deploys_succeeded++;
        ctx_.rt.NotifyOutbox();
        spdlog::info("deployment {} running: container {}, expires {}", d.id,
                     d.container_id.substr(0, 12), FormatRfc3339(*d.expires_at));
        Failpoint("after_success_event");
        ctx_.FinishPendingCommand(d.command_id, "succeeded", "", d.id);
        return;
      }
      case DeploymentState::kRunning:
      case DeploymentState::kStopping:
      case DeploymentState::kEnded:
        return;
    }
  }
}

}  // namespace taolie::engine
