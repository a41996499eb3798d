#include "config/config_loader.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "common/log_level.h"
#include "common/net_address.h"
#include "common/secrets.h"
#include "domain/image_reference.h"

namespace taolie::config {
namespace {

constexpr char kRootKey[] = "(root)";
constexpr char kExampleServerUrl[] = "https://api.yourplatform.com";

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Shortened, quoted rendering of a scalar for messages (never used for secret keys).
std::string Quote(const std::string& s) {
  constexpr size_t kMax = 60;
  return "\"" + (s.size() > kMax ? s.substr(0, kMax) + "..." : s) + "\"";
}

std::optional<long long> ParseInteger(const std::string& raw) {
  std::string s = Trim(raw);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.empty()) return std::nullopt;
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
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

void ReadConfig(const YAML::Node& root, Config* c, std::vector<ConfigProblem>* problems,
                std::set<std::string>* catalogue = nullptr,
                std::map<std::string, std::string>* defaults = nullptr) {
  Reader r(root, "", problems, catalogue, defaults);
  r.Section("agent", [&](Reader& s) {
    s.String("id", &c->agent.id);
    s.String("api_key", &c->agent.api_key);
    s.String("version_label", &c->agent.version_label);
    s.String("host_root", &c->agent.host_root);
  });
  r.Section("network", [&](Reader& s) {
    NetworkConfig& n = c->network;
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
  });
  r.Section("server", [&](Reader& s) {
    ServerConfig& v = c->server;
    s.String("url", &v.url);
    s.Int("timeout", &v.timeout);
    s.String("ca_file", &v.ca_file);
    s.Bool("allow_insecure", &v.allow_insecure);
    s.String("timestamp_format", &v.timestamp_format);
    s.Int("ext_event_give_up_hours", &v.ext_event_give_up_hours);
  });
  r.Section("monitoring", [&](Reader& s) {
    MonitoringConfig& m = c->monitoring;
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
    s.Section("gpu_thresholds", [&](Reader& t) {
      GpuThresholds& g = m.gpu_thresholds;
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
    });
    s.Section("alerts", [&](Reader& a) {
      AlertsConfig& al = m.alerts;
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
    });
    s.Section("retention", [&](Reader& t) {
      t.Int("logs_days", &m.retention.logs_days);
      t.Int("metrics_days", &m.retention.metrics_days);
      t.Int("health_days", &m.retention.health_days);
      t.Int("events_days", &m.retention.events_days);
      t.Int("commands_days", &m.retention.commands_days);
    });
  });
  r.Section("database", [&](Reader& s) {
    DatabaseConfig& d = c->database;
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
  });
  r.Section("gpu", [&](Reader& s) {
    s.String("uuid", &c->gpu.uuid);
    s.String("nvml_library", &c->gpu.nvml_library);
    s.String("nvidia_smi_path", &c->gpu.nvidia_smi_path);
    s.String("kmsg_path", &c->gpu.kmsg_path);
    s.StringList("exclude_uuids", &c->gpu.exclude_uuids);
    s.Int64("idle_memory_margin_mb", &c->gpu.idle_memory_margin_mb);
    s.Int("dirty_timeout_seconds", &c->gpu.dirty_timeout_seconds);
    s.Bool("allow_reset", &c->gpu.allow_reset);
  });
  r.Section("logging", [&](Reader& s) {
    LoggingConfig& l = c->logging;
    s.String("level", &l.level);
    s.String("file", &l.file);
    s.Int("max_size_mb", &l.max_size_mb);
    s.Int("max_files", &l.max_files);
    s.Bool("journal", &l.journal);
    s.Bool("console", &l.console);
  });
  r.Section("docker", [&](Reader& s) {
    DockerConfig& d = c->docker;
    s.String("host", &d.host);
    s.String("api_version", &d.api_version);
    s.Int("timeout", &d.timeout);
    s.Int("pull_timeout", &d.pull_timeout);
    s.Int("pull_stall_timeout", &d.pull_stall_timeout);
    s.Double("image_gc_min_free_gb", &d.image_gc_min_free_gb);
    s.Int("image_gc_days", &d.image_gc_days);
    s.StringList("prefetch_images", &d.prefetch_images);
  });
  r.Section("images", [&](Reader& s) { s.StringList("prefetch", &c->images.prefetch); });
  r.Section("deployment", [&](Reader& s) {
    DeploymentConfig& d = c->deployment;
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
  });
  r.Section("api", [&](Reader& s) {
    s.Bool("enabled", &c->api.enabled);
    s.String("listen", &c->api.listen);
    s.Int("port", &c->api.port);
    s.StringList("allowed_hosts", &c->api.allowed_hosts);
  });
  r.String("data_dir", &c->data_dir);
  r.StringMap("provider", &c->provider);
  r.ReportUnknown();
}

struct ParseError {
  bool failed = false;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string message;
};

// Parses YAML text; on syntax error fills `err` and returns an undefined node.
YAML::Node ParseYaml(const std::string& text, ParseError* err) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    err->failed = true;
    err->line = e.mark.is_null() ? 0 : e.mark.line + 1;
    err->column = e.mark.is_null() ? 0 : e.mark.column + 1;
    err->message = e.msg;
  } catch (const std::exception& e) {
    err->failed = true;
    err->message = e.what();
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string DescribeParseError(const ParseError& err) {
  std::ostringstream out;
  if (err.line > 0) out << "line " << err.line << ", column " << err.column << ": ";
  out << err.message;
  return out.str();
}

// images.prefetch and docker.prefetch_images name one list: the agent uses their union,
// docker.prefetch_images first (after validation, so each problem names its own key).
void MergePrefetchLists(Config& c) {
  std::vector<std::string>& merged = c.docker.prefetch_images;
  for (const std::string& image : c.images.prefetch) {
    if (std::find(merged.begin(), merged.end(), image) == merged.end()) merged.push_back(image);
  }
}

// Fills `result` from a parsed document; never throws.
void LoadFromNode(const YAML::Node& root, const EnvLookup& getenv, LoadResult* result) {
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) {
      result->problems.push_back(
          {kRootKey, std::string("the document must be a mapping, got ") + KindName(root), true});
    } else {
      try {
        ReadConfig(root, &result->config, &result->problems);
      } catch (const YAML::Exception& e) {  // defensive: the reader checks types first
        result->problems.push_back({kRootKey, std::string("unreadable YAML: ") + e.msg, true});
      }
    }
  }
  if (getenv) ApplyEnvironment(result->config, getenv);
  auto checks = Validate(result->config);
  result->problems.insert(result->problems.end(), checks.begin(), checks.end());
  MergePrefetchLists(result->config);
}

}  // namespace

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

namespace {

// ---- validation helpers ----

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

}  // namespace

// ---- public functions ----

Result<PortRange> ParsePortRange(const std::string& text) {
  std::string s = Trim(text);
  if (s.empty()) return PortRange{};
  size_t dash = s.find('-');
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected \"FIRST-LAST\" like \"30000-30999\", got " + Quote(text));
  };
  if (dash == std::string::npos) return bad();
  std::string a = Trim(s.substr(0, dash));
  std::string b = Trim(s.substr(dash + 1));
  if (a.empty() || b.empty() || a.find_first_not_of("0123456789") != std::string::npos ||
      b.find_first_not_of("0123456789") != std::string::npos || a.size() > 6 || b.size() > 6) {
    return bad();
  }
  auto first = ParseInteger(a);
  auto last = ParseInteger(b);
  if (!first || !last) return bad();
  return PortRange{static_cast<int>(*first), static_cast<int>(*last)};
}

Result<HostAllowEntry> ParseHostAllow(const std::string& text) {
  const std::string s = Trim(text);
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected \"CIDR:PORT\" like \"10.213.0.1/32:8080\", got " + Quote(text));
  }
  auto cidr = CanonicalIpv4Cidr(Trim(s.substr(0, colon)));
  if (!cidr.ok()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "not an IPv4 address or CIDR before the port: " + Quote(text));
  }
  const std::string port = Trim(s.substr(colon + 1));
  auto number = port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5
                    ? ParseInteger(port)
                    : std::nullopt;
  if (!number || *number < 1 || *number > 65535) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "port must be a number in 1..65535, got " + Quote(port));
  }
  return HostAllowEntry{*cidr, static_cast<int>(*number)};
}

std::string FormatPortRange(const PortRange& range) {
  if (range.empty()) return "";
  return std::to_string(range.first) + "-" + std::to_string(range.last);
}

bool IsKnownLogLevel(const std::string& level) { return ParseLogLevel(level).has_value(); }

void ApplyEnvironment(Config& config, const EnvLookup& getenv) {
  if (!getenv) return;
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  if (auto v = get("TAOLIE_API_KEY")) config.agent.api_key = *v;
  if (auto v = get("TAOLIE_DB_PASSWORD")) config.database.password = *v;
  if (auto v = get("TAOLIE_SMTP_PASSWORD")) config.monitoring.alerts.smtp_password = *v;
  if (auto v = get("TAOLIE_SERVER_URL")) config.server.url = *v;
  if (config.docker.host.empty()) {
    if (auto v = get("DOCKER_HOST")) config.docker.host = *v;
  }
}

LoadResult LoadConfigString(const std::string& yaml, const EnvLookup& getenv) {
  LoadResult result;
  ParseError err;
  YAML::Node root = ParseYaml(yaml, &err);
  if (err.failed) {
    result.problems.push_back({kRootKey, "invalid YAML: " + DescribeParseError(err), true});
    return result;
  }
  LoadFromNode(root, getenv, &result);
  return result;
}

Result<LoadResult> LoadConfigFile(const std::string& path, const EnvLookup& getenv) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int e = errno;
    ErrorCode code = e == ENOENT   ? ErrorCode::kNotFound
                     : e == EACCES ? ErrorCode::kPermissionDenied
                                   : ErrorCode::kUnavailable;
    return MakeError(code, "cannot read config file " + path + ": " + std::strerror(e));
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cannot read config file " + path + ": is a directory");
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return MakeError(ErrorCode::kUnavailable, "cannot read config file " + path);
  }
  ParseError err;
  YAML::Node root = ParseYaml(buf.str(), &err);
  if (err.failed) {
    std::string where = path;
    if (err.line > 0) where += ":" + std::to_string(err.line) + ":" + std::to_string(err.column);
    return MakeError(ErrorCode::kInvalidArgument,
                     "config file " + where + " is not valid YAML: " + DescribeParseError(err));
  }
  LoadResult result;
  LoadFromNode(root, getenv, &result);
  // Host volumes never reach the config file's directory (issue 7, item 5).
  result.config.config_file = std::filesystem::absolute(path, ec).lexically_normal().string();
  return result;
}

std::vector<ConfigProblem> Validate(const Config& c) {
  std::vector<ConfigProblem> out;
  Checker k(&out);

  // agent
  if (!c.agent.id.empty() && !IsValidAgentId(c.agent.id)) {
    k.Fatal("agent.id",
            "must be empty (generated on first start) or \"agent-\" followed by 12 "
            "lowercase hex digits, got " +
                Quote(c.agent.id));
  }
  if (!c.agent.host_root.empty()) {
    std::error_code ec;
    if (!std::filesystem::path(c.agent.host_root).is_absolute()) {
      k.Fatal("agent.host_root", "must be an absolute path, got " + Quote(c.agent.host_root));
    } else if (!std::filesystem::is_directory(c.agent.host_root, ec)) {
      k.Fatal("agent.host_root",
              "no such directory: " + Quote(c.agent.host_root) +
                  " (mount the host's /proc, /sys and /etc files under it, or leave it \"\")");
    }
  }

  // network
  const NetworkConfig& n = c.network;
  if (n.public_ip.empty()) {
    k.Warn("network.public_ip", "empty: renters will not be told where to connect");
  } else if (!IsIp(n.public_ip) && !IsHostname(n.public_ip)) {
    k.Fatal("network.public_ip", "not an IP address or host name: " + Quote(n.public_ip));
  }
  if (!IsIp(n.bind_ip)) k.Fatal("network.bind_ip", "not an IP address: " + Quote(n.bind_ip));
  struct NamedPort {
    const char* key;
    int port;
  };
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
  if (!n.port_range.empty()) {
    const PortRange& r = n.port_range;
    if (r.first < 1024 || r.last > 65535 || r.first > r.last) {
      k.Fatal("network.port_range",
              "must be FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, got " + FormatPortRange(r));
    } else {
      auto overlap = named;
      if (c.api.enabled) overlap.push_back({"api.port", c.api.port});
      for (const auto& p : overlap) {
        if (p.port >= r.first && p.port <= r.last) {
          k.Fatal("network.port_range",
                  "contains " + std::string(p.key) + " (" + std::to_string(p.port) + ")");
        }
      }
    }
  }
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

  // server
  ParsedUrl url;
  std::string url_err = ParseUrl(c.server.url, &url);
  if (!url_err.empty()) {
    k.Fatal("server.url", url_err);
  } else if (url.scheme == "http") {
    if (!IsLoopbackHost(url.host) && !c.server.allow_insecure) {
      k.Fatal("server.url",
              "plain http:// is only allowed for loopback hosts; use https:// "
              "or set server.allow_insecure: true");
    }
  } else if (url.scheme != "https") {
    k.Fatal("server.url", "scheme must be https (or http for loopback), got " + url.scheme);
  }
  k.Range("server.timeout", c.server.timeout, 1, 300);
  k.Positive("server.ext_event_give_up_hours", c.server.ext_event_give_up_hours);
  if (c.server.timestamp_format != "naive" && c.server.timestamp_format != "rfc3339") {
    k.Fatal("server.timestamp_format",
            "must be naive or rfc3339, got " + Quote(c.server.timestamp_format));
  }

  // monitoring
  const MonitoringConfig& m = c.monitoring;
  const std::pair<const char*, int> intervals[] = {
      {"monitoring.gpu_metrics_interval", m.gpu_metrics_interval},
      {"monitoring.gpu_health_interval", m.gpu_health_interval},
      {"monitoring.heartbeat_interval", m.heartbeat_interval},
      {"monitoring.command_poll_interval", m.command_poll_interval},
      {"monitoring.metrics_push_interval", m.metrics_push_interval},
      {"monitoring.health_push_interval", m.health_push_interval},
      {"monitoring.duration_check_interval", m.duration_check_interval}};
  for (const auto& [key, v] : intervals) k.Range(key, v, 1, 86400);
  const GpuThresholds& t = m.gpu_thresholds;
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
  k.Range("monitoring.power_sustain_seconds", m.power_sustain_seconds, 0, 86400);
  k.Range("monitoring.quarantine_clear_seconds", m.quarantine_clear_seconds, 0, 7 * 86400);
  k.Range("monitoring.stuck_loop_seconds", m.stuck_loop_seconds, 1, 86400);
  const AlertsConfig& al = m.alerts;
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
  k.Positive("monitoring.retention.logs_days", m.retention.logs_days);
  k.Positive("monitoring.retention.metrics_days", m.retention.metrics_days);
  k.Positive("monitoring.retention.health_days", m.retention.health_days);
  k.Positive("monitoring.retention.events_days", m.retention.events_days);
  k.Positive("monitoring.retention.commands_days", m.retention.commands_days);

  // database
  const DatabaseConfig& d = c.database;
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
  {
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

  // gpu
  if (c.gpu.nvml_library.empty()) k.Fatal("gpu.nvml_library", "must not be empty");
  if (c.gpu.nvidia_smi_path.empty()) k.Fatal("gpu.nvidia_smi_path", "must not be empty");
  k.NonNegative("gpu.idle_memory_margin_mb", c.gpu.idle_memory_margin_mb);
  k.Positive("gpu.dirty_timeout_seconds", c.gpu.dirty_timeout_seconds);

  // logging
  const LoggingConfig& l = c.logging;
  if (!IsKnownLogLevel(l.level)) {
    k.Fatal("logging.level", "unknown level " + Quote(l.level) +
                                 " (trace, debug, info, warning, error, critical, off)");
  }
  k.Range("logging.max_size_mb", l.max_size_mb, 1, 10240);
  k.Range("logging.max_files", l.max_files, 1, 100);
  if (!l.file.empty() && l.file.back() == '/') {
    k.Fatal("logging.file", "must name a file, not a directory");
  }

  // docker
  const DockerConfig& dk = c.docker;
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
  for (size_t i = 0; i < dk.prefetch_images.size(); ++i) {
    if (auto ref = domain::ParseImageReference(dk.prefetch_images[i]); !ref.ok()) {
      k.Fatal(
          "docker.prefetch_images[" + std::to_string(i) + "]",
          "not an image reference (" + ref.error().message + "): " + Quote(dk.prefetch_images[i]));
    }
  }
  for (size_t i = 0; i < c.images.prefetch.size(); ++i) {
    if (auto ref = domain::ParseImageReference(c.images.prefetch[i]); !ref.ok()) {
      k.Fatal(
          "images.prefetch[" + std::to_string(i) + "]",
          "not an image reference (" + ref.error().message + "): " + Quote(c.images.prefetch[i]));
    }
  }

  // deployment
  const DeploymentConfig& dp = c.deployment;
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
  {
    static const std::vector<std::string> kDriverCaps = {
        "compute", "compat32", "graphics", "utility", "video", "display", "all"};
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

  {
    auto subnet = CanonicalIpv4Cidr(dp.network_subnet);
    if (!subnet.ok()) {
      k.Fatal("deployment.network_subnet", "not an IPv4 CIDR: " + Quote(dp.network_subnet));
    } else if (*subnet != dp.network_subnet) {
      k.Fatal(
          "deployment.network_subnet",
          Quote(dp.network_subnet) + " is not a network address; did you mean " + *subnet + "?");
    } else if (int prefix = std::stoi(subnet->substr(subnet->find('/') + 1));
               prefix < 16 || prefix > 28) {
      k.Fatal("deployment.network_subnet", "prefix must be /16 to /28, got " + *subnet);
    }
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

  // api
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

  // data_dir
  if (c.data_dir.empty() || !std::filesystem::path(c.data_dir).is_absolute()) {
    k.Fatal("data_dir", "must be an absolute path, got " + Quote(c.data_dir));
  }
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
