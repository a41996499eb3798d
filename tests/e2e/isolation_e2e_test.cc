// Rentals isolated on the agent's own network behind its firewall (issue 7, item 1), end to
// end. The rules are checked by listing them (iptables -S), never by sending traffic to the
// host, the LAN, the metadata address or the bridge gateway.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const char kTag[] = "--comment taolie-host-agent";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

int CountTagged(const std::string& chain) {
  int n = 0;
  for (const auto& l : Lines(Shell("iptables -w 5 -S " + chain + " 2>/dev/null"))) {
    n += l.find(kTag) != std::string::npos;
  }
  return n;
}

class IsolationTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0 || Shell("iptables -w 5 -S DOCKER-USER 2>/dev/null").empty()) {
      if (InCi()) FAIL() << "root and iptables with a DOCKER-USER chain are needed (CI=true)";
      GTEST_SKIP() << "not root, or no iptables DOCKER-USER chain";
    }
  }
  json Status() { return json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false); }
};

TEST_F(IsolationTest, RentalsJoinTheAgentsNetworkBehindRulesThatComeBackAndGo) {
  StartAgent();
  json payload = {{"deployment_id", "iso-1"},
                  {"image", SshImage()},
                  {"duration_minutes", 10},
                  {"ports", {{"22", 22}, {"8888", 8888}}}};
  sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  json ok = WaitEvent("iso-1", "success", 120s);
  ASSERT_FALSE(ok.is_null());

  // The rental runs on the agent's network: no IPv6, no inter-container traffic.
  const std::string dk = "docker -H " + docker_host_ + " ";
  EXPECT_EQ(Shell(dk + "inspect -f '{{.HostConfig.NetworkMode}}' deployment-iso-1"),
            "taolie-rentals\n");
  std::string net = Shell(dk +
                          "network inspect -f '{{.Labels}} {{.EnableIPv6}} {{.IPAM.Config}} "
                          "{{index .Options \"com.docker.network.bridge.enable_icc\"}} "
                          "{{index .Options \"com.docker.network.bridge.name\"}}' taolie-rentals");
  std::cout << "# docker network inspect taolie-rentals\n" << net;
  EXPECT_NE(net.find("taolie.managed:true"), std::string::npos) << net;
  EXPECT_NE(net.find(" false "), std::string::npos) << net;  // EnableIPv6
  EXPECT_NE(net.find("10.213.0.0/24"), std::string::npos) << net;
  EXPECT_NE(net.find(" false taolie0"), std::string::npos) << net;  // enable_icc, bridge

  // The rules, listed.
  std::string fwd = Shell("iptables -w 5 -S TAOLIE-RENTALS");
  std::cout << "# iptables -S TAOLIE-RENTALS\n" << fwd;
  std::cout << "# iptables -S TAOLIE-RENTALS-IN\n" << Shell("iptables -w 5 -S TAOLIE-RENTALS-IN");
  EXPECT_NE(fwd.find("-A TAOLIE-RENTALS -i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED"),
            std::string::npos);
  EXPECT_NE(fwd.find("-d 169.254.0.0/16 -i taolie0 -m comment " + std::string(kTag) + " -j DROP"),
            std::string::npos);
  EXPECT_EQ(CountTagged("DOCKER-USER"), 1);
  EXPECT_EQ(CountTagged("INPUT"), 1);
  json st = Status();
  EXPECT_EQ(st["isolation"]["ok"], true) << st.dump();
  EXPECT_EQ(st["isolation"]["accepting_rentals"], true) << st.dump();

  // A flushed DOCKER-USER comes back within a duration-monitor round (1 s here). What was not
  // ours is put back at once.
  std::vector<std::string> before = Lines(Shell("iptables -w 5 -S DOCKER-USER"));
  Shell("iptables -w 5 -F DOCKER-USER");
  for (const auto& line : before) {
    if (line.rfind("-A ", 0) == 0 && line.find(kTag) == std::string::npos) {
      Shell("iptables -w 5 " + line);
    }
  }
  EXPECT_TRUE(sim::Simulator::WaitFor([] { return CountTagged("DOCKER-USER") == 1; }, 20s));
  std::cout << "# iptables -S DOCKER-USER (after a flush and one monitor round)\n"
            << Shell("iptables -w 5 -S DOCKER-USER");
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [&] { return Status()["isolation"]["rules_reapplied"].get<int>() >= 1; }, 10s));

  // The renter still reaches the published port on 127.0.0.1 (replies pass the firewall).
  int http_port = ok["access_info"]["rental_ports"]["port_1"]["port"].get<int>();
  EXPECT_NE(HttpGet(http_port, "/").find("taolie-test-jupyter"), std::string::npos);

  // `firewall remove` leaves nothing tagged (the agent stopped first, so it does not put the
  // rules back).
  agent_.reset();
  std::string removed = Shell(std::string(AGENT_BIN) + " firewall remove 2>&1");
  std::cout << "# taolie-host-agent firewall remove\n" << removed;
  EXPECT_NE(removed.find("removed"), std::string::npos) << removed;
  EXPECT_EQ(CountTagged("DOCKER-USER"), 0);
  EXPECT_EQ(CountTagged("INPUT"), 0);
  EXPECT_TRUE(Shell("iptables -w 5 -S TAOLIE-RENTALS 2>/dev/null").empty());
}

}  // namespace
}  // namespace taolie::testing
