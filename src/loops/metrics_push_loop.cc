#include "loops/metrics_push_loop.h"

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

Status MetricsPushLoop::RunOnce(std::stop_token stop) {
  if (!rt_.registered()) return OkStatus();  // kept in the database until registration succeeds
  // After an outage, catch up several batches per round (bounded), oldest first.
  for (int batch = 0; batch < 10 && !stop.stop_requested(); ++batch) {
    auto more = PushBatch(stop);
    if (!more.ok()) return more.error();
    if (!*more) break;
  }
  return OkStatus();
}

Result<bool> MetricsPushLoop::PushBatch(std::stop_token stop) {
  constexpr int kBatch = 30;
  auto samples = d_.store.UnpushedMetricSamples(kBatch);
  if (!samples.ok()) return samples.error();
  std::vector<int64_t> done;
  Status result = OkStatus();
  for (const auto& s : *samples) {
    if (stop.stop_requested()) break;
    auto body = platform::BuildMetricsBody(rt_.agent_id(), rt_.platform_gpu_uuid(), s, rt_.ts());
    auto r = d_.api.Send(platform::Method::kPost, platform::MetricsPath(), body, stop);
    if (Cancelled(r)) break;
    auto disp = platform::Classify(r, false);
    if (disp == platform::Disposition::kSuccess) {
      done.push_back(s.id);
    } else if (disp == platform::Disposition::kPermanent) {
      spdlog::warn("metrics push: sample {} refused, dropped: {}", s.id,
                   HttpError(r, "metrics").error().message);
      done.push_back(s.id);
    } else {
      rt_.platform_errors++;
      result = HttpError(r, "metrics push");
      break;
    }
  }
  if (!done.empty()) {
    rt_.MarkPlatformOk(d_.clock.Now());
    TAOLIE_RETURN_IF_ERROR(d_.store.MarkMetricSamplesPushed(done));
  }
  if (!result.ok()) return result.error();
  return static_cast<int>(samples->size()) == kBatch && static_cast<int>(done.size()) == kBatch;
}

}  // namespace taolie::loops
