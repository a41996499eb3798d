#pragma once
// Clock seam. Wall time (Now) is for timestamps shown to people and the platform; monotonic
// time (Monotonic) is for every duration: rental elapsed time, deadlines, backoff. SleepFor
// waits on the clock, so a FakeClock test that "waits" an hour runs in microseconds.
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

// Wall and monotonic time move together on Advance; StepWall moves the wall clock alone
// (an NTP step). SleepFor advances both and returns at once.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(SystemTime start = SystemTime(std::chrono::seconds(1'700'000'000)))
      : wall_(start), mono_(MonoTime(std::chrono::hours(1000))) {}
  SystemTime Now() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  MonoTime Monotonic() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }
  bool SleepFor(std::chrono::nanoseconds d, std::stop_token stop) const override {
    if (stop.stop_requested()) return false;
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<SystemTime::duration>(d);
    mono_ += std::chrono::duration_cast<MonoTime::duration>(d);
    ++sleeps_;
    return true;
  }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<SystemTime::duration>(d);
    mono_ += std::chrono::duration_cast<MonoTime::duration>(d);
  }
  void StepWall(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<SystemTime::duration>(d);
  }
  void Set(SystemTime t) {
    std::lock_guard lock(mu_);
    wall_ = t;
  }
  int sleeps() const { return sleeps_; }

 private:
  mutable std::mutex mu_;
  mutable SystemTime wall_;  // mutable: SleepFor is const on the seam and moves time
  mutable MonoTime mono_;
  mutable std::atomic<int> sleeps_{0};
};

}  // namespace taolie
