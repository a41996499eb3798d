#include "isolation/rental_network.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

#include "fakes/fake_docker.h"

namespace taolie::isolation {
namespace {

using testing::FakeDocker;

TEST(RentalNetworkTest, SpecIsTheAgentsIsolatedBridge) {
  auto spec = RentalNetworkSpec("10.213.0.0/24");
  EXPECT_EQ(spec.name, "taolie-rentals");
  EXPECT_EQ(spec.bridge_name, "taolie0");
  EXPECT_EQ(spec.subnet, "10.213.0.0/24");
  EXPECT_FALSE(spec.enable_icc);
  EXPECT_EQ(spec.labels, (std::map<std::string, std::string>{{"taolie.managed", "true"}}));
}

TEST(RentalNetworkTest, CreatedWhenMissingAndKeptWhenPresent) {
  FakeDocker docker;
  auto spec = RentalNetworkSpec("10.213.0.0/24");
  auto info = EnsureRentalNetwork(docker, spec);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->name, "taolie-rentals");
  EXPECT_EQ(docker.Count("CreateNetwork"), 1);
  auto again = EnsureRentalNetwork(docker, spec);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->id, info->id);
  EXPECT_EQ(docker.Count("CreateNetwork"), 1);
}

TEST(RentalNetworkTest, AnExistingNetworkThatDiffersIsRefused) {
  struct Case {
    std::string name;
    std::function<void(docker::NetworkInfo&)> mutate;
    std::string reason;
  };
  const Case cases[] = {
      {"not ours", [](docker::NetworkInfo& n) { n.labels.clear(); }, "not labelled"},
      {"other subnet", [](docker::NetworkInfo& n) { n.subnets = {"10.9.0.0/24"}; },
       "deployment.network_subnet"},
      {"other bridge",
       [](docker::NetworkInfo& n) { n.options["com.docker.network.bridge.name"] = "br-x"; },
       "bridge"},
      {"icc on",
       [](docker::NetworkInfo& n) { n.options["com.docker.network.bridge.enable_icc"] = "true"; },
       "inter-container"},
      {"ipv6", [](docker::NetworkInfo& n) { n.enable_ipv6 = true; }, "IPv6"},
  };
  for (const auto& tc : cases) {
    FakeDocker docker;
    auto spec = RentalNetworkSpec("10.213.0.0/24");
    ASSERT_TRUE(docker.CreateNetwork(spec).ok());
    tc.mutate(docker.networks.at(spec.name));
    auto info = EnsureRentalNetwork(docker, spec);
    ASSERT_FALSE(info.ok()) << tc.name;
    EXPECT_EQ(info.error().code, ErrorCode::kFailedPrecondition) << tc.name;
    EXPECT_NE(info.error().message.find(tc.reason), std::string::npos) << info.error().message;
  }
}

TEST(RentalNetworkTest, DockerDownIsUnavailable) {
  FakeDocker docker;
  docker.down = true;
  auto info = EnsureRentalNetwork(docker, RentalNetworkSpec("10.213.0.0/24"));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace taolie::isolation
