// The loops that talk to the platform on their own (issue 18 item 2): registration (success,
// back-off after 401/422, RetryNow, re-registration when the GPUs change), heartbeat (nothing
// before registration; beats with the database down), metrics and health push (oldest first,
// marked pushed only once delivered). Fakes and a FakeClock; nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"
#include "health/inventory_sync.h"
#include "loops/health_push_loop.h"
#include "loops/heartbeat_loop.h"
#include "loops/loop_test_support.h"
#include "loops/metrics_push_loop.h"
#include "loops/registration_loop.h"

namespace taolie::loops {
namespace {

using nlohmann::json;
using testing::Http;

// Rows waiting to be pushed (oldest first) and the ids each Mark call was given.
template <typename Row>
struct Unpushed {
  std::vector<Row> rows;
  std::vector<std::vector<int64_t>> marked;
  std::vector<Row> Oldest(int limit) const {
    return std::vector<Row>(rows.begin(),
                            rows.begin() + std::min(rows.size(), static_cast<size_t>(limit)));
  }
  void Mark(const std::vector<int64_t>& ids) {
    marked.push_back(ids);
    std::erase_if(
        rows, [&](const Row& r) { return std::find(ids.begin(), ids.end(), r.id) != ids.end(); });
  }
};

// The calls these loops make to the store, answered from memory.
class PlatformLoopsStore final : public testing::FakeStore {
 public:
  std::map<std::string, std::string> state;
  Status SetState(const std::string& key, const std::string& value) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    state[key] = value;
    return OkStatus();
  }
  Unpushed<domain::MetricSample> metrics;
  Result<std::vector<domain::MetricSample>> UnpushedMetricSamples(int limit) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    return metrics.Oldest(limit);
  }
  Status MarkMetricSamplesPushed(const std::vector<int64_t>& ids) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    metrics.Mark(ids);
    return OkStatus();
  }
  Unpushed<domain::HealthReport> reports;
  Result<std::vector<domain::HealthReport>> UnpushedHealthReports(int limit) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    return reports.Oldest(limit);
  }
  Status MarkHealthReportsPushed(const std::vector<int64_t>& ids) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    reports.Mark(ids);
    return OkStatus();
  }
};

gpu::GpuInfo Gpu(const std::string& uuid, int index) {
  gpu::GpuInfo g;
  g.uuid = uuid;
  g.index = index;
  g.name = "Fake GPU";
  g.memory_total_mb = 24000;
  return g;
}

class PlatformLoopsTest : public ::testing::Test, public testing::LoopSeams<PlatformLoopsStore> {
 protected:
  PlatformLoopsTest() {
    gpus.driver = gpu::DriverInfo{};
    gpus.gpus = std::vector<gpu::GpuInfo>{Gpu("GPU-a", 0)};
  }
  // The platform accepts a registration and names the offer.
  void AcceptRegistration() {
    platform.answer = [](const testing::SentRequest& r) {
      EXPECT_EQ(r.path, "/api/host-agents/register");
      return Http(201, R"({"gpu_uuid":"offer-1"})");
    };
  }
  void AnswerStatus(long status) {
    platform.answer = [status](const testing::SentRequest&) {
      return Http(status, R"({"error":"bad field"})");
    };
  }

  int registered_calls = 0;
  RegistrationLoop registration{deps, rt, [this] { ++registered_calls; }};
};

TEST_F(PlatformLoopsTest, RegistrationMarksRegisteredAndCallsOnRegisteredOnce) {
  AcceptRegistration();
  ASSERT_TRUE(registration.RunOnce({}).ok());
  EXPECT_TRUE(rt.registered());
  EXPECT_EQ(registered_calls, 1);
  EXPECT_EQ(rt.platform_gpu_uuid(), "offer-1");
  EXPECT_EQ(store.state["platform_gpu_uuid"], "offer-1");
  EXPECT_EQ(rt.registered_signature(), health::InventorySignature(*gpus.gpus));
  EXPECT_EQ(rt.last_platform_ok(), clock.Now());
  ASSERT_EQ(platform.sent().size(), 1u);
  EXPECT_EQ(json::parse(platform.sent()[0].body)["host_agent_id"], "agent-1");
  // Registered and nothing changed: no request.
  ASSERT_TRUE(registration.RunOnce({}).ok());
  EXPECT_EQ(platform.sent().size(), 1u);
  EXPECT_EQ(registered_calls, 1);
}

// A refused key (401) or field (422) is not sent again for 5 minutes (the next rounds answer
// at once without a request); RetryNow (SIGHUP) sends it at the next round.
TEST_F(PlatformLoopsTest, ARefusedRegistrationBacksOffUntilRetryNow) {
  for (long status : {401L, 422L}) {
    SCOPED_TRACE(status);
    platform.Clear();
    AnswerStatus(status);
    auto first = registration.RunOnce({});
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.error().code,
              status == 401 ? ErrorCode::kPermissionDenied : ErrorCode::kInvalidArgument);
    for (int i = 0; i < 3; ++i) {
      auto later = registration.RunOnce({});
      ASSERT_FALSE(later.ok());
      EXPECT_EQ(later.error().code, ErrorCode::kFailedPrecondition);
    }
    EXPECT_EQ(platform.sent().size(), 1u);
    EXPECT_FALSE(rt.registered());
    EXPECT_EQ(registered_calls, 0);
    registration.RetryNow();
  }
  AcceptRegistration();
  ASSERT_TRUE(registration.RunOnce({}).ok());
  EXPECT_TRUE(rt.registered());
  EXPECT_EQ(registered_calls, 1);
}

// On the clock seam: the refused registration goes out again 5 minutes later, not before.
TEST_F(PlatformLoopsTest, ARefusedRegistrationIsSentAgainFiveMinutesLater) {
  AnswerStatus(401);
  ASSERT_FALSE(registration.RunOnce({}).ok());
  clock.Advance(std::chrono::minutes(5) - std::chrono::seconds(1));
  EXPECT_EQ(registration.RunOnce({}).error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(platform.sent().size(), 1u);
  clock.Advance(std::chrono::seconds(1));
  AcceptRegistration();
  ASSERT_TRUE(registration.RunOnce({}).ok());
  EXPECT_EQ(platform.sent().size(), 2u);
  EXPECT_TRUE(rt.registered());
}

// Any other refusal is tried again at the next round.
TEST_F(PlatformLoopsTest, AnotherRefusalIsRetriedAtTheNextRound) {
  AnswerStatus(400);
  EXPECT_FALSE(registration.RunOnce({}).ok());
  EXPECT_FALSE(registration.RunOnce({}).ok());
  EXPECT_EQ(platform.sent().size(), 2u);
}

// The GPUs changed (the health loop sets reregister_wanted when the inventory's signature
// differs): the registration is sent again with the new list; a failure keeps asking.
TEST_F(PlatformLoopsTest, AChangedInventoryIsRegisteredAgain) {
  AcceptRegistration();
  ASSERT_TRUE(registration.RunOnce({}).ok());
  gpus.gpus->push_back(Gpu("GPU-b", 1));
  rt.reregister_wanted = true;
  AnswerStatus(400);
  EXPECT_FALSE(registration.RunOnce({}).ok());
  EXPECT_TRUE(rt.reregister_wanted);
  EXPECT_TRUE(rt.registered());  // still registered with the old description meanwhile
  AcceptRegistration();
  ASSERT_TRUE(registration.RunOnce({}).ok());
  EXPECT_FALSE(rt.reregister_wanted);
  EXPECT_EQ(rt.registered_signature(), health::InventorySignature(*gpus.gpus));
  const auto sent = platform.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].body.find("GPU-b") != std::string::npos, true) << sent[2].body;
  EXPECT_EQ(registered_calls, 1);  // only after the first success
}

TEST_F(PlatformLoopsTest, NoHeartbeatBeforeRegistration) {
  HeartbeatLoop heartbeat(deps, rt, clock.Monotonic());
  EXPECT_TRUE(heartbeat.RunOnce({}).ok());
  EXPECT_TRUE(platform.sent().empty());
}

// The heartbeat needs nothing from the database: it beats while it is down.
TEST_F(PlatformLoopsTest, TheHeartbeatBeatsWhileTheDatabaseIsDown) {
  rt.set_registered(true);
  rt.active_deployments = 2;
  rt.available_gpus = 1;
  store.down = true;
  platform.answer = [](const testing::SentRequest&) { return Http(200); };
  HeartbeatLoop heartbeat(deps, rt, clock.Monotonic() - std::chrono::hours(2));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(heartbeat.RunOnce({}).ok());
  const auto sent = platform.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].path, "/api/host-agents/agent-1/heartbeat");
  const json body = json::parse(sent[0].body);
  EXPECT_EQ(body["status"], "online");
  EXPECT_EQ(body["active_deployments"], 2);
  EXPECT_EQ(body["uptime_seconds"].get<int64_t>(), 7200);  // on the clock seam
  EXPECT_EQ(rt.last_platform_ok(), clock.Now());
  // A refused beat is an error and counted.
  platform.answer = [](const testing::SentRequest&) { return Http(500); };
  EXPECT_FALSE(heartbeat.RunOnce({}).ok());
  EXPECT_EQ(rt.platform_errors.load(), 1u);
}

domain::MetricSample Metric(int64_t id) {
  domain::MetricSample s;
  s.id = id;
  s.host.cpu_utilization = static_cast<double>(id);  // tells the bodies apart
  return s;
}

// Pushed oldest first; a sample refused by a 5xx stops the round and is kept (with those
// after it), the ones delivered before it are marked pushed.
TEST_F(PlatformLoopsTest, MetricsArePushedOldestFirstAndMarkedOnlyWhenDelivered) {
  rt.set_registered(true);
  MetricsPushLoop loop(deps, rt);
  for (int64_t id = 1; id <= 4; ++id) store.metrics.rows.push_back(Metric(id));
  platform.answer = [](const testing::SentRequest& r) {
    return json::parse(r.body)["cpu_utilization"] == 3.0 ? Http(503) : Http(200);
  };
  EXPECT_FALSE(loop.RunOnce({}).ok());
  EXPECT_EQ(store.metrics.marked, (std::vector<std::vector<int64_t>>{{1, 2}}));
  platform.answer = [](const testing::SentRequest&) { return Http(200); };
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(store.metrics.marked, (std::vector<std::vector<int64_t>>{{1, 2}, {3, 4}}));
  std::vector<double> order;
  for (const auto& r : platform.sent()) order.push_back(json::parse(r.body)["cpu_utilization"]);
  EXPECT_EQ(order, (std::vector<double>{1, 2, 3, 3, 4}));
  EXPECT_TRUE(store.metrics.rows.empty());
}

TEST_F(PlatformLoopsTest, NothingIsPushedBeforeRegistrationOrWhenAllFail) {
  MetricsPushLoop metrics(deps, rt);
  HealthPushLoop health(deps, rt);
  store.metrics.rows.push_back(Metric(1));
  EXPECT_TRUE(metrics.RunOnce({}).ok());
  EXPECT_TRUE(health.RunOnce({}).ok());
  EXPECT_TRUE(platform.sent().empty());
  rt.set_registered(true);
  platform.answer = [](const testing::SentRequest&) { return Http(502); };
  EXPECT_FALSE(metrics.RunOnce({}).ok());
  EXPECT_TRUE(store.metrics.marked.empty());
  EXPECT_EQ(store.metrics.rows.size(), 1u);
}

domain::HealthReport Report(int64_t id) {
  domain::HealthReport r;
  r.id = id;
  r.status = "available";
  r.gpu_performance_score = static_cast<double>(id);  // tells the bodies apart
  return r;
}

TEST_F(PlatformLoopsTest, HealthReportsArePushedOldestFirstAndMarkedOnlyWhenDelivered) {
  rt.set_registered(true);
  HealthPushLoop loop(deps, rt);
  for (int64_t id = 1; id <= 3; ++id) store.reports.rows.push_back(Report(id));
  platform.answer = [](const testing::SentRequest& r) {
    EXPECT_EQ(r.path, "/api/host-agents/health");
    return json::parse(r.body)["gpu_performance_score"] == 2.0 ? Http(500) : Http(200);
  };
  EXPECT_FALSE(loop.RunOnce({}).ok());
  EXPECT_EQ(store.reports.marked, (std::vector<std::vector<int64_t>>{{1}}));
  EXPECT_EQ(rt.platform_errors.load(), 1u);
  // A report the platform refuses for good (4xx) is dropped, not retried forever.
  platform.answer = [](const testing::SentRequest& r) {
    return json::parse(r.body)["gpu_performance_score"] == 2.0 ? Http(400) : Http(200);
  };
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(store.reports.marked, (std::vector<std::vector<int64_t>>{{1}, {2, 3}}));
  std::vector<double> order;
  for (const auto& r : platform.sent())
    order.push_back(json::parse(r.body)["gpu_performance_score"]);
  EXPECT_EQ(order, (std::vector<double>{1, 2, 2, 3}));
}

}  // namespace
}  // namespace taolie::loops
