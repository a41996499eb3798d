#pragma once
// Liveness of the agent's loops, for systemd's watchdog and /healthz. A loop is stuck when a
// round is in progress and the loop has not finished one for max(3 x its interval, a floor,
// monitoring.stuck_loop_seconds, 120 s by default). A loop between rounds (waiting for its turn
// or backing off after a failure) is never stuck, so an outage of the database or the platform,
// where rounds fail quickly, keeps the agent alive; a round that never returns does not.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace taolie::loops {

struct LoopProgress {
  std::string name;
  std::chrono::milliseconds interval{0};
  int64_t round_started_ns = 0;   // steady_clock; 0 = between rounds
  int64_t last_round_end_ns = 0;  // steady_clock; 0 = no round finished yet
};

struct Liveness {
  bool ok = true;
  std::vector<std::string> stuck;  // loop names
  // "" when ok, else e.g. "heartbeat: no round finished for 131 s (stuck after 120 s)".
  std::string detail;
};

// How long a loop may go without finishing a round while one is in progress.
std::chrono::seconds StuckAfter(std::chrono::milliseconds interval, std::chrono::seconds floor);

Liveness EvaluateLiveness(const std::vector<LoopProgress>& loops, int64_t now_ns,
                          std::chrono::seconds floor);

}  // namespace taolie::loops
