#include "health/quarantine_keeper.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace taolie::health {

QuarantineKeeper::QuarantineKeeper(store::Store& store, int clear_seconds, bool allow_reset,
                                   host::CommandRunner* reset_runner, Hooks hooks)
    : store_(store), reset_runner_(reset_runner), hooks_(std::move(hooks)) {
  policy_.clear_seconds = clear_seconds;
  policy_.allow_reset = allow_reset && reset_runner_ != nullptr;
}

std::map<std::string, std::string> QuarantineKeeper::Apply(const std::vector<GpuHealth>& verdicts,
                                                           std::vector<store::GpuRecord>& gpus,
                                                           SystemTime now) {
  std::map<std::string, std::string> out;
  for (const auto& v : verdicts) {
    auto rec = std::find_if(gpus.begin(), gpus.end(),
                            [&](const store::GpuRecord& g) { return g.uuid == v.uuid; });
    if (rec == gpus.end()) continue;
    QuarantineDecision q = DecideQuarantine(*rec, v, policy_, now, memory_[v.uuid]);
    switch (q.action) {
      case QuarantineAction::kNone:
        break;
      case QuarantineAction::kQuarantine:
        Quarantine(v, q, *rec, now);
        break;
      case QuarantineAction::kReset:
        Reset(v, *rec);
        break;
      case QuarantineAction::kRelease:
        Release(v, *rec);
        break;
    }
    if (rec->quarantined_since && !q.status.empty()) out[v.uuid] = q.status;
  }
  return out;
}

void QuarantineKeeper::Quarantine(const GpuHealth& v, const QuarantineDecision& q,
                                  store::GpuRecord& rec, SystemTime now) {
  // A rental's GPU failing: the platform hears gpu_failed in the same transaction as the
  // quarantine (once per quarantine); the rental keeps running and the renter is told.
  const bool rented_failure = !rec.quarantined_since && !rec.deployment_id.empty();
  std::vector<store::OutboxEvent> events;
  if (rented_failure && hooks_.gpu_failed_event) {
    events.push_back(hooks_.gpu_failed_event(rec.deployment_id, v, now));
  }
  if (Status st = store_.QuarantineGpu(v.uuid, q.reason, q.needs_reset, events); !st.ok()) {
    spdlog::warn("GPU {}: could not record its quarantine: {}", v.uuid, st.error().ToString());
    return;
  }
  if (rented_failure && hooks_.rental_told) hooks_.rental_told(rec.deployment_id, v);
  if (!rec.quarantined_since) {
    spdlog::warn(
        "GPU {} ({}) quarantined: {}{}{}", v.index, v.uuid, q.reason,
        q.needs_reset ? "; it needs a reset" : "",
        rec.deployment_id.empty() ? "" : "; rental " + rec.deployment_id + " on it keeps running");
    rec.quarantined_since = now;
  }
  rec.quarantine_reason = q.reason;
  rec.needs_reset = rec.needs_reset || q.needs_reset;
}

void QuarantineKeeper::Reset(const GpuHealth& v, store::GpuRecord& rec) {
  spdlog::info("GPU {} ({}): resetting it (gpu.allow_reset, no rental on it)", v.index, v.uuid);
  auto r = reset_runner_->Run({"nvidia-smi", "-r", "-i", v.uuid}, "", std::chrono::seconds(60));
  if (!r.ok() || r->exit_code != 0) {
    spdlog::warn("GPU {}: reset failed: {}", v.uuid,
                 r.ok() ? r->output.substr(0, 300) : r.error().message);
  } else if (Status st = store_.MarkGpuReset(v.uuid); !st.ok()) {
    spdlog::warn("GPU {}: reset, but not recorded (tried again in {} min): {}", v.uuid,
                 kResetRetry.count(), st.error().ToString());
  } else {
    rec.needs_reset = false;
    spdlog::info("GPU {}: reset; back in service after {} s healthy", v.uuid,
                 policy_.clear_seconds);
  }
}

void QuarantineKeeper::Release(const GpuHealth& v, store::GpuRecord& rec) {
  if (Status st = store_.ReleaseGpu(v.uuid); !st.ok()) {
    spdlog::warn("GPU {}: could not record its release from quarantine: {}", v.uuid,
                 st.error().ToString());
    return;
  }
  spdlog::info("GPU {} ({}) released from quarantine: healthy for {} s", v.index, v.uuid,
               policy_.clear_seconds);
  rec.quarantined_since.reset();
  rec.quarantine_reason.clear();
  rec.needs_reset = false;
}

}  // namespace taolie::health
