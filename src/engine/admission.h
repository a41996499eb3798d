#pragma once
// Admission: may this host take this rental, and with what? Pure: a validated deploy spec and
// the host's state in, a claim plan (GPUs, host ports, resource limits) or a refusal out.
// The caller claims the plan atomically with the deployment row.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "domain/deployment.h"
#include "domain/enums.h"
#include "rules/deploy_spec.h"
#include "rules/limits.h"
#include "rules/port_policy.h"
#include "store/records.h"

namespace taolie::engine {

struct GpuSlot {  // one GPU as admission sees it
  std::string uuid;
  bool present = true;
  domain::GpuHealthState health = domain::GpuHealthState::kHealthy;
  std::string deployment_id;  // "" = free
  bool dirty = false;  // released by an ended rental, not yet idle (gpu_cleanliness.h): not free
};

// What the rentals already on this host hold: their number and the memory and CPU limits
// admission granted them (SumCommitted).
struct CommittedResources {
  int rentals = 0;
  int64_t memory_bytes = 0;
  int64_t nano_cpus = 0;
};

// Free space where rentals and the database write; nullopt = not known (not checked).
struct FreeDisk {
  std::optional<uint64_t> docker_root_bytes;
  std::optional<uint64_t> database_bytes;
};

struct AdmissionInput {
  const rules::DeploySpec* spec = nullptr;
  std::vector<GpuSlot> gpus;
  std::set<int> ports_in_db;     // host ports held by other deployments
  rules::HostCapacity capacity;  // total_gpus is filled from `gpus` when 0
  const config::DeploymentConfig* deployment = nullptr;
  rules::NamedPorts named;
  rules::PortRangeSpec range;
  std::function<bool(int)> port_in_use;  // is the host port bound by something else?
  // Why the host cannot isolate rentals now (rental_isolation.h), "" when it can or the owner
  // waived it (deployment.require_isolation: false).
  std::string isolation_problem;
  CommittedResources committed;  // by the other rentals (every deployment not yet ended)
  FreeDisk free_disk;
  int64_t host_disk_quota_mb = 0;  // HostDiskQuotaMb; 0 = no quota
};

struct AdmissionPlan {
  int gpu_count = 0;                   // claim this many free GPUs (when gpu_uuids is empty)
  std::vector<std::string> gpu_uuids;  // or exactly these
  std::vector<domain::PortAllocation> ports;
  rules::ResourceLimits limits;
  int64_t disk_quota_mb = 0;  // the rental's disk quota (payload disk_mb, else the host's)
};

// FailedPrecondition with a reason a renter can read ("gpu_count: 2 requested but only 1
// healthy GPU(s) are free", "no free host port ...", a limit above the host cap ...).
Result<AdmissionPlan> Admit(const AdmissionInput& in);

// Totals: deployment.max_deployments (0 = no limit) counts rentals; memory and CPU limits
// summed over the rentals stay within deployment.max_committed_share of the host's RAM and
// logical CPUs. A request (memory_limit_mb, cpu_limit) that does not fit is refused; a default
// size (limits.h) is cut to what is left, and refused when less than 256 MiB or 0.1 core is.
// So N rentals sized by default are admitted until the share is used up, and the next is
// refused. Disk: no new rental while Docker's data root or the database's filesystem has less
// than deployment.min_free_disk_gb free.
// The committed totals of `active` (deployments not ended): admitted limits from their spec,
// or, for a row from before admission recorded them, its limits computed again.
CommittedResources SumCommitted(const std::vector<domain::Deployment>& active,
                                const config::DeploymentConfig& cfg,
                                const rules::HostCapacity& host);

// The limits a created container gets: computed again from the spec, with the memory and CPU
// limits admission granted (a default cut to what was left stays cut).
rules::ResourceLimits AdmittedLimits(const rules::DeploySpec& spec, rules::ResourceLimits computed);

// Disk quota per rental: deployment.disk_quota_mb, else 80% of Docker's data root divided by
// max(1, GPUs on the host), in MiB (0 = unknown size: no quota).
int64_t HostDiskQuotaMb(const config::DeploymentConfig& cfg, uint64_t docker_root_total_bytes,
                        int host_gpus);

// The store's GPU rows as admission sees them.
std::vector<GpuSlot> GpuSlotsOf(const std::vector<store::GpuRecord>& rows);

// Whether a deploy refused for want of GPUs now would be admitted once GPUs under verification
// (freed by an ended rental, dirty, not held back: `under_verification`) are found clean: by
// count, when the free clean GPUs are too few but enough with those; by name, when a named
// GPU is free but under verification. The deploy then waits for them (issue 17 item 7).
bool WaitsForGpusUnderVerification(
    const rules::DeploySpec& spec, const std::vector<GpuSlot>& gpus,
    const std::function<bool(const std::string& uuid)>& under_verification);

// A deploy's deployment_id must be new, or belong to this very command (a re-delivery or a
// resume). One that belongs to another command is refused: InvalidArgument with the reason.
Status CheckDeploymentIdentity(const std::string& command_id, const std::string& deployment_id,
                               const std::optional<domain::Deployment>& existing);

}  // namespace taolie::engine
