#pragma once
// Store seam: the agent's durable state. PgStore implements it on PostgreSQL via libpq.
// Every method is one transaction. Methods that take `events` append them to the outbox in
// the same transaction as the state change (crash safety: the change and its report are one).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::store {

// The first undelivered event of one ordering group of the outbox, with its retry state.
// Ordering groups: all events of one deployment form one group, delivered strictly in id
// order (platform-api.md §7: "in order per deployment"). Every ack, and any event without a
// deployment, is a group of its own: acks never wait behind any deployment's events (the
// platform re-delivers a command until it is acked, and an ack may overtake its deployment's
// `success`, which the platform accepts in any order).
struct OutboxHead {
  OutboxEvent event;
  std::optional<SystemTime> next_attempt_at;  // earliest retry after a failure; none: never failed
  std::optional<SystemTime> first_failed_at;  // first failed attempt
  bool end_pending = false;  // the same deployment has a later undelivered terminated/failed
};

struct GpuClaim {
  int count = 0;                   // used when uuids is empty
  std::vector<std::string> uuids;  // named GPUs; all must be free and healthy/warning
  // The named GPUs are already in use by a running container (adoption): claimed whatever
  // their health or presence; only another deployment's claim is a conflict.
  bool in_use = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- agent state (key/value) ---
  virtual Result<std::optional<std::string>> GetState(const std::string& key) = 0;
  virtual Status SetState(const std::string& key, const std::string& value) = 0;

  // --- GPUs (gpu_status: one row per physical GPU, keyed by hardware UUID) ---
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

  // --- commands (command_queue) ---
  // Inserts a new command (state pending) and returns true; for a known command_id only
  // increments times_seen and returns false. The payload is stored without its top-level
  // registry_auth (registry_auth_withheld says there was one): credentials live in memory only.
  virtual Result<bool> RecordCommand(const CommandRecord& command) = 0;
  virtual Result<std::optional<CommandRecord>> GetCommand(const std::string& command_id) = 0;
  virtual Result<std::vector<CommandRecord>> PendingCommands(int limit) = 0;  // oldest first
  // state=done with result/error/deployment_id, processed_at=now; and `events` (the ack).
  // The stored payload's environment values are blanked (names kept): a done command's
  // payload is a record, never read to run anything.
  virtual Status FinishCommand(const std::string& command_id, const std::string& result,
                               const std::string& error, const std::string& deployment_id,
                               const std::vector<OutboxEvent>& events) = 0;
  virtual Status MarkCommandAcked(const std::string& command_id) = 0;

  // --- deployments ---
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

  // --- outbox ---
  virtual Status AppendEvents(const std::vector<OutboxEvent>& events) = 0;
  // Undelivered events, by id ascending.
  virtual Result<std::vector<OutboxEvent>> PendingEvents(int limit) = 0;
  // How many events are undelivered (the outbox depth /metrics shows).
  virtual Result<int64_t> CountPendingEvents() = 0;
  // The head (first undelivered event) of each ordering group, at most `limit`: heads that
  // never failed first (oldest first), then by next_attempt_at, so that groups backing off
  // never crowd out the ones that are due.
  virtual Result<std::vector<OutboxHead>> OutboxHeads(int limit) = 0;
  // An ack to send again for a command delivered again after it was acked (the first ack was
  // lost), without the outbox growing: the command's ack row (same path) is queued again
  // (attempts reset, body = ack.body); already queued, nothing changes (false); none left
  // (pruned), `ack` is inserted. True when an ack is queued.
  virtual Result<bool> RequeueAck(const OutboxEvent& ack) = 0;
  // outcome: "delivered" | "unsupported" | "rejected" | "superseded" (never sent: a later
  // event of its deployment made it moot) | "failed" (given up; the row is kept). Also scrubs
  // the body of secrets by replacing it with `scrubbed_body` when non-empty, and for a
  // `success` event not "failed", the deployment's SSH password and Jupyter token
  // (ScrubSecrets), in the same transaction: one is never kept without the other.
  virtual Status MarkEventDone(int64_t id, const std::string& outcome,
                               const std::string& scrubbed_body) = 0;
  // A failed delivery attempt at `at`: attempts + 1, last_error, last_attempt_at = at,
  // first_failed_at = at unless already set, next_attempt_at = `next_attempt_at`.
  virtual Status MarkEventAttempt(int64_t id, const std::string& error, SystemTime at,
                                  SystemTime next_attempt_at) = 0;

  // --- XIDs ---
  // Records the XIDs (each attributed to the rental holding its GPU now) and, when given, the
  // kernel-log cursor they were read up to, in one transaction: a restart reads on from there.
  virtual Status RecordXids(const std::vector<XidRecord>& xids,
                            const std::optional<KmsgCursorRow>& cursor) = 0;
  virtual Result<std::optional<KmsgCursorRow>> KmsgCursor() = 0;
  virtual Result<std::vector<XidRecord>> XidsSince(SystemTime since) = 0;  // oldest first

  // --- metrics and health ---
  virtual Result<int64_t> InsertMetricSample(const MetricSample& s) = 0;
  virtual Result<std::vector<MetricSample>> UnpushedMetricSamples(int limit) = 0;  // oldest first
  virtual Status MarkMetricSamplesPushed(const std::vector<int64_t>& ids) = 0;
  // InsertMetricSample also adds each rented GPU's sample to its rental's running totals;
  // this reads them (all GPUs of the rental together). No sample yet: samples 0, no values.
  virtual Result<domain::RentalMetering> RentalMeteringOf(const std::string& deployment_id) = 0;
  virtual Result<int64_t> InsertHealthReport(const HealthReport& r,
                                             const std::vector<GpuHealthRow>& gpus) = 0;
  virtual Result<std::optional<HealthReport>> LatestHealthReport() = 0;
  virtual Result<std::vector<HealthReport>> UnpushedHealthReports(int limit) = 0;
  virtual Status MarkHealthReportsPushed(const std::vector<int64_t>& ids) = 0;

  // --- retention: deletes pushed metrics/health older than the given ages, delivered events
  // and done commands older than theirs, in batches of `batch_rows` parent rows (with their
  // per-GPU rows), each batch its own short transaction, at most `max_batches` per table and
  // call. A day count <= 0 keeps that table forever.
  struct PruneLimits {
    int metrics_days = 0;
    int health_days = 0;
    int events_days = 0;
    int commands_days = 0;
    int batch_rows = 5000;
    int max_batches = 200;
  };
  struct PruneResult {
    int64_t rows = 0;   // rows deleted, per-GPU rows included
    bool more = false;  // a table stopped at max_batches: call again soon
  };
  virtual Result<PruneResult> Prune(const PruneLimits& limits) = 0;

  // Cheap liveness check (SELECT 1), reconnecting if needed.
  virtual Status Ping() = 0;
};

}  // namespace taolie::store
