// Quarantine decisions (agent/quarantine.h): in on an unhealthy verdict, out only after the
// clear time healthy, and after a reset where the fault needs one.
#include "health/quarantine.h"

#include <gtest/gtest.h>

namespace taolie::health {
namespace {

using std::chrono::seconds;

const SystemTime kT0 = SystemTime{} + std::chrono::hours(24 * 365 * 50);

GpuHealth Verdict(const std::string& health, bool needs_reset = false) {
  GpuHealth v;
  v.uuid = "GPU-1";
  v.health = health;
  v.needs_reset = needs_reset;
  if (health == "unhealthy") v.reason = "xid: XID 79";
  return v;
}

// A rented GPU whose fault needs a reset, quarantined at kT0 as the health loop records it.
store::GpuRecord RentedGpuQuarantinedForAReset(const QuarantinePolicy& p, QuarantineMemory& mem) {
  store::GpuRecord g;
  g.uuid = "GPU-1";
  g.deployment_id = "rental-1";
  QuarantineDecision d = DecideQuarantine(g, Verdict("unhealthy", true), p, kT0, mem);
  EXPECT_EQ(d.action, QuarantineAction::kQuarantine);
  EXPECT_TRUE(d.needs_reset);
  g.quarantined_since = kT0;
  g.quarantine_reason = d.reason;
  g.needs_reset = true;
  return g;
}

TEST(Quarantine, InOnUnhealthyOutAfterTheClearTimeHealthy) {
  QuarantinePolicy p;
  p.clear_seconds = 600;
  QuarantineMemory mem;
  store::GpuRecord g;
  g.uuid = "GPU-1";
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0, mem).action, QuarantineAction::kNone);
  QuarantineDecision d = DecideQuarantine(g, Verdict("unhealthy"), p, kT0, mem);
  ASSERT_EQ(d.action, QuarantineAction::kQuarantine);
  EXPECT_EQ(d.reason, "xid: XID 79");
  g.quarantined_since = kT0;
  g.quarantine_reason = d.reason;
  // Still unhealthy: nothing more to write.
  EXPECT_EQ(DecideQuarantine(g, Verdict("unhealthy"), p, kT0 + seconds(60), mem).action,
            QuarantineAction::kNone);
  // Healthy (or warning) 599 s: still in; one unhealthy round restarts the clock.
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(100), mem).action,
            QuarantineAction::kNone);
  d = DecideQuarantine(g, Verdict("warning"), p, kT0 + seconds(699), mem);
  EXPECT_EQ(d.action, QuarantineAction::kNone);
  EXPECT_NE(d.status.find("599 s of the 600 s"), std::string::npos) << d.status;
  EXPECT_EQ(DecideQuarantine(g, Verdict("unhealthy"), p, kT0 + seconds(700), mem).action,
            QuarantineAction::kNone);
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(760), mem).action,
            QuarantineAction::kNone);
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(1360), mem).action,
            QuarantineAction::kRelease);
}

TEST(Quarantine, AFaultThatNeedsAResetWaitsForOneNeverUnderARental) {
  QuarantinePolicy p;
  p.clear_seconds = 60;
  QuarantineMemory mem;
  store::GpuRecord g = RentedGpuQuarantinedForAReset(p, mem);
  QuarantineDecision d;
  // allow_reset off: waits for the operator, however long it is healthy.
  d = DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(3600), mem);
  EXPECT_EQ(d.action, QuarantineAction::kNone);
  EXPECT_NE(d.status.find("operator"), std::string::npos);
  // allow_reset on, but a rental holds it: no reset.
  p.allow_reset = true;
  d = DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(3660), mem);
  EXPECT_EQ(d.action, QuarantineAction::kNone);
  EXPECT_NE(d.status.find("rental ends"), std::string::npos);
  g.deployment_id.clear();
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(3720), mem).action,
            QuarantineAction::kReset);
  // A failed reset is tried again only after kResetRetry.
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(3780), mem).action,
            QuarantineAction::kNone);
  EXPECT_EQ(
      DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(3720) + kResetRetry, mem).action,
      QuarantineAction::kReset);
  // Reset done: the healthy run starts then.
  g.needs_reset = false;
  const SystemTime reset_at = kT0 + seconds(5000);
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, reset_at, mem).action,
            QuarantineAction::kNone);
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, reset_at + seconds(60), mem).action,
            QuarantineAction::kRelease);
}

// Issue 17 item 7: a fault that lasts until a reset (volatile uncorrectable ECC) keeps the
// verdict unhealthy; the reset is still made once the GPU is free, and the healthy run that
// releases it starts after it.
TEST(Quarantine, AResetIsMadeWhileTheVerdictIsStillUnhealthy) {
  QuarantinePolicy p;
  p.clear_seconds = 120;
  QuarantineMemory mem;
  store::GpuRecord g = RentedGpuQuarantinedForAReset(p, mem);
  QuarantineDecision d;
  // allow_reset off: waits for the operator.
  d = DecideQuarantine(g, Verdict("unhealthy", true), p, kT0 + seconds(60), mem);
  EXPECT_EQ(d.action, QuarantineAction::kNone);
  EXPECT_NE(d.status.find("operator"), std::string::npos) << d.status;
  // On, but rented: never under the rental.
  p.allow_reset = true;
  d = DecideQuarantine(g, Verdict("unhealthy", true), p, kT0 + seconds(120), mem);
  EXPECT_EQ(d.action, QuarantineAction::kNone);
  EXPECT_NE(d.status.find("rental ends"), std::string::npos) << d.status;
  g.deployment_id.clear();
  EXPECT_EQ(DecideQuarantine(g, Verdict("unhealthy", true), p, kT0 + seconds(180), mem).action,
            QuarantineAction::kReset);
  EXPECT_EQ(DecideQuarantine(g, Verdict("unhealthy", true), p, kT0 + seconds(240), mem).action,
            QuarantineAction::kNone);  // not again before kResetRetry
  g.needs_reset = false;               // the reset was made and recorded
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(300), mem).action,
            QuarantineAction::kNone);
  EXPECT_EQ(DecideQuarantine(g, Verdict("healthy"), p, kT0 + seconds(420), mem).action,
            QuarantineAction::kRelease);
}

// A quarantine whose fault needs no reset is never reset, however long it stays unhealthy.
TEST(Quarantine, NoResetWithoutTheNeed) {
  QuarantinePolicy p;
  p.allow_reset = true;
  QuarantineMemory mem;
  store::GpuRecord g;
  g.uuid = "GPU-1";
  ASSERT_EQ(DecideQuarantine(g, Verdict("unhealthy"), p, kT0, mem).action,
            QuarantineAction::kQuarantine);
  g.quarantined_since = kT0;
  g.quarantine_reason = "temperature";
  for (int i = 1; i <= 30; ++i) {
    EXPECT_EQ(
        DecideQuarantine(g, Verdict("unhealthy"), p, kT0 + std::chrono::minutes(i), mem).action,
        QuarantineAction::kNone);
  }
}

}  // namespace
}  // namespace taolie::health
