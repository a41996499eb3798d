#pragma once
// Invariants of a deployment update that every Store enforces (pure): a deployment reports
// `success` once (only on its move from readiness to running), `expiring` once (only while it
// was not yet warned), and its ending once (only on its move into kEnded). A stale copy of a
// deployment therefore can never emit a second report.
#include <vector>

#include "common/result.h"
#include "domain/deployment.h"
#include "store/records.h"

namespace taolie::store {

Status CheckEventsForTransition(const domain::Deployment& current, const domain::Deployment& next,
                                const std::vector<OutboxEvent>& events);

}  // namespace taolie::store
