// Unit tests of the agent's own logic: health rules, work queue, periodic runner, helpers.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "engine/events.h"
#include "health/health_rules.h"
#include "loops/periodic_runner.h"

namespace taolie::engine {
namespace {

gpu::GpuSample Healthy() {
  gpu::GpuSample s;
  s.index = 0;
  s.uuid = "GPU-1";
  s.temperature_c = 50;
  s.power_draw_watts = 100;
  s.power_limit_watts = 300;
  s.memory_used_mb = 100;
  s.memory_total_mb = 1000;
  s.fan_speed_percent = 40;
  s.ecc_volatile_uncorrected = 0;
  s.throttle_reasons = 0;
  return s;
}

struct HealthCase {
  const char* name;
  void (*mutate)(gpu::GpuSample&);
  std::vector<uint64_t> xids;
  const char* want_health;
  const char* failing_check;  // "" = none
};

TEST(HealthRules, Table) {
  config::GpuThresholds t;  // temperature_max 85, critical 90, power 105 % of the limit
  t.power_max_watts = 250;
  std::vector<HealthCase> cases = {
      {"healthy", [](gpu::GpuSample&) {}, {}, "healthy", ""},
      {"hot", [](gpu::GpuSample& s) { s.temperature_c = 86; }, {}, "warning", "temperature"},
      {"warm is fine", [](gpu::GpuSample& s) { s.temperature_c = 82; }, {}, "healthy", ""},
      {"critical", [](gpu::GpuSample& s) { s.temperature_c = 95; }, {}, "unhealthy", "temperature"},
      {"over power_max",
       [](gpu::GpuSample& s) { s.power_draw_watts = 260; },
       {},
       "warning",
       "power"},
      {"full memory is a renter's load",
       [](gpu::GpuSample& s) { s.memory_used_mb = 1000; },
       {},
       "healthy",
       ""},
      {"ecc", [](gpu::GpuSample& s) { s.ecc_volatile_uncorrected = 2; }, {}, "unhealthy", "ecc"},
      {"throttle", [](gpu::GpuSample& s) { s.throttle_reasons = 0x40; }, {}, "warning", "throttle"},
      {"idle throttle ok", [](gpu::GpuSample& s) { s.throttle_reasons = 0x1; }, {}, "healthy", ""},
      {"lost", [](gpu::GpuSample& s) { s.lost = true; }, {}, "unhealthy", "driver"},
      {"read error", [](gpu::GpuSample& s) { s.error = "Unknown Error"; }, {}, "warning", "driver"},
      {"xid 79", [](gpu::GpuSample&) {}, {79}, "unhealthy", "xid"},
      {"xid 13 is the renter's program", [](gpu::GpuSample&) {}, {13}, "healthy", ""},
      {"xid 63 warns", [](gpu::GpuSample&) {}, {63}, "warning", "xid"},
      {"xid 94 warns", [](gpu::GpuSample&) {}, {94}, "warning", "xid"},
      {"xid 46 needs a reset", [](gpu::GpuSample&) {}, {46}, "unhealthy", "xid"},
      {"xid 13 then 48", [](gpu::GpuSample&) {}, {13, 48}, "unhealthy", "xid"},
      {"fanless is fine",
       [](gpu::GpuSample& s) { s.fan_speed_percent.reset(); },
       {},
       "healthy",
       ""},
  };
  for (const auto& c : cases) {
    gpu::GpuSample s = Healthy();
    c.mutate(s);
    std::vector<gpu::XidEvent> xids;
    for (auto x : c.xids) xids.push_back({"GPU-1", x, std::chrono::system_clock::now()});
    health::GpuHealth h = health::EvaluateGpu(s, t, xids);
    EXPECT_EQ(h.health, c.want_health) << c.name;
    std::string failing;
    for (const auto& chk : h.checks) {
      if (!chk.ok) failing = chk.name;
    }
    EXPECT_EQ(failing, c.failing_check) << c.name;
  }
}

// A renter's full load (power at the enforced limit, the framebuffer full) is no health
// problem; power_max and memory_warning_percent make it one when the owner asks.
TEST(HealthRules, FullLoadIsHealthyUnlessTheOwnerSetsLimits) {
  config::GpuThresholds t;
  gpu::GpuSample s = Healthy();
  s.power_draw_watts = 300;  // = the enforced limit
  s.memory_used_mb = 1000;   // of 1000
  EXPECT_EQ(health::EvaluateGpu(s, t, {}).health, "healthy");
  s.power_draw_watts = 320;  // past 105 % of the limit: the cap does not hold
  EXPECT_EQ(health::EvaluateGpu(s, t, {}).health, "warning");
  s.power_draw_watts = 300;
  t.power_max_watts = 280;
  EXPECT_EQ(health::EvaluateGpu(s, t, {}).health, "warning");
  t.power_max_watts = 0;
  t.memory_warning_percent = 95;
  EXPECT_EQ(health::EvaluateGpu(s, t, {}).health, "warning");
}

TEST(HealthRules, ReportFlagsAndStatus) {
  config::GpuThresholds t;
  health::HostHealthInput in;
  gpu::GpuSample hot = Healthy();
  hot.temperature_c = 85;
  in.gpus = {health::EvaluateGpu(Healthy(), t, {}), health::EvaluateGpu(hot, t, {})};
  in.storage_total_bytes = 100ull << 30;
  in.storage_available_bytes = 50ull << 30;
  in.free_healthy_gpus = 2;
  auto r = health::BuildHealthReport(in, SystemTime{});
  EXPECT_TRUE(r.is_healthy);
  EXPECT_FALSE(r.temperature_ok);
  EXPECT_TRUE(r.power_ok);
  EXPECT_TRUE(r.storage_ok);
  EXPECT_EQ(r.status, "available");
  EXPECT_LT(r.gpu_performance_score, 100.0);

  in.storage_available_bytes = 1ull << 30;  // 1 %: storage check fails, host unhealthy
  r = health::BuildHealthReport(in, SystemTime{});
  EXPECT_FALSE(r.storage_ok);
  EXPECT_EQ(r.status, "unhealthy");

  in.storage_available_bytes = 50ull << 30;
  in.free_healthy_gpus = 0;
  in.active_deployments = 2;
  EXPECT_EQ(health::BuildHealthReport(in, SystemTime{}).status, "busy");
  in.draining = true;
  EXPECT_EQ(health::BuildHealthReport(in, SystemTime{}).status, "draining");
  in.draining = false;
  in.platform_reachable = false;
  EXPECT_FALSE(health::BuildHealthReport(in, SystemTime{}).network_ok);
}

class CountingLoop : public loops::Loop {
 public:
  const char* Name() const override { return "counting"; }
  Status RunOnce(std::stop_token) override {
    int n = ++rounds;
    if (n <= fail_first) return MakeError(ErrorCode::kUnavailable, "down");
    return OkStatus();
  }
  std::atomic<int> rounds{0};
  int fail_first = 0;
};

TEST(PeriodicRunner, WakeRunsAtOnceAndStopIsPrompt) {
  CountingLoop loop;
  loops::PeriodicRunner runner(loop, std::chrono::hours(1), std::chrono::milliseconds(0));
  runner.Start();
  for (int i = 0; i < 500 && loop.rounds < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(loop.rounds, 1);  // first round at once (no splay), next one an hour later
  runner.Wake();
  for (int i = 0; i < 500 && loop.rounds < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(loop.rounds, 2);
  auto t0 = std::chrono::steady_clock::now();
  runner.RequestStop();
  runner.Join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(runner.stats().rounds, 2u);
}

TEST(PeriodicRunner, FailureRetriesSoonerThanTheInterval) {
  CountingLoop loop;
  loop.fail_first = 1;
  // A failing round is retried after a jittered backoff (<= 1 s the first time), not an hour.
  loops::PeriodicRunner runner(loop, std::chrono::hours(1), std::chrono::milliseconds(0));
  runner.Start();
  for (int i = 0; i < 300 && loop.rounds < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(loop.rounds, 2);
  EXPECT_EQ(runner.stats().failures, 1u);
}

TEST(AckPath, RoundTrip) {
  EXPECT_EQ(CommandIdFromAckPath("/api/host-agents/agent-1/commands/cmd-7/ack"), "cmd-7");
  EXPECT_EQ(CommandIdFromAckPath("/api/host-agents/agent-1/commands/a%2Fb%20c/ack"), "a/b c");
  EXPECT_FALSE(CommandIdFromAckPath("/api/host-agents/agent-1/heartbeat").has_value());
}

}  // namespace
}  // namespace taolie::engine
