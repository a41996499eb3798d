#pragma once
// Reconciles the store with Docker, at start and every few monitor rounds: running rentals are
// adopted (the monitor watches them), half-done deploys resume from their state, half-done
// endings finish, containers with this agent's labels whose deployment has ended are removed,
// those whose deployment has no row at all (the database was lost) are adopted from their
// labels or ended (agent/adoption.h), and commands recorded but never finished are scheduled again.
// A deployment that a worker is already driving is left to it.
#include <functional>
#include <stop_token>

#include "engine/deployment_runner.h"
#include "engine/rental_context.h"
#include "engine/rental_monitor.h"

namespace taolie::engine {

class Reconciler {
 public:
  using ScheduleCommand = std::function<void(const store::CommandRecord&)>;
  Reconciler(const RentalContext& ctx, DeploymentRunner& runner, RentalMonitor& monitor,
             ScheduleCommand schedule)
      : ctx_(ctx), runner_(runner), monitor_(monitor), schedule_(std::move(schedule)) {}

  Status Run(std::stop_token stop);

 private:
  // Adopts a container of ours that has no row; false when it must be removed instead.
  bool Adopt(const docker::ContainerInfo& listed);
  const RentalContext& ctx_;
  DeploymentRunner& runner_;
  RentalMonitor& monitor_;
  ScheduleCommand schedule_;
};

}  // namespace taolie::engine
