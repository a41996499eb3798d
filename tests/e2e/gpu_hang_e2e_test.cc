// End-to-end: one GPU whose driver calls hang (fake NVML, changed while the agent runs) is
// reported unhealthy, driver unresponsive, while the other GPU is read and fine; a deploy
// naming the hung GPU is refused (it is quarantined), and SIGTERM ends the agent quickly
// although the call still hangs. The real agent binary, the simulator, a private dockerd and
// the agent's managed PostgreSQL.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "domain/enums.h"
#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kUuid0[] = "GPU-bbbbbbbb-0000-4000-8000-000000000000";
constexpr char kUuid1[] = "GPU-bbbbbbbb-0000-4000-8000-000000000001";

class GpuHangE2eTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    char tmpl[] = "/tmp/taolie-scenario-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    scenario_ = dir_ + "/gpus.ini";
  }
  void TearDown() override {
    // Let a hung call return, so that nothing of this test keeps sleeping in the fake.
    if (!scenario_.empty()) Write(Gpus(""));
    AgentE2eTest::TearDown();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Written whole and renamed over the old file: the fake never reads half a file.
  void Write(const std::string& text) {
    {
      std::ofstream out(scenario_ + ".tmp");
      out << text;
    }
    std::rename((scenario_ + ".tmp").c_str(), scenario_.c_str());
  }
  static std::string Gpus(const std::string& gpu1_extra) {
    return std::string("gpu_count=2\n[gpu0]\nuuid=") + kUuid0 + "\nname=NVIDIA A100-SXM4-80GB\n" +
           "fan=none\n[gpu1]\nuuid=" + kUuid1 + "\nname=NVIDIA A100-SXM4-80GB\nfan=none\n" +
           gpu1_extra;
  }
  // The last health push, or null.
  json LastHealth() {
    auto requests = sim_->Requests("/api/host-agents/health");
    for (auto it = requests.rbegin(); it != requests.rend(); ++it) {
      json h = json::parse(it->body, nullptr, false);
      if (h.is_object() && h.contains("gpus")) return h;
    }
    return json();
  }

  std::string dir_, scenario_;
};

TEST_F(GpuHangE2eTest, HungGpuIsUnhealthyQuarantinedAndSigtermIsNotHeldBack) {
  Write(Gpus(""));
  HarnessOptions o;
  o.scenario = scenario_;
  StartAgent(o);
  ASSERT_EQ(json::parse(*sim_->LatestRegistration())["gpu_count"], 2);

  // Every call into GPU 1 hangs from now on (10 minutes).
  Write(Gpus("hang_ms=600000\n"));
  json health;
  auto gpu = [&](const json& h, int i) -> const json& { return h["gpus"][i]; };
  const bool reported = sim::Simulator::WaitFor(
      [&] {
        json h = LastHealth();
        if (h.is_null() || h["gpus"].size() != 2) return false;
        const json& g1 = gpu(h, 1);
        if (g1["health"] != "unhealthy" || !g1["checks"].contains("driver") ||
            g1["checks"]["driver"]["message"].get<std::string>().find("unresponsive") ==
                std::string::npos) {
          return false;
        }
        health = h;
        return true;
      },
      60s);
  ASSERT_TRUE(reported) << "last health push: " << LastHealth().dump();
  // GPU 0 was read in the same round and is fine; the host stays healthy (GPU 0 is rentable).
  EXPECT_EQ(gpu(health, 0)["uuid"], kUuid0);
  EXPECT_EQ(gpu(health, 0)["health"], "healthy") << gpu(health, 0).dump();
  EXPECT_EQ(gpu(health, 0)["checks"]["driver"]["severity"], "ok") << gpu(health, 0).dump();
  EXPECT_EQ(gpu(health, 1)["uuid"], kUuid1);
  EXPECT_EQ(health["is_healthy"], true) << health.dump();

  // The status page shows it as well (the store's health of GPU 1).
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
        if (!st.is_object() || !st.contains("gpus") || st["gpus"].size() != 2) return false;
        for (const auto& g : st["gpus"]) {
          if (g["uuid"] == kUuid1 &&
              g["health"] == static_cast<int>(domain::GpuHealthState::kUnhealthy)) {
            return true;
          }
        }
        return false;
      },
      30s))
      << HttpGet(agent_->status_port(), "/status");

  // Quarantined: a deploy naming GPU 1 is refused, nothing is started.
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        json h = LastHealth();
        return !h.is_null() && h["gpus"].size() == 2 && gpu(h, 1)["checks"].contains("quarantine");
      },
      30s))
      << LastHealth().dump();
  const std::string cmd = sim_->QueueCommand(agent_id_, "deploy",
                                             json{{"deployment_id", "hang-1"},
                                                  {"image", SshImage()},
                                                  {"gpu_uuids", {kUuid1}},
                                                  {"ports", {{"22", 22}}}}
                                                 .dump());
  json ack = Ack(cmd, 30s);
  ASSERT_FALSE(ack.is_null()) << "the deploy was never acked";
  EXPECT_NE(ack["result"], "succeeded") << ack.dump();
  EXPECT_TRUE(Containers("hang-1").empty());
  EXPECT_TRUE(sim_->Events("hang-1", "success").empty());

  // SIGTERM while the call into GPU 1 still hangs: the agent exits, and soon.
  const auto start = std::chrono::steady_clock::now();
  const int status = agent_->Terminate(10s);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_NE(status, -1) << "the agent did not exit within 10 s of SIGTERM";
  std::cout << "deploy on the hung GPU: " << ack.value("result", "") << " ("
            << ack.value("error", "") << "); SIGTERM to exit with a call hanging: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  EXPECT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_LT(took, 5s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
}

}  // namespace
}  // namespace taolie::testing
