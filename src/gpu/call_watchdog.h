#pragma once
// CallWatchdog: runs calls into a library that can hang (a GPU driver) on a worker thread and
// waits for each with a deadline. The worker exists only while work is in flight: it is started
// when a call (or a posted task) is queued and none runs, runs the queue in order and ends once
// the queue is empty; the caller that collects a result joins the ended worker, so an idle
// watchdog holds no thread and nothing wakes. At most one call is outstanding: a caller waits
// (within its deadline) for another caller's call to finish. A call that misses its deadline is
// abandoned (it keeps running on its worker); until it returns, further calls fail fast with
// Unavailable and no second worker is started.
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

#include "common/real_time.h"
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
  // still runs (or when no worker thread can be started), with DeadlineExceeded when the other
  // call did not finish in time, and with Cancelled once stopping. `fn` must own (capture by
  // value / shared_ptr) everything it uses: it may outlive the caller.
  template <typename T>
  Result<Pending<T>> Start(const std::string& what, Clock::time_point deadline,
                           std::function<Result<T>()> fn);

  // The result of a started call, waiting at most until `deadline`; a call that is not done by
  // then is abandoned and yields DeadlineExceeded. Joins the worker when it ended with this call.
  template <typename T>
  Result<T> Await(Pending<T>& call, Clock::time_point deadline);

  // Start + Await with one deadline `timeout` from now.
  template <typename T>
  Result<T> Run(const std::string& what, std::chrono::milliseconds timeout,
                std::function<Result<T>()> fn);

  // True while an abandoned call is still running on the worker.
  bool Stuck() const;

  // Queues `fn` to run after everything else on the worker, without waiting for it (dropped
  // once stopping).
  void Post(std::function<void()> fn);

  // Stops accepting calls; what is queued still runs. Returns at once.
  void RequestStop();
  // RequestStop, then joins the worker when it finishes by `deadline` (a stuck call may still
  // return by then). One still busy at the deadline is detached: it owns everything it touches
  // and ends on its own when the call returns.
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
    bool worker_running = false;  // a worker is draining the queue
    std::thread worker;           // the running one, or the last one (joinable until reaped)
    bool busy = false;            // a started call is queued or running
    uint64_t next_id = 0;         // ids grow; tasks run in id order
    uint64_t done_id = 0;         // last finished task
    uint64_t abandoned_id = 0;    // last call whose caller gave up waiting
    std::string running_what;
    Clock::time_point running_since;
  };
  // The worker's body: runs the queue until it is empty, then ends.
  static void Drain(std::shared_ptr<Shared> shared);
  static void RunTask(Shared::Task& task);
  // Queues `task` and starts a worker unless one runs; the caller holds `shared_->mu`. The
  // ended worker this replaces is moved to `ended`, to be joined once the lock is released.
  Status Schedule(Shared::Task task, std::thread& ended);
  // Takes the call slot and enqueues `task`, waiting for the slot until `deadline`.
  Result<uint64_t> Enqueue(const std::string& what, Clock::time_point deadline,
                           std::function<void()> task);
  // Waits until task `id` is done or `deadline`; joins the worker if it has ended. True if done.
  bool WaitDone(uint64_t id, Clock::time_point deadline);
  void Abandon(uint64_t id);

  std::string name_;
  std::shared_ptr<Shared> shared_;
  bool stopped_ = false;  // Stop ran (the owner's thread only)
};

template <typename T>
Result<CallWatchdog::Pending<T>> CallWatchdog::Start(const std::string& what,
                                                     Clock::time_point deadline,
                                                     std::function<Result<T>()> fn) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  Pending<T> call;
  call.what = what;
  call.started = SteadyNow();
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
  // A call whose result is ready but whose worker is still releasing what it owned at the
  // deadline has returned: its result counts.
  if (!WaitDone(call.id, deadline) &&
      call.future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    Abandon(call.id);
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyNow() - call.started);
    return MakeError(ErrorCode::kDeadlineExceeded, name_ + ": " + call.what +
                                                       " did not return within " +
                                                       std::to_string(waited.count()) + " ms");
  }
  return call.future.get();
}

template <typename T>
Result<T> CallWatchdog::Run(const std::string& what, std::chrono::milliseconds timeout,
                            std::function<Result<T>()> fn) {
  const auto deadline = SteadyNow() + timeout;
  auto call = Start<T>(what, deadline, std::move(fn));
  if (!call.ok()) return call.error();
  return Await<T>(*call, deadline);
}

}  // namespace taolie::gpu
