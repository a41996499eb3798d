#include "loops/health_push_loop.h"

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

Status HealthPushLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();
  auto reports = d_.store.UnpushedHealthReports(30);
  if (!reports.ok()) return reports.error();
  std::vector<int64_t> done;
  Status result = OkStatus();
  for (const auto& h : *reports) {
    if (stop.stop_requested()) break;
    auto body = platform::BuildHealthBody(rt_.agent_id(), rt_.platform_gpu_uuid(), h,
                                          d_.clock.Now(), rt_.ts());
    auto r = d_.api.Send(platform::Method::kPost, platform::HealthPath(), body, stop);
    if (Cancelled(r)) break;
    auto disp = platform::Classify(r, false);
    if (disp == platform::Disposition::kSuccess || disp == platform::Disposition::kPermanent) {
      if (disp == platform::Disposition::kPermanent)
        spdlog::warn("health push: report {} refused, dropped", h.id);
      done.push_back(h.id);
    } else {
      rt_.platform_errors++;
      result = HttpError(r, "health push");
      break;
    }
  }
  if (!done.empty()) TAOLIE_RETURN_IF_ERROR(d_.store.MarkHealthReportsPushed(done));
  return result;
}

}  // namespace taolie::loops
