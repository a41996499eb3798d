#pragma once
// A rental's elapsed time, measured on the monotonic clock and checkpointed with the kernel's
// boot_id. Pure.
//
// Within one boot, elapsed time is the monotonic difference since the checkpoint: a step of the
// wall clock (NTP, an operator's `date -s`) neither ends a rental early, nor extends it, nor
// changes its bill. Across a reboot the monotonic clock restarts, so the wall-clock gap since
// the checkpoint is added instead, clamped to [0, kRebootGapCap]: a host that was down longer
// than that gave the renter nothing, so the renter is not charged for it (the rental ends that
// much later), and a wall clock that is wrong after boot cannot end every rental at once.
#include <chrono>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "domain/deployment.h"

namespace taolie::rules {

inline constexpr std::chrono::minutes kRebootGapCap{15};
// A wall clock that moved this much more (or less) than the monotonic clock was stepped.
inline constexpr std::chrono::seconds kClockStepThreshold{60};

struct ClockCheckpoint {
  std::string boot_id;     // "" = the rental's clock has not started
  int64_t mono_ns = 0;     // monotonic time at the checkpoint (since boot)
  SystemTime wall{};       // wall time at the checkpoint
  int64_t elapsed_ms = 0;  // rental time elapsed at the checkpoint
};

struct ClockReading {
  std::string boot_id;
  MonoTime mono{};
  SystemTime wall{};
};

struct ElapsedNow {
  int64_t elapsed_ms = 0;      // rental time elapsed now
  bool rebooted = false;       // the checkpoint is from another boot
  int64_t wall_step_ms = 0;    // wall-clock movement minus monotonic movement (same boot)
  ClockCheckpoint checkpoint;  // the new checkpoint, to persist
};

ClockReading ReadClock(const Clock& clock, const std::string& boot_id);
// Starts a rental's clock at zero now.
ClockCheckpoint StartClock(const ClockReading& now);
ElapsedNow Advance(const ClockCheckpoint& cp, const ClockReading& now);

ClockCheckpoint CheckpointOf(const domain::Deployment& d);
void SetCheckpoint(domain::Deployment& d, const ClockCheckpoint& cp);

}  // namespace taolie::rules
