#include "loops/liveness.h"

#include <gtest/gtest.h>

namespace taolie::loops {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kSec = 1'000'000'000;

LoopProgress Loop(std::string name, int interval_s, int64_t started_s, int64_t ended_s) {
  return {std::move(name), milliseconds(interval_s * 1000), started_s * kSec, ended_s * kSec};
}

TEST(Liveness, TheLimitIsThreeIntervalsOrTheFloor) {
  EXPECT_EQ(StuckAfter(milliseconds(10'000), seconds(120)), seconds(120));
  EXPECT_EQ(StuckAfter(milliseconds(60'000), seconds(120)), seconds(180));
  EXPECT_EQ(StuckAfter(milliseconds(30'000), seconds(120)), seconds(120));
  EXPECT_EQ(StuckAfter(milliseconds(41'000), seconds(120)), seconds(123));
  EXPECT_EQ(StuckAfter(milliseconds(1'000), seconds(3)), seconds(3));
  EXPECT_EQ(StuckAfter(milliseconds(1'500), seconds(1)), seconds(5));  // 4.5 s rounded up
}

TEST(Liveness, LoopsBetweenRoundsAreNeverStuck) {
  // Waiting for their turn or backing off after failures (a database outage): rounds end.
  auto l = EvaluateLiveness({Loop("heartbeat", 30, 0, 100), Loop("command-poll", 10, 0, 0)},
                            10'000 * kSec, seconds(120));
  EXPECT_TRUE(l.ok);
  EXPECT_TRUE(l.stuck.empty());
  EXPECT_EQ(l.detail, "");
}

TEST(Liveness, ARoundInProgressIsStuckOnlyPastItsLimit) {
  const int64_t now = 1000;
  // Last round ended 120 s ago: exactly at the limit, still alive.
  EXPECT_TRUE(
      EvaluateLiveness({Loop("heartbeat", 30, 990, now - 120)}, now * kSec, seconds(120)).ok);
  // 121 s: stuck, named with how long.
  auto l = EvaluateLiveness({Loop("heartbeat", 30, 990, now - 121), Loop("gpu-health", 60, 0, 999)},
                            now * kSec, seconds(120));
  EXPECT_FALSE(l.ok);
  ASSERT_EQ(l.stuck.size(), 1u);
  EXPECT_EQ(l.stuck[0], "heartbeat");
  EXPECT_EQ(l.detail, "heartbeat: no round finished for 121 s (stuck after 120 s)");
  // A 60 s loop may take 180 s.
  EXPECT_TRUE(
      EvaluateLiveness({Loop("gpu-health", 60, 900, now - 179)}, now * kSec, seconds(120)).ok);
  EXPECT_FALSE(
      EvaluateLiveness({Loop("gpu-health", 60, 900, now - 181)}, now * kSec, seconds(120)).ok);
}

TEST(Liveness, AFirstRoundCountsFromItsStart) {
  const int64_t now = 500;
  EXPECT_TRUE(
      EvaluateLiveness({Loop("registration", 30, now - 100, 0)}, now * kSec, seconds(120)).ok);
  auto l =
      EvaluateLiveness({Loop("registration", 30, now - 130, 0), Loop("outbox", 5, now - 200, 0)},
                       now * kSec, seconds(120));
  EXPECT_FALSE(l.ok);
  EXPECT_EQ(l.stuck, (std::vector<std::string>{"registration", "outbox"}));
  EXPECT_EQ(l.detail,
            "registration: no round finished for 130 s (stuck after 120 s); "
            "outbox: no round finished for 200 s (stuck after 120 s)");
}

}  // namespace
}  // namespace taolie::loops
