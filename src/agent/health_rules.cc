#include "agent/health_rules.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "gpu/xid_catalog.h"

namespace taolie::agent {
namespace {

using nlohmann::json;

void Add(GpuHealth& g, HealthCheck c) {
  if (c.severity == "unhealthy") {
    g.health = "unhealthy";
  } else if (c.severity == "warning" && g.health == "healthy") {
    g.health = "warning";
  }
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

}  // namespace

GpuHealth EvaluateGpu(const gpu::GpuSample& s, const config::GpuThresholds& t,
                      const std::vector<gpu::XidEvent>& recent_xids) {
  GpuHealth g;
  g.index = s.index;
  g.uuid = s.uuid;
  g.recent_xids = recent_xids;
  if (s.lost) {
    Add(g, Check("driver", "unhealthy", std::nullopt, std::nullopt,
                 "GPU is lost (fell off the bus or driver unresponsive)" +
                     (s.error.empty() ? std::string() : ": " + s.error)));
    return g;
  }
  if (!s.error.empty()) {
    Add(g, Check("driver", "warning", std::nullopt, std::nullopt, "read error: " + s.error));
  } else {
    Add(g, Check("driver", "ok", std::nullopt, std::nullopt, "responsive"));
  }

  if (s.temperature_c) {
    double v = *s.temperature_c;
    if (v >= t.temperature_critical_c) {
      Add(g, Check("temperature", "unhealthy", v, t.temperature_critical_c,
                   "temperature at or above critical"));
    } else if (v >= t.temperature_warning_c) {
      Add(g, Check("temperature", "warning", v, t.temperature_warning_c,
                   "temperature at or above warning"));
    } else {
      Add(g, Check("temperature", "ok", v, t.temperature_warning_c, "within limits"));
    }
  } else {
    Add(g, Check("temperature", "warning", std::nullopt, t.temperature_warning_c,
                 "temperature not reported"));
  }

  if (s.power_draw_watts && t.power_max_watts > 0 && *s.power_draw_watts > t.power_max_watts) {
    Add(g, Check("power", "warning", *s.power_draw_watts, t.power_max_watts,
                 "power draw above power_max"));
  } else if (s.power_draw_watts && s.power_limit_watts && *s.power_limit_watts > 0) {
    double pct = *s.power_draw_watts * 100.0 / *s.power_limit_watts;
    if (pct > t.power_warning_percent) {
      Add(g, Check("power", "warning", *s.power_draw_watts,
                   *s.power_limit_watts * t.power_warning_percent / 100.0,
                   "power draw above the enforced limit"));
    } else {
      Add(g, Check("power", "ok", *s.power_draw_watts, *s.power_limit_watts, "within limits"));
    }
  } else {
    Add(g,
        Check("power", "ok", s.power_draw_watts, s.power_limit_watts, "power limit not reported"));
  }

  if (t.memory_warning_percent > 0 && s.memory_used_mb && s.memory_total_mb &&
      *s.memory_total_mb > 0) {
    double pct =
        static_cast<double>(*s.memory_used_mb) * 100.0 / static_cast<double>(*s.memory_total_mb);
    Add(g, Check("memory", pct >= t.memory_warning_percent ? "warning" : "ok", pct,
                 t.memory_warning_percent,
                 pct >= t.memory_warning_percent ? "memory almost full" : "within limits"));
  }

  if (s.ecc_volatile_uncorrected) {
    double v = static_cast<double>(*s.ecc_volatile_uncorrected);
    bool bad =
        *s.ecc_volatile_uncorrected > static_cast<uint64_t>(std::max(0, t.ecc_uncorrected_max));
    Add(g, Check("ecc", bad ? "unhealthy" : "ok", v, t.ecc_uncorrected_max,
                 bad ? "uncorrected ECC errors since boot" : "no uncorrected ECC errors"));
  }

  if (s.fan_speed_percent) {
    bool hot = s.temperature_c && *s.temperature_c >= t.temperature_warning_c;
    bool slow = *s.fan_speed_percent < t.fan_min_percent;
    Add(g, Check("fan", hot && slow ? "warning" : "ok", *s.fan_speed_percent, t.fan_min_percent,
                 hot && slow ? "fan slow while the GPU is hot" : "ok"));
  }

  if (s.throttle_reasons) {
    // HW slowdown (0x8), HW thermal (0x40), HW power brake (0x80), SW thermal (0x20).
    constexpr uint32_t kHardMask = 0x8 | 0x20 | 0x40 | 0x80;
    bool throttled = (*s.throttle_reasons & kHardMask) != 0;
    Add(g, Check("throttle", throttled ? "warning" : "ok", static_cast<double>(*s.throttle_reasons),
                 std::nullopt, throttled ? "hardware or thermal slowdown active" : "no slowdown"));
  }

  // XIDs by class (gpu/xid_catalog.h): a failure makes the GPU unhealthy; one a renter's own
  // program causes is recorded against the rental and does not count against the GPU.
  std::optional<gpu::XidClass> worst;  // the first failure, else the first warning
  for (const auto& x : recent_xids) {
    const gpu::XidClass c = gpu::ClassifyXid(x.xid);
    if (c.application) continue;
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
  } else if (!recent_xids.empty()) {
    Add(g, Check("xid", "ok", static_cast<double>(recent_xids.back().xid), std::nullopt,
                 "only XIDs a program causes (attributed to the rental)"));
  } else {
    Add(g, Check("xid", "ok", std::nullopt, std::nullopt, "no XID errors"));
  }
  return g;
}

std::string GpuHealthToJson(const GpuHealth& g) {
  json checks = json::object();
  for (const auto& c : g.checks) {
    checks[c.name] = {{"ok", c.ok},
                      {"value", c.value ? json(*c.value) : json(nullptr)},
                      {"threshold", c.threshold ? json(*c.threshold) : json(nullptr)},
                      {"message", c.message}};
  }
  json xids = json::array();
  for (const auto& x : g.recent_xids) xids.push_back({{"xid", x.xid}, {"at", FormatRfc3339(x.at)}});
  return json{{"index", g.index},
              {"uuid", g.uuid},
              {"health", g.health},
              {"checks", checks},
              {"recent_xids", xids}}
      .dump();
}

domain::HealthReport BuildHealthReport(const HostHealthInput& in, SystemTime now) {
  domain::HealthReport r;
  r.checked_at = now;
  bool any_unhealthy = !in.gpu_probe_available && !in.gpus.empty();
  double perf = 100.0;
  double stability = 100.0;
  for (const auto& g : in.gpus) {
    if (g.health == "unhealthy") any_unhealthy = true;
    for (const auto& c : g.checks) {
      if (c.name == "temperature" && !c.ok) r.temperature_ok = false;
      if (c.name == "power" && !c.ok) r.power_ok = false;
      if (c.name == "throttle" && !c.ok) perf -= 20;
      if (c.name == "temperature" && c.severity == "warning") perf -= 10;
      if (c.name == "temperature" && c.severity == "unhealthy") perf -= 30;
      if (c.name == "driver" && c.severity == "unhealthy") stability -= 50;
      if (c.name == "driver" && c.severity == "warning") stability -= 10;
      if (c.name == "ecc" && !c.ok) stability -= 30;
    }
    stability -= 10.0 * static_cast<double>(g.recent_xids.size());
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
  r.is_healthy = !any_unhealthy && r.storage_ok;
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

}  // namespace taolie::agent
