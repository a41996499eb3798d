// End-to-end: the agent's wall clock steps 2 h forward in the middle of a rental (libfaketime
// on the agent alone, monotonic time left alone); the rental keeps running, expires on real
// time and is billed for real time. The real agent binary, the simulator, a private dockerd,
// the fake NVML and the agent's managed PostgreSQL (started with a clean environment, so it
// keeps the true time).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kFaketimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

class ClockStepE2eTest : public AgentE2eTest {
 protected:
  std::optional<SystemTime> AcceptedAt(const std::string& dep, const std::string& kind) {
    for (const auto& r : sim_->Requests("/api/deployments/" + dep + "/" + kind)) {
      if (r.status == 200) return r.at;
    }
    return std::nullopt;
  }
  json Status() { return json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false); }
};

// Writes the libfaketime offset atomically (the agent re-reads the file on every call).
void WriteOffset(const std::string& path, const std::string& offset) {
  std::ofstream(path + ".tmp") << offset << "\n";
  std::filesystem::rename(path + ".tmp", path);
}

TEST_F(ClockStepE2eTest, WallClockStepForwardNeitherEndsNorRebillsARental) {
  if (!std::filesystem::exists(kFaketimeLib)) {
    if (InCi()) FAIL() << kFaketimeLib << " missing (install faketime; CI=true)";
    GTEST_SKIP() << kFaketimeLib << " missing: apt-get install faketime";
  }
  char tmpl[] = "/tmp/taolie-faketime-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string offset_file = dir + "/offset";
  WriteOffset(offset_file, "+0");
  HarnessOptions o;
  o.env = {{"LD_PRELOAD", kFaketimeLib},
           {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
           {"FAKETIME_TIMESTAMP_FILE", offset_file},
           {"FAKETIME_NO_CACHE", "1"}};
  StartAgent(o);

  const std::string dep = "clock-step-1";
  json payload = {{"deployment_id", dep},
                  {"image", SshImage()},
                  {"duration_minutes", 1},
                  {"price_per_hour", 6.0},
                  {"ports", {{"22", 22}}}};
  sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  ASSERT_FALSE(WaitEvent(dep, "success", 120s).is_null()) << "the rental never ran";
  const auto success_at = AcceptedAt(dep, "success");
  ASSERT_TRUE(success_at.has_value());

  // A quarter of the rental later (15 polls, one a second), the agent's wall clock jumps 2 h
  // ahead; its monotonic clock does not.
  ASSERT_TRUE(WaitForPolls(15, 60s));
  WriteOffset(offset_file, "+2h");
  const SystemTime stepped_at = std::chrono::system_clock::now();
  // The agent notices (duration monitor every second) and shows it on /status.
  json clock;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        json st = Status();
        if (!st.is_object() || !st.contains("clock")) return false;
        clock = st["clock"];
        return clock.value("wall_steps", 0) >= 1;
      },
      20s))
      << "no wall-clock step on /status: " << clock.dump();
  EXPECT_NEAR(clock.value("last_wall_step_seconds", 0.0), 7200.0, 60.0) << clock.dump();
  EXPECT_NE(agent_->Log().find("wall clock stepped by +72"), std::string::npos);
  // A few rounds later the rental still runs: the step did not end it.
  ASSERT_TRUE(WaitForPolls(3));
  EXPECT_TRUE(sim_->Events(dep, "terminated").empty()) << "the step ended the rental";
  auto c = Containers(dep);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_TRUE(c[0].running);

  // It expires on real time: about its duration after it became ready, not at the step.
  json ended = WaitEvent(dep, "terminated", 120s);
  ASSERT_FALSE(ended.is_null()) << "the rental never expired";
  EXPECT_EQ(ended["status"], "expired") << ended.dump();
  const auto ended_at = AcceptedAt(dep, "terminated");
  ASSERT_TRUE(ended_at.has_value());
  const double ready_to_end_s = std::chrono::duration<double>(*ended_at - *success_at).count();
  const double step_to_end_s = std::chrono::duration<double>(*ended_at - stepped_at).count();
  std::cout << "success -> terminated " << ready_to_end_s << " s (step -> terminated "
            << step_to_end_s << " s); body " << ended.dump() << "\n";
  // The rental's clock runs from the container's creation, so readiness (a few seconds) counts
  // in the minute; the event goes out within a monitor round and an outbox round of the end.
  EXPECT_GT(ready_to_end_s, 40.0);
  EXPECT_LT(ready_to_end_s, 75.0);
  EXPECT_GT(step_to_end_s, 20.0) << "it ended right after the step";
  // Billed for real time: about one minute of use, not 2 h nor nothing.
  EXPECT_EQ(ended.value("reserved_minutes", 0.0), 1.0);
  const double used = ended.value("used_minutes", -1.0);
  EXPECT_NEAR(used, ready_to_end_s / 60.0, 0.15) << ended.dump();
  EXPECT_LE(used, 1.0);
  EXPECT_NEAR(ended.value("unused_minutes", -1.0), 1.0 - used, 0.01) << ended.dump();
  EXPECT_NEAR(ended.value("usage_amount", -1.0), used / 60.0 * 6.0, 0.02) << ended.dump();
  EXPECT_TRUE(Managed().empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace taolie::testing
