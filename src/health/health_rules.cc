#include "health/health_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "gpu/xid_catalog.h"

namespace taolie::health {
namespace {

using nlohmann::json;

int Rank(const std::string& severity) {
  if (severity == "unhealthy") return 2;
  if (severity == "warning") return 1;
  return 0;
}

void Add(GpuHealth& g, HealthCheck c) {
  if (Rank(c.severity) > Rank(g.health)) g.health = c.severity;
  if (c.severity == "unhealthy" && g.reason.empty()) g.reason = c.name + ": " + c.message;
  g.checks.push_back(std::move(c));
}

HealthCheck Check(std::string name, std::string severity, std::optional<double> value,
                  std::optional<double> threshold, std::string message) {
  HealthCheck c;
  c.name = std::move(name);
  c.ok = severity == "ok";
  c.severity = std::move(severity);
  c.value = value;
  c.threshold = threshold;
  c.message = std::move(message);
  return c;
}

double Round1(double v) { return std::round(v * 10.0) / 10.0; }

std::optional<double> Num(const std::optional<uint64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<double>(*v);
}

// The severity a value earns against two thresholds with hysteresis: a level raised last
// round holds while the value stays above its threshold less `margin`.
std::string Banded(double v, double warn, double crit, double margin, const std::string& last) {
  if (v >= crit || (last == "unhealthy" && v > crit - margin)) return "unhealthy";
  if (v >= warn || (Rank(last) >= 1 && v > warn - margin)) return "warning";
  return "ok";
}

void CheckTemperature(GpuHealth& g, const gpu::GpuSample& s, const config::GpuThresholds& t,
                      const std::string& last) {
  double warn = t.temperature_warning_c;
  double crit = t.temperature_critical_c;
  std::string source = "temperature_max";
  if (s.temperature_slowdown_c && *s.temperature_slowdown_c > 0 &&
      *s.temperature_slowdown_c < warn) {
    warn = *s.temperature_slowdown_c;
    source = "the GPU's slowdown threshold";
  }
  if (s.temperature_shutdown_c && *s.temperature_shutdown_c > 0) {
    crit = std::min(crit, *s.temperature_shutdown_c);
  }
  crit = std::max(crit, warn);
  if (!s.temperature_c) {
    Add(g, Check("temperature", "warning", std::nullopt, warn, "temperature not reported"));
    return;
  }
  const double v = *s.temperature_c;
  const std::string sev = Banded(v, warn, crit, kTemperatureHysteresisC, last);
  if (sev == "unhealthy") {
    Add(g, Check("temperature", sev, v, crit,
                 fmt::format("{:.0f} °C, at or near its critical {:.0f} °C", v, crit)));
  } else if (sev == "warning") {
    Add(g, Check("temperature", sev, v, warn,
                 fmt::format("{:.0f} °C, at or near {} ({:.0f} °C)", v, source, warn)));
  } else {
    Add(g, Check("temperature", "ok", v, warn, "within limits"));
  }
}

void CheckPower(GpuHealth& g, const gpu::GpuSample& s, const HealthLimits& l, SystemTime now,
                GpuHealthMemory& mem) {
  const auto& t = l.thresholds;
  std::optional<double> threshold;
  std::string what;
  if (s.power_limit_watts && *s.power_limit_watts > 0) {
    threshold = *s.power_limit_watts * t.power_warning_percent / 100.0;
    what = fmt::format("{:.0f}% of the enforced limit", t.power_warning_percent);
  }
  if (t.power_max_watts > 0 && (!threshold || t.power_max_watts < *threshold)) {
    threshold = t.power_max_watts;
    what = "power_max";
  }
  if (!s.power_draw_watts || !threshold) {
    mem.power_over_since.reset();
    Add(g, Check("power", "ok", s.power_draw_watts, threshold,
                 s.power_draw_watts ? "no power limit to judge against" : "power not reported"));
    return;
  }
  const double v = *s.power_draw_watts;
  const bool was = Rank(mem.raised["power"]) >= 1;
  const bool over = v > *threshold || (was && v > *threshold * (1.0 - kPowerHysteresisShare));
  if (!over) {
    mem.power_over_since.reset();
    Add(g, Check("power", "ok", v, *threshold, "within limits"));
    return;
  }
  if (!mem.power_over_since) mem.power_over_since = now;
  const auto over_for =
      std::chrono::duration_cast<std::chrono::seconds>(now - *mem.power_over_since).count();
  if (over_for >= l.power_sustain_seconds) {
    Add(g,
        Check("power", "warning", v, *threshold,
              fmt::format("{:.0f} W, over {} ({:.0f} W) for {} s", v, what, *threshold, over_for)));
  } else {
    Add(g, Check("power", "ok", v, *threshold,
                 fmt::format("over {} for {} s of the {} s that count", what, over_for,
                             l.power_sustain_seconds)));
  }
}

void CheckEcc(GpuHealth& g, const gpu::GpuSample& s, const HealthLimits& l, SystemTime now,
              GpuHealthMemory& mem) {
  if (s.ecc_enabled && !*s.ecc_enabled) {
    Add(g, Check("ecc", "ok", std::nullopt, std::nullopt, "ECC is off on this GPU"));
    return;
  }
  if (s.ecc_volatile_uncorrected) {
    const uint64_t max = static_cast<uint64_t>(std::max(0, l.thresholds.ecc_uncorrected_max));
    const bool bad = *s.ecc_volatile_uncorrected > max;
    // DCGM's remedy for volatile uncorrectable (double-bit) errors: "Drain the GPU and reset
    // it or reboot the node" (DCGM_FR_VOLATILE_DBE_DETECTED_NEXT); the count clears only then.
    if (bad) g.needs_reset = true;
    Add(g, Check("ecc", bad ? "unhealthy" : "ok", Num(s.ecc_volatile_uncorrected),
                 static_cast<double>(max),
                 bad ? fmt::format("{} uncorrected ECC errors since the driver loaded",
                                   *s.ecc_volatile_uncorrected)
                     : "no uncorrected ECC errors"));
  }
  if (l.ecc_corrected_per_hour <= 0 || !s.ecc_volatile_corrected) return;
  // The rate over a window of at least an hour: errors since the window's start, per hour
  // (a burst counts at once; a slow trickle only when an hour of it exceeds the limit).
  const uint64_t count = *s.ecc_volatile_corrected;
  if (!mem.corrected_count || count < *mem.corrected_count) {
    mem.corrected_count = count;
    mem.corrected_at = now;
  }
  const double hours =
      std::chrono::duration<double, std::ratio<3600>>(now - mem.corrected_at).count();
  const double rate = static_cast<double>(count - *mem.corrected_count) / std::max(1.0, hours);
  const bool fast = rate > static_cast<double>(l.ecc_corrected_per_hour);
  Add(g, Check("ecc_corrected", fast ? "warning" : "ok", Round1(rate),
               static_cast<double>(l.ecc_corrected_per_hour),
               fast ? fmt::format("corrected ECC errors at {:.0f} per hour", rate)
                    : "corrected ECC errors within their rate"));
  if (hours >= 1.0) {
    mem.corrected_count = count;
    mem.corrected_at = now;
  }
}

void CheckRetiredAndRemapped(GpuHealth& g, const gpu::GpuSample& s) {
  if (s.retired_pages_sbe || s.retired_pages_dbe || s.retired_pages_pending) {
    const uint64_t total = s.retired_pages_sbe.value_or(0) + s.retired_pages_dbe.value_or(0);
    if (total >= kMaxRetiredPages) {
      Add(g,
          Check("retired_pages", "unhealthy", static_cast<double>(total),
                static_cast<double>(kMaxRetiredPages),
                fmt::format("{} pages retired, at DCGM's limit of {}", total, kMaxRetiredPages)));
    } else if (s.retired_pages_pending.value_or(false)) {
      Add(g, Check("retired_pages", "warning", static_cast<double>(total),
                   static_cast<double>(kMaxRetiredPages),
                   "a page retirement is pending: it takes effect at the next GPU reset"));
    } else {
      Add(g, Check("retired_pages", "ok", static_cast<double>(total),
                   static_cast<double>(kMaxRetiredPages), "within limits"));
    }
  }
  if (s.remapped_rows_failure || s.remapped_rows_pending || s.remapped_rows_uncorrectable) {
    const auto unc = s.remapped_rows_uncorrectable.value_or(0);
    if (s.remapped_rows_failure.value_or(false)) {
      Add(g, Check("remapped_rows", "unhealthy", static_cast<double>(unc), std::nullopt,
                   "a row remap failed: the GPU's memory cannot be repaired"));
    } else if (s.remapped_rows_pending.value_or(false)) {
      Add(g, Check("remapped_rows", "warning", static_cast<double>(unc), std::nullopt,
                   "a row remap is pending: it takes effect at the next GPU reset"));
    } else if (unc >= kMaxUncorrectableRemappedRows) {
      Add(g, Check("remapped_rows", "warning", static_cast<double>(unc),
                   static_cast<double>(kMaxUncorrectableRemappedRows),
                   fmt::format("{} rows remapped for uncorrectable errors", unc)));
    } else {
      Add(g, Check("remapped_rows", "ok", static_cast<double>(unc),
                   static_cast<double>(kMaxUncorrectableRemappedRows), "within limits"));
    }
  }
}

void CheckPcie(GpuHealth& g, const gpu::GpuSample& s, SystemTime now, GpuHealthMemory& mem) {
  if (s.pcie_width && s.pcie_max_width && *s.pcie_max_width > 0) {
    // Only the width: the generation drops at idle to save power, and a GPU's maximum can be
    // above what its slot offers.
    const bool narrow = *s.pcie_width < *s.pcie_max_width;
    Add(g, Check("pcie_link", narrow ? "warning" : "ok", static_cast<double>(*s.pcie_width),
                 static_cast<double>(*s.pcie_max_width),
                 narrow ? fmt::format("PCIe link at x{} of x{} (gen {})", *s.pcie_width,
                                      *s.pcie_max_width, s.pcie_gen.value_or(0))
                        : "PCIe link at full width"));
  }
  if (!s.pcie_replay_count) return;
  const uint64_t count = *s.pcie_replay_count;
  if (mem.replay_count && count >= *mem.replay_count && now > mem.replay_at && s.pcie_gen &&
      s.pcie_width && *s.pcie_gen > 0) {
    const double minutes =
        std::chrono::duration<double, std::ratio<60>>(now - mem.replay_at).count();
    const size_t gen = std::min<size_t>(*s.pcie_gen, std::size(kPcieReplaysPerLaneMinute));
    const double limit = std::ceil(kPcieReplaysPerLaneMinute[gen - 1] * *s.pcie_width);
    const double rate = static_cast<double>(count - *mem.replay_count) / minutes;
    const bool fast = rate > limit;
    Add(g, Check("pcie_replay", fast ? "warning" : "ok", Round1(rate), limit,
                 fast ? fmt::format("PCIe replays at {:.1f} per minute (limit {:.0f} for gen {} "
                                    "x{}): check the slot and riser",
                                    rate, limit, *s.pcie_gen, *s.pcie_width)
                      : "PCIe replays within their rate"));
  }
  mem.replay_count = count;
  mem.replay_at = now;
}

void CheckThrottle(GpuHealth& g, const gpu::GpuSample& s, GpuHealthMemory& mem) {
  // Hardware slowdown (0x8), software thermal (0x20), hardware thermal (0x40) and power brake
  // (0x80). A software power cap (0x4) is the renter's full load meeting its limit: not here.
  constexpr uint32_t kHardMask = 0x8 | 0x20 | 0x40 | 0x80;
  std::optional<uint64_t> thermal_ns;
  if (s.thermal_violation_ns && mem.thermal_violation_ns &&
      *s.thermal_violation_ns > *mem.thermal_violation_ns) {
    thermal_ns = *s.thermal_violation_ns - *mem.thermal_violation_ns;
  }
  mem.thermal_violation_ns = s.thermal_violation_ns;
  if (!s.throttle_reasons && !thermal_ns) return;
  const bool slowed = s.throttle_reasons && (*s.throttle_reasons & kHardMask) != 0;
  std::string message = "no slowdown";
  if (slowed) {
    message =
        fmt::format("hardware or thermal slowdown active (reasons 0x{:x})", *s.throttle_reasons);
  } else if (thermal_ns) {
    message = fmt::format("held back by temperature for {} ms since the last round",
                          *thermal_ns / 1000000);
  }
  Add(g, Check("throttle", slowed || thermal_ns ? "warning" : "ok",
               s.throttle_reasons ? std::optional<double>(*s.throttle_reasons) : std::nullopt,
               std::nullopt, message));
}

void CheckRecoveryAction(GpuHealth& g, const gpu::GpuSample& s) {
  if (!s.recovery_action) return;
  switch (*s.recovery_action) {
    case 0:
      Add(g, Check("recovery_action", "ok", 0, std::nullopt, "none"));
      return;
    case 3:
      Add(g, Check("recovery_action", "warning", 3, std::nullopt,
                   "the driver asks to drain peer-to-peer traffic"));
      return;
    default:
      break;
  }
  const uint32_t a = *s.recovery_action;
  g.needs_reset = true;
  Add(g, Check("recovery_action", "unhealthy", static_cast<double>(a), std::nullopt,
               a == 2   ? "the driver asks for a host reboot"
               : a == 4 ? "the driver asks to drain and reset the GPU"
                        : "the driver asks for a GPU reset"));
}

void CheckXids(GpuHealth& g, const std::vector<gpu::XidEvent>& xids) {
  // XIDs by class (gpu/xid_catalog.h): a failure makes the GPU unhealthy; one a renter's own
  // program causes is recorded against the rental and does not count against the GPU.
  std::optional<gpu::XidClass> worst;  // the first failure, else the first warning
  for (const auto& x : xids) {
    const gpu::XidClass c = gpu::ClassifyXid(x.xid);
    if (c.application) continue;
    if (c.action == gpu::XidAction::kResetGpu || c.action == gpu::XidAction::kRebootHost) {
      g.needs_reset = true;
    }
    if (!worst || (c.severity == gpu::XidSeverity::kFailure &&
                   worst->severity != gpu::XidSeverity::kFailure)) {
      worst = c;
    }
  }
  if (worst) {
    const bool failure = worst->severity == gpu::XidSeverity::kFailure;
    Add(g, Check("xid", failure ? "unhealthy" : "warning", static_cast<double>(worst->xid),
                 std::nullopt,
                 "XID " + std::to_string(worst->xid) + " (" + std::string(worst->name) + "), " +
                     std::string(gpu::XidSeverityName(worst->severity)) + ", needs " +
                     std::string(gpu::XidActionName(worst->action))));
  } else if (!xids.empty()) {
    Add(g, Check("xid", "ok", static_cast<double>(xids.back().xid), std::nullopt,
                 "only XIDs a program causes (attributed to the rental)"));
  } else {
    Add(g, Check("xid", "ok", std::nullopt, std::nullopt, "no XID errors"));
  }
}

}  // namespace

GpuHealth EvaluateGpu(const GpuHealthInput& in, const HealthLimits& l, GpuHealthMemory& mem) {
  const gpu::GpuSample& s = *in.sample;
  const auto& t = l.thresholds;
  GpuHealth g;
  g.index = s.index;
  g.uuid = s.uuid;
  g.recent_xids = in.xids;
  if (s.lost) {
    Add(g, Check("driver", "unhealthy", std::nullopt, std::nullopt,
                 "GPU is lost (fell off the bus or driver unresponsive)" +
                     (s.error.empty() ? std::string() : ": " + s.error)));
    g.needs_reset = true;
    CheckXids(g, in.xids);
    mem.raised.clear();
    return g;
  }
  if (!in.driver_error.empty() || s.unresponsive) {
    // The driver, or this GPU's own calls, did not answer in time: unusable this round.
    Add(g, Check("driver", "unhealthy", std::nullopt, std::nullopt,
                 "driver unresponsive: " + (s.unresponsive ? s.error : in.driver_error)));
    CheckXids(g, in.xids);
    return g;  // the sample is stale: the other checks keep their memory for the next round
  }
  if (!s.error.empty()) {
    Add(g, Check("driver", "warning", std::nullopt, std::nullopt, "read error: " + s.error));
  } else {
    Add(g, Check("driver", "ok", std::nullopt, std::nullopt, "responsive"));
  }
  CheckTemperature(g, s, t, mem.raised["temperature"]);
  CheckPower(g, s, l, in.now, mem);
  if (t.memory_warning_percent > 0 && s.memory_used_mb && s.memory_total_mb &&
      *s.memory_total_mb > 0) {
    double pct =
        static_cast<double>(*s.memory_used_mb) * 100.0 / static_cast<double>(*s.memory_total_mb);
    Add(g, Check("memory", pct >= t.memory_warning_percent ? "warning" : "ok", pct,
                 t.memory_warning_percent,
                 pct >= t.memory_warning_percent ? "memory almost full" : "within limits"));
  }
  CheckEcc(g, s, l, in.now, mem);
  CheckRetiredAndRemapped(g, s);
  // Only on a card that has a fan: a passively cooled one reports none (or zero fans).
  const bool fanless = in.info != nullptr && in.info->fan_count && *in.info->fan_count == 0;
  if (s.fan_speed_percent && !fanless) {
    bool hot = s.temperature_c && *s.temperature_c >= t.temperature_warning_c;
    bool slow = *s.fan_speed_percent < t.fan_min_percent;
    Add(g, Check("fan", hot && slow ? "warning" : "ok", *s.fan_speed_percent, t.fan_min_percent,
                 hot && slow ? "fan slow while the GPU is hot" : "ok"));
  }
  CheckThrottle(g, s, mem);
  CheckPcie(g, s, in.now, mem);
  CheckRecoveryAction(g, s);
  if (s.inforom_valid && !*s.inforom_valid) {
    Add(g, Check("inforom", "warning", std::nullopt, std::nullopt,
                 "the InfoROM is corrupted: ECC and retirement records may be unreliable"));
  }
  CheckXids(g, in.xids);
  mem.raised.clear();
  for (const auto& c : g.checks) mem.raised[c.name] = c.severity;
  return g;
}

GpuHealth EvaluateGpu(const gpu::GpuSample& sample, const config::GpuThresholds& t,
                      const std::vector<gpu::XidEvent>& recent_xids) {
  GpuHealthInput in;
  in.sample = &sample;
  in.xids = recent_xids;
  HealthLimits l;
  l.thresholds = t;
  l.power_sustain_seconds = 0;
  l.ecc_corrected_per_hour = 0;
  GpuHealthMemory mem;
  return EvaluateGpu(in, l, mem);
}

std::string GpuHealthToJson(const GpuHealth& g) {
  json checks = json::object();
  for (const auto& c : g.checks) {
    checks[c.name] = {{"ok", c.ok},
                      {"severity", c.severity},
                      {"value", c.value ? json(*c.value) : json(nullptr)},
                      {"threshold", c.threshold ? json(*c.threshold) : json(nullptr)},
                      {"message", c.message}};
  }
  json xids = json::array();
  for (const auto& x : g.recent_xids) xids.push_back({{"xid", x.xid}, {"at", FormatRfc3339(x.at)}});
  json out{{"index", g.index},
           {"uuid", g.uuid},
           {"health", g.health},
           {"checks", checks},
           {"recent_xids", xids},
           {"quarantined", g.quarantined},
           {"quarantine_reason", g.quarantined ? json(g.quarantine_reason) : json(nullptr)}};
  if (!g.reason.empty()) out["reason"] = g.reason;
  if (g.needs_reset) out["needs_reset"] = true;
  return out.dump();
}

domain::HealthReport BuildHealthReport(const HostHealthInput& in, SystemTime now) {
  domain::HealthReport r;
  r.checked_at = now;
  double perf = 100.0;
  double stability = 100.0;
  int not_unhealthy = 0;
  for (const auto& g : in.gpus) {
    if (g.health != "unhealthy") ++not_unhealthy;
    for (const auto& c : g.checks) {
      if (c.name == "temperature" && !c.ok) r.temperature_ok = false;
      if (c.name == "power" && !c.ok) r.power_ok = false;
      if (c.name == "throttle" && !c.ok) perf -= 20;
      if (c.name == "pcie_link" && !c.ok) perf -= 10;
      if (c.name == "temperature" && c.severity == "warning") perf -= 10;
      if (c.name == "temperature" && c.severity == "unhealthy") perf -= 30;
      if (c.name == "driver" && c.severity == "unhealthy") stability -= 50;
      if (c.name == "driver" && c.severity == "warning") stability -= 10;
      if ((c.name == "ecc" || c.name == "retired_pages" || c.name == "remapped_rows") && !c.ok) {
        stability -= 30;
      }
      if (c.name == "pcie_replay" && !c.ok) stability -= 10;
    }
    stability -= 10.0 * static_cast<double>(g.recent_xids.size());
  }
  // Scores are per GPU on average: one sick GPU of eight lowers them by an eighth.
  if (in.gpus.size() > 1) {
    const double n = static_cast<double>(in.gpus.size());
    perf = 100.0 - (100.0 - perf) / n;
    stability = 100.0 - (100.0 - stability) / n;
  }
  stability -= 5.0 * in.loop_failures_recent;
  if (in.storage_total_bytes > 0) {
    double free_pct = static_cast<double>(in.storage_available_bytes) * 100.0 /
                      static_cast<double>(in.storage_total_bytes);
    r.storage_ok = free_pct >= 5.0 && in.storage_available_bytes >= (2ull << 30);
  } else {
    r.storage_ok = false;
  }
  r.network_ok = in.platform_reachable;
  r.gpu_performance_score = Round1(std::clamp(perf, 0.0, 100.0));
  r.system_stability_score = Round1(std::clamp(stability, 0.0, 100.0));
  const int rentable = in.rentable_gpus >= 0 ? in.rentable_gpus : not_unhealthy;
  bool gpus_ok = true;
  if (!in.gpu_probe_available && !in.gpus.empty()) gpus_ok = false;
  if (!in.gpus.empty() && rentable == 0) gpus_ok = false;
  r.is_healthy = gpus_ok && r.storage_ok;
  if (in.draining) {
    r.status = "draining";
  } else if (!r.is_healthy) {
    r.status = "unhealthy";
  } else if (in.free_healthy_gpus == 0 && in.active_deployments > 0) {
    r.status = "busy";
  } else {
    r.status = "available";
  }
  json details = json::array();
  for (const auto& g : in.gpus) details.push_back(json::parse(GpuHealthToJson(g)));
  r.details_json = details.dump();
  return r;
}

}  // namespace taolie::health
