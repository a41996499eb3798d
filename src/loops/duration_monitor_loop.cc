#include "loops/duration_monitor_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "engine/events.h"
#include "engine/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "loops/loop_helpers.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::loops {

Status DurationMonitorLoop::RunOnce(std::stop_token stop) {
  // Reconcile with Docker every 10th round (5 min at the default interval).
  // A reconcile that fails (Docker or the database away) never skips the monitor's round.
  Status reconciled = OkStatus();
  if (++rounds_ % 10 == 0) reconciled = reconciler_.Run(stop);
  Status checked = monitor_.CheckOnce(stop);
  // Isolation failures are logged and shown by RentalIsolation itself (and refuse new
  // rentals); they never hold back the monitor.
  if (isolation_ != nullptr) (void)isolation_->Ensure();
  // Image collection never holds back the monitor either: its error is logged when it changes.
  if (images_ != nullptr) {
    Status gc = images_->RunOnce();
    std::string error = gc.ok() ? "" : gc.error().ToString();
    if (!error.empty() && error != images_error_) spdlog::warn("image gc: check failed: {}", error);
    images_error_ = std::move(error);
  }
  return checked.ok() ? reconciled : checked;
}

}  // namespace taolie::loops
