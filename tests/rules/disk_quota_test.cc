// The disk quota of a rental (issue 7, item 4): the pure decision, and the duration monitor
// measuring each rental once per round, warning at 90% and ending at 100%.
#include "rules/disk_quota.h"

#include "engine/engine_harness.h"

namespace taolie::testing {
namespace {

using domain::DeploymentState;
using rules::DecideDiskQuota;
using rules::DiskQuotaAction;
constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(DiskQuota, WarnsAt90PercentOnceAndEndsAt100) {
  EXPECT_EQ(DecideDiskQuota(0, 100, false), DiskQuotaAction::kNone);
  EXPECT_EQ(DecideDiskQuota(89 * kMiB, 100, false), DiskQuotaAction::kNone);
  EXPECT_EQ(DecideDiskQuota(90 * kMiB, 100, false), DiskQuotaAction::kWarn);
  EXPECT_EQ(DecideDiskQuota(99 * kMiB, 100, true), DiskQuotaAction::kNone);  // warned already
  EXPECT_EQ(DecideDiskQuota(100 * kMiB, 100, false), DiskQuotaAction::kEnd);
  EXPECT_EQ(DecideDiskQuota(500 * kMiB, 100, true), DiskQuotaAction::kEnd);
  EXPECT_EQ(DecideDiskQuota(500 * kMiB, 0, false), DiskQuotaAction::kNone);  // no quota
  EXPECT_EQ(rules::DiskQuotaWarning(91 * kMiB, 100)
                .rfind("TAOLIE: this rental uses 91 MiB of its 100 MiB disk quota", 0),
            0u);
}

class DiskQuotaMonitorTest : public EngineTest {
 protected:
  void SetUp() override {
    cfg.deployment.disk_quota_mb = 100;
    EngineTest::SetUp();
  }
  int Calls(const std::string& name) { return docker.Count(name); }
};

TEST_F(DiskQuotaMonitorTest, AWritableLayerPastTheQuotaIsWarnedThenEnded) {
  DeployNow("d1");
  auto d = store.Get("d1");
  ASSERT_EQ(d.state, DeploymentState::kRunning) << d.error;
  EXPECT_NE(d.spec_json.find("\"disk_mb\":100"), std::string::npos) << d.spec_json;
  docker.writable_sizes[d.container_id] = 50 * kMiB;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_TRUE(docker.execs.empty());
  EXPECT_EQ(Calls("WritableLayerSizes"), 1);  // one list call per round

  docker.writable_sizes[d.container_id] = 95 * kMiB;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());  // warned once only
  ASSERT_EQ(docker.execs.size(), 1u);
  EXPECT_EQ(docker.execs[0][4], "disk");
  EXPECT_NE(docker.execs[0].back().find("uses 95 MiB of its 100 MiB disk quota"),
            std::string::npos);
  EXPECT_EQ(store.Get("d1").state, DeploymentState::kRunning);

  docker.writable_sizes[d.container_id] = 100 * kMiB;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  d = store.Get("d1");
  EXPECT_EQ(d.state, DeploymentState::kEnded);
  EXPECT_EQ(d.end_status, "failed");
  EXPECT_EQ(d.end_reason, "disk_quota");
  auto j = nlohmann::json::parse(store.events.back().body);
  EXPECT_EQ(j["status"], "failed") << store.events.back().body;
  EXPECT_EQ(j["reason"], "disk_quota");
}

TEST_F(DiskQuotaMonitorTest, APayloadAsksForLessAndNeverMore) {
  auto small = Deploy("d1");
  small["disk_mb"] = 20;
  engine->commands().Process(Command("cmd-d1", "deploy", small), {});
  auto d = store.Get("d1");
  ASSERT_EQ(d.state, DeploymentState::kRunning) << d.error;
  docker.writable_sizes[d.container_id] = 21 * kMiB;
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(store.Get("d1").end_reason, "disk_quota");

  auto big = Deploy("d2");
  big["disk_mb"] = 101;
  engine->commands().Process(Command("cmd-d2", "deploy", big), {});
  EXPECT_EQ(Result("cmd-d2"), "rejected");
  EXPECT_EQ(Calls("Create deployment-d2"), 0);
}

TEST_F(DiskQuotaMonitorTest, NoQuotaNoMeasurement) {
  cfg.deployment.disk_quota_mb = 0;  // sized from the disk, whose size the fake does not know
  DeployNow("d1");
  ASSERT_TRUE(engine->monitor().CheckOnce({}).ok());
  EXPECT_EQ(Calls("WritableLayerSizes"), 0);
}

}  // namespace
}  // namespace taolie::testing
