// The firewall on the real iptables: rules for an interface no rental uses (so nothing of
// anyone's traffic is touched), checked by listing them, never by sending traffic.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "fixtures/test_env.h"
#include "host/command_runner.h"
#include "host/firewall.h"

namespace taolie::host {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> Listing(CommandRunner& runner, const std::string& chain,
                                 const std::string& tool = "iptables") {
  auto out = runner.Run({tool, "-w", "5", "-S", chain}, "", std::chrono::seconds(10));
  EXPECT_TRUE(out.ok()) << out.error().ToString();
  if (!out.ok() || out->exit_code != 0) return {};
  std::vector<std::string> lines;
  std::istringstream in(out->stdout_text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind('#', 0) != 0) lines.push_back(line);  // iptables-nft's remarks
  }
  return lines;
}

std::vector<std::string> Tagged(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    if (IsTaggedRuleLine(l)) out.push_back(l);
  }
  return out;
}

// The lines of `<tool>-save -t filter` (iptables-save, ip6tables-save).
std::vector<std::string> Saved(CommandRunner& runner, const std::string& tool) {
  auto out = runner.Run({tool + "-save", "-t", "filter"}, "", std::chrono::seconds(10));
  EXPECT_TRUE(out.ok() && out->exit_code == 0) << tool << "-save";
  if (!out.ok() || out->exit_code != 0) return {};
  std::vector<std::string> lines;
  std::istringstream in(out->stdout_text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool Contains(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

void Print(const std::string& title, const std::vector<std::string>& lines) {
  std::cout << "# " << (title.find("save") == std::string::npos ? "iptables -S " : "") << title
            << "\n";
  for (const auto& l : lines) std::cout << l << "\n";
}

class FirewallIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      if (::taolie::testing::InCi()) FAIL() << "the firewall test needs root under CI";
      GTEST_SKIP() << "not root";
    }
    auto out =
        runner_.Run({"iptables", "-w", "5", "-S", "DOCKER-USER"}, "", std::chrono::seconds(10));
    if (!out.ok() || out->exit_code != 0) {
      if (::taolie::testing::InCi()) FAIL() << "no DOCKER-USER chain: start services.sh";
      GTEST_SKIP() << "no DOCKER-USER chain (no dockerd has run here)";
    }
    auto fw = IptablesFirewall::Create(runner_);
    ASSERT_TRUE(fw.ok()) << fw.error().ToString();
    fw_ = std::move(*fw);
    if (KernelHasIpv6()) {  // Debian's iptables package ships ip6tables too
      auto fw6 = IptablesFirewall::Create(runner_, IpFamily::kIpv6);
      ASSERT_TRUE(fw6.ok()) << fw6.error().ToString();
      fw6_ = std::move(*fw6);
    }
    FirewallConfig config;
    config.bridge_interface = "taolietest0";  // no such interface: the rules match nothing
    config.subnet = "10.213.250.0/24";
    config.host_addresses = {"10.213.250.1"};
    config.resolvers = {"192.0.2.53"};
    config.egress_allow = {"192.0.2.0/28"};
    config.rental_allowed_sources = {"198.51.100.0/24"};
    config.host_allow = {{"10.213.250.1", 8080}};
    auto rules = BuildFirewallRules(config);
    ASSERT_TRUE(rules.ok()) << rules.error().ToString();
    rules_ = *rules;
    auto rules6 = BuildIpv6FirewallRules(config);
    ASSERT_TRUE(rules6.ok()) << rules6.error().ToString();
    rules6_ = *rules6;
    ASSERT_TRUE(fw_->Remove().ok());  // a clean slate, whatever an earlier run left
    if (fw6_) {
      ASSERT_TRUE(fw6_->Remove().ok());
    }
  }
  void TearDown() override {
    if (fw_) {
      EXPECT_TRUE(fw_->Remove().ok());
    }
    if (fw6_) {
      EXPECT_TRUE(fw6_->Remove().ok());
    }
  }

  std::vector<std::string> Expected(const std::string& chain,
                                    const std::vector<FirewallRule>& rules) {
    std::vector<std::string> lines = {"-N " + chain};
    for (const auto& r : rules) lines.push_back(RuleToString(r));
    return lines;
  }

  Result<bool> Check() { return fw_->Check(rules_); }

  SubprocessRunner runner_;
  std::unique_ptr<IptablesFirewall> fw_;
  std::unique_ptr<IptablesFirewall> fw6_;  // null on a kernel without IPv6
  FirewallRules rules_;
  FirewallRules rules6_;
};

TEST_F(FirewallIntegrationTest, ApplyIsIdempotentComesBackAfterAFlushAndRemoveLeavesNothing) {
  EXPECT_TRUE(fw_->Backend() == "nf_tables" || fw_->Backend() == "legacy") << fw_->Backend();
  auto before = Check();
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(*before);

  ASSERT_TRUE(fw_->Apply(rules_).ok());
  ASSERT_TRUE(fw_->Apply(rules_).ok());  // twice: same result, one jump each
  EXPECT_EQ(Listing(runner_, kForwardChain), Expected(kForwardChain, rules_.forward));
  EXPECT_EQ(Listing(runner_, kInputChain), Expected(kInputChain, rules_.input));
  auto docker_user = Listing(runner_, "DOCKER-USER");
  ASSERT_GE(docker_user.size(), 2u);
  EXPECT_EQ(docker_user[1], RuleToString(rules_.jumps[0]));  // first: before Docker's RETURN
  EXPECT_EQ(Tagged(docker_user), std::vector<std::string>{RuleToString(rules_.jumps[0])});
  EXPECT_EQ(Tagged(Listing(runner_, "INPUT")),
            std::vector<std::string>{RuleToString(rules_.jumps[1])});
  Print("DOCKER-USER", docker_user);
  Print("INPUT (tagged)", Tagged(Listing(runner_, "INPUT")));
  Print(kForwardChain, Listing(runner_, kForwardChain));
  Print(kInputChain, Listing(runner_, kInputChain));
  EXPECT_TRUE(*Check());

  // Flush DOCKER-USER as an operator (or a Docker restart) would; put back what was not ours.
  ASSERT_TRUE(
      runner_.Run({"iptables", "-w", "5", "-F", "DOCKER-USER"}, "", milliseconds(10000)).ok());
  for (const auto& line : docker_user) {
    if (line.rfind("-A ", 0) != 0 || IsTaggedRuleLine(line)) continue;
    std::vector<std::string> argv = {"iptables", "-w", "5"};
    std::istringstream words(line);
    for (std::string w; words >> w;) argv.push_back(w);
    auto out = runner_.Run(argv, "", milliseconds(10000));
    ASSERT_TRUE(out.ok() && out->exit_code == 0) << line;
  }
  Print("DOCKER-USER (after flush)", Listing(runner_, "DOCKER-USER"));
  EXPECT_FALSE(*Check());
  ASSERT_TRUE(fw_->Apply(rules_).ok());
  EXPECT_TRUE(*Check());
  EXPECT_EQ(Listing(runner_, "DOCKER-USER"), docker_user);

  ASSERT_TRUE(fw_->Remove().ok());
  EXPECT_TRUE(Tagged(Listing(runner_, "DOCKER-USER")).empty());
  EXPECT_TRUE(Tagged(Listing(runner_, "INPUT")).empty());
  auto gone = runner_.Run({"iptables", "-w", "5", "-S", kForwardChain}, "", milliseconds(10000));
  ASSERT_TRUE(gone.ok());
  EXPECT_NE(gone->exit_code, 0) << gone->output;
  EXPECT_FALSE(*Check());
  ASSERT_TRUE(fw_->Remove().ok());  // removing what is not there is fine
}

TEST_F(FirewallIntegrationTest, ApplyReplacesChangedRulesAndStaleJumps) {
  ASSERT_TRUE(fw_->Apply(rules_).ok());
  FirewallConfig other;
  other.bridge_interface = "taolietest1";
  other.subnet = "10.213.251.0/24";
  other.allow_smtp = true;
  auto changed = BuildFirewallRules(other);
  ASSERT_TRUE(changed.ok());
  ASSERT_TRUE(fw_->Apply(*changed).ok());
  EXPECT_EQ(Listing(runner_, kForwardChain), Expected(kForwardChain, changed->forward));
  EXPECT_EQ(Tagged(Listing(runner_, "INPUT")),
            std::vector<std::string>{RuleToString(changed->jumps[1])});
  EXPECT_TRUE(*fw_->Check(*changed));
  EXPECT_FALSE(*fw_->Check(rules_));
}

TEST_F(FirewallIntegrationTest, Ip6tablesGetsTheIpv6RulesAndIptablesTheNewDrops) {
  if (!fw6_) {
    if (::taolie::testing::InCi()) FAIL() << "the kernel has no IPv6 under CI";
    GTEST_SKIP() << "the kernel has IPv6 disabled: no ip6tables rules to test";
  }
  ASSERT_TRUE(fw_->Apply(rules_).ok());
  auto applied = fw6_->Apply(rules6_);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  ASSERT_TRUE(fw6_->Apply(rules6_).ok());  // idempotent
  EXPECT_TRUE(*fw6_->Check(rules6_));
  EXPECT_TRUE(*fw_->Check(rules_));

  // ip6tables-save lists both own chains with exactly the generated rules, and the jumps.
  const auto saved6 = Saved(runner_, "ip6tables");
  Print("ip6tables-save -t filter", saved6);
  for (const auto* chain : {&rules6_.forward, &rules6_.input, &rules6_.jumps}) {
    for (const auto& r : *chain) EXPECT_TRUE(Contains(saved6, RuleToString(r))) << RuleToString(r);
  }
  EXPECT_EQ(Listing(runner_, kForwardChain, "ip6tables"), Expected(kForwardChain, rules6_.forward));
  EXPECT_EQ(Listing(runner_, kInputChain, "ip6tables"), Expected(kInputChain, rules6_.input));
  auto forward6 = Listing(runner_, "FORWARD", "ip6tables");
  ASSERT_GE(forward6.size(), 2u);
  EXPECT_EQ(forward6[1], RuleToString(rules6_.jumps[0]));  // first in FORWARD

  // iptables-save: the reserved ranges and Azure's fabric (DNS excepted) dropped; egress_allow
  // only in the forward chain, host_allow only in the input chain.
  const auto saved = Saved(runner_, "iptables");
  const std::string tag = " -m comment --comment taolie-host-agent -j ";
  for (const char* cidr :
       {"0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "168.63.129.16/32"}) {
    EXPECT_TRUE(Contains(
        saved, std::string("-A TAOLIE-RENTALS -d ") + cidr + " -i taolietest0" + tag + "DROP"))
        << cidr;
  }
  EXPECT_TRUE(Contains(saved,
                       "-A TAOLIE-RENTALS -d 168.63.129.16/32 -i taolietest0 -p udp -m udp "
                       "--dport 53" +
                           tag + "RETURN"));
  EXPECT_TRUE(Contains(saved, "-A TAOLIE-RENTALS -d 192.0.2.0/28 -i taolietest0" + tag + "RETURN"));
  EXPECT_FALSE(
      Contains(saved, "-A TAOLIE-RENTALS-IN -d 192.0.2.0/28 -i taolietest0" + tag + "RETURN"));
  EXPECT_TRUE(Contains(saved,
                       "-A TAOLIE-RENTALS-IN -d 10.213.250.1/32 -i taolietest0 -p tcp -m tcp "
                       "--dport 8080" +
                           tag + "RETURN"));

  // A flushed ip6tables FORWARD is seen and repaired.
  auto deleted = runner_.Run({"ip6tables", "-w", "5", "-D", "FORWARD", "-m", "comment", "--comment",
                              kFirewallTag, "-j", kForwardChain},
                             "", milliseconds(10000));
  ASSERT_TRUE(deleted.ok() && deleted->exit_code == 0);
  EXPECT_FALSE(*fw6_->Check(rules6_));
  ASSERT_TRUE(fw6_->Apply(rules6_).ok());
  EXPECT_TRUE(*fw6_->Check(rules6_));

  // Remove cleans both families.
  ASSERT_TRUE(fw_->Remove().ok());
  ASSERT_TRUE(fw6_->Remove().ok());
  for (const std::string tool : {"iptables", "ip6tables"}) {
    for (const auto& line : Saved(runner_, tool)) {
      EXPECT_EQ(line.find(kFirewallTag), std::string::npos) << tool << ": " << line;
      EXPECT_EQ(line.find("TAOLIE-RENTALS"), std::string::npos) << tool << ": " << line;
    }
  }
  EXPECT_FALSE(*fw6_->Check(rules6_));
}

}  // namespace
}  // namespace taolie::host
