#pragma once
// Applies each health round's quarantine decisions (quarantine.h) to the store: quarantines
// (with `gpu_failed` for a rental's GPU in the same transaction), resets with `nvidia-smi -r`
// where gpu.allow_reset permits, and releases after the healthy time.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "health/health_rules.h"
#include "health/quarantine.h"
#include "host/command_runner.h"
#include "store/store.h"

namespace taolie::health {

class QuarantineKeeper {
 public:
  struct Hooks {
    // The `gpu_failed` event for the rental holding a GPU that turned unhealthy.
    std::function<store::OutboxEvent(const std::string& deployment_id, const GpuHealth& v,
                                     SystemTime now)>
        gpu_failed_event;
    // After that event is recorded: wake the outbox and tell the renter.
    std::function<void(const std::string& deployment_id, const GpuHealth& v)> rental_told;
  };

  // `reset_runner` runs `nvidia-smi -r`; null: the agent never resets a GPU itself (whatever
  // `allow_reset` says).
  QuarantineKeeper(store::Store& store, int clear_seconds, bool allow_reset,
                   host::CommandRunner* reset_runner, Hooks hooks);

  // Quarantines, resets and releases GPUs from this round's verdicts, updating `gpus` (the
  // store's rows) to match; returns the GPUs quarantined after it, with the line their entry
  // shows.
  std::map<std::string, std::string> Apply(const std::vector<GpuHealth>& verdicts,
                                           std::vector<store::GpuRecord>& gpus, SystemTime now);

 private:
  void Quarantine(const GpuHealth& v, const QuarantineDecision& q, store::GpuRecord& rec,
                  SystemTime now);
  void Reset(const GpuHealth& v, store::GpuRecord& rec);
  void Release(const GpuHealth& v, store::GpuRecord& rec);

  store::Store& store_;
  QuarantinePolicy policy_;
  host::CommandRunner* reset_runner_;
  Hooks hooks_;
  std::map<std::string, QuarantineMemory> memory_;  // by GPU uuid
};

}  // namespace taolie::health
