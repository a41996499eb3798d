#include <gtest/gtest.h>

#include <set>

#include "common/backoff.h"
#include "common/log_level.h"
#include "common/net_address.h"
#include "common/result.h"
#include "common/secrets.h"
#include "common/time_format.h"

namespace taolie {
namespace {

TEST(TimeFormat, NaiveAndRfc3339) {
  SystemTime t = SystemTime(std::chrono::seconds(1700000000)) + std::chrono::microseconds(123456);
  EXPECT_EQ(FormatNaiveIso(t), "2023-11-14T22:13:20.123456");
  EXPECT_EQ(FormatRfc3339(t), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(ParseTimestamp("2023-11-14T22:13:20.123456"), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14T22:13:20.123456Z"), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14T22:13:20Z"), SystemTime(std::chrono::seconds(1700000000)));
  EXPECT_FALSE(ParseTimestamp("yesterday").has_value());
  EXPECT_FALSE(ParseTimestamp("2023-11-14T22:13:20+05:00").has_value());
}

TEST(Secrets, AlnumHasLengthAlphabetAndVaries) {
  auto a = RandomAlnum(32);
  auto b = RandomAlnum(32);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  for (char c : *a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

TEST(Secrets, AgentIdShape) {
  auto id = NewAgentId();
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(IsValidAgentId(*id)) << *id;
  EXPECT_FALSE(IsValidAgentId("agent-XYZ"));
  EXPECT_FALSE(IsValidAgentId("agent-0123456789AB"));
  EXPECT_TRUE(IsValidAgentId("agent-0123456789ab"));
}

TEST(Backoff, CeilingDoublesUpToCap) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 42);
  EXPECT_EQ(b.Ceiling(0).count(), 100);
  EXPECT_EQ(b.Ceiling(1).count(), 200);
  EXPECT_EQ(b.Ceiling(3).count(), 800);
  EXPECT_EQ(b.Ceiling(10).count(), 1000);
  for (int i = 0; i < 20; ++i) {
    auto d = b.Next();
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), 1000);
  }
}

TEST(ResultTest, ValueAndError) {
  Result<int> ok = 5;
  Result<int> bad = MakeError(ErrorCode::kNotFound, "nope");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(bad.error().ToString(), "NotFound: nope");
}

TEST(NetAddress, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST",
                        "localhost.", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"128.0.0.1", "10.0.0.1", "::2", "::ffff:10.0.0.1", "example.com",
                        "localhost.example.com", "0.0.0.0", "[::1", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(NetAddress, CanonicalIpv4Cidr) {
  EXPECT_EQ(*CanonicalIpv4Cidr("10.1.2.3/8"), "10.0.0.0/8");
  EXPECT_EQ(*CanonicalIpv4Cidr("1.2.3.4"), "1.2.3.4/32");
  EXPECT_EQ(*CanonicalIpv4Cidr("0.0.0.0/0"), "0.0.0.0/0");
  EXPECT_EQ(*CanonicalIpv4Cidr("100.100.1.1/10"), "100.64.0.0/10");
  for (const char* bad :
       {"", "/8", "1.2.3.4/", "1.2.3.4/x", "1.2.3.4/033", "256.1.1.1", "::1", "1.2.3.4/8/8"}) {
    EXPECT_FALSE(CanonicalIpv4Cidr(bad).ok()) << bad;
  }
}

TEST(LogLevel, ParsesEveryAcceptedSpelling) {
  EXPECT_EQ(ParseLogLevel("trace"), LogLevel::kTrace);
  EXPECT_EQ(ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("Warning"), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("err"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("critical"), LogLevel::kCritical);
  EXPECT_EQ(ParseLogLevel("fatal"), LogLevel::kCritical);
  EXPECT_EQ(ParseLogLevel("off"), LogLevel::kOff);
  EXPECT_EQ(ParseLogLevel("verbose"), std::nullopt);
  EXPECT_EQ(ParseLogLevel(""), std::nullopt);
}

}  // namespace
}  // namespace taolie
