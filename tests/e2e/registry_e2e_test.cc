// Registries (issue 7, item 6) end to end: an image on the agent's own API port on loopback is
// refused at stage "validate" before anything is pulled or claimed, while the listed local
// test registry keeps working. Private and link-local registries are covered by the unit
// tests of the rule only (no traffic to such addresses from a test).
#include <gtest/gtest.h>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class RegistryTest : public AgentE2eTest {};

TEST_F(RegistryTest, AnImageOnTheAgentsApiPortIsRefusedBeforeAnyPull) {
  StartAgent();
  const std::string image = "127.0.0.1:9109/taolie-test/sshd:1";
  json payload = {{"deployment_id", "reg-9109"},
                  {"image", image},
                  {"duration_minutes", 10},
                  {"ports", {{"22", 22}}}};
  std::string cmd = sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  json ack = Ack(cmd, 30s);
  ASSERT_FALSE(ack.is_null());
  EXPECT_EQ(ack["result"], "failed") << ack.dump();
  json failed = WaitEvent("reg-9109", "failed", 10s);
  ASSERT_FALSE(failed.is_null());
  EXPECT_EQ(failed["stage"], "validate") << failed.dump();
  EXPECT_NE(failed.dump().find("registry 127.0.0.1:9109 is a loopback address"), std::string::npos)
      << failed.dump();
  EXPECT_NE(failed.dump().find("deployment.allowed_registries"), std::string::npos);
  // Nothing was pulled or created: no image of that name, no container, no pull in the log.
  auto present = docker_->ImageExists(image);
  ASSERT_TRUE(present.ok()) << present.error().ToString();
  EXPECT_FALSE(*present);
  EXPECT_TRUE(Containers("reg-9109").empty());
  EXPECT_EQ(agent_->Log().find("pulling " + image), std::string::npos);

  // The listed test registry (the harness lists it) still deploys.
  json ok_payload = {{"deployment_id", "reg-ok"},
                     {"image", SshImage()},
                     {"duration_minutes", 10},
                     {"ports", {{"22", 22}}}};
  sim_->QueueCommand(agent_id_, "deploy", ok_payload.dump());
  EXPECT_FALSE(WaitEvent("reg-ok", "success", 120s).is_null());
}

}  // namespace
}  // namespace taolie::testing
