// The firewall on the real iptables: rules for an interface no rental uses (so nothing of
// anyone's traffic is touched), checked by listing them, never by sending traffic.
#include <gtest/gtest.h>
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "fixtures/test_env.h"
#include "host/command_runner.h"
#include "host/firewall.h"

namespace taolie::host {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> Listing(CommandRunner& runner, const std::string& chain) {
  auto out = runner.Run({"iptables", "-w", "5", "-S", chain}, "", std::chrono::seconds(10));
  EXPECT_TRUE(out.ok()) << out.error().ToString();
  if (!out.ok() || out->exit_code != 0) return {};
  std::vector<std::string> lines;
  std::istringstream in(out->output);
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

void Print(const std::string& title, const std::vector<std::string>& lines) {
  std::cout << "# iptables -S " << title << "\n";
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
    FirewallConfig config;
    config.bridge_interface = "taolietest0";  // no such interface: the rules match nothing
    config.subnet = "10.213.250.0/24";
    config.host_addresses = {"10.213.250.1"};
    config.resolvers = {"192.0.2.53"};
    config.egress_allow = {"192.0.2.0/28"};
    config.rental_allowed_sources = {"198.51.100.0/24"};
    auto rules = BuildFirewallRules(config);
    ASSERT_TRUE(rules.ok()) << rules.error().ToString();
    rules_ = *rules;
    ASSERT_TRUE(fw_->Remove().ok());  // a clean slate, whatever an earlier run left
  }
  void TearDown() override {
    if (fw_) {
      EXPECT_TRUE(fw_->Remove().ok());
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
  FirewallRules rules_;
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

}  // namespace
}  // namespace taolie::host
