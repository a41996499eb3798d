#pragma once
// What /metrics shows (issue 8 item 6), as a pure function over a plain snapshot that the
// composition root fills from the runtime, the loop runners, the store and the GPU probe.
//
// GPU families carry NVIDIA dcgm-exporter's default names, types and units
// (DCGM_FI_DEV_GPU_TEMP in C, DCGM_FI_DEV_POWER_USAGE in W, DCGM_FI_DEV_FB_USED in MiB,
// DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION a counter in mJ, ...) and its labels in its order:
// gpu, UUID, pci_bus_id, device ("nvidia<index>"), modelName, hostname, DCGM_FI_DRIVER_VERSION,
// so that dashboards built for it (Grafana 12239) work unchanged. A value the GPU does not
// report is no line at all, never a 0. The agent's own families start with taolie_; the
// runtime's counters and gauges are declared once, in runtime/runtime_metrics.h, and shown by
// iterating that table here and on /v1/status (AddRuntimeStatus). docs/metrics.md lists every
// family.
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gpu/gpu_probe.h"
#include "runtime/runtime_metrics.h"

namespace taolie::agent {

struct MetricsSnapshot {
  std::string version;         // build version (taolie_build_info)
  std::string hostname;        // "" = no hostname label
  std::string driver_version;  // "" = no DCGM_FI_DRIVER_VERSION label

  std::vector<gpu::GpuInfo> gpu_infos;       // static facts (model name, PCI bus id) by uuid
  std::vector<gpu::GpuSample> gpu_samples;   // the latest reading of each GPU
  std::map<std::string, uint64_t> last_xid;  // by uuid; a GPU not in it has had none

  struct GpuState {  // the store's view of one GPU
    std::string uuid;
    int index = 0;
    std::string health;  // healthy | warning | unhealthy | lost
    bool present = true;
    bool quarantined = false;
    bool needs_reset = false;
    bool dirty = false;
    std::string deployment_id;  // "" = free
  };
  std::vector<GpuState> gpu_states;  // empty when the store did not answer

  struct LoopFigures {
    std::string name;
    uint64_t rounds = 0;
    uint64_t failures = 0;
    uint64_t exceptions = 0;
    double last_round_seconds = 0;
  };
  std::vector<LoopFigures> loops;

  std::optional<std::map<std::string, int>> deployments_by_state;  // not ended; absent: no store
  std::optional<int64_t> outbox_pending;                           // absent: store did not answer

  struct PlatformRequests {
    std::string request;  // register, heartbeat, commands, ack, metrics, health, <event kind>
    std::string outcome;  // success | client_error | server_error | transport_error | cancelled
    uint64_t count = 0;
  };
  std::vector<PlatformRequests> platform_requests;

  // The runtime's counters and gauges (runtime/runtime_metrics.h: Runtime::Read()), in their
  // table's order; a family's samples are consecutive readings.
  std::vector<runtime::MetricReading> runtime_metrics;
  bool registered = false;
};

// The Prometheus text exposition (0.0.4) of the snapshot.
std::string MetricsExposition(const MetricsSnapshot& s);

// Sets each reading that has a /v1/status path on `status`: status[group][key] = value (a
// group object is made when missing), status[key] at the top level.
void AddRuntimeStatus(const std::vector<runtime::MetricReading>& readings, nlohmann::json& status);

}  // namespace taolie::agent
