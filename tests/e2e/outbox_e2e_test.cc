// End-to-end: one event the platform refuses forever holds back nobody else. The real agent
// binary, the simulator with a per-endpoint fault, a private dockerd, the fake NVML and the
// agent's managed PostgreSQL.
#include <gtest/gtest.h>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class OutboxE2eTest : public AgentE2eTest {
 protected:
  int Answered(const std::string& path, int status) {
    int n = 0;
    for (const auto& r : sim_->Requests(path)) n += r.status == status ? 1 : 0;
    return n;
  }
};

// The platform answers 500 forever on deployment A's `expiring`: deployment B's `success` and
// its command's ack still arrive, and once A has ended its `terminated` supersedes the
// undeliverable warning.
TEST_F(OutboxE2eTest, OneEventRefusedForeverHoldsBackNoOtherDeploymentNorAck) {
  StartAgent();  // free ports: the harness picks them
  const std::string a = "e2e-outbox-a", b = "e2e-outbox-b";
  const std::string a_expiring = "/api/deployments/" + a + "/expiring";
  sim_->SetPathFault(a_expiring, 500);  // forever

  json pa = {{"deployment_id", a},
             {"image", SshImage()},
             {"duration_minutes", 1},
             {"ports", {{"22", 22}}}};
  const std::string cmd_a = sim_->QueueCommand(agent_id_, "deploy", pa.dump());
  ASSERT_FALSE(WaitEvent(a, "success", 120s).is_null()) << "A never ran";
  ASSERT_FALSE(Ack(cmd_a, 30s).is_null());
  // The warning comes 30 s before the end; the agent keeps retrying it with backoff.
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return Answered(a_expiring, 500) >= 2; }, 60s))
      << "A's expiring was not retried";

  // While A's expiring is failing, B is deployed: its success and its ack arrive.
  json pb = {{"deployment_id", b},
             {"image", SshImage()},
             {"duration_minutes", 30},
             {"ports", {{"22", 22}}}};
  const std::string cmd_b = sim_->QueueCommand(agent_id_, "deploy", pb.dump());
  json success_b = WaitEvent(b, "success", 60s);
  ASSERT_FALSE(success_b.is_null()) << "B's success was held back";
  json ack_b = Ack(cmd_b, 30s);
  ASSERT_FALSE(ack_b.is_null()) << "B's ack was held back";
  EXPECT_EQ(ack_b["result"], "succeeded");
  EXPECT_TRUE(sim_->Events(a, "expiring").empty());
  const bool a_ended_before_b = !sim_->Events(a, "terminated").empty() || Containers(a).empty();
  EXPECT_FALSE(a_ended_before_b) << "A ended before B's events arrived: the test proves nothing";

  // A expires: its terminated goes out, its expiring is superseded (never accepted).
  json ended = WaitEvent(a, "terminated", 90s);
  ASSERT_FALSE(ended.is_null()) << "A's terminated waited behind its expiring";
  EXPECT_EQ(ended["status"], "expired");
  EXPECT_TRUE(sim_->Events(a, "expiring").empty());
  auto db = OpenAgentDb(agent_->root() + "/data");
  ASSERT_NE(db, nullptr);
  auto pending = db->PendingEvents(50);
  ASSERT_TRUE(pending.ok());
  for (const auto& e : *pending) ADD_FAILURE() << "still pending: " << e.path;
  EXPECT_NE(agent_->Log().find("superseded by its ending"), std::string::npos);
  // B's SSH password is dropped from the database once its success was delivered, as always.
  auto dep_b = db->GetDeployment(b);
  ASSERT_TRUE(dep_b.ok() && dep_b->has_value());
  EXPECT_FALSE((*dep_b)->ssh_password.has_value());

  // The sender's status says what it did; the fault was on one path only.
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["counters"]["events_given_up"], 0);
  EXPECT_NE(HttpGet(agent_->status_port(), "/metrics").find("taolie_events_given_up_total 0"),
            std::string::npos);
  sim_->ClearPathFault(a_expiring);
}

}  // namespace
}  // namespace taolie::testing
