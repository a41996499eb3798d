#include "agent/work_queue.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace taolie::agent {

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this](std::stop_token st) { Worker(st); });
}

WorkQueue::~WorkQueue() { Shutdown(); }

bool WorkQueue::Submit(const std::string& dedupe_key, const std::string& serial_key, Job job) {
  std::lock_guard lock(mu_);
  if (keys_.count(dedupe_key) > 0) return false;
  keys_.insert(dedupe_key);
  queue_.push_back(Item{dedupe_key, serial_key, std::move(job)});
  cv_.notify_all();
  return true;
}

void WorkQueue::Shutdown() {
  for (auto& t : threads_) t.request_stop();
  {
    std::lock_guard lock(mu_);
    queue_.clear();
    cv_.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t WorkQueue::Outstanding() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

void WorkQueue::Worker(std::stop_token stop) {
  pthread_setname_np(pthread_self(), "rental-worker");
  while (!stop.stop_requested()) {
    Item item;
    {
      std::unique_lock lock(mu_);
      auto runnable = [this]() -> std::deque<Item>::iterator {
        std::set<std::string> blocked = running_serial_;
        for (auto it = queue_.begin(); it != queue_.end(); ++it) {
          if (blocked.count(it->serial_key) == 0) return it;
          blocked.insert(it->serial_key);  // keep order within a serial key
        }
        return queue_.end();
      };
      cv_.wait(lock, stop, [&] { return runnable() != queue_.end(); });
      if (stop.stop_requested()) return;
      auto it = runnable();
      item = std::move(*it);
      queue_.erase(it);
      running_serial_.insert(item.serial_key);
      ++running_;
    }
    try {
      item.job(stop);
    } catch (const std::exception& e) {
      spdlog::error("work item {} threw: {}", item.dedupe_key, e.what());
    }
    {
      std::lock_guard lock(mu_);
      running_serial_.erase(item.serial_key);
      keys_.erase(item.dedupe_key);
      --running_;
      cv_.notify_all();
    }
  }
}

}  // namespace taolie::agent
