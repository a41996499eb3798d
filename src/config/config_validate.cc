// Validate: one check per config section, run in the order of config.yaml. Pure (it only looks
// at the file system for agent.host_root), and never echoes a secret.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/net_address.h"
#include "common/secrets.h"
#include "config/config_internal.h"
#include "domain/image_reference.h"

namespace taolie::config {
namespace {

using internal::Lower;
using internal::ParseInteger;
using internal::Quote;

constexpr char kExampleServerUrl[] = "https://api.yourplatform.com";

class Checker {
 public:
  explicit Checker(std::vector<ConfigProblem>* out) : out_(out) {}

  void Fatal(std::string key, std::string reason) {
    out_->push_back({std::move(key), std::move(reason), true});
  }
  void Warn(std::string key, std::string reason) {
    out_->push_back({std::move(key), std::move(reason), false});
  }
  template <typename T>
  void Range(const std::string& key, T value, T lo, T hi) {
    if (value < lo || value > hi) {
      std::ostringstream s;
      s << "must be between " << lo << " and " << hi << ", got " << value;
      Fatal(key, s.str());
    }
  }
  template <typename T>
  void Positive(const std::string& key, T value) {
    if (!(value > 0)) {
      std::ostringstream s;
      s << "must be positive, got " << value;
      Fatal(key, s.str());
    }
  }
  template <typename T>
  void NonNegative(const std::string& key, T value) {
    if (value < 0) {
      std::ostringstream s;
      s << "must not be negative, got " << value;
      Fatal(key, s.str());
    }
  }

 private:
  std::vector<ConfigProblem>* out_;
};

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool IsIpv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}
bool IsIp(const std::string& s) { return IsIpv4(s) || IsIpv6(s); }

bool IsHostname(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0 || s.back() == '.';
}

// "10.0.0.0/8", "2001:db8::/32" or a plain address.
bool IsIpOrCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return IsIp(s);
  std::string addr = s.substr(0, slash);
  auto bits = ParseInteger(s.substr(slash + 1));
  if (!bits || s.substr(slash + 1).find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  if (IsIpv4(addr)) return *bits >= 0 && *bits <= 32;
  if (IsIpv6(addr)) return *bits >= 0 && *bits <= 128;
  return false;
}

struct ParsedUrl {
  std::string scheme;  // lower case
  std::string host;    // without brackets
};

// Minimal absolute-URL check: scheme://host[:port][/...]. Returns an error reason or "".
std::string ParseUrl(const std::string& url, ParsedUrl* out) {
  size_t sep = url.find("://");
  if (url.empty()) return "must not be empty";
  if (sep == std::string::npos || sep == 0) return "not an absolute URL (scheme://host)";
  out->scheme = Lower(url.substr(0, sep));
  std::string rest = url.substr(sep + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) return "must not contain user information";
  std::string port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return "unterminated [IPv6] host";
    out->host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return "invalid text after the [IPv6] host";
      port = after.substr(1);
      has_port = true;
    }
    if (!IsIpv6(out->host)) return "invalid IPv6 host";
  } else {
    size_t colon = authority.rfind(':');
    out->host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
    if (!IsIpv4(out->host) && !IsHostname(out->host)) return "invalid host name";
  }
  if (out->host.empty()) return "missing host";
  if (has_port) {
    auto p = ParseInteger(port);
    if (!p || port.find_first_not_of("0123456789") != std::string::npos || *p < 1 || *p > 65535) {
      return "invalid port";
    }
  }
  return "";
}

// ---- one check per section ----

void ValidateAgent(const AgentConfig& a, Checker& k) {
  if (!a.id.empty() && !IsValidAgentId(a.id)) {
    k.Fatal("agent.id",
            "must be empty (generated on first start) or \"agent-\" followed by 12 "
            "lowercase hex digits, got " +
                Quote(a.id));
  }
  if (!a.host_root.empty()) {
    std::error_code ec;
    if (!std::filesystem::path(a.host_root).is_absolute()) {
      k.Fatal("agent.host_root", "must be an absolute path, got " + Quote(a.host_root));
    } else if (!std::filesystem::is_directory(a.host_root, ec)) {
      k.Fatal("agent.host_root",
              "no such directory: " + Quote(a.host_root) +
                  " (mount the host's /proc, /sys and /etc files under it, or leave it \"\")");
    }
  }
}

struct NamedPort {
  const char* key;
  int port;
};

// network.ports: each in range, all distinct, none the local API's port; network.port_range
// valid and clear of them all.
void ValidatePorts(const Config& c, Checker& k) {
  const NetworkConfig& n = c.network;
  std::vector<NamedPort> named = {{"network.ports.ssh", n.ports.ssh},
                                  {"network.ports.rental_port_1", n.ports.rental_port_1},
                                  {"network.ports.rental_port_2", n.ports.rental_port_2}};
  for (const auto& p : named) k.Range<int>(p.key, p.port, 1, 65535);
  if (n.ports.rental_port_3 != 0) {
    k.Range<int>("network.ports.rental_port_3", n.ports.rental_port_3, 1, 65535);
    named.push_back({"network.ports.rental_port_3", n.ports.rental_port_3});
  }
  for (size_t i = 0; i < named.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (named[i].port == named[j].port) {
        k.Fatal(named[i].key, "same port " + std::to_string(named[i].port) + " as " + named[j].key +
                                  "; ports must be distinct");
      }
    }
  }
  if (c.api.enabled) {
    for (const auto& p : named) {
      if (p.port == c.api.port) {
        k.Fatal("api.port", "same port " + std::to_string(c.api.port) + " as " + p.key);
      }
    }
  }
  if (n.port_range.empty()) return;
  const PortRange& r = n.port_range;
  if (r.first < 1024 || r.last > 65535 || r.first > r.last) {
    k.Fatal("network.port_range",
            "must be FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, got " + FormatPortRange(r));
    return;
  }
  if (c.api.enabled) named.push_back({"api.port", c.api.port});
  for (const auto& p : named) {
    if (p.port >= r.first && p.port <= r.last) {
      k.Fatal("network.port_range",
              "contains " + std::string(p.key) + " (" + std::to_string(p.port) + ")");
    }
  }
}

void ValidateNetwork(const Config& c, Checker& k) {
  const NetworkConfig& n = c.network;
  if (n.public_ip.empty()) {
    k.Warn("network.public_ip", "empty: renters will not be told where to connect");
  } else if (!IsIp(n.public_ip) && !IsHostname(n.public_ip)) {
    k.Fatal("network.public_ip", "not an IP address or host name: " + Quote(n.public_ip));
  }
  if (!IsIp(n.bind_ip)) k.Fatal("network.bind_ip", "not an IP address: " + Quote(n.bind_ip));
  ValidatePorts(c, k);
  k.NonNegative("network.upload_mbps", n.upload_mbps);
  k.NonNegative("network.download_mbps", n.download_mbps);
  k.NonNegative("network.latency_ms", n.latency_ms);
  if (n.security.enable_ssl) {
    if (n.security.ssl_cert.empty())
      k.Fatal("network.security.ssl_cert", "required when enable_ssl is true");
    if (n.security.ssl_key.empty())
      k.Fatal("network.security.ssl_key", "required when enable_ssl is true");
  }
  for (size_t i = 0; i < n.security.allowed_ips.size(); ++i) {
    if (!IsIpOrCidr(n.security.allowed_ips[i])) {
      k.Fatal("network.security.allowed_ips[" + std::to_string(i) + "]",
              "not an IP address or CIDR: " + Quote(n.security.allowed_ips[i]));
    }
  }
}

void ValidateServer(const ServerConfig& s, Checker& k) {
  ParsedUrl url;
  std::string url_err = ParseUrl(s.url, &url);
  if (!url_err.empty()) {
    k.Fatal("server.url", url_err);
  } else if (url.scheme == "http") {
    if (!IsLoopbackHost(url.host) && !s.allow_insecure) {
      k.Fatal("server.url",
              "plain http:// is only allowed for loopback hosts; use https:// "
              "or set server.allow_insecure: true");
    }
  } else if (url.scheme != "https") {
    k.Fatal("server.url", "scheme must be https (or http for loopback), got " + url.scheme);
  }
  k.Range("server.timeout", s.timeout, 1, 300);
  k.Positive("server.ext_event_give_up_hours", s.ext_event_give_up_hours);
  if (s.timestamp_format != "naive" && s.timestamp_format != "rfc3339") {
    k.Fatal("server.timestamp_format",
            "must be naive or rfc3339, got " + Quote(s.timestamp_format));
  }
}

void ValidateGpuThresholds(const GpuThresholds& t, Checker& k) {
  k.Range("monitoring.gpu_thresholds.temperature_warning_c", t.temperature_warning_c, 0.0, 150.0);
  k.Range("monitoring.gpu_thresholds.temperature_critical_c", t.temperature_critical_c, 0.0, 150.0);
  if (t.temperature_warning_c >= t.temperature_critical_c) {
    k.Fatal("monitoring.gpu_thresholds.temperature_warning_c",
            "must be below temperature_critical_c (temperature_max and temperature_warning_c "
            "set the same value)");
  }
  k.Range("monitoring.gpu_thresholds.power_max", t.power_max_watts, 0.0, 5000.0);
  k.Range("monitoring.gpu_thresholds.utilization_min", t.utilization_min, 0.0, 100.0);
  k.Range("monitoring.gpu_thresholds.power_warning_percent", t.power_warning_percent, 0.0, 150.0);
  k.Range("monitoring.gpu_thresholds.memory_warning_percent", t.memory_warning_percent, 0.0, 100.0);
  k.Range("monitoring.gpu_thresholds.fan_min_percent", t.fan_min_percent, 0.0, 100.0);
  k.NonNegative("monitoring.gpu_thresholds.ecc_uncorrected_max", t.ecc_uncorrected_max);
  if (t.ecc_corrected_per_hour < 0) {
    k.Fatal("monitoring.gpu_thresholds.ecc_corrected_per_hour", "must be >= 0 (0 = off)");
  }
}

// monitoring.alerts: where they go (webhook, e-mail) and how the mail is sent.
void ValidateAlertTargets(const AlertsConfig& al, Checker& k) {
  if (!al.webhook_url.empty()) {
    ParsedUrl w;
    std::string e = ParseUrl(al.webhook_url, &w);
    if (!e.empty() || (w.scheme != "https" && w.scheme != "http")) {
      // The URL may carry a token: do not echo it.
      k.Fatal("monitoring.alerts.webhook_url",
              (e.empty() ? std::string("scheme must be http or https") : e) +
                  " (monitoring.alerts.webhook or webhook_url)");
    }
  }
  if (al.enabled && al.webhook_url.empty() && al.email_to.empty()) {
    k.Fatal("monitoring.alerts.enabled", "alerts enabled but neither webhook nor email set");
  }
  if (!al.email_to.empty() && al.smtp_host.empty()) {
    // The seed's own example sets only `email`: the host's MTA takes the mail (docs/alerts.md).
    k.Warn("monitoring.alerts.smtp_host",
           "not set: e-mail alerts go through the host's MTA (/usr/sbin/sendmail when present, "
           "else SMTP to localhost:" +
               std::to_string(al.smtp_port) + ")");
    if (!al.smtp_username.empty()) {
      k.Fatal("monitoring.alerts.smtp_username",
              "set without smtp_host: the host's MTA takes no credentials; set smtp_host too");
    }
  }
}

void ValidateAlerts(const AlertsConfig& al, Checker& k) {
  ValidateAlertTargets(al, k);
  k.Range("monitoring.alerts.smtp_port", al.smtp_port, 1, 65535);
  k.NonNegative("monitoring.alerts.cooldown_seconds", al.cooldown_seconds);
  k.Range("monitoring.alerts.max_per_hour", al.max_per_hour, 1, 3600);
  k.Range("monitoring.alerts.platform_unreachable_seconds", al.platform_unreachable_seconds, 60,
          7 * 86400);
  if (al.smtp_tls && al.smtp_starttls) {
    k.Fatal("monitoring.alerts.smtp_tls",
            "smtp_tls (TLS from the start, smtps://) and smtp_starttls exclude each other: set "
            "smtp_starttls: false with smtp_tls: true");
  }
  if (!al.smtp_username.empty() && !al.smtp_tls && !al.smtp_starttls) {
    k.Fatal("monitoring.alerts.smtp_username",
            "credentials are never sent in clear: enable smtp_starttls or smtp_tls");
  }
  if (al.smtp_username.empty() != al.smtp_password.empty()) {
    k.Fatal(al.smtp_username.empty() ? "monitoring.alerts.smtp_username"
                                     : "monitoring.alerts.smtp_password",
            "smtp_username and smtp_password (or TAOLIE_SMTP_PASSWORD) go together");
  }
}

void ValidateMonitoring(const MonitoringConfig& m, Checker& k) {
  const std::pair<const char*, int> intervals[] = {
      {"monitoring.gpu_metrics_interval", m.gpu_metrics_interval},
      {"monitoring.gpu_health_interval", m.gpu_health_interval},
      {"monitoring.heartbeat_interval", m.heartbeat_interval},
      {"monitoring.command_poll_interval", m.command_poll_interval},
      {"monitoring.metrics_push_interval", m.metrics_push_interval},
      {"monitoring.health_push_interval", m.health_push_interval},
      {"monitoring.duration_check_interval", m.duration_check_interval}};
  for (const auto& [key, v] : intervals) k.Range(key, v, 1, 86400);
  ValidateGpuThresholds(m.gpu_thresholds, k);
  k.Range("monitoring.power_sustain_seconds", m.power_sustain_seconds, 0, 86400);
  k.Range("monitoring.quarantine_clear_seconds", m.quarantine_clear_seconds, 0, 7 * 86400);
  k.Range("monitoring.stuck_loop_seconds", m.stuck_loop_seconds, 1, 86400);
  ValidateAlerts(m.alerts, k);
  k.Positive("monitoring.retention.logs_days", m.retention.logs_days);
  k.Positive("monitoring.retention.metrics_days", m.retention.metrics_days);
  k.Positive("monitoring.retention.health_days", m.retention.health_days);
  k.Positive("monitoring.retention.events_days", m.retention.events_days);
  k.Positive("monitoring.retention.commands_days", m.retention.commands_days);
}

void ValidateDatabase(const DatabaseConfig& d, Checker& k) {
  if (d.mode != "" && d.mode != "managed" && d.mode != "external") {
    k.Fatal("database.mode", "must be \"\", managed or external, got " + Quote(d.mode));
  }
  if (d.mode == "external" && d.host.empty()) {
    k.Fatal("database.host", "required when database.mode is external");
  }
  k.Range("database.port", d.port, 1, 65535);
  if (d.name.empty()) k.Fatal("database.name", "must not be empty");
  if (d.user.empty()) k.Fatal("database.user", "must not be empty");
  k.Range("database.connect_timeout", d.connect_timeout, 1, 300);
  k.Positive("database.statement_timeout_ms", d.statement_timeout_ms);
  k.Range("database.keepalives_idle", d.keepalives_idle, 1, 7200);
  k.Range("database.keepalives_interval", d.keepalives_interval, 1, 600);
  k.Range("database.keepalives_count", d.keepalives_count, 1, 100);
  k.Range("database.tcp_user_timeout_ms", d.tcp_user_timeout_ms, 0, 3600000);
  static const std::vector<std::string> kModes = {"",        "disable",   "allow",      "prefer",
                                                  "require", "verify-ca", "verify-full"};
  if (std::find(kModes.begin(), kModes.end(), d.sslmode) == kModes.end()) {
    k.Fatal("database.sslmode",
            "must be disable, allow, prefer, require, verify-ca or verify-full, got " +
                Quote(d.sslmode));
  }
  if (!d.sslrootcert.empty() && !std::filesystem::path(d.sslrootcert).is_absolute()) {
    k.Fatal("database.sslrootcert", "must be an absolute path, got " + Quote(d.sslrootcert));
  }
}

void ValidateGpu(const GpuConfig& g, Checker& k) {
  if (g.nvml_library.empty()) k.Fatal("gpu.nvml_library", "must not be empty");
  if (g.nvidia_smi_path.empty()) k.Fatal("gpu.nvidia_smi_path", "must not be empty");
  k.NonNegative("gpu.idle_memory_margin_mb", g.idle_memory_margin_mb);
  k.Positive("gpu.dirty_timeout_seconds", g.dirty_timeout_seconds);
}

void ValidateLogging(const LoggingConfig& l, Checker& k) {
  if (!IsKnownLogLevel(l.level)) {
    k.Fatal("logging.level", "unknown level " + Quote(l.level) +
                                 " (trace, debug, info, warning, error, critical, off)");
  }
  k.Range("logging.max_size_mb", l.max_size_mb, 1, 10240);
  k.Range("logging.max_files", l.max_files, 1, 100);
  if (!l.file.empty() && l.file.back() == '/') {
    k.Fatal("logging.file", "must name a file, not a directory");
  }
}

// Each entry of a list of images (docker.prefetch_images, images.prefetch) is a reference.
void ValidateImageList(const std::string& key, const std::vector<std::string>& images, Checker& k) {
  for (size_t i = 0; i < images.size(); ++i) {
    if (auto ref = domain::ParseImageReference(images[i]); !ref.ok()) {
      k.Fatal(key + "[" + std::to_string(i) + "]",
              "not an image reference (" + ref.error().message + "): " + Quote(images[i]));
    }
  }
}

void ValidateDocker(const DockerConfig& dk, Checker& k) {
  if (dk.host.rfind("tcp://", 0) == 0) {
    k.Fatal("docker.host",
            "tcp:// endpoints are not supported yet; use the unix socket, e.g. "
            "unix:///var/run/docker.sock");
  } else if (!dk.host.empty() && dk.host.rfind("unix://", 0) != 0) {
    k.Fatal("docker.host", "must start with unix://, got " + Quote(dk.host));
  }
  k.Positive("docker.timeout", dk.timeout);
  k.Positive("docker.pull_timeout", dk.pull_timeout);
  k.Positive("docker.pull_stall_timeout", dk.pull_stall_timeout);
  k.NonNegative("docker.image_gc_min_free_gb", dk.image_gc_min_free_gb);
  k.NonNegative("docker.image_gc_days", dk.image_gc_days);
  ValidateImageList("docker.prefetch_images", dk.prefetch_images, k);
}

void ValidateImages(const ImagesConfig& images, Checker& k) {
  ValidateImageList("images.prefetch", images.prefetch, k);
}

// deployment: what a rental may ask for and what it gets by default.
void ValidateDeploymentLimits(const DeploymentConfig& dp, Checker& k) {
  k.Positive("deployment.max_duration_minutes", dp.max_duration_minutes);
  k.Positive("deployment.max_ports", dp.max_ports);
  for (size_t i = 0; i < dp.allowed_volume_roots.size(); ++i) {
    const std::string key = "deployment.allowed_volume_roots[" + std::to_string(i) + "]";
    const std::string& root = dp.allowed_volume_roots[i];
    std::filesystem::path p(root);
    if (root.empty() || !p.is_absolute()) {
      k.Fatal(key, "must be an absolute path, got " + Quote(root));
    } else if (p.lexically_normal() == "/") {
      k.Fatal(key, "must not be / (that would expose the whole host)");
    }
  }
  k.NonNegative("deployment.expiry_warning_seconds", dp.expiry_warning_seconds);
  k.Positive("deployment.stop_grace_seconds", dp.stop_grace_seconds);
  k.Positive("deployment.readiness_timeout_seconds", dp.readiness_timeout_seconds);
  k.NonNegative("deployment.max_memory_mb", dp.max_memory_mb);
  k.NonNegative("deployment.max_cpus", dp.max_cpus);
  k.NonNegative("deployment.max_shm_mb", dp.max_shm_mb);
  k.NonNegative("deployment.default_memory_mb", dp.default_memory_mb);
  k.NonNegative("deployment.default_cpus", dp.default_cpus);
  k.NonNegative("deployment.default_shm_mb", dp.default_shm_mb);
  if (dp.max_memory_mb > 0 && dp.default_memory_mb > dp.max_memory_mb) {
    k.Fatal("deployment.default_memory_mb", "must not exceed deployment.max_memory_mb");
  }
  if (dp.max_cpus > 0 && dp.default_cpus > dp.max_cpus) {
    k.Fatal("deployment.default_cpus", "must not exceed deployment.max_cpus");
  }
  if (dp.max_shm_mb > 0 && dp.default_shm_mb > dp.max_shm_mb) {
    k.Fatal("deployment.default_shm_mb", "must not exceed deployment.max_shm_mb");
  }
  k.Positive("deployment.pids_limit", dp.pids_limit);
  k.Positive("deployment.log_max_size_mb", dp.log_max_size_mb);
  k.Positive("deployment.log_max_files", dp.log_max_files);
}

// deployment: what the container itself is given (capabilities, NVIDIA driver capabilities).
void ValidateDeploymentContainer(const DeploymentConfig& dp, Checker& k) {
  for (size_t i = 0; i < dp.cap_add.size(); ++i) {
    const auto& addable = AddableCapabilities();
    if (std::find(addable.begin(), addable.end(), dp.cap_add[i]) == addable.end()) {
      std::string list;
      for (const auto& cap : addable) list += (list.empty() ? "" : ", ") + cap;
      k.Fatal("deployment.cap_add[" + std::to_string(i) + "]",
              Quote(dp.cap_add[i]) + " may not be given to renters; allowed: " + list +
                  " (names without CAP_)");
    }
  }
  static const std::vector<std::string> kDriverCaps = {"compute", "compat32", "graphics", "utility",
                                                       "video",   "display",  "all"};
  const std::string& v = dp.nvidia_driver_capabilities;
  size_t start = 0;
  bool ok = !v.empty();
  while (ok && start <= v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    std::string item = v.substr(start, comma - start);
    ok = std::find(kDriverCaps.begin(), kDriverCaps.end(), item) != kDriverCaps.end();
    start = comma + 1;
  }
  if (!ok) {
    k.Fatal("deployment.nvidia_driver_capabilities",
            "must be a comma-separated list of compute, compat32, graphics, utility, video, "
            "display or all, got " +
                Quote(v));
  }
}

// deployment: the rentals' network (subnet, egress, who may reach them, what they may reach).
void ValidateDeploymentNetwork(const Config& c, Checker& k) {
  const DeploymentConfig& dp = c.deployment;
  auto subnet = CanonicalIpv4Cidr(dp.network_subnet);
  if (!subnet.ok()) {
    k.Fatal("deployment.network_subnet", "not an IPv4 CIDR: " + Quote(dp.network_subnet));
  } else if (*subnet != dp.network_subnet) {
    k.Fatal("deployment.network_subnet",
            Quote(dp.network_subnet) + " is not a network address; did you mean " + *subnet + "?");
  } else if (int prefix = std::stoi(subnet->substr(subnet->find('/') + 1));
             prefix < 16 || prefix > 28) {
    k.Fatal("deployment.network_subnet", "prefix must be /16 to /28, got " + *subnet);
  }
  for (const auto& [key, list] :
       {std::pair{"deployment.egress_allow", &dp.egress_allow},
        std::pair{"deployment.rental_allowed_sources", &dp.rental_allowed_sources}}) {
    for (size_t i = 0; i < list->size(); ++i) {
      if (!CanonicalIpv4Cidr((*list)[i]).ok()) {
        k.Fatal(std::string(key) + "[" + std::to_string(i) + "]",
                "not an IPv4 address or CIDR: " + Quote((*list)[i]));
      }
    }
  }
  if (!dp.rental_allowed_sources.empty() && c.network.bind_ip.find(':') != std::string::npos) {
    k.Fatal("network.bind_ip",
            Quote(c.network.bind_ip) +
                " is IPv6: rentals' ports published there bypass "
                "deployment.rental_allowed_sources (IPv4 only); use an IPv4 address or 0.0.0.0");
  }
  for (size_t i = 0; i < dp.host_allow.size(); ++i) {
    if (auto entry = ParseHostAllow(dp.host_allow[i]); !entry.ok()) {
      k.Fatal("deployment.host_allow[" + std::to_string(i) + "]", entry.error().message);
    }
  }
}

// deployment: how much of the host rentals may take together, and from which registries.
void ValidateDeploymentAdmission(const DeploymentConfig& dp, Checker& k) {
  k.NonNegative("deployment.max_deployments", dp.max_deployments);
  if (!(dp.max_committed_share > 0 && dp.max_committed_share <= 1)) {
    k.Fatal("deployment.max_committed_share",
            "must be a fraction in (0, 1], got " + std::to_string(dp.max_committed_share));
  }
  k.NonNegative("deployment.min_free_disk_gb", dp.min_free_disk_gb);
  k.NonNegative("deployment.disk_quota_mb", dp.disk_quota_mb);
  for (size_t i = 0; i < dp.allowed_registries.size(); ++i) {
    const std::string& reg = dp.allowed_registries[i];
    if (reg.empty() || reg.find_first_of("/ \t@") != std::string::npos) {
      k.Fatal(
          "deployment.allowed_registries[" + std::to_string(i) + "]",
          "must be a registry host or host:port (no scheme, path or spaces), got " + Quote(reg));
    }
  }
}

void ValidateDeployment(const Config& c, Checker& k) {
  ValidateDeploymentLimits(c.deployment, k);
  ValidateDeploymentContainer(c.deployment, k);
  ValidateDeploymentNetwork(c, k);
  ValidateDeploymentAdmission(c.deployment, k);
}

void ValidateApi(const Config& c, Checker& k) {
  if (!IsIp(c.api.listen) && Lower(c.api.listen) != "localhost") {
    k.Fatal("api.listen", "not an IP address or localhost: " + Quote(c.api.listen));
  }
  k.Range("api.port", c.api.port, 1, 65535);
  for (const std::string& h : c.api.allowed_hosts) {
    if (!IsHostname(h)) k.Fatal("api.allowed_hosts", "not a host name (no port): " + Quote(h));
  }
  if (c.api.enabled && !c.network.security.enable_ssl) {
    const std::string l = Lower(c.api.listen);
    const bool loopback = l == "localhost" || l == "::1" || l.rfind("127.", 0) == 0;
    if (!loopback) {
      k.Warn("api.listen",
             Quote(c.api.listen) +
                 " is not loopback and network.security.enable_ssl is off: the local API "
                 "(status, metrics) is served in clear text to network.security.allowed_ips");
    }
  }
}

void ValidateDataDir(const std::string& data_dir, Checker& k) {
  if (data_dir.empty() || !std::filesystem::path(data_dir).is_absolute()) {
    k.Fatal("data_dir", "must be an absolute path, got " + Quote(data_dir));
  }
}

}  // namespace

std::vector<ConfigProblem> Validate(const Config& c) {
  std::vector<ConfigProblem> out;
  Checker k(&out);
  ValidateAgent(c.agent, k);
  ValidateNetwork(c, k);
  ValidateServer(c.server, k);
  ValidateMonitoring(c.monitoring, k);
  ValidateDatabase(c.database, k);
  ValidateGpu(c.gpu, k);
  ValidateLogging(c.logging, k);
  ValidateDocker(c.docker, k);
  ValidateImages(c.images, k);
  ValidateDeployment(c, k);
  ValidateApi(c, k);
  ValidateDataDir(c.data_dir, k);
  return out;
}

std::vector<ConfigProblem> ValidateForRun(const Config& c) {
  std::vector<ConfigProblem> out;
  if (c.agent.api_key.empty()) {
    out.push_back(
        {"agent.api_key", "not set: put it in the config file or set TAOLIE_API_KEY", true});
  } else if (c.agent.api_key == kApiKeyPlaceholder) {
    out.push_back({"agent.api_key",
                   "still the placeholder \"your-api-key-here\": put the key from the platform "
                   "in the config file or set TAOLIE_API_KEY",
                   true});
  }
  if (c.server.url == kExampleServerUrl) {
    out.push_back({"server.url", "still the example URL; set your platform's URL", false});
  }
  return out;
}

bool HasFatal(const std::vector<ConfigProblem>& problems) {
  return std::any_of(problems.begin(), problems.end(),
                     [](const ConfigProblem& p) { return p.fatal; });
}

std::string FormatProblem(const ConfigProblem& problem) {
  return problem.key + ": " + problem.reason;
}

}  // namespace taolie::config
