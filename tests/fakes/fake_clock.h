#pragma once
// The Clock seam's fake for tests: time moves only when the test moves it.
#include <atomic>
#include <chrono>
#include <mutex>
#include <stop_token>

#include "common/clock.h"

namespace taolie {

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
