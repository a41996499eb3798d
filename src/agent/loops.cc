#include "agent/loops.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "agent/events.h"
#include "agent/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::agent {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

Status HttpError(const Result<platform::Response>& r, const std::string& what) {
  if (!r.ok()) return MakeError(r.error().code, what + ": " + r.error().message);
  return MakeError(ErrorCode::kUnavailable, what + ": HTTP " + std::to_string(r->status) + " " +
                                                platform::RedactForLog(r->body, 300));
}

bool Cancelled(const Result<platform::Response>& r) {
  return !r.ok() && r.error().code == ErrorCode::kCancelled;
}

std::optional<int64_t> OptInt(const std::optional<uint64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<int64_t>(*v);
}
std::optional<int64_t> OptInt(const std::optional<uint32_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<int64_t>(*v);
}

store::OutboxEvent AckOutboxEvent(const Runtime& rt, const Clock& clock,
                                  const std::string& command_id, const std::string& result,
                                  const std::string& error, const std::string& deployment_id) {
  store::OutboxEvent e;
  e.kind = domain::EventKind::kAck;
  e.path = platform::AckPath(rt.agent_id(), command_id);
  e.body = platform::BuildAckBody(clock.Now(), rt.ts(), result, error, deployment_id);
  e.created_at = clock.Now();
  return e;
}

}  // namespace

std::string InventorySignature(const std::vector<gpu::GpuInfo>& gpus) {
  std::vector<std::string> ids;
  for (const auto& g : gpus) ids.push_back(g.uuid + "/" + std::to_string(g.memory_total_mb));
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (const auto& i : ids) out += i + ";";
  return out;
}

Status RegisterWithPlatform(Deps& d, Runtime& rt, std::stop_token stop) {
  platform::RegistrationInput in;
  in.agent_id = rt.agent_id();
  in.agent_version = rt.version();
  if (auto v = d.docker.Version(); v.ok()) in.docker_version = v->version;
  in.public_ip = d.cfg.network.public_ip;
  in.location = d.cfg.provider.count("region") ? d.cfg.provider.at("region") : "";
  if (!d.cfg.network.port_range.empty()) {
    in.port_range = std::to_string(d.cfg.network.port_range.first) + "-" +
                    std::to_string(d.cfg.network.port_range.last);
  }
  in.ssh_port = d.cfg.network.ports.ssh;
  in.rental_port_1 = d.cfg.network.ports.rental_port_1;
  in.rental_port_2 = d.cfg.network.ports.rental_port_2;
  in.rental_port_3 = d.cfg.network.ports.rental_port_3;
  auto facts = d.host.Facts();
  if (!facts.ok()) return facts.error();
  in.host = *facts;
  if (d.gpus.Available()) {
    if (auto drv = d.gpus.Driver(); drv.ok()) in.driver = *drv;
    if (auto list = d.gpus.ListGpus(); list.ok()) in.gpus = *list;
  }
  in.upload_mbps = d.cfg.network.upload_mbps;
  in.download_mbps = d.cfg.network.download_mbps;
  in.latency_ms = d.cfg.network.latency_ms;
  in.now = d.clock.Now();
  in.ts = rt.ts();
  platform::RetryPolicy policy;
  policy.max_attempts = 3;
  policy.max_retry_after = std::chrono::seconds(60);
  auto resp = platform::SendWithRetry(d.api, platform::Method::kPost, platform::RegisterPath(),
                                      platform::BuildRegisterBody(in), false, policy, stop,
                                      platform::StopAwareSleeper(stop));
  if (!resp.ok()) return HttpError(resp, "register");
  auto parsed = platform::ParseRegisterResponse(resp->status, resp->body);
  if (!parsed.ok()) return parsed.error();
  rt.MarkPlatformOk(d.clock.Now());
  if (!parsed->gpu_uuid.empty()) {
    rt.set_platform_gpu_uuid(parsed->gpu_uuid);
    WarnIfError(d.store.SetState("platform_gpu_uuid", parsed->gpu_uuid), "store platform gpu_uuid");
  }
  rt.set_registered_signature(InventorySignature(in.gpus));
  rt.set_registered(true);
  rt.NotifyOutbox();  // events held back while unregistered go out now
  spdlog::info("registered with the platform as {} (offer {})", rt.agent_id(), parsed->gpu_uuid);
  return OkStatus();
}

Status GpuMetricsLoop::RunOnce(std::stop_token /*stop*/) {
  domain::MetricSample s;
  s.taken_at = d_.clock.Now();
  auto host = d_.host.Sample();
  if (host.ok()) {
    s.host.cpu_utilization = host->cpu_utilization_percent;
    s.host.ram_used_gb = static_cast<double>(host->ram_used_bytes) / kGiB;
    s.host.storage_used_gb = static_cast<double>(host->storage_used_bytes) / kGiB;
    s.host.network_utilization = host->network_utilization_percent;
    s.host.upload_mbps = host->upload_mbps;
    s.host.download_mbps = host->download_mbps;
    s.host.uptime_hours = static_cast<int64_t>(host->uptime_seconds / 3600.0);
  }
  auto steady_now = std::chrono::steady_clock::now();
  if (rt_.claims_generation != claims_generation_ ||
      steady_now - claims_read_ > std::chrono::minutes(5)) {
    uint64_t generation = rt_.claims_generation;
    if (auto gpus = d_.store.ListGpus(); gpus.ok()) {
      claims_.clear();
      for (const auto& g : *gpus) claims_[g.uuid] = g.deployment_id;
      rows_ = std::move(*gpus);
      claims_generation_ = generation;
      claims_read_ = steady_now;
    }
  }
  const auto& claimed = claims_;
  if (d_.gpus.Available()) {
    auto samples = d_.gpus.Sample();
    if (!samples.ok()) return samples.error();
    for (const auto& g : *samples) {
      domain::GpuMetricRow r;
      r.gpu_uuid = g.uuid;
      r.gpu_index = g.index;
      r.utilization = g.utilization_percent;
      r.memory_used_mb = OptInt(g.memory_used_mb);
      r.memory_total_mb = OptInt(g.memory_total_mb);
      r.temperature_c = g.temperature_c;
      r.power_draw_watts = g.power_draw_watts;
      r.power_limit_watts = g.power_limit_watts;
      r.fan_speed_percent = g.fan_speed_percent;
      r.sm_clock_mhz = OptInt(g.sm_clock_mhz);
      r.mem_clock_mhz = OptInt(g.mem_clock_mhz);
      r.memory_utilization = g.memory_utilization_percent;
      r.memory_free_mb = OptInt(g.memory_free_mb);
      r.energy_joules = g.energy_joules;
      r.pcie_gen = OptInt(g.pcie_gen);
      r.pcie_width = OptInt(g.pcie_width);
      r.pcie_replay_count = OptInt(g.pcie_replay_count);
      r.throttle_reasons = OptInt(g.throttle_reasons);
      r.ecc_volatile_corrected = OptInt(g.ecc_volatile_corrected);
      r.ecc_volatile_uncorrected = OptInt(g.ecc_volatile_uncorrected);
      r.ecc_aggregate_corrected = OptInt(g.ecc_aggregate_corrected);
      r.ecc_aggregate_uncorrected = OptInt(g.ecc_aggregate_uncorrected);
      r.retired_pages_sbe = OptInt(g.retired_pages_sbe);
      r.retired_pages_dbe = OptInt(g.retired_pages_dbe);
      r.retired_pages_pending = g.retired_pages_pending;
      r.remapped_rows_correctable = OptInt(g.remapped_rows_correctable);
      r.remapped_rows_uncorrectable = OptInt(g.remapped_rows_uncorrectable);
      r.remapped_rows_pending = g.remapped_rows_pending;
      r.remapped_rows_failure = g.remapped_rows_failure;
      r.power_violation_ns = OptInt(g.power_violation_ns);
      r.thermal_violation_ns = OptInt(g.thermal_violation_ns);
      r.process_count = static_cast<int>(g.process_pids.size());
      auto claim = claimed.find(g.uuid);
      r.deployment_id = claim == claimed.end() ? "" : claim->second;
      s.gpus.push_back(std::move(r));
    }
    if (claims_generation_ != ~0ull) dirty_gpus_.Check(*samples, rows_);
    rt_.SetLatestGpuSamples(std::move(*samples), s.taken_at);
  }
  auto id = d_.store.InsertMetricSample(s);
  if (!id.ok()) return id.error();
  if (!host.ok()) return host.error();
  return OkStatus();
}

store::OutboxEvent GpuHealthLoop::GpuFailedEvent(const std::string& deployment_id,
                                                 const GpuHealth& v, SystemTime now) const {
  // The XID behind the failure, when an XID check is what made the GPU unhealthy.
  std::optional<uint64_t> xid;
  for (const auto& c : v.checks) {
    if (c.name == "xid" && c.severity == "unhealthy" && c.value) {
      xid = static_cast<uint64_t>(*c.value);  // the worst XID of the GPU's recent ones
    }
  }
  EventFactory events(d_.clock, rt_.agent_id(), rt_.ts());
  return events.Deployment(
      deployment_id, domain::EventKind::kGpuFailed,
      platform::BuildGpuFailedBody(deployment_id, v.uuid, v.health, v.reason, xid, now, rt_.ts()),
      true);
}

void GpuHealthLoop::TellRenter(const std::string& deployment_id, const GpuHealth& v) {
  auto d = d_.store.GetDeployment(deployment_id);
  if (!d.ok() || !d->has_value() || (*d)->container_id.empty()) return;
  const std::string msg = "TAOLIE: GPU " + std::to_string(v.index) + " (" + v.uuid +
                          ") of this rental has failed: " + v.reason +
                          ". Your rental keeps running: save your work now. The platform has been "
                          "told.";
  if (Status st =
          WriteToRenter(d_.docker, (*d)->container_id, "gpu_failed", msg, std::chrono::seconds(5));
      !st.ok()) {
    spdlog::warn("deployment {}: GPU failure notice not delivered inside: {}", deployment_id,
                 st.error().message);
  }
}

namespace {

store::XidRecord XidRecordOf(const std::string& uuid, uint64_t xid, const char* source,
                             SystemTime at) {
  store::XidRecord r;
  r.gpu_uuid = uuid;
  r.xid = xid;
  r.source = source;
  r.at = at;
  const gpu::XidClass c = gpu::ClassifyXid(xid);
  r.severity = std::string(gpu::XidSeverityName(c.severity));
  r.action = std::string(gpu::XidActionName(c.action));
  return r;
}

// The same fault seen through NVML's event and the kernel's line: one XID.
constexpr auto kSameXidWindow = std::chrono::seconds(30);

}  // namespace

void GpuHealthLoop::CollectXids(SystemTime now) {
  if (!xids_loaded_) {
    if (auto past = d_.store.XidsSince(now - std::chrono::hours(1)); past.ok()) {
      for (const auto& x : *past) {
        if (!x.gpu_uuid.empty()) xids_.push_back({x.gpu_uuid, x.xid, x.at});
      }
      xids_loaded_ = true;
    }
  }
  std::vector<gpu::XidEvent> from_nvml;
  if (auto x = d_.gpus.DrainXids(); x.ok()) from_nvml = std::move(*x);
  std::vector<store::XidRecord> fresh;
  for (const auto& e : from_nvml) {
    store::XidRecord r = XidRecordOf(e.uuid, e.xid, "nvml", e.at);
    if (auto info = infos_.find(e.uuid); info != infos_.end())
      r.pci_bus_id = info->second.pci_bus_id;
    fresh.push_back(std::move(r));
  }
  std::optional<store::KmsgCursorRow> cursor;
  ReadKernelLog(now, from_nvml, fresh, cursor);
  std::vector<gpu::XidEvent> seen;
  for (const auto& r : fresh) {
    if (r.gpu_uuid.empty()) continue;
    seen.push_back({r.gpu_uuid, r.xid, r.at});
    spdlog::warn("GPU {}: XID {} ({}, {}, needs {}){}", r.gpu_uuid, r.xid, r.source, r.severity,
                 r.action, r.message.empty() ? "" : ": " + r.message);
  }
  xids_.insert(xids_.end(), seen.begin(), seen.end());
  if (!seen.empty()) rt_.NoteXids(seen);
  xids_unrecorded_.insert(xids_unrecorded_.end(), fresh.begin(), fresh.end());
  if (xids_unrecorded_.empty() && !cursor) return;
  if (Status st = d_.store.RecordXids(xids_unrecorded_, cursor); !st.ok()) {
    // Kept, with the reader's position in memory: the next round records them.
    spdlog::warn("{} XID(s) not recorded yet: {}", xids_unrecorded_.size(), st.error().ToString());
    return;
  }
  xids_unrecorded_.clear();
}

void GpuHealthLoop::ReadKernelLog(SystemTime now, const std::vector<gpu::XidEvent>& from_nvml,
                                  std::vector<store::XidRecord>& out,
                                  std::optional<store::KmsgCursorRow>& cursor) {
  if (d_.cfg.gpu.kmsg_path.empty()) return;
  if (!kmsg_cursor_loaded_) {
    auto c = d_.store.KmsgCursor();
    if (!c.ok()) return;  // without the cursor, old lines would count again
    kmsg_cursor_ = *c;
    kmsg_cursor_loaded_ = true;
  }
  if (kmsg_ == nullptr) {
    host::KmsgXidReaderOptions o;
    o.path = d_.cfg.gpu.kmsg_path;
    auto r = host::KmsgXidReader::Create(o);
    if (!r.ok()) {
      if (r.error().message != kmsg_error_) {
        spdlog::warn("kernel log not read for XIDs (NVML events only): {}", r.error().message);
      }
      kmsg_error_ = r.error().message;
      return;
    }
    kmsg_ = std::move(*r);
    kmsg_error_.clear();
  }
  host::KmsgCursor from;
  if (kmsg_cursor_) from = {kmsg_cursor_->boot_id, kmsg_cursor_->next_seq};
  auto drained = kmsg_->Drain(from);
  if (!drained.ok()) {
    spdlog::warn("kernel log read failed: {}", drained.error().message);
    return;
  }
  if (drained->records_lost > 0) {
    spdlog::warn("kernel log: {} record(s) overwritten before they were read; XIDs may be lost",
                 drained->records_lost);
  }
  // The kernel stamps records on the monotonic clock: their wall time is now minus their age.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t mono_us =
      static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
  for (const auto& k : drained->xids) {
    std::string uuid;
    for (const auto& [u, info] : infos_) {
      if (host::NormalizePciBusId(info.pci_bus_id) == k.pci_bus_id) uuid = u;
    }
    const auto age =
        std::chrono::microseconds(mono_us > k.monotonic_usec ? mono_us - k.monotonic_usec : 0);
    const SystemTime at = now - std::chrono::duration_cast<SystemTime::duration>(age);
    const bool via_nvml = std::any_of(from_nvml.begin(), from_nvml.end(), [&](const auto& e) {
      return e.uuid == uuid && e.xid == k.xid &&
             (e.at > at ? e.at - at : at - e.at) < kSameXidWindow;
    });
    if (via_nvml && !uuid.empty()) continue;
    store::XidRecord r = XidRecordOf(uuid, k.xid, "kmsg", at);
    r.pci_bus_id = k.pci_bus_id;
    r.message = k.message;
    r.pid = k.pid;
    r.process_name = k.process_name.value_or("");
    if (uuid.empty()) {
      spdlog::warn("kernel log: XID {} on {}, a bus no GPU of this agent is on", k.xid,
                   k.pci_bus_id);
    }
    out.push_back(std::move(r));
  }
  if (!(from == drained->cursor)) {
    kmsg_cursor_ = store::KmsgCursorRow{drained->cursor.boot_id, drained->cursor.next_seq};
    cursor = kmsg_cursor_;
  }
}

std::map<std::string, std::string> GpuHealthLoop::ApplyQuarantine(
    const std::vector<GpuHealth>& verdicts, std::vector<store::GpuRecord>& gpus, SystemTime now) {
  QuarantinePolicy policy;
  policy.clear_seconds = d_.cfg.monitoring.quarantine_clear_seconds;
  policy.allow_reset = d_.cfg.gpu.allow_reset && reset_runner_ != nullptr;
  std::map<std::string, std::string> out;
  for (const auto& v : verdicts) {
    auto rec = std::find_if(gpus.begin(), gpus.end(),
                            [&](const store::GpuRecord& g) { return g.uuid == v.uuid; });
    if (rec == gpus.end()) continue;
    QuarantineDecision q = DecideQuarantine(*rec, v, policy, now, quarantine_[v.uuid]);
    switch (q.action) {
      case QuarantineAction::kNone:
        break;
      case QuarantineAction::kQuarantine: {
        // A rental's GPU failing: the platform hears gpu_failed in the same transaction as the
        // quarantine (once per quarantine); the rental keeps running and the renter is told.
        const bool rented_failure = !rec->quarantined_since && !rec->deployment_id.empty();
        std::vector<store::OutboxEvent> events;
        if (rented_failure) events.push_back(GpuFailedEvent(rec->deployment_id, v, now));
        if (Status st = d_.store.QuarantineGpu(v.uuid, q.reason, q.needs_reset, events); !st.ok()) {
          spdlog::warn("GPU {}: could not record its quarantine: {}", v.uuid,
                       st.error().ToString());
          break;
        }
        if (rented_failure) {
          rt_.NotifyOutbox();
          TellRenter(rec->deployment_id, v);
        }
        if (!rec->quarantined_since) {
          spdlog::warn("GPU {} ({}) quarantined: {}{}{}", v.index, v.uuid, q.reason,
                       q.needs_reset ? "; it needs a reset" : "",
                       rec->deployment_id.empty()
                           ? ""
                           : "; rental " + rec->deployment_id + " on it keeps running");
          rec->quarantined_since = now;
        }
        rec->quarantine_reason = q.reason;
        rec->needs_reset = rec->needs_reset || q.needs_reset;
        break;
      }
      case QuarantineAction::kReset: {
        spdlog::info("GPU {} ({}): resetting it (gpu.allow_reset, no rental on it)", v.index,
                     v.uuid);
        auto r =
            reset_runner_->Run({"nvidia-smi", "-r", "-i", v.uuid}, "", std::chrono::seconds(60));
        if (!r.ok() || r->exit_code != 0) {
          spdlog::warn("GPU {}: reset failed: {}", v.uuid,
                       r.ok() ? r->output.substr(0, 300) : r.error().message);
        } else if (Status st = d_.store.MarkGpuReset(v.uuid); !st.ok()) {
          spdlog::warn("GPU {}: reset, but not recorded (tried again in {} min): {}", v.uuid,
                       kResetRetry.count(), st.error().ToString());
        } else {
          rec->needs_reset = false;
          spdlog::info("GPU {}: reset; back in service after {} s healthy", v.uuid,
                       policy.clear_seconds);
        }
        break;
      }
      case QuarantineAction::kRelease:
        if (Status st = d_.store.ReleaseGpu(v.uuid); !st.ok()) {
          spdlog::warn("GPU {}: could not record its release from quarantine: {}", v.uuid,
                       st.error().ToString());
        } else {
          spdlog::info("GPU {} ({}) released from quarantine: healthy for {} s", v.index, v.uuid,
                       policy.clear_seconds);
          rec->quarantined_since.reset();
          rec->quarantine_reason.clear();
          rec->needs_reset = false;
        }
        break;
    }
    if (rec->quarantined_since && !q.status.empty()) out[v.uuid] = q.status;
  }
  return out;
}

Status GpuHealthLoop::RunOnce(std::stop_token /*stop*/) {
  const auto& cfg = d_.cfg;
  auto now = d_.clock.Now();
  std::vector<GpuHealth> verdicts;
  std::vector<gpu::GpuSample> samples;
  auto steady_now = std::chrono::steady_clock::now();
  bool full_write = steady_now - full_write_ > std::chrono::minutes(10);
  if (full_write) {
    full_write_ = steady_now;
    synced_signature_.clear();
    health_written_.clear();
  }
  HealthLimits limits;
  limits.thresholds = cfg.monitoring.gpu_thresholds;
  limits.power_sustain_seconds = cfg.monitoring.power_sustain_seconds;
  limits.ecc_corrected_per_hour = cfg.monitoring.gpu_thresholds.ecc_corrected_per_hour;
  std::string driver_error;
  std::vector<store::GpuRecord> gpus;
  bool gpus_read = false;
  std::map<std::string, SystemTime> reset_at;  // XIDs from before a GPU's reset do not count
  if (d_.gpus.Available()) {
    auto list = d_.gpus.ListGpus();
    if (list.ok()) {
      infos_.clear();
      for (const auto& g : *list) infos_[g.uuid] = g;
    }
    if (list.ok() && InventorySignature(*list) != synced_signature_) {
      std::vector<store::GpuRecord> present;
      for (const auto& g : *list) {
        store::GpuRecord r;
        r.uuid = g.uuid;
        r.index = g.index;
        r.name = g.name;
        r.memory_total_mb = g.memory_total_mb;
        r.pci_bus_id = g.pci_bus_id;
        present.push_back(r);
      }
      if (Status st = d_.store.SyncGpus(present); !st.ok()) return st;
      // A re-scan gives a GPU that was marked lost the scan's health: write every verdict
      // again this round, so a GPU that is still lost never reads healthy in the store.
      health_written_.clear();
      synced_signature_ = InventorySignature(*list);
      if (rt_.registered() && InventorySignature(*list) != rt_.registered_signature()) {
        spdlog::info("GPU inventory changed: registering again");
        rt_.reregister_wanted = true;  // the heartbeat loop registers again before its next beat
      }
    }
    CollectXids(now);
    if (auto g = d_.store.ListGpus(); g.ok()) {
      gpus = std::move(*g);
      gpus_read = true;
      for (const auto& r : gpus) {
        if (r.reset_at) reset_at[r.uuid] = *r.reset_at;
      }
    }
    xids_.erase(
        std::remove_if(xids_.begin(), xids_.end(),
                       [&](const gpu::XidEvent& e) { return now - e.at > std::chrono::hours(1); }),
        xids_.end());
    auto s = d_.gpus.Sample();
    if (s.ok()) {
      samples = *s;
    } else {
      // The driver did not answer (a hung call past its deadline, or a failed one): every GPU
      // it has is unresponsive this round, never silently absent from the verdicts.
      driver_error = s.error().message;
      for (const auto& [uuid, info] : infos_) {
        gpu::GpuSample g;
        g.index = info.index;
        g.uuid = uuid;
        samples.push_back(g);
      }
    }
    for (const auto& g : samples) {
      GpuHealthInput gin;
      gin.sample = &g;
      auto info = infos_.find(g.uuid);
      gin.info = info == infos_.end() ? nullptr : &info->second;
      auto reset = reset_at.find(g.uuid);
      for (const auto& x : xids_) {
        if (x.uuid != g.uuid || (reset != reset_at.end() && x.at <= reset->second)) continue;
        gin.xids.push_back(x);
      }
      gin.driver_error = driver_error;
      gin.now = now;
      verdicts.push_back(EvaluateGpu(gin, limits, memory_[g.uuid]));
    }
    std::erase_if(memory_, [&](const auto& m) { return infos_.count(m.first) == 0; });
  }
  if (!gpus_read) {
    if (auto g = d_.store.ListGpus(); g.ok()) gpus = std::move(*g);
  }
  const std::map<std::string, std::string> quarantined = ApplyQuarantine(verdicts, gpus, now);
  // Alerts on this round's transitions (agent/alert_rules.h); Raise never blocks.
  if (telemetry::AlertSink* alerts = rt_.alerts(); alerts != nullptr) {
    for (auto& a : DeriveAlerts(
             AlertInputFrom(verdicts, samples, gpus, cfg.monitoring, now, rt_.last_platform_ok()),
             alert_memory_)) {
      alerts->Raise(std::move(a));
    }
  }
  // A GPU quarantined or held back dirty after a rental shows why in its entry (its verdict
  // is unchanged: these are its standing for rentals).
  auto held = rt_.GpusHeldBack();
  for (auto& v : verdicts) {
    if (auto rec = std::find_if(gpus.begin(), gpus.end(),
                                [&](const store::GpuRecord& g) { return g.uuid == v.uuid; });
        rec != gpus.end() && rec->quarantined_since) {
      v.quarantined = true;
      v.quarantine_reason = rec->quarantine_reason;
    }
    if (auto q = quarantined.find(v.uuid); q != quarantined.end()) {
      HealthCheck c;
      c.name = "quarantine";
      c.ok = false;
      c.message = q->second;
      c.severity = "unhealthy";
      v.checks.push_back(std::move(c));
    }
    auto h = held.find(v.uuid);
    if (h == held.end()) continue;
    HealthCheck dirty;
    dirty.name = "dirty";
    dirty.ok = false;
    dirty.message = "held back: " + h->second;
    dirty.severity = "warning";
    v.checks.push_back(std::move(dirty));
  }
  std::vector<domain::GpuHealthRow> rows;
  for (const auto& v : verdicts) {
    const gpu::GpuSample* s = nullptr;
    for (const auto& x : samples) {
      if (x.uuid == v.uuid) s = &x;
    }
    auto verdict =
        domain::ParseGpuHealthState(v.health).value_or(domain::GpuHealthState::kUnhealthy);
    auto health = (s != nullptr && s->lost) ? domain::GpuHealthState::kLost : verdict;
    auto written = health_written_.find(v.uuid);
    if (written == health_written_.end() || written->second != health) {
      if (d_.store.SetGpuHealth(v.uuid, health).ok()) health_written_[v.uuid] = health;
    }
    rows.push_back({v.uuid, verdict, GpuHealthToJson(v)});
  }
  HostHealthInput in;
  in.gpus = verdicts;
  in.samples = samples;
  in.gpu_probe_available = d_.gpus.Available();
  if (auto f = d_.host.Facts(); f.ok()) {
    in.storage_total_bytes = f->storage_total_bytes;
    in.storage_available_bytes = f->storage_available_bytes;
  }
  auto hb = std::chrono::seconds(cfg.monitoring.heartbeat_interval);
  in.platform_reachable = now - rt_.last_platform_ok() <= 3 * hb;
  in.draining = rt_.draining();
  // Rentable: present, not quarantined, not unhealthy or lost this round, not held back dirty;
  // free: the same and unclaimed and clean (what the heartbeat offers as available_gpus).
  int free_gpus = 0;
  int rentable = 0;
  for (const auto& g : gpus) {
    auto v = std::find_if(verdicts.begin(), verdicts.end(),
                          [&](const GpuHealth& h) { return h.uuid == g.uuid; });
    const bool sick = v != verdicts.end() ? v->health == "unhealthy" : !domain::Rentable(g.health);
    if (!g.present || sick || g.quarantined_since || held.count(g.uuid) > 0) continue;
    ++rentable;
    if (g.deployment_id.empty() && !g.dirty_since) ++free_gpus;
  }
  rt_.available_gpus = free_gpus;
  in.free_healthy_gpus = free_gpus;
  in.rentable_gpus = gpus.empty() ? -1 : rentable;
  in.active_deployments = rt_.active_deployments;
  domain::HealthReport report = BuildHealthReport(in, now);
  auto id = d_.store.InsertHealthReport(report, rows);
  if (!id.ok()) return id.error();
  // Hourly; sooner while a backlog is left (each call deletes a bounded number of batches).
  if (prune_more_ || std::chrono::steady_clock::now() - last_prune_ > std::chrono::hours(1)) {
    last_prune_ = std::chrono::steady_clock::now();
    const auto& r = cfg.monitoring.retention;
    store::Store::PruneLimits limits;
    limits.metrics_days = r.metrics_days;
    limits.health_days = r.health_days;
    limits.events_days = r.events_days;
    limits.commands_days = r.commands_days;
    auto pruned = d_.store.Prune(limits);
    prune_more_ = pruned.ok() && pruned->more;
    if (!pruned.ok()) {
      spdlog::warn("retention: {}", pruned.error().ToString());
    } else if (pruned->rows > 0) {
      spdlog::info("retention: pruned {} old rows{}", pruned->rows,
                   pruned->more ? " (more next round)" : "");
    }
    auto logs = telemetry::PruneRotatedLogs(
        cfg.logging.file,
        std::filesystem::file_time_type::clock::now() - std::chrono::hours(24) * r.logs_days);
    if (!logs.ok()) {
      spdlog::warn("retention: rotated logs not pruned: {}", logs.error().message);
    } else if (*logs > 0) {
      spdlog::info("retention: deleted {} rotated log files older than {} days", *logs,
                   r.logs_days);
    }
  }
  return OkStatus();
}

Status RegistrationLoop::RunOnce(std::stop_token stop) {
  if (retry_now_.exchange(false)) next_register_ = {};
  if (rt_.registered() && !rt_.reregister_wanted) return OkStatus();
  // A refused key (401) or a refused field (422) will not fix itself: retry slowly until the
  // operator fixes the config (restart or SIGHUP retries at once).
  if (std::chrono::steady_clock::now() < next_register_) {
    return rt_.registered()
               ? OkStatus()
               : MakeError(ErrorCode::kFailedPrecondition, "not registered (refused, retry later)");
  }
  const bool was_registered = rt_.registered();
  rt_.reregister_wanted = false;
  Status reg = RegisterWithPlatform(d_, rt_, stop);
  if (!reg.ok()) {
    if (was_registered) rt_.reregister_wanted = true;
    if (reg.error().code == ErrorCode::kPermissionDenied ||
        reg.error().code == ErrorCode::kInvalidArgument) {
      next_register_ = std::chrono::steady_clock::now() + std::chrono::minutes(5);
      spdlog::error(
          "registration refused: {}. Fix the config, then restart the agent or send SIGHUP "
          "(next try in 5 minutes)",
          reg.error().message);
    }
    return reg;
  }
  if (!was_registered && on_registered_) on_registered_();
  return OkStatus();
}

Status HeartbeatLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();  // the registration loop goes first
  auto up =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  platform::HeartbeatIsolation isolation;
  if (const RentalIsolation* iso = rt_.isolation(); iso != nullptr) {
    IsolationStatus s = iso->Current();
    isolation = {true, s.ok, s.error};
  }
  std::string body = platform::BuildHeartbeatBody(
      rt_.agent_id(), d_.clock.Now(), rt_.ts(), rt_.draining() ? "draining" : "online",
      rt_.version(), rt_.active_deployments, rt_.available_gpus, up, isolation);
  auto r =
      d_.api.Send(platform::Method::kPost, platform::HeartbeatPath(rt_.agent_id()), body, stop);
  if (platform::Classify(r, false) != platform::Disposition::kSuccess) {
    rt_.platform_errors++;
    return HttpError(r, "heartbeat");
  }
  rt_.MarkPlatformOk(d_.clock.Now());
  return OkStatus();
}

bool CommandPollLoop::FirstTimeSeen(uint64_t key) {
  if (!logged_.insert(key).second) return false;
  logged_order_.push_back(key);
  if (logged_order_.size() > kMaxRemembered) {
    logged_.erase(logged_order_.front());
    logged_order_.pop_front();
  }
  return true;
}

// A malformed command that has an id: done at once with result "rejected", acked via the outbox.
Status CommandPollLoop::Reject(const std::string& command_id, const std::string& reason) {
  TAOLIE_RETURN_IF_ERROR(
      d_.store.FinishCommand(command_id, "rejected", reason, "",
                             {AckOutboxEvent(rt_, d_.clock, command_id, "rejected", reason, "")}));
  rt_.NotifyOutbox();
  return OkStatus();
}

Status CommandPollLoop::RunOnce(std::stop_token stop) {
  rerun_ = false;
  if (!rt_.registered()) return OkStatus();  // the platform does not know this agent yet
  auto r = d_.api.Send(platform::Method::kGet, platform::CommandsPath(rt_.agent_id()), "", stop);
  if (platform::Classify(r, false) != platform::Disposition::kSuccess) {
    rt_.platform_errors++;
    return HttpError(r, "command poll");
  }
  rt_.MarkPlatformOk(d_.clock.Now());
  auto parsed = platform::ParseCommands(r->body);
  if (!parsed.ok()) {
    spdlog::warn("command poll: bad response: {}", parsed.error().message);
    return OkStatus();  // bad input: logged, keep polling at the normal rate
  }
  for (const auto& e : parsed->errors) {
    if (FirstTimeSeen(e.key)) spdlog::warn("command poll: malformed command: {}", e.message);
  }
  // One command the store cannot take never holds back the others: each is tried, and what
  // was not recorded is re-delivered by the platform.
  int fresh = 0, unrecorded = 0;
  Status first_error = OkStatus();
  auto failed = [&](const Status& st) {
    if (++unrecorded == 1) first_error = st;
  };
  for (const auto& c : parsed->commands) {
    store::CommandRecord rec;
    rec.command_id = c.command_id;
    rec.command_type = c.command_type;
    rec.payload_json = c.payload_json;
    rec.received_at = d_.clock.Now();
    auto is_new = d_.store.RecordCommand(rec);
    if (!is_new.ok()) {
      failed(is_new.error());
      continue;
    }
    if (*is_new) {
      ++fresh;
      if (!c.rejection.empty()) {
        if (Status st = Reject(c.command_id, c.rejection); !st.ok()) failed(st);
        continue;
      }
      spdlog::info("command {} ({}) received", c.command_id, c.command_type);
      m_.Schedule(rec);
      continue;
    }
    auto known = d_.store.GetCommand(c.command_id);
    if (!known.ok()) {
      failed(known.error());
      continue;
    }
    if (!known->has_value()) continue;
    if ((*known)->state == store::CommandState::kPending) {
      if (!c.rejection.empty()) {
        if (Status st = Reject(c.command_id, c.rejection); !st.ok()) failed(st);
        continue;
      }
      // Deduplicated by the work queue while in progress. The platform's copy of the payload:
      // it brings again what the store never keeps (registry_auth).
      store::CommandRecord again = **known;
      again.payload_json = c.payload_json;
      m_.Schedule(again);
    } else if ((*known)->acked_at) {
      // Done and acked, yet re-delivered: our ack was lost on the way. Ack again (harmless),
      // from the command's ack row: the outbox never grows with re-deliveries.
      auto e = AckOutboxEvent(rt_, d_.clock, c.command_id, (*known)->result, (*known)->error,
                              (*known)->deployment_id);
      e.deployment_id = (*known)->deployment_id;
      if (auto queued = d_.store.RequeueAck(e); queued.ok() && *queued) rt_.NotifyOutbox();
    }
  }
  // Poll again at once after new commands, a few times in a row at most.
  rerun_ = fresh > 0 && ++immediate_in_a_row_ < 5;
  if (!rerun_) immediate_in_a_row_ = 0;
  if (unrecorded > 0) {
    return MakeError(first_error.error().code,
                     std::to_string(unrecorded) + " of " + std::to_string(parsed->commands.size()) +
                         " commands not recorded (the platform re-delivers them): " +
                         first_error.error().message);
  }
  return OkStatus();
}

Status MetricsPushLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();  // kept in the database until registration succeeds
  // After an outage, catch up several batches per round (bounded), oldest first.
  for (int batch = 0; batch < 10 && !stop.stop_requested(); ++batch) {
    auto more = PushBatch(stop);
    if (!more.ok()) return more.error();
    if (!*more) break;
  }
  return OkStatus();
}

Result<bool> MetricsPushLoop::PushBatch(std::stop_token stop) {
  constexpr int kBatch = 30;
  auto samples = d_.store.UnpushedMetricSamples(kBatch);
  if (!samples.ok()) return samples.error();
  std::vector<int64_t> done;
  Status result = OkStatus();
  for (const auto& s : *samples) {
    if (stop.stop_requested()) break;
    auto body = platform::BuildMetricsBody(rt_.agent_id(), rt_.platform_gpu_uuid(), s, rt_.ts());
    auto r = d_.api.Send(platform::Method::kPost, platform::MetricsPath(), body, stop);
    if (Cancelled(r)) break;
    auto disp = platform::Classify(r, false);
    if (disp == platform::Disposition::kSuccess) {
      done.push_back(s.id);
    } else if (disp == platform::Disposition::kPermanent) {
      spdlog::warn("metrics push: sample {} refused, dropped: {}", s.id,
                   HttpError(r, "metrics").error().message);
      done.push_back(s.id);
    } else {
      rt_.platform_errors++;
      result = HttpError(r, "metrics push");
      break;
    }
  }
  if (!done.empty()) {
    rt_.MarkPlatformOk(d_.clock.Now());
    TAOLIE_RETURN_IF_ERROR(d_.store.MarkMetricSamplesPushed(done));
  }
  if (!result.ok()) return result.error();
  return static_cast<int>(samples->size()) == kBatch && static_cast<int>(done.size()) == kBatch;
}

Status HealthPushLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();
  auto reports = d_.store.UnpushedHealthReports(30);
  if (!reports.ok()) return reports.error();
  std::vector<int64_t> done;
  Status result = OkStatus();
  for (const auto& h : *reports) {
    if (stop.stop_requested()) break;
    auto body = platform::BuildHealthBody(rt_.agent_id(), rt_.platform_gpu_uuid(), h,
                                          d_.clock.Now(), rt_.ts());
    auto r = d_.api.Send(platform::Method::kPost, platform::HealthPath(), body, stop);
    if (Cancelled(r)) break;
    auto disp = platform::Classify(r, false);
    if (disp == platform::Disposition::kSuccess || disp == platform::Disposition::kPermanent) {
      if (disp == platform::Disposition::kPermanent)
        spdlog::warn("health push: report {} refused, dropped", h.id);
      done.push_back(h.id);
    } else {
      rt_.platform_errors++;
      result = HttpError(r, "health push");
      break;
    }
  }
  if (!done.empty()) TAOLIE_RETURN_IF_ERROR(d_.store.MarkHealthReportsPushed(done));
  return result;
}

Status DurationMonitorLoop::RunOnce(std::stop_token stop) {
  // Reconcile with Docker every 10th round (5 min at the default interval).
  // A reconcile that fails (Docker or the database away) never skips the monitor's round.
  Status reconciled = OkStatus();
  if (++rounds_ % 10 == 0) reconciled = reconciler_.Run(stop);
  Status checked = monitor_.CheckOnce(stop);
  // Isolation failures are logged and shown by RentalIsolation itself (and refuse new
  // rentals); they never hold back the monitor.
  if (isolation_ != nullptr) (void)isolation_->Ensure();
  // Image collection never holds back the monitor either: its error is logged when it changes.
  if (images_ != nullptr) {
    Status gc = images_->RunOnce();
    std::string error = gc.ok() ? "" : gc.error().ToString();
    if (!error.empty() && error != images_error_) spdlog::warn("image gc: check failed: {}", error);
    images_error_ = std::move(error);
  }
  return checked.ok() ? reconciled : checked;
}

OutboxLoop::OutboxLoop(Deps d, Runtime& rt) : d_(d), rt_(rt), rng_(std::random_device{}()) {
  policy_.ext_give_up = std::chrono::hours(d.cfg.server.ext_event_give_up_hours);
}

Result<bool> OutboxLoop::Deliver(const store::OutboxHead& head, std::stop_token stop) {
  const store::OutboxEvent& e = head.event;
  const char* kind = domain::EventKindName(e.kind);
  auto r = d_.api.Send(platform::Method::kPost, e.path, e.body, stop);
  if (Cancelled(r)) return r.error();  // shutting down: not a verdict on the event
  std::string outcome;
  switch (platform::Classify(r, e.ext)) {
    case platform::Disposition::kSuccess:
      outcome = "delivered";
      break;
    case platform::Disposition::kUnsupported:
      outcome = "unsupported";
      rt_.events_unsupported++;
      if (unsupported_warned_.insert(kind).second) {
        spdlog::warn(
            "platform does not support '{}' events (HTTP {}); kept as delivered-unsupported", kind,
            r.ok() ? r->status : 0);
      }
      break;
    case platform::Disposition::kPermanent:
      outcome = "rejected";
      spdlog::warn("platform refused {} event {}: {}", kind, e.id,
                   HttpError(r, kind).error().message);
      break;
    case platform::Disposition::kRetry: {
      rt_.platform_errors++;
      last_error_ = HttpError(r, std::string("deliver ") + kind).error().message;
      const SystemTime now = d_.clock.Now();
      std::uniform_real_distribution<double> jitter(0.0, 1.0);
      const platform::FailureVerdict v = platform::OnDeliveryFailure(
          e.ext, e.attempts + 1, head.first_failed_at.value_or(now), now,
          r.ok() ? r->retry_after : std::nullopt, policy_, jitter(rng_));
      if (!v.give_up) {
        if (e.attempts == 0) {
          spdlog::warn(
              "{} event {} of deployment '{}' not delivered ({}); retried with backoff, "
              "other deployments' events go on",
              kind, e.id, e.deployment_id, last_error_);
        }
        WarnIfError(d_.store.MarkEventAttempt(e.id, last_error_, now, v.next_attempt_at),
                    "record delivery attempt");
        return false;
      }
      outcome = "failed";
      rt_.events_given_up++;
      spdlog::error(
          "gave up {} event {} of deployment '{}' after {} attempts ({}); kept as failed, "
          "the deployment's next events go on",
          kind, e.id, e.deployment_id, e.attempts + 1, last_error_);
      break;
    }
  }
  std::string scrubbed =
      e.kind == domain::EventKind::kSuccess ? platform::ScrubSecretsFromBody(e.body) : "";
  TAOLIE_RETURN_IF_ERROR(d_.store.MarkEventDone(e.id, outcome, scrubbed));
  if (outcome == "failed") return true;
  rt_.events_delivered++;
  rt_.MarkPlatformOk(d_.clock.Now());
  // A `success` delivered or refused: MarkEventDone scrubbed the deployment's password and token
  // with the event's body, in one transaction.
  if (e.kind == domain::EventKind::kAck) {
    if (auto cid = CommandIdFromAckPath(e.path))
      WarnIfError(d_.store.MarkCommandAcked(*cid), "mark acked");
  }
  return true;
}

Status OutboxLoop::RunOnce(std::stop_token stop) {
  rerun_ = false;
  if (!rt_.registered()) return OkStatus();
  // Heads of at most this many groups per round (one group per deployment or ack).
  constexpr int kMaxHeads = 200;
  auto heads = d_.store.OutboxHeads(kMaxHeads);
  if (!heads.ok()) return heads.error();
  std::map<int64_t, const store::OutboxHead*> by_id;
  std::vector<platform::GroupHead> view;
  for (const auto& h : *heads) {
    by_id[h.event.id] = &h;
    view.push_back({h.event.id, h.event.kind, h.event.attempts, h.next_attempt_at, h.end_pending});
  }
  const platform::OutboxPlan plan = platform::PlanOutboxRound(view, d_.clock.Now(), policy_);
  int done = 0, failed = 0;
  std::set<int64_t> planned;
  for (const auto& step : plan.steps) {
    if (stop.stop_requested()) break;
    planned.insert(step.id);
    const store::OutboxHead& h = *by_id.at(step.id);
    if (step.action == platform::OutboxAction::kSupersede) {
      TAOLIE_RETURN_IF_ERROR(d_.store.MarkEventDone(h.event.id, "superseded", ""));
      spdlog::info(
          "expiring event {} of deployment '{}' superseded by its ending (not delivered "
          "in {} attempts: {})",
          h.event.id, h.event.deployment_id, h.event.attempts, h.event.last_error);
      ++done;
      continue;
    }
    auto r = Deliver(h, stop);
    if (!r.ok()) return r.error();
    *r ? ++done : ++failed;
  }
  // Progress: go again at once, the groups' next events are due now. Nothing but heads backing
  // off: an error makes the runner retry soon (its backoff), not after the safety interval.
  rerun_ = done > 0;
  if (done > 0 || stop.stop_requested()) return OkStatus();
  size_t waiting = failed;
  for (const auto& h : *heads) {
    if (planned.count(h.event.id) > 0) continue;
    if (waiting++ == 0 && failed == 0) last_error_ = h.event.last_error;
  }
  if (waiting > 0) {
    return MakeError(
        ErrorCode::kUnavailable,
        std::to_string(waiting) +
            " outbox event(s) backing off after failed deliveries; last error: " + last_error_);
  }
  return OkStatus();
}

}  // namespace taolie::agent
