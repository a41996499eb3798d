#pragma once
// Worker threads for rental work, in two lanes so that ending a rental never waits behind a
// deploy: the deploy lane (pulls, creates, readiness) and the stop lane (terminate, expiry,
// cleanup), each with its own threads. Jobs with the same serial key run one at a time, in
// submission order, across both lanes; a job whose dedupe key is already queued or running is
// not added twice.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace taolie::engine {

enum class Lane { kDeploy, kStop };

class WorkQueue {
 public:
  using Job = std::function<void(std::stop_token)>;
  WorkQueue(int deploy_threads, int stop_threads);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  bool Submit(Lane lane, const std::string& dedupe_key, const std::string& serial_key, Job job);
  // Asks running jobs to stop (their stop_token fires), drops queued ones, joins the threads.
  void Shutdown();
  size_t Outstanding() const;  // queued + running
  // Moves the queued (not running) deploy-lane jobs of `serial_key` to the stop lane, so a
  // terminate never waits for a deploy thread to free up: the moved jobs run first there
  // (they are expected to have been cancelled, and end at once).
  void Promote(const std::string& serial_key);
  // True while a job with this serial key is queued or running.
  bool Busy(const std::string& serial_key) const;
  // Waits until nothing is queued or running; false on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout) const;
  // Jobs thrown out of (logged and counted; the worker goes on).
  uint64_t jobs_thrown() const;

 private:
  struct Item {
    std::string dedupe_key;
    std::string serial_key;
    Job job;
    uint64_t seq = 0;  // submission order, across lanes
  };
  void Worker(Lane lane, std::stop_token stop);

  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;
  std::map<Lane, std::deque<Item>> queues_;
  std::set<std::string> keys_;              // dedupe keys queued or running
  std::multiset<std::string> busy_serial_;  // serial keys queued or running
  std::set<std::string> running_serial_;
  size_t running_ = 0;
  uint64_t thrown_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<std::jthread> threads_;
};

}  // namespace taolie::engine
