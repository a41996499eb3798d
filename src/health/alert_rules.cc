#include "health/alert_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace taolie::health {
namespace {

constexpr const char* kThresholdChecks[] = {"temperature", "power"};

std::string SeverityOfVerdict(const std::string& verdict) {
  if (verdict == "unhealthy") return "critical";
  if (verdict == "warning") return "warning";
  return "info";
}

std::string SeverityOfCheck(const std::string& severity) {
  if (severity == "unhealthy") return "critical";
  if (severity == "warning") return "warning";
  return "info";
}

const HealthCheck* FindCheck(const GpuHealth& g, const std::string& name) {
  for (const auto& c : g.checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// The verdict's reasons: every check that is not ok, "name: message; ...".
std::string Reasons(const GpuHealth& g) {
  std::string out;
  for (const auto& c : g.checks) {
    if (c.severity == "ok") continue;
    if (!out.empty()) out += "; ";
    out += c.name + ": " + c.message;
  }
  return out;
}

telemetry::Alert GpuAlert(const GpuHealth& g, const GpuAlertInput& in, SystemTime now) {
  telemetry::Alert a;
  a.gpu_uuid = g.uuid;
  a.gpu_index = g.index;
  a.deployment_id = in.deployment_id;
  a.at = now;
  return a;
}

std::string GpuName(const GpuHealth& g) { return fmt::format("GPU {} ({})", g.index, g.uuid); }

}  // namespace

std::vector<telemetry::Alert> DeriveAlerts(const AlertRulesInput& in, AlertMemory& mem) {
  std::vector<telemetry::Alert> out;
  std::set<std::string> seen;
  for (const auto& gin : in.gpus) {
    if (gin.health == nullptr) continue;
    const GpuHealth& g = *gin.health;
    seen.insert(g.uuid);
    GpuAlertMemory& m = mem.gpus[g.uuid];
    const bool first = m.verdict.empty();

    // Threshold checks as health_rules judged them (hysteresis and sustain are theirs).
    std::vector<telemetry::Alert> thresholds;
    for (const char* name : kThresholdChecks) {
      const HealthCheck* c = FindCheck(g, name);
      const std::string now_sev = c == nullptr ? "ok" : c->severity;
      std::string& last = m.thresholds[name];
      if (last.empty()) last = "ok";
      if (!first && now_sev != last) {
        telemetry::Alert a = GpuAlert(g, gin, in.now);
        a.kind = "gpu_threshold";
        a.check = name;
        a.key = "gpu_threshold/" + a.check + "/" + g.uuid;
        a.state = now_sev;
        a.severity = SeverityOfCheck(now_sev);
        if (c != nullptr) {
          a.value = c->value;
          a.threshold = c->threshold;
        }
        a.message = now_sev == "ok" ? fmt::format("{}: {} back within limits", GpuName(g), name)
                                    : fmt::format("{}: {} {}", GpuName(g), name,
                                                  c != nullptr ? c->message : "over its limit");
        thresholds.push_back(std::move(a));
      }
      last = now_sev;
    }

    // Utilization under utilization_min while rented (our own band: not a health check).
    const bool rented = !gin.deployment_id.empty();
    if (in.utilization_min > 0 && rented && gin.utilization_percent) {
      const double u = *gin.utilization_percent;
      const bool idle =
          u < in.utilization_min || (m.idle && u < in.utilization_min + kUtilizationHysteresis);
      if (idle != m.idle) {
        telemetry::Alert a = GpuAlert(g, gin, in.now);
        a.kind = "gpu_threshold";
        a.check = "utilization";
        a.key = "gpu_threshold/utilization/" + g.uuid;
        a.state = idle ? "under" : "ok";
        a.severity = idle ? "warning" : "info";
        a.value = u;
        a.threshold = in.utilization_min;
        a.message = idle ? fmt::format(
                               "{}: utilization {:.0f}% under utilization_min {:.0f}% "
                               "during rental {}",
                               GpuName(g), u, in.utilization_min, gin.deployment_id)
                         : fmt::format(
                               "{}: utilization {:.0f}% back over utilization_min "
                               "{:.0f}% during rental {}",
                               GpuName(g), u, in.utilization_min, gin.deployment_id);
        thresholds.push_back(std::move(a));
      }
      m.idle = idle;
    } else if (!rented) {
      m.idle = false;  // the rental ended: nothing to report
    }

    // The verdict: folded into a threshold alert of the same round when there is one.
    if (g.health != m.verdict && !(first && g.health == "healthy")) {
      const std::string reasons = Reasons(g);
      auto folded = std::find_if(thresholds.begin(), thresholds.end(), [](const auto& a) {
        return a.check == "temperature" || a.check == "power";
      });
      if (folded != thresholds.end()) {
        folded->message +=
            fmt::format(" (verdict {} -> {})", first ? "unknown" : m.verdict, g.health);
        folded->severity = SeverityOfVerdict(g.health);
      } else {
        telemetry::Alert a = GpuAlert(g, gin, in.now);
        a.kind = "gpu_verdict";
        a.key = "gpu_verdict/" + g.uuid;
        a.state = g.health;
        a.severity = SeverityOfVerdict(g.health);
        a.message = fmt::format("{} is {}{}{}", GpuName(g), g.health,
                                first ? "" : " (was " + m.verdict + ")",
                                reasons.empty() ? "" : ": " + reasons);
        out.push_back(std::move(a));
      }
    }
    m.verdict = g.health;
    for (auto& a : thresholds) out.push_back(std::move(a));

    // Quarantine. A GPU first seen already quarantined (from before a restart) is not news.
    if (!first && gin.quarantined != m.quarantined) {
      telemetry::Alert a = GpuAlert(g, gin, in.now);
      a.key = "gpu_quarantine/" + g.uuid;
      if (gin.quarantined) {
        a.kind = "gpu_quarantined";
        a.state = "quarantined";
        a.severity = "critical";
        a.message =
            fmt::format("{} quarantined: {}{}", GpuName(g), gin.quarantine_reason,
                        rented ? "; rental " + gin.deployment_id + " on it keeps running" : "");
      } else {
        a.kind = "gpu_released";
        a.state = "released";
        a.severity = "info";
        a.message = fmt::format("{} released from quarantine: back in service", GpuName(g));
      }
      out.push_back(std::move(a));
    }
    m.quarantined = gin.quarantined;
  }
  std::erase_if(mem.gpus, [&](const auto& e) { return seen.count(e.first) == 0; });

  // The platform.
  if (!mem.first_round) mem.first_round = in.now;
  const SystemTime ref = in.last_platform_ok.value_or(*mem.first_round);
  const auto silent = std::chrono::duration_cast<std::chrono::seconds>(in.now - ref).count();
  const bool down = silent >= in.platform_unreachable_seconds;
  if (down != mem.platform_down) {
    telemetry::Alert a;
    a.key = "platform";
    a.at = in.now;
    a.value = static_cast<double>(silent);
    a.threshold = in.platform_unreachable_seconds;
    if (down) {
      a.kind = "platform_unreachable";
      a.state = "unreachable";
      a.severity = "critical";
      a.message = fmt::format("no answer from the platform for {} s{}", silent,
                              in.last_platform_ok ? "" : " (none since the agent started)");
    } else {
      a.kind = "platform_reachable";
      a.state = "reachable";
      a.severity = "info";
      a.message = "the platform answers again";
      a.value = 0;
    }
    out.push_back(std::move(a));
    mem.platform_down = down;
  }
  return out;
}

AlertRulesInput AlertInputFrom(const std::vector<GpuHealth>& verdicts,
                               const std::vector<gpu::GpuSample>& samples,
                               const std::vector<store::GpuRecord>& records,
                               const config::MonitoringConfig& cfg, SystemTime now,
                               SystemTime last_platform_ok) {
  AlertRulesInput in;
  in.utilization_min = cfg.gpu_thresholds.utilization_min;
  in.platform_unreachable_seconds = cfg.alerts.platform_unreachable_seconds;
  in.now = now;
  if (last_platform_ok != SystemTime{}) in.last_platform_ok = last_platform_ok;
  for (const auto& v : verdicts) {
    GpuAlertInput g;
    g.health = &v;
    for (const auto& s : samples) {
      if (s.uuid == v.uuid) g.utilization_percent = s.utilization_percent;
    }
    for (const auto& r : records) {
      if (r.uuid != v.uuid) continue;
      g.quarantined = r.quarantined_since.has_value();
      g.quarantine_reason = r.quarantine_reason;
      g.deployment_id = r.deployment_id;
    }
    in.gpus.push_back(g);
  }
  return in;
}

}  // namespace taolie::health
