#pragma once
// Clock seam. Wall time (Now) is for timestamps shown to people and the platform; monotonic
// time (Monotonic) is for every duration: rental elapsed time, deadlines, backoff. SleepFor
// waits on the clock, so a test's FakeClock (tests/fakes/fake_clock.h) that "waits" an hour
// runs in microseconds.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace taolie {

using SystemTime = std::chrono::system_clock::time_point;
using MonoTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() const = 0;
  // CLOCK_MONOTONIC on Linux: counts from boot, so it is comparable across agent restarts
  // within one boot (pair it with the kernel's boot_id when persisting it).
  virtual MonoTime Monotonic() const = 0;
  // Waits `d` (monotonic) or until stop is requested; false when stopped early.
  virtual bool SleepFor(std::chrono::nanoseconds d, std::stop_token stop) const = 0;
};

class RealClock final : public Clock {
 public:
  SystemTime Now() const override { return std::chrono::system_clock::now(); }
  MonoTime Monotonic() const override { return std::chrono::steady_clock::now(); }
  bool SleepFor(std::chrono::nanoseconds d, std::stop_token stop) const override {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    return !cv.wait_for(lock, stop, d, [] { return false; }) && !stop.stop_requested();
  }
};

}  // namespace taolie
