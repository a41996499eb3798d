#include "loops/liveness.h"

#include <algorithm>

namespace taolie::loops {

std::chrono::seconds StuckAfter(std::chrono::milliseconds interval, std::chrono::seconds floor) {
  const auto three = std::chrono::ceil<std::chrono::seconds>(3 * interval);
  return std::max(three, floor);
}

Liveness EvaluateLiveness(const std::vector<LoopProgress>& loops, int64_t now_ns,
                          std::chrono::seconds floor) {
  Liveness out;
  for (const LoopProgress& l : loops) {
    if (l.round_started_ns == 0) continue;  // between rounds: waiting or backing off
    // Since the last round ended (the wait before this round counts), or since this round
    // began when it is the first.
    const int64_t since = l.last_round_end_ns != 0 ? l.last_round_end_ns : l.round_started_ns;
    const auto idle = std::chrono::nanoseconds(now_ns - since);
    const auto limit = StuckAfter(l.interval, floor);
    if (idle <= limit) continue;
    out.ok = false;
    out.stuck.push_back(l.name);
    if (!out.detail.empty()) out.detail += "; ";
    out.detail += l.name + ": no round finished for " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(idle).count()) +
                  " s (stuck after " + std::to_string(limit.count()) + " s)";
  }
  return out;
}

}  // namespace taolie::loops
