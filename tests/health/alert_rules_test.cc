// From health-loop facts to alerts (issue 8 item 5): transitions only, one alert for a value
// oscillating at a threshold, quarantine and release, idle rented GPUs, the platform.
#include "health/alert_rules.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "fakes/gpu_samples.h"

namespace taolie::health {
namespace {

using std::chrono::seconds;

const SystemTime kT0 = SystemTime{} + std::chrono::hours(24 * 365 * 50);

gpu::GpuSample Healthy() {
  gpu::GpuSample s = taolie::testing::HealthySample();
  s.utilization_percent = 90;
  return s;
}

GpuHealth Verdict(const std::string& health, const std::string& uuid = "GPU-1") {
  GpuHealth g;
  g.uuid = uuid;
  g.index = 0;
  g.health = health;
  if (health != "healthy") {
    HealthCheck c;
    c.name = "ecc";
    c.ok = false;
    c.severity = health;
    c.message = "volatile uncorrectable ECC errors";
    g.checks.push_back(c);
  }
  return g;
}

// One GPU through the real health rules (their memory) and the alert rules, round by round.
struct Loop {
  HealthLimits limits;
  GpuHealthMemory health_mem;
  AlertMemory alert_mem;
  gpu::GpuInfo info;
  SystemTime now = kT0;
  std::string deployment_id;
  bool quarantined = false;
  bool platform_answers = true;  // every round
  int unreachable_seconds = 600;
  double utilization_min = 0;

  std::vector<telemetry::Alert> Round(const gpu::GpuSample& s) {
    GpuHealthInput hin;
    hin.sample = &s;
    info.fan_count = 1;
    hin.info = &info;
    hin.now = now;
    GpuHealth g = EvaluateGpu(hin, limits, health_mem);
    AlertRulesInput in;
    GpuAlertInput gi;
    gi.health = &g;
    gi.utilization_percent = s.utilization_percent;
    gi.deployment_id = deployment_id;
    gi.quarantined = quarantined;
    gi.quarantine_reason = "XID 79";
    in.gpus.push_back(gi);
    in.now = now;
    if (platform_answers) in.last_platform_ok = now;
    in.platform_unreachable_seconds = unreachable_seconds;
    in.utilization_min = utilization_min;
    now += seconds(60);
    return DeriveAlerts(in, alert_mem);
  }
};

std::vector<telemetry::Alert> Derive(const std::vector<GpuHealth>& gs, AlertMemory& mem,
                                     SystemTime now = kT0) {
  AlertRulesInput in;
  for (const auto& g : gs) {
    GpuAlertInput gi;
    gi.health = &g;
    in.gpus.push_back(gi);
  }
  in.now = now;
  in.last_platform_ok = now;
  return DeriveAlerts(in, mem);
}

TEST(AlertRules, VerdictTransitionsRaiseOneAlertEach) {
  AlertMemory mem;
  EXPECT_TRUE(Derive({Verdict("healthy")}, mem).empty());  // first seen healthy: no news
  EXPECT_TRUE(Derive({Verdict("healthy")}, mem).empty());
  auto a = Derive({Verdict("unhealthy")}, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, "gpu_verdict");
  EXPECT_EQ(a[0].state, "unhealthy");
  EXPECT_EQ(a[0].severity, "critical");
  EXPECT_EQ(a[0].key, "gpu_verdict/GPU-1");
  EXPECT_EQ(a[0].gpu_uuid, "GPU-1");
  EXPECT_NE(a[0].message.find("was healthy"), std::string::npos) << a[0].message;
  EXPECT_NE(a[0].message.find("uncorrectable"), std::string::npos) << a[0].message;
  EXPECT_TRUE(Derive({Verdict("unhealthy")}, mem).empty());  // no change, no alert
  a = Derive({Verdict("warning")}, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].state, "warning");
  a = Derive({Verdict("healthy")}, mem);  // the transition back is an alert too
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].state, "healthy");
  EXPECT_EQ(a[0].severity, "info");
}

TEST(AlertRules, AGpuFirstSeenSickIsReportedAndAVanishedOneIsForgotten) {
  AlertMemory mem;
  auto a = Derive({Verdict("healthy", "GPU-A"), Verdict("warning", "GPU-B")}, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].gpu_uuid, "GPU-B");
  EXPECT_EQ(a[0].state, "warning");
  EXPECT_TRUE(Derive({Verdict("healthy", "GPU-A")}, mem).empty());
  EXPECT_EQ(mem.gpus.count("GPU-B"), 0u);
}

TEST(AlertRules, TemperatureOscillatingAtItsThresholdRaisesOneAlert) {
  Loop loop;  // temperature_max 85, a 3 °C band
  gpu::GpuSample s = Healthy();
  EXPECT_TRUE(loop.Round(s).empty());
  std::vector<telemetry::Alert> all;
  for (double t : {85.5, 84.5, 86.0, 84.0, 85.2, 83.0, 85.9, 82.5, 86.0, 84.9}) {
    s.temperature_c = t;
    auto a = loop.Round(s);
    all.insert(all.end(), a.begin(), a.end());
  }
  ASSERT_EQ(all.size(), 1u) << all.back().kind << " " << all.back().message;
  EXPECT_EQ(all[0].kind, "gpu_threshold");
  EXPECT_EQ(all[0].check, "temperature");
  EXPECT_EQ(all[0].state, "warning");
  EXPECT_EQ(all[0].value, 85.5);
  EXPECT_EQ(all[0].threshold, 85.0);
  // The verdict's change is in the same alert, not in a second one.
  EXPECT_NE(all[0].message.find("verdict healthy -> warning"), std::string::npos) << all[0].message;
  // Back under the band: one alert that it is within limits again.
  s.temperature_c = 80;
  auto back = loop.Round(s);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].check, "temperature");
  EXPECT_EQ(back[0].state, "ok");
  EXPECT_EQ(back[0].severity, "info");
  EXPECT_TRUE(loop.Round(s).empty());
}

TEST(AlertRules, PowerAlertsOnlyOnceSustained) {
  Loop loop;
  loop.limits.power_sustain_seconds = 120;
  loop.limits.thresholds.power_max_watts = 250;
  gpu::GpuSample s = Healthy();
  EXPECT_TRUE(loop.Round(s).empty());
  s.power_draw_watts = 260;
  EXPECT_TRUE(loop.Round(s).empty());  // over for 0 s
  EXPECT_TRUE(loop.Round(s).empty());  // 60 s
  auto a = loop.Round(s);              // 120 s: sustained
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].check, "power");
  EXPECT_EQ(a[0].threshold, 250.0);
  s.power_draw_watts = 245;  // inside the 5 % band: still raised
  EXPECT_TRUE(loop.Round(s).empty());
  s.power_draw_watts = 200;
  a = loop.Round(s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].state, "ok");
}

TEST(AlertRules, QuarantineAndReleaseAreAlerts) {
  Loop loop;
  gpu::GpuSample s = Healthy();
  loop.deployment_id = "dep-1";
  EXPECT_TRUE(loop.Round(s).empty());
  loop.quarantined = true;
  auto a = loop.Round(s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, "gpu_quarantined");
  EXPECT_EQ(a[0].severity, "critical");
  EXPECT_EQ(a[0].deployment_id, "dep-1");
  EXPECT_NE(a[0].message.find("XID 79"), std::string::npos);
  EXPECT_NE(a[0].message.find("keeps running"), std::string::npos);
  EXPECT_TRUE(loop.Round(s).empty());
  loop.quarantined = false;
  a = loop.Round(s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, "gpu_released");
  EXPECT_EQ(a[0].key, "gpu_quarantine/GPU-1");
  EXPECT_EQ(a[0].state, "released");
}

TEST(AlertRules, AGpuAlreadyQuarantinedAtStartIsNotNews) {
  Loop loop;
  loop.quarantined = true;
  EXPECT_TRUE(loop.Round(Healthy()).empty());
}

TEST(AlertRules, IdleRentedGpuUnderUtilizationMinWithHysteresis) {
  Loop loop;
  loop.utilization_min = 10;
  gpu::GpuSample s = Healthy();
  s.utilization_percent = 2;
  EXPECT_TRUE(loop.Round(s).empty());  // not rented: an idle free GPU is normal
  loop.deployment_id = "dep-7";
  auto a = loop.Round(s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].check, "utilization");
  EXPECT_EQ(a[0].state, "under");
  EXPECT_EQ(a[0].value, 2.0);
  EXPECT_EQ(a[0].threshold, 10.0);
  EXPECT_EQ(a[0].deployment_id, "dep-7");
  std::vector<telemetry::Alert> all;
  for (double u : {11.0, 9.0, 14.0, 3.0, 12.0}) {  // within the 5-point band: still idle
    s.utilization_percent = u;
    auto r = loop.Round(s);
    all.insert(all.end(), r.begin(), r.end());
  }
  EXPECT_TRUE(all.empty());
  s.utilization_percent = 15;
  a = loop.Round(s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].state, "ok");
  // The rental ends while idle: nothing to report.
  s.utilization_percent = 0;
  EXPECT_EQ(loop.Round(s).size(), 1u);
  loop.deployment_id.clear();
  EXPECT_TRUE(loop.Round(s).empty());
  EXPECT_FALSE(loop.alert_mem.gpus["GPU-1"].idle);
}

TEST(AlertRules, PlatformUnreachableForItsTimeAndBack) {
  AlertMemory mem;
  AlertRulesInput in;
  in.platform_unreachable_seconds = 600;
  in.last_platform_ok = kT0;
  in.now = kT0 + seconds(599);
  EXPECT_TRUE(DeriveAlerts(in, mem).empty());
  in.now = kT0 + seconds(600);
  auto a = DeriveAlerts(in, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, "platform_unreachable");
  EXPECT_EQ(a[0].key, "platform");
  EXPECT_EQ(a[0].value, 600.0);
  EXPECT_EQ(a[0].threshold, 600.0);
  in.now = kT0 + seconds(1800);
  EXPECT_TRUE(DeriveAlerts(in, mem).empty());  // still down: said once
  in.last_platform_ok = in.now;
  a = DeriveAlerts(in, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, "platform_reachable");
  EXPECT_EQ(a[0].severity, "info");
}

TEST(AlertRules, APlatformThatNeverAnsweredCountsFromTheFirstRound) {
  AlertMemory mem;
  AlertRulesInput in;
  in.platform_unreachable_seconds = 600;
  in.now = kT0;
  EXPECT_TRUE(DeriveAlerts(in, mem).empty());
  in.now = kT0 + seconds(300);
  EXPECT_TRUE(DeriveAlerts(in, mem).empty());
  in.now = kT0 + seconds(600);
  auto a = DeriveAlerts(in, mem);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].message.find("none since the agent started"), std::string::npos);
}

TEST(AlertRules, InputFromTheLoopsFacts) {
  std::vector<GpuHealth> verdicts = {Verdict("healthy", "GPU-A"), Verdict("warning", "GPU-B")};
  std::vector<gpu::GpuSample> samples(2);
  samples[0].uuid = "GPU-A";
  samples[0].utilization_percent = 3;
  samples[1].uuid = "GPU-B";
  std::vector<store::GpuRecord> records(2);
  records[0].uuid = "GPU-A";
  records[0].deployment_id = "dep-1";
  records[1].uuid = "GPU-B";
  records[1].quarantined_since = kT0;
  records[1].quarantine_reason = "ECC";
  config::MonitoringConfig cfg;
  cfg.gpu_thresholds.utilization_min = 10;
  cfg.alerts.platform_unreachable_seconds = 900;
  AlertRulesInput in = AlertInputFrom(verdicts, samples, records, cfg, kT0, SystemTime{});
  ASSERT_EQ(in.gpus.size(), 2u);
  EXPECT_EQ(in.gpus[0].deployment_id, "dep-1");
  EXPECT_EQ(in.gpus[0].utilization_percent, 3.0);
  EXPECT_FALSE(in.gpus[0].quarantined);
  EXPECT_TRUE(in.gpus[1].quarantined);
  EXPECT_EQ(in.gpus[1].quarantine_reason, "ECC");
  EXPECT_FALSE(in.last_platform_ok.has_value());  // the epoch: never answered
  EXPECT_EQ(in.platform_unreachable_seconds, 900);
  EXPECT_EQ(in.utilization_min, 10.0);
}

}  // namespace
}  // namespace taolie::health
