#include "health/gpu_cleanliness.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace taolie::health {

std::optional<GpuBaseline> BaselineFrom(const gpu::GpuSample& s) {
  if (s.lost || !s.memory_used_mb) return std::nullopt;
  return GpuBaseline{*s.memory_used_mb, s.process_pids};
}

DirtyVerdict JudgeDirtyGpu(const DirtyCheck& c) {
  std::vector<std::string> left;
  const gpu::GpuSample& s = *c.sample;
  if (c.baseline == nullptr) {
    left.emplace_back("no baseline of its idle memory yet");
  } else if (s.lost) {
    left.emplace_back("the GPU is lost");
  } else if (!s.memory_used_mb) {
    left.emplace_back("its memory use cannot be read" + (s.error.empty() ? "" : ": " + s.error));
  } else {
    size_t foreign = std::count_if(s.process_pids.begin(), s.process_pids.end(), [&](uint32_t p) {
      return std::find(c.baseline->pids.begin(), c.baseline->pids.end(), p) ==
             c.baseline->pids.end();
    });
    if (foreign > 0) left.push_back(std::to_string(foreign) + " process(es) still on the GPU");
    int64_t limit = static_cast<int64_t>(c.baseline->memory_used_mb) + c.margin_mb;
    if (static_cast<int64_t>(*s.memory_used_mb) > limit) {
      left.push_back("memory " + std::to_string(*s.memory_used_mb) + " MiB used, baseline " +
                     std::to_string(c.baseline->memory_used_mb) + " MiB + margin " +
                     std::to_string(c.margin_mb));
    }
  }
  if (left.empty()) return {GpuCleanliness::kClean, ""};
  std::string reason;
  for (const auto& l : left) reason += (reason.empty() ? "" : "; ") + l;
  reason += "; " + std::to_string(c.dirty_for.count()) + " s after " +
            (c.ended_deployment.empty() ? std::string("its last rental")
                                        : "deployment " + c.ended_deployment) +
            " ended";
  bool held = c.dirty_for >= c.timeout;
  return {held ? GpuCleanliness::kHeldBack : GpuCleanliness::kDirty, reason};
}

void DirtyGpuVerifier::Check(const std::vector<gpu::GpuSample>& samples,
                             const std::vector<store::GpuRecord>& rows) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> dirty;  // uuid -> the rental whose end made it dirty
  std::map<std::string, bool> busy;          // rented or dirty
  for (const auto& r : rows) {
    if (r.dirty_since) dirty[r.uuid] = r.dirty_after;
    busy[r.uuid] = r.dirty_since.has_value() || !r.deployment_id.empty();
  }
  // Baselines first: a GPU free and clean at its first sample gets that sample; one rented or
  // dirty then gets none of its processes and no memory (a rental's use is never a baseline).
  for (const auto& g : samples) {
    if (baselines_.count(g.uuid) > 0) continue;
    if (auto b = busy.find(g.uuid); b != busy.end() && b->second) {
      baselines_[g.uuid] = GpuBaseline{};
    } else if (auto baseline = BaselineFrom(g)) {
      baselines_[g.uuid] = *baseline;
    }
  }
  const auto mono = d_.clock.Monotonic();
  bool cleared = false;
  for (const auto& entry : dirty) {
    const std::string& uuid = entry.first;
    const std::string& after = entry.second;
    auto sample = std::find_if(samples.begin(), samples.end(),
                               [&](const gpu::GpuSample& x) { return x.uuid == uuid; });
    if (sample == samples.end()) {  // absent from NVML: stays dirty, not judged
      judged_dirty_.erase(uuid);
      continue;
    }
    auto base = baselines_.find(uuid);
    DirtyCheck c;
    c.sample = &*sample;
    c.baseline = base == baselines_.end() ? nullptr : &base->second;
    c.margin_mb = d_.cfg.gpu.idle_memory_margin_mb;
    c.dirty_for = std::chrono::duration_cast<std::chrono::seconds>(
        mono - dirty_seen_.emplace(uuid, mono).first->second);
    c.timeout = std::chrono::seconds(d_.cfg.gpu.dirty_timeout_seconds);
    c.ended_deployment = after;
    DirtyVerdict v = JudgeDirtyGpu(c);
    if (v.state == GpuCleanliness::kClean) {
      if (Status st = d_.store.MarkGpuClean(uuid); !st.ok()) {
        runtime::WarnIfError(st, "mark GPU " + uuid + " clean");
        continue;
      }
      spdlog::info("GPU {} is clean after deployment {}{}: rentable again", uuid, after,
                   held_back_.count(uuid) > 0 ? " (it was held back)" : "");
      dirty_seen_.erase(uuid);
      held_back_.erase(uuid);
      judged_dirty_.erase(uuid);
      cleared = true;
      continue;
    }
    judged_dirty_.insert(uuid);
    if (v.state == GpuCleanliness::kHeldBack) {
      if (held_back_.count(uuid) == 0) spdlog::warn("GPU {} held back: {}", uuid, v.reason);
      held_back_[uuid] = v.reason;
    }
  }
  // A GPU cleared elsewhere (or no longer dirty in the store) is no longer held back.
  std::erase_if(held_back_, [&](const auto& h) { return dirty.count(h.first) == 0; });
  std::erase_if(dirty_seen_, [&](const auto& h) { return dirty.count(h.first) == 0; });
  std::erase_if(judged_dirty_, [&](const std::string& u) { return dirty.count(u) == 0; });
  rt_.SetGpusHeldBack(held_back_);
  if (cleared) rt_.claims_generation++;
}

bool DirtyGpuVerifier::VerifyNow() {
  if (!d_.gpus.Available()) return false;
  auto rows = d_.store.ListGpus();
  if (!rows.ok()) return false;
  if (std::none_of(rows->begin(), rows->end(),
                   [](const store::GpuRecord& r) { return r.dirty_since.has_value(); })) {
    return true;  // nothing to verify: no sample needed
  }
  auto samples = d_.gpus.Sample();
  if (!samples.ok()) return false;
  Check(*samples, *rows);
  return true;
}

bool DirtyGpuVerifier::WaitWhile(const std::function<bool()>& waits, std::chrono::seconds max_wait,
                                 const std::stop_token& stop, const std::string& who) {
  const MonoTime start = d_.clock.Monotonic();
  // Bounded by the clock and by a count of one-second rounds (a clock that never moves).
  for (int64_t round = 0; round <= max_wait.count(); ++round) {
    (void)VerifyNow();
    if (!waits()) {
      if (round > 0) {
        spdlog::info(
            "{}: GPUs verified after {} s", who,
            std::chrono::duration_cast<std::chrono::seconds>(d_.clock.Monotonic() - start).count());
      }
      return true;
    }
    if (round == 0) {
      spdlog::info("{}: waiting up to {} s for GPUs under verification after a rental", who,
                   max_wait.count());
    }
    if (d_.clock.Monotonic() - start >= max_wait) break;
    if (!d_.clock.SleepFor(std::chrono::seconds(1), stop)) return false;
  }
  spdlog::info("{}: GPUs still under verification after {} s", who, max_wait.count());
  return false;
}

bool DirtyGpuVerifier::UnderVerification(const std::string& uuid) const {
  std::lock_guard lock(mu_);
  return judged_dirty_.count(uuid) > 0 && held_back_.count(uuid) == 0;
}

}  // namespace taolie::health
