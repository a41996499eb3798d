#include "loops/gpu_health_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "engine/events.h"
#include "engine/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "loops/loop_helpers.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::loops {

store::OutboxEvent GpuHealthLoop::GpuFailedEvent(const std::string& deployment_id,
                                                 const health::GpuHealth& v, SystemTime now) const {
  // The XID behind the failure, when an XID check is what made the GPU unhealthy.
  std::optional<uint64_t> xid;
  for (const auto& c : v.checks) {
    if (c.name == "xid" && c.severity == "unhealthy" && c.value) {
      xid = static_cast<uint64_t>(*c.value);  // the worst XID of the GPU's recent ones
    }
  }
  engine::EventFactory events(d_.clock, rt_.agent_id(), rt_.ts());
  return events.Deployment(
      deployment_id, domain::EventKind::kGpuFailed,
      platform::BuildGpuFailedBody(deployment_id, v.uuid, v.health, v.reason, xid, now, rt_.ts()),
      true);
}

void GpuHealthLoop::TellRenter(const std::string& deployment_id, const health::GpuHealth& v) {
  auto d = d_.store.GetDeployment(deployment_id);
  if (!d.ok() || !d->has_value() || (*d)->container_id.empty()) return;
  const std::string msg = "TAOLIE: GPU " + std::to_string(v.index) + " (" + v.uuid +
                          ") of this rental has failed: " + v.reason +
                          ". Your rental keeps running: save your work now. The platform has been "
                          "told.";
  if (Status st = engine::WriteToRenter(d_.docker, (*d)->container_id, "gpu_failed", msg,
                                        std::chrono::seconds(5));
      !st.ok()) {
    spdlog::warn("deployment {}: GPU failure notice not delivered inside: {}", deployment_id,
                 st.error().message);
  }
}

GpuHealthLoop::GpuHealthLoop(runtime::Deps d, runtime::Runtime& rt,
                             host::CommandRunner* reset_runner)
    : d_(d),
      rt_(rt),
      inventory_(d.store),
      xids_(d.store, d.gpus, d.cfg.gpu.kmsg_path),
      quarantine_(d.store, d.cfg.monitoring.quarantine_clear_seconds, d.cfg.gpu.allow_reset,
                  reset_runner,
                  {[this](const std::string& deployment_id, const health::GpuHealth& v,
                          SystemTime now) { return GpuFailedEvent(deployment_id, v, now); },
                   [this](const std::string& deployment_id, const health::GpuHealth& v) {
                     rt_.NotifyOutbox();
                     TellRenter(deployment_id, v);
                   }}) {}

Status GpuHealthLoop::Judge(Round& r) {
  auto list = d_.gpus.ListGpus();
  if (list.ok()) {
    infos_.clear();
    for (const auto& g : *list) infos_[g.uuid] = g;
    auto written = inventory_.Sync(*list);
    if (!written.ok()) return written.error();
    if (*written) {
      // A re-scan gives a GPU that was marked lost the scan's health: write every verdict
      // again this round, so a GPU that is still lost never reads healthy in the store.
      health_written_.clear();
      if (rt_.registered() && health::InventorySignature(*list) != rt_.registered_signature()) {
        spdlog::info("GPU inventory changed: registering again");
        rt_.reregister_wanted = true;  // the heartbeat loop registers again before its next beat
      }
    }
  }
  if (auto seen = xids_.Collect(r.now, infos_); !seen.empty()) rt_.NoteXids(seen);
  if (auto g = d_.store.ListGpus(); g.ok()) {
    r.gpus = std::move(*g);
    r.gpus_read = true;
  }
  std::string driver_error;
  if (auto s = d_.gpus.Sample(); s.ok()) {
    r.samples = std::move(*s);
  } else {
    // The driver did not answer (a hung call past its deadline, or a failed one): every GPU
    // it has is unresponsive this round, never silently absent from the verdicts.
    driver_error = s.error().message;
    for (const auto& [uuid, info] : infos_) {
      gpu::GpuSample g;
      g.index = info.index;
      g.uuid = uuid;
      r.samples.push_back(g);
    }
  }
  Evaluate(r, driver_error);
  return OkStatus();
}

void GpuHealthLoop::Evaluate(Round& r, const std::string& driver_error) {
  const auto& cfg = d_.cfg;
  health::HealthLimits limits;
  limits.thresholds = cfg.monitoring.gpu_thresholds;
  limits.power_sustain_seconds = cfg.monitoring.power_sustain_seconds;
  limits.ecc_corrected_per_hour = cfg.monitoring.gpu_thresholds.ecc_corrected_per_hour;
  std::map<std::string, SystemTime> reset_at;  // XIDs from before a GPU's reset do not count
  for (const auto& g : r.gpus) {
    if (g.reset_at) reset_at[g.uuid] = *g.reset_at;
  }
  const auto& xids = xids_.LastHour(r.now);
  for (const auto& g : r.samples) {
    health::GpuHealthInput gin;
    gin.sample = &g;
    auto info = infos_.find(g.uuid);
    gin.info = info == infos_.end() ? nullptr : &info->second;
    auto reset = reset_at.find(g.uuid);
    for (const auto& x : xids) {
      if (x.uuid != g.uuid || (reset != reset_at.end() && x.at <= reset->second)) continue;
      gin.xids.push_back(x);
    }
    gin.driver_error = driver_error;
    gin.now = r.now;
    r.verdicts.push_back(health::EvaluateGpu(gin, limits, memory_[g.uuid]));
  }
  std::erase_if(memory_, [&](const auto& m) { return infos_.count(m.first) == 0; });
}

void GpuHealthLoop::Annotate(Round& r, const std::map<std::string, std::string>& quarantined,
                             const std::map<std::string, std::string>& held) const {
  for (auto& v : r.verdicts) {
    if (auto rec = std::find_if(r.gpus.begin(), r.gpus.end(),
                                [&](const store::GpuRecord& g) { return g.uuid == v.uuid; });
        rec != r.gpus.end() && rec->quarantined_since) {
      v.quarantined = true;
      v.quarantine_reason = rec->quarantine_reason;
    }
    if (auto q = quarantined.find(v.uuid); q != quarantined.end()) {
      health::HealthCheck c;
      c.name = "quarantine";
      c.ok = false;
      c.message = q->second;
      c.severity = "unhealthy";
      v.checks.push_back(std::move(c));
    }
    auto h = held.find(v.uuid);
    if (h == held.end()) continue;
    health::HealthCheck dirty;
    dirty.name = "dirty";
    dirty.ok = false;
    dirty.message = "held back: " + h->second;
    dirty.severity = "warning";
    v.checks.push_back(std::move(dirty));
  }
}

std::vector<domain::GpuHealthRow> GpuHealthLoop::WriteGpuHealth(const Round& r) {
  std::vector<domain::GpuHealthRow> rows;
  for (const auto& v : r.verdicts) {
    const gpu::GpuSample* s = nullptr;
    for (const auto& x : r.samples) {
      if (x.uuid == v.uuid) s = &x;
    }
    auto verdict =
        domain::ParseGpuHealthState(v.health).value_or(domain::GpuHealthState::kUnhealthy);
    auto health = (s != nullptr && s->lost) ? domain::GpuHealthState::kLost : verdict;
    auto written = health_written_.find(v.uuid);
    if (written == health_written_.end() || written->second != health) {
      if (d_.store.SetGpuHealth(v.uuid, health).ok()) health_written_[v.uuid] = health;
    }
    rows.push_back({v.uuid, verdict, health::GpuHealthToJson(v)});
  }
  return rows;
}

domain::HealthReport GpuHealthLoop::HostReport(const Round& r,
                                               const std::map<std::string, std::string>& held) {
  health::HostHealthInput in;
  in.gpus = r.verdicts;
  in.samples = r.samples;
  in.gpu_probe_available = d_.gpus.Available();
  if (auto f = d_.host.Facts(); f.ok()) {
    in.storage_total_bytes = f->storage_total_bytes;
    in.storage_available_bytes = f->storage_available_bytes;
  }
  auto hb = std::chrono::seconds(d_.cfg.monitoring.heartbeat_interval);
  in.platform_reachable = r.now - rt_.last_platform_ok() <= 3 * hb;
  in.draining = rt_.draining();
  // Rentable: present, not quarantined, not unhealthy or lost this round, not held back dirty;
  // free: the same and unclaimed and clean (what the heartbeat offers as available_gpus).
  int free_gpus = 0;
  int rentable = 0;
  for (const auto& g : r.gpus) {
    auto v = std::find_if(r.verdicts.begin(), r.verdicts.end(),
                          [&](const health::GpuHealth& h) { return h.uuid == g.uuid; });
    const bool sick =
        v != r.verdicts.end() ? v->health == "unhealthy" : !domain::Rentable(g.health);
    if (!g.present || sick || g.quarantined_since || held.count(g.uuid) > 0) continue;
    ++rentable;
    if (g.deployment_id.empty() && !g.dirty_since) ++free_gpus;
  }
  rt_.available_gpus = free_gpus;
  in.free_healthy_gpus = free_gpus;
  in.rentable_gpus = r.gpus.empty() ? -1 : rentable;
  in.active_deployments = rt_.active_deployments;
  return health::BuildHealthReport(in, r.now);
}

Status GpuHealthLoop::RunOnce(std::stop_token /*stop*/) {
  Round r;
  r.now = d_.clock.Now();
  auto steady_now = d_.clock.Monotonic();
  if (steady_now - full_write_ > std::chrono::minutes(10)) {
    full_write_ = steady_now;
    inventory_.Invalidate();
    health_written_.clear();
  }
  if (d_.gpus.Available()) TAOLIE_RETURN_IF_ERROR(Judge(r));
  if (!r.gpus_read) {
    if (auto g = d_.store.ListGpus(); g.ok()) r.gpus = std::move(*g);
  }
  const std::map<std::string, std::string> quarantined =
      quarantine_.Apply(r.verdicts, r.gpus, r.now);
  // Alerts on this round's transitions (health/alert_rules.h); Raise never blocks.
  if (telemetry::AlertSink* alerts = rt_.alerts(); alerts != nullptr) {
    for (auto& a : health::DeriveAlerts(
             health::AlertInputFrom(r.verdicts, r.samples, r.gpus, d_.cfg.monitoring, r.now,
                                    rt_.last_platform_ok()),
             alert_memory_)) {
      alerts->Raise(std::move(a));
    }
  }
  // A GPU quarantined or held back dirty after a rental shows why in its entry (its verdict
  // is unchanged: these are its standing for rentals).
  const auto held = rt_.GpusHeldBack();
  Annotate(r, quarantined, held);
  std::vector<domain::GpuHealthRow> rows = WriteGpuHealth(r);
  auto id = d_.store.InsertHealthReport(HostReport(r, held), rows);
  if (!id.ok()) return id.error();
  return OkStatus();
}

}  // namespace taolie::loops
