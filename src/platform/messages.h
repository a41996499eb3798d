#pragma once
// JSON bodies the agent sends to the platform and parsing of its answers
// (platform-api.md). Pure functions: no I/O, no clock; only std types in this header.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/time_format.h"
#include "domain/deployment.h"
#include "domain/health_report.h"
#include "domain/metrics.h"
#include "domain/usage.h"
#include "gpu/gpu_probe.h"
#include "host/host_probe.h"

namespace taolie::platform {

// ---- 1. Registration ----------------------------------------------------------------------
struct RegistrationInput {
  std::string agent_id, agent_version, docker_version, public_ip, location;
  std::string port_range;  // "30000-30999" or "" (omitted)
  // ssh_port, rental_port_1 and rental_port_2 are compat keys and always sent (0 when not
  // configured); rental_port_3 is ext and omitted when 0.
  int ssh_port = 0, rental_port_1 = 0, rental_port_2 = 0, rental_port_3 = 0;
  host::HostFacts host;
  gpu::DriverInfo driver;
  std::vector<gpu::GpuInfo> gpus;
  double upload_mbps = 0, download_mbps = 0, latency_ms = 0;  // 0 = unknown
  SystemTime now{};  // used for last_reboot when host.boot_time_unix is unknown (0)
  TimestampFormat ts = TimestampFormat::kNaive;
};
std::string BuildRegisterBody(const RegistrationInput& in);

struct RegisterResult {
  std::string gpu_uuid;
  std::string message;
};
// 200/201, or 409 carrying gpu_uuid -> ok. 401 -> PermissionDenied; 422 -> InvalidArgument with
// the body's `error`; anything else -> Unavailable.
Result<RegisterResult> ParseRegisterResponse(long status, const std::string& body);

// ---- 2. Heartbeat -------------------------------------------------------------------------
// ext: whether rentals are isolated (own network + firewall). Sent as `isolation_ok` (bool)
// and, when not ok, `isolation_error` (string); nothing when not `known`.
struct HeartbeatIsolation {
  bool known = false;
  bool ok = false;
  std::string error;
};
std::string BuildHeartbeatBody(const std::string& agent_id, SystemTime now, TimestampFormat ts,
                               const std::string& status, const std::string& agent_version,
                               int active_deployments, int available_gpus, int64_t uptime_seconds,
                               const HeartbeatIsolation& isolation = {});

// ---- 3. Commands --------------------------------------------------------------------------
struct PlatformCommand {
  std::string command_id;    // always acknowledgeable (IsAcknowledgeableCommandId)
  std::string command_type;  // lowercased; "" when missing or not a string
  std::string payload_json;  // compact JSON text: an object, "{}" when absent, raw when malformed
  // Non-empty: the element is malformed but has an id, so it is recorded and acknowledged
  // "rejected" with this reason, and nothing else is done (e.g. a bad command_type).
  std::string rejection;
};
// One malformed element of a poll: skipped (no usable command_id) or handed on for rejection.
struct CommandProblem {
  // Identifies the element across polls (its raw bytes in the poll body, hashed), so that the
  // same bad element re-delivered every poll is logged once.
  uint64_t key = 0;
  // Printable: ids escaped and truncated (EscapeForLog), e.g.
  // `commands[0] (command_id "aaaa…"): skipped: command_id is 3000 characters, over 128`.
  std::string message;
  bool skipped = false;  // true: no ack possible; false: acknowledged "rejected"
};
struct ParsedCommands {
  std::vector<PlatformCommand> commands;  // in poll order, the rejected ones included
  std::vector<CommandProblem> errors;     // one per malformed element
};
// InvalidArgument when the body is not JSON or not an object with a `commands` array. A bad
// element never fails the whole poll. An element nested deeper than kMaxJsonDepth
// (common/json_bounds.h) is never parsed into a tree: with a usable command_id at its top level
// it is handed on with a rejection ("payload nested N levels deep, over the limit of 64"),
// otherwise skipped.
Result<ParsedCommands> ParseCommands(const std::string& body);

// The longest command_id the agent records and acknowledges.
inline constexpr size_t kMaxCommandIdLength = 128;
// "" when `id` can be recorded and used in the ack path, else why not: empty, over
// kMaxCommandIdLength bytes, a control character (C0, DEL, C1) or NUL, "." or "..".
std::string CommandIdProblem(const std::string& id);
inline bool IsAcknowledgeableCommandId(const std::string& id) {
  return CommandIdProblem(id).empty();
}
// For log lines: control characters, DEL and backslash as \xNN / \\, at most `max_chars`
// UTF-8 characters, then "…" when cut.
std::string EscapeForLog(const std::string& s, size_t max_chars = 64);

// ---- 4. Acknowledgement -------------------------------------------------------------------
// status "processed"; `error` and `deployment_id` omitted when empty.
std::string BuildAckBody(SystemTime now, TimestampFormat ts, const std::string& result,
                         const std::string& error, const std::string& deployment_id);

// ---- 5. Metrics ---------------------------------------------------------------------------
std::string BuildMetricsBody(const std::string& agent_id, const std::string& platform_gpu_uuid,
                             const domain::MetricSample& sample, TimestampFormat ts);

// ---- 6. Health ----------------------------------------------------------------------------
std::string BuildHealthBody(const std::string& agent_id, const std::string& platform_gpu_uuid,
                            const domain::HealthReport& report, SystemTime now, TimestampFormat ts);

// ---- 7. Deployment events -----------------------------------------------------------------
struct AccessInfo {
  std::string public_ip;
  std::string ssh_username, ssh_password;
  int ssh_port = 0;                  // 0 = no ssh (the `ssh` object is omitted)
  std::map<int, int> port_mappings;  // container port -> host port really bound
  int jupyter_host_port = 0;         // 0 = rental_ports.port_1 omitted
  std::string jupyter_token;
  int custom_host_port = 0;  // 0 = rental_ports.port_2 omitted
};
std::string BuildSuccessBody(const std::string& deployment_id, const std::string& container_id,
                             const AccessInfo& access, const std::vector<std::string>& gpu_uuids,
                             SystemTime started_at, SystemTime expires_at, TimestampFormat ts);
// Replaces access_info.ssh.password with "" (structure kept). Other text is returned unchanged.
std::string ScrubSecretsFromBody(const std::string& body);

std::string BuildFailedBody(const std::string& deployment_id, const std::string& stage,
                            const std::string& error, SystemTime now, TimestampFormat ts);
std::string BuildExpiringBody(const std::string& deployment_id, SystemTime expires_at,
                              int64_t seconds_left, TimestampFormat ts);
// started_at null when the deployment never became ready; price_per_hour, usage_amount and
// refund_amount only when usage.price_per_hour is set.
std::string BuildTerminatedBody(const std::string& deployment_id, const std::string& status,
                                const std::string& reason, std::optional<SystemTime> started_at,
                                SystemTime ended_at, const domain::Usage& usage,
                                TimestampFormat ts);

// `gpu_failed` (ext): a GPU the rental holds turned unhealthy; xid null when no XID caused it.
std::string BuildGpuFailedBody(const std::string& deployment_id, const std::string& gpu_uuid,
                               const std::string& health, const std::string& reason,
                               std::optional<uint64_t> xid, SystemTime now, TimestampFormat ts);

// ---- Paths (ids are percent-escaped) -------------------------------------------------------
std::string RegisterPath();
std::string HeartbeatPath(const std::string& agent_id);
std::string CommandsPath(const std::string& agent_id);
std::string AckPath(const std::string& agent_id, const std::string& command_id);
std::string MetricsPath();
std::string HealthPath();
// kind: "success" | "failed" | "expiring" | "terminated" | "gpu_failed"
std::string DeploymentEventPath(const std::string& deployment_id, const std::string& kind);
// Percent-escapes everything except RFC 3986 unreserved characters.
std::string EscapePathSegment(const std::string& s);

}  // namespace taolie::platform
