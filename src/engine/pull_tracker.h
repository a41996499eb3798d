#pragma once
// Progress of one image pull, from the engine's per-layer stream: bytes downloaded over the
// layers seen (against the totals known so far), layers done, the rate over a sliding window,
// and when a progress line is due (at most every kProgressLogInterval, plus the final one).
// PullBoard keeps the latest snapshot of each deployment's pull for the status page.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "common/clock.h"
#include "docker/docker_client.h"

namespace taolie::engine {

struct PullSnapshot {
  std::string image;
  int64_t bytes_done = 0;        // downloaded, over every layer seen
  int64_t bytes_total = 0;       // sum of the layers' sizes known so far
  int64_t sized_bytes_done = 0;  // downloaded, over the layers whose size is known
  int unknown_size_layers = 0;   // layers being downloaded whose size the engine did not say
  double rate_bytes_per_s = 0;   // over the last kRateWindow
  int layers_done = 0;           // "Pull complete" or "Already exists"
  int layers_total = 0;          // layers seen so far
  SystemTime since{};            // wall time the pull started
  std::chrono::nanoseconds elapsed{0};
  // Percentage of bytes_total downloaded (0..100), -1 while no size is known.
  int percent() const;
  double average_bytes_per_s() const;  // bytes_done over elapsed
};

// "43% of 1.2 GiB, 38.5 MiB/s, 3/7 layers done" (without the image), with the window's rate
// or the one given.
std::string DescribePull(const PullSnapshot& s);
std::string DescribePull(const PullSnapshot& s, double rate_bytes_per_s);
// "512 B", "3.0 KiB", "1.2 GiB" (binary units).
std::string FormatBytes(double bytes);

class PullTracker {
 public:
  static constexpr std::chrono::seconds kProgressLogInterval{5};
  static constexpr std::chrono::seconds kRateWindow{10};

  PullTracker(std::string image, const Clock& clock);

  // Takes one line of the stream; true when a progress line is due now (the first one
  // kProgressLogInterval after the start, then at most one per interval).
  bool Add(const docker::PullProgress& p);
  PullSnapshot Snapshot() const;

 private:
  struct Layer {
    int64_t downloaded = 0;
    int64_t total = 0;  // 0 = not known
    bool done = false;
  };
  int64_t Downloaded() const;

  std::string image_;
  const Clock& clock_;
  SystemTime since_;
  MonoTime started_;
  MonoTime last_line_;
  std::map<std::string, Layer> layers_;
  // (time, bytes downloaded) samples within the rate window, oldest first, plus one before it.
  std::deque<std::pair<MonoTime, int64_t>> samples_;
};

// The latest snapshot of each deployment's pull, for /status; thread-safe. One per agent.
class PullBoard {
 public:
  struct Entry {
    std::string deployment_id;
    PullSnapshot snapshot;
  };
  void Set(const std::string& deployment_id, const PullSnapshot& s);
  void Erase(const std::string& deployment_id);
  std::vector<Entry> Snapshot() const;  // by deployment id
  bool Empty() const;
  // The /status "pulls" array: deployment_id, image, percent, bytes_done, bytes_total,
  // rate_bytes_per_s, layers_done, layers_total, since (RFC 3339).
  std::string Json() const;
  // A token that fires as soon as a deployment's pull starts (its first Set): background pulls
  // (prefetch) hold it to give way to a renter's.
  std::stop_token YieldToken();

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> pulls_;
  std::stop_source yield_;
};

// Removes a deployment's entry when its pull ends, whatever the exit path.
class PullBoardEntry {
 public:
  PullBoardEntry(PullBoard& board, std::string deployment_id)
      : board_(board), id_(std::move(deployment_id)) {}
  ~PullBoardEntry() { board_.Erase(id_); }
  PullBoardEntry(const PullBoardEntry&) = delete;
  PullBoardEntry& operator=(const PullBoardEntry&) = delete;

 private:
  PullBoard& board_;
  std::string id_;
};

}  // namespace taolie::engine
