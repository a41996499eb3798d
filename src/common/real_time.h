#pragma once
// The process's real clocks, for what waits in real time on the operating system: a poll, a
// condition variable, a child process, a socket's idle timeout, a test's bounded wait. Logic a
// test must drive (a loop's schedule, a rental's clock, back-offs) reads the Clock seam
// (clock.h) instead. Outside src/common nothing reads std::chrono's clocks directly: it goes
// through one or the other.
#include <chrono>

#include "common/clock.h"

namespace taolie {

inline MonoTime SteadyNow() { return std::chrono::steady_clock::now(); }
inline SystemTime WallNow() { return std::chrono::system_clock::now(); }

}  // namespace taolie
