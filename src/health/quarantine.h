#pragma once
// Quarantine and recovery of GPUs (issue 8 item 3). Pure: the health loop applies what this
// decides.
//
// An unhealthy verdict quarantines the GPU: it is not claimed nor offered (the store's claim
// skips it) and its entry says why. A rental already on it keeps running: the renter is told
// and the platform decides. The GPU returns to service by itself only after its verdict stayed
// not unhealthy for monitoring.quarantine_clear_seconds; one whose fault needs a reset (an XID
// whose remedy is a reset or a reboot, volatile uncorrectable ECC errors, NVML's recovery
// action, a lost GPU) must first be reset: by the agent when gpu.allow_reset is on and no
// rental holds the GPU (at most once every kResetRetry), even while its verdict is still
// unhealthy (the fault may last until the reset: volatile ECC counts clear only then). An
// operator's own reset is not detected yet: with gpu.allow_reset off such a GPU stays
// quarantined and its entry says it waits for a reset.
// The healthy run restarts after a reset.
#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "health/health_rules.h"
#include "store/records.h"

namespace taolie::health {

inline constexpr std::chrono::minutes kResetRetry{10};

enum class QuarantineAction {
  kNone,
  kQuarantine,  // quarantine (or add needs_reset to a quarantined GPU)
  kReset,       // reset the GPU now (nvidia-smi -r), then record it
  kRelease,     // back in service
};

struct QuarantineMemory {                   // per GPU, kept by the health loop
  std::optional<SystemTime> healthy_since;  // start of the current run not unhealthy
  std::optional<SystemTime> last_reset_attempt;
};

struct QuarantineDecision {
  QuarantineAction action = QuarantineAction::kNone;
  std::string reason;        // kQuarantine: the verdict's reason
  bool needs_reset = false;  // kQuarantine: its fault needs a reset
  std::string status;        // one line for the GPU's entry while quarantined ("" otherwise)
};

struct QuarantinePolicy {
  int clear_seconds = 3600;  // monitoring.quarantine_clear_seconds
  bool allow_reset = false;  // gpu.allow_reset
};

QuarantineDecision DecideQuarantine(const store::GpuRecord& gpu, const GpuHealth& verdict,
                                    const QuarantinePolicy& policy, SystemTime now,
                                    QuarantineMemory& mem);

}  // namespace taolie::health
