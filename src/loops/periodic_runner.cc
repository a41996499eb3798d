#include "loops/periodic_runner.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <string>

#include "common/failpoints.h"
#include "common/real_time.h"

namespace taolie::loops {

bool SleepFor(std::chrono::milliseconds d, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  return !cv.wait_for(lock, stop, d, [] { return false; }) && !stop.stop_requested();
}

Status RunOnceGuarded(Loop& loop, std::stop_token stop, LoopStats& stats) {
  try {
    return loop.RunOnce(stop);
  } catch (const std::exception& e) {
    stats.exceptions++;
    return MakeError(ErrorCode::kInternal,
                     std::string(loop.Name()) + " round threw an exception: " + e.what());
  } catch (...) {
    stats.exceptions++;
    return MakeError(ErrorCode::kInternal,
                     std::string(loop.Name()) + " round threw a non-standard exception");
  }
}

PeriodicRunner::PeriodicRunner(Loop& loop, std::chrono::milliseconds interval,
                               std::chrono::milliseconds splay)
    : loop_(loop), interval_(interval), splay_(splay) {}

PeriodicRunner::~PeriodicRunner() {
  RequestStop();
  Join();
}

void PeriodicRunner::Start() {
  thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

void PeriodicRunner::RequestStop() {
  thread_.request_stop();
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

void PeriodicRunner::Join() {
  if (thread_.joinable()) thread_.join();
}

void PeriodicRunner::Wake() {
  std::lock_guard lock(mu_);
  wake_ = true;
  cv_.notify_all();
}

void PeriodicRunner::Run(std::stop_token stop) {
  // Named after the loop (15 chars max), so `top -H` shows which loop spends what.
  pthread_setname_np(pthread_self(), std::string(loop_.Name()).substr(0, 15).c_str());
  using Clock = std::chrono::steady_clock;
  // Retries after a failure come sooner than the interval (full jitter), never later: a loop
  // keeps at least its configured rhythm while its peer is down.
  Backoff backoff(std::chrono::milliseconds(1000), interval_);
  auto next = SteadyNow() + splay_;
  Clock::time_point last_error_log{};
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, stop, next, [this] { return wake_; });
      wake_ = false;
    }
    if (stop.stop_requested()) break;
    auto started = SteadyNow();
    stats_.round_started_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(started.time_since_epoch()).count();
    const uint64_t exceptions_before = stats_.exceptions;
    FailpointStall(loop_.Name(), stop);
    Status st = RunOnceGuarded(loop_, stop, stats_);
    const auto ended = SteadyNow();
    auto elapsed = ended - started;
    stats_.last_round_end_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(ended.time_since_epoch()).count();
    stats_.round_started_ns = 0;
    stats_.rounds++;
    stats_.last_round_micros =
        std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    if (st.ok()) {
      stats_.last_success_unix =
          std::chrono::duration_cast<std::chrono::seconds>(WallNow().time_since_epoch()).count();
      if (backoff.attempt() > 0) spdlog::info("{}: recovered", loop_.Name());
      backoff.Reset();
      if (loop_.WantsImmediateRerun()) {
        next = SteadyNow();
        continue;
      }
      if (auto sooner = loop_.NextRoundIn(); sooner && *sooner < interval_) {
        next = SteadyNow() + *sooner;
        continue;
      }
      // Fixed rate: keep the rhythm unless a round overran a whole interval.
      next += interval_;
      if (next < SteadyNow()) next = SteadyNow() + interval_;
    } else {
      stats_.failures++;
      auto now = SteadyNow();
      if (now - last_error_log > std::chrono::minutes(1) || backoff.attempt() == 0) {
        if (stats_.exceptions != exceptions_before) {  // a bug, not an outage
          spdlog::error("{}: {} (the loop goes on)", loop_.Name(), st.error().ToString());
        } else {
          spdlog::warn("{}: {}", loop_.Name(), st.error().ToString());
        }
        last_error_log = now;
      }
      next = now + std::max(std::chrono::milliseconds(200), backoff.Next());
    }
  }
}

}  // namespace taolie::loops
