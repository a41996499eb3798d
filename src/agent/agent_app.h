#pragma once
// Composition root: builds the concrete adapters from the config, reconciles, registers and
// runs the loops until Stop(). The only place that knows concrete types.
#include <chrono>
#include <memory>
#include <stop_token>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "loops/liveness.h"

namespace taolie::agent {

class AgentApp {
 public:
  static Result<std::unique_ptr<AgentApp>> Create(const config::Config& cfg,
                                                  const std::string& version);
  ~AgentApp();

  // Takes the GPU inventory, reconciles with Docker and starts the loops and the status
  // endpoint; never waits on the platform (the registration loop registers, and what needs
  // the platform's ids waits for it).
  Status Start();
  // Stops accepting work, stops loops and workers; renters' containers keep running.
  void Stop();
  // SIGHUP: takes a new API key (the operator fixed agent.api_key) and re-sends the
  // registration at once.
  void Reload(const std::string& api_key);
  const std::string& agent_id() const;

  // Whether every loop finishes its rounds (liveness.h): feeds systemd's watchdog and /healthz.
  loops::Liveness CheckLiveness() const;
  // One line for systemd's STATUS=: the platform link, rentals, GPUs, draining, stuck loops.
  std::string StatusLine() const;
  // Drain: finish the current rentals, accept no new one (a deploy is acked "rejected",
  // reason "draining"); the heartbeat and health say "draining". Kept in the database, so it
  // survives a restart. Fails only when the database cannot record it.
  Status SetDraining(bool draining);

  struct Impl;  // public so the status providers in agent_app.cc can see it

 private:
  explicit AgentApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taolie::agent
