#include "loops/gpu_metrics_loop.h"

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
  auto steady_now = d_.clock.Monotonic();
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

}  // namespace taolie::loops
