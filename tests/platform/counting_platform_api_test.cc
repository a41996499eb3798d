#include "platform/counting_platform_api.h"

#include <gtest/gtest.h>

#include <deque>

#include "platform/messages.h"

namespace taolie::platform {
namespace {

// Answers each request with the next scripted result; a request beyond the script fails.
class ScriptedApi : public PlatformApi {
 public:
  std::deque<Result<Response>> replies;
  Result<Response> Send(Method, const std::string& path, const std::string&,
                        std::stop_token) override {
    if (replies.empty()) {
      ADD_FAILURE() << "unexpected request to " << path;
      return Error{ErrorCode::kInternal, "unexpected"};
    }
    Result<Response> r = replies.front();
    replies.pop_front();
    return r;
  }
};

Response Status(long code) {
  Response r;
  r.status = code;
  return r;
}

TEST(CountingPlatformApiTest, CountsEachRequestByNameAndOutcomeAndPassesRepliesThrough) {
  ScriptedApi inner;
  inner.replies = {Status(200), Status(503),
                   Status(200), Error{ErrorCode::kUnavailable, "connection refused"},
                   Status(422), Error{ErrorCode::kCancelled, "stop"}};
  CountingPlatformApi api(inner);
  std::stop_source stop;
  EXPECT_EQ(api.Send(Method::kPost, HeartbeatPath("agent-1"), "{}", stop.get_token())->status, 200);
  EXPECT_EQ(api.Send(Method::kPost, HeartbeatPath("agent-1"), "{}", stop.get_token())->status, 503);
  EXPECT_TRUE(api.Send(Method::kGet, CommandsPath("agent-1"), "", stop.get_token()).ok());
  EXPECT_FALSE(api.Send(Method::kPost, MetricsPath(), "{}", stop.get_token()).ok());
  EXPECT_EQ(api.Send(Method::kPost, DeploymentEventPath("d-7", "success"), "{}", stop.get_token())
                ->status,
            422);
  EXPECT_FALSE(api.Send(Method::kPost, AckPath("agent-1", "c-9"), "{}", stop.get_token()).ok());

  std::vector<std::tuple<std::string, std::string, uint64_t>> got;
  for (const auto& c : api.Counts()) got.emplace_back(c.request, c.outcome, c.count);
  std::vector<std::tuple<std::string, std::string, uint64_t>> want = {
      {"ack", "cancelled", 1},           {"commands", "success", 1},
      {"heartbeat", "server_error", 1},  {"heartbeat", "success", 1},
      {"metrics", "transport_error", 1}, {"success", "client_error", 1}};
  EXPECT_EQ(got, want);
}

TEST(CountingPlatformApiTest, RequestNameIsTheLastSegmentNeverAnId) {
  EXPECT_EQ(CountingPlatformApi::RequestName(RegisterPath()), "register");
  EXPECT_EQ(CountingPlatformApi::RequestName(HeartbeatPath("a1b2")), "heartbeat");
  EXPECT_EQ(CountingPlatformApi::RequestName(AckPath("a1b2", "cmd-3")), "ack");
  EXPECT_EQ(CountingPlatformApi::RequestName(HealthPath()), "health");
  EXPECT_EQ(CountingPlatformApi::RequestName(DeploymentEventPath("d-1", "terminated")),
            "terminated");
  EXPECT_EQ(CountingPlatformApi::RequestName("/api/x/?q=1"), "x");
  EXPECT_EQ(CountingPlatformApi::RequestName("/"), "other");
}

}  // namespace
}  // namespace taolie::platform
