#pragma once
// A rental as the agent drives it: its lifecycle state, its claimed ports and GPUs, its times.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace taolie::domain {

// Deployment lifecycle. Order matters: a deployment only moves forward.
enum class DeploymentState {
  kAccepted,   // validated and recorded; GPUs and ports claimed in the same transaction
  kPulling,    // intent: pull image
  kCreating,   // intent: create container (name deployment-<id>)
  kStarting,   // container created (container_id set); intent: start
  kReadiness,  // started; waiting for SSH/Jupyter to answer
  kRunning,    // ready; success event queued
  kStopping,   // intent: stop + remove (end_status/end_reason set)
  kEnded,      // container gone, GPUs/ports released; end_status says how
};
const char* DeploymentStateName(DeploymentState s);
std::optional<DeploymentState> ParseDeploymentState(const std::string& s);

struct PortAllocation {
  int host_port = 0;
  int container_port = 0;
  std::string role;  // "ssh" | "rental_port_1" | "rental_port_2" | "range"
};

struct Deployment {
  std::string id;
  std::string command_id;
  std::string user_id;
  std::string template_id;
  std::string image;
  DeploymentState state = DeploymentState::kAccepted;
  std::string spec_json;  // the validated, normalised deploy spec (JSON text), no secrets
  std::string container_id;
  std::string container_name;
  std::vector<std::string> gpu_uuids;
  std::vector<PortAllocation> ports;
  int duration_minutes = 60;
  std::optional<double> price_per_hour;
  std::string ssh_username;
  std::optional<std::string> ssh_password;  // scrubbed (NULL) once `success` is delivered
  std::string jupyter_token;                // emptied once `success` is delivered
  SystemTime created_at{};
  std::optional<SystemTime> started_at;  // readiness passed (usage counts from here)
  std::optional<SystemTime> expires_at;  // set when the container starts
  std::optional<SystemTime> warned_at;
  std::optional<SystemTime> ended_at;
  // The rental's clock (agent/rules/rental_clock.h): time elapsed since the container was
  // created, measured on the monotonic clock and checkpointed with the boot it was measured in.
  // Expiry, the warning and the bill come from it; the wall times above are informative.
  std::string clock_boot_id;  // "" = not started
  int64_t clock_mono_ns = 0;
  SystemTime clock_wall{};
  int64_t elapsed_ms = 0;
  std::optional<int64_t> ready_elapsed_ms;  // elapsed when readiness passed (usage from here)
  std::string end_status;                   // "terminated" | "expired" | "failed"
  std::string end_reason;
  std::string error_stage;  // validate | pull | create | start | readiness
  std::string error;
  SystemTime updated_at{};
};

}  // namespace taolie::domain
