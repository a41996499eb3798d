#pragma once
// The rental engine's parts, built once and wired together: the command handler (poll loop),
// the runner (deploy lane), the monitor and the reconciler (duration monitor loop). It owns
// them and the work lanes; it coordinates nothing itself.
#include <memory>

#include "engine/command_handler.h"
#include "engine/deployment_runner.h"
#include "engine/reconciler.h"
#include "engine/rental_context.h"
#include "engine/rental_monitor.h"

namespace taolie::engine {

struct RentalEngineOptions {
  int deploy_threads = 3;  // concurrent deploys (pulls, readiness)
  int stop_threads = 2;    // concurrent endings: never behind a deploy
};

class RentalEngine {
 public:
  RentalEngine(runtime::Deps deps, runtime::Runtime& rt, ReadinessProbe& probe,
               RentalEngineOptions options = {})
      : events_(deps.clock, rt.agent_id(), rt.ts()),
        dirty_gpus_(deps, rt),
        work_(options.deploy_threads, options.stop_threads),
        ctx_{deps, rt, events_, probe, work_, cancels_, pulls_, deps.host.BootId(), dirty_gpus_},
        runner_(ctx_),
        monitor_(ctx_),
        commands_(ctx_, runner_),
        reconciler_(ctx_, runner_, monitor_,
                    [this](const store::CommandRecord& c) { commands_.Schedule(c); }) {}

  CommandHandler& commands() { return commands_; }
  RentalMonitor& monitor() { return monitor_; }
  Reconciler& reconciler() { return reconciler_; }
  DeploymentRunner& runner() { return runner_; }
  WorkQueue& work() { return work_; }
  PullBoard& pulls() { return pulls_; }
  health::DirtyGpuVerifier& dirty_gpus() { return dirty_gpus_; }
  const RentalContext& context() const { return ctx_; }
  void Shutdown() { work_.Shutdown(); }

 private:
  EventFactory events_;
  health::DirtyGpuVerifier dirty_gpus_;
  DeployCancels cancels_;
  PullBoard pulls_;
  WorkQueue work_;
  RentalContext ctx_;
  DeploymentRunner runner_;
  RentalMonitor monitor_;
  CommandHandler commands_;
  Reconciler reconciler_;
};

}  // namespace taolie::engine
