// Config file -> Config: one reader per section of config.yaml, in the order of the file. The
// same walk, with a catalogue and a defaults map, lists every key and its built-in default.
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "config/config_internal.h"

namespace taolie::config {
namespace {

using internal::kRootKey;
using internal::Lower;
using internal::ParseInteger;
using internal::Quote;
using internal::Trim;

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::optional<double> ParseDouble(const std::string& raw) {
  std::string s = Trim(raw);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> ParseBool(const std::string& raw) {
  std::string s = Lower(Trim(raw));
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return std::nullopt;
}

const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

// Reads the fields of one YAML mapping, remembers which keys were used, and reports type
// errors as fatal problems and leftover keys as "unknown key" warnings. A null or missing
// mapping leaves every default in place. Only const YAML nodes are used: yaml-cpp's
// non-const operator[] would insert keys.
class Reader {
 public:
  Reader(const YAML::Node& node, std::string path, std::vector<ConfigProblem>* problems,
         std::set<std::string>* catalogue = nullptr,
         std::map<std::string, std::string>* defaults = nullptr)
      : node_(node),
        path_(std::move(path)),
        problems_(problems),
        catalogue_(catalogue),
        defaults_(defaults) {}

  void Int(const char* key, int* out) {
    if (defaults_ != nullptr) (*defaults_)[Join(path_, key)] = std::to_string(*out);
    long long v = 0;
    if (!ReadInteger(key, &v)) return;
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      Fatal(key, "integer out of range");
      return;
    }
    *out = static_cast<int>(v);
  }

  void Int64(const char* key, int64_t* out) {
    if (defaults_ != nullptr) (*defaults_)[Join(path_, key)] = std::to_string(*out);
    long long v = 0;
    if (ReadInteger(key, &v)) *out = v;
  }

  void Double(const char* key, double* out) {
    if (defaults_ != nullptr) {
      std::ostringstream text;
      text << *out;
      (*defaults_)[Join(path_, key)] = text.str();
    }
    YAML::Node n = Scalar(key, "a number");
    if (!n) return;
    auto v = ParseDouble(n.Scalar());
    if (!v) {
      Fatal(key, "expected a number, got " + Quote(n.Scalar()));
      return;
    }
    *out = *v;
  }

  void Bool(const char* key, bool* out) {
    if (defaults_ != nullptr) (*defaults_)[Join(path_, key)] = *out ? "true" : "false";
    YAML::Node n = Scalar(key, "true or false");
    if (!n) return;
    auto v = ParseBool(n.Scalar());
    if (!v) {
      Fatal(key, "expected true or false, got " + Quote(n.Scalar()));
      return;
    }
    *out = *v;
  }

  // Strings are never echoed in messages, so secrets are safe here.
  void String(const char* key, std::string* out) {
    if (defaults_ != nullptr) (*defaults_)[Join(path_, key)] = "\"" + *out + "\"";
    const YAML::Node n = Find(key);
    if (!n.IsDefined()) return;
    if (n.IsNull()) {
      out->clear();
      return;
    }
    if (!n.IsScalar()) {
      Fatal(key, std::string("expected a string, got ") + KindName(n));
      return;
    }
    *out = n.Scalar();
  }

  void StringList(const char* key, std::vector<std::string>* out) {
    if (defaults_ != nullptr) {
      std::string text = "[";
      for (const auto& v : *out) text += (text.size() > 1 ? ", \"" : "\"") + v + "\"";
      (*defaults_)[Join(path_, key)] = text + "]";
    }
    const YAML::Node n = Find(key);
    if (!n.IsDefined()) return;
    if (n.IsNull()) {
      out->clear();
      return;
    }
    if (!n.IsSequence()) {
      Fatal(key, std::string("expected a list of strings, got ") + KindName(n));
      return;
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node item = n[i];
      if (!item.IsScalar()) {
        problems_->push_back({Join(path_, key) + "[" + std::to_string(i) + "]",
                              std::string("expected a string, got ") + KindName(item), true});
        return;
      }
      values.push_back(item.Scalar());
    }
    *out = std::move(values);
  }

  void StringMap(const char* key, std::map<std::string, std::string>* out) {
    if (defaults_ != nullptr) {
      std::string text = "{";
      for (const auto& [k, v] : *out) {
        if (text.size() > 1) text += ", ";
        text.append(k).append(": \"").append(v).append("\"");
      }
      (*defaults_)[Join(path_, key)] = text + "}";
    }
    const YAML::Node n = Find(key);
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsMap()) {
      Fatal(key, std::string("expected a mapping of strings, got ") + KindName(n));
      return;
    }
    std::map<std::string, std::string> values;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) {
        Fatal(key, "keys must be strings");
        return;
      }
      const std::string sub = it->first.Scalar();
      if (it->second.IsNull()) {
        values[sub] = "";
      } else if (it->second.IsScalar()) {
        values[sub] = it->second.Scalar();
      } else {
        problems_->push_back({Join(Join(path_, key), sub),
                              std::string("expected a string, got ") + KindName(it->second), true});
        return;
      }
    }
    *out = std::move(values);
  }

  void PortRangeField(const char* key, PortRange* out) {
    if (defaults_ != nullptr) (*defaults_)[Join(path_, key)] = "\"" + FormatPortRange(*out) + "\"";
    const YAML::Node n = Find(key);
    if (!n.IsDefined()) return;
    if (n.IsNull()) {
      *out = PortRange{};
      return;
    }
    if (!n.IsScalar()) {
      Fatal(key, std::string("expected a string like \"30000-30999\", got ") + KindName(n));
      return;
    }
    auto r = ParsePortRange(n.Scalar());
    if (!r.ok()) {
      Fatal(key, r.error().message);
      return;
    }
    *out = *r;
  }

  // Reads a nested mapping with `fn`, then reports its unknown keys.
  template <typename Fn>
  void Section(const char* key, Fn&& fn) {
    const YAML::Node n = Find(key);
    if (catalogue_ != nullptr) {  // listing every key: walk each section, present or not
      catalogue_->erase(Join(path_, key));
      Reader child(n, Join(path_, key), problems_, catalogue_, defaults_);
      fn(child);
      return;
    }
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsMap()) {
      Fatal(key, std::string("expected a mapping, got ") + KindName(n));
      return;
    }
    Reader child(n, Join(path_, key), problems_);
    fn(child);
    child.ReportUnknown();
  }

  void ReportUnknown() const {
    if (!node_.IsMap()) return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!it->first.IsScalar()) {
        problems_->push_back({path_.empty() ? kRootKey : path_, "keys must be strings", true});
        continue;
      }
      const std::string& k = it->first.Scalar();
      if (used_.count(k) == 0) {
        problems_->push_back({Join(path_, k), "unknown key (ignored)", false});
      }
    }
  }

 private:
  YAML::Node Find(const char* key) {
    used_.insert(key);
    if (catalogue_ != nullptr) catalogue_->insert(Join(path_, key));
    if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  // A defined, non-null scalar, or an invalid node (after reporting a non-scalar).
  YAML::Node Scalar(const char* key, const char* expected) {
    YAML::Node n = Find(key);
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    if (!n.IsScalar()) {
      Fatal(key, std::string("expected ") + expected + ", got " + KindName(n));
      return YAML::Node(YAML::NodeType::Undefined);
    }
    return n;
  }

  bool ReadInteger(const char* key, long long* out) {
    YAML::Node n = Scalar(key, "an integer");
    if (!n) return false;
    auto v = ParseInteger(n.Scalar());
    if (!v) {
      Fatal(key, "expected an integer, got " + Quote(n.Scalar()));
      return false;
    }
    *out = *v;
    return true;
  }

  void Fatal(const char* key, std::string reason) {
    problems_->push_back({Join(path_, key), std::move(reason), true});
  }

  const YAML::Node node_;
  std::string path_;
  std::vector<ConfigProblem>* problems_;
  std::set<std::string>* catalogue_;              // when set: every key path read is recorded here
  std::map<std::string, std::string>* defaults_;  // when set: each key's value before reading
  std::set<std::string> used_;
};

// ---- one reader per section ----

void ReadAgent(Reader& s, AgentConfig& a) {
  s.String("id", &a.id);
  s.String("api_key", &a.api_key);
  s.String("version_label", &a.version_label);
  s.String("host_root", &a.host_root);
}

void ReadNetwork(Reader& s, NetworkConfig& n) {
  s.String("public_ip", &n.public_ip);
  s.Section("ports", [&](Reader& p) {
    p.Int("ssh", &n.ports.ssh);
    p.Int("rental_port_1", &n.ports.rental_port_1);
    p.Int("rental_port_2", &n.ports.rental_port_2);
    p.Int("rental_port_3", &n.ports.rental_port_3);
  });
  s.PortRangeField("port_range", &n.port_range);
  s.String("bind_ip", &n.bind_ip);
  s.Double("upload_mbps", &n.upload_mbps);
  s.Double("download_mbps", &n.download_mbps);
  s.Double("latency_ms", &n.latency_ms);
  s.String("interface", &n.interface);
  s.Section("security", [&](Reader& p) {
    p.Bool("enable_ssl", &n.security.enable_ssl);
    p.String("ssl_cert", &n.security.ssl_cert);
    p.String("ssl_key", &n.security.ssl_key);
    p.StringList("allowed_ips", &n.security.allowed_ips);
  });
  s.StringMap("port_descriptions", &n.port_descriptions);
}

void ReadServer(Reader& s, ServerConfig& v) {
  s.String("url", &v.url);
  s.Int("timeout", &v.timeout);
  s.String("ca_file", &v.ca_file);
  s.Bool("allow_insecure", &v.allow_insecure);
  s.String("timestamp_format", &v.timestamp_format);
  s.Int("ext_event_give_up_hours", &v.ext_event_give_up_hours);
}

void ReadGpuThresholds(Reader& t, GpuThresholds& g) {
  // The older names first: the seed's names, read after them, win when both are set.
  t.Double("temperature_warning_c", &g.temperature_warning_c);
  t.Double("temperature_max", &g.temperature_warning_c);
  t.Double("temperature_critical_c", &g.temperature_critical_c);
  t.Double("power_max", &g.power_max_watts);
  t.Double("utilization_min", &g.utilization_min);
  t.Double("power_warning_percent", &g.power_warning_percent);
  t.Double("memory_warning_percent", &g.memory_warning_percent);
  t.Double("fan_min_percent", &g.fan_min_percent);
  t.Int("ecc_uncorrected_max", &g.ecc_uncorrected_max);
  t.Int64("ecc_corrected_per_hour", &g.ecc_corrected_per_hour);
}

void ReadAlerts(Reader& a, AlertsConfig& al) {
  a.Bool("enabled", &al.enabled);
  a.String("webhook_url", &al.webhook_url);
  a.String("webhook", &al.webhook_url);  // the seed's name wins
  a.String("email_to", &al.email_to);
  a.String("email", &al.email_to);  // the seed's name wins
  a.String("email_from", &al.email_from);
  a.String("smtp_host", &al.smtp_host);
  a.Int("smtp_port", &al.smtp_port);
  a.Bool("smtp_starttls", &al.smtp_starttls);
  a.Bool("smtp_tls", &al.smtp_tls);
  a.String("smtp_username", &al.smtp_username);
  a.String("smtp_password", &al.smtp_password);
  a.Int("cooldown_seconds", &al.cooldown_seconds);
  a.Int("max_per_hour", &al.max_per_hour);
  a.Int("platform_unreachable_seconds", &al.platform_unreachable_seconds);
}

void ReadMonitoring(Reader& s, MonitoringConfig& m) {
  s.Int("gpu_metrics_interval", &m.gpu_metrics_interval);
  s.Int("gpu_health_interval", &m.gpu_health_interval);
  s.Int("heartbeat_interval", &m.heartbeat_interval);
  s.Int("command_poll_interval", &m.command_poll_interval);
  s.Int("metrics_push_interval", &m.metrics_push_interval);
  s.Int("health_push_interval", &m.health_push_interval);
  s.Int("duration_check_interval", &m.duration_check_interval);
  s.Int("power_sustain_seconds", &m.power_sustain_seconds);
  s.Int("quarantine_clear_seconds", &m.quarantine_clear_seconds);
  s.Int("stuck_loop_seconds", &m.stuck_loop_seconds);
  s.Section("gpu_thresholds", [&](Reader& t) { ReadGpuThresholds(t, m.gpu_thresholds); });
  s.Section("alerts", [&](Reader& a) { ReadAlerts(a, m.alerts); });
  s.Section("retention", [&](Reader& t) {
    t.Int("logs_days", &m.retention.logs_days);
    t.Int("metrics_days", &m.retention.metrics_days);
    t.Int("health_days", &m.retention.health_days);
    t.Int("events_days", &m.retention.events_days);
    t.Int("commands_days", &m.retention.commands_days);
  });
}

void ReadDatabase(Reader& s, DatabaseConfig& d) {
  s.String("mode", &d.mode);
  s.String("host", &d.host);
  s.Int("port", &d.port);
  s.String("name", &d.name);
  s.String("user", &d.user);
  s.String("password", &d.password);
  s.Int("connect_timeout", &d.connect_timeout);
  s.Int("statement_timeout_ms", &d.statement_timeout_ms);
  s.String("sslmode", &d.sslmode);
  s.String("sslrootcert", &d.sslrootcert);
  s.Int("keepalives_idle", &d.keepalives_idle);
  s.Int("keepalives_interval", &d.keepalives_interval);
  s.Int("keepalives_count", &d.keepalives_count);
  s.Int("tcp_user_timeout_ms", &d.tcp_user_timeout_ms);
}

void ReadGpu(Reader& s, GpuConfig& g) {
  s.String("uuid", &g.uuid);
  s.String("nvml_library", &g.nvml_library);
  s.String("nvidia_smi_path", &g.nvidia_smi_path);
  s.String("kmsg_path", &g.kmsg_path);
  s.StringList("exclude_uuids", &g.exclude_uuids);
  s.Int64("idle_memory_margin_mb", &g.idle_memory_margin_mb);
  s.Int("dirty_timeout_seconds", &g.dirty_timeout_seconds);
  s.Bool("allow_reset", &g.allow_reset);
}

void ReadLogging(Reader& s, LoggingConfig& l) {
  s.String("level", &l.level);
  s.String("file", &l.file);
  s.Int("max_size_mb", &l.max_size_mb);
  s.Int("max_files", &l.max_files);
  s.Bool("journal", &l.journal);
  s.Bool("console", &l.console);
}

void ReadDocker(Reader& s, DockerConfig& d) {
  s.String("host", &d.host);
  s.String("api_version", &d.api_version);
  s.Int("timeout", &d.timeout);
  s.Int("pull_timeout", &d.pull_timeout);
  s.Int("pull_stall_timeout", &d.pull_stall_timeout);
  s.Double("image_gc_min_free_gb", &d.image_gc_min_free_gb);
  s.Int("image_gc_days", &d.image_gc_days);
  s.StringList("prefetch_images", &d.prefetch_images);
}

// What a rental may ask for and get: durations, ports, volumes, resource limits.
void ReadDeploymentLimits(Reader& s, DeploymentConfig& d) {
  s.Int("max_duration_minutes", &d.max_duration_minutes);
  s.Int("max_ports", &d.max_ports);
  s.StringList("allowed_volume_roots", &d.allowed_volume_roots);
  s.Int("expiry_warning_seconds", &d.expiry_warning_seconds);
  s.Int("stop_grace_seconds", &d.stop_grace_seconds);
  s.Int("readiness_timeout_seconds", &d.readiness_timeout_seconds);
  s.Bool("require_ssh", &d.require_ssh);
  s.Int64("max_memory_mb", &d.max_memory_mb);
  s.Double("max_cpus", &d.max_cpus);
  s.Int64("max_shm_mb", &d.max_shm_mb);
  s.Int64("default_memory_mb", &d.default_memory_mb);
  s.Double("default_cpus", &d.default_cpus);
  s.Int64("default_shm_mb", &d.default_shm_mb);
  s.Int64("pids_limit", &d.pids_limit);
  s.Int("log_max_size_mb", &d.log_max_size_mb);
  s.Int("log_max_files", &d.log_max_files);
}

// How the container is confined (runtime, capabilities, network) and how much the host admits.
void ReadDeploymentIsolation(Reader& s, DeploymentConfig& d) {
  s.Bool("no_new_privileges", &d.no_new_privileges);
  s.String("runtime", &d.runtime);
  s.StringList("cap_add", &d.cap_add);
  s.String("nvidia_driver_capabilities", &d.nvidia_driver_capabilities);
  s.String("network_subnet", &d.network_subnet);
  s.Bool("allow_smtp", &d.allow_smtp);
  s.StringList("egress_allow", &d.egress_allow);
  s.StringList("rental_allowed_sources", &d.rental_allowed_sources);
  s.StringList("host_allow", &d.host_allow);
  s.Bool("require_isolation", &d.require_isolation);
  s.Int("max_deployments", &d.max_deployments);
  s.Double("max_committed_share", &d.max_committed_share);
  s.Double("min_free_disk_gb", &d.min_free_disk_gb);
  s.Int64("disk_quota_mb", &d.disk_quota_mb);
  s.StringList("allowed_registries", &d.allowed_registries);
}

void ReadApi(Reader& s, ApiConfig& a) {
  s.Bool("enabled", &a.enabled);
  s.String("listen", &a.listen);
  s.Int("port", &a.port);
  s.StringList("allowed_hosts", &a.allowed_hosts);
}

// The whole document, section by section in the order of config.yaml. With `catalogue` set,
// every key path is recorded there (present or not); with `defaults` set, each key's value
// before reading (the built-in default when `c` is a default Config).
void ReadConfig(const YAML::Node& root, Config* c, std::vector<ConfigProblem>* problems,
                std::set<std::string>* catalogue = nullptr,
                std::map<std::string, std::string>* defaults = nullptr) {
  Reader r(root, "", problems, catalogue, defaults);
  r.Section("agent", [&](Reader& s) { ReadAgent(s, c->agent); });
  r.Section("network", [&](Reader& s) { ReadNetwork(s, c->network); });
  r.Section("server", [&](Reader& s) { ReadServer(s, c->server); });
  r.Section("monitoring", [&](Reader& s) { ReadMonitoring(s, c->monitoring); });
  r.Section("database", [&](Reader& s) { ReadDatabase(s, c->database); });
  r.Section("gpu", [&](Reader& s) { ReadGpu(s, c->gpu); });
  r.Section("logging", [&](Reader& s) { ReadLogging(s, c->logging); });
  r.Section("docker", [&](Reader& s) { ReadDocker(s, c->docker); });
  r.Section("images", [&](Reader& s) { s.StringList("prefetch", &c->images.prefetch); });
  r.Section("deployment", [&](Reader& s) {
    ReadDeploymentLimits(s, c->deployment);
    ReadDeploymentIsolation(s, c->deployment);
  });
  r.Section("api", [&](Reader& s) { ReadApi(s, c->api); });
  r.String("data_dir", &c->data_dir);
  r.StringMap("provider", &c->provider);
  r.ReportUnknown();
}

}  // namespace

namespace internal {

void ReadDocument(const YAML::Node& root, Config* config, std::vector<ConfigProblem>* problems) {
  if (!root.IsDefined() || root.IsNull()) return;
  if (!root.IsMap()) {
    problems->push_back(
        {kRootKey, std::string("the document must be a mapping, got ") + KindName(root), true});
    return;
  }
  try {
    ReadConfig(root, config, problems);
  } catch (const YAML::Exception& e) {  // defensive: the reader checks types first
    problems->push_back({kRootKey, std::string("unreadable YAML: ") + e.msg, true});
  }
}

}  // namespace internal

std::set<std::string> KnownConfigKeys() {
  std::set<std::string> keys;
  Config scratch;
  std::vector<ConfigProblem> ignored;
  ReadConfig(YAML::Node(YAML::NodeType::Undefined), &scratch, &ignored, &keys);
  return keys;
}

std::map<std::string, std::string> ConfigDefaults() {
  std::set<std::string> keys;
  std::map<std::string, std::string> defaults;
  Config scratch;
  std::vector<ConfigProblem> ignored;
  ReadConfig(YAML::Node(YAML::NodeType::Undefined), &scratch, &ignored, &keys, &defaults);
  return defaults;
}

}  // namespace taolie::config
