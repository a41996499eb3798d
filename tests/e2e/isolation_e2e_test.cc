// Rentals isolated on the agent's own network behind its firewall (issue 7, item 1), end to
// end. The rules are checked by listing them (iptables -S), never by sending traffic to the
// host, the LAN, the metadata address or the bridge gateway.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
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

int CountTagged(const std::string& chain, const std::string& tool = "iptables") {
  int n = 0;
  for (const auto& l : Lines(Shell(tool + " -w 5 -S " + chain + " 2>/dev/null"))) {
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
  json Deploy(const std::string& id) {
    json payload = {{"deployment_id", id},
                    {"image", SshImage()},
                    {"duration_minutes", 10},
                    {"gpu_count", 0},
                    {"ports", {{"22", 22}}}};
    sim_->QueueCommand(agent_id_, "deploy", payload.dump());
    return WaitEvent(id, "success", 120s);
  }
  std::string Docker(const std::string& args) {
    return Shell("docker -H " + docker_host_ + " " + args);
  }
  std::string RentalIp(const std::string& id) {
    std::string ip = Docker(
        "inspect -f '{{(index .NetworkSettings.Networks \"taolie-rentals\").IPAddress}}' "
        "deployment-" +
        id);
    while (!ip.empty() && (ip.back() == '\n' || ip.back() == ' ')) ip.pop_back();
    return ip;
  }
  // What `nc` in rental `from` reads from TCP port 22 of `ip` within 3 s ("" when the
  // connection cannot be made).
  std::string Banner(const std::string& from, const std::string& ip) {
    return Docker("exec deployment-" + from + " sh -c 'nc -w 3 " + ip +
                  " 22 </dev/null 2>/dev/null | head -c 64; true'");
  }
};

// Traffic between two rentals (containers this test had the agent create) is the one
// network probe allowed here: one rental cannot open a TCP connection to the other's sshd,
// while each reaches its own (the tool works, the network is what refuses).
TEST_F(IsolationTest, OneRentalCannotReachAnothersSshd) {
  StartAgent();
  ASSERT_FALSE(Deploy("iso-a").is_null());
  ASSERT_FALSE(Deploy("iso-b").is_null());
  const std::string ip_a = RentalIp("iso-a"), ip_b = RentalIp("iso-b");
  std::cout << "# rental addresses: iso-a " << ip_a << ", iso-b " << ip_b << "\n";
  ASSERT_EQ(ip_a.rfind("10.213.0.", 0), 0u) << ip_a;
  ASSERT_EQ(ip_b.rfind("10.213.0.", 0), 0u) << ip_b;
  ASSERT_NE(ip_a, ip_b);

  const std::string own = Banner("iso-b", ip_b);
  std::cout << "# iso-b -> iso-b:22: " << own << "\n";
  EXPECT_EQ(own.rfind("SSH-2.0", 0), 0u) << own;
  const std::string a_to_b = Banner("iso-a", ip_b);
  const std::string b_to_a = Banner("iso-b", ip_a);
  std::cout << "# iso-a -> iso-b:22: '" << a_to_b << "', iso-b -> iso-a:22: '" << b_to_a << "'\n";
  EXPECT_EQ(a_to_b, "");
  EXPECT_EQ(b_to_a, "");
}

// dockerd restarts (an upgrade, a crash): the rental comes back (restart policy), and the
// agent's rules are in place within a monitor round, once each.
TEST_F(IsolationTest, RulesAndRentalSurviveADockerdRestart) {
  StartAgent();
  ASSERT_FALSE(Deploy("iso-r").is_null());
  const std::string services = std::string(SCENARIO_DIR) + "/../../fixtures/services.sh";
  std::string out = Shell(services + " restart-docker 2>&1; echo rc=$?");
  std::cout << "# services.sh restart-docker\n" << out;
  ASSERT_NE(out.find("rc=0"), std::string::npos) << out;
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [&] {
        return Docker("inspect -f '{{.State.Running}}' deployment-iso-r 2>/dev/null") == "true\n";
      },
      60s));
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [] { return CountTagged("DOCKER-USER") == 1 && CountTagged("INPUT") == 1; }, 30s));
  std::cout << "# iptables -S DOCKER-USER (after the restart)\n"
            << Shell("iptables -w 5 -S DOCKER-USER");
  EXPECT_NE(Shell("iptables -w 5 -S TAOLIE-RENTALS").find("169.254.0.0/16"), std::string::npos);
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return Status()["isolation"]["ok"] == true; }, 30s))
      << Status().dump();
  // Still rented, not ended by the restart.
  EXPECT_TRUE(sim_->Events("iso-r", "terminated").empty());
}

TEST_F(IsolationTest, RentalsJoinTheAgentsNetworkBehindRulesThatComeBackAndGo) {
  HarnessOptions o;
  // 127.0.0.0/8 covers the host's loopback address: a start-up warning, and no INPUT rule.
  o.deployment_yaml = "  egress_allow: [\"127.0.0.0/8\"]\n  host_allow: [\"10.213.0.1/32:8080\"]\n";
  StartAgent(std::move(o));
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
  for (const char* cidr :
       {"0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "168.63.129.16/32"}) {
    EXPECT_NE(fwd.find(std::string("-d ") + cidr + " -i taolie0 -m comment " + kTag + " -j DROP"),
              std::string::npos)
        << cidr;
  }
  EXPECT_NE(fwd.find("-d 127.0.0.0/8 -i taolie0 -m comment " + std::string(kTag) + " -j RETURN"),
            std::string::npos);
  const std::string in = Shell("iptables -w 5 -S TAOLIE-RENTALS-IN");
  EXPECT_EQ(in.find("127.0.0.0/8"), std::string::npos) << in;  // egress_allow: not the host
  EXPECT_NE(in.find("-d 10.213.0.1/32 -i taolie0 -p tcp -m tcp --dport 8080 -m comment " +
                    std::string(kTag) + " -j RETURN"),
            std::string::npos)
      << in;
  EXPECT_NE(agent_->Log().find("deployment.egress_allow entry 127.0.0.0/8 covers this host's "
                               "address 127.0.0.1"),
            std::string::npos);
  EXPECT_EQ(CountTagged("DOCKER-USER"), 1);
  EXPECT_EQ(CountTagged("INPUT"), 1);
  // IPv6: the same chains in ip6tables, jumped to from FORWARD and INPUT.
  const bool ipv6 = std::filesystem::exists("/proc/net/if_inet6");
  if (ipv6) {
    std::string fwd6 = Shell("ip6tables -w 5 -S TAOLIE-RENTALS");
    std::cout << "# ip6tables -S TAOLIE-RENTALS\n" << fwd6;
    EXPECT_NE(
        fwd6.find("-A TAOLIE-RENTALS -i taolie0 -m comment " + std::string(kTag) + " -j DROP"),
        std::string::npos);
    EXPECT_NE(
        Shell("ip6tables -w 5 -S TAOLIE-RENTALS-IN")
            .find("-A TAOLIE-RENTALS-IN -i taolie0 -m comment " + std::string(kTag) + " -j DROP"),
        std::string::npos);
    EXPECT_EQ(CountTagged("FORWARD", "ip6tables"), 1);
    EXPECT_EQ(CountTagged("INPUT", "ip6tables"), 1);
  }
  json st = Status();
  EXPECT_EQ(st["isolation"]["ok"], true) << st.dump();
  EXPECT_EQ(st["isolation"]["accepting_rentals"], true) << st.dump();
  EXPECT_EQ(st["isolation"]["ipv6_rules"], ipv6) << st.dump();

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
  EXPECT_EQ(CountTagged("FORWARD", "ip6tables"), 0);
  EXPECT_EQ(CountTagged("INPUT", "ip6tables"), 0);
  EXPECT_TRUE(Shell("ip6tables -w 5 -S TAOLIE-RENTALS 2>/dev/null").empty());
}

// network.bind_ip 0.0.0.0 publishes the rental's ports on 0.0.0.0 explicitly. An empty HostIp
// left the choice to dockerd: its --ip default (127.0.0.1 for the test daemon), or on a stock
// daemon 0.0.0.0 and [::] (docker-proxy), where rental_allowed_sources does not apply. Only
// Docker's port listing is read; the allow-list keeps everyone but 127.0.0.1 out meanwhile.
TEST_F(IsolationTest, AllInterfacesMeansIpv4AllInterfacesOnly) {
  HarnessOptions o;
  o.bind_ip = "0.0.0.0";
  o.deployment_yaml = "  rental_allowed_sources: [\"127.0.0.1/32\"]\n";
  StartAgent(std::move(o));
  ASSERT_FALSE(Deploy("iso-v4").is_null());
  const std::string ports = Docker("port deployment-iso-v4");
  std::cout << "# docker port deployment-iso-v4\n" << ports;
  const std::string bindings =
      Docker("inspect -f '{{json .HostConfig.PortBindings}}' deployment-iso-v4");
  std::cout << "# HostConfig.PortBindings\n" << bindings;
  EXPECT_NE(bindings.find("\"HostIp\":\"0.0.0.0\""), std::string::npos) << bindings;
  const auto lines = Lines(ports);
  ASSERT_EQ(lines.size(), 1u) << ports;  // one binding: no second one on [::]
  EXPECT_EQ(lines[0].rfind("22/tcp -> 0.0.0.0:", 0), 0u) << ports;
  EXPECT_EQ(ports.find("::"), std::string::npos) << ports;
}

}  // namespace
}  // namespace taolie::testing
