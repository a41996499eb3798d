#pragma once
// Pure GPU/host health rules: from samples and thresholds to verdicts (table-tested).
//
// Each health round judges every GPU with EvaluateGpu: a list of checks (name, severity,
// value, threshold, message) and a verdict, the worst severity of its checks (healthy <
// warning < unhealthy). What a check needs from earlier rounds (how long power has been
// over, the last corrected-ECC and replay counts, which checks are raised) is kept in the
// GPU's GpuHealthMemory, which the caller carries from round to round; the rules do no I/O
// and read no clock. The checks and their limits are listed with each rule in health_rules.cc.
//
// Hysteresis: a threshold check on a value (temperature, power) that is raised stays raised
// until the value is back under its threshold by a margin (kTemperatureHysteresisC, and
// kPowerHysteresisShare of the power threshold), so a value hovering at a threshold raises
// once and does not flap.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "domain/health_report.h"
#include "gpu/gpu_probe.h"

namespace taolie::health {

inline constexpr double kTemperatureHysteresisC = 3.0;
inline constexpr double kPowerHysteresisShare = 0.05;
// DCGM's limits (common/DcgmGPUHardwareLimits.h): retired pages in all (SBE + DBE) at which
// the GPU fails, and uncorrectable remapped rows at which it warns.
inline constexpr uint64_t kMaxRetiredPages = 63;
inline constexpr uint64_t kMaxUncorrectableRemappedRows = 512;
// PCIe replays per lane and minute a healthy link stays under, Gen1..Gen6 (DCGM's rates:
// a bit error rate of 1e-12 at each generation's line rate).
inline constexpr double kPcieReplaysPerLaneMinute[] = {0.15, 0.3, 0.48, 0.96, 1.92, 3.84};

struct HealthCheck {
  // driver, temperature, power, memory, ecc, ecc_corrected, retired_pages, remapped_rows, fan,
  // throttle, pcie_link, pcie_replay, recovery_action, inforom, xid; the loop adds dirty.
  std::string name;
  bool ok = true;
  std::optional<double> value;
  std::optional<double> threshold;
  std::string message;
  std::string severity = "ok";  // ok | warning | unhealthy
};

struct GpuHealth {
  int index = 0;
  std::string uuid;
  std::string health = "healthy";  // healthy | warning | unhealthy
  std::vector<HealthCheck> checks;
  std::vector<gpu::XidEvent> recent_xids;
  // Why it is unhealthy, one line ("" when it is not): the first unhealthy check's message.
  std::string reason;
  // The GPU needs a reset before it may return to service (an XID whose action is a GPU
  // reset or a node reboot, or NVML's recovery action).
  bool needs_reset = false;
  // Its standing for rentals (the store's quarantine, filled in by the health loop after the
  // round's quarantine decisions): pushed as the ext `quarantined` and `quarantine_reason`.
  bool quarantined = false;
  std::string quarantine_reason;
};

// The limits a round is judged against (the monitoring config, copied per round).
struct HealthLimits {
  config::GpuThresholds thresholds;
  int power_sustain_seconds = 60;         // monitoring.power_sustain_seconds
  int64_t ecc_corrected_per_hour = 1000;  // monitoring.gpu_thresholds.ecc_corrected_per_hour
};

// What one GPU's checks remember between rounds.
struct GpuHealthMemory {
  std::map<std::string, std::string> raised;   // check name -> its severity last round
  std::optional<SystemTime> power_over_since;  // first round of the current run over the limit
  std::optional<uint64_t> corrected_count;     // volatile corrected ECC at corrected_at
  SystemTime corrected_at{};
  std::optional<uint64_t> replay_count;  // PCIe replays at replay_at
  SystemTime replay_at{};
  std::optional<uint64_t> thermal_violation_ns;
};

struct GpuHealthInput {
  const gpu::GpuSample* sample = nullptr;
  const gpu::GpuInfo* info = nullptr;  // static facts (fan count); may be null
  std::vector<gpu::XidEvent> xids;     // this GPU's XIDs of the recent window
  // Set when the driver did not answer the round's sample in time (or failed it): the GPU is
  // unresponsive whatever the sample holds.
  std::string driver_error;
  SystemTime now{};
};

GpuHealth EvaluateGpu(const GpuHealthInput& in, const HealthLimits& limits, GpuHealthMemory& mem);

// The former entry point (no memory: no hysteresis, no sustain, no rates), kept for callers
// that judge one sample alone.
GpuHealth EvaluateGpu(const gpu::GpuSample& sample, const config::GpuThresholds& t,
                      const std::vector<gpu::XidEvent>& recent_xids);

struct HostHealthInput {
  std::vector<GpuHealth> gpus;
  std::vector<gpu::GpuSample> samples;
  bool gpu_probe_available = true;
  uint64_t storage_total_bytes = 0;
  uint64_t storage_available_bytes = 0;
  bool platform_reachable = true;  // a platform call succeeded recently
  bool draining = false;
  int free_healthy_gpus = 0;  // present, unclaimed, clean, not quarantined, not unhealthy
  int rentable_gpus = -1;     // the same, claimed ones included (-1: count from `gpus`)
  int active_deployments = 0;
  int loop_failures_recent = 0;
};

// Builds the health report (scores, flags, status); details_json holds the ext per-GPU list.
// On a host with GPUs, is_healthy is false (status "unhealthy") only when no GPU is rentable
// (every GPU unhealthy, lost, quarantined or dirty and held back) or storage is short; one
// sick GPU among several shows in its own entry and in the scores, not in the host's flag.
domain::HealthReport BuildHealthReport(const HostHealthInput& in, SystemTime now);

std::string GpuHealthToJson(const GpuHealth& g);  // one ext "gpus" element

}  // namespace taolie::health
