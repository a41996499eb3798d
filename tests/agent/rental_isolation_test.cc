#include "agent/rental_isolation.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "fakes/fake_docker.h"

namespace taolie::agent {
namespace {

using testing::FakeDocker;

// The firewall as a flag: rules either exactly in place or not. Remove is never used here.
class FakeFirewall : public host::Firewall {
 public:
  bool in_place = false;
  std::optional<Error> apply_error;
  int applies = 0;
  host::FirewallRules last;
  Status Apply(const host::FirewallRules& rules) override {
    if (apply_error) return *apply_error;
    ++applies;
    last = rules;
    in_place = true;
    return OkStatus();
  }
  Result<bool> Check(const host::FirewallRules&) override { return in_place; }
  Status Remove() override {
    ADD_FAILURE() << "FakeFirewall: unexpected Remove";
    return OkStatus();
  }
  std::string Backend() const override { return "nf_tables"; }
};

class RentalIsolationTest : public ::testing::Test {
 protected:
  RentalIsolation Make(host::Firewall* fw, std::string fw_error = "") {
    return RentalIsolation(cfg_, docker_, fw, std::move(fw_error), [this](const std::string& p) {
      auto it = files_.find(p);
      return it == files_.end() ? std::string() : it->second;
    });
  }
  config::DeploymentConfig cfg_;
  FakeDocker docker_;
  FakeFirewall fw_;
  std::map<std::string, std::string> files_ = {
      {"/etc/resolv.conf", "nameserver 127.0.0.53\n"},
      {"/run/systemd/resolve/resolv.conf", "nameserver 192.168.1.1\nnameserver 1.1.1.1\n"}};
};

TEST_F(RentalIsolationTest, CreatesTheNetworkAppliesTheRulesAndReappliesWhenFlushed) {
  auto iso = Make(&fw_);
  EXPECT_FALSE(iso.AdmitsRentals());  // nothing ensured yet
  auto st = iso.Ensure();
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  auto s = iso.Current();
  EXPECT_TRUE(s.ok);
  EXPECT_TRUE(s.network_ready);
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.backend, "nf_tables");
  EXPECT_EQ(s.reapplied, 0u);
  EXPECT_TRUE(iso.AdmitsRentals());
  EXPECT_EQ(docker_.networks.at("taolie-rentals").subnets,
            std::vector<std::string>{"10.213.0.0/24"});
  EXPECT_EQ(fw_.applies, 1);
  // The upstream resolvers (loopback ones left out) stay reachable on port 53.
  int dns_rules = 0;
  for (const auto& r : fw_.last.forward) {
    std::string line = host::RuleToString(r);
    dns_rules += line.find("--dport 53") != std::string::npos;
    EXPECT_EQ(line.find("127.0.0.53"), std::string::npos);
  }
  EXPECT_EQ(dns_rules, 4);  // udp + tcp for each of two servers

  ASSERT_TRUE(iso.Ensure().ok());  // in place: nothing applied
  EXPECT_EQ(fw_.applies, 1);
  fw_.in_place = false;  // DOCKER-USER flushed
  ASSERT_TRUE(iso.Ensure().ok());
  EXPECT_EQ(fw_.applies, 2);
  EXPECT_EQ(iso.Current().reapplied, 1u);
}

TEST_F(RentalIsolationTest, NoFirewallFailsClosedUnlessWaived) {
  auto iso = Make(nullptr, "iptables: not installed");
  auto st = iso.Ensure();
  ASSERT_FALSE(st.ok());
  auto s = iso.Current();
  EXPECT_FALSE(s.ok);
  EXPECT_TRUE(s.network_ready);
  EXPECT_EQ(s.error, "firewall: iptables: not installed");
  EXPECT_FALSE(iso.AdmitsRentals());
  cfg_.require_isolation = false;
  EXPECT_TRUE(iso.AdmitsRentals());
}

TEST_F(RentalIsolationTest, ApplyFailureAndDockerDownAreReportedAndRecover) {
  auto iso = Make(&fw_);
  fw_.apply_error = MakeError(ErrorCode::kPermissionDenied, "you must be root");
  docker_.down = true;
  ASSERT_FALSE(iso.Ensure().ok());
  auto s = iso.Current();
  EXPECT_FALSE(s.ok);
  EXPECT_FALSE(s.network_ready);
  EXPECT_NE(s.error.find("rental network: FakeDocker: daemon down"), std::string::npos) << s.error;
  EXPECT_NE(s.error.find("firewall: you must be root"), std::string::npos) << s.error;
  EXPECT_FALSE(iso.AdmitsRentals());

  fw_.apply_error.reset();
  docker_.down = false;
  ASSERT_TRUE(iso.Ensure().ok());
  EXPECT_TRUE(iso.AdmitsRentals());
  EXPECT_EQ(iso.Current().reapplied, 0u);  // first install, not a re-apply
}

}  // namespace
}  // namespace taolie::agent
