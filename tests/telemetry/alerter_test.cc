// The Alerter's policy with a fake channel and a FakeClock (issue 8 item 5): de-duplication,
// the hourly rate limit, bounded retries with growing pauses, a full queue, a Raise that never
// waits for a delivery, an instant Stop; and the alert's JSON and mail rendering.
#include "telemetry/alerter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "telemetry/alert_channels.h"

namespace taolie::telemetry {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

// Records every delivery; answers from a script (then OK once the script is used up).
class FakeChannel final : public AlertChannel {
 public:
  struct Shared {
    std::mutex mu;
    std::vector<Alert> delivered;  // every try, failed ones included
    std::deque<Status> script;
    bool block = false;  // wait for stop (10 s at most) before answering
  };
  explicit FakeChannel(Shared& s) : s_(s) {}
  const char* Name() const override { return "fake"; }
  Status Deliver(const Alert& alert, std::stop_token stop) override {
    bool block = false;
    {
      std::lock_guard l(s_.mu);
      s_.delivered.push_back(alert);
      block = s_.block;
    }
    if (block) {
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock l(mu);
      cv.wait_for(l, stop, seconds(10), [] { return false; });
      return MakeError(ErrorCode::kCancelled, "stopped");
    }
    std::lock_guard l(s_.mu);
    if (s_.script.empty()) return OkStatus();
    Status st = s_.script.front();
    s_.script.pop_front();
    return st;
  }

 private:
  Shared& s_;
};

Alert Make(const std::string& key, const std::string& state) {
  Alert a;
  a.kind = "gpu_verdict";
  a.key = key;
  a.state = state;
  a.message = key + " is " + state;
  return a;
}

struct Fixture {
  FakeClock clock;
  FakeChannel::Shared shared;
  std::unique_ptr<Alerter> alerter;
  explicit Fixture(AlerterOptions o = {}) {
    o.agent_id = "agent-0123456789ab";
    o.host = "gpu-host-1";
    o.start_worker = false;
    std::vector<std::unique_ptr<AlertChannel>> ch;
    ch.push_back(std::make_unique<FakeChannel>(shared));
    alerter = std::make_unique<Alerter>(o, std::move(ch), clock);
  }
  size_t Run() { return alerter->RunPending(std::stop_token{}); }
  size_t Delivered() {
    std::lock_guard l(shared.mu);
    return shared.delivered.size();
  }
};

TEST(Alerter, SameKeyAndStateWithinCooldownIsSentOnce) {
  AlerterOptions o;
  o.cooldown = seconds(900);
  Fixture f(o);
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "unhealthy"));
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "unhealthy"));
  f.clock.Advance(seconds(899));
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "unhealthy"));
  EXPECT_EQ(f.Run(), 1u);
  EXPECT_EQ(f.Delivered(), 1u);
  auto c = f.alerter->Counters();
  EXPECT_EQ(c.raised, 3u);
  EXPECT_EQ(c.sent, 1u);
  EXPECT_EQ(c.suppressed, 2u);
  // The cooldown over: the same alert again is a reminder.
  f.clock.Advance(seconds(1));
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "unhealthy"));
  EXPECT_EQ(f.Run(), 1u);
  // A transition back, and forth again, are new alerts even within the cooldown.
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "healthy"));
  f.alerter->Raise(Make("gpu_verdict/GPU-1", "unhealthy"));
  // Another key is its own alert.
  f.alerter->Raise(Make("gpu_verdict/GPU-2", "unhealthy"));
  EXPECT_EQ(f.Run(), 3u);
  EXPECT_EQ(f.alerter->Counters().sent, 5u);
  std::lock_guard l(f.shared.mu);
  EXPECT_EQ(f.shared.delivered[0].agent_id, "agent-0123456789ab");  // filled in by the Alerter
  EXPECT_EQ(f.shared.delivered[0].host, "gpu-host-1");
  EXPECT_EQ(f.shared.delivered[0].at, f.clock.Now() - seconds(900));
}

TEST(Alerter, AtMostMaxPerHourInARollingHour) {
  AlerterOptions o;
  o.max_per_hour = 3;
  Fixture f(o);
  for (int i = 0; i < 5; ++i) f.alerter->Raise(Make("k" + std::to_string(i), "x"));
  EXPECT_EQ(f.Run(), 3u);
  auto c = f.alerter->Counters();
  EXPECT_EQ(c.sent, 3u);
  EXPECT_EQ(c.suppressed, 2u);
  EXPECT_EQ(c.rate_limited, 2u);
  f.clock.Advance(hours(1) - seconds(1));
  f.alerter->Raise(Make("k9", "x"));
  EXPECT_EQ(f.Run(), 0u);
  f.clock.Advance(seconds(1));  // the first three leave the window
  f.alerter->Raise(Make("k9", "x"));
  f.alerter->Raise(Make("k10", "x"));
  EXPECT_EQ(f.Run(), 2u);
  EXPECT_EQ(f.alerter->Counters().rate_limited, 3u);
}

TEST(Alerter, RetriesWithGrowingPausesThenSucceeds) {
  Fixture f;
  f.shared.script = {MakeError(ErrorCode::kUnavailable, "down"),
                     MakeError(ErrorCode::kDeadlineExceeded, "slow")};
  const MonoTime start = f.clock.Monotonic();
  f.alerter->Raise(Make("k", "x"));
  EXPECT_EQ(f.Run(), 1u);
  EXPECT_EQ(f.Delivered(), 3u);
  EXPECT_EQ(f.clock.sleeps(), 2);
  EXPECT_EQ(f.clock.Monotonic() - start, seconds(2 + 4));  // 2 s, then twice that
  auto c = f.alerter->Counters();
  EXPECT_EQ(c.sent, 1u);
  EXPECT_EQ(c.retries, 2u);
  EXPECT_EQ(c.failed, 0u);
}

TEST(Alerter, GivesUpAfterItsTries) {
  AlerterOptions o;
  o.max_tries = 3;
  Fixture f(o);
  for (int i = 0; i < 5; ++i) f.shared.script.push_back(MakeError(ErrorCode::kUnavailable, "x"));
  f.alerter->Raise(Make("k", "x"));
  EXPECT_EQ(f.Run(), 1u);
  EXPECT_EQ(f.Delivered(), 3u);
  auto c = f.alerter->Counters();
  EXPECT_EQ(c.sent, 0u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retries, 2u);
}

TEST(Alerter, AFinalRefusalIsNotRetried) {
  Fixture f;
  f.shared.script = {MakeError(ErrorCode::kFailedPrecondition, "no STARTTLS")};
  f.alerter->Raise(Make("k", "x"));
  EXPECT_EQ(f.Run(), 1u);
  EXPECT_EQ(f.Delivered(), 1u);
  EXPECT_EQ(f.clock.sleeps(), 0);
  EXPECT_EQ(f.alerter->Counters().failed, 1u);
}

TEST(Alerter, AFullQueueDropsAndCounts) {
  AlerterOptions o;
  o.queue_capacity = 2;
  Fixture f(o);
  for (int i = 0; i < 4; ++i) f.alerter->Raise(Make("k" + std::to_string(i), "x"));
  auto c = f.alerter->Counters();
  EXPECT_EQ(c.queued, 2u);
  EXPECT_EQ(c.dropped, 2u);
  EXPECT_EQ(f.Run(), 2u);
  // A dropped alert was not recorded as sent: raised again, it goes out.
  f.alerter->Raise(Make("k3", "x"));
  EXPECT_EQ(f.Run(), 1u);
}

TEST(Alerter, RaiseNeverWaitsForADeliveryAndStopIsInstant) {
  FakeClock clock;
  FakeChannel::Shared shared;
  shared.block = true;  // the channel hangs until stopped
  std::vector<std::unique_ptr<AlertChannel>> ch;
  ch.push_back(std::make_unique<FakeChannel>(shared));
  AlerterOptions o;
  Alerter alerter(o, std::move(ch), clock);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) alerter.Raise(Make("k" + std::to_string(i), "x"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(1));
  EXPECT_FALSE(alerter.WaitIdle(milliseconds(50)));  // the worker is stuck in the channel
  const auto t1 = std::chrono::steady_clock::now();
  alerter.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, seconds(2));
  EXPECT_EQ(alerter.Counters().sent, 0u);
}

TEST(Alerter, TheWorkerDeliversWhatIsRaised) {
  FakeClock clock;
  FakeChannel::Shared shared;
  std::vector<std::unique_ptr<AlertChannel>> ch;
  ch.push_back(std::make_unique<FakeChannel>(shared));
  Alerter alerter(AlerterOptions{}, std::move(ch), clock);
  alerter.Raise(Make("a", "x"));
  alerter.Raise(Make("b", "x"));
  ASSERT_TRUE(alerter.WaitIdle(seconds(10)));
  EXPECT_EQ(alerter.Counters().sent, 2u);
  EXPECT_EQ(alerter.ChannelNames(), std::vector<std::string>{"fake"});
}

// A channel that throws (a bug in it, or a library's exception) fails its delivery; the
// other channels still deliver, and the worker thread goes on (issue 17 item 8: before, the
// exception ended the worker and so the agent).
class ThrowingChannel final : public AlertChannel {
 public:
  const char* Name() const override { return "throwing"; }
  Status Deliver(const Alert&, std::stop_token) override {
    throw std::runtime_error("channel bug");
  }
};

TEST(Alerter, AThrowingChannelFailsItsDeliveryAndTheOthersStillDeliver) {
  FakeClock clock;
  FakeChannel::Shared shared;
  std::vector<std::unique_ptr<AlertChannel>> ch;
  ch.push_back(std::make_unique<ThrowingChannel>());
  ch.push_back(std::make_unique<FakeChannel>(shared));
  AlerterOptions o;
  o.start_worker = false;
  o.max_tries = 3;
  Alerter alerter(o, std::move(ch), clock);
  alerter.Raise(Make("a", "x"));
  EXPECT_EQ(alerter.RunPending(std::stop_token{}), 1u);
  const AlerterCounters c = alerter.Counters();
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retries, 0u);  // an exception is not retried
  EXPECT_EQ(c.sent, 1u);
}

TEST(Alerter, TheWorkerSurvivesAThrowingChannel) {
  FakeClock clock;
  std::vector<std::unique_ptr<AlertChannel>> ch;
  ch.push_back(std::make_unique<ThrowingChannel>());
  Alerter alerter(AlerterOptions{}, std::move(ch), clock);
  alerter.Raise(Make("a", "x"));
  alerter.Raise(Make("b", "x"));
  ASSERT_TRUE(alerter.WaitIdle(seconds(10)));
  EXPECT_EQ(alerter.Counters().failed, 2u);
}

Alert Full() {
  Alert a;
  a.kind = "gpu_threshold";
  a.severity = "warning";
  a.key = "gpu_threshold/temperature/GPU-1";
  a.state = "warning";
  a.agent_id = "agent-0123456789ab";
  a.host = "gpu-host-1";
  a.gpu_uuid = "GPU-1";
  a.gpu_index = 3;
  a.deployment_id = "dep-9";
  a.check = "temperature";
  a.message = "GPU 3 (GPU-1): temperature 86 °C, at or near temperature_max (85 °C)";
  a.value = 86;
  a.threshold = 85;
  a.at = SystemTime(seconds(1'796'218'671));  // 2026-12-02T13:37:51Z
  return a;
}

TEST(AlertJson, CarriesEveryDocumentedField) {
  auto j = nlohmann::json::parse(AlertToJson(Full()));
  EXPECT_EQ(j["kind"], "gpu_threshold");
  EXPECT_EQ(j["severity"], "warning");
  EXPECT_EQ(j["state"], "warning");
  EXPECT_EQ(j["agent_id"], "agent-0123456789ab");
  EXPECT_EQ(j["host"], "gpu-host-1");
  EXPECT_EQ(j["gpu_uuid"], "GPU-1");
  EXPECT_EQ(j["gpu_index"], 3);
  EXPECT_EQ(j["deployment_id"], "dep-9");
  EXPECT_EQ(j["check"], "temperature");
  EXPECT_EQ(j["value"], 86.0);
  EXPECT_EQ(j["threshold"], 85.0);
  EXPECT_EQ(j["timestamp"], "2026-12-02T13:37:51.000000Z");
  EXPECT_THAT(j["message"].get<std::string>(), HasSubstr("86 °C"));
  // What does not apply is null, not absent.
  Alert p;
  p.kind = "platform_unreachable";
  auto k = nlohmann::json::parse(AlertToJson(p));
  EXPECT_TRUE(k["gpu_uuid"].is_null());
  EXPECT_TRUE(k["gpu_index"].is_null());
  EXPECT_TRUE(k["deployment_id"].is_null());
  EXPECT_TRUE(k["value"].is_null());
}

TEST(AlertMail, HeadersAndBody) {
  Alert a = Full();
  std::string m =
      BuildAlertMail(a, "agent@example.org", {"ops@example.org", "b@example.org"}, "abc123");
  EXPECT_THAT(m, HasSubstr("Date: Wed, 02 Dec 2026 13:37:51 +0000\r\n"));
  EXPECT_THAT(m, HasSubstr("From: agent@example.org\r\n"));
  EXPECT_THAT(m, HasSubstr("To: ops@example.org, b@example.org\r\n"));
  EXPECT_THAT(m, HasSubstr("Message-ID: <abc123@gpu-host-1>\r\n"));
  // "°" is not ASCII: the subject is one RFC 2047 encoded word.
  EXPECT_THAT(m, HasSubstr("Subject: =?UTF-8?B?"));
  EXPECT_THAT(m, HasSubstr("\r\n\r\nGPU 3 (GPU-1): temperature 86"));
  EXPECT_THAT(m, HasSubstr("gpu_index: 3\r\n"));
  EXPECT_THAT(m, HasSubstr("threshold: 85\r\n"));
  a.message = "plain ascii\r\nBcc: evil@example.org";
  m = BuildAlertMail(a, "agent@example.org", {"ops@example.org"}, "x");
  EXPECT_THAT(m, HasSubstr("Subject: [TAOLIE warning] gpu-host-1: plain ascii  Bcc: evil"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("\r\nBcc:")));  // no header injection
}

TEST(AlertMail, AddressesUrlAndDate) {
  EXPECT_EQ(SplitAddresses(" a@x.org, b@y.org;c@z.org ,, "),
            (std::vector<std::string>{"a@x.org", "b@y.org", "c@z.org"}));
  SmtpOptions o;
  o.host = "mail.example.org";
  o.port = 587;
  EXPECT_EQ(SmtpUrl(o), "smtp://mail.example.org:587");
  o.tls = true;
  o.port = 465;
  EXPECT_EQ(SmtpUrl(o), "smtps://mail.example.org:465");
  o.host = "::1";
  EXPECT_EQ(SmtpUrl(o), "smtps://[::1]:465");
  EXPECT_EQ(MailDate(SystemTime(seconds(0))), "Thu, 01 Jan 1970 00:00:00 +0000");
}

}  // namespace
}  // namespace taolie::telemetry
