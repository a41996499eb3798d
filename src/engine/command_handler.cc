#include "engine/command_handler.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/failpoints.h"
#include "common/secrets.h"
#include "engine/admission.h"
#include "engine/container_spec.h"
#include "engine/volume_admission.h"
#include "isolation/rental_isolation.h"
#include "rules/registry_policy.h"

namespace taolie::engine {

using domain::DeploymentState;

namespace {

// The payload's registry_auth as the engine takes it (empty when there is none).
docker::RegistryAuth PullAuth(const rules::DeploySpec& spec) {
  docker::RegistryAuth a;
  if (spec.registry_auth) {
    a.username = spec.registry_auth->username;
    a.password = spec.registry_auth->password;
    a.identity_token = spec.registry_auth->identity_token;
  }
  return a;
}

// The registry rule's view of the config: the allowed list and the agent's own ports.
rules::RegistryPolicy RegistryPolicyFromConfig(const config::Config& cfg) {
  rules::RegistryPolicy p;
  p.allowed_registries = cfg.deployment.allowed_registries;
  p.own_ports = {{cfg.api.port, "API port"},
                 {cfg.network.ports.ssh, "SSH rental port"},
                 {cfg.network.ports.rental_port_1, "rental port 1"},
                 {cfg.network.ports.rental_port_2, "rental port 2"}};
  std::erase_if(p.own_ports, [](const rules::OwnPort& o) { return o.port <= 0; });
  p.range_first = cfg.network.port_range.first;
  p.range_last = cfg.network.port_range.last;
  return p;
}

}  // namespace

std::string PayloadDeploymentId(const store::CommandRecord& cmd) {
  auto j = nlohmann::json::parse(cmd.payload_json, nullptr, false);
  if (j.is_object() && j.contains("deployment_id")) {
    const auto& v = j["deployment_id"];
    std::string id = v.is_string() ? v.get<std::string>() : v.is_number_integer() ? v.dump() : "";
    if (rules::IsValidDeploymentId(id)) return id;
  }
  return cmd.command_id;
}

void CommandHandler::Schedule(const store::CommandRecord& cmd) {
  auto store_copy = cmd;
  if (cmd.command_type == "terminate") {
    std::string id;
    if (auto spec = rules::ParseTerminatePayload(cmd.payload_json); spec.ok()) {
      id = spec->deployment_id;
      if (auto by_cmd = ctx_.deps.store.FindDeploymentByCommand(id);
          by_cmd.ok() && by_cmd->has_value()) {
        id = (*by_cmd)->id;
      }
      // Cancel an in-flight or queued deploy right away, and let its queued job run on the
      // stop lane so that this terminate never waits for a deploy thread.
      if (ctx_.cancels.Cancel(id)) ctx_.work.Promote(DeploymentKey(id));
    } else {
      id = "cmd:" + cmd.command_id;  // rejected on its own
    }
    ctx_.work.Submit(Lane::kStop, "cmd:" + cmd.command_id, DeploymentKey(id),
                     [this, store_copy](std::stop_token st) { Process(store_copy, st); });
    return;
  }
  if (cmd.command_type == "deploy") {
    std::string id = PayloadDeploymentId(cmd);
    // Registered now, so a terminate can cancel the deploy before it starts.
    ctx_.cancels.Register(id, cmd.command_id);
    ctx_.work.Submit(Lane::kDeploy, "cmd:" + cmd.command_id, DeploymentKey(id),
                     [this, store_copy](std::stop_token st) { Process(store_copy, st); });
    return;
  }
  ctx_.work.Submit(Lane::kStop, "cmd:" + cmd.command_id, "cmd:" + cmd.command_id,
                   [this, store_copy](std::stop_token st) { Process(store_copy, st); });
}

void CommandHandler::Process(const store::CommandRecord& cmd, std::stop_token stop) {
  auto current = ctx_.deps.store.GetCommand(cmd.command_id);
  if (current.ok() && current->has_value() && (*current)->state == store::CommandState::kDone) {
    return;
  }
  if (cmd.command_type == "deploy") {
    ProcessDeploy(cmd, stop);
  } else if (cmd.command_type == "terminate") {
    ProcessTerminate(cmd, stop);
  } else {
    spdlog::warn("command {}: unknown command_type '{}', rejected", cmd.command_id,
                 cmd.command_type);
    ctx_.FinishCommand(cmd, "rejected", "unknown command_type '" + cmd.command_type + "'", "");
  }
}

std::string CommandHandler::RejectedDeploymentId(const store::CommandRecord& cmd) const {
  // Report under the payload's deployment_id when it is well-formed and not in use, so the
  // platform can match the failure; otherwise under the command id.
  std::string id = PayloadDeploymentId(cmd);
  if (id == cmd.command_id) return id;
  auto existing = ctx_.deps.store.GetDeployment(id);
  return existing.ok() && !existing->has_value() ? id : cmd.command_id;
}

void CommandHandler::ProcessDeploy(const store::CommandRecord& cmd, std::stop_token stop) {
  const auto& deps = ctx_.deps;
  const auto& cfg = deps.cfg;
  const std::string payload_id = PayloadDeploymentId(cmd);
  // The registration made at Schedule time goes when this job ends, unless the runner took it.
  struct Unregister {
    DeployCancels& c;
    std::string id, cmd;
    ~Unregister() { c.Remove(id, cmd); }
  } unregister{ctx_.cancels, payload_id, cmd.command_id};
  auto cancel = ctx_.cancels.Register(payload_id, cmd.command_id);

  int host_gpus = 8;
  auto gpus = deps.store.ListGpus();
  if (!gpus.ok()) {
    spdlog::warn("deploy {}: store unavailable: {}", cmd.command_id, gpus.error().ToString());
    return;  // stays pending; retried by the next poll/reconcile
  }
  if (!gpus->empty()) host_gpus = static_cast<int>(gpus->size());
  rules::ValidationLimits validation = rules::ValidationLimitsFromConfig(cfg.deployment, host_gpus);
  if (auto f = deps.host.Facts(); f.ok()) {
    validation.max_disk_mb =
        HostDiskQuotaMb(cfg.deployment, f->storage_total_bytes, static_cast<int>(gpus->size()));
  }
  auto parsed = rules::ParseDeployPayload(cmd.command_id, cmd.payload_json, validation);
  if (!parsed.ok()) {
    spdlog::warn("deploy {} rejected: {}", cmd.command_id, parsed.error().message);
    std::string id = RejectedDeploymentId(cmd);
    ctx_.FinishCommand(cmd, "rejected", parsed.error().message, id,
                       {ctx_.events.Failed(id, "validate", parsed.error().message)});
    ctx_.rt.deploys_failed++;
    return;
  }
  rules::DeploySpec spec = std::move(parsed.value());

  // Re-delivered or resumed command: never deploy twice. A deployment_id that belongs to
  // another command is refused, never acked as this command's success.
  auto existing = deps.store.GetDeployment(spec.deployment_id);
  if (!existing.ok()) {
    spdlog::warn("deploy {}: store unavailable: {}", cmd.command_id, existing.error().ToString());
    return;
  }
  if (Status same = CheckDeploymentIdentity(cmd.command_id, spec.deployment_id, *existing);
      !same.ok()) {
    spdlog::warn("deploy {} rejected: {}", cmd.command_id, same.error().message);
    ctx_.FinishCommand(cmd, "rejected", same.error().message, cmd.command_id);
    ctx_.rt.deploys_failed++;
    return;
  }
  if (!existing->has_value()) {
    auto by_cmd = deps.store.FindDeploymentByCommand(cmd.command_id);
    if (by_cmd.ok() && by_cmd->has_value()) existing = std::move(by_cmd);
  }
  // The store's copy of a command never has its registry credentials: this one was read back
  // after a restart, before anything was claimed (with a deployment, the runner decides: a pull
  // still to do fails the same way). The platform's next delivery brings them, but too late.
  if (!existing->has_value() && cmd.registry_auth_withheld && !spec.registry_auth) {
    const std::string why(kRegistryCredentialsLost);
    spdlog::warn("deploy {} failed: {}", spec.deployment_id, why);
    ctx_.FinishCommand(cmd, "failed", why, spec.deployment_id,
                       {ctx_.events.Failed(spec.deployment_id, "pull", why)});
    ctx_.rt.deploys_failed++;
    return;
  }
  if (existing->has_value()) {
    const domain::Deployment& d = **existing;
    if (d.state != DeploymentState::kRunning && d.state != DeploymentState::kEnded &&
        d.state != DeploymentState::kStopping) {
      runner_.Run(d, stop, PullAuth(spec));  // resume a half-done deploy
      return;
    }
    bool ok = d.state == DeploymentState::kRunning ||
              (d.state == DeploymentState::kEnded && d.error_stage.empty());
    ctx_.FinishCommand(cmd, ok ? "succeeded" : "failed",
                       ok ? "" : (d.error.empty() ? "deployment failed" : d.error), d.id);
    return;
  }
  // Drained by the operator: current rentals run on, a new one is refused (a half-done or
  // re-delivered deploy of before the drain was handled above).
  // platform-api.md section 3.1: acked "rejected" with error "draining", nothing created.
  if (ctx_.rt.draining()) {
    spdlog::warn("deploy {} rejected: the host is drained (taolie-host-agent undrain)",
                 spec.deployment_id);
    ctx_.FinishCommand(cmd, "rejected", "draining", spec.deployment_id);
    ctx_.rt.deploys_failed++;
    return;
  }
  if (cancel->stop_requested()) {
    spdlog::info("deploy {}: terminated before it started", cmd.command_id);
    ctx_.FinishCommand(cmd, "failed", "terminated before it started", spec.deployment_id);
    return;
  }
  // Registry rule, before anything is claimed or pulled (outside the admission lock: a name
  // lookup may take a few seconds).
  if (Status reg =
          rules::CheckImageRegistry(spec.image, RegistryPolicyFromConfig(cfg), deps.resolve_host);
      !reg.ok()) {
    spdlog::warn("deploy {} refused: {}", spec.deployment_id, reg.error().message);
    ctx_.FinishCommand(cmd, "failed", reg.error().message, spec.deployment_id,
                       {ctx_.events.Failed(spec.deployment_id, "validate", reg.error().message)});
    ctx_.rt.deploys_failed++;
    return;
  }

  // GPUs freed by an ended rental and still under verification (agent/gpu_cleanliness.h):
  // waited for here, on this deploy's lane and outside the admission lock, rather than refused.
  const auto waits = [&] {
    auto rows = deps.store.ListGpus();
    return rows.ok() && !cancel->stop_requested() &&
           WaitsForGpusUnderVerification(spec, GpuSlotsOf(*rows), [&](const std::string& u) {
             return ctx_.dirty_gpus.UnderVerification(u);
           });
  };
  (void)ctx_.dirty_gpus.WaitWhile(waits, health::kGpuVerificationWait, stop,
                                  "deploy " + spec.deployment_id);

  // Admission: choose GPUs and ports and claim them atomically with the deployment row.
  // Serialised, but only admission: a long pull of one rental never holds up another's.
  std::unique_lock admit(admit_mu_);
  auto refuse = [&](const std::string& why) {
    spdlog::warn("deploy {} refused: {}", spec.deployment_id, why);
    ctx_.FinishCommand(cmd, "failed", why, spec.deployment_id,
                       {ctx_.events.Failed(spec.deployment_id, "validate", why)});
    ctx_.rt.deploys_failed++;
  };
  // Host volumes, resolved on the filesystem and rewritten to their canonical paths; under
  // the admission lock, so two rentals never both get the same host path.
  if (!spec.volumes.empty()) {
    auto running = deps.store.ActiveDeployments();
    if (!running.ok()) {
      spdlog::warn("deploy {}: store unavailable: {} (retried)", spec.deployment_id,
                   running.error().ToString());
      return;
    }
    if (Status vol = AdmitVolumes(cfg, deps.docker.Version(), *running, &spec); !vol.ok()) {
      refuse(vol.error().message);
      return;
    }
  }
  gpus = deps.store.ListGpus();
  auto allocated = deps.store.AllocatedPorts();
  if (!gpus.ok() || !allocated.ok()) {
    spdlog::warn("deploy {}: store unavailable: {} (retried)", spec.deployment_id,
                 (!gpus.ok() ? gpus.error() : allocated.error()).ToString());
    return;
  }
  AdmissionInput in;
  in.spec = &spec;
  in.gpus = GpuSlotsOf(*gpus);
  for (const auto& a : *allocated) in.ports_in_db.insert(a.host_port);
  if (auto f = deps.host.Facts(); f.ok()) {
    in.capacity = rules::HostCapacity{f->ram_total_bytes, f->cpu_logical, 0};
    if (f->storage_total_bytes > 0) in.free_disk.docker_root_bytes = f->storage_available_bytes;
    in.host_disk_quota_mb =
        HostDiskQuotaMb(cfg.deployment, f->storage_total_bytes, static_cast<int>(gpus->size()));
  }
  if (std::string db_dir = ctx_.rt.database_dir(); !db_dir.empty()) {
    if (auto free = deps.host.FreeBytes(db_dir); free.ok()) in.free_disk.database_bytes = *free;
  }
  if (auto active = deps.store.ActiveDeployments(); active.ok()) {
    in.committed = SumCommitted(
        *active, cfg.deployment,
        {in.capacity.ram_bytes, in.capacity.logical_cpus, static_cast<int>(gpus->size())});
  } else {
    spdlog::warn("deploy {}: store unavailable: {} (retried)", spec.deployment_id,
                 active.error().ToString());
    return;
  }
  in.deployment = &cfg.deployment;
  in.named = rules::NamedPorts{cfg.network.ports.ssh, cfg.network.ports.rental_port_1,
                               cfg.network.ports.rental_port_2};
  in.range = rules::PortRangeSpec{cfg.network.port_range.first, cfg.network.port_range.last};
  in.port_in_use = [&](int port) { return deps.host.PortInUse(port); };
  if (const isolation::RentalIsolation* iso = ctx_.rt.isolation();
      iso != nullptr && !iso->AdmitsRentals()) {
    in.isolation_problem = iso->Current().error;
    if (in.isolation_problem.empty()) in.isolation_problem = "not set up yet";
  }
  auto plan = Admit(in);
  if (!plan.ok()) {
    refuse(plan.error().message);
    return;
  }

  domain::Deployment d;
  d.id = spec.deployment_id;
  d.command_id = cmd.command_id;
  d.user_id = spec.user_id;
  d.template_id = spec.template_id;
  d.image = spec.image;
  spec.admitted_memory_bytes = plan->limits.memory_bytes;  // counted in the host's totals
  spec.admitted_nano_cpus = plan->limits.nano_cpus;
  spec.admitted_disk_mb = plan->disk_quota_mb;
  d.spec_json = rules::SpecToJson(spec);
  d.container_name = ContainerName(d.id);
  d.duration_minutes = spec.duration_minutes;
  d.price_per_hour = spec.price_per_hour;
  d.ssh_username = spec.ssh_username;
  d.created_at = deps.clock.Now();
  d.ports = plan->ports;
  auto password = RandomAlnum(24);
  auto token = RandomAlnum(48);
  if (!password.ok() || !token.ok()) {
    spdlog::error("deploy {}: CSPRNG failed", cmd.command_id);
    return;
  }
  d.ssh_password = *password;
  d.jupyter_token = *token;
  store::GpuClaim claim;
  claim.count = plan->gpu_count;
  claim.uuids = plan->gpu_uuids;
  auto created = deps.store.CreateDeployment(d, claim, {});
  if (!created.ok()) {
    if (created.error().code == ErrorCode::kFailedPrecondition) {
      refuse(created.error().message);
    } else {
      spdlog::warn("deploy {}: could not record: {}", d.id, created.error().ToString());
    }
    return;
  }
  ctx_.rt.claims_generation++;
  admit.unlock();
  spdlog::info("deployment {} accepted: image {}, {} GPU(s), {} port(s)", created->id,
               created->image, created->gpu_uuids.size(), created->ports.size());
  Failpoint("after_claim");
  runner_.Run(std::move(*created), stop, PullAuth(spec));
}

void CommandHandler::ProcessTerminate(const store::CommandRecord& cmd, std::stop_token stop) {
  const auto& deps = ctx_.deps;
  auto spec = rules::ParseTerminatePayload(cmd.payload_json);
  if (!spec.ok()) {
    ctx_.FinishCommand(cmd, "rejected", spec.error().message, "");
    return;
  }
  auto found = deps.store.GetDeployment(spec->deployment_id);
  if (found.ok() && !found->has_value()) {
    found = deps.store.FindDeploymentByCommand(spec->deployment_id);
  }
  if (!found.ok()) {
    spdlog::warn("terminate {}: store unavailable: {}", cmd.command_id, found.error().ToString());
    return;
  }
  if (!found->has_value() || (*found)->state == DeploymentState::kEnded) {
    spdlog::info("terminate {}: deployment {} is unknown or already ended", cmd.command_id,
                 spec->deployment_id);
    ctx_.FinishCommand(cmd, "succeeded", "",
                       found->has_value() ? (*found)->id : spec->deployment_id);
    return;
  }
  std::string id = (*found)->id;
  Status st = ender_.End(id, "terminated", spec->reason, stop);
  if (!st.ok()) {
    spdlog::warn("terminate {}: {}", cmd.command_id, st.error().ToString());
    return;  // pending: retried on the next poll (the platform re-delivers) or reconcile
  }
  auto after = deps.store.GetDeployment(id);
  if (after.ok() && after->has_value() && (*after)->state == DeploymentState::kEnded) {
    ctx_.FinishCommand(cmd, "succeeded", "", id);
  }
}

}  // namespace taolie::engine
