#include "agent/metrics_exposition.h"

#include <functional>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "domain/deployment.h"
#include "telemetry/prometheus_text.h"

namespace taolie::agent {
namespace {

using telemetry::MetricFamily;
using Labels = std::vector<std::pair<std::string, std::string>>;

// dcgm-exporter's labels on every GPU series, in its order.
Labels DcgmLabels(const MetricsSnapshot& s, const gpu::GpuSample& g) {
  const gpu::GpuInfo* info = nullptr;
  for (const auto& i : s.gpu_infos) {
    if (i.uuid == g.uuid) info = &i;
  }
  Labels l{{"gpu", std::to_string(g.index)},
           {"UUID", g.uuid},
           {"pci_bus_id", info != nullptr ? info->pci_bus_id : ""},
           {"device", "nvidia" + std::to_string(g.index)},
           {"modelName", info != nullptr ? info->name : ""}};
  if (!s.hostname.empty()) l.emplace_back("hostname", s.hostname);
  if (!s.driver_version.empty()) l.emplace_back("DCGM_FI_DRIVER_VERSION", s.driver_version);
  return l;
}

struct GpuField {
  const char* name;
  const char* type;
  const char* help;
  std::function<std::optional<double>(const gpu::GpuSample&)> value;
};

template <typename T>
std::optional<double> AsDouble(const std::optional<T>& v, double scale = 1.0) {
  if (!v) return std::nullopt;
  return static_cast<double>(*v) * scale;
}

std::optional<double> AsFlag(const std::optional<bool>& v) {
  if (!v) return std::nullopt;
  return *v ? 1.0 : 0.0;
}

// Names, types, help and units as dcgm-exporter's etc/default-counters.csv and
// dcp-metrics-included.csv have them (the commented-out ones there too: same field names).
const std::vector<GpuField>& GpuFields() {
  static const std::vector<GpuField> fields = {
      {"DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).",
       [](const gpu::GpuSample& g) { return AsDouble(g.sm_clock_mhz); }},
      {"DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).",
       [](const gpu::GpuSample& g) { return AsDouble(g.mem_clock_mhz); }},
      {"DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).",
       [](const gpu::GpuSample& g) { return g.temperature_c; }},
      {"DCGM_FI_DEV_SLOWDOWN_TEMP", "gauge", "Slowdown temperature of the GPU (in C).",
       [](const gpu::GpuSample& g) { return g.temperature_slowdown_c; }},
      {"DCGM_FI_DEV_SHUTDOWN_TEMP", "gauge", "Shutdown temperature of the GPU (in C).",
       [](const gpu::GpuSample& g) { return g.temperature_shutdown_c; }},
      {"DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).",
       [](const gpu::GpuSample& g) { return g.power_draw_watts; }},
      {"DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gauge", "Enforced power limit (in W).",
       [](const gpu::GpuSample& g) { return g.power_limit_watts; }},
      {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
       "Total energy consumption since boot (in mJ).",
       [](const gpu::GpuSample& g) { return AsDouble(g.energy_joules, 1000.0); }},
      {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
       [](const gpu::GpuSample& g) { return AsDouble(g.pcie_replay_count); }},
      {"DCGM_FI_DEV_PCIE_LINK_GEN", "gauge", "PCIe current link generation.",
       [](const gpu::GpuSample& g) { return AsDouble(g.pcie_gen); }},
      {"DCGM_FI_DEV_PCIE_LINK_WIDTH", "gauge", "PCIe current link width.",
       [](const gpu::GpuSample& g) { return AsDouble(g.pcie_width); }},
      {"DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "gauge", "PCIe max link generation.",
       [](const gpu::GpuSample& g) { return AsDouble(g.pcie_max_gen); }},
      {"DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "gauge", "PCIe max link width.",
       [](const gpu::GpuSample& g) { return AsDouble(g.pcie_max_width); }},
      {"DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
       [](const gpu::GpuSample& g) { return g.utilization_percent; }},
      {"DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).",
       [](const gpu::GpuSample& g) { return g.memory_utilization_percent; }},
      {"DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
       [](const gpu::GpuSample& g) { return AsDouble(g.memory_free_mb); }},
      {"DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
       [](const gpu::GpuSample& g) { return AsDouble(g.memory_used_mb); }},
      {"DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).",
       [](const gpu::GpuSample& g) { return AsDouble(g.memory_total_mb); }},
      {"DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).",
       [](const gpu::GpuSample& g) { return g.fan_speed_percent; }},
      {"DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gauge",
       "Current clock event (throttle) reasons, NVML's bitmask.",
       [](const gpu::GpuSample& g) { return AsDouble(g.throttle_reasons); }},
      {"DCGM_FI_DEV_POWER_VIOLATION", "counter",
       "Throttling duration due to power constraints (in ns).",
       [](const gpu::GpuSample& g) { return AsDouble(g.power_violation_ns); }},
      {"DCGM_FI_DEV_THERMAL_VIOLATION", "counter",
       "Throttling duration due to thermal constraints (in ns).",
       [](const gpu::GpuSample& g) { return AsDouble(g.thermal_violation_ns); }},
      {"DCGM_FI_DEV_ECC_CURRENT", "gauge", "Current ECC mode (1 = enabled).",
       [](const gpu::GpuSample& g) { return AsFlag(g.ecc_enabled); }},
      {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter",
       "Total number of single-bit volatile ECC errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.ecc_volatile_corrected); }},
      {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter",
       "Total number of double-bit volatile ECC errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.ecc_volatile_uncorrected); }},
      {"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter",
       "Total number of single-bit persistent ECC errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.ecc_aggregate_corrected); }},
      {"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter",
       "Total number of double-bit persistent ECC errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.ecc_aggregate_uncorrected); }},
      {"DCGM_FI_DEV_RETIRED_SBE", "counter",
       "Total number of retired pages due to single-bit errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.retired_pages_sbe); }},
      {"DCGM_FI_DEV_RETIRED_DBE", "counter",
       "Total number of retired pages due to double-bit errors.",
       [](const gpu::GpuSample& g) { return AsDouble(g.retired_pages_dbe); }},
      // NVML tells only whether pages are pending (1) or not (0); dcgm-exporter's type kept.
      {"DCGM_FI_DEV_RETIRED_PENDING", "counter", "Pages pending retirement (1 = some).",
       [](const gpu::GpuSample& g) { return AsFlag(g.retired_pages_pending); }},
      {"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter",
       "Number of remapped rows for correctable errors",
       [](const gpu::GpuSample& g) { return AsDouble(g.remapped_rows_correctable); }},
      {"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter",
       "Number of remapped rows for uncorrectable errors",
       [](const gpu::GpuSample& g) { return AsDouble(g.remapped_rows_uncorrectable); }},
      {"DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
       [](const gpu::GpuSample& g) { return AsFlag(g.remapped_rows_failure); }},
      {"DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether remapping of rows is pending",
       [](const gpu::GpuSample& g) { return AsFlag(g.remapped_rows_pending); }},
      {"DCGM_FI_DEV_PERSISTENCE_MODE", "gauge", "Persistence mode (1 = enabled).",
       [](const gpu::GpuSample& g) { return AsFlag(g.persistence_mode); }},
  };
  return fields;
}

MetricFamily Family(std::string name, std::string help, std::string type) {
  return MetricFamily{std::move(name), std::move(help), std::move(type), {}};
}

MetricFamily Single(std::string name, std::string help, std::string type, double value) {
  MetricFamily f = Family(std::move(name), std::move(help), std::move(type));
  f.samples.push_back({{}, value});
  return f;
}

void AddGpuFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  std::vector<Labels> labels;
  labels.reserve(s.gpu_samples.size());
  for (const auto& g : s.gpu_samples) labels.push_back(DcgmLabels(s, g));
  for (const GpuField& field : GpuFields()) {
    MetricFamily f = Family(field.name, field.help, field.type);
    for (size_t i = 0; i < s.gpu_samples.size(); ++i) {
      if (auto v = field.value(s.gpu_samples[i])) f.samples.push_back({labels[i], *v});
    }
    out.push_back(std::move(f));
  }
  // The last XID each GPU reported since the agent started, 0 for none (as dcgm-exporter).
  MetricFamily xid =
      Family("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", "gauge");
  for (size_t i = 0; i < s.gpu_samples.size(); ++i) {
    auto it = s.last_xid.find(s.gpu_samples[i].uuid);
    xid.samples.push_back(
        {labels[i], it == s.last_xid.end() ? 0.0 : static_cast<double>(it->second)});
  }
  out.push_back(std::move(xid));
  MetricFamily recovery =
      Family("taolie_gpu_recovery_action",
             "NVML's recovery action for the GPU: 0 none, 1 reset, 2 reboot, 3 drain P2P, 4 drain "
             "and reset.",
             "gauge");
  MetricFamily lost = Family("taolie_gpu_lost", "1 when the GPU fell off the bus.", "gauge");
  for (const auto& g : s.gpu_samples) {
    // Ours carry snake_case labels only: gpu and UUID (join on them with the DCGM series).
    const Labels own{{"gpu", std::to_string(g.index)}, {"UUID", g.uuid}};
    if (g.recovery_action)
      recovery.samples.push_back({own, static_cast<double>(*g.recovery_action)});
    lost.samples.push_back({own, g.lost ? 1.0 : 0.0});
  }
  out.push_back(std::move(recovery));
  out.push_back(std::move(lost));
}

void AddGpuStates(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  MetricFamily health = Family(
      "taolie_gpu_health", "The GPU's health verdict: 1 on the series of its verdict.", "gauge");
  MetricFamily quarantined =
      Family("taolie_gpu_quarantined", "1 while the GPU is quarantined.", "gauge");
  MetricFamily needs_reset =
      Family("taolie_gpu_needs_reset", "1 while the GPU waits for a reset to return.", "gauge");
  MetricFamily dirty =
      Family("taolie_gpu_dirty", "1 while the GPU is dirty after a rental.", "gauge");
  MetricFamily present =
      Family("taolie_gpu_present", "1 when the GPU was seen at the last scan.", "gauge");
  MetricFamily rental =
      Family("taolie_gpu_deployment_info", "1 per GPU claimed by a deployment.", "gauge");
  for (const auto& g : s.gpu_states) {
    Labels l{{"gpu", std::to_string(g.index)}, {"UUID", g.uuid}};
    for (const char* verdict : {"healthy", "warning", "unhealthy", "lost"}) {
      Labels v = l;
      v.emplace_back("verdict", verdict);
      health.samples.push_back({v, g.health == verdict ? 1.0 : 0.0});
    }
    quarantined.samples.push_back({l, g.quarantined ? 1.0 : 0.0});
    needs_reset.samples.push_back({l, g.needs_reset ? 1.0 : 0.0});
    dirty.samples.push_back({l, g.dirty ? 1.0 : 0.0});
    present.samples.push_back({l, g.present ? 1.0 : 0.0});
    if (!g.deployment_id.empty()) {
      Labels d = l;
      d.emplace_back("deployment_id", g.deployment_id);
      rental.samples.push_back({d, 1.0});
    }
  }
  for (auto* f : {&health, &quarantined, &needs_reset, &dirty, &present, &rental}) {
    out.push_back(std::move(*f));
  }
}

// One family per run of readings with the same family name, one sample per reading.
void AddRuntimeFamilies(const std::vector<runtime::MetricReading>& readings,
                        std::vector<MetricFamily>& out) {
  std::string_view current;  // the family the last reading went to
  for (const runtime::MetricReading& r : readings) {
    const runtime::MetricDecl& d = *r.decl;
    if (d.family.empty()) continue;  // /v1/status only
    if (d.family != current) {
      out.push_back(Family(std::string(d.family), std::string(d.help),
                           std::string(runtime::MetricKindName(d.kind))));
      current = d.family;
    }
    Labels labels;
    if (!d.label.empty()) labels.emplace_back(d.label_name(), d.label_value());
    out.back().samples.push_back({std::move(labels), static_cast<double>(r.value)});
  }
}

void AddAgentFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  MetricFamily build =
      Family("taolie_build_info", "The agent's version (value always 1).", "gauge");
  build.samples.push_back({{{"version", s.version}}, 1.0});
  out.push_back(std::move(build));

  MetricFamily rounds = Family("taolie_loop_rounds_total", "Rounds run by each loop.", "counter");
  MetricFamily failures =
      Family("taolie_loop_failures_total", "Rounds that failed, by loop.", "counter");
  MetricFamily exceptions =
      Family("taolie_loop_exceptions_total",
             "Rounds that threw an exception (logged; the loop goes on), by loop.", "counter");
  MetricFamily duration = Family("taolie_loop_last_round_duration_seconds",
                                 "How long the last round of each loop took.", "gauge");
  for (const auto& l : s.loops) {
    Labels ll{{"loop", l.name}};
    rounds.samples.push_back({ll, static_cast<double>(l.rounds)});
    failures.samples.push_back({ll, static_cast<double>(l.failures)});
    exceptions.samples.push_back({ll, static_cast<double>(l.exceptions)});
    duration.samples.push_back({ll, l.last_round_seconds});
  }
  for (auto* f : {&rounds, &failures, &exceptions, &duration}) out.push_back(std::move(*f));

  if (s.deployments_by_state) {
    MetricFamily by_state =
        Family("taolie_deployments", "Deployments not yet ended, by state.", "gauge");
    using domain::DeploymentState;
    for (DeploymentState st :
         {DeploymentState::kAccepted, DeploymentState::kPulling, DeploymentState::kCreating,
          DeploymentState::kStarting, DeploymentState::kReadiness, DeploymentState::kRunning,
          DeploymentState::kStopping}) {
      const std::string name = domain::DeploymentStateName(st);
      auto it = s.deployments_by_state->find(name);
      by_state.samples.push_back(
          {{{"state", name}},
           it == s.deployments_by_state->end() ? 0.0 : static_cast<double>(it->second)});
    }
    out.push_back(std::move(by_state));
  }
  if (s.outbox_pending) {
    out.push_back(Single("taolie_outbox_pending_events",
                         "Events waiting in the outbox for delivery to the platform.", "gauge",
                         static_cast<double>(*s.outbox_pending)));
  }
  MetricFamily requests =
      Family("taolie_platform_requests_total",
             "Requests to the platform, by request and outcome (one per attempt).", "counter");
  for (const auto& r : s.platform_requests) {
    requests.samples.push_back(
        {{{"request", r.request}, {"outcome", r.outcome}}, static_cast<double>(r.count)});
  }
  out.push_back(std::move(requests));

  AddRuntimeFamilies(s.runtime_metrics, out);
  out.push_back(Single("taolie_registered", "1 when the platform accepted the registration.",
                       "gauge", s.registered ? 1.0 : 0.0));
}

}  // namespace

void AddRuntimeStatus(const std::vector<runtime::MetricReading>& readings, nlohmann::json& status) {
  for (const runtime::MetricReading& r : readings) {
    const runtime::MetricDecl& d = *r.decl;
    if (d.status.empty()) continue;
    nlohmann::json& where =
        d.status_group().empty() ? status : status[std::string(d.status_group())];
    where[std::string(d.status_key())] = r.value;
  }
}

std::string MetricsExposition(const MetricsSnapshot& s) {
  std::vector<MetricFamily> families;
  AddGpuFamilies(s, families);
  AddGpuStates(s, families);
  AddAgentFamilies(s, families);
  return telemetry::PrometheusText(families);
}

}  // namespace taolie::agent
