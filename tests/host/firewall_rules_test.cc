#include "host/firewall_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::host {
namespace {

std::vector<std::string> Lines(const std::vector<FirewallRule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(RuleToString(r));
  return out;
}

FirewallConfig Minimal() {
  FirewallConfig c;
  c.bridge_interface = "taolie0";
  c.subnet = "10.213.0.0/24";
  return c;
}

const char kT[] = " -m comment --comment taolie-host-agent -j ";

TEST(FirewallRulesTest, MinimalConfigExactRules) {
  auto rules = BuildFirewallRules(Minimal());
  ASSERT_TRUE(rules.ok()) << rules.error().ToString();
  const std::string f = "-A TAOLIE-RENTALS ";
  EXPECT_EQ(Lines(rules->forward),
            (std::vector<std::string>{
                f + "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                f + "-o taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                f + "! -s 10.213.0.0/24 -i taolie0" + kT + "DROP",
                f + "-i taolie0 -o taolie0" + kT + "DROP",
                f + "-d 10.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 172.16.0.0/12 -i taolie0" + kT + "DROP",
                f + "-d 192.168.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 100.64.0.0/10 -i taolie0" + kT + "DROP",
                f + "-d 169.254.0.0/16 -i taolie0" + kT + "DROP",
                f + "-i taolie0 -p tcp -m tcp --dport 25" + kT + "DROP",
            }));
  const std::string i = "-A TAOLIE-RENTALS-IN ";
  EXPECT_EQ(Lines(rules->input),
            (std::vector<std::string>{
                i + "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                i + "! -s 10.213.0.0/24 -i taolie0" + kT + "DROP",
                i + "-i taolie0" + kT + "DROP",
            }));
  EXPECT_EQ(Lines(rules->jumps), (std::vector<std::string>{
                                     std::string("-A DOCKER-USER") + kT + "TAOLIE-RENTALS",
                                     std::string("-A INPUT -i taolie0") + kT + "TAOLIE-RENTALS-IN",
                                 }));
}

TEST(FirewallRulesTest, FullConfigExactRules) {
  FirewallConfig c = Minimal();
  c.host_addresses = {"203.0.113.7", "10.213.0.1"};
  c.resolvers = {"192.168.1.1/32"};
  c.egress_allow = {"192.168.50.9/24"};  // canonicalised to the network
  c.allow_smtp = true;
  c.rental_allowed_sources = {"198.51.100.0/24", "203.0.113.99"};
  auto rules = BuildFirewallRules(c);
  ASSERT_TRUE(rules.ok()) << rules.error().ToString();
  const std::string f = "-A TAOLIE-RENTALS ";
  EXPECT_EQ(Lines(rules->forward),
            (std::vector<std::string>{
                f + "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                f + "-o taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                f + "! -s 10.213.0.0/24 -i taolie0" + kT + "DROP",
                f + "-i taolie0 -o taolie0" + kT + "DROP",
                f + "-d 192.168.50.0/24 -i taolie0" + kT + "RETURN",
                f + "-d 192.168.1.1/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                f + "-d 192.168.1.1/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                f + "-d 203.0.113.7/32 -i taolie0" + kT + "DROP",
                f + "-d 10.213.0.1/32 -i taolie0" + kT + "DROP",
                f + "-d 10.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 172.16.0.0/12 -i taolie0" + kT + "DROP",
                f + "-d 192.168.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 100.64.0.0/10 -i taolie0" + kT + "DROP",
                f + "-d 169.254.0.0/16 -i taolie0" + kT + "DROP",
                // allow_smtp: no port 25 drop
                f + "-s 198.51.100.0/24 -o taolie0 -m conntrack --ctstate NEW" + kT + "RETURN",
                f + "-s 203.0.113.99/32 -o taolie0 -m conntrack --ctstate NEW" + kT + "RETURN",
                f + "-o taolie0 -m conntrack --ctstate NEW" + kT + "DROP",
            }));
  const std::string i = "-A TAOLIE-RENTALS-IN ";
  EXPECT_EQ(Lines(rules->input),
            (std::vector<std::string>{
                i + "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED" + kT + "ACCEPT",
                i + "! -s 10.213.0.0/24 -i taolie0" + kT + "DROP",
                i + "-d 192.168.50.0/24 -i taolie0" + kT + "RETURN",
                i + "-d 192.168.1.1/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                i + "-d 192.168.1.1/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                i + "-i taolie0" + kT + "DROP",
            }));
}

TEST(FirewallRulesTest, EveryRuleIsTaggedAndNoRuleTouchesLoopbackOrTheEmbeddedResolver) {
  FirewallConfig c = Minimal();
  c.resolvers = {"8.8.8.8"};
  auto rules = BuildFirewallRules(c);
  ASSERT_TRUE(rules.ok());
  std::vector<FirewallRule> all = rules->forward;
  all.insert(all.end(), rules->input.begin(), rules->input.end());
  all.insert(all.end(), rules->jumps.begin(), rules->jumps.end());
  for (const auto& r : all) {
    const std::string line = RuleToString(r);
    EXPECT_TRUE(IsTaggedRuleLine(line)) << line;
    // 127.0.0.11 answers inside the container's own namespace: no rule names lo or 127/8.
    EXPECT_EQ(line.find("127."), std::string::npos) << line;
    EXPECT_EQ(line.find(" lo"), std::string::npos) << line;
    // Every rule other than the DOCKER-USER jump is scoped to the rentals' bridge.
    if (r[1] != "DOCKER-USER") {
      EXPECT_NE(line.find("taolie0"), std::string::npos) << line;
    }
  }
}

TEST(FirewallRulesTest, RejectsBadInput) {
  struct Case {
    std::string name;
    FirewallConfig config;
    std::string field;
  };
  auto with = [](auto mutate) {
    FirewallConfig c = Minimal();
    mutate(c);
    return c;
  };
  const Case cases[] = {
      {"empty iface", with([](FirewallConfig& c) { c.bridge_interface = ""; }), "bridge_interface"},
      {"long iface", with([](FirewallConfig& c) { c.bridge_interface = "abcdefghijklmnop"; }),
       "bridge_interface"},
      {"wildcard iface", with([](FirewallConfig& c) { c.bridge_interface = "br+"; }),
       "bridge_interface"},
      {"option iface", with([](FirewallConfig& c) { c.bridge_interface = "a b"; }),
       "bridge_interface"},
      {"bad subnet", with([](FirewallConfig& c) { c.subnet = "10.213.0.0/33"; }), "subnet"},
      {"ipv6 subnet", with([](FirewallConfig& c) { c.subnet = "fd00::/64"; }), "subnet"},
      {"bad egress", with([](FirewallConfig& c) { c.egress_allow = {"-j ACCEPT"}; }),
       "egress_allow"},
      {"bad source", with([](FirewallConfig& c) { c.rental_allowed_sources = {"1.2.3.4/"}; }),
       "rental_allowed_sources"},
      {"bad host", with([](FirewallConfig& c) { c.host_addresses = {"host.example"}; }),
       "host_addresses"},
      {"bad resolver", with([](FirewallConfig& c) { c.resolvers = {"1.2.3"}; }), "resolvers"},
  };
  for (const auto& tc : cases) {
    auto r = BuildFirewallRules(tc.config);
    ASSERT_FALSE(r.ok()) << tc.name;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << tc.name;
    EXPECT_EQ(r.error().message.rfind(tc.field + ":", 0), 0u)
        << tc.name << ": " << r.error().message;
  }
}

TEST(FirewallRulesTest, RenderRestoreInputDeclaresBothChainsAndLeavesJumpsOut) {
  auto rules = BuildFirewallRules(Minimal());
  ASSERT_TRUE(rules.ok());
  const std::string text = RenderRestoreInput(*rules);
  EXPECT_EQ(text.rfind("*filter\n:TAOLIE-RENTALS - [0:0]\n:TAOLIE-RENTALS-IN - [0:0]\n", 0), 0u);
  EXPECT_NE(text.find(RuleToString(rules->forward.front()) + "\n"), std::string::npos);
  EXPECT_NE(text.find(RuleToString(rules->input.back()) + "\nCOMMIT\n"), std::string::npos);
  EXPECT_EQ(text.find("DOCKER-USER"), std::string::npos);
  EXPECT_EQ(text.find("-A INPUT"), std::string::npos);
}

TEST(FirewallRulesTest, ParseResolvConfNameservers) {
  const std::string text =
      "# generated\nsearch lan\nnameserver 127.0.0.53\nnameserver 192.168.1.1\n"
      "nameserver  1.1.1.1 \nnameserver fe80::1\nnameserver 192.168.1.1\noptions edns0\n"
      "nameserver\n";
  EXPECT_EQ(ParseResolvConfNameservers(text),
            (std::vector<std::string>{"192.168.1.1/32", "1.1.1.1/32"}));
  EXPECT_TRUE(ParseResolvConfNameservers("").empty());
}

TEST(FirewallRulesTest, IsTaggedRuleLine) {
  EXPECT_TRUE(IsTaggedRuleLine("-A INPUT -i x -m comment --comment taolie-host-agent -j DROP"));
  EXPECT_TRUE(IsTaggedRuleLine("-A INPUT -m comment --comment taolie-host-agent"));
  EXPECT_FALSE(IsTaggedRuleLine("-A INPUT -m comment --comment taolie-host-agent-2 -j DROP"));
  EXPECT_FALSE(IsTaggedRuleLine("-A DOCKER-USER -j RETURN"));
}

}  // namespace
}  // namespace taolie::host
