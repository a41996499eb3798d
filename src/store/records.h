#pragma once
// Rows the agent keeps in PostgreSQL that are the store's own (commands, outbox, GPU rows).
// The domain types it persists (deployments, samples, reports) live in domain/.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "domain/deployment.h"
#include "domain/enums.h"
#include "domain/health_report.h"
#include "domain/metrics.h"
#include "domain/usage.h"

namespace taolie::store {

// The store persists these domain types under their own names.
using domain::Deployment;
using domain::DeploymentState;
using domain::EventKind;
using domain::GpuHealthRow;
using domain::GpuHealthState;
using domain::GpuMetricRow;
using domain::HealthReport;
using domain::HostMetricRow;
using domain::MetricSample;
using domain::PortAllocation;
using domain::Usage;

// An event to the platform, written in the same transaction as the state change it reports.
struct OutboxEvent {
  int64_t id = 0;             // assigned by the store
  std::string deployment_id;  // "" for events not tied to a deployment (e.g. acks)
  EventKind kind = EventKind::kAck;
  std::string path;  // platform path, e.g. "/api/deployments/<id>/success"
  std::string body;  // JSON text (may hold the SSH password until delivered)
  bool ext = false;  // ext endpoint: 404/405 = delivered-unsupported
  SystemTime created_at{};
  int attempts = 0;
  std::string last_error;
};

enum class CommandState { kPending, kDone };

struct CommandRecord {
  std::string command_id;
  std::string command_type;
  std::string payload_json;  // as stored: never with its registry_auth (store/secret_scrub.h)
  // The payload came with a registry_auth that the store did not keep: after a restart the
  // credentials are known only if the platform delivers the command again.
  bool registry_auth_withheld = false;
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
  GpuHealthState health = GpuHealthState::kHealthy;
  bool present = true;        // seen at the last scan
  std::string deployment_id;  // "" = free
  // Set when a rental that held it ended; cleared when NVML shows it idle again (a dirty GPU
  // is never claimed). dirty_after: the deployment whose end made it dirty.
  std::optional<SystemTime> dirty_since;
  std::string dirty_after;
  // Set while the GPU is quarantined (unhealthy: never claimed nor offered until released).
  std::optional<SystemTime> quarantined_since;
  std::string quarantine_reason;
  bool needs_reset = false;  // it returns only after a GPU reset
  // The last reset (the agent's or the operator's): XIDs from before it no longer count.
  std::optional<SystemTime> reset_at;
};

// One XID the driver reported (xid_events), through NVML's event or the kernel log.
struct XidRecord {
  std::string gpu_uuid;  // "" when the kernel named a bus no known GPU is on
  std::string pci_bus_id;
  uint64_t xid = 0;
  std::string source;  // "nvml" | "kmsg"
  SystemTime at{};
  std::string severity;  // gpu/xid_catalog.h's class and remedy, as names
  std::string action;
  std::string message;  // the kernel's line ("" from NVML)
  std::optional<uint32_t> pid;
  std::string process_name;
  std::string deployment_id;  // read back: the rental that held the GPU when it was recorded
};

// Where the kernel-log reader stopped: the boot and one past the last sequence number read.
struct KmsgCursorRow {
  std::string boot_id;
  uint64_t next_seq = 0;
};

}  // namespace taolie::store
