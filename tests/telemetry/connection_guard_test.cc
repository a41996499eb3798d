// The pure parts of the local API's accept loop: the bounded table of pending connections
// (on a fake time line), request completeness and the Host header rule.
#include "telemetry/connection_guard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taolie::telemetry {
namespace {

using std::chrono::milliseconds;
using Tp = PendingConnections::Clock::time_point;

const Tp kT0{};  // a fixed origin: the table only compares time points

PendingConnections Table(size_t max) {
  return PendingConnections({max, milliseconds(1000), milliseconds(3000)});
}

TEST(PendingConnectionsTest, AdmitsUpToTheBoundCountingActiveRequests) {
  auto t = Table(3);
  EXPECT_TRUE(t.Admit(10, kT0, 1).admitted);
  const auto a = t.Admit(11, kT0, 1);
  EXPECT_TRUE(a.admitted);
  EXPECT_FALSE(a.close_fd.has_value());
  EXPECT_EQ(t.size(), 2u);
}

TEST(PendingConnectionsTest, BeyondTheBoundTheOldestWaitingConnectionIsClosed) {
  auto t = Table(3);
  ASSERT_TRUE(t.Admit(10, kT0, 0).admitted);
  ASSERT_TRUE(t.Admit(11, kT0 + milliseconds(1), 0).admitted);
  ASSERT_TRUE(t.Admit(12, kT0 + milliseconds(2), 0).admitted);
  const auto a = t.Admit(13, kT0 + milliseconds(3), 0);
  EXPECT_TRUE(a.admitted);
  ASSERT_TRUE(a.close_fd.has_value());
  EXPECT_EQ(*a.close_fd, 10);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.entries().front().fd, 11);
  EXPECT_EQ(t.entries().back().fd, 13);
}

TEST(PendingConnectionsTest, WhenEverySlotIsBeingAnsweredTheNewConnectionIsClosed) {
  auto t = Table(3);
  const auto a = t.Admit(20, kT0, 3);
  EXPECT_FALSE(a.admitted);
  ASSERT_TRUE(a.close_fd.has_value());
  EXPECT_EQ(*a.close_fd, 20);
  EXPECT_EQ(t.size(), 0u);
}

TEST(PendingConnectionsTest, AFloodNeverGrowsTheTable) {
  auto t = Table(64);
  size_t closed = 0;
  for (int fd = 100; fd < 1600; ++fd) {
    const auto a = t.Admit(fd, kT0 + milliseconds(fd), 2);
    closed += a.close_fd.has_value() ? 1 : 0;
    ASSERT_LE(t.size() + 2, 64u);
  }
  EXPECT_EQ(closed, 1500u - 62u);
  EXPECT_EQ(t.entries().back().fd, 1599);  // the newest (a real client) is kept
}

TEST(PendingConnectionsTest, DeadlinesFirstByteThenWholeRequest) {
  auto t = Table(8);
  ASSERT_TRUE(t.Admit(1, kT0, 0).admitted);  // stays idle
  ASSERT_TRUE(t.Admit(2, kT0, 0).admitted);  // sends a byte
  t.MarkGotBytes(2);
  EXPECT_EQ(t.NextDeadline(kT0), PendingConnections::Clock::duration(milliseconds(1000)));
  EXPECT_TRUE(t.Expire(kT0 + milliseconds(999)).empty());
  EXPECT_EQ(t.Expire(kT0 + milliseconds(1000)), std::vector<int>{1});
  EXPECT_EQ(t.NextDeadline(kT0 + milliseconds(1000)),
            PendingConnections::Clock::duration(milliseconds(2000)));
  EXPECT_TRUE(t.Expire(kT0 + milliseconds(2999)).empty());
  EXPECT_EQ(t.Expire(kT0 + milliseconds(3000)), std::vector<int>{2});
  EXPECT_FALSE(t.NextDeadline(kT0 + milliseconds(3000)).has_value());
}

TEST(PendingConnectionsTest, RemoveTakesOnlyPendingOnes) {
  auto t = Table(8);
  ASSERT_TRUE(t.Admit(5, kT0, 0).admitted);
  EXPECT_TRUE(t.Remove(5));
  EXPECT_FALSE(t.Remove(5));
  EXPECT_EQ(t.size(), 0u);
}

TEST(CheckRequestProgressTest, Table) {
  struct Case {
    std::string received;
    RequestProgress want;
  };
  const std::string big_header = "GET / HTTP/1.1\r\nX: " + std::string(200, 'a') + "\r\n\r\n";
  const std::vector<Case> cases = {
      {"", RequestProgress::kNeedMore},
      {"G", RequestProgress::kNeedMore},
      {"GET /healthz HTTP/1.1\r\nHost: localhost\r\n", RequestProgress::kNeedMore},
      {"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", RequestProgress::kComplete},
      {"POST /v1/drain HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", RequestProgress::kNeedMore},
      {"POST /v1/drain HTTP/1.1\r\ncontent-length:  4 \r\n\r\nabcd", RequestProgress::kComplete},
      {"POST /v1/drain HTTP/1.1\r\nContent-Length: 0\r\n\r\n", RequestProgress::kComplete},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", RequestProgress::kTooLarge},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", RequestProgress::kUnsupported},
      {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", RequestProgress::kUnsupported},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
       RequestProgress::kUnsupported},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", RequestProgress::kUnsupported},
      {std::string(129, 'a'), RequestProgress::kTooLarge},
      {big_header, RequestProgress::kTooLarge},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CheckRequestProgress(c.received, 128, 100), c.want) << c.received;
  }
}

TEST(HostHeaderAllowedTest, Table) {
  const std::vector<std::string> extra = {"gpu-host-1.example.net", "gpu-host-1"};
  struct Case {
    std::optional<std::string_view> host;
    bool want;
  };
  const std::vector<Case> cases = {
      {std::nullopt, true},  // no Host: not a browser
      {"127.0.0.1:9109", true},
      {"127.0.0.1", true},
      {"10.1.2.3:9109", true},  // an IP literal cannot be a rebinding name
      {"[::1]:9109", true},
      {"[::1]", true},
      {"localhost:9109", true},
      {"LocalHost", true},
      {"localhost.:9109", true},
      {"localhost:8000", true},  // an SSH tunnel's port
      {"GPU-HOST-1.example.net:9109", true},
      {"gpu-host-1", true},
      {"attacker.example:9109", false},  // DNS rebinding
      {"localhost.attacker.example", false},
      {"gpu-host-1.attacker.example", false},
      {"", false},
      {":9109", false},
      {"localhost:", false},
      {"localhost:abc", false},
      {"localhost:9109:1", false},
      {"[::1", false},
      {"[::1]x", false},
      {"[evil.example]:9109", false},
      {"127.0.0.1.attacker.example", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(HostHeaderAllowed(c.host, extra), c.want) << (c.host ? *c.host : "(none)");
  }
  EXPECT_FALSE(HostHeaderAllowed("gpu-host-1", {}));
}

}  // namespace
}  // namespace taolie::telemetry
