#include "loops/retention_loop.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "telemetry/logging.h"

namespace taolie::loops {

Status RetentionLoop::RunOnce(std::stop_token /*stop*/) {
  store::Store::PruneLimits limits;
  limits.metrics_days = retention_.metrics_days;
  limits.health_days = retention_.health_days;
  limits.events_days = retention_.events_days;
  limits.commands_days = retention_.commands_days;
  auto pruned = store_.Prune(limits);
  more_ = pruned.ok() && pruned->more;
  if (!pruned.ok()) {
    spdlog::warn("retention: {}", pruned.error().ToString());
  } else if (pruned->rows > 0) {
    spdlog::info("retention: pruned {} old rows{}", pruned->rows,
                 pruned->more ? " (more next round)" : "");
  }
  const SystemTime cutoff = clock_.Now() - std::chrono::hours(24) * retention_.logs_days;
  auto logs = telemetry::PruneRotatedLogs(log_file_, std::chrono::file_clock::from_sys(cutoff));
  if (!logs.ok()) {
    spdlog::warn("retention: rotated logs not pruned: {}", logs.error().message);
  } else if (*logs > 0) {
    spdlog::info("retention: deleted {} rotated log files older than {} days", *logs,
                 retention_.logs_days);
  }
  // A failed prune is logged, not returned: the next hourly round tries again (as before the
  // split, a round never retried sooner for it).
  return OkStatus();
}

std::optional<std::chrono::milliseconds> RetentionLoop::NextRoundIn() {
  if (!more_) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(kBacklogInterval);
}

}  // namespace taolie::loops
