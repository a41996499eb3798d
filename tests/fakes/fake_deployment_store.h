#pragma once
// DeploymentStore fake: deployments in `deployments`, claiming the GPU rows of `gpus` and the
// ports it keeps, with the events written with them appended to `events`; one "transaction"
// per call, forward-only states, claims released on kEnded, as PgStore does. RecentDeployments
// and ScrubSecrets are not the rental engine's: they fail the test.
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_store_tables.h"
#include "store/deployment_store.h"
#include "store/secret_scrub.h"
#include "store/transitions.h"

namespace taolie::testing {

class FakeDeploymentStore : public virtual FakeStoreTables, public virtual store::DeploymentStore {
 public:
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
};

}  // namespace taolie::testing
