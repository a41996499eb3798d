#include "store/transitions.h"

namespace taolie::store {

Status CheckEventsForTransition(const domain::Deployment& current, const domain::Deployment& next,
                                const std::vector<OutboxEvent>& events) {
  using domain::DeploymentState;
  using domain::EventKind;
  for (const auto& e : events) {
    if (e.deployment_id != next.id) continue;
    switch (e.kind) {
      case EventKind::kSuccess:
        if (current.state != DeploymentState::kReadiness ||
            next.state != DeploymentState::kRunning) {
          return MakeError(ErrorCode::kFailedPrecondition,
                           "deployment " + next.id + ": success already reported or not ready (" +
                               domain::DeploymentStateName(current.state) + ")");
        }
        break;
      case EventKind::kExpiring:
        if (current.warned_at) {
          return MakeError(ErrorCode::kFailedPrecondition,
                           "deployment " + next.id + ": expiry warning already sent");
        }
        break;
      case EventKind::kTerminated:
      case EventKind::kFailed:
        if (next.state == DeploymentState::kEnded && current.state == DeploymentState::kEnded) {
          return MakeError(ErrorCode::kFailedPrecondition,
                           "deployment " + next.id + ": ending already reported");
        }
        break;
      case EventKind::kAck:
      case EventKind::kGpuFailed:
        break;
    }
  }
  return OkStatus();
}

}  // namespace taolie::store
