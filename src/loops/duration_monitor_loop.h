#pragma once
#include <string>

#include "engine/image_gc.h"
#include "engine/reconciler.h"
#include "engine/rental_monitor.h"
#include "isolation/rental_isolation.h"
#include "loops/periodic_runner.h"

namespace taolie::loops {

// 7. Duration monitor (30 s): expiry warnings, expiries, dead containers, reconciliation.
class DurationMonitorLoop final : public Loop {
 public:
  // `isolation` (may be null) is ensured every round: rules flushed by someone come back.
  // `images` (may be null) checks free space and collects unused images every round.
  DurationMonitorLoop(engine::RentalMonitor& monitor, engine::Reconciler& reconciler,
                      isolation::RentalIsolation* isolation = nullptr,
                      engine::ImageCollector* images = nullptr)
      : monitor_(monitor), reconciler_(reconciler), isolation_(isolation), images_(images) {}
  const char* Name() const override { return "duration-monitor"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  engine::RentalMonitor& monitor_;
  engine::Reconciler& reconciler_;
  isolation::RentalIsolation* isolation_;
  engine::ImageCollector* images_;
  std::string images_error_;  // the last image check's error, logged when it changes
  int rounds_ = 0;
};

}  // namespace taolie::loops
