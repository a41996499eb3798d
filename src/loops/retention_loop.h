#pragma once
// Retention (hourly; again a minute later while a backlog is left): deletes rows older than
// monitoring.retention's days (metrics, health, events, commands) in bounded batches, and the
// rotated log files older than logs_days.
#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "loops/periodic_runner.h"
#include "store/store.h"

namespace taolie::loops {

class RetentionLoop final : public Loop {
 public:
  static constexpr std::chrono::hours kInterval{1};
  static constexpr std::chrono::minutes kBacklogInterval{1};

  // `log_file`: logging.file ("" = no log file: none pruned). `clock` dates the cut-off of
  // rotated logs.
  RetentionLoop(store::Store& store, config::RetentionConfig retention, std::string log_file,
                const Clock& clock)
      : store_(store), retention_(retention), log_file_(std::move(log_file)), clock_(clock) {}
  const char* Name() const override { return "retention"; }
  Status RunOnce(std::stop_token stop) override;
  std::optional<std::chrono::milliseconds> NextRoundIn() override;

 private:
  store::Store& store_;
  const config::RetentionConfig retention_;
  const std::string log_file_;
  const Clock& clock_;
  bool more_ = false;  // the last prune left a backlog
};

}  // namespace taolie::loops
