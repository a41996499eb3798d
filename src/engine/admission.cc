#include "engine/admission.h"

#include <algorithm>
#include <cmath>

namespace taolie::engine {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kNanoPerCpu = 1'000'000'000;
constexpr int64_t kMinDefaultNanoCpus = kNanoPerCpu / 10;  // a default is not cut below this

std::string Percent(double part, double whole) {
  return std::to_string(static_cast<int64_t>(std::llround(part * 100.0 / whole))) + "%";
}

std::string Cores(int64_t nano) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(nano) / kNanoPerCpu);
  return buf;
}

// Fits `*want` into what is left of `budget` after `committed`. A request that does not fit is
// an error; a default is cut to what is left, unless that is under `floor`.
Status FitTotal(bool requested, int64_t committed, int64_t budget, int64_t floor, int64_t* want,
                const std::function<std::string(int64_t)>& describe, const std::string& what,
                double share) {
  if (*want <= 0 || budget <= 0) return OkStatus();  // no limit, or the host size is unknown
  int64_t left = std::max<int64_t>(0, budget - committed);
  if (*want <= left) return OkStatus();
  if (!requested && left >= floor) {
    *want = left;
    return OkStatus();
  }
  return MakeError(ErrorCode::kFailedPrecondition,
                   what + ": " + describe(*want) + (requested ? " requested" : " by default") +
                       " but " + describe(committed) +
                       " is already committed to rentals (at most " + Percent(share, 1.0) +
                       " may be)");
}

Status CheckFreeDisk(const std::optional<uint64_t>& free, double min_gb, const char* where) {
  if (!free || min_gb <= 0) return OkStatus();
  double free_gb = static_cast<double>(*free) / (1024.0 * 1024.0 * 1024.0);
  if (free_gb >= min_gb) return OkStatus();
  char buf[160];
  std::snprintf(buf, sizeof buf, "disk: %.1f GiB free on %s, under deployment.min_free_disk_gb %g",
                free_gb, where, min_gb);
  return MakeError(ErrorCode::kFailedPrecondition, buf);
}

// The totals: count, disk, memory and CPUs. Cuts default limits to what is left.
Status CheckTotals(const AdmissionInput& in, rules::ResourceLimits* limits) {
  const config::DeploymentConfig& cfg = *in.deployment;
  const rules::DeploySpec& spec = *in.spec;
  if (cfg.max_deployments > 0 && in.committed.rentals >= cfg.max_deployments) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "max_deployments: " + std::to_string(in.committed.rentals) +
                         " rental(s) already run here, the most this host takes is " +
                         std::to_string(cfg.max_deployments));
  }
  TAOLIE_RETURN_IF_ERROR(
      CheckFreeDisk(in.free_disk.docker_root_bytes, cfg.min_free_disk_gb, "Docker's data root"));
  TAOLIE_RETURN_IF_ERROR(CheckFreeDisk(in.free_disk.database_bytes, cfg.min_free_disk_gb,
                                       "the database's filesystem"));
  const double share = cfg.max_committed_share;
  const double ram = static_cast<double>(in.capacity.ram_bytes);
  if (in.capacity.ram_bytes > 0) {
    auto describe = [&](int64_t b) {
      return std::to_string(b / kMiB) + " MiB (" + Percent(static_cast<double>(b), ram) +
             " of RAM)";
    };
    int64_t budget = static_cast<int64_t>(std::floor(ram * share));
    TAOLIE_RETURN_IF_ERROR(FitTotal(spec.memory_limit_mb.has_value(), in.committed.memory_bytes,
                                    budget, rules::kMinMemoryBytes, &limits->memory_bytes, describe,
                                    "memory", share));
    if (!spec.memory_limit_mb) limits->memory_bytes = limits->memory_bytes / kMiB * kMiB;
  }
  if (in.capacity.logical_cpus > 0) {
    const double cpus = in.capacity.logical_cpus;
    auto describe = [&](int64_t n) {
      return Cores(n) + " CPUs (" + Percent(static_cast<double>(n) / kNanoPerCpu, cpus) +
             " of the host's)";
    };
    auto budget = static_cast<int64_t>(std::floor(cpus * share * kNanoPerCpu));
    TAOLIE_RETURN_IF_ERROR(FitTotal(spec.cpu_limit.has_value(), in.committed.nano_cpus, budget,
                                    kMinDefaultNanoCpus, &limits->nano_cpus, describe, "cpu",
                                    share));
  }
  // Shared memory is charged to the memory limit: a cut memory limit cuts a default shm too.
  if (!spec.shm_size_mb && limits->memory_bytes > 0) {
    limits->shm_bytes = std::min(limits->shm_bytes, limits->memory_bytes);
  }
  return OkStatus();
}

}  // namespace

std::vector<GpuSlot> GpuSlotsOf(const std::vector<store::GpuRecord>& rows) {
  std::vector<GpuSlot> out;
  out.reserve(rows.size());
  for (const auto& g : rows) {
    out.push_back({g.uuid, g.present, g.health, g.deployment_id, g.dirty_since.has_value()});
  }
  return out;
}

bool WaitsForGpusUnderVerification(
    const rules::DeploySpec& spec, const std::vector<GpuSlot>& gpus,
    const std::function<bool(const std::string& uuid)>& under_verification) {
  auto could_be_free = [](const GpuSlot& g) {
    return g.present && g.deployment_id.empty() && domain::Rentable(g.health);
  };
  if (!spec.gpu_uuids.empty()) {
    bool waits = false;
    for (const auto& uuid : spec.gpu_uuids) {
      auto g =
          std::find_if(gpus.begin(), gpus.end(), [&](const GpuSlot& s) { return s.uuid == uuid; });
      if (g == gpus.end() || !could_be_free(*g)) return false;  // refused whatever happens
      if (g->dirty) {
        if (!under_verification(uuid)) return false;
        waits = true;
      }
    }
    return waits;
  }
  if (spec.gpu_count <= 0) return false;
  int free = 0;
  int verifying = 0;
  for (const auto& g : gpus) {
    if (!could_be_free(g)) continue;
    if (!g.dirty) {
      ++free;
    } else if (under_verification(g.uuid)) {
      ++verifying;
    }
  }
  return spec.gpu_count > free && spec.gpu_count <= free + verifying;
}

Result<AdmissionPlan> Admit(const AdmissionInput& in) {
  const rules::DeploySpec& spec = *in.spec;
  if (!in.isolation_problem.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "host cannot isolate rentals: " + in.isolation_problem);
  }
  AdmissionPlan plan;
  plan.gpu_count = spec.gpu_uuids.empty() ? spec.gpu_count : 0;
  plan.gpu_uuids = spec.gpu_uuids;
  rules::HostCapacity cap = in.capacity;
  if (cap.total_gpus == 0) cap.total_gpus = static_cast<int>(in.gpus.size());
  int claimed = spec.gpu_uuids.empty() ? spec.gpu_count : static_cast<int>(spec.gpu_uuids.size());
  // Resource requests beyond this host's caps are refused here, before anything is claimed.
  auto limits = rules::ComputeLimits(spec, *in.deployment, cap, claimed);
  if (!limits.ok()) return MakeError(ErrorCode::kFailedPrecondition, limits.error().message);
  plan.limits = *limits;

  if (plan.gpu_uuids.empty() && plan.gpu_count > 0) {
    int free = 0;
    for (const auto& g : in.gpus) {
      if (g.present && g.deployment_id.empty() && !g.dirty && domain::Rentable(g.health)) ++free;
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
    if (slot->dirty) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "gpu_uuids: " + uuid +
                           " is dirty: the last rental's processes or memory are still on it");
    }
    if (!domain::Rentable(slot->health)) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "gpu_uuids: " + uuid + " is " + domain::GpuHealthStateName(slot->health));
    }
  }

  // The totals over every rental come after the GPUs: with no GPU free, that is the reason.
  if (Status totals = CheckTotals(in, &plan.limits); !totals.ok()) return totals.error();
  plan.disk_quota_mb = spec.disk_mb.value_or(in.host_disk_quota_mb);
  if (in.host_disk_quota_mb > 0 && plan.disk_quota_mb > in.host_disk_quota_mb) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "disk_mb: " + std::to_string(plan.disk_quota_mb) +
                         " exceeds this host's disk quota of " +
                         std::to_string(in.host_disk_quota_mb) + " MiB");
  }

  std::vector<int> container_ports;
  for (const auto& p : spec.ports) container_ports.push_back(p.container_port);
  auto ports = rules::AllocatePorts(container_ports, in.named, in.range, [&](int port) {
    return in.ports_in_db.count(port) > 0 || (in.port_in_use && in.port_in_use(port));
  });
  if (!ports.ok()) return MakeError(ErrorCode::kFailedPrecondition, ports.error().message);
  plan.ports = std::move(*ports);
  return plan;
}

CommittedResources SumCommitted(const std::vector<domain::Deployment>& active,
                                const config::DeploymentConfig& cfg,
                                const rules::HostCapacity& host) {
  CommittedResources out;
  for (const auto& d : active) {
    if (d.state == domain::DeploymentState::kEnded) continue;
    ++out.rentals;
    auto spec = rules::SpecFromJson(d.spec_json);
    if (!spec.ok()) continue;  // unreadable: counted, holds nothing known
    rules::ResourceLimits l;
    l.memory_bytes = spec->admitted_memory_bytes;
    l.nano_cpus = spec->admitted_nano_cpus;
    if (l.memory_bytes == 0 && l.nano_cpus == 0) {
      if (auto again = rules::ComputeLimits(*spec, cfg, host, static_cast<int>(d.gpu_uuids.size()));
          again.ok()) {
        l = *again;
      }
    }
    out.memory_bytes += l.memory_bytes;
    out.nano_cpus += l.nano_cpus;
  }
  return out;
}

rules::ResourceLimits AdmittedLimits(const rules::DeploySpec& spec,
                                     rules::ResourceLimits computed) {
  if (spec.admitted_memory_bytes > 0) computed.memory_bytes = spec.admitted_memory_bytes;
  if (spec.admitted_nano_cpus > 0) computed.nano_cpus = spec.admitted_nano_cpus;
  if (!spec.shm_size_mb && computed.memory_bytes > 0) {
    computed.shm_bytes = std::min(computed.shm_bytes, computed.memory_bytes);
  }
  return computed;
}

int64_t HostDiskQuotaMb(const config::DeploymentConfig& cfg, uint64_t docker_root_total_bytes,
                        int host_gpus) {
  if (cfg.disk_quota_mb > 0) return cfg.disk_quota_mb;
  auto share = static_cast<double>(docker_root_total_bytes) * 0.8 / std::max(1, host_gpus);
  return static_cast<int64_t>(share) / kMiB;
}

Status CheckDeploymentIdentity(const std::string& command_id, const std::string& deployment_id,
                               const std::optional<domain::Deployment>& existing) {
  if (!existing || existing->command_id == command_id) return OkStatus();
  return MakeError(
      ErrorCode::kInvalidArgument,
      "deployment_id: " + deployment_id + " already belongs to another command's deployment");
}

}  // namespace taolie::engine
