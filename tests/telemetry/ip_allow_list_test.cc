#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "telemetry/status_server.h"

namespace taolie::telemetry {
namespace {

IpAllowList MustParse(const std::vector<std::string>& entries) {
  Result<IpAllowList> list = IpAllowList::Parse(entries);
  EXPECT_TRUE(list.ok()) << list.error().ToString();
  return list.ok() ? list.value() : IpAllowList::Parse({}).value();
}

struct AllowCase {
  std::vector<std::string> entries;
  const char* client;
  bool allowed;
};

class IpAllowListTest : public ::testing::TestWithParam<AllowCase> {};

TEST_P(IpAllowListTest, Matches) {
  const AllowCase& c = GetParam();
  EXPECT_EQ(MustParse(c.entries).Allows(c.client), c.allowed) << c.client;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IpAllowListTest,
    ::testing::Values(
        // Default: loopback only.
        AllowCase{{}, "127.0.0.1", true}, AllowCase{{}, "127.255.0.9", true},
        AllowCase{{}, "::1", true}, AllowCase{{}, "::ffff:127.0.0.1", true},
        AllowCase{{}, "10.0.0.1", false}, AllowCase{{}, "::2", false},
        AllowCase{{}, "128.0.0.1", false},
        // IPv4 CIDRs and single addresses.
        AllowCase{{"10.0.0.0/8"}, "10.200.3.4", true}, AllowCase{{"10.0.0.0/8"}, "11.0.0.1", false},
        AllowCase{{"10.0.0.0/8"}, "127.0.0.1", false},
        AllowCase{{"192.168.1.0/25"}, "192.168.1.127", true},
        AllowCase{{"192.168.1.0/25"}, "192.168.1.128", false},
        AllowCase{{"192.168.1.7"}, "192.168.1.7", true},
        AllowCase{{"192.168.1.7"}, "192.168.1.8", false},
        AllowCase{{"0.0.0.0/0"}, "203.0.113.9", true},
        AllowCase{{"0.0.0.0/0"}, "2001:db8::1", false}, AllowCase{{" 10.1.2.3 "}, "10.1.2.3", true},
        AllowCase{{"10.0.0.1/8"}, "10.9.9.9", true},  // host bits ignored
        // IPv4-mapped clients match IPv4 entries.
        AllowCase{{"10.0.0.0/8"}, "::ffff:10.1.1.1", true},
        AllowCase{{"::ffff:10.0.0.0/104"}, "10.1.1.1", true},
        AllowCase{{"::ffff:10.0.0.0/104"}, "11.1.1.1", false},
        // IPv6 CIDRs.
        AllowCase{{"2001:db8::/32"}, "2001:db8:ffff::1", true},
        AllowCase{{"2001:db8::/32"}, "2001:db9::1", false},
        AllowCase{{"fe80::/10"}, "fe80::1%eth0", true}, AllowCase{{"fe80::/10"}, "fec0::1", false},
        AllowCase{{"::/0"}, "2001:db8::1", true}, AllowCase{{"::/0"}, "10.0.0.1", false},
        AllowCase{{"::1"}, "::1", true}, AllowCase{{"::1"}, "127.0.0.1", false},
        // Several entries; garbage client addresses are refused.
        AllowCase{{"10.0.0.0/8", "2001:db8::/32"}, "2001:db8::5", true},
        AllowCase{{"10.0.0.0/8", "2001:db8::/32"}, "10.3.3.3", true},
        AllowCase{{"10.0.0.0/8"}, "", false}, AllowCase{{"10.0.0.0/8"}, "localhost", false}));

TEST(IpAllowListParseTest, RejectsMalformedEntries) {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8",
                          "2001:db8::/129", "example.com", "10.0.0.0/8/8", "::ffff:10.0.0.0/95"}) {
    Result<IpAllowList> list = IpAllowList::Parse({"127.0.0.1", bad});
    ASSERT_FALSE(list.ok()) << bad;
    EXPECT_EQ(list.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(list.error().message.find(bad), std::string::npos) << list.error().message;
  }
}

}  // namespace
}  // namespace taolie::telemetry
