// IptablesFirewall against a scripted runner: the exact iptables calls, and how failures of
// the tool come back (the agent fails closed on them).
#include "host/firewall.h"

#include <gtest/gtest.h>

#include <deque>

namespace taolie::host {
namespace {

// Answers each call from a script, in order; a call the script does not expect fails the test.
class ScriptedRunner : public CommandRunner {
 public:
  struct Step {
    std::string command;  // argv joined by spaces
    Result<CommandOutput> reply;
  };
  // `output` is what the tool writes to stdout, `errors` what it writes to stderr.
  void Expect(std::string command, int exit_code, std::string output = "",
              std::string errors = "") {
    steps_.push_back(
        {std::move(command), CommandOutput{exit_code, output + errors, std::move(output)}});
  }
  // A reply whose stderr landed in the middle of stdout (`output` as the runner reads it).
  void ExpectSplit(std::string command, std::string stdout_text, std::string mixed) {
    steps_.push_back(
        {std::move(command), CommandOutput{0, std::move(mixed), std::move(stdout_text)}});
  }
  Result<CommandOutput> Run(const std::vector<std::string>& argv, std::string_view stdin_data,
                            std::chrono::milliseconds) override {
    const std::string command = RuleToString(argv);
    if (steps_.empty()) {
      ADD_FAILURE() << "unexpected call: " << command;
      return MakeError(ErrorCode::kInternal, "unexpected");
    }
    Step step = std::move(steps_.front());
    steps_.pop_front();
    EXPECT_EQ(command, step.command);
    stdins_.emplace_back(stdin_data);
    return step.reply;
  }
  void ExpectError(std::string command, Error error) {
    steps_.push_back({std::move(command), std::move(error)});
  }
  bool Done() const { return steps_.empty(); }
  const std::vector<std::string>& stdins() const { return stdins_; }

 private:
  std::deque<Step> steps_;
  std::vector<std::string> stdins_;
};

FirewallRules Rules() {
  FirewallConfig c;
  c.bridge_interface = "taolie0";
  c.subnet = "10.213.0.0/24";
  return *BuildFirewallRules(c);
}

const std::string kJumpFwd =
    "-A DOCKER-USER -m comment --comment taolie-host-agent -j TAOLIE-RENTALS";
const std::string kJumpIn =
    "-A INPUT -i taolie0 -m comment --comment taolie-host-agent -j TAOLIE-RENTALS-IN";

std::string Op(const std::string& rule, const std::string& op) { return op + rule.substr(2); }

std::unique_ptr<IptablesFirewall> Make(ScriptedRunner& runner, const char* version) {
  runner.Expect("iptables --version", 0, version);
  auto fw = IptablesFirewall::Create(runner);
  EXPECT_TRUE(fw.ok());
  return fw.ok() ? std::move(*fw) : nullptr;
}

TEST(IptablesFirewallTest, DetectsTheBackend) {
  ScriptedRunner runner;
  EXPECT_EQ(Make(runner, "iptables v1.8.9 (nf_tables)\n")->Backend(), "nf_tables");
  EXPECT_EQ(Make(runner, "iptables v1.8.7 (legacy)\n")->Backend(), "legacy");
  runner.Expect("iptables --version", 0, "iptables v1.4.21\n");
  EXPECT_EQ(IptablesFirewall::Create(runner).error().code, ErrorCode::kUnavailable);
}

TEST(IptablesFirewallTest, ApplyRestoresChainsInsertsMissingJumpsAndDropsStaleOnes) {
  ScriptedRunner runner;
  auto fw = Make(runner, "iptables v1.8.9 (nf_tables)");
  FirewallRules rules = Rules();
  runner.Expect("iptables-restore -w 5 --noflush", 0);
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 1);  // missing
  runner.Expect(
      "iptables -w 5 -I DOCKER-USER 1 -m comment --comment taolie-host-agent -j TAOLIE-RENTALS", 0);
  runner.Expect("iptables -w 5 " + Op(kJumpIn, "-C"), 0);  // present
  runner.Expect("iptables -w 5 -S DOCKER-USER", 0,
                "-N DOCKER-USER\n" + kJumpFwd + "\n" + kJumpFwd + "\n-A DOCKER-USER -j RETURN\n");
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-D"), 0);  // the duplicate
  const std::string stale =
      "-A INPUT -i old0 -m comment --comment taolie-host-agent -j TAOLIE-RENTALS-IN";
  runner.Expect("iptables -w 5 -S INPUT", 0, "-P INPUT ACCEPT\n" + stale + "\n" + kJumpIn + "\n");
  runner.Expect("iptables -w 5 " + Op(stale, "-D"), 0);
  auto s = fw->Apply(rules);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_TRUE(runner.Done());
  EXPECT_EQ(runner.stdins()[1], RenderRestoreInput(rules));
}

TEST(IptablesFirewallTest, NoPrivilegeIsPermissionDenied) {
  ScriptedRunner runner;
  auto fw = Make(runner, "iptables v1.8.9 (nf_tables)");
  runner.Expect("iptables-restore -w 5 --noflush", 4,
                "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: "
                "Permission denied (you must be root)\n");
  auto s = fw->Apply(Rules());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(s.error().message.find("you must be root"), std::string::npos);
}

TEST(IptablesFirewallTest, FailuresOfTheToolAreReturned) {
  ScriptedRunner runner;
  auto fw = Make(runner, "iptables v1.8.9 (nf_tables)");
  runner.Expect("iptables-restore -w 5 --noflush", 2, "line 3 failed\n");
  auto s = fw->Apply(Rules());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("line 3 failed"), std::string::npos);

  runner.ExpectError("iptables-restore -w 5 --noflush",
                     MakeError(ErrorCode::kDeadlineExceeded, "did not finish"));
  s = fw->Apply(Rules());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDeadlineExceeded);

  runner.ExpectError("iptables --version", MakeError(ErrorCode::kNotFound, "not installed"));
  EXPECT_EQ(IptablesFirewall::Create(runner).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(runner.Done());
}

TEST(IptablesFirewallTest, CheckComparesJumpsAndChainContents) {
  ScriptedRunner runner;
  auto fw = Make(runner, "iptables v1.8.9 (nf_tables)");
  FirewallRules rules = Rules();
  std::string fwd = "-N TAOLIE-RENTALS\n", in = "-N TAOLIE-RENTALS-IN\n";
  for (const auto& r : rules.forward) fwd += RuleToString(r) + "\n";
  for (const auto& r : rules.input) in += RuleToString(r) + "\n";
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 0);
  runner.Expect("iptables -w 5 " + Op(kJumpIn, "-C"), 0);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS", 0, fwd);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS-IN", 0, in);
  EXPECT_TRUE(*fw->Check(rules));
  // iptables-nft's remark on a host that has legacy tables too is not a rule.
  const std::string remark =
      "# Warning: iptables-legacy tables present, use iptables-legacy to see them\n";
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 0);
  runner.Expect("iptables -w 5 " + Op(kJumpIn, "-C"), 0);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS", 0, remark + fwd);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS-IN", 0, remark + in);
  EXPECT_TRUE(*fw->Check(rules));
  // The same remark on stderr, landing in the middle of a rule in the mixed output: only
  // stdout is read, so no rule is cut in two.
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 0);
  runner.Expect("iptables -w 5 " + Op(kJumpIn, "-C"), 0);
  runner.ExpectSplit("iptables -w 5 -S TAOLIE-RENTALS", fwd,
                     fwd.substr(0, 30) + remark + fwd.substr(30));
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS-IN", 0, in, remark);
  EXPECT_TRUE(*fw->Check(rules));
  // A rule missing from the chain.
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 0);
  runner.Expect("iptables -w 5 " + Op(kJumpIn, "-C"), 0);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS", 0, "-N TAOLIE-RENTALS\n");
  EXPECT_FALSE(*fw->Check(rules));
  // A flushed DOCKER-USER.
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-C"), 1);
  EXPECT_FALSE(*fw->Check(rules));
  EXPECT_TRUE(runner.Done());
}

TEST(IptablesFirewallTest, Ipv6UsesIp6tablesAndJumpsFromForward) {
  ScriptedRunner runner;
  runner.Expect("ip6tables --version", 0, "ip6tables v1.8.9 (nf_tables)\n");
  auto created = IptablesFirewall::Create(runner, IpFamily::kIpv6);
  ASSERT_TRUE(created.ok());
  auto& fw = *created;
  EXPECT_EQ(fw->Backend(), "nf_tables");
  FirewallConfig c;
  c.bridge_interface = "taolie0";
  c.subnet = "10.213.0.0/24";
  FirewallRules rules = *BuildIpv6FirewallRules(c);
  const std::string jump_fwd =
      "-A FORWARD -m comment --comment taolie-host-agent -j TAOLIE-RENTALS";
  runner.Expect("ip6tables-restore -w 5 --noflush", 0);
  runner.Expect("ip6tables -w 5 " + Op(jump_fwd, "-C"), 1);
  runner.Expect(
      "ip6tables -w 5 -I FORWARD 1 -m comment --comment taolie-host-agent -j TAOLIE-RENTALS", 0);
  runner.Expect("ip6tables -w 5 " + Op(kJumpIn, "-C"), 0);
  runner.Expect("ip6tables -w 5 -S FORWARD", 0, "-P FORWARD ACCEPT\n" + jump_fwd + "\n");
  runner.Expect("ip6tables -w 5 -S INPUT", 0, "-P INPUT ACCEPT\n" + kJumpIn + "\n");
  auto s = fw->Apply(rules);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(runner.stdins()[1], RenderRestoreInput(rules));

  // Rules of the other family are refused before any tool runs.
  EXPECT_EQ(fw->Apply(Rules()).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(fw->Check(Rules()).error().code, ErrorCode::kInvalidArgument);

  // Remove: the tagged jumps in FORWARD and INPUT, then both own chains.
  runner.Expect("ip6tables -w 5 -S FORWARD", 0, "-P FORWARD ACCEPT\n" + jump_fwd + "\n");
  runner.Expect("ip6tables -w 5 " + Op(jump_fwd, "-D"), 0);
  runner.Expect("ip6tables -w 5 -S INPUT", 0, "-P INPUT ACCEPT\n" + kJumpIn + "\n");
  runner.Expect("ip6tables -w 5 " + Op(kJumpIn, "-D"), 0);
  for (const std::string chain : {"TAOLIE-RENTALS", "TAOLIE-RENTALS-IN"}) {
    runner.Expect("ip6tables -w 5 -S " + chain, 0, "-N " + chain + "\n");
    runner.Expect("ip6tables -w 5 -F " + chain, 0);
    runner.Expect("ip6tables -w 5 -X " + chain, 0);
  }
  s = fw->Remove();
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_TRUE(runner.Done());

  runner.ExpectError("ip6tables --version", MakeError(ErrorCode::kNotFound, "not installed"));
  EXPECT_EQ(IptablesFirewall::Create(runner, IpFamily::kIpv6).error().code, ErrorCode::kNotFound);
}

TEST(IptablesFirewallTest, RemoveDeletesTaggedRulesAndOwnChainsOnly) {
  ScriptedRunner runner;
  auto fw = Make(runner, "iptables v1.8.9 (nf_tables)");
  runner.Expect("iptables -w 5 -S DOCKER-USER", 0,
                "-N DOCKER-USER\n" + kJumpFwd + "\n-A DOCKER-USER -j RETURN\n");
  runner.Expect("iptables -w 5 " + Op(kJumpFwd, "-D"), 0);
  runner.Expect("iptables -w 5 -S INPUT", 0, "-P INPUT ACCEPT\n-A INPUT -i lo -j ACCEPT\n");
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS", 0, "-N TAOLIE-RENTALS\n");
  runner.Expect("iptables -w 5 -F TAOLIE-RENTALS", 0);
  runner.Expect("iptables -w 5 -X TAOLIE-RENTALS", 0);
  runner.Expect("iptables -w 5 -S TAOLIE-RENTALS-IN", 1,
                "iptables v1.8.9 (nf_tables): chain `TAOLIE-RENTALS-IN' in table `filter' is "
                "incompatible, use 'nft' tool.\n");
  auto s = fw->Remove();
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_TRUE(runner.Done());
}

}  // namespace
}  // namespace taolie::host
