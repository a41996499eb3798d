#pragma once
// Runs one periodic loop on its own thread: initial splay, fixed-rate schedule, backoff after
// failures, immediate stop, and an on-demand "run now" wake-up.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "common/backoff.h"
#include "common/result.h"

namespace taolie::loops {

// A loop body. RunOnce is called by the runner; tests call it directly.
class Loop {
 public:
  virtual ~Loop() = default;
  virtual const char* Name() const = 0;
  // Returns an error when the round failed (the runner backs off and logs, rate-limited).
  virtual Status RunOnce(std::stop_token stop) = 0;
  // True when the loop wants another round immediately (e.g. a poll that returned commands).
  virtual bool WantsImmediateRerun() { return false; }
  // After a successful round: when the next round is due, if sooner than the runner's interval
  // (e.g. retention with a backlog left); nullopt: the interval.
  virtual std::optional<std::chrono::milliseconds> NextRoundIn() { return std::nullopt; }
};

struct LoopStats {
  std::atomic<uint64_t> rounds{0};
  std::atomic<uint64_t> failures{0};    // rounds that returned an error or threw
  std::atomic<uint64_t> exceptions{0};  // rounds that threw (a bug: logged, counted, goes on)
  std::atomic<int64_t> last_success_unix{0};
  std::atomic<int64_t> last_round_micros{0};
  // steady_clock nanoseconds since its epoch: when the round in progress began (0 when the
  // loop is between rounds: waiting for its next turn or backing off), and when the last
  // round ended (0 before the first). Read by the liveness check (liveness.h).
  std::atomic<int64_t> round_started_ns{0};
  std::atomic<int64_t> last_round_end_ns{0};
};

class PeriodicRunner {
 public:
  PeriodicRunner(Loop& loop, std::chrono::milliseconds interval, std::chrono::milliseconds splay);
  ~PeriodicRunner();  // stops and joins
  PeriodicRunner(const PeriodicRunner&) = delete;
  PeriodicRunner& operator=(const PeriodicRunner&) = delete;

  void Start();
  void RequestStop();
  void Join();
  void Wake();  // run a round now
  const LoopStats& stats() const { return stats_; }
  const char* name() const { return loop_.Name(); }
  std::chrono::milliseconds interval() const { return interval_; }

 private:
  void Run(std::stop_token stop);

  Loop& loop_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds splay_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool wake_ = false;
  LoopStats stats_;
  std::jthread thread_;
};

// Runs one round of `loop`; an exception thrown by RunOnce is caught, counted in
// stats.exceptions and returned as an Internal error naming the loop, so that the runner
// (and the start-up code, which runs some rounds itself) logs it, backs off and goes on.
Status RunOnceGuarded(Loop& loop, std::stop_token stop, LoopStats& stats);

// Sleeps up to `d`, returning early (false) when stop is requested.
bool SleepFor(std::chrono::milliseconds d, std::stop_token stop);

}  // namespace taolie::loops
