#pragma once
// What the rental engine's parts share: the seams, the run-time state, the event builder, the
// readiness probe, the work lanes and the cancellation handles of in-flight deploys.
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/events.h"
#include "engine/pull_tracker.h"
#include "engine/readiness_probe.h"
#include "engine/work_queue.h"
#include "health/gpu_cleanliness.h"
#include "rules/rental_clock.h"
#include "runtime/runtime.h"

namespace taolie::engine {

// Stop sources of deploys that are queued or running, under their deployment id and their
// command id, so a terminate can cancel a deploy before it starts or while it pulls.
class DeployCancels {
 public:
  std::shared_ptr<std::stop_source> Register(const std::string& deployment_id,
                                             const std::string& command_id);
  bool Cancel(const std::string& id);  // true when a deploy was registered under `id`
  void Remove(const std::string& deployment_id, const std::string& command_id);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::stop_source>> by_id_;
};

struct RentalContext {
  runtime::Deps deps;
  runtime::Runtime& rt;
  const EventFactory& events;
  ReadinessProbe& probe;
  WorkQueue& work;
  DeployCancels& cancels;
  PullBoard& pulls;     // the deploys' pulls in progress, for /status
  std::string boot_id;  // the kernel's boot_id, read once: rentals are timed against it
  // GPUs freed by ended rentals, verified at once (agent/gpu_cleanliness.h).
  health::DirtyGpuVerifier& dirty_gpus;

  // Monotonic and wall time now, with the boot they belong to (agent/rules/rental_clock.h).
  rules::ClockReading ReadNow() const { return rules::ReadClock(deps.clock, boot_id); }

  // RecordCommandResult with this context's store, events and outbox wake-up.
  void FinishCommand(const store::CommandRecord& cmd, const std::string& result,
                     const std::string& error, const std::string& deployment_id,
                     std::vector<store::OutboxEvent> extra = {}) const;
  // Finishes the deployment's command when it is still pending (after a resumed deploy).
  void FinishPendingCommand(const std::string& command_id, const std::string& result,
                            const std::string& error, const std::string& deployment_id) const;
};

// Work-queue keys: all work on one deployment is serialised under DeploymentKey.
inline std::string DeploymentKey(const std::string& id) { return "dep:" + id; }

}  // namespace taolie::engine
