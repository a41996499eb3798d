#include "isolation/rental_isolation.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "fakes/fake_docker.h"

namespace taolie::isolation {
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
  RentalIsolation Make(host::Firewall* fw, std::string fw_error = "", Ipv6Firewall ipv6 = {}) {
    return RentalIsolation(
        cfg_, docker_, fw, std::move(fw_error),
        [this](const std::string& p) {
          auto it = files_.find(p);
          return it == files_.end() ? std::string() : it->second;
        },
        std::move(ipv6));
  }
  config::DeploymentConfig cfg_;
  FakeDocker docker_;
  FakeFirewall fw_;
  FakeFirewall fw6_;
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
    dns_rules += line.find("--dport 53") != std::string::npos &&
                 line.find(host::kDnsOnlyDestination) == std::string::npos;
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

TEST_F(RentalIsolationTest, Ipv6RulesAreKeptLikeTheIpv4OnesAndTheirFailureFailsClosed) {
  cfg_.host_allow = {"10.213.0.1/32:8080"};
  auto iso = Make(&fw_, "", Ipv6Firewall{&fw6_, ""});
  ASSERT_TRUE(iso.Ensure().ok());
  EXPECT_EQ(fw_.applies, 1);
  EXPECT_EQ(fw6_.applies, 1);
  EXPECT_EQ(fw_.last.family, host::IpFamily::kIpv4);
  EXPECT_EQ(fw6_.last.family, host::IpFamily::kIpv6);
  EXPECT_TRUE(iso.Current().ipv6_rules);
  EXPECT_EQ(iso.Current().ipv6_note, "");
  // deployment.host_allow reaches the IPv4 INPUT chain.
  bool host_allow = false;
  for (const auto& r : fw_.last.input) {
    host_allow |= host::RuleToString(r).find(
                      "-d 10.213.0.1/32 -i taolie0 -p tcp -m tcp --dport "
                      "8080") != std::string::npos;
  }
  EXPECT_TRUE(host_allow);

  fw6_.in_place = false;  // ip6tables' FORWARD flushed
  ASSERT_TRUE(iso.Ensure().ok());
  EXPECT_EQ(fw_.applies, 1);
  EXPECT_EQ(fw6_.applies, 2);
  EXPECT_EQ(iso.Current().reapplied, 1u);

  fw6_.in_place = false;
  fw6_.apply_error = MakeError(ErrorCode::kUnavailable, "ip6tables-restore exited 2");
  ASSERT_FALSE(iso.Ensure().ok());
  EXPECT_EQ(iso.Current().error, "firewall: IPv6: ip6tables-restore exited 2");
  EXPECT_FALSE(iso.Current().ipv6_rules);
  EXPECT_FALSE(iso.AdmitsRentals());
}

TEST_F(RentalIsolationTest, NoIp6tablesIsANoteNotAFailure) {
  auto iso = Make(&fw_, "", Ipv6Firewall{nullptr, "ip6tables: not installed"});
  ASSERT_TRUE(iso.Ensure().ok());
  auto s = iso.Current();
  EXPECT_TRUE(s.ok);
  EXPECT_FALSE(s.ipv6_rules);
  EXPECT_EQ(s.ipv6_note, "ip6tables: not installed");
  EXPECT_TRUE(iso.AdmitsRentals());
}

TEST(EgressAllowHostWarningsTest, NamesEachEntryCoveringAHostAddress) {
  config::DeploymentConfig cfg;
  EXPECT_TRUE(EgressAllowHostWarnings(cfg, {"10.0.0.5"}).empty());
  cfg.egress_allow = {"10.0.0.0/8", "192.0.2.0/24"};
  auto w = EgressAllowHostWarnings(cfg, {"127.0.0.1", "10.0.0.5", "203.0.113.9"});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("deployment.egress_allow entry 10.0.0.0/8 covers this host's address "
                      "10.0.0.5"),
            std::string::npos)
      << w[0];
  EXPECT_NE(w[0].find("deployment.host_allow"), std::string::npos) << w[0];
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
}  // namespace taolie::isolation
