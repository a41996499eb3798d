#pragma once
// DeploymentStore: the rentals (deployments), the GPUs they claim (gpu_status.deployment_id)
// and the host ports they hold (port_allocations). The rental engine creates, adopts, updates
// and reads them; a claim and its release are written in the same transaction as the
// deployment's state, with the events that report it. Every method is one transaction.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::store {

struct GpuClaim {
  int count = 0;                   // used when uuids is empty
  std::vector<std::string> uuids;  // named GPUs; all must be free and healthy/warning
  // The named GPUs are already in use by a running container (adoption): claimed whatever
  // their health or presence; only another deployment's claim is a conflict.
  bool in_use = false;
};

class DeploymentStore {
 public:
  virtual ~DeploymentStore() = default;

  // Inserts the deployment (state kAccepted), claims GPUs (gpu_status.deployment_id) and
  // inserts its port allocations, plus `events`. On conflict (GPU taken, port taken, id exists)
  // nothing is written: FailedPrecondition (resources) or AlreadyExists (id).
  // Returns the record with gpu_uuids filled with the GPUs actually claimed.
  virtual Result<Deployment> CreateDeployment(const Deployment& d, const GpuClaim& claim,
                                              const std::vector<OutboxEvent>& events) = 0;
  // A container found running without a row (the database was lost): inserts `d` as it is
  // (state, container, times, rental clock, ready_elapsed_ms), claims its GPUs in use
  // (GpuClaim::in_use) and its ports, in one transaction. Conflicts as CreateDeployment.
  virtual Result<Deployment> AdoptDeployment(const Deployment& d) = 0;
  // Writes every mutable field of `d` (state, container_id, times, secrets, end_*, error*),
  // plus `events`. If d.state == kEnded it also releases d's GPUs and ports and blanks the
  // environment values (names kept) of the stored spec_json and of its command's payload.
  virtual Status UpdateDeployment(const Deployment& d, const std::vector<OutboxEvent>& events) = 0;
  virtual Result<std::optional<Deployment>> GetDeployment(const std::string& id) = 0;
  virtual Result<std::optional<Deployment>> FindDeploymentByCommand(
      const std::string& command_id) = 0;
  // Deployments whose state != kEnded, oldest first.
  virtual Result<std::vector<Deployment>> ActiveDeployments() = 0;
  virtual Result<std::vector<Deployment>> RecentDeployments(int limit) = 0;  // newest first
  virtual Result<std::vector<PortAllocation>> AllocatedPorts() = 0;
  // The latest deployments.created_at of each image reference any rental used (image GC).
  virtual Result<std::map<std::string, SystemTime>> ImageLastUse() = 0;
  // Writes only the rental's clock (clock_* and elapsed_ms), and only forward.
  virtual Status SaveDeploymentClock(const Deployment& d) = 0;
  // Sets ssh_password = NULL and jupyter_token = ''; later updates from a stale copy never
  // restore either. (MarkEventDone does it too, for a `success` event, in its transaction.)
  virtual Status ScrubSecrets(const std::string& deployment_id) = 0;
};

}  // namespace taolie::store
