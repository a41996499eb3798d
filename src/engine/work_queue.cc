#include "engine/work_queue.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace taolie::engine {

WorkQueue::WorkQueue(int deploy_threads, int stop_threads) {
  queues_[Lane::kDeploy];
  queues_[Lane::kStop];
  for (int i = 0; i < deploy_threads; ++i)
    threads_.emplace_back([this](std::stop_token st) { Worker(Lane::kDeploy, st); });
  for (int i = 0; i < stop_threads; ++i)
    threads_.emplace_back([this](std::stop_token st) { Worker(Lane::kStop, st); });
}

WorkQueue::~WorkQueue() { Shutdown(); }

bool WorkQueue::Submit(Lane lane, const std::string& dedupe_key, const std::string& serial_key,
                       Job job) {
  std::lock_guard lock(mu_);
  if (keys_.count(dedupe_key) > 0) return false;
  keys_.insert(dedupe_key);
  busy_serial_.insert(serial_key);
  queues_[lane].push_back(Item{dedupe_key, serial_key, std::move(job), next_seq_++});
  cv_.notify_all();
  return true;
}

void WorkQueue::Shutdown() {
  for (auto& t : threads_) t.request_stop();
  {
    std::lock_guard lock(mu_);
    for (auto& [lane, q] : queues_) {
      for (const auto& item : q) {
        keys_.erase(item.dedupe_key);
        busy_serial_.erase(busy_serial_.find(item.serial_key));
      }
      q.clear();
    }
    cv_.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t WorkQueue::Outstanding() const {
  std::lock_guard lock(mu_);
  size_t n = running_;
  for (const auto& [lane, q] : queues_) n += q.size();
  return n;
}

void WorkQueue::Promote(const std::string& serial_key) {
  std::lock_guard lock(mu_);
  auto& from = queues_[Lane::kDeploy];
  auto& to = queues_[Lane::kStop];
  for (auto it = from.begin(); it != from.end();) {
    if (it->serial_key != serial_key) {
      ++it;
      continue;
    }
    auto pos = to.begin();
    while (pos != to.end() && pos->seq < it->seq) ++pos;
    to.insert(pos, std::move(*it));
    it = from.erase(it);
  }
  cv_.notify_all();
}

bool WorkQueue::Busy(const std::string& serial_key) const {
  std::lock_guard lock(mu_);
  return busy_serial_.count(serial_key) > 0;
}

bool WorkQueue::WaitIdle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    if (running_ > 0) return false;
    for (const auto& [lane, q] : queues_) {
      if (!q.empty()) return false;
    }
    return true;
  });
}

uint64_t WorkQueue::jobs_thrown() const {
  std::lock_guard lock(mu_);
  return thrown_;
}

void WorkQueue::Worker(Lane lane, std::stop_token stop) {
  pthread_setname_np(pthread_self(), lane == Lane::kDeploy ? "rental-deploy" : "rental-stop");
  auto& queue = queues_[lane];
  while (!stop.stop_requested()) {
    Item item;
    {
      std::unique_lock lock(mu_);
      // Runnable: its serial key is not running and no earlier job of that key is queued in
      // either lane (order within a serial key holds across lanes).
      auto earlier_queued = [&](const Item& candidate) {
        for (const auto& [other_lane, q] : queues_) {
          for (const auto& o : q) {
            if (o.seq < candidate.seq && o.serial_key == candidate.serial_key) return true;
          }
        }
        return false;
      };
      auto runnable = [&]() -> std::deque<Item>::iterator {
        for (auto it = queue.begin(); it != queue.end(); ++it) {
          if (running_serial_.count(it->serial_key) == 0 && !earlier_queued(*it)) return it;
        }
        return queue.end();
      };
      cv_.wait(lock, stop, [&] { return runnable() != queue.end(); });
      if (stop.stop_requested()) return;
      auto it = runnable();
      item = std::move(*it);
      queue.erase(it);
      running_serial_.insert(item.serial_key);
      ++running_;
    }
    bool threw = false;
    try {
      item.job(stop);
    } catch (const std::exception& e) {
      threw = true;
      spdlog::error("work item {} threw: {}", item.dedupe_key, e.what());
    } catch (...) {
      threw = true;
      spdlog::error("work item {} threw a non-standard exception", item.dedupe_key);
    }
    {
      std::lock_guard lock(mu_);
      running_serial_.erase(item.serial_key);
      busy_serial_.erase(busy_serial_.find(item.serial_key));
      keys_.erase(item.dedupe_key);
      --running_;
      if (threw) ++thrown_;
      cv_.notify_all();
    }
  }
}

}  // namespace taolie::engine
