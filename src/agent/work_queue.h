#pragma once
// A small pool of worker threads for deploy/terminate work, so a long pull never delays a
// loop. Jobs with the same serial key run one at a time, in submission order; a job whose
// dedupe key is already queued or running is not added twice.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace taolie::agent {

class WorkQueue {
 public:
  using Job = std::function<void(std::stop_token)>;
  explicit WorkQueue(int threads);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  bool Submit(const std::string& dedupe_key, const std::string& serial_key, Job job);
  // Asks running jobs to stop (their stop_token fires), drops queued ones, joins the threads.
  void Shutdown();
  size_t Outstanding() const;  // queued + running

 private:
  struct Item {
    std::string dedupe_key;
    std::string serial_key;
    Job job;
  };
  void Worker(std::stop_token stop);

  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Item> queue_;
  std::set<std::string> keys_;  // dedupe keys queued or running
  std::set<std::string> running_serial_;
  size_t running_ = 0;
  std::vector<std::jthread> threads_;
};

}  // namespace taolie::agent
