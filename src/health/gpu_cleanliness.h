#pragma once
// After a rental ends its GPUs are dirty: never claimed until NVML shows none of the rental's
// processes and its memory freed. Pure rules first (table-tested); then DirtyGpuVerifier,
// which applies them: to every sample of the GPU metrics loop, at once when a rental ends, at
// start-up to the GPUs found dirty, and while a deploy waits for a GPU under verification
// (issue 17 item 7). The store keeps the dirty mark (gpu_status.dirty_since).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "gpu/gpu_probe.h"
#include "runtime/runtime.h"
#include "store/records.h"

namespace taolie::health {

// A GPU as the agent found it at start: its first successful sample. Processes running then
// (the owner's display server, a monitoring tool) belong to the baseline, not to a rental.
struct GpuBaseline {
  uint64_t memory_used_mb = 0;
  std::vector<uint32_t> pids;
};

// The baseline from a sample; none when the sample has no memory reading (lost, error).
std::optional<GpuBaseline> BaselineFrom(const gpu::GpuSample& s);

enum class GpuCleanliness { kClean, kDirty, kHeldBack };

struct DirtyVerdict {
  GpuCleanliness state = GpuCleanliness::kDirty;
  std::string reason;  // why it is not clean, "" when clean
};

struct DirtyCheck {
  const gpu::GpuSample* sample = nullptr;
  const GpuBaseline* baseline = nullptr;  // null: none taken yet (never clean then)
  int64_t margin_mb = 256;                // gpu.idle_memory_margin_mb
  std::chrono::seconds dirty_for{0};      // how long it has been dirty
  std::chrono::seconds timeout{300};      // gpu.dirty_timeout_seconds
  std::string ended_deployment;           // the rental whose end made it dirty ("" unknown)
};

// Clean when the sample shows no process that was not there at the baseline and used memory
// at most baseline + margin. Otherwise dirty, held back once dirty_for reaches the timeout;
// the reason names what is left ("2 process(es) still on the GPU; memory 3000 MiB used,
// baseline 0 MiB + margin 256; 300 s after deployment d-1 ended").
DirtyVerdict JudgeDirtyGpu(const DirtyCheck& c);

// How long a deploy waits for GPUs under verification before admission refuses it.
inline constexpr std::chrono::seconds kGpuVerificationWait{30};

// The dirty GPUs' verification, shared by the GPU metrics loop, the rental ender, start-up and
// the deploy lane; thread-safe (one check at a time). It keeps each GPU's baseline (taken at
// its first sample here: a GPU rented or dirty then gets an empty one), when this run first
// saw each GPU dirty, and the GPUs held back (published to Runtime::SetGpusHeldBack). A GPU
// found clean is cleared in the store and Runtime::claims_generation is bumped.
class DirtyGpuVerifier {
 public:
  DirtyGpuVerifier(runtime::Deps deps, runtime::Runtime& rt) : d_(std::move(deps)), rt_(rt) {}

  // Judges every GPU that `rows` (the store's GPU list) marks dirty against `samples`.
  void Check(const std::vector<gpu::GpuSample>& samples, const std::vector<store::GpuRecord>& rows);
  // Reads the store's GPU list and samples the GPUs now, then Check: a GPU freed by a rental
  // is verified at once, not at the next metrics round. False when the GPUs or the store could
  // not be read (nothing judged).
  bool VerifyNow();
  // Dirty in the last check and judged so, but not held back yet: still worth waiting for
  // (its memory may be freed in a moment). False for a GPU not judged in this run.
  bool UnderVerification(const std::string& uuid) const;
  // A deploy's wait for GPUs under verification: verifies now and then every second while
  // `waits()` holds, at most `max_wait` of clock time or until `stop`. True when `waits()`
  // turned false (verified, or nothing to wait for), false when the time ran out or stopped.
  // `who` names the waiter in the log (only when it does wait).
  bool WaitWhile(const std::function<bool()>& waits, std::chrono::seconds max_wait,
                 const std::stop_token& stop, const std::string& who);

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
  mutable std::mutex mu_;
  std::map<std::string, GpuBaseline> baselines_;
  std::map<std::string, MonoTime> dirty_seen_;    // first seen dirty in this run
  std::map<std::string, std::string> held_back_;  // uuid -> why
  std::set<std::string> judged_dirty_;            // judged dirty at the last check
};

}  // namespace taolie::health
