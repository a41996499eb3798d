// The rental clock is pure: checkpoints and readings in, elapsed time out.
#include "rules/rental_clock.h"

#include <gtest/gtest.h>

namespace taolie::rules {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int64_t kMin = 60'000;

ClockReading At(const std::string& boot, std::chrono::nanoseconds mono, SystemTime wall) {
  return ClockReading{boot, MonoTime(mono), wall};
}

TEST(RentalClock, Table) {
  const SystemTime t0(seconds(1'700'000'000));
  const ClockCheckpoint cp{"b1", std::chrono::nanoseconds(hours(5)).count(), t0, 10 * kMin};
  struct Case {
    const char* name;
    ClockReading now;
    int64_t elapsed_ms;
    bool rebooted;
    int64_t wall_step_ms;
  } cases[] = {
      {"same boot, clocks agree", At("b1", hours(5) + minutes(7), t0 + minutes(7)), 17 * kMin,
       false, 0},
      {"wall stepped ahead 2 h", At("b1", hours(5) + minutes(7), t0 + minutes(127)), 17 * kMin,
       false, 120 * kMin},
      {"wall stepped back 3 h", At("b1", hours(5) + minutes(7), t0 - minutes(173)), 17 * kMin,
       false, -180 * kMin},
      {"monotonic never runs backwards", At("b1", hours(4), t0), 10 * kMin, false,
       0},  // a corrupt reading adds nothing
      {"reboot, 5 min gap", At("b2", minutes(1), t0 + minutes(5)), 15 * kMin, true, 0},
      {"reboot, 5 h gap: capped", At("b2", minutes(1), t0 + hours(5)), 25 * kMin, true, 0},
      {"reboot, wall before checkpoint", At("b2", minutes(1), t0 - hours(1)), 10 * kMin, true, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ElapsedNow e = Advance(cp, c.now);
    EXPECT_EQ(e.elapsed_ms, c.elapsed_ms);
    EXPECT_EQ(e.rebooted, c.rebooted);
    EXPECT_EQ(e.wall_step_ms, c.wall_step_ms);
    EXPECT_EQ(e.checkpoint.elapsed_ms, c.elapsed_ms);
    EXPECT_EQ(e.checkpoint.boot_id, c.now.boot_id);
    EXPECT_EQ(e.checkpoint.wall, c.now.wall);
  }
}

TEST(RentalClock, NotStartedNothingElapses) {
  ClockCheckpoint none;
  ElapsedNow e = Advance(none, At("b1", hours(1), SystemTime(seconds(5))));
  EXPECT_EQ(e.elapsed_ms, 0);
  EXPECT_TRUE(e.checkpoint.boot_id.empty());
  ClockCheckpoint started = StartClock(At("b1", hours(1), SystemTime(seconds(5))));
  EXPECT_EQ(started.elapsed_ms, 0);
  EXPECT_EQ(started.boot_id, "b1");
  domain::Deployment d;
  SetCheckpoint(d, started);
  EXPECT_EQ(CheckpointOf(d).mono_ns, started.mono_ns);
}

}  // namespace
}  // namespace taolie::rules
