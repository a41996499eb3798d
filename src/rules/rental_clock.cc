#include "rules/rental_clock.h"

#include <algorithm>

namespace taolie::rules {
namespace {

int64_t MonoNs(MonoTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

ClockReading ReadClock(const Clock& clock, const std::string& boot_id) {
  return ClockReading{boot_id, clock.Monotonic(), clock.Now()};
}

ClockCheckpoint StartClock(const ClockReading& now) {
  return ClockCheckpoint{now.boot_id, MonoNs(now.mono), now.wall, 0};
}

ElapsedNow Advance(const ClockCheckpoint& cp, const ClockReading& now) {
  ElapsedNow out;
  if (cp.boot_id.empty()) {  // not started: nothing elapses
    out.checkpoint = cp;
    return out;
  }
  const int64_t wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.wall - cp.wall).count();
  int64_t add_ms = 0;
  if (cp.boot_id == now.boot_id) {
    const int64_t mono_ms = std::max<int64_t>(0, (MonoNs(now.mono) - cp.mono_ns) / 1'000'000);
    add_ms = mono_ms;
    out.wall_step_ms = wall_ms - mono_ms;
  } else {
    out.rebooted = true;
    const int64_t cap_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(kRebootGapCap).count();
    add_ms = std::clamp<int64_t>(wall_ms, 0, cap_ms);
  }
  out.elapsed_ms = cp.elapsed_ms + add_ms;
  out.checkpoint = ClockCheckpoint{now.boot_id, MonoNs(now.mono), now.wall, out.elapsed_ms};
  return out;
}

ClockCheckpoint CheckpointOf(const domain::Deployment& d) {
  return ClockCheckpoint{d.clock_boot_id, d.clock_mono_ns, d.clock_wall, d.elapsed_ms};
}

void SetCheckpoint(domain::Deployment& d, const ClockCheckpoint& cp) {
  d.clock_boot_id = cp.boot_id;
  d.clock_mono_ns = cp.mono_ns;
  d.clock_wall = cp.wall;
  d.elapsed_ms = cp.elapsed_ms;
}

}  // namespace taolie::rules
