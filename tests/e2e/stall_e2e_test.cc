// End-to-end: pulls that hang on a registry which accepts connections and never answers hold
// back no terminate of a running rental. The real agent binary, the simulator, a private
// dockerd, the fake NVML (eight GPUs) and the agent's managed PostgreSQL.
#include <gtest/gtest.h>

#include <map>

#include "../../bench/agent_status.h"  // shared with the benchmarks
#include "../../bench/stalling_registry.h"
#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kStopGraceSeconds = 3;  // the harness's deployment.stop_grace_seconds
constexpr int kSlack = 7;             // a poll round, Docker's stop and remove, the outbox

class StallE2eTest : public AgentE2eTest {
 protected:
  // Active deployments by id with their state, as the agent shows them on /status.
  std::map<std::string, std::string> AgentStates() {
    return ActiveDeploymentStates(agent_->status_port());
  }
  int CountInState(const std::vector<std::string>& ids, const std::string& state) {
    auto states = AgentStates();
    int n = 0;
    for (const auto& id : ids) n += states.count(id) > 0 && states[id] == state ? 1 : 0;
    return n;
  }
  // When the simulator accepted the first `kind` event of `dep` (system clock).
  std::optional<SystemTime> AcceptedAt(const std::string& dep, const std::string& kind) {
    for (const auto& r : sim_->Requests("/api/deployments/" + dep + "/" + kind)) {
      if (r.status == 200) return r.at;
    }
    return std::nullopt;
  }
};

TEST_F(StallE2eTest, TerminateOfRunningRentalIsNotHeldBackByFourHangingPulls) {
  StallingRegistry stall(5min);
  ASSERT_GT(stall.port(), 0) << "cannot listen on 127.0.0.1";
  HarnessOptions o;
  o.scenario = "eight_gpus.ini";
  o.extra_registries = {"127.0.0.1:" + std::to_string(stall.port())};
  StartAgent(o);

  const std::string running = "stall-running";
  json rental = {{"deployment_id", running},
                 {"image", SshImage()},
                 {"duration_minutes", 30},
                 {"ports", {{"22", 22}}}};
  const std::string deploy_cmd = sim_->QueueCommand(agent_id_, "deploy", rental.dump());
  ASSERT_FALSE(WaitEvent(running, "success", 120s).is_null()) << "the rental never ran";
  ASSERT_FALSE(Ack(deploy_cmd, 30s).is_null());

  // Four deploys whose images are on the stalling registry.
  std::vector<std::string> pulls, pull_cmds;
  for (int i = 1; i <= 4; ++i) {
    const std::string id = "stall-pull-" + std::to_string(i);
    pulls.push_back(id);
    // Small, so that admission's totals (90 % of a 2-CPU CI host) take all five rentals.
    json p = {
        {"deployment_id", id},    {"image", stall.Image("stall/img" + std::to_string(i) + ":1")},
        {"duration_minutes", 30}, {"cpu_limit", 0.1},
        {"memory_limit_mb", 256}, {"ports", {{"22", 22}}}};
    pull_cmds.push_back(sim_->QueueCommand(agent_id_, "deploy", p.dump()));
  }
  // They are pulling (the agent says so) and dockerd is connected to the stalling registry.
  // The agent runs three deploys at once; the fourth waits for a deploy thread.
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] { return CountInState(pulls, "pulling") >= 3 && stall.open() >= 1; }, 60s))
      << "pulling: " << CountInState(pulls, "pulling") << ", registry connections " << stall.open();
  ASSERT_TRUE(WaitForPolls(2));
  const int pulling = CountInState(pulls, "pulling");
  ASSERT_GE(pulling, 3) << "a pull ended on its own: the test proves nothing";

  // The terminate of the running rental completes within its grace period plus a few seconds.
  const SystemTime made_available = std::chrono::system_clock::now();
  const std::string term =
      sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", running}}.dump());
  json ended = WaitEvent(running, "terminated", std::chrono::seconds(kStopGraceSeconds + 60));
  ASSERT_FALSE(ended.is_null()) << "the terminate waited behind the hanging pulls";
  EXPECT_EQ(ended["status"], "terminated");
  auto at = AcceptedAt(running, "terminated");
  ASSERT_TRUE(at.has_value());
  const double latency_s = std::chrono::duration<double>(*at - made_available).count();
  std::cout << "terminate latency with " << pulling << " hanging pulls (" << stall.open()
            << " connections held by the stalling registry): " << latency_s << " s\n";
  EXPECT_LE(latency_s, kStopGraceSeconds + kSlack);
  EXPECT_EQ(Ack(term, 30s).value("result", ""), "succeeded");
  EXPECT_TRUE(Containers(running).empty());
  EXPECT_EQ(CountInState(pulls, "pulling"), pulling) << "the pulls were expected to still hang";

  // Terminating the pulling deployments cancels their pulls: each deploy ends without a
  // success, and no container is left.
  std::vector<std::string> terms;
  for (const auto& id : pulls) {
    terms.push_back(sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", id}}.dump()));
  }
  for (size_t i = 0; i < pulls.size(); ++i) {
    json ack = Ack(pull_cmds[i], 60s);
    ASSERT_FALSE(ack.is_null()) << pulls[i] << ": deploy never acked";
    EXPECT_EQ(ack.value("result", ""), "failed") << pulls[i] << ": " << ack.dump();
    EXPECT_EQ(Ack(terms[i], 30s).value("result", ""), "succeeded") << pulls[i];
    EXPECT_TRUE(sim_->Events(pulls[i], "success").empty()) << pulls[i];
  }
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return AgentStates().empty(); }, 30s))
      << "still active on /status: " << AgentStates().size();
  auto db = OpenAgentDb(agent_->root() + "/data");
  ASSERT_NE(db, nullptr);
  auto active = db->ActiveDeployments();
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty());
  auto gpus = db->ListGpus();
  ASSERT_TRUE(gpus.ok());
  for (const auto& g : *gpus) EXPECT_TRUE(g.deployment_id.empty()) << g.uuid << " still claimed";
  EXPECT_TRUE(Managed().empty()) << "a container was left";
  for (const auto& id : pulls) {
    auto d = db->GetDeployment(id);
    ASSERT_TRUE(d.ok());
    if (d->has_value()) {
      std::cout << id << ": " << domain::DeploymentStateName((*d)->state) << " " << (*d)->end_status
                << " (" << (*d)->error_stage << ": " << (*d)->error << ")"
                << ", events failed=" << sim_->Events(id, "failed").size()
                << " terminated=" << sim_->Events(id, "terminated").size() << "\n";
    } else {
      std::cout << id << ": never admitted (terminated while queued)\n";
    }
  }
}

}  // namespace
}  // namespace taolie::testing
