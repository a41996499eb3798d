#include "platform/delivery.h"

#include <gtest/gtest.h>

#include <deque>
#include <limits>

#include "common/net_address.h"
#include "platform/https_platform_api.h"

namespace taolie::platform {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Result<Response> Http(long status, std::optional<seconds> retry_after = std::nullopt) {
  return Response{status, "{}", retry_after};
}

// Scripted PlatformApi: returns the queued results in order, records the calls.
class FakePlatformApi : public PlatformApi {
 public:
  std::deque<Result<Response>> script;
  std::vector<std::string> paths;
  std::function<void()> on_send;
  Result<Response> Send(Method, const std::string& path, const std::string&,
                        std::stop_token) override {
    paths.push_back(path);
    if (on_send) on_send();
    if (script.empty()) return Http(200);
    Result<Response> r = script.front();
    script.pop_front();
    return r;
  }
};

struct SleepRecorder {
  std::vector<milliseconds> sleeps;
  Sleeper Get() {
    return [this](milliseconds d) { sleeps.push_back(d); };
  }
};

RetryPolicy TestPolicy(int attempts = 5) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.base_delay = milliseconds(100);
  p.max_delay = milliseconds(1000);
  p.seed = 42;
  return p;
}

TEST(Classify, Table) {
  struct Case {
    Result<Response> r;
    bool ext;
    Disposition want;
  };
  const std::vector<Case> cases = {
      {Http(200), false, Disposition::kSuccess},
      {Http(201), true, Disposition::kSuccess},
      {Http(204), false, Disposition::kSuccess},
      {Http(408), false, Disposition::kRetry},
      {Http(429), false, Disposition::kRetry},
      {Http(500), false, Disposition::kRetry},
      {Http(503), true, Disposition::kRetry},
      {Http(599), false, Disposition::kRetry},
      {Http(400), false, Disposition::kPermanent},
      {Http(401), false, Disposition::kPermanent},
      {Http(422), true, Disposition::kPermanent},
      {Http(404), false, Disposition::kPermanent},
      {Http(405), false, Disposition::kPermanent},
      {Http(404), true, Disposition::kUnsupported},
      {Http(405), true, Disposition::kUnsupported},
      {Http(301), false, Disposition::kPermanent},
      {MakeError(ErrorCode::kUnavailable, "refused"), false, Disposition::kRetry},
      {MakeError(ErrorCode::kDeadlineExceeded, "timeout"), true, Disposition::kRetry},
      {MakeError(ErrorCode::kCancelled, "stop"), false, Disposition::kPermanent},
      {MakeError(ErrorCode::kInvalidArgument, "bad path"), false, Disposition::kPermanent},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(Classify(cases[i].r, cases[i].ext), cases[i].want);
  }
}

TEST(SendWithRetry, SucceedsAtOnceWithoutSleeping) {
  FakePlatformApi api;
  SleepRecorder sleep;
  auto r = SendWithRetry(api, Method::kPost, "/x", "{}", false, TestPolicy(), {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(api.paths.size(), 1u);
  EXPECT_TRUE(sleep.sleeps.empty());
}

TEST(SendWithRetry, RetriesTransientFailuresWithBoundedJitter) {
  FakePlatformApi api;
  api.script = {MakeError(ErrorCode::kUnavailable, "refused"), Http(503), Http(408), Http(500),
                Http(200)};
  SleepRecorder sleep;
  const RetryPolicy policy = TestPolicy(5);
  auto r = SendWithRetry(api, Method::kPost, "/x", "{}", false, policy, {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(api.paths.size(), 5u);
  ASSERT_EQ(sleep.sleeps.size(), 4u);
  for (size_t i = 0; i < sleep.sleeps.size(); ++i) {
    SCOPED_TRACE(i);
    // full jitter: uniform(0, min(cap, base * 2^i))
    EXPECT_GE(sleep.sleeps[i].count(), 0);
    EXPECT_LE(sleep.sleeps[i].count(), std::min<long long>(1000, 100LL << i));
  }
}

TEST(SendWithRetry, GivesUpAfterMaxAttemptsAndReturnsLastAnswer) {
  FakePlatformApi api;
  api.script = {Http(503), Http(502), Http(504), Http(200)};
  SleepRecorder sleep;
  auto r = SendWithRetry(api, Method::kGet, "/x", "", false, TestPolicy(3), {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(api.paths.size(), 3u);
  EXPECT_EQ(sleep.sleeps.size(), 2u);

  FakePlatformApi down;
  down.script = {MakeError(ErrorCode::kUnavailable, "a"), MakeError(ErrorCode::kUnavailable, "b")};
  auto e = SendWithRetry(down, Method::kGet, "/x", "", false, TestPolicy(2), {}, sleep.Get());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "b");
}

TEST(SendWithRetry, DoesNotRetryPermanentOrUnsupported) {
  for (long status : {400L, 401L, 404L, 422L}) {
    SCOPED_TRACE(status);
    FakePlatformApi api;
    api.script = {Http(status), Http(200)};
    SleepRecorder sleep;
    auto r = SendWithRetry(api, Method::kPost, "/x", R"({"password":"p"})", false, TestPolicy(), {},
                           sleep.Get());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(api.paths.size(), 1u);
    EXPECT_TRUE(sleep.sleeps.empty());
  }
  FakePlatformApi ext;
  ext.script = {Http(405)};
  SleepRecorder sleep;
  auto r = SendWithRetry(ext, Method::kPost, "/x", "{}", true, TestPolicy(), {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Classify(r, true), Disposition::kUnsupported);
  EXPECT_EQ(ext.paths.size(), 1u);
}

TEST(SendWithRetry, HonoursRetryAfterCappedByPolicy) {
  FakePlatformApi api;
  api.script = {Http(429, seconds(7)), Http(503, seconds(0)), Http(503, seconds(3600)), Http(200)};
  SleepRecorder sleep;
  RetryPolicy policy = TestPolicy();
  policy.max_retry_after = milliseconds(60'000);
  auto r = SendWithRetry(api, Method::kPost, "/x", "{}", false, policy, {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  // Retry-After 0 means "now"; 3600 s is capped by the policy.
  EXPECT_EQ(sleep.sleeps,
            (std::vector<milliseconds>{milliseconds(7000), milliseconds(0), milliseconds(60'000)}));
}

// Issue 17 item 8: a huge Retry-After is clamped before it becomes a duration (no overflow).
TEST(SendWithRetry, AHugeRetryAfterIsCappedNeverOverflowed) {
  FakePlatformApi api;
  api.script = {Http(503, seconds(std::numeric_limits<int64_t>::max())),
                Http(503, seconds(std::numeric_limits<int64_t>::min())),
                Http(503, seconds(9'223'372'036'854'775)), Http(200)};
  SleepRecorder sleep;
  RetryPolicy policy = TestPolicy();
  policy.max_retry_after = milliseconds(60'000);
  auto r = SendWithRetry(api, Method::kPost, "/x", "{}", false, policy, {}, sleep.Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(sleep.sleeps, (std::vector<milliseconds>{milliseconds(60'000), milliseconds(0),
                                                     milliseconds(60'000)}));
}

TEST(RetryAfter, ParsedIntoABoundedDelay) {
  const SystemTime now = SystemTime(seconds(1'700'000'000));  // 2023-11-14 22:13:20 UTC
  struct Case {
    std::string value;
    std::optional<seconds> want;
  };
  const std::vector<Case> cases = {
      {"0", seconds(0)},
      {"120", seconds(120)},
      {"000042", seconds(42)},
      {"86400", kMaxRetryAfter},
      {"86401", kMaxRetryAfter},
      {"9223372036854775807", kMaxRetryAfter},
      {"99999999999999999999", kMaxRetryAfter},
      {std::string(5000, '9'), kMaxRetryAfter},
      {"Tue, 14 Nov 2023 22:15:00 GMT", seconds(100)},
      {"Tue, 14 Nov 2023 22:00:00 GMT", seconds(0)},      // past: now
      {"Fri, 31 Dec 9999 23:59:59 GMT", kMaxRetryAfter},  // far future: the cap
      {"-5", std::nullopt},
      {"", std::nullopt},
      {"12s", std::nullopt},
      {"1.5", std::nullopt},
      {"Tue, 14 Nov 2023 22:15:00", std::nullopt},
      {"soon", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ParseRetryAfter(c.value, now), c.want) << c.value.substr(0, 40);
  }
}

TEST(RetryAfter, DelayIsCappedForAnyValue) {
  const milliseconds cap(300'000);
  EXPECT_EQ(RetryAfterDelay(seconds(std::numeric_limits<int64_t>::max()), cap), cap);
  EXPECT_EQ(RetryAfterDelay(seconds(std::numeric_limits<int64_t>::min()), cap), milliseconds(0));
  EXPECT_EQ(RetryAfterDelay(seconds(-1), cap), milliseconds(0));
  EXPECT_EQ(RetryAfterDelay(seconds(7), cap), milliseconds(7'000));
  EXPECT_EQ(RetryAfterDelay(seconds(300), cap), cap);
  EXPECT_EQ(RetryAfterDelay(seconds(301), cap), cap);
  EXPECT_EQ(RetryAfterDelay(seconds(2), milliseconds(1'500)), milliseconds(1'500));
}

TEST(SendWithRetry, StopEndsTheLoop) {
  FakePlatformApi api;
  api.script = {Http(503), Http(503), Http(503)};
  std::stop_source stop;
  Sleeper sleeper = [&](milliseconds) { stop.request_stop(); };
  auto r =
      SendWithRetry(api, Method::kPost, "/x", "{}", false, TestPolicy(), stop.get_token(), sleeper);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(api.paths.size(), 1u);

  std::stop_source stopped;
  stopped.request_stop();
  FakePlatformApi idle;
  SleepRecorder sleep;
  auto c = SendWithRetry(idle, Method::kGet, "/x", "", false, TestPolicy(), stopped.get_token(),
                         sleep.Get());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kCancelled);
  EXPECT_TRUE(idle.paths.empty());
}

TEST(SendWithRetry, StopAwareSleeperReturnsAtOnceWhenStopped) {
  std::stop_source stop;
  stop.request_stop();
  const auto t0 = std::chrono::steady_clock::now();
  StopAwareSleeper(stop.get_token())(std::chrono::hours(1));  // must not wait
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(5));
}

// ---- outbox scheduling ----

using domain::EventKind;

const SystemTime kNow = SystemTime(seconds(1'700'000'000));

OutboxRetryPolicy OutboxPolicy() {
  OutboxRetryPolicy p;
  p.base_delay = milliseconds(2'000);
  p.max_delay = milliseconds(300'000);
  p.max_retry_after = milliseconds(300'000);
  p.ext_give_up = std::chrono::hours(24);
  return p;
}

GroupHead Head(int64_t id, EventKind kind, int attempts = 0,
               std::optional<SystemTime> next = std::nullopt, bool end_pending = false) {
  return GroupHead{id, kind, attempts, next, end_pending};
}

TEST(PlanOutboxRound, Table) {
  const OutboxStep send1{1, OutboxAction::kSend}, send2{2, OutboxAction::kSend},
      send3{3, OutboxAction::kSend}, supersede1{1, OutboxAction::kSupersede};
  struct Case {
    const char* name;
    std::vector<GroupHead> heads;
    std::vector<OutboxStep> want;
    std::optional<SystemTime> want_next_due;
  };
  const std::vector<Case> cases = {
      {"nothing pending", {}, {}, std::nullopt},
      {"fresh heads all go, by id",
       {Head(3, EventKind::kAck), Head(1, EventKind::kSuccess), Head(2, EventKind::kTerminated)},
       {send1, send2, send3},
       std::nullopt},
      {"a head backing off is skipped, the others go",
       {Head(1, EventKind::kExpiring, 3, kNow + seconds(40)), Head(2, EventKind::kSuccess),
        Head(3, EventKind::kAck)},
       {send2, send3},
       kNow + seconds(40)},
      {"a head whose retry time has come goes",
       {Head(1, EventKind::kSuccess, 2, kNow), Head(2, EventKind::kAck, 1, kNow - seconds(1))},
       {send1, send2},
       std::nullopt},
      {"next_due is the earliest retry",
       {Head(1, EventKind::kSuccess, 2, kNow + seconds(90)),
        Head(2, EventKind::kAck, 1, kNow + seconds(5))},
       {},
       kNow + seconds(5)},
      {"retry further away than any backoff (wall clock set back) counts as due",
       {Head(1, EventKind::kTerminated, 4, kNow + std::chrono::hours(2))},
       {send1},
       std::nullopt},
      {"undeliverable expiring superseded by its deployment's ending, even while backing off",
       {Head(1, EventKind::kExpiring, 1, kNow + seconds(100), /*end_pending=*/true),
        Head(2, EventKind::kSuccess)},
       {supersede1, send2},
       std::nullopt},
      {"an expiring never tried is sent first, even with the ending behind it",
       {Head(1, EventKind::kExpiring, 0, std::nullopt, /*end_pending=*/true)},
       {send1},
       std::nullopt},
      {"an expiring failing with no ending yet waits",
       {Head(1, EventKind::kExpiring, 2, kNow + seconds(8), /*end_pending=*/false)},
       {},
       kNow + seconds(8)},
      {"only expiring is superseded, not a failing success",
       {Head(1, EventKind::kSuccess, 5, kNow + seconds(8), /*end_pending=*/true)},
       {},
       kNow + seconds(8)},
  };
  for (const auto& c : cases) {
    OutboxPlan plan = PlanOutboxRound(c.heads, kNow, OutboxPolicy());
    EXPECT_EQ(plan.steps, c.want) << c.name;
    EXPECT_EQ(plan.next_due, c.want_next_due) << c.name;
  }
}

TEST(OnDeliveryFailure, ExponentialWithEqualJitterCapped) {
  const auto p = OutboxPolicy();
  struct Case {
    int attempts;
    double jitter;
    milliseconds want;
  };
  const std::vector<Case> cases = {
      {1, 0.0, milliseconds(1'000)},  // ceiling 2 s: 1 s .. 2 s
      {1, 0.999, milliseconds(1'999)},
      {2, 0.0, milliseconds(2'000)},     // ceiling 4 s
      {3, 0.5, milliseconds(6'000)},     // ceiling 8 s: 4 s + 2 s
      {20, 0.0, milliseconds(150'000)},  // capped at 5 min: 2.5 .. 5 min
      {20, 1.0, milliseconds(300'000)},
      {0, 0.0, milliseconds(1'000)},  // defensive: treated as the first failure
  };
  for (const auto& c : cases) {
    auto v = OnDeliveryFailure(false, c.attempts, kNow, kNow, std::nullopt, p, c.jitter);
    EXPECT_FALSE(v.give_up) << c.attempts;
    EXPECT_EQ(v.next_attempt_at - kNow, c.want) << c.attempts << " " << c.jitter;
  }
}

TEST(OnDeliveryFailure, RetryAfterIsTheLeastDelayCapped) {
  const auto p = OutboxPolicy();
  auto v = OnDeliveryFailure(true, 1, kNow, kNow, seconds(60), p, 0.0);
  EXPECT_EQ(v.next_attempt_at - kNow, seconds(60));
  v = OnDeliveryFailure(true, 1, kNow, kNow, seconds(0), p, 0.0);  // backoff wins
  EXPECT_EQ(v.next_attempt_at - kNow, milliseconds(1'000));
  v = OnDeliveryFailure(true, 1, kNow, kNow, std::chrono::hours(10), p, 0.0);  // capped
  EXPECT_EQ(v.next_attempt_at - kNow, milliseconds(300'000));
}

TEST(OnDeliveryFailure, AHugeRetryAfterIsCappedNeverOverflowed) {
  const auto p = OutboxPolicy();
  for (int64_t huge : {std::numeric_limits<int64_t>::max(), int64_t{9'223'372'036'854'775}}) {
    auto v = OnDeliveryFailure(false, 1, kNow, kNow, seconds(huge), p, 0.0);
    EXPECT_EQ(v.next_attempt_at - kNow, milliseconds(300'000)) << huge;
  }
  auto v = OnDeliveryFailure(false, 1, kNow, kNow, seconds(std::numeric_limits<int64_t>::min()), p,
                             0.0);  // backoff wins
  EXPECT_EQ(v.next_attempt_at - kNow, milliseconds(1'000));
}

TEST(OnDeliveryFailure, ExtEventsGiveUpAfterTheConfiguredTimeCompatNever) {
  const auto p = OutboxPolicy();
  struct Case {
    bool ext;
    std::chrono::seconds since_first_failure;
    bool want_give_up;
  };
  const std::vector<Case> cases = {
      {true, seconds(0), false},
      {true, std::chrono::hours(24) - seconds(1), false},
      {true, std::chrono::hours(24), true},
      {true, std::chrono::hours(100), true},
      {false, std::chrono::hours(100), false},  // success and acks are never given up
      {true, -std::chrono::hours(3), false},    // first failure "in the future": clock set back
  };
  for (const auto& c : cases) {
    auto v = OnDeliveryFailure(c.ext, 50, kNow - c.since_first_failure, kNow, std::nullopt, p, 0.5);
    EXPECT_EQ(v.give_up, c.want_give_up) << c.ext << " " << c.since_first_failure.count();
    if (!v.give_up) {
      EXPECT_GT(v.next_attempt_at, kNow);
    }
  }
}

TEST(RedactForLog, MasksSecretsAndTruncates) {
  const std::string body =
      R"({"access_info":{"ssh":{"password":"hunter22","username":"u"},"rental_ports":)"
      R"({"port_1":{"token":"tokval9","full_url":"http://h:1/?token=tokval9"}}},)"
      R"("environment":{"AUTHORIZED_KEYS":"ssh-ed25519 AAAA","SSH_PASSWORD":"x1"},)"
      R"("api_key":"k-123","list":[{"jupyter_token":"jt"}],"image":"busybox"})";
  const std::string out = RedactForLog(body, 10'000);
  for (const char* secret : {"hunter22", "tokval9", "h:1", "AAAA", "x1\"", "k-123", "\"jt\""}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << secret << " in " << out;
  }
  EXPECT_NE(out.find("busybox"), std::string::npos);
  EXPECT_NE(out.find("\"username\":\"u\""), std::string::npos);

  const std::string text = R"(<html>"password": "abc" token=zzz Authorization: Bearer sk-9</html>)";
  const std::string t = RedactForLog(text, 10'000);
  EXPECT_EQ(t.find("abc"), std::string::npos) << t;
  EXPECT_EQ(t.find("zzz"), std::string::npos) << t;
  EXPECT_EQ(t.find("sk-9"), std::string::npos) << t;

  const std::string longer(1000, 'a');
  const std::string cut = RedactForLog(longer, 100);
  EXPECT_EQ(cut.substr(0, 100), std::string(100, 'a'));
  EXPECT_NE(cut.find("900 more bytes"), std::string::npos);
  EXPECT_LT(cut.size(), 130u);
}

// issue 17 item 1: the masker walked the parsed tree recursively and dumped it (also
// recursive): a 100 000-deep error body from the platform overflowed the stack.
TEST(RedactForLog, DeepBodyDoesNotCrashAndShallowSecretsStayMasked) {
  const size_t kDepth = 100000;
  const std::string deep =
      std::string(kDepth, '[') + R"({"token":"deepsecret"})" + std::string(kDepth, ']');
  const std::string body =
      R"({"password": "hunter22", "n": 5, "api_key": 12345, "secret": null, "x": )" + deep +
      R"(, "detail": "bad \"password\": 1"})";
  const std::string out = RedactForLog(body, 100);
  EXPECT_EQ(out.rfind(R"({"password":"***","n":5,"api_key":"***","secret":null,"x":[[[)", 0), 0u)
      << out.substr(0, 200);
  EXPECT_EQ(out.find("hunter22"), std::string::npos);
  EXPECT_EQ(out.find("12345"), std::string::npos);
  EXPECT_NE(out.find("more bytes)"), std::string::npos);
  // Masked at every depth: the whole text, cut nowhere.
  const std::string all = RedactForLog(body, body.size() * 2);
  EXPECT_EQ(all.find("deepsecret"), std::string::npos);
  EXPECT_NE(all.find(R"({"token":"***"})"), std::string::npos);
  EXPECT_NE(all.find(R"("detail":"bad \"password\": 1")"), std::string::npos);  // a value, kept

  // nlohmann reads a NUL byte as the end of the input: nothing after one is logged unmasked.
  const std::string nul = std::string(R"({"a":1})") + '\0' + R"( "password": "hunter22")";
  EXPECT_EQ(RedactForLog(nul, 1000), R"({"a":1})");

  // Not JSON (truncated, so the acceptor refuses it) and long: the regular expressions see a
  // bounded head only, and the secret in it is masked.
  const std::string text = R"(<html>"password": "abc" )" + deep.substr(0, kDepth + 10);
  const std::string t = RedactForLog(text, 300);
  EXPECT_EQ(t.find("abc"), std::string::npos) << t.substr(0, 200);
  EXPECT_NE(t.find(std::to_string(text.size() - 300) + " more bytes"), std::string::npos)
      << t.substr(300);
}

TEST(HttpsPlatformApiOptions, JoinAndLoopback) {
  EXPECT_EQ(HttpsPlatformApi::JoinUrl("https://a.b", "/api/x"), "https://a.b/api/x");
  EXPECT_EQ(HttpsPlatformApi::JoinUrl("https://a.b/", "/api/x"), "https://a.b/api/x");
  EXPECT_EQ(HttpsPlatformApi::JoinUrl("https://a.b/prefix//", "api/x"), "https://a.b/prefix/api/x");
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h :
       {"128.0.0.1", "10.0.0.1", "::2", "example.com", "localhost.example.com", "0.0.0.0", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(HttpsPlatformApiOptions, CreateValidatesUrl) {
  struct Case {
    std::string url;
    bool insecure;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"https://api.example.com", false, true},
      {"https://api.example.com/", false, true},
      {"http://127.0.0.1:8080", false, true},
      {"http://localhost:8080/", false, true},
      {"http://[::1]:8080", false, true},
      {"http://api.example.com", false, false},
      {"http://10.1.2.3:8080", false, false},
      {"http://api.example.com", true, true},
      {"ftp://api.example.com", true, false},
      {"", false, false},
      {"not a url", false, false},
      {"https://api.example.com/?x=1", false, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    HttpsPlatformApi::Options o;
    o.base_url = c.url;
    o.api_key = "k";
    o.allow_insecure = c.insecure;
    auto r = HttpsPlatformApi::Create(o);
    EXPECT_EQ(r.ok(), c.ok);
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(r.error().message.find("server.url"), std::string::npos) << r.error().message;
    }
  }
  HttpsPlatformApi::Options o;
  o.base_url = "https://a.example";
  o.ca_file = "/nonexistent/ca.pem";
  auto ca = HttpsPlatformApi::Create(o);
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().message.find("server.ca_file"), std::string::npos);
  o.ca_file = "";
  o.timeout = seconds(0);
  auto r = HttpsPlatformApi::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("server.timeout"), std::string::npos);
}

}  // namespace
}  // namespace taolie::platform
