#include "health/quarantine.h"

#include <fmt/format.h>

namespace taolie::health {

namespace {

// A GPU quarantined with needs_reset: reset by the agent when it may (gpu.allow_reset, no
// rental on it, the last attempt kResetRetry ago), whatever this round's verdict. A fault
// that needs a reset often lasts until one (volatile ECC counts clear only then).
QuarantineDecision ResetOrWait(const store::GpuRecord& gpu, const QuarantinePolicy& policy,
                               SystemTime now, QuarantineMemory& mem) {
  QuarantineDecision d;
  mem.healthy_since.reset();
  const bool in_use = !gpu.deployment_id.empty();
  const bool due = !mem.last_reset_attempt || now - *mem.last_reset_attempt >= kResetRetry;
  if (policy.allow_reset && !in_use && due) {
    mem.last_reset_attempt = now;
    d.action = QuarantineAction::kReset;
  }
  d.status = "quarantined (" + gpu.quarantine_reason + "): waits for a GPU reset" +
             (!policy.allow_reset ? " by the operator (gpu.allow_reset is off)"
              : in_use            ? " once its rental ends"
                                  : "");
  return d;
}

}  // namespace

QuarantineDecision DecideQuarantine(const store::GpuRecord& gpu, const GpuHealth& verdict,
                                    const QuarantinePolicy& policy, SystemTime now,
                                    QuarantineMemory& mem) {
  QuarantineDecision d;
  const bool quarantined = gpu.quarantined_since.has_value();
  if (verdict.health == "unhealthy") {
    mem.healthy_since.reset();
    const std::string reason = verdict.reason.empty() ? "unhealthy" : verdict.reason;
    // Written when it starts and when it comes to need a reset (not every round's wording).
    if (!quarantined || (verdict.needs_reset && !gpu.needs_reset)) {
      d.action = QuarantineAction::kQuarantine;
      d.reason = reason;
      d.needs_reset = verdict.needs_reset;
      d.status = "quarantined: " + reason;
      return d;
    }
    if (gpu.needs_reset) return ResetOrWait(gpu, policy, now, mem);
    d.status = "quarantined: " + reason;
    return d;
  }
  if (!quarantined) {
    mem = QuarantineMemory{};
    return d;
  }
  if (gpu.needs_reset) return ResetOrWait(gpu, policy, now, mem);
  if (!mem.healthy_since) mem.healthy_since = now;
  const auto healthy_for =
      std::chrono::duration_cast<std::chrono::seconds>(now - *mem.healthy_since).count();
  if (healthy_for >= policy.clear_seconds) {
    d.action = QuarantineAction::kRelease;
    mem = QuarantineMemory{};
    return d;
  }
  d.status = fmt::format("quarantined ({}): healthy for {} s of the {} s that release it",
                         gpu.quarantine_reason, healthy_for, policy.clear_seconds);
  return d;
}

}  // namespace taolie::health
