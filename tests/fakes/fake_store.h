#pragma once
// In-memory Store for unit tests of the rental engine. Deployments, commands, GPU claims, port
// allocations and the events written with them behave as PgStore's do (one "transaction" per
// call, forward-only states, claims released on kEnded). Everything else (outbox delivery,
// metrics, health, retention, agent state) is not the rental engine's business: a call fails
// the test loudly. `down` makes every call answer Unavailable (PostgreSQL gone).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "store/secret_scrub.h"
#include "store/store.h"
#include "store/transitions.h"

namespace taolie::testing {

class FakeStore : public store::Store {
 public:
  using Deployment = domain::Deployment;

  // --- test control and inspection ---
  std::atomic<bool> down{false};
  std::vector<store::OutboxEvent> events;  // every event written, in order
  std::map<std::string, Deployment> deployments;
  std::map<std::string, store::CommandRecord> commands;
  std::vector<store::GpuRecord> gpus;
  std::map<std::string, domain::RentalMetering> metering;  // by deployment id
  std::vector<store::XidRecord> xids;
  std::optional<store::KmsgCursorRow> kmsg_cursor;
  int update_calls = 0;

  void AddGpu(const std::string& uuid,
              domain::GpuHealthState h = domain::GpuHealthState::kHealthy) {
    store::GpuRecord g;
    g.uuid = uuid;
    g.index = static_cast<int>(gpus.size());
    g.health = h;
    gpus.push_back(g);
  }
  std::vector<std::string> EventKinds(const std::string& deployment_id) const {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.deployment_id == deployment_id && e.kind != domain::EventKind::kAck) {
        out.push_back(domain::EventKindName(e.kind));
      }
    }
    return out;
  }
  std::vector<std::string> AckBodies(const std::string& command_id) const {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.kind == domain::EventKind::kAck &&
          e.path.find("/commands/" + command_id + "/ack") != std::string::npos) {
        out.push_back(e.body);
      }
    }
    return out;
  }
  void ReleaseAllPorts() {
    std::lock_guard l(mu_);
    ports_.clear();
  }
  Deployment Get(const std::string& id) const {
    std::lock_guard l(mu_);
    auto it = deployments.find(id);
    if (it == deployments.end()) ADD_FAILURE() << "FakeStore: no deployment " << id;
    return it == deployments.end() ? Deployment{} : it->second;
  }

  // --- agent state: not the engine's ---
  Result<std::optional<std::string>> GetState(const std::string& key) override {
    return Unexpected("GetState");
  }
  Status SetState(const std::string&, const std::string&) override {
    return Unexpected("SetState");
  }

  // --- GPUs ---
  Status SyncGpus(const std::vector<store::GpuRecord>&) override { return Unexpected("SyncGpus"); }
  Result<std::vector<store::GpuRecord>> ListGpus() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    return gpus;
  }
  Status SetGpuHealth(const std::string& uuid, domain::GpuHealthState health) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        g.health = health;
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }
  Status QuarantineGpu(const std::string& uuid, const std::string& reason, bool needs_reset,
                       const std::vector<store::OutboxEvent>& queued) override {
    TAOLIE_RETURN_IF_ERROR(EditGpu(uuid, [&](store::GpuRecord& g) {
      if (!g.quarantined_since) g.quarantined_since = SystemTime{} + std::chrono::seconds(1);
      g.quarantine_reason = reason;
      g.needs_reset = g.needs_reset || needs_reset;
    }));
    std::lock_guard l(mu_);
    events.insert(events.end(), queued.begin(), queued.end());
    return OkStatus();
  }
  Status ReleaseGpu(const std::string& uuid) override {
    return EditGpu(uuid, [](store::GpuRecord& g) {
      g.quarantined_since.reset();
      g.quarantine_reason.clear();
      g.needs_reset = false;
    });
  }
  Status MarkGpuReset(const std::string& uuid) override {
    return EditGpu(uuid, [](store::GpuRecord& g) {
      g.needs_reset = false;
      g.reset_at = std::chrono::system_clock::now();
    });
  }
  Status EditGpu(const std::string& uuid, const std::function<void(store::GpuRecord&)>& edit) {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        edit(g);
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }
  Status MarkGpuClean(const std::string& uuid) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto& g : gpus) {
      if (g.uuid == uuid) {
        g.dirty_since.reset();
        g.dirty_after.clear();
        return OkStatus();
      }
    }
    return MakeError(ErrorCode::kNotFound, "gpu " + uuid);
  }

  // --- commands ---
  Result<bool> RecordCommand(const store::CommandRecord& c) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    // As PgStore: the registry credentials are never kept.
    store::CommandRecord kept = c;
    kept.payload_json =
        store::PayloadWithoutRegistryAuth(c.payload_json, &kept.registry_auth_withheld);
    auto [it, fresh] = commands.emplace(c.command_id, kept);
    if (!fresh) it->second.times_seen++;
    return fresh;
  }
  Result<std::optional<store::CommandRecord>> GetCommand(const std::string& id) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = commands.find(id);
    if (it == commands.end()) return std::optional<store::CommandRecord>();
    return std::optional<store::CommandRecord>(it->second);
  }
  Result<std::vector<store::CommandRecord>> PendingCommands(int limit) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<store::CommandRecord> out;
    for (const auto& [id, c] : commands) {
      if (c.state == store::CommandState::kPending && static_cast<int>(out.size()) < limit) {
        out.push_back(c);
      }
    }
    return out;
  }
  Status FinishCommand(const std::string& id, const std::string& result, const std::string& error,
                       const std::string& deployment_id,
                       const std::vector<store::OutboxEvent>& ev) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = commands.find(id);
    if (it == commands.end()) return MakeError(ErrorCode::kNotFound, "command " + id);
    if (it->second.state == store::CommandState::kDone) {
      return MakeError(ErrorCode::kFailedPrecondition, "command " + id + " already done");
    }
    it->second.state = store::CommandState::kDone;
    it->second.payload_json = store::PayloadWithoutEnvValues(it->second.payload_json);
    it->second.result = result;
    it->second.error = error;
    it->second.deployment_id = deployment_id;
    events.insert(events.end(), ev.begin(), ev.end());
    return OkStatus();
  }
  Status MarkCommandAcked(const std::string&) override { return Unexpected("MarkCommandAcked"); }

  // --- deployments ---
  Result<Deployment> CreateDeployment(const Deployment& d, const store::GpuClaim& claim,
                                      const std::vector<store::OutboxEvent>& ev) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    if (deployments.count(d.id) > 0) {
      return MakeError(ErrorCode::kAlreadyExists, "deployment " + d.id + " exists");
    }
    std::vector<std::string> chosen = claim.uuids;
    if (chosen.empty()) {
      for (const auto& g : gpus) {
        if (static_cast<int>(chosen.size()) == claim.count) break;
        if (g.present && g.deployment_id.empty() && domain::Rentable(g.health) && !g.dirty_since &&
            !g.quarantined_since) {
          chosen.push_back(g.uuid);
        }
      }
      if (static_cast<int>(chosen.size()) < claim.count) {
        return MakeError(ErrorCode::kFailedPrecondition, "not enough free GPUs");
      }
    }
    for (const auto& u : chosen) {
      auto g = std::find_if(gpus.begin(), gpus.end(), [&](auto& x) { return x.uuid == u; });
      if (g == gpus.end() || !g->deployment_id.empty() || g->dirty_since || g->quarantined_since) {
        return MakeError(ErrorCode::kFailedPrecondition, "GPU " + u + " is not free");
      }
    }
    for (const auto& p : d.ports) {
      if (ports_.count(p.host_port) > 0) {
        return MakeError(ErrorCode::kFailedPrecondition,
                         "port " + std::to_string(p.host_port) + " already allocated");
      }
    }
    Deployment out = d;
    out.state = domain::DeploymentState::kAccepted;
    out.gpu_uuids = chosen;
    for (auto& g : gpus) {
      if (std::find(chosen.begin(), chosen.end(), g.uuid) != chosen.end()) g.deployment_id = d.id;
    }
    for (const auto& p : d.ports) ports_[p.host_port] = {d.id, p};
    deployments[d.id] = out;
    events.insert(events.end(), ev.begin(), ev.end());
    return out;
  }
  Result<Deployment> AdoptDeployment(const Deployment& d) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    if (deployments.count(d.id) > 0) {
      return MakeError(ErrorCode::kAlreadyExists, "deployment " + d.id + " exists");
    }
    for (const auto& g : gpus) {
      bool named = std::find(d.gpu_uuids.begin(), d.gpu_uuids.end(), g.uuid) != d.gpu_uuids.end();
      if (named && !g.deployment_id.empty() && g.deployment_id != d.id) {
        return MakeError(ErrorCode::kFailedPrecondition, "GPU " + g.uuid + " is claimed");
      }
    }
    for (const auto& p : d.ports) {
      if (ports_.count(p.host_port) > 0) {
        return MakeError(ErrorCode::kFailedPrecondition,
                         "port " + std::to_string(p.host_port) + " already allocated");
      }
    }
    Deployment out = d;
    out.gpu_uuids.clear();
    for (auto& g : gpus) {
      if (std::find(d.gpu_uuids.begin(), d.gpu_uuids.end(), g.uuid) != d.gpu_uuids.end()) {
        g.deployment_id = d.id;
        out.gpu_uuids.push_back(g.uuid);
      }
    }
    for (const auto& p : d.ports) ports_[p.host_port] = {d.id, p};
    deployments[d.id] = out;
    return out;
  }
  Status UpdateDeployment(const Deployment& d, const std::vector<store::OutboxEvent>& ev) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    ++update_calls;
    auto it = deployments.find(d.id);
    if (it == deployments.end()) return MakeError(ErrorCode::kNotFound, "deployment " + d.id);
    Deployment& cur = it->second;
    if (static_cast<int>(d.state) < static_cast<int>(cur.state)) {
      return MakeError(ErrorCode::kFailedPrecondition, "deployment " + d.id + " cannot move back");
    }
    TAOLIE_RETURN_IF_ERROR(store::CheckEventsForTransition(cur, d, ev));
    Deployment next = d;
    next.gpu_uuids = cur.gpu_uuids;
    next.ports = cur.ports;
    // As PgStore: a scrubbed password is never restored, started_at and warned_at are set once.
    if (!cur.ssh_password) next.ssh_password.reset();
    if (cur.started_at) next.started_at = cur.started_at;
    if (cur.warned_at) next.warned_at = cur.warned_at;
    if (cur.ready_elapsed_ms) next.ready_elapsed_ms = cur.ready_elapsed_ms;
    if (d.elapsed_ms < cur.elapsed_ms) {  // the clock only moves forward
      next.clock_boot_id = cur.clock_boot_id;
      next.clock_mono_ns = cur.clock_mono_ns;
      next.clock_wall = cur.clock_wall;
      next.elapsed_ms = cur.elapsed_ms;
    }
    next.spec_json = cur.spec_json;  // as PgStore: the spec is written once, at creation
    cur = next;
    if (d.state == domain::DeploymentState::kEnded) {
      // As PgStore: an ended rental keeps its environment variables' names, not their values.
      cur.spec_json = store::SpecWithoutEnvValues(cur.spec_json);
      if (auto c = commands.find(cur.command_id); c != commands.end()) {
        c->second.payload_json = store::PayloadWithoutEnvValues(c->second.payload_json);
      }
      for (auto& g : gpus) {
        if (g.deployment_id != d.id) continue;
        g.deployment_id.clear();
        g.dirty_since = SystemTime{};  // as PgStore: dirty until the metrics loop finds it idle
        g.dirty_after = d.id;
      }
      for (auto p = ports_.begin(); p != ports_.end();) {
        p = p->second.first == d.id ? ports_.erase(p) : std::next(p);
      }
    }
    events.insert(events.end(), ev.begin(), ev.end());
    return OkStatus();
  }
  Result<std::optional<Deployment>> GetDeployment(const std::string& id) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = deployments.find(id);
    if (it == deployments.end()) return std::optional<Deployment>();
    return std::optional<Deployment>(it->second);
  }
  Result<std::optional<Deployment>> FindDeploymentByCommand(const std::string& cmd) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (const auto& [id, d] : deployments) {
      if (d.command_id == cmd) return std::optional<Deployment>(d);
    }
    return std::optional<Deployment>();
  }
  Result<std::vector<Deployment>> ActiveDeployments() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<Deployment> out;
    for (const auto& [id, d] : deployments) {
      if (d.state != domain::DeploymentState::kEnded) out.push_back(d);
    }
    return out;
  }
  Result<std::vector<Deployment>> RecentDeployments(int) override {
    return Unexpected("RecentDeployments");
  }
  Result<std::vector<domain::PortAllocation>> AllocatedPorts() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<domain::PortAllocation> out;
    for (const auto& [port, owner] : ports_) out.push_back(owner.second);
    return out;
  }
  Result<std::map<std::string, SystemTime>> ImageLastUse() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::map<std::string, SystemTime> out;
    for (const auto& [id, d] : deployments) {
      auto [it, fresh] = out.emplace(d.image, d.created_at);
      if (!fresh) it->second = std::max(it->second, d.created_at);
    }
    return out;
  }
  Status SaveDeploymentClock(const Deployment& d) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = deployments.find(d.id);
    if (it == deployments.end()) return MakeError(ErrorCode::kNotFound, "deployment " + d.id);
    if (d.elapsed_ms < it->second.elapsed_ms) return OkStatus();
    it->second.clock_boot_id = d.clock_boot_id;
    it->second.clock_mono_ns = d.clock_mono_ns;
    it->second.clock_wall = d.clock_wall;
    it->second.elapsed_ms = d.elapsed_ms;
    return OkStatus();
  }
  Status ScrubSecrets(const std::string&) override { return Unexpected("ScrubSecrets"); }

  // --- outbox delivery, metrics, health, retention: not the engine's ---
  Status AppendEvents(const std::vector<store::OutboxEvent>&) override {
    return Unexpected("AppendEvents");
  }
  Result<std::vector<store::OutboxEvent>> PendingEvents(int) override {
    return Unexpected("PendingEvents");
  }
  Result<int64_t> CountPendingEvents() override { return Unexpected("CountPendingEvents"); }
  Result<std::vector<store::OutboxHead>> OutboxHeads(int) override {
    return Unexpected("OutboxHeads");
  }
  Result<bool> RequeueAck(const store::OutboxEvent&) override { return Unexpected("RequeueAck"); }
  Status MarkEventDone(int64_t, const std::string&, const std::string&) override {
    return Unexpected("MarkEventDone");
  }
  Status MarkEventAttempt(int64_t, const std::string&, SystemTime, SystemTime) override {
    return Unexpected("MarkEventAttempt");
  }
  // XIDs: kept in `xids` (attributed to the GPU's claim, as PgStore does) and `kmsg_cursor`.
  Status RecordXids(const std::vector<store::XidRecord>& in,
                    const std::optional<store::KmsgCursorRow>& cursor) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    for (auto x : in) {
      for (const auto& g : gpus) {
        if (g.uuid == x.gpu_uuid) x.deployment_id = g.deployment_id;
      }
      xids.push_back(std::move(x));
    }
    if (cursor) kmsg_cursor = cursor;
    return OkStatus();
  }
  Result<std::optional<store::KmsgCursorRow>> KmsgCursor() override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    return kmsg_cursor;
  }
  Result<std::vector<store::XidRecord>> XidsSince(SystemTime since) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<store::XidRecord> out;
    for (const auto& x : xids) {
      if (x.at >= since) out.push_back(x);
    }
    return out;
  }
  Result<int64_t> InsertMetricSample(const domain::MetricSample&) override {
    return Unexpected("InsertMetricSample");
  }
  Result<std::vector<domain::MetricSample>> UnpushedMetricSamples(int) override {
    return Unexpected("UnpushedMetricSamples");
  }
  Status MarkMetricSamplesPushed(const std::vector<int64_t>&) override {
    return Unexpected("MarkMetricSamplesPushed");
  }
  // What a test put in `metering` (the fake takes no samples); none: nothing metered.
  Result<domain::RentalMetering> RentalMeteringOf(const std::string& deployment_id) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = metering.find(deployment_id);
    return it == metering.end() ? domain::RentalMetering{} : it->second;
  }
  Result<int64_t> InsertHealthReport(const domain::HealthReport&,
                                     const std::vector<domain::GpuHealthRow>&) override {
    return Unexpected("InsertHealthReport");
  }
  Result<std::optional<domain::HealthReport>> LatestHealthReport() override {
    return Unexpected("LatestHealthReport");
  }
  Result<std::vector<domain::HealthReport>> UnpushedHealthReports(int) override {
    return Unexpected("UnpushedHealthReports");
  }
  Status MarkHealthReportsPushed(const std::vector<int64_t>&) override {
    return Unexpected("MarkHealthReportsPushed");
  }
  Result<PruneResult> Prune(const PruneLimits&) override { return Unexpected("Prune"); }
  Status Ping() override {
    std::lock_guard l(mu_);
    return Up();
  }

 private:
  Status Up() const {
    if (down) return MakeError(ErrorCode::kUnavailable, "FakeStore: database down");
    return OkStatus();
  }
  static Error Unexpected(const char* what) {
    ADD_FAILURE() << "FakeStore: unexpected call to " << what;
    return Error{ErrorCode::kInternal, std::string("unexpected call to ") + what};
  }
  mutable std::mutex mu_;
  std::map<int, std::pair<std::string, domain::PortAllocation>> ports_;
};

}  // namespace taolie::testing
