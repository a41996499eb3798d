// The health rules with memory (issue 8 item 2): hysteresis, sustained power, rates, the
// GPU's own thresholds, memory repair state, PCIe, recovery action, and the host's flags.
#include "health/health_rules.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fakes/gpu_samples.h"
#include "gpu/xid_catalog.h"

namespace taolie::health {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

const SystemTime kT0 = SystemTime{} + std::chrono::hours(24 * 365 * 50);

gpu::GpuSample Healthy() { return taolie::testing::HealthySample(); }

// One GPU judged round after round with its memory.
struct Rounds {
  HealthLimits limits;
  GpuHealthMemory mem;
  gpu::GpuInfo info;
  GpuHealth Run(const gpu::GpuSample& s, SystemTime now, std::vector<uint64_t> xids = {},
                std::string driver_error = "") {
    GpuHealthInput in;
    in.sample = &s;
    in.info = &info;
    in.now = now;
    in.driver_error = std::move(driver_error);
    for (auto x : xids) in.xids.push_back({s.uuid, x, now});
    return EvaluateGpu(in, limits, mem);
  }
};

const HealthCheck* Find(const GpuHealth& g, const std::string& name) {
  for (const auto& c : g.checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string Severity(const GpuHealth& g, const std::string& name) {
  const HealthCheck* c = Find(g, name);
  return c == nullptr ? "absent" : c->severity;
}

TEST(HealthRulesMemory, ATemperatureHoveringAtItsThresholdRaisesOnceAndClearsBelowTheBand) {
  Rounds r;  // temperature_max 85, hysteresis 3 °C
  gpu::GpuSample s = Healthy();
  std::vector<std::string> got;
  int transitions = 0;
  std::string last = "ok";
  for (double t : {84.0, 86.0, 84.0, 85.5, 83.0, 84.9, 82.0, 81.0}) {
    s.temperature_c = t;
    std::string sev = Severity(r.Run(s, kT0), "temperature");
    if (sev != last) ++transitions;
    last = sev;
    got.push_back(sev);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"ok", "warning", "warning", "warning", "warning",
                                           "warning", "ok", "ok"}));
  EXPECT_EQ(transitions, 2);  // raised once, cleared once
}

TEST(HealthRulesMemory, TemperatureIsJudgedAgainstTheLowerOfTheConfiguredAndTheGpusOwn) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.temperature_slowdown_c = 80;
  s.temperature_shutdown_c = 88;
  s.temperature_c = 81;
  GpuHealth g = r.Run(s, kT0);
  ASSERT_EQ(Severity(g, "temperature"), "warning");
  EXPECT_EQ(Find(g, "temperature")->threshold, 80.0);
  EXPECT_NE(Find(g, "temperature")->message.find("slowdown"), std::string::npos);
  s.temperature_c = 88;  // the GPU's shutdown threshold is under temperature_critical_c (90)
  g = r.Run(s, kT0);
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_EQ(Find(g, "temperature")->threshold, 88.0);
  EXPECT_NE(g.reason.find("temperature"), std::string::npos);
}

TEST(HealthRulesMemory, PowerCountsOnlyWhenSustainedAndClearsBelowItsBand) {
  Rounds r;  // 105 % of a 300 W limit = 315 W, sustained 60 s
  gpu::GpuSample s = Healthy();
  s.power_draw_watts = 330;
  EXPECT_EQ(Severity(r.Run(s, kT0), "power"), "ok");
  EXPECT_EQ(Severity(r.Run(s, kT0 + seconds(30)), "power"), "ok");
  GpuHealth g = r.Run(s, kT0 + seconds(60));
  EXPECT_EQ(Severity(g, "power"), "warning");
  EXPECT_NE(Find(g, "power")->message.find("60 s"), std::string::npos);
  s.power_draw_watts = 305;  // under 315 but inside the 5 % band: still over
  EXPECT_EQ(Severity(r.Run(s, kT0 + seconds(90)), "power"), "warning");
  s.power_draw_watts = 290;
  EXPECT_EQ(Severity(r.Run(s, kT0 + seconds(120)), "power"), "ok");
  s.power_draw_watts = 330;  // a new run over the limit starts its own clock
  EXPECT_EQ(Severity(r.Run(s, kT0 + seconds(150)), "power"), "ok");
  // A spike that does not last never counts.
  s.power_draw_watts = 290;
  EXPECT_EQ(Severity(r.Run(s, kT0 + seconds(180)), "power"), "ok");
  // power_max below the enforced limit is the threshold.
  r.limits.thresholds.power_max_watts = 250;
  r.limits.power_sustain_seconds = 0;
  s.power_draw_watts = 260;
  g = r.Run(s, kT0 + seconds(200));
  EXPECT_EQ(Severity(g, "power"), "warning");
  EXPECT_EQ(Find(g, "power")->threshold, 250.0);
}

TEST(HealthRulesMemory, CorrectedEccWarnsOnlyPastItsRate) {
  Rounds r;  // 1000 per hour
  gpu::GpuSample s = Healthy();
  s.ecc_volatile_corrected = 100;
  EXPECT_EQ(Severity(r.Run(s, kT0), "ecc_corrected"), "ok");
  s.ecc_volatile_corrected = 600;
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(10)), "ecc_corrected"), "ok");
  s.ecc_volatile_corrected = 1200;  // 1100 within the hour
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(20)), "ecc_corrected"), "warning");
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(61)), "ecc_corrected"), "warning");  // window ends
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(70)), "ecc_corrected"), "ok");       // none since
  // A slow trickle (500 an hour) never warns.
  Rounds slow;
  for (int m = 0; m <= 180; m += 10) {
    s.ecc_volatile_corrected = static_cast<uint64_t>(m) * 500 / 60;
    EXPECT_EQ(Severity(slow.Run(s, kT0 + minutes(m)), "ecc_corrected"), "ok") << m;
  }
}

TEST(HealthRulesMemory, UncorrectedEccFailsAndEccOffIsNoFault) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.ecc_volatile_uncorrected = 1;
  GpuHealth g = r.Run(s, kT0);
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_EQ(Severity(g, "ecc"), "unhealthy");
  s.ecc_enabled = false;
  g = r.Run(s, kT0);
  EXPECT_EQ(Severity(g, "ecc"), "ok");
  EXPECT_EQ(g.health, "healthy");
}

// Issue 17 item 7: volatile uncorrectable ECC errors clear only with a GPU reset (DCGM:
// "Drain the GPU and reset it or reboot the node"), so the verdict says it needs one.
TEST(HealthRulesMemory, VolatileUncorrectableEccNeedsAReset) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.ecc_volatile_uncorrected = 0;
  EXPECT_FALSE(r.Run(s, kT0).needs_reset);
  s.ecc_volatile_uncorrected = 3;
  GpuHealth g = r.Run(s, kT0 + seconds(60));
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_TRUE(g.needs_reset);
  s.ecc_enabled = false;  // ECC off: the counter means nothing
  EXPECT_FALSE(r.Run(s, kT0 + seconds(120)).needs_reset);
}

// Every XID whose remedy in the catalog is a GPU reset or a reboot sets needs_reset, among
// them each XID DCGM's health watch counts as a failure; the renter's own do not.
TEST(HealthRulesMemory, EveryXidWhoseRemedyIsAResetOrAReboot) {
  for (uint64_t xid : {48, 64, 74, 79, 95, 119, 120, 140, 46, 62, 109, 143}) {
    Rounds r;
    GpuHealth g = r.Run(Healthy(), kT0, {xid});
    EXPECT_EQ(g.health, "unhealthy") << xid;
    EXPECT_TRUE(g.needs_reset) << xid;
  }
  for (uint64_t xid = 0; xid < 200; ++xid) {
    const gpu::XidClass c = gpu::ClassifyXid(xid);
    Rounds r;
    const bool want = !c.application && (c.action == gpu::XidAction::kResetGpu ||
                                         c.action == gpu::XidAction::kRebootHost);
    EXPECT_EQ(r.Run(Healthy(), kT0, {xid}).needs_reset, want) << xid;
  }
}

TEST(HealthRulesJson, AnEntryCarriesItsQuarantine) {
  GpuHealth g;
  g.uuid = "GPU-a";
  auto j = nlohmann::json::parse(GpuHealthToJson(g));
  EXPECT_EQ(j.at("quarantined"), false);
  EXPECT_TRUE(j.at("quarantine_reason").is_null());
  g.quarantined = true;
  g.quarantine_reason = "ecc: 3 uncorrected ECC errors since the driver loaded";
  j = nlohmann::json::parse(GpuHealthToJson(g));
  EXPECT_EQ(j.at("quarantined"), true);
  EXPECT_EQ(j.at("quarantine_reason"), g.quarantine_reason);
}

TEST(HealthRulesMemory, RetiredPagesAndRemappedRowsAtDcgmsLimits) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.retired_pages_sbe = 10;
  s.retired_pages_dbe = 2;
  s.retired_pages_pending = false;
  EXPECT_EQ(Severity(r.Run(s, kT0), "retired_pages"), "ok");
  s.retired_pages_pending = true;
  EXPECT_EQ(Severity(r.Run(s, kT0), "retired_pages"), "warning");
  s.retired_pages_sbe = 40;
  s.retired_pages_dbe = 23;  // 63 in all
  EXPECT_EQ(r.Run(s, kT0).health, "unhealthy");

  gpu::GpuSample a = Healthy();  // a card that remaps rows
  a.remapped_rows_correctable = 3;
  a.remapped_rows_uncorrectable = 1;
  a.remapped_rows_pending = false;
  a.remapped_rows_failure = false;
  EXPECT_EQ(Severity(r.Run(a, kT0), "remapped_rows"), "ok");
  a.remapped_rows_pending = true;
  EXPECT_EQ(Severity(r.Run(a, kT0), "remapped_rows"), "warning");
  a.remapped_rows_pending = false;
  a.remapped_rows_uncorrectable = 512;
  EXPECT_EQ(Severity(r.Run(a, kT0), "remapped_rows"), "warning");
  a.remapped_rows_failure = true;
  EXPECT_EQ(r.Run(a, kT0).health, "unhealthy");
  EXPECT_EQ(Severity(r.Run(Healthy(), kT0), "remapped_rows"), "absent");  // not reported
}

TEST(HealthRulesMemory, PcieWidthAndReplayRate) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.pcie_gen = 4;
  s.pcie_max_gen = 5;  // a gen-5 card in a gen-4 slot, or idle: no fault
  s.pcie_width = 16;
  s.pcie_max_width = 16;
  s.pcie_replay_count = 1000;
  GpuHealth g = r.Run(s, kT0);
  EXPECT_EQ(Severity(g, "pcie_link"), "ok");
  EXPECT_EQ(Severity(g, "pcie_replay"), "absent");  // a rate needs two rounds
  s.pcie_replay_count = 1010;  // 10 a minute; gen 4 x16 allows ceil(0.96 x 16) = 16
  g = r.Run(s, kT0 + minutes(1));
  EXPECT_EQ(Severity(g, "pcie_replay"), "ok");
  EXPECT_EQ(Find(g, "pcie_replay")->threshold, 16.0);
  s.pcie_replay_count = 1110;
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(2)), "pcie_replay"), "warning");
  s.pcie_width = 8;
  g = r.Run(s, kT0 + minutes(3));
  EXPECT_EQ(Severity(g, "pcie_link"), "warning");
  EXPECT_NE(Find(g, "pcie_link")->message.find("x8 of x16"), std::string::npos);
}

TEST(HealthRulesMemory, RecoveryActionXidsAndALostGpuSayWhetherAResetIsNeeded) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.recovery_action = 0;
  EXPECT_FALSE(r.Run(s, kT0).needs_reset);
  s.recovery_action = 3;
  GpuHealth g = r.Run(s, kT0);
  EXPECT_EQ(g.health, "warning");
  EXPECT_FALSE(g.needs_reset);
  s.recovery_action = 1;
  g = r.Run(s, kT0);
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_TRUE(g.needs_reset);
  s.recovery_action = 0;
  g = r.Run(s, kT0, {48});  // double-bit ECC error
  EXPECT_EQ(g.health, "unhealthy");
  g = r.Run(s, kT0, {46});  // GPU stopped processing: a reset
  EXPECT_TRUE(g.needs_reset);
  g = r.Run(s, kT0, {13});  // the renter's program
  EXPECT_EQ(g.health, "healthy");
  EXPECT_FALSE(g.needs_reset);
  gpu::GpuSample lost = Healthy();
  lost.lost = true;
  g = r.Run(lost, kT0);
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_TRUE(g.needs_reset);
}

TEST(HealthRulesMemory, AnUnresponsiveDriverMakesTheGpuUnhealthyAtOnce) {
  Rounds r;
  GpuHealth g = r.Run(Healthy(), kT0, {}, "NVML sample timed out after 5000 ms");
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_EQ(Severity(g, "driver"), "unhealthy");
  EXPECT_NE(g.reason.find("unresponsive"), std::string::npos);
  EXPECT_EQ(r.Run(Healthy(), kT0 + minutes(1)).health, "healthy");
}

TEST(HealthRulesMemory, OneUnresponsiveGpuIsUnhealthyWhileARereadErrorOnlyWarns) {
  Rounds r;
  gpu::GpuSample hung = Healthy();
  hung.unresponsive = true;
  hung.error = "unresponsive: nvmlDeviceGetPowerUsage did not return within 5000 ms";
  GpuHealth g = r.Run(hung, kT0);
  EXPECT_EQ(g.health, "unhealthy");
  EXPECT_NE(g.reason.find("did not return"), std::string::npos) << g.reason;
  gpu::GpuSample flaky = Healthy();
  flaky.error = "nvmlDeviceGetFanSpeed: Unknown Error (999)";
  EXPECT_EQ(Severity(r.Run(flaky, kT0 + minutes(1)), "driver"), "warning");
}

TEST(HealthRulesMemory, FanOnlyOnCardsWithOneAndInforom) {
  Rounds r;
  r.limits.thresholds.fan_min_percent = 20;
  gpu::GpuSample s = Healthy();
  s.temperature_c = 86;
  s.fan_speed_percent = 0;
  r.info.fan_count = 2;
  EXPECT_EQ(Severity(r.Run(s, kT0), "fan"), "warning");
  r.info.fan_count = 0;  // passively cooled: a zero reading means nothing
  EXPECT_EQ(Severity(r.Run(s, kT0), "fan"), "absent");
  gpu::GpuSample bad = Healthy();
  bad.inforom_valid = false;
  EXPECT_EQ(Severity(r.Run(bad, kT0), "inforom"), "warning");
}

TEST(HealthRulesMemory, ThermalViolationTimeSinceTheLastRoundWarns) {
  Rounds r;
  gpu::GpuSample s = Healthy();
  s.thermal_violation_ns = 5'000'000'000;
  EXPECT_EQ(Severity(r.Run(s, kT0), "throttle"), "ok");
  EXPECT_EQ(Severity(r.Run(s, kT0 + minutes(1)), "throttle"), "ok");  // not grown
  s.thermal_violation_ns = 7'000'000'000;
  GpuHealth g = r.Run(s, kT0 + minutes(2));
  EXPECT_EQ(Severity(g, "throttle"), "warning");
  EXPECT_NE(Find(g, "throttle")->message.find("2000 ms"), std::string::npos);
}

TEST(HostHealthFromGpus, OneSickGpuOfEightLeavesTheHostHealthyNoneRentableDoesNot) {
  config::GpuThresholds t;
  HostHealthInput in;
  in.storage_total_bytes = 100ull << 30;
  in.storage_available_bytes = 50ull << 30;
  in.free_healthy_gpus = 7;
  for (int i = 0; i < 8; ++i) {
    gpu::GpuSample s = Healthy();
    s.index = i;
    s.uuid = "GPU-" + std::to_string(i);
    if (i == 3) s.ecc_volatile_uncorrected = 4;
    in.gpus.push_back(EvaluateGpu(s, t, {}));
  }
  auto r = BuildHealthReport(in, kT0);
  EXPECT_TRUE(r.is_healthy);
  EXPECT_EQ(r.status, "available");
  EXPECT_LT(r.system_stability_score, 100.0);
  EXPECT_GE(r.system_stability_score, 95.0);  // 30 points over 8 GPUs
  in.rentable_gpus = 0;                       // the other seven quarantined or held back
  in.free_healthy_gpus = 0;
  r = BuildHealthReport(in, kT0);
  EXPECT_FALSE(r.is_healthy);
  EXPECT_EQ(r.status, "unhealthy");
  // Every GPU unhealthy, counted from the verdicts.
  in.rentable_gpus = -1;
  for (auto& g : in.gpus) g.health = "unhealthy";
  EXPECT_FALSE(BuildHealthReport(in, kT0).is_healthy);
}

}  // namespace
}  // namespace taolie::health
