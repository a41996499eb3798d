#pragma once
// CallWatchdog: runs calls into a library that can hang (a GPU driver) on one dedicated worker
// thread and waits for each with a deadline. A call that misses its deadline is abandoned (it
// keeps running on the worker); until it returns, further calls fail fast with Unavailable.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"

namespace taolie::gpu {

class CallWatchdog {
 public:
  explicit CallWatchdog(std::string name);
  // Stops the worker. If it is stuck in a call for longer than `grace`, the thread is detached
  // (it owns everything it touches) and finishes on its own when the call returns.
  ~CallWatchdog();
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // Runs `fn` on the worker and waits at most `timeout` (including the wait for other callers).
  // `fn` must own (capture by value / shared_ptr) everything it uses: it may outlive the caller.
  template <typename T>
  Result<T> Run(const std::string& what, std::chrono::milliseconds timeout,
                std::function<Result<T>()> fn);

  // True while an abandoned call is still running on the worker.
  bool Stuck() const;

  // Queues `fn` to run after everything else on the worker, without waiting for it.
  void Post(std::function<void()> fn);

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    struct Task {
      uint64_t id;
      std::string what;
      std::function<void()> fn;
    };
    std::deque<Task> queue;
    bool stop = false;
    bool exited = false;
    uint64_t next_id = 0;       // ids grow; tasks run in id order
    uint64_t done_id = 0;       // last finished task
    uint64_t abandoned_id = 0;  // last task whose caller gave up waiting
    std::string running_what;
    std::chrono::steady_clock::time_point running_since;
  };
  static void Loop(std::shared_ptr<Shared> shared);
  // Checks the worker is free and enqueues; Unavailable when an abandoned call still runs.
  Result<uint64_t> Enqueue(const std::string& what, std::function<void()> task);
  void Abandon(uint64_t id);

  std::string name_;
  // One caller at a time (a flag + condition variable rather than std::timed_mutex, whose
  // pthread_mutex_clocklock ThreadSanitizer does not understand).
  std::mutex call_mu_;
  std::condition_variable call_cv_;
  bool call_active_ = false;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

template <typename T>
Result<T> CallWatchdog::Run(const std::string& what, std::chrono::milliseconds timeout,
                            std::function<Result<T>()> fn) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::unique_lock lock(call_mu_);
    if (!call_cv_.wait_until(lock, deadline, [this] { return !call_active_; })) {
      return MakeError(ErrorCode::kDeadlineExceeded,
                       name_ + ": " + what + " waited too long for another call to finish");
    }
    call_active_ = true;
  }
  struct Release {
    CallWatchdog* self;
    ~Release() {
      std::lock_guard lock(self->call_mu_);
      self->call_active_ = false;
      self->call_cv_.notify_one();
    }
  } release{this};
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  auto task = [promise, fn = std::move(fn), what]() {
    try {
      promise->set_value(fn());
    } catch (const std::exception& e) {
      promise->set_value(MakeError(ErrorCode::kInternal, what + ": exception: " + e.what()));
    } catch (...) {
      promise->set_value(MakeError(ErrorCode::kInternal, what + ": unknown exception"));
    }
  };
  Result<uint64_t> id = Enqueue(what, std::move(task));
  if (!id.ok()) return id.error();
  if (future.wait_until(deadline) != std::future_status::ready) {
    Abandon(*id);
    return MakeError(ErrorCode::kDeadlineExceeded, name_ + ": " + what + " did not return within " +
                                                       std::to_string(timeout.count()) + " ms");
  }
  return future.get();
}

}  // namespace taolie::gpu
