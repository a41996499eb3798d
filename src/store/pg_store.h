#pragma once
// PgStore: the Store seam on PostgreSQL (libpq, kept inside the store library: pg_store.cc holds
// the connection, transactions and migrations, pg_store_<role>.cc one file per Store role).
//
// One connection guarded by a mutex (the agent's loops are low-rate). Every method is one
// transaction; values are always bound parameters. Runtime connection loss is survived: a call
// that finds the connection broken resets it once (PQreset) and, when the failure happened
// before any statement of the call reached the server, retries the call once; otherwise it
// returns Unavailable and the next call reconnects. The store never aborts the process.
//
// Semantics beyond store.h:
//  - UpdateDeployment refuses to move a deployment backwards (FailedPrecondition) and
//    returns NotFound for an unknown id; setting kEnded fills ended_at (now) when unset.
//  - Prune: a retention of <= 0 days keeps that category forever. Metric samples are aged by
//    taken_at, health reports by checked_at, outbox events by done_at, commands by
//    processed_at; only pushed / done rows are ever deleted. The count includes child rows
//    (per-GPU metrics and per-GPU health rows).
//  - Zero timestamps (SystemTime{}) in inserted rows mean "now" (database clock).
#include <memory>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace taolie::store {

class PgStore final : public Store {
 public:
  // Connects (conninfo in libpq form; connect_timeout defaults to 5 s when absent), sets the
  // session to UTC with the given statement timeout, and applies pending migrations under an
  // advisory lock. Unavailable when the server cannot be reached.
  static Result<std::unique_ptr<PgStore>> Create(const std::string& conninfo,
                                                 int statement_timeout_ms = 10000);
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  // CommandStore (pg_store_commands.cc)
  Result<bool> RecordCommand(const CommandRecord& command) override;
  Result<std::optional<CommandRecord>> GetCommand(const std::string& command_id) override;
  Result<std::vector<CommandRecord>> PendingCommands(int limit) override;
  Status FinishCommand(const std::string& command_id, const std::string& result,
                       const std::string& error, const std::string& deployment_id,
                       const std::vector<OutboxEvent>& events) override;
  Status MarkCommandAcked(const std::string& command_id) override;
  Status AppendEvents(const std::vector<OutboxEvent>& events) override;
  Result<std::vector<OutboxEvent>> PendingEvents(int limit) override;
  Result<int64_t> CountPendingEvents() override;
  Result<std::vector<OutboxHead>> OutboxHeads(int limit) override;
  Result<bool> RequeueAck(const OutboxEvent& ack) override;
  Status MarkEventDone(int64_t id, const std::string& outcome,
                       const std::string& scrubbed_body) override;
  Status MarkEventAttempt(int64_t id, const std::string& error, SystemTime at,
                          SystemTime next_attempt_at) override;

  // DeploymentStore (pg_store_deployments.cc)
  Result<Deployment> CreateDeployment(const Deployment& d, const GpuClaim& claim,
                                      const std::vector<OutboxEvent>& events) override;
  Result<Deployment> AdoptDeployment(const Deployment& d) override;
  Status UpdateDeployment(const Deployment& d, const std::vector<OutboxEvent>& events) override;
  Result<std::optional<Deployment>> GetDeployment(const std::string& id) override;
  Result<std::optional<Deployment>> FindDeploymentByCommand(const std::string& command_id) override;
  Result<std::vector<Deployment>> ActiveDeployments() override;
  Result<std::vector<Deployment>> RecentDeployments(int limit) override;
  Result<std::vector<PortAllocation>> AllocatedPorts() override;
  Result<std::map<std::string, SystemTime>> ImageLastUse() override;
  Status SaveDeploymentClock(const Deployment& d) override;
  Status ScrubSecrets(const std::string& deployment_id) override;

  // GpuStore (pg_store_gpus.cc)
  Status SyncGpus(const std::vector<GpuRecord>& present) override;
  Result<std::vector<GpuRecord>> ListGpus() override;
  Status SetGpuHealth(const std::string& uuid, GpuHealthState health) override;
  Status MarkGpuClean(const std::string& uuid) override;
  Status QuarantineGpu(const std::string& uuid, const std::string& reason, bool needs_reset,
                       const std::vector<OutboxEvent>& events) override;
  Status ReleaseGpu(const std::string& uuid) override;
  Status MarkGpuReset(const std::string& uuid) override;
  Status RecordXids(const std::vector<XidRecord>& xids,
                    const std::optional<KmsgCursorRow>& cursor) override;
  Result<std::optional<KmsgCursorRow>> KmsgCursor() override;
  Result<std::vector<XidRecord>> XidsSince(SystemTime since) override;

  // TelemetryStore (pg_store_telemetry.cc)
  Result<int64_t> InsertMetricSample(const MetricSample& s) override;
  Result<std::vector<MetricSample>> UnpushedMetricSamples(int limit) override;
  Status MarkMetricSamplesPushed(const std::vector<int64_t>& ids) override;
  Result<domain::RentalMetering> RentalMeteringOf(const std::string& deployment_id) override;
  Result<int64_t> InsertHealthReport(const HealthReport& r,
                                     const std::vector<GpuHealthRow>& gpus) override;
  Result<std::optional<HealthReport>> LatestHealthReport() override;
  Result<std::vector<HealthReport>> UnpushedHealthReports(int limit) override;
  Status MarkHealthReportsPushed(const std::vector<int64_t>& ids) override;
  Result<PruneResult> Prune(const PruneLimits& limits) override;

  // StateStore (pg_store_state.cc)
  Result<std::optional<std::string>> GetState(const std::string& key) override;
  Status SetState(const std::string& key, const std::string& value) override;
  Status Ping() override;

  // Highest migration version recorded in schema_migrations.
  Result<int> SchemaVersion();

 private:
  class Impl;
  explicit PgStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taolie::store
