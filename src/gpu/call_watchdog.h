#pragma once
// CallWatchdog: runs calls into a library that can hang (a GPU driver) on one dedicated worker
// thread and waits for each with a deadline. At most one call is outstanding per worker: a
// caller waits (within its deadline) for another caller's call to finish. A call that misses
// its deadline is abandoned (it keeps running on the worker); until it returns, further calls
// fail fast with Unavailable. The worker is created once and never replaced.
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
  using Clock = std::chrono::steady_clock;

  // A call started on the worker, to be collected with Await.
  template <typename T>
  struct Pending {
    uint64_t id = 0;
    std::string what;
    Clock::time_point started;
    std::future<Result<T>> future;
  };

  explicit CallWatchdog(std::string name);
  // Stop(now + 2 s) unless Stop ran already.
  ~CallWatchdog();
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // Starts `fn` on the worker without waiting for its result. Waits until `deadline` for a call
  // of another caller to finish first; fails at once with Unavailable while an abandoned call
  // still runs, with DeadlineExceeded when the other call did not finish in time, and with
  // Cancelled once stopping. `fn` must own (capture by value / shared_ptr) everything it uses:
  // it may outlive the caller.
  template <typename T>
  Result<Pending<T>> Start(const std::string& what, Clock::time_point deadline,
                           std::function<Result<T>()> fn);

  // The result of a started call, waiting at most until `deadline`; a call that is not done by
  // then is abandoned and yields DeadlineExceeded.
  template <typename T>
  Result<T> Await(Pending<T>& call, Clock::time_point deadline);

  // Start + Await with one deadline `timeout` from now.
  template <typename T>
  Result<T> Run(const std::string& what, std::chrono::milliseconds timeout,
                std::function<Result<T>()> fn);

  // True while an abandoned call is still running on the worker.
  bool Stuck() const;

  // Queues `fn` to run after everything else on the worker, without waiting for it.
  void Post(std::function<void()> fn);

  // Asks the worker to stop once its queue is done (no new calls start); returns at once.
  void RequestStop();
  // Stops the worker: joins it when it finishes by `deadline` (a stuck call may still return
  // by then). One still busy at the deadline is detached: it owns everything it touches and
  // ends on its own when the call returns.
  void Stop(Clock::time_point deadline);

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    struct Task {
      uint64_t id;
      std::string what;
      std::function<void()> fn;
      bool call;  // a Start()ed call (holds the one outstanding-call slot)
    };
    std::deque<Task> queue;
    bool stop = false;
    bool exited = false;
    bool busy = false;          // a started call is queued or running
    uint64_t next_id = 0;       // ids grow; tasks run in id order
    uint64_t done_id = 0;       // last finished task
    uint64_t abandoned_id = 0;  // last call whose caller gave up waiting
    std::string running_what;
    Clock::time_point running_since;
  };
  static void Loop(std::shared_ptr<Shared> shared);
  // Takes the call slot and enqueues `task`, waiting for the slot until `deadline`.
  Result<uint64_t> Enqueue(const std::string& what, Clock::time_point deadline,
                           std::function<void()> task);
  void Abandon(uint64_t id);

  std::string name_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

template <typename T>
Result<CallWatchdog::Pending<T>> CallWatchdog::Start(const std::string& what,
                                                     Clock::time_point deadline,
                                                     std::function<Result<T>()> fn) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  Pending<T> call;
  call.what = what;
  call.started = Clock::now();
  call.future = promise->get_future();
  auto task = [promise, fn = std::move(fn), what]() {
    try {
      promise->set_value(fn());
    } catch (const std::exception& e) {
      promise->set_value(MakeError(ErrorCode::kInternal, what + ": exception: " + e.what()));
    } catch (...) {
      promise->set_value(MakeError(ErrorCode::kInternal, what + ": unknown exception"));
    }
  };
  Result<uint64_t> id = Enqueue(what, deadline, std::move(task));
  if (!id.ok()) return id.error();
  call.id = *id;
  return call;
}

template <typename T>
Result<T> CallWatchdog::Await(Pending<T>& call, Clock::time_point deadline) {
  if (call.future.wait_until(deadline) != std::future_status::ready) {
    Abandon(call.id);
    auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - call.started);
    return MakeError(ErrorCode::kDeadlineExceeded, name_ + ": " + call.what +
                                                       " did not return within " +
                                                       std::to_string(waited.count()) + " ms");
  }
  return call.future.get();
}

template <typename T>
Result<T> CallWatchdog::Run(const std::string& what, std::chrono::milliseconds timeout,
                            std::function<Result<T>()> fn) {
  const auto deadline = Clock::now() + timeout;
  auto call = Start<T>(what, deadline, std::move(fn));
  if (!call.ok()) return call.error();
  return Await<T>(*call, deadline);
}

}  // namespace taolie::gpu
