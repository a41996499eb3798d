#include "gpu/call_watchdog.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace taolie::gpu {

namespace {
constexpr auto kStopGrace = std::chrono::seconds(2);
}

CallWatchdog::CallWatchdog(std::string name)
    : name_(std::move(name)), shared_(std::make_shared<Shared>()) {
  thread_ = std::thread(&CallWatchdog::Loop, shared_);
}

CallWatchdog::~CallWatchdog() {
  if (thread_.joinable()) Stop(Clock::now() + kStopGrace);
}

void CallWatchdog::RequestStop() {
  std::lock_guard lock(shared_->mu);
  shared_->stop = true;
  shared_->cv.notify_all();
}

void CallWatchdog::Stop(Clock::time_point deadline) {
  if (!thread_.joinable()) return;
  bool exited = false;
  {
    std::unique_lock lock(shared_->mu);
    shared_->stop = true;
    shared_->cv.notify_all();
    exited = shared_->cv.wait_until(lock, deadline, [&] { return shared_->exited; });
    if (!exited) {
      spdlog::warn("{}: worker still blocked in {}; detaching it", name_, shared_->running_what);
    }
  }
  if (exited) {
    thread_.join();
  } else {
    thread_.detach();  // Loop owns `shared`; queued tasks own their state.
  }
}

void CallWatchdog::Loop(std::shared_ptr<Shared> shared) {
  std::unique_lock lock(shared->mu);
  while (true) {
    shared->cv.wait(lock, [&] { return shared->stop || !shared->queue.empty(); });
    if (shared->queue.empty()) break;  // stop requested and nothing left to run
    Shared::Task task = std::move(shared->queue.front());
    shared->queue.pop_front();
    shared->running_what = task.what;
    shared->running_since = Clock::now();
    lock.unlock();
    // The thread's catch-all (issue 17 item 8): calls are wrapped by Start(), but a posted
    // task (or a throwing destructor of what a task owns) must not end the worker: logged,
    // and the next task runs.
    try {
      task.fn();
      task.fn = nullptr;  // release what the task owns before reporting it done
    } catch (const std::exception& e) {
      spdlog::error("{} failed on the GPU call worker: {}", task.what, e.what());
    } catch (...) {
      spdlog::error("{} failed on the GPU call worker: unknown exception", task.what);
    }
    task.fn = nullptr;
    lock.lock();
    shared->done_id = task.id;
    if (task.call) shared->busy = false;
    shared->running_what.clear();
    shared->cv.notify_all();
  }
  shared->exited = true;
  shared->cv.notify_all();
}

Result<uint64_t> CallWatchdog::Enqueue(const std::string& what, Clock::time_point deadline,
                                       std::function<void()> fn) {
  std::unique_lock lock(shared_->mu);
  while (true) {
    if (shared_->stop) return MakeError(ErrorCode::kCancelled, name_ + ": shutting down");
    if (shared_->abandoned_id > shared_->done_id) {
      auto stuck_for = std::chrono::duration_cast<std::chrono::milliseconds>(
          Clock::now() - shared_->running_since);
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
  const uint64_t id = ++shared_->next_id;
  shared_->busy = true;
  shared_->queue.push_back(Shared::Task{id, what, std::move(fn), true});
  shared_->cv.notify_all();
  return id;
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
  std::lock_guard lock(shared_->mu);
  const uint64_t id = ++shared_->next_id;
  shared_->queue.push_back(Shared::Task{id, "posted task", std::move(fn), false});
  shared_->cv.notify_all();
}

}  // namespace taolie::gpu
