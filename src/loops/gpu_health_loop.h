#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "health/alert_rules.h"
#include "health/health_rules.h"
#include "health/inventory_sync.h"
#include "health/quarantine_keeper.h"
#include "health/xid_collector.h"
#include "host/command_runner.h"
#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 2. GPU health (60 s): the inventory kept in the store (health/inventory_sync.h), XIDs
// collected (health/xid_collector.h), a verdict per GPU (health/health_rules.h), quarantine
// applied (health/quarantine_keeper.h), alerts raised, the host's health report stored.
// Retention is the retention loop's (retention_loop.h).
class GpuHealthLoop final : public Loop {
 public:
  // `reset_runner` runs `nvidia-smi -r` for gpu.allow_reset (health/quarantine.h); null: the
  // agent never resets a GPU itself.
  GpuHealthLoop(runtime::Deps d, runtime::Runtime& rt, host::CommandRunner* reset_runner = nullptr);
  const char* Name() const override { return "gpu-health"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  // One round's view of the GPUs.
  struct Round {
    SystemTime now{};
    std::vector<health::GpuHealth> verdicts;
    std::vector<gpu::GpuSample> samples;
    std::vector<store::GpuRecord> gpus;  // the store's rows
    bool gpus_read = false;              // read this round
  };
  // The inventory synced, the XIDs collected, the GPUs sampled and judged.
  Status Judge(Round& r);
  // A verdict per sampled GPU, the XIDs since its last reset counted.
  void Evaluate(Round& r, const std::string& driver_error);
  // Quarantined and held-back GPUs show why in their entries.
  void Annotate(Round& r, const std::map<std::string, std::string>& quarantined,
                const std::map<std::string, std::string>& held) const;
  // Writes changed GPU health states; the per-GPU rows of the report.
  std::vector<domain::GpuHealthRow> WriteGpuHealth(const Round& r);
  // The host's report: GPUs, storage, platform, rentable and free GPUs.
  domain::HealthReport HostReport(const Round& r, const std::map<std::string, std::string>& held);
  // `gpu_failed` for the rental holding a GPU that turned unhealthy.
  store::OutboxEvent GpuFailedEvent(const std::string& deployment_id, const health::GpuHealth& v,
                                    SystemTime now) const;
  // Writes the failure into the rental's container (/run/taolie/gpu_failed and its terminals).
  void TellRenter(const std::string& deployment_id, const health::GpuHealth& v);

  runtime::Deps d_;
  runtime::Runtime& rt_;
  health::InventorySync inventory_;
  health::XidCollector xids_;
  health::QuarantineKeeper quarantine_;
  std::map<std::string, health::GpuHealthMemory> memory_;  // by GPU uuid
  health::AlertMemory alert_memory_;                       // what the last round's alerts saw
  std::map<std::string, gpu::GpuInfo> infos_;              // the last scan, by GPU uuid
  // Writes only what changed (inventory, per-GPU health); everything again every 10 minutes.
  std::map<std::string, domain::GpuHealthState> health_written_;
  std::chrono::steady_clock::time_point full_write_{};
};

}  // namespace taolie::loops
