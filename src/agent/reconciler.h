#pragma once
// Reconciles the store with Docker, at start and every few monitor rounds: running rentals are
// adopted (the monitor watches them), half-done deploys resume from their state, half-done
// endings finish, containers with this agent's labels that no active deployment owns are
// removed, and commands recorded but never finished are scheduled again. A deployment that a
// worker is already driving is left to it.
#include <functional>
#include <stop_token>

#include "agent/deployment_runner.h"
#include "agent/rental_context.h"
#include "agent/rental_monitor.h"

namespace taolie::agent {

class Reconciler {
 public:
  using ScheduleCommand = std::function<void(const store::CommandRecord&)>;
  Reconciler(const RentalContext& ctx, DeploymentRunner& runner, RentalMonitor& monitor,
             ScheduleCommand schedule)
      : ctx_(ctx), runner_(runner), monitor_(monitor), schedule_(std::move(schedule)) {}

  Status Run(std::stop_token stop);

 private:
  const RentalContext& ctx_;
  DeploymentRunner& runner_;
  RentalMonitor& monitor_;
  ScheduleCommand schedule_;
};

}  // namespace taolie::agent
