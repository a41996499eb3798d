#include "loops/heartbeat_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "engine/events.h"
#include "engine/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "isolation/rental_isolation.h"
#include "loops/loop_helpers.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::loops {

Status HeartbeatLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();  // the registration loop goes first
  auto up =
      std::chrono::duration_cast<std::chrono::seconds>(d_.clock.Monotonic() - started_).count();
  platform::HeartbeatIsolation isolation;
  if (const isolation::RentalIsolation* iso = rt_.isolation(); iso != nullptr) {
    isolation::IsolationStatus s = iso->Current();
    isolation = {true, s.ok, s.error};
  }
  std::string body = platform::BuildHeartbeatBody(
      rt_.agent_id(), d_.clock.Now(), rt_.ts(), rt_.draining() ? "draining" : "online",
      rt_.version(), rt_.active_deployments, rt_.available_gpus, up, isolation);
  auto r =
      d_.api.Send(platform::Method::kPost, platform::HeartbeatPath(rt_.agent_id()), body, stop);
  if (platform::Classify(r, false) != platform::Disposition::kSuccess) {
    rt_.platform_errors++;
    return HttpError(r, "heartbeat");
  }
  rt_.MarkPlatformOk(d_.clock.Now());
  return OkStatus();
}

}  // namespace taolie::loops
