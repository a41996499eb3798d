#pragma once
// `taolie-host-agent doctor`: a pre-flight check of everything the agent depends on, run
// without the agent. One line per check, OK / WARN / FAIL with what to do; the exit status is 1
// when any line is FAIL (docs/doctor.md lists every line).
//
// Each check is a function of the configuration, the seams it talks through (Environment) and
// what earlier checks found (Findings: the GPUs, Docker's data root, the agent id, ...), so unit
// tests drive them with fakes. RunDoctor runs them in order, each on a worker thread with a
// deadline: a dependency that hangs makes its line FAIL and the others still run.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "config/config_loader.h"
#include "docker/docker_client.h"
#include "gpu/gpu_probe.h"
#include "platform/platform_api.h"
#include "store/pg_probe.h"

namespace taolie::doctor {

enum class Level { kOk, kWarn, kFail };
std::string_view LevelName(Level level);  // "OK", "WARN", "FAIL"

struct Check {
  std::string name;  // "config", "nvml", "docker", ...
  Level level = Level::kOk;
  std::string message;  // what was found (never a secret)
  std::string fix;      // what to do; "" when nothing is to be done
};

// "FAIL docker       cannot reach ... -- fix: ..." (one line, no newline).
std::string FormatLine(const Check& check);
// {"verdict": "FAIL", "exit_code": 1, "checks": [{"name", "level", "message", "fix"}...]}
std::string FormatJson(const std::vector<Check>& checks);
// 1 when any check is FAIL, else 0.
int ExitCode(const std::vector<Check>& checks);
// "OK" / "WARN" / "FAIL": the worst level.
Level Verdict(const std::vector<Check>& checks);

// The kernel's clock discipline (adjtimex).
struct ClockStatus {
  bool unsynchronised = false;  // STA_UNSYNC
  int64_t max_error_us = 0;     // maxerror
  int64_t est_error_us = 0;     // esterror
};

// Where the NVIDIA container toolkit (nvidia-container-runtime and its hook) reads its settings.
inline constexpr char kNvidiaToolkitConfig[] = "/etc/nvidia-container-runtime/config.toml";

// What the checks talk through. RealEnvironment() builds the real ones from the config.
struct Environment {
  // NVML (gpu.nvml_library, gpu.exclude_uuids); never null.
  std::function<std::unique_ptr<gpu::GpuProbe>(const config::GpuConfig&)> open_nvml;
  // The nvidia-smi fallback the agent uses when NVML cannot be (gpu.nvidia_smi_path), or null
  // when there is none; `detail` says which tool.
  std::function<std::unique_ptr<gpu::GpuProbe>(const config::GpuConfig&, std::string* detail)>
      open_fallback;
  // True when an NVIDIA kernel driver is loaded (/dev/nvidiactl or /proc/driver/nvidia/version).
  std::function<bool()> nvidia_driver_present;
  // Docker at docker.host; null when the address is unusable (docker_error says why).
  std::shared_ptr<docker::DockerClient> docker;
  std::string docker_error;
  std::string docker_address;  // as shown to the owner
  // The platform at server.url; null when the URL is refused (platform_error says why).
  std::shared_ptr<platform::PlatformApi> platform;
  std::string platform_error;
  // A read-only connection to PostgreSQL (store::ProbePostgres).
  std::function<Result<store::PgProbeResult>(const std::string& conninfo)> probe_postgres;
  // The managed cluster's binaries for data_dir (store::ManagedPostgres::FindBinaries).
  std::function<Result<std::string>(const std::string& data_dir)> find_postgres;
  // OK when a file can be created in `dir` (an existing directory).
  std::function<Status(const std::string& dir)> dir_writable;
  // True when a TCP listener holds `port` on `ip` (bind test); an error when `ip` cannot be
  // bound at all (not an address of this host).
  std::function<Result<bool>(const std::string& ip, int port)> port_in_use;
  std::function<Result<ClockStatus>()> read_clock;
  // Bytes free to unprivileged writers on the filesystem holding `path` (statvfs).
  std::function<Result<uint64_t>(const std::string& path)> free_bytes;
  // The device id of the filesystem holding `path` (to tell two paths on one filesystem).
  std::function<Result<uint64_t>(const std::string& path)> filesystem_id;
  // The NVIDIA container toolkit's configuration file (read by CheckNvidiaToolkit).
  std::string nvidia_toolkit_config = kNvidiaToolkitConfig;
};

Environment RealEnvironment(const config::Config& cfg);

// What a check found that a later one uses.
struct Findings {
  bool nvml_ok = false;                       // NVML loaded (or the nvidia-smi fallback answers)
  std::vector<std::string> gpu_uuids;         // the GPUs NVML lists (after exclude_uuids)
  std::optional<docker::VersionInfo> docker;  // set when Docker answered
  std::set<int> rental_ports;  // host ports published by the agent's rental containers
  std::string agent_id;        // from the config or the agent's database; "" = none yet
};

Check CheckConfig(const config::LoadResult& loaded);
Check CheckNvml(const config::Config& cfg, Environment& env, Findings& found);
Check CheckDocker(const config::Config& cfg, Environment& env, Findings& found);
Check CheckGpuPassthrough(const config::Config& cfg, Environment& env, Findings& found);
Check CheckNvidiaToolkit(const config::Config& cfg, Environment& env, Findings& found);
Check CheckPorts(const config::Config& cfg, Environment& env, Findings& found);
Check CheckApiPort(const config::Config& cfg, Environment& env, Findings& found);
Check CheckPostgres(const config::Config& cfg, Environment& env, Findings& found);
Check CheckPlatform(const config::Config& cfg, Environment& env, Findings& found);
Check CheckClock(Environment& env);
Check CheckDisk(const config::Config& cfg, Environment& env, Findings& found);

// The agent id polled with when the agent has none yet (never registered): a well-formed id
// no agent is given (NewAgentId draws 12 random hex characters).
inline constexpr char kUnregisteredAgentId[] = "agent-000000000000";

struct Report {
  std::vector<Check> checks;
  // A check missed its deadline: its worker thread still runs, so the process should end with
  // _Exit after printing (no static destructors under it).
  bool abandoned = false;
};

struct RunOptions {
  // The most one check may take; the checks' own calls have shorter deadlines (docker.timeout,
  // server.timeout, 5 s for PostgreSQL and NVML), so this only catches what hangs anyway.
  std::chrono::milliseconds check_deadline{std::chrono::seconds(30)};
};

// The settings in the text of the toolkit's config.toml that let a container obtain devices the
// agent did not give it, as "key = true" with the key's table ("features.mofed = true"):
// `accept-nvidia-visible-devices-as-volume-mounts` (device requests as mounts under
// /var/run/nvidia-container-devices) and the `[features]` gds, mofed, nvswitch and gdrcopy
// (toolkit 1.15 and 1.16 inject these devices into every container when set, whatever the
// container's env says). A line reader, not a full TOML parser: tables, dotted and quoted keys,
// booleans, comments; multi-line strings and arrays are skipped, inline tables not read.
std::vector<std::string> RiskyToolkitSettings(std::string_view toml);

// Runs every check in order: config, nvml, docker, gpu-passthrough, nvidia-toolkit, ports,
// api-port, postgres, platform, clock, disk.
Report RunDoctor(const config::LoadResult& loaded, std::shared_ptr<Environment> env,
                 const RunOptions& options = {});

}  // namespace taolie::doctor
