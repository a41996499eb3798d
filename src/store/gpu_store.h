#pragma once
// GpuStore: the host's GPUs (gpu_status: one row per physical GPU, keyed by hardware UUID) —
// inventory, health, cleanliness and quarantine — and the XIDs they raised (xid_events, with
// the kernel-log cursor kmsg_cursor) that the health loop judges them by. Claims are not
// here: a GPU is claimed and released with its deployment (DeploymentStore). Every method is
// one transaction.
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::store {

class GpuStore {
 public:
  virtual ~GpuStore() = default;

  // --- GPUs ---
  // Upserts every GPU in `present` (present=true); marks rows not in it present=false.
  // Never touches deployment_id (claims survive re-scans).
  virtual Status SyncGpus(const std::vector<GpuRecord>& present) = 0;
  virtual Result<std::vector<GpuRecord>> ListGpus() = 0;  // ordered by index
  virtual Status SetGpuHealth(const std::string& uuid, GpuHealthState health) = 0;
  // A dirty GPU (released by an ended rental: UpdateDeployment) is idle again: claimable.
  virtual Status MarkGpuClean(const std::string& uuid) = 0;
  // Quarantines a GPU (kept since the first time; the reason is the latest; needs_reset is
  // only ever added here), or releases it (quarantine and needs_reset cleared).
  // `events` (e.g. the rental's gpu_failed) are queued in the same transaction.
  virtual Status QuarantineGpu(const std::string& uuid, const std::string& reason, bool needs_reset,
                               const std::vector<OutboxEvent>& events) = 0;
  virtual Status ReleaseGpu(const std::string& uuid) = 0;
  // The GPU was reset (reset_at = now): it no longer waits for one, and XIDs from before no
  // longer count (it stays quarantined until released).
  virtual Status MarkGpuReset(const std::string& uuid) = 0;

  // --- XIDs ---
  // Records the XIDs (each attributed to the rental holding its GPU now) and, when given, the
  // kernel-log cursor they were read up to, in one transaction: a restart reads on from there.
  virtual Status RecordXids(const std::vector<XidRecord>& xids,
                            const std::optional<KmsgCursorRow>& cursor) = 0;
  virtual Result<std::optional<KmsgCursorRow>> KmsgCursor() = 0;
  virtual Result<std::vector<XidRecord>> XidsSince(SystemTime since) = 0;  // oldest first
};

}  // namespace taolie::store
