#include "gpu/call_watchdog.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <system_error>

#include "common/real_time.h"

namespace taolie::gpu {

namespace {
constexpr auto kStopGrace = std::chrono::seconds(2);
}

CallWatchdog::CallWatchdog(std::string name)
    : name_(std::move(name)), shared_(std::make_shared<Shared>()) {}

CallWatchdog::~CallWatchdog() {
  if (!stopped_) Stop(SteadyNow() + kStopGrace);
}

void CallWatchdog::RequestStop() {
  std::lock_guard lock(shared_->mu);
  shared_->stop = true;
  shared_->cv.notify_all();
}

void CallWatchdog::Stop(Clock::time_point deadline) {
  if (stopped_) return;
  stopped_ = true;
  std::thread worker;
  bool ended = false;
  {
    std::unique_lock lock(shared_->mu);
    shared_->stop = true;
    shared_->cv.notify_all();
    ended = shared_->cv.wait_until(lock, deadline, [&] { return !shared_->worker_running; });
    if (!ended) {
      spdlog::warn("{}: worker still blocked in {}; detaching it", name_, shared_->running_what);
    }
    worker = std::move(shared_->worker);
  }
  if (!worker.joinable()) return;
  if (ended) {
    worker.join();
  } else {
    worker.detach();  // Drain owns `shared`; queued tasks own their state.
  }
}

void CallWatchdog::RunTask(Shared::Task& task) {
  // The thread's catch-all (issue 17 item 8): calls are wrapped by Start(), but a posted task
  // (or a throwing destructor of what a task owns) must not end the worker: logged, and the
  // next task runs.
  try {
    task.fn();
    task.fn = nullptr;  // release what the task owns before reporting it done
  } catch (const std::exception& e) {
    spdlog::error("{} failed on the GPU call worker: {}", task.what, e.what());
  } catch (...) {
    spdlog::error("{} failed on the GPU call worker: unknown exception", task.what);
  }
  task.fn = nullptr;
}

// `shared` by value: the worker owns its share, and may outlive the watchdog (detached by Stop).
// NOLINTNEXTLINE(performance-unnecessary-value-param)
void CallWatchdog::Drain(std::shared_ptr<Shared> shared) {
  std::unique_lock lock(shared->mu);
  while (!shared->queue.empty()) {
    Shared::Task task = std::move(shared->queue.front());
    shared->queue.pop_front();
    shared->running_what = task.what;
    shared->running_since = SteadyNow();
    lock.unlock();
    RunTask(task);
    lock.lock();
    shared->done_id = task.id;
    if (task.call) shared->busy = false;
    shared->running_what.clear();
    shared->cv.notify_all();
  }
  // Ends here, under the lock, so that whoever sees it not running may join it at once.
  shared->worker_running = false;
  shared->cv.notify_all();
}

Status CallWatchdog::Schedule(Shared::Task task, std::thread& ended) {
  shared_->queue.push_back(std::move(task));
  shared_->cv.notify_all();
  if (shared_->worker_running) return OkStatus();
  try {
    std::thread worker(&CallWatchdog::Drain, shared_);
    ended = std::move(shared_->worker);
    shared_->worker = std::move(worker);
    shared_->worker_running = true;
  } catch (const std::system_error& e) {
    shared_->queue.pop_back();
    return MakeError(ErrorCode::kUnavailable,
                     name_ + ": cannot start a worker thread: " + std::string(e.what()));
  }
  return OkStatus();
}

Result<uint64_t> CallWatchdog::Enqueue(const std::string& what, Clock::time_point deadline,
                                       std::function<void()> fn) {
  std::thread ended;  // joined after the lock is released (it has finished its queue)
  uint64_t id = 0;
  {
    std::unique_lock lock(shared_->mu);
    while (true) {
      if (shared_->stop) return MakeError(ErrorCode::kCancelled, name_ + ": shutting down");
      if (shared_->abandoned_id > shared_->done_id) {
        auto stuck_for = std::chrono::duration_cast<std::chrono::milliseconds>(
            SteadyNow() - shared_->running_since);
        return MakeError(ErrorCode::kUnavailable, name_ + ": still blocked in an earlier call (" +
                                                      shared_->running_what + ", " +
                                                      std::to_string(stuck_for.count()) + " ms)");
      }
      if (!shared_->busy) break;
      if (shared_->cv.wait_until(lock, deadline) == std::cv_status::timeout && shared_->busy &&
          shared_->abandoned_id <= shared_->done_id && !shared_->stop) {
        return MakeError(ErrorCode::kDeadlineExceeded,
                         name_ + ": " + what + " waited too long for another call to finish");
      }
    }
    id = shared_->next_id + 1;
    // On failure nothing was queued and `ended` is untouched.
    TAOLIE_RETURN_IF_ERROR(Schedule(Shared::Task{id, what, std::move(fn), true}, ended));
    shared_->next_id = id;
    shared_->busy = true;
  }
  if (ended.joinable()) ended.join();
  return id;
}

bool CallWatchdog::WaitDone(uint64_t id, Clock::time_point deadline) {
  std::thread ended;
  bool done = false;
  {
    std::unique_lock lock(shared_->mu);
    done = shared_->cv.wait_until(lock, deadline, [&] { return shared_->done_id >= id; });
    if (!shared_->worker_running) ended = std::move(shared_->worker);
  }
  if (ended.joinable()) ended.join();
  return done;
}

void CallWatchdog::Abandon(uint64_t id) {
  std::lock_guard lock(shared_->mu);
  // Only a call still outstanding counts: one that finished just after the deadline is done.
  if (id > shared_->done_id) shared_->abandoned_id = std::max(shared_->abandoned_id, id);
  shared_->cv.notify_all();  // callers waiting for the slot fail fast now
}

bool CallWatchdog::Stuck() const {
  std::lock_guard lock(shared_->mu);
  return shared_->abandoned_id > shared_->done_id;
}

void CallWatchdog::Post(std::function<void()> fn) {
  std::thread ended;
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->stop) return;
    const uint64_t id = shared_->next_id + 1;
    Status scheduled = Schedule(Shared::Task{id, "posted task", std::move(fn), false}, ended);
    if (scheduled.ok()) {
      shared_->next_id = id;
    } else {
      spdlog::error("{}: posted task dropped: {}", name_, scheduled.error().message);
    }
  }
  if (ended.joinable()) ended.join();
}

}  // namespace taolie::gpu
