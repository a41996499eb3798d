#pragma once
// Rows the agent keeps in PostgreSQL (plain data, no library types).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace taolie::store {

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

struct DeploymentRecord {
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
  std::string jupyter_token;                // kept: it is part of the URL the renter uses
  SystemTime created_at{};
  std::optional<SystemTime> started_at;  // readiness passed (usage counts from here)
  std::optional<SystemTime> expires_at;  // set when the container starts
  std::optional<SystemTime> warned_at;
  std::optional<SystemTime> ended_at;
  std::string end_status;  // "terminated" | "expired" | "failed"
  std::string end_reason;
  std::string error_stage;  // validate | pull | create | start | readiness
  std::string error;
  SystemTime updated_at{};
};

// An event to the platform, written in the same transaction as the state change it reports.
struct OutboxEvent {
  int64_t id = 0;             // assigned by the store
  std::string deployment_id;  // "" for events not tied to a deployment (e.g. acks)
  std::string kind;           // "success" | "failed" | "expiring" | "terminated" | "ack"
  std::string path;           // platform path, e.g. "/api/deployments/<id>/success"
  std::string body;           // JSON text (may hold the SSH password until delivered)
  bool ext = false;           // ext endpoint: 404/405 = delivered-unsupported
  SystemTime created_at{};
  int attempts = 0;
  std::string last_error;
};

enum class CommandState { kPending, kDone };

struct CommandRecord {
  std::string command_id;
  std::string command_type;
  std::string payload_json;
  CommandState state = CommandState::kPending;
  std::string result;  // succeeded | failed | rejected
  std::string error;
  std::string deployment_id;
  int times_seen = 1;
  SystemTime received_at{};
  std::optional<SystemTime> processed_at;
  std::optional<SystemTime> acked_at;
};

struct GpuRecord {
  std::string uuid;
  int index = 0;
  std::string name;
  uint64_t memory_total_mb = 0;
  std::string pci_bus_id;
  std::string health = "healthy";  // healthy | warning | unhealthy | lost
  bool present = true;             // seen at the last scan
  std::string deployment_id;       // "" = free
};

struct GpuMetricRow {  // one GPU in one sample round
  std::string gpu_uuid;
  int gpu_index = 0;
  std::optional<double> utilization;
  std::optional<int64_t> memory_used_mb;
  std::optional<int64_t> memory_total_mb;
  std::optional<double> temperature_c;
  std::optional<double> power_draw_watts;
  std::optional<double> power_limit_watts;
  std::optional<double> fan_speed_percent;
  std::optional<int64_t> sm_clock_mhz;
  std::optional<int64_t> mem_clock_mhz;
  std::string deployment_id;
};

struct HostMetricRow {
  double cpu_utilization = 0;
  double ram_used_gb = 0;
  double storage_used_gb = 0;
  double network_utilization = 0;
  double upload_mbps = 0;
  double download_mbps = 0;
  int64_t uptime_hours = 0;
};

struct MetricSample {  // one sample round, pushed as one metrics request
  int64_t id = 0;      // assigned by the store
  SystemTime taken_at{};
  HostMetricRow host;
  std::vector<GpuMetricRow> gpus;
};

struct HealthReport {  // one health round (the health loop writes it, health push sends it)
  int64_t id = 0;
  SystemTime checked_at{};
  bool is_healthy = true;
  std::string status;  // available | busy | unhealthy | draining
  bool temperature_ok = true, power_ok = true, network_ok = true, storage_ok = true;
  double gpu_performance_score = 100;
  double system_stability_score = 100;
  std::string details_json;  // per-GPU checks (ext "gpus" list), JSON text
};

// Usage and refund of one rental (agent/billing computes it; messages report it).
struct Usage {
  double reserved_minutes = 0;
  double used_minutes = 0;  // from readiness to stop
  double unused_minutes = 0;
  std::optional<double> price_per_hour;
  std::optional<double> usage_amount;   // cents-rounded
  std::optional<double> refund_amount;  // cents-rounded, never negative
};

struct GpuHealthRow {  // gpu_health_history
  std::string gpu_uuid;
  std::string health;
  std::string checks_json;
};

}  // namespace taolie::store
