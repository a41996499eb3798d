#pragma once
// Exponential backoff with full jitter: delay = uniform(0, min(cap, base * 2^attempt)).
#include <chrono>
#include <cstdint>
#include <random>

namespace taolie {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
          uint64_t seed = std::random_device{}())
      : base_(base), cap_(cap), rng_(seed) {}
  // Delay before the next try; increments the attempt counter.
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }
  // Upper bound of the delay for a given attempt (no jitter); pure, for tests.
  std::chrono::milliseconds Ceiling(int attempt) const;

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace taolie
