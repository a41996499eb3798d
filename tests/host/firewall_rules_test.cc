#include "host/firewall_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
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
                // Azure's fabric answers DNS for Azure VMs: only that stays open.
                f + "-d 168.63.129.16/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                f + "-d 168.63.129.16/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                f + "-d 10.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 172.16.0.0/12 -i taolie0" + kT + "DROP",
                f + "-d 192.168.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 100.64.0.0/10 -i taolie0" + kT + "DROP",
                f + "-d 169.254.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 0.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 192.0.0.0/24 -i taolie0" + kT + "DROP",
                f + "-d 198.18.0.0/15 -i taolie0" + kT + "DROP",
                f + "-d 240.0.0.0/4 -i taolie0" + kT + "DROP",
                f + "-d 168.63.129.16/32 -i taolie0" + kT + "DROP",
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
  c.egress_allow = {"192.168.50.9/24"};  // canonicalised to the network
  c.host_allow = {{"10.213.0.1", 8080}, {"0.0.0.0/0", 3128}, {"10.213.0.1/32", 8080}};
  c.resolvers = {"192.168.1.1/32", "168.63.129.16"};  // Azure's resolver: no second exception
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
                f + "-d 168.63.129.16/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                f + "-d 168.63.129.16/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                f + "-d 203.0.113.7/32 -i taolie0" + kT + "DROP",
                f + "-d 10.213.0.1/32 -i taolie0" + kT + "DROP",
                f + "-d 10.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 172.16.0.0/12 -i taolie0" + kT + "DROP",
                f + "-d 192.168.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 100.64.0.0/10 -i taolie0" + kT + "DROP",
                f + "-d 169.254.0.0/16 -i taolie0" + kT + "DROP",
                f + "-d 0.0.0.0/8 -i taolie0" + kT + "DROP",
                f + "-d 192.0.0.0/24 -i taolie0" + kT + "DROP",
                f + "-d 198.18.0.0/15 -i taolie0" + kT + "DROP",
                f + "-d 240.0.0.0/4 -i taolie0" + kT + "DROP",
                f + "-d 168.63.129.16/32 -i taolie0" + kT + "DROP",
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
                // egress_allow (192.168.50.0/24) is not here: it never opens the host.
                i + "-d 192.168.1.1/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                i + "-d 192.168.1.1/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                i + "-d 168.63.129.16/32 -i taolie0 -p udp -m udp --dport 53" + kT + "RETURN",
                i + "-d 168.63.129.16/32 -i taolie0 -p tcp -m tcp --dport 53" + kT + "RETURN",
                // host_allow, the duplicate entry once.
                i + "-d 10.213.0.1/32 -i taolie0 -p tcp -m tcp --dport 8080" + kT + "RETURN",
                i + "-d 0.0.0.0/0 -i taolie0 -p tcp -m tcp --dport 3128" + kT + "RETURN",
                i + "-i taolie0" + kT + "DROP",
            }));
}

TEST(FirewallRulesTest, EveryRuleIsTaggedAndNoRuleTouchesLoopbackOrTheEmbeddedResolver) {
  FirewallConfig c = Minimal();
  c.resolvers = {"8.8.8.8"};
  auto rules = BuildFirewallRules(c);
  auto rules6 = BuildIpv6FirewallRules(c);
  ASSERT_TRUE(rules.ok());
  ASSERT_TRUE(rules6.ok());
  std::vector<FirewallRule> all;
  for (const auto* set : {&*rules, &*rules6}) {
    for (const auto* chain : {&set->forward, &set->input, &set->jumps}) {
      all.insert(all.end(), chain->begin(), chain->end());
    }
  }
  for (const auto& r : all) {
    const std::string line = RuleToString(r);
    EXPECT_TRUE(IsTaggedRuleLine(line)) << line;
    // 127.0.0.11 answers inside the container's own namespace: no rule names lo or 127/8.
    EXPECT_EQ(line.find("127."), std::string::npos) << line;
    EXPECT_EQ(line.find(" lo"), std::string::npos) << line;
    // Every rule other than the DOCKER-USER / FORWARD jump is scoped to the rentals' bridge.
    if (r[1] != "DOCKER-USER" && r[1] != "FORWARD") {
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
  auto service = [&](const std::string& cidr, int port) {
    return with([&](FirewallConfig& c) { c.host_allow = {{cidr, port}}; });
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
      {"host_allow cidr", service("10.0.0.1/40", 80), "host_allow"},
      {"host_allow ipv6", service("fd00::1", 80), "host_allow"},
      {"host_allow port 0", service("10.0.0.1", 0), "host_allow"},
      {"host_allow port 65536", service("10.0.0.1", 65536), "host_allow"},
  };
  for (const auto& tc : cases) {
    // Both families refuse alike, with the same message.
    for (auto build : {&BuildFirewallRules, &BuildIpv6FirewallRules}) {
      auto r = build(tc.config);
      ASSERT_FALSE(r.ok()) << tc.name;
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << tc.name;
      EXPECT_EQ(r.error().message.rfind(tc.field + ":", 0), 0u)
          << tc.name << ": " << r.error().message;
    }
  }
}

TEST(FirewallRulesTest, Ipv6RulesDropEveryNewConnectionFromAndToTheBridge) {
  FirewallConfig c = Minimal();
  c.egress_allow = {"192.168.50.0/24"};
  c.host_allow = {{"10.213.0.1", 8080}};
  c.rental_allowed_sources = {"198.51.100.0/24"};
  c.allow_smtp = true;
  auto rules = BuildIpv6FirewallRules(c);
  ASSERT_TRUE(rules.ok()) << rules.error().ToString();
  EXPECT_EQ(rules->family, IpFamily::kIpv6);
  // The IPv4 policy with an empty subnet: every source is foreign, nothing is published.
  // {chain, rule after the chain name, target}
  const std::vector<std::array<std::string, 3>> want = {
      {"TAOLIE-RENTALS", "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED", "ACCEPT"},
      {"TAOLIE-RENTALS", "-o taolie0 -m conntrack --ctstate RELATED,ESTABLISHED", "ACCEPT"},
      {"TAOLIE-RENTALS", "-i taolie0", "DROP"},
      {"TAOLIE-RENTALS", "-o taolie0", "DROP"},
      {"TAOLIE-RENTALS-IN", "-i taolie0 -m conntrack --ctstate RELATED,ESTABLISHED", "ACCEPT"},
      {"TAOLIE-RENTALS-IN", "-i taolie0", "DROP"},
      // ip6tables has DOCKER-USER only when dockerd manages ip6tables: the jump is in FORWARD.
      {"FORWARD", "", "TAOLIE-RENTALS"},
      {"INPUT", "-i taolie0", "TAOLIE-RENTALS-IN"},
  };
  std::vector<std::string> got = Lines(rules->forward);
  for (const auto& chain : {rules->input, rules->jumps}) {
    for (const auto& line : Lines(chain)) got.push_back(line);
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t n = 0; n < want.size(); ++n) {
    const auto& [chain, matches, target] = want[n];
    EXPECT_EQ(got[n], "-A " + chain + (matches.empty() ? "" : " " + matches) + kT + target);
  }
  EXPECT_EQ(JumpChains(IpFamily::kIpv6), (std::vector<std::string>{"FORWARD", "INPUT"}));
  EXPECT_EQ(JumpChains(IpFamily::kIpv4), (std::vector<std::string>{"DOCKER-USER", "INPUT"}));
  auto v4 = BuildFirewallRules(c);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->family, IpFamily::kIpv4);
  // Same chain names, so one restore text shape serves both tools.
  EXPECT_EQ(RenderRestoreInput(*rules).rfind(
                "*filter\n:TAOLIE-RENTALS - [0:0]\n:TAOLIE-RENTALS-IN - [0:0]\n", 0),
            0u);
}

TEST(FirewallRulesTest, ReservedRangesAndAzureFabricAreDroppedExceptItsDns) {
  auto rules = BuildFirewallRules(Minimal());
  ASSERT_TRUE(rules.ok());
  const auto fwd = Lines(rules->forward);
  auto index = [&](const std::string& rule) {
    auto it = std::find(fwd.begin(), fwd.end(), "-A TAOLIE-RENTALS " + rule);
    return it == fwd.end() ? -1 : static_cast<int>(it - fwd.begin());
  };
  for (const char* cidr : {"0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4",
                           "168.63.129.16/32", "10.0.0.0/8", "169.254.0.0/16"}) {
    EXPECT_GE(index(std::string("-d ") + cidr + " -i taolie0" + kT + "DROP"), 0) << cidr;
  }
  const int drop = index(std::string("-d 168.63.129.16/32 -i taolie0") + kT + "DROP");
  for (const char* proto : {"udp", "tcp"}) {
    const int dns = index(std::string("-d 168.63.129.16/32 -i taolie0 -p ") + proto + " -m " +
                          proto + " --dport 53" + kT + "RETURN");
    EXPECT_GE(dns, 0) << proto;
    EXPECT_LT(dns, drop) << proto;  // DNS returns before the drop
  }
  // egress_allow can still open the fabric: its RETURN comes before every drop.
  FirewallConfig c = Minimal();
  c.egress_allow = {"168.63.129.16"};
  auto opened = BuildFirewallRules(c);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(RuleToString(opened->forward[4]),
            std::string("-A TAOLIE-RENTALS -d 168.63.129.16/32 -i taolie0") + kT + "RETURN");
}

TEST(FirewallRulesTest, EgressAllowOpensForwardingOnlyAndHostAllowTheInputOnly) {
  struct Case {
    std::string name;
    std::vector<std::string> egress;
    std::vector<HostService> host;
    std::vector<std::string> forward_has, input_has;  // rule fragments expected
    std::vector<std::string> forward_lacks, input_lacks;
  };
  const std::string fwd_443 = "-d 10.0.0.0/8 -i taolie0" + std::string(kT) + "RETURN";
  const std::string in_22 =
      "-d 10.213.0.1/32 -i taolie0 -p tcp -m tcp --dport 22" + std::string(kT) + "RETURN";
  const Case cases[] = {
      {"egress only", {"10.0.0.0/8"}, {}, {fwd_443}, {}, {}, {"-d 10.0.0.0/8", "--dport 22 "}},
      {"host only", {}, {{"10.213.0.1", 22}}, {}, {in_22}, {"--dport 22 ", "-d 10.213.0.1"}, {}},
      {"both",
       {"10.0.0.0/8"},
       {{"10.213.0.1/32", 22}},
       {fwd_443},
       {in_22},
       {"--dport 22 "},
       {"-d 10.0.0.0/8"}},
  };
  for (const auto& tc : cases) {
    FirewallConfig c = Minimal();
    c.egress_allow = tc.egress;
    c.host_allow = tc.host;
    auto rules = BuildFirewallRules(c);
    ASSERT_TRUE(rules.ok()) << tc.name;
    auto joined = [](const std::vector<FirewallRule>& rs) {
      std::string all;
      for (const auto& r : rs) all += RuleToString(r) + "\n";
      return all;
    };
    const std::string fwd = joined(rules->forward), in = joined(rules->input);
    for (const auto& f : tc.forward_has) EXPECT_NE(fwd.find(f), std::string::npos) << tc.name;
    for (const auto& f : tc.input_has) EXPECT_NE(in.find(f), std::string::npos) << tc.name;
    for (const auto& f : tc.forward_lacks) EXPECT_EQ(fwd.find(f), std::string::npos) << tc.name;
    for (const auto& f : tc.input_lacks) EXPECT_EQ(in.find(f), std::string::npos) << tc.name;
    // Whatever is opened, the input chain still ends in the catch-all drop.
    EXPECT_EQ(RuleToString(rules->input.back()),
              std::string("-A TAOLIE-RENTALS-IN -i taolie0") + kT + "DROP")
        << tc.name;
  }
}

TEST(FirewallRulesTest, CidrsCoveringAddresses) {
  struct Case {
    std::string name;
    std::vector<std::string> cidrs, addresses;
    std::vector<CoveredAddress> want;
  };
  const Case cases[] = {
      {"none", {}, {"10.0.0.5"}, {}},
      {"no address", {"10.0.0.0/8"}, {}, {}},
      {"covers", {"10.0.0.0/8"}, {"127.0.0.1", "10.1.2.3"}, {{"10.0.0.0/8", "10.1.2.3"}}},
      {"edge of the range",
       {"192.168.1.0/24"},
       {"192.168.0.255", "192.168.1.0", "192.168.1.255", "192.168.2.0"},
       {{"192.168.1.0/24", "192.168.1.0"}, {"192.168.1.0/24", "192.168.1.255"}}},
      {"single address",
       {"203.0.113.7"},
       {"203.0.113.7", "203.0.113.8"},
       {{"203.0.113.7", "203.0.113.7"}}},
      {"not canonical, kept as written",
       {"10.9.9.9/8"},
       {"10.0.0.1"},
       {{"10.9.9.9/8", "10.0.0.1"}}},
      {"everything",
       {"0.0.0.0/0"},
       {"1.2.3.4", "10.213.0.1"},
       {{"0.0.0.0/0", "1.2.3.4"}, {"0.0.0.0/0", "10.213.0.1"}}},
      {"several, in order",
       {"10.0.0.0/8", "10.1.0.0/16", "172.16.0.0/12"},
       {"10.1.2.3"},
       {{"10.0.0.0/8", "10.1.2.3"}, {"10.1.0.0/16", "10.1.2.3"}}},
      {"garbage left out", {"x", "10.0.0.0/33"}, {"10.0.0.1", "fe80::1", ""}, {}},
  };
  for (const auto& tc : cases) {
    EXPECT_EQ(CidrsCoveringAddresses(tc.cidrs, tc.addresses), tc.want) << tc.name;
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
