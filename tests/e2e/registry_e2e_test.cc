// Registries (issue 7, item 6) end to end: an image on the agent's own API port on loopback is
// refused at stage "validate" before anything is pulled or claimed, while the listed local
// test registry keeps working. Private and link-local registries are covered by the unit
// tests of the rule only (no traffic to such addresses from a test).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include "e2e/agent_harness.h"
#include "store/managed_postgres.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class RegistryTest : public AgentE2eTest {
 protected:
  // `pg_dump --data-only` of the agent's managed database (every table, every row), as text;
  // "" when it could not be taken (the test then fails on its own check).
  std::string DumpAgentDatabase() {
    auto conninfo = store::ManagedPostgres::ConnInfoUnder(agent_->root() + "/data");
    EXPECT_TRUE(conninfo.ok()) << (conninfo.ok() ? "" : conninfo.error().ToString());
    if (!conninfo.ok()) return "";
    const std::string out = agent_->root() + "/dump.sql";
    std::vector<std::string> args = {"pg_dump", "--data-only", "--no-owner", "-f",
                                     out,       "-d",          *conninfo};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawnp(&pid, "pg_dump", nullptr, nullptr, argv.data(), environ), 0);
    int status = -1;
    if (pid > 0) ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "pg_dump failed: " << status;
    return ReadFile(out);
  }
};

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

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Issue 17 item 5: registry credentials are never written to the database, for a refused deploy
// as for one that ran, and an ended rental keeps its environment variables' names, not their
// values. Checked on a pg_dump of the agent's whole database.
TEST_F(RegistryTest, NoRegistryPasswordAndNoEndedRentalsEnvValueIsLeftInTheDatabase) {
  StartAgent();
  const std::string refused_password = "refused-pw-4d1c9e77";
  const std::string accepted_password = "accepted-pw-8b07f3a2";
  const std::string env_value = "renter-env-value-51e0c6d9";

  // Refused at validation (a duration of 0 minutes), after its payload was recorded.
  json refused = {{"deployment_id", "sec-refused"},
                  {"image", SshImage()},
                  {"duration_minutes", 0},
                  {"ports", {{"22", 22}}},
                  {"environment", {{"RENTER_TOKEN", env_value}}},
                  {"registry_auth", {{"username", "renter"}, {"password", refused_password}}}};
  std::string refused_cmd = sim_->QueueCommand(agent_id_, "deploy", refused.dump());
  json refused_ack = Ack(refused_cmd, 30s);
  ASSERT_FALSE(refused_ack.is_null());
  EXPECT_EQ(refused_ack["result"], "rejected") << refused_ack.dump();

  // Accepted: the local registry takes no credentials, so the pull goes through with them.
  json accepted = {{"deployment_id", "sec-ok"},
                   {"image", SshImage()},
                   {"duration_minutes", 10},
                   {"ports", {{"22", 22}}},
                   {"environment", {{"RENTER_TOKEN", env_value}}},
                   {"registry_auth", {{"username", "renter"}, {"password", accepted_password}}}};
  sim_->QueueCommand(agent_id_, "deploy", accepted.dump());
  ASSERT_FALSE(WaitEvent("sec-ok", "success", 120s).is_null()) << Tail(agent_->Log(), 4000);
  std::string dump = DumpAgentDatabase();
  ASSERT_NE(dump.find("sec-ok"), std::string::npos);  // the dump holds the rental
  EXPECT_EQ(dump.find(refused_password), std::string::npos);
  EXPECT_EQ(dump.find(accepted_password), std::string::npos);
  EXPECT_NE(dump.find(env_value), std::string::npos);  // running: its spec keeps the value

  sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", "sec-ok"}}.dump());
  ASSERT_FALSE(WaitEvent("sec-ok", "terminated", 60s).is_null()) << Tail(agent_->Log(), 4000);
  dump = DumpAgentDatabase();
  EXPECT_EQ(dump.find(refused_password), std::string::npos);
  EXPECT_EQ(dump.find(accepted_password), std::string::npos);
  EXPECT_EQ(dump.find(env_value), std::string::npos);
  EXPECT_NE(dump.find("RENTER_TOKEN"), std::string::npos);  // the names stay
}

}  // namespace
}  // namespace taolie::testing
