// The retention loop on a fake store: the configured days reach the store, a backlog brings
// the next round a minute later, a failing store is logged and waits for the next hour, and
// rotated log files past logs_days go while the live one stays.
#include "loops/retention_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/fake_store.h"

namespace taolie::loops {
namespace {

namespace fs = std::filesystem;

class PruningStore final : public testing::FakeStore {
 public:
  Result<PruneResult> Prune(const PruneLimits& l) override {
    calls.push_back(l);
    if (fail) return MakeError(ErrorCode::kUnavailable, "database away");
    return PruneResult{rows, more};
  }
  std::vector<PruneLimits> calls;
  bool fail = false;
  bool more = false;
  int64_t rows = 0;
};

class RetentionLoopTest : public ::testing::Test {
 protected:
  RealClock clock_;  // the rotated logs' ages are real file times
};

config::RetentionConfig Retention() {
  config::RetentionConfig r;
  r.logs_days = 3;
  r.metrics_days = 2;
  r.health_days = 11;
  r.events_days = 12;
  r.commands_days = 13;
  return r;
}

TEST_F(RetentionLoopTest, TheConfiguredDaysReachTheStore) {
  PruningStore store;
  RetentionLoop loop(store, Retention(), "", clock_);
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0].metrics_days, 2);
  EXPECT_EQ(store.calls[0].health_days, 11);
  EXPECT_EQ(store.calls[0].events_days, 12);
  EXPECT_EQ(store.calls[0].commands_days, 13);
  EXPECT_EQ(loop.NextRoundIn(), std::nullopt);  // nothing left: the hourly interval
  EXPECT_STREQ(loop.Name(), "retention");
}

TEST_F(RetentionLoopTest, ABacklogComesBackAMinuteLaterAndThenHourly) {
  PruningStore store;
  store.more = true;
  store.rows = 1'000'000;
  RetentionLoop loop(store, Retention(), "", clock_);
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(loop.NextRoundIn(), std::chrono::milliseconds(60'000));
  store.more = false;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_EQ(loop.NextRoundIn(), std::nullopt);
}

TEST_F(RetentionLoopTest, AFailingStoreWaitsForTheNextHour) {
  PruningStore store;
  store.fail = true;
  RetentionLoop loop(store, Retention(), "", clock_);
  EXPECT_TRUE(loop.RunOnce({}).ok());  // logged; the runner's backoff is not for retention
  EXPECT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(loop.NextRoundIn(), std::nullopt);
}

TEST_F(RetentionLoopTest, RotatedLogsPastLogsDaysGoAndTheLiveOneStays) {
  char tmpl[] = "/tmp/taolie-retention-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir(tmpl);
  const fs::path live = dir / "agent.log";
  const fs::path old_rotated = dir / "agent.1.log";
  const fs::path new_rotated = dir / "agent.2.log";
  const fs::path other = dir / "other.1.log";
  for (const auto& p : {live, old_rotated, new_rotated, other}) std::ofstream(p) << "x\n";
  const auto four_days_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 4);
  for (const auto& p : {live, old_rotated, other}) fs::last_write_time(p, four_days_ago);
  PruningStore store;
  RetentionLoop loop(store, Retention(), live.string(), clock_);
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_TRUE(fs::exists(live));
  EXPECT_FALSE(fs::exists(old_rotated));
  EXPECT_TRUE(fs::exists(new_rotated));  // younger than logs_days
  EXPECT_TRUE(fs::exists(other));        // not one of the agent's
  fs::remove_all(dir);
}

// The cut-off comes from the Clock seam: five days on, a log rotated just now is past logs_days.
TEST_F(RetentionLoopTest, TheCutOffIsTheClocksNowLessLogsDays) {
  char tmpl[] = "/tmp/taolie-retention-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir(tmpl);
  const fs::path live = dir / "agent.log", rotated = dir / "agent.1.log";
  for (const auto& p : {live, rotated}) std::ofstream(p) << "x\n";
  FakeClock clock(clock_.Now());
  PruningStore store;
  RetentionLoop loop(store, Retention(), live.string(), clock);
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_TRUE(fs::exists(rotated));  // 3 days not passed
  clock.Advance(std::chrono::hours(24 * 5));
  ASSERT_TRUE(loop.RunOnce({}).ok());
  EXPECT_FALSE(fs::exists(rotated));
  EXPECT_TRUE(fs::exists(live));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace taolie::loops
