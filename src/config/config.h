#pragma once
// The agent's configuration: every key of config.yaml, with its default.
// Loading and validation live in config_loader.h; this header is plain data.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace taolie::config {

struct AgentConfig {
  std::string id;             // "" = generate once, keep in the agent's own state
  std::string api_key;        // secret: never logged
  std::string version_label;  // informational, optional
  // Where the host's / is mounted when the agent runs in a container (e.g. "/host"): the host
  // probe then reads <host_root>/proc, /sys, /etc/os-release, /etc/hostname and Docker's data
  // root under it, so the platform sees the real host. "" = the agent's own / (not contained).
  std::string host_root;
};

struct PortsConfig {
  int ssh = 2222;
  int rental_port_1 = 8888;
  int rental_port_2 = 9999;
  int rental_port_3 = 0;  // 0 = not offered
};

struct PortRange {
  int first = 0;  // 0/0 = no range configured
  int last = 0;
  bool empty() const { return first == 0 && last == 0; }
};

struct NetworkSecurityConfig {
  bool enable_ssl = false;
  std::string ssl_cert;
  std::string ssl_key;
  std::vector<std::string> allowed_ips;  // for the agent's own API
};

struct NetworkConfig {
  std::string public_ip;  // what renters connect to
  PortsConfig ports;
  PortRange port_range;             // network.port_range: "30000-30999"
  std::string bind_ip = "0.0.0.0";  // host IP the published container ports bind to
  double upload_mbps = 0;           // configured speeds; 0 = unknown
  double download_mbps = 0;
  double latency_ms = 0;
  std::string interface;  // interface for throughput counters; "" = auto
  NetworkSecurityConfig security;
  std::map<std::string, std::string> port_descriptions;  // informational
};

struct ServerConfig {
  std::string url = "https://api.yourplatform.com";
  int timeout = 10;                        // seconds, connect+read
  std::string ca_file;                     // custom CA bundle; "" = system
  bool allow_insecure = false;             // allow plain http:// to non-loopback hosts
  std::string timestamp_format = "naive";  // "naive" | "rfc3339"
  // An ext event (failed/expiring/terminated) the platform keeps refusing with 5xx or
  // network errors is given up this long after its first failure: kept as "failed", counted,
  // and its deployment's next event goes on. Compat events are never given up.
  int ext_event_give_up_hours = 24;
};

struct GpuThresholds {
  // The seed's temperature_max; temperature_warning_c is an older name for it (temperature_max
  // wins when both are set).
  double temperature_warning_c = 85;
  double temperature_critical_c = 90;
  double power_max_watts = 0;          // seed power_max: draw above it = warning; 0 = off
  double power_warning_percent = 105;  // of the enforced limit: only a cap that does not hold
  double utilization_min = 0;          // seed: % under which a rented GPU is reported; 0 = off
  double memory_warning_percent = 0;   // 0 = off: a full framebuffer is a renter's normal load
  double fan_min_percent = 0;          // below this while hot = warning
  int ecc_uncorrected_max = 0;
  int64_t ecc_corrected_per_hour = 1000;  // corrected ECC rising faster = warning; 0 = off
};

struct AlertsConfig {
  bool enabled = false;
  std::string webhook_url;  // seed `webhook` wins over `webhook_url` when both are set
  std::string email_to;     // seed `email` wins over `email_to` when both are set
  std::string email_from;
  std::string smtp_host;
  int smtp_port = 25;
  bool smtp_starttls = true;  // smtp://: STARTTLS is required (the mail is not sent without it)
  bool smtp_tls = false;      // smtps://: TLS from the first byte (usually port 465)
  std::string smtp_username;  // "" = no authentication
  std::string smtp_password;  // secret; TAOLIE_SMTP_PASSWORD wins; never logged
  int cooldown_seconds = 900;
  int max_per_hour = 20;                   // alerts sent per rolling hour; more are suppressed
  int platform_unreachable_seconds = 600;  // no platform answer this long = an alert
};

struct RetentionConfig {
  int logs_days = 7;     // rotated log files older than this are deleted
  int metrics_days = 1;  // the seed: 24 h of metrics
  int health_days = 30;
  int events_days = 30;
  int commands_days = 30;
};

struct MonitoringConfig {
  int gpu_metrics_interval = 10;
  int gpu_health_interval = 60;
  int heartbeat_interval = 30;
  int command_poll_interval = 10;
  int metrics_push_interval = 10;
  int health_push_interval = 60;
  int duration_check_interval = 30;
  int power_sustain_seconds = 60;       // power over its limit counts after this long
  int quarantine_clear_seconds = 3600;  // a quarantined GPU returns after this long healthy
  // A loop whose round has not finished for max(3 x its interval, this) is stuck: systemd's
  // watchdog is no longer fed and /healthz fails (agent/liveness.h).
  int stuck_loop_seconds = 120;
  GpuThresholds gpu_thresholds;
  AlertsConfig alerts;
  RetentionConfig retention;
};

struct DatabaseConfig {
  std::string mode;  // "external" | "managed"; "" = managed when host is empty, else external
  std::string host;
  int port = 5432;
  std::string name = "taolie_host_agent";
  std::string user = "agent";
  std::string password;  // secret
  int connect_timeout = 5;
  int statement_timeout_ms = 10000;
  // libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full. "" = require for a
  // host that is not local (not a socket directory, localhost or a loopback address), else
  // prefer. The managed cluster is always reached over its unix socket.
  std::string sslmode;
  std::string sslrootcert;  // CA file (PEM) for verify-ca / verify-full; "" = libpq's default
  // TCP keepalives and user timeout of an external database's connection, so that a link that
  // went silent fails the call (and frees the store) instead of blocking it for the kernel's
  // hours: idle seconds before the first probe, seconds between probes, probes lost before
  // the connection is dropped; unacknowledged data older than tcp_user_timeout_ms drops it too
  // (0 = the kernel's default).
  int keepalives_idle = 10;
  int keepalives_interval = 5;
  int keepalives_count = 3;
  int tcp_user_timeout_ms = 30000;
};

struct GpuConfig {
  std::string uuid;  // platform offer id (compat); the agent stores what registration returns
  std::string nvml_library = "libnvidia-ml.so.1";
  // Used when NVML cannot be loaded: a name looked up on PATH, or an absolute path.
  std::string nvidia_smi_path = "nvidia-smi";
  // The kernel log read for NVIDIA's XID lines ("NVRM: Xid"), with a persisted cursor; "" = not
  // read (XIDs then come from NVML events only).
  std::string kmsg_path = "/dev/kmsg";
  std::vector<std::string> exclude_uuids;  // GPUs the owner keeps for itself
  // After a rental ends its GPUs are dirty until NVML shows no compute process on them and
  // used memory within this margin of the baseline taken when the agent started.
  int64_t idle_memory_margin_mb = 256;
  bool allow_reset = false;  // the agent may reset a quarantined GPU that needs it
  // A GPU still dirty this long after its rental ended is held back with a reason.
  int dirty_timeout_seconds = 300;
};

struct LoggingConfig {
  std::string level = "info";
  std::string file = "/var/log/taolie-host-agent/agent.log";  // "" = no file
  int max_size_mb = 100;
  int max_files = 5;
  bool journal = true;  // when run under systemd
  bool console = true;
};

struct DockerConfig {
  std::string host;              // "" = $DOCKER_HOST or unix:///var/run/docker.sock
  std::string api_version;       // "" = negotiate
  int timeout = 30;              // seconds for ordinary calls (pulls have their own)
  int pull_timeout = 3600;       // seconds for a whole pull
  int pull_stall_timeout = 300;  // seconds a pull may receive nothing before it is abandoned
  // When free space on Docker's data root is under image_gc_min_free_gb, images no rental has
  // used for image_gc_days are removed, oldest first (never one in use). 0 = no collection;
  // image_gc_days 0 = any image no container uses.
  double image_gc_min_free_gb = 20;
  int image_gc_days = 7;
  // Images kept pulled in the background (all at start, then any missing one every 10 min);
  // only these may be used from the local copy when a rental's pull fails, and image
  // collection never removes them. After loading: the union with images.prefetch.
  std::vector<std::string> prefetch_images;
};

struct ImagesConfig {
  // The same list under the name of issue 9 (images.prefetch); the loader adds its entries to
  // docker.prefetch_images, which is what the agent uses.
  std::vector<std::string> prefetch;
};

struct DeploymentConfig {
  int max_duration_minutes = 10080;  // 7 days
  int max_ports = 8;
  std::vector<std::string> allowed_volume_roots;  // default: none allowed
  int expiry_warning_seconds = 30;
  int stop_grace_seconds = 30;
  int readiness_timeout_seconds = 120;
  bool require_ssh = true;  // readiness requires an SSH-2.0 banner on port 22
  // Caps applied to every rental; 0 = sized from the host.
  int64_t max_memory_mb = 0;
  double max_cpus = 0;
  int64_t max_shm_mb = 0;
  int64_t default_memory_mb = 0;
  double default_cpus = 0;
  int64_t default_shm_mb = 1024;
  int64_t pids_limit = 4096;
  int log_max_size_mb = 50;
  int log_max_files = 3;
  bool no_new_privileges = false;  // off by default: renters' images use sudo
  std::string runtime;             // "" = default runtime
  // Capabilities given back to rentals, from AddableCapabilities() (names without CAP_).
  std::vector<std::string> cap_add;
  // NVIDIA_DRIVER_CAPABILITIES of every rental (comma-separated, from the NVIDIA runtime's set).
  std::string nvidia_driver_capabilities = "compute,utility";
  // The rentals' own bridge network and its firewall (rentals never reach the host, the LAN,
  // 100.64.0.0/10 or 169.254.0.0/16). The subnet must not collide with the owner's LAN.
  std::string network_subnet = "10.213.0.0/24";
  bool allow_smtp = false;                          // outbound TCP 25 from rentals
  std::vector<std::string> egress_allow;            // IPv4 CIDRs rentals may reach anyway
  std::vector<std::string> rental_allowed_sources;  // who may reach published rental ports;
                                                    // empty = anyone
  // Host services rentals may reach (TCP): "CIDR:PORT", e.g. "10.213.0.1/32:8080", the CIDR
  // selecting the host's own addresses (config_loader.h ParseHostAllow). egress_allow never
  // opens the host.
  std::vector<std::string> host_allow;
  bool require_isolation = true;  // no rental is accepted while the firewall is not in place
  // Admission counts totals over all running rentals.
  int max_deployments = 0;           // most rentals at once; 0 = bounded only by GPUs and ports
  double max_committed_share = 0.9;  // of the host's memory and CPUs, summed over rentals
  double min_free_disk_gb = 10;      // on Docker's data root and the database's filesystem
  // Disk per rental (writable layer + volumes); 0 = sized from Docker's data root. A payload's
  // ext `disk_mb` may ask for less, never more.
  int64_t disk_quota_mb = 0;
  // Registries (host or host:port) allowed although they are, or resolve to, loopback,
  // link-local or private addresses, or the agent's own ports.
  std::vector<std::string> allowed_registries;
};

// Dropped from Docker's default capability set in every rental: raw sockets (ARP spoofing of
// a neighbour) and device nodes. OpenSSH's privilege separation and PAM keep what they need
// (SYS_CHROOT, AUDIT_WRITE, SETUID, SETGID, ...).
inline const std::vector<std::string>& RentalDroppedCapabilities() {
  static const std::vector<std::string> kCaps = {"NET_RAW", "MKNOD"};
  return kCaps;
}
// What `deployment.cap_add` may name. Never SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_RAWIO,
// SYS_PTRACE, BPF, PERFMON, DAC_READ_SEARCH (or anything else that reaches past the container).
inline const std::vector<std::string>& AddableCapabilities() {
  static const std::vector<std::string> kCaps = {"NET_RAW", "MKNOD", "SYS_NICE", "IPC_LOCK",
                                                 "LEASE"};
  return kCaps;
}

struct ApiConfig {  // the agent's own status/metrics HTTP endpoint
  bool enabled = true;
  std::string listen = "127.0.0.1";
  int port = 9109;
  // Host header names answered besides IP literals and "localhost" (DNS rebinding guard).
  std::vector<std::string> allowed_hosts;
};

struct Config {
  AgentConfig agent;
  NetworkConfig network;
  ServerConfig server;
  MonitoringConfig monitoring;
  DatabaseConfig database;
  GpuConfig gpu;
  LoggingConfig logging;
  DockerConfig docker;
  ImagesConfig images;
  DeploymentConfig deployment;
  ApiConfig api;
  std::string data_dir = "/var/lib/taolie-host-agent";
  std::map<std::string, std::string> provider;  // name/region/contact, informational
  std::string config_file;  // not a key: the file this was loaded from ("" = none)
};

}  // namespace taolie::config
