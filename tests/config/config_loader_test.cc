#include "config/config_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace taolie::config {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Keys(const std::vector<ConfigProblem>& problems, bool fatal) {
  std::vector<std::string> keys;
  for (const auto& p : problems) {
    if (p.fatal == fatal) keys.push_back(p.key);
  }
  return keys;
}

std::string Dump(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems)
    out += (p.fatal ? "[fatal] " : "[warn] ") + FormatProblem(p) + "\n";
  return out;
}

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/config_loader_test_" + name;
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

TEST(ConfigLoader, EmptyDocumentGivesDefaultsAndOnlyWarnings) {
  LoadResult r = LoadConfigString("");
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  EXPECT_EQ(Keys(r.problems, false), std::vector<std::string>{"network.public_ip"});
  EXPECT_EQ(r.config.network.ports.ssh, 2222);
  EXPECT_EQ(r.config.server.timestamp_format, "naive");
}

TEST(ConfigLoader, PythonAgentConfigLoadsUnchanged) {
  auto r = LoadConfigFile(std::string(TAOLIE_CONFIG_TESTDATA_DIR) + "/python_agent_config.yaml");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(HasFatal(r->problems)) << Dump(r->problems);
  EXPECT_THAT(r->problems, IsEmpty()) << Dump(r->problems);
  const Config& c = r->config;
  EXPECT_EQ(c.agent.id, "");
  EXPECT_EQ(c.agent.api_key, "your-api-key-here");
  EXPECT_EQ(c.network.public_ip, "123.45.67.89");
  EXPECT_EQ(c.network.ports.ssh, 2222);
  EXPECT_EQ(c.network.ports.rental_port_1, 8888);
  EXPECT_EQ(c.network.ports.rental_port_2, 9999);
  EXPECT_EQ(c.network.port_descriptions.size(), 3u);
  EXPECT_EQ(c.network.port_descriptions.at("ssh"), "SSH access to deployed containers");
  EXPECT_EQ(c.server.url, "https://api.yourplatform.com");
  EXPECT_EQ(c.server.timeout, 10);
  EXPECT_EQ(c.monitoring.heartbeat_interval, 30);
  EXPECT_EQ(c.monitoring.health_push_interval, 60);
  EXPECT_EQ(c.database.host, "localhost");
  EXPECT_EQ(c.database.port, 5432);
  EXPECT_EQ(c.database.password, "auto-generated-on-install");
  EXPECT_EQ(c.logging.level, "INFO");
  EXPECT_EQ(c.logging.max_files, 5);
  EXPECT_EQ(c.provider.size(), 3u);
  EXPECT_EQ(c.provider.at("region"), "");

  // Running needs a real API key; the placeholder is rejected only there.
  auto run = ValidateForRun(c);
  EXPECT_THAT(Keys(run, true), std::vector<std::string>{"agent.api_key"});
}

TEST(ConfigLoader, DeploySeedConfigHasNoFatalProblemExceptApiKeyForRun) {
  auto r = LoadConfigFile(TAOLIE_DEPLOY_CONFIG);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(HasFatal(r->problems)) << Dump(r->problems);
  // Every key in the seed is a known key, and only the empty public_ip warns.
  EXPECT_EQ(Keys(r->problems, false), std::vector<std::string>{"network.public_ip"})
      << Dump(r->problems);
  auto run = ValidateForRun(r->config);
  EXPECT_EQ(Keys(run, true), std::vector<std::string>{"agent.api_key"}) << Dump(run);

  // The seed documents the defaults.
  const Config d;
  const Config& c = r->config;
  EXPECT_EQ(c.network.ports.ssh, d.network.ports.ssh);
  EXPECT_EQ(c.network.bind_ip, d.network.bind_ip);
  EXPECT_TRUE(c.network.port_range.empty());
  EXPECT_EQ(c.server.url, d.server.url);
  EXPECT_EQ(c.server.timeout, d.server.timeout);
  EXPECT_EQ(c.server.timestamp_format, d.server.timestamp_format);
  EXPECT_EQ(c.monitoring.gpu_metrics_interval, d.monitoring.gpu_metrics_interval);
  EXPECT_EQ(c.monitoring.gpu_thresholds.temperature_critical_c,
            d.monitoring.gpu_thresholds.temperature_critical_c);
  EXPECT_EQ(c.monitoring.alerts.cooldown_seconds, d.monitoring.alerts.cooldown_seconds);
  EXPECT_EQ(c.monitoring.retention.metrics_days, d.monitoring.retention.metrics_days);
  EXPECT_EQ(c.database.statement_timeout_ms, d.database.statement_timeout_ms);
  EXPECT_EQ(c.gpu.nvml_library, d.gpu.nvml_library);
  EXPECT_EQ(c.logging.file, d.logging.file);
  EXPECT_EQ(c.logging.journal, d.logging.journal);
  EXPECT_EQ(c.docker.pull_timeout, d.docker.pull_timeout);
  EXPECT_EQ(c.deployment.max_duration_minutes, d.deployment.max_duration_minutes);
  EXPECT_EQ(c.deployment.default_shm_mb, d.deployment.default_shm_mb);
  EXPECT_EQ(c.deployment.pids_limit, d.deployment.pids_limit);
  EXPECT_EQ(c.deployment.require_ssh, d.deployment.require_ssh);
  EXPECT_TRUE(c.deployment.allowed_volume_roots.empty());
  EXPECT_EQ(c.deployment.network_subnet, d.deployment.network_subnet);
  EXPECT_EQ(c.deployment.allow_smtp, d.deployment.allow_smtp);
  EXPECT_TRUE(c.deployment.egress_allow.empty());
  EXPECT_TRUE(c.deployment.rental_allowed_sources.empty());
  EXPECT_EQ(c.deployment.require_isolation, d.deployment.require_isolation);
  EXPECT_EQ(c.api.port, d.api.port);
  EXPECT_EQ(c.api.listen, d.api.listen);
  EXPECT_EQ(c.data_dir, d.data_dir);
}

TEST(ConfigLoader, ReadsEveryNestedSection) {
  LoadResult r = LoadConfigString(R"(
agent: {id: "agent-0123456789ab", api_key: "k-123456", version_label: "v2"}
network:
  public_ip: "gpu1.example.net"
  port_range: "30000-30999"
  bind_ip: "10.0.0.5"
  upload_mbps: 950.5
  interface: eth0
  ports: {ssh: 2200, rental_port_1: 8000, rental_port_2: 9000, rental_port_3: 7000}
  security:
    enable_ssl: yes
    ssl_cert: /etc/ssl/a.pem
    ssl_key: /etc/ssl/a.key
    allowed_ips: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
server: {url: "http://127.0.0.1:8080/", timeout: 5, timestamp_format: rfc3339}
monitoring:
  gpu_thresholds: {temperature_warning_c: 75, temperature_critical_c: 85.5, ecc_uncorrected_max: 2}
  alerts: {enabled: true, webhook_url: "https://hooks.example.com/abc", smtp_port: 587}
  retention: {metrics_days: 3}
database: {mode: external, host: db.internal, connect_timeout: 3, sslmode: verify-full,
           sslrootcert: /etc/ssl/db-ca.pem}
gpu: {exclude_uuids: ["GPU-1", "GPU-2"], idle_memory_margin_mb: 512, dirty_timeout_seconds: 60}
logging: {level: WARNING, file: "", journal: false, console: off}
docker: {host: "unix:///run/docker.sock", api_version: "1.41", image_gc_min_free_gb: 50,
         image_gc_days: 3, prefetch_images: ["127.0.0.1:5555/taolie-test/sshd:1", "ubuntu"]}
deployment:
  allowed_volume_roots: ["/data/rentals", "/srv/x/"]
  max_memory_mb: 65536
  default_memory_mb: 32768
  max_cpus: 16.5
  no_new_privileges: true
  runtime: nvidia
  cap_add: [SYS_NICE]
  nvidia_driver_capabilities: "compute,utility,graphics"
  network_subnet: "10.77.0.0/24"
  allow_smtp: true
  egress_allow: ["192.168.1.10", "10.1.0.0/16"]
  rental_allowed_sources: ["203.0.113.0/24"]
  host_allow: ["10.77.0.1/32:8080", "0.0.0.0/0:3128"]
  require_isolation: false
  max_deployments: 4
  max_committed_share: 0.75
  min_free_disk_gb: 25.5
  disk_quota_mb: 204800
  allowed_registries: ["127.0.0.1:5555", "registry.lan"]
api: {enabled: false, listen: "0.0.0.0", port: 9200}
data_dir: /srv/taolie
provider: {name: "Acme", region: "eu-west"}
)");
  EXPECT_THAT(r.problems, IsEmpty()) << Dump(r.problems);
  const Config& c = r.config;
  EXPECT_EQ(c.agent.version_label, "v2");
  EXPECT_EQ(c.network.port_range.first, 30000);
  EXPECT_EQ(c.network.port_range.last, 30999);
  EXPECT_EQ(c.network.ports.rental_port_3, 7000);
  EXPECT_DOUBLE_EQ(c.network.upload_mbps, 950.5);
  EXPECT_TRUE(c.network.security.enable_ssl);
  EXPECT_EQ(c.network.security.allowed_ips.size(), 3u);
  EXPECT_EQ(c.server.timestamp_format, "rfc3339");
  EXPECT_DOUBLE_EQ(c.monitoring.gpu_thresholds.temperature_critical_c, 85.5);
  EXPECT_EQ(c.monitoring.gpu_thresholds.ecc_uncorrected_max, 2);
  EXPECT_TRUE(c.monitoring.alerts.enabled);
  EXPECT_EQ(c.monitoring.alerts.smtp_port, 587);
  EXPECT_EQ(c.monitoring.retention.metrics_days, 3);
  EXPECT_EQ(c.monitoring.retention.health_days, 30);
  EXPECT_EQ(c.database.mode, "external");
  EXPECT_EQ(c.gpu.exclude_uuids, (std::vector<std::string>{"GPU-1", "GPU-2"}));
  EXPECT_EQ(c.logging.level, "WARNING");
  EXPECT_EQ(c.logging.file, "");
  EXPECT_FALSE(c.logging.console);
  EXPECT_EQ(c.docker.host, "unix:///run/docker.sock");
  EXPECT_EQ(c.deployment.allowed_volume_roots.size(), 2u);
  EXPECT_EQ(c.deployment.max_memory_mb, 65536);
  EXPECT_DOUBLE_EQ(c.deployment.max_cpus, 16.5);
  EXPECT_EQ(c.deployment.runtime, "nvidia");
  EXPECT_EQ(c.deployment.cap_add, std::vector<std::string>{"SYS_NICE"});
  EXPECT_EQ(c.deployment.nvidia_driver_capabilities, "compute,utility,graphics");
  EXPECT_EQ(c.deployment.network_subnet, "10.77.0.0/24");
  EXPECT_TRUE(c.deployment.allow_smtp);
  EXPECT_EQ(c.deployment.egress_allow, (std::vector<std::string>{"192.168.1.10", "10.1.0.0/16"}));
  EXPECT_EQ(c.deployment.rental_allowed_sources, std::vector<std::string>{"203.0.113.0/24"});
  EXPECT_EQ(c.deployment.host_allow,
            (std::vector<std::string>{"10.77.0.1/32:8080", "0.0.0.0/0:3128"}));
  EXPECT_FALSE(c.deployment.require_isolation);
  EXPECT_EQ(c.database.sslmode, "verify-full");
  EXPECT_EQ(c.database.sslrootcert, "/etc/ssl/db-ca.pem");
  EXPECT_EQ(c.gpu.idle_memory_margin_mb, 512);
  EXPECT_EQ(c.gpu.dirty_timeout_seconds, 60);
  EXPECT_DOUBLE_EQ(c.docker.image_gc_min_free_gb, 50);
  EXPECT_EQ(c.docker.image_gc_days, 3);
  EXPECT_EQ(c.docker.prefetch_images,
            (std::vector<std::string>{"127.0.0.1:5555/taolie-test/sshd:1", "ubuntu"}));
  EXPECT_EQ(c.deployment.max_deployments, 4);
  EXPECT_DOUBLE_EQ(c.deployment.max_committed_share, 0.75);
  EXPECT_DOUBLE_EQ(c.deployment.min_free_disk_gb, 25.5);
  EXPECT_EQ(c.deployment.disk_quota_mb, 204800);
  EXPECT_EQ(c.deployment.allowed_registries,
            (std::vector<std::string>{"127.0.0.1:5555", "registry.lan"}));
  EXPECT_FALSE(c.api.enabled);
  EXPECT_EQ(c.api.port, 9200);
  EXPECT_EQ(c.data_dir, "/srv/taolie");
  EXPECT_EQ(c.provider.at("name"), "Acme");
}

TEST(ConfigLoader, UnknownKeysWarnWithTheirPath) {
  LoadResult r = LoadConfigString(R"(
agent: {idd: "x"}
network: {ports: {ssh: 2222, telnet: 23}}
colour: blue
)");
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  auto warnings = Keys(r.problems, false);
  EXPECT_THAT(warnings, Contains("agent.idd"));
  EXPECT_THAT(warnings, Contains("network.ports.telnet"));
  EXPECT_THAT(warnings, Contains("colour"));
  for (const auto& p : r.problems) {
    if (p.key == "colour") {
      EXPECT_EQ(FormatProblem(p), "colour: unknown key (ignored)");
    }
  }
}

TEST(ConfigLoader, NullValuesKeepDefaultsOrEmptyStrings) {
  LoadResult r = LoadConfigString("agent:\n  id:\nnetwork:\n  ports:\n    ssh:\nmonitoring:\n");
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  EXPECT_EQ(r.config.agent.id, "");
  EXPECT_EQ(r.config.network.ports.ssh, 2222);
}

TEST(ConfigLoader, LogLevelSpellings) {
  for (const char* level : {"INFO", "info", "WARN", "WARNING", "warning", "Error", "DEBUG",
                            "critical", "trace", "off", "FATAL"}) {
    LoadResult r = LoadConfigString(std::string("logging: {level: ") + level + "}");
    EXPECT_FALSE(HasFatal(r.problems)) << level << "\n" << Dump(r.problems);
  }
  EXPECT_FALSE(IsKnownLogLevel("verbose"));
}

TEST(ConfigLoader, HttpAllowedForLoopbackOrWhenInsecureAllowed) {
  for (const char* yaml :
       {"server: {url: \"http://127.0.0.1:8080\"}", "server: {url: \"http://localhost/api\"}",
        "server: {url: \"http://[::1]:9000/\"}", "server: {url: \"https://[2001:db8::1]:8443/x\"}",
        "server: {url: \"http://10.1.2.3\", allow_insecure: true}"}) {
    LoadResult r = LoadConfigString(yaml);
    EXPECT_FALSE(HasFatal(r.problems)) << yaml << "\n" << Dump(r.problems);
  }
  LoadResult r = LoadConfigString("server: {url: \"http://api.example.com\"}");
  ASSERT_EQ(Keys(r.problems, true), std::vector<std::string>{"server.url"});
  for (const auto& p : r.problems) {
    if (p.fatal) {
      EXPECT_THAT(p.reason, HasSubstr("allow_insecure"));
    }
  }
}

struct BadCase {
  const char* yaml;
  const char* key;  // the (first) fatal key expected
};

class BadValueTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadValueTest, NamesTheKey) {
  const BadCase& c = GetParam();
  LoadResult r;
  EXPECT_NO_THROW(r = LoadConfigString(c.yaml));
  EXPECT_TRUE(HasFatal(r.problems)) << c.yaml;
  EXPECT_THAT(Keys(r.problems, true), Contains(std::string(c.key))) << c.yaml << "\n"
                                                                    << Dump(r.problems);
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadValueTest,
    ::testing::Values(
        BadCase{"network: {ports: {ssh: \"abc\"}}", "network.ports.ssh"},
        BadCase{"deployment: {cap_add: [NET_RAW, SYS_ADMIN]}", "deployment.cap_add[1]"},
        BadCase{"deployment: {cap_add: [CAP_SYS_PTRACE]}", "deployment.cap_add[0]"},
        BadCase{"deployment: {nvidia_driver_capabilities: \"compute,,utility\"}",
                "deployment.nvidia_driver_capabilities"},
        BadCase{"deployment: {nvidia_driver_capabilities: \"\"}",
                "deployment.nvidia_driver_capabilities"},
        BadCase{"deployment: {network_subnet: \"10.213.0.0/33\"}", "deployment.network_subnet"},
        BadCase{"deployment: {network_subnet: \"10.213.0.1/24\"}", "deployment.network_subnet"},
        BadCase{"deployment: {network_subnet: \"10.0.0.0/8\"}", "deployment.network_subnet"},
        BadCase{"deployment: {network_subnet: \"fd00::/64\"}", "deployment.network_subnet"},
        BadCase{"deployment: {egress_allow: [\"10.0.0.0/8\", \"x\"]}",
                "deployment.egress_allow[1]"},
        BadCase{"deployment: {rental_allowed_sources: [\"::/0\"]}",
                "deployment.rental_allowed_sources[0]"},
        BadCase{"deployment: {host_allow: [\"10.0.0.1:22\", \"10.0.0.0/33:80\"]}",
                "deployment.host_allow[1]"},
        BadCase{"deployment: {host_allow: [\"10.0.0.1:0\"]}", "deployment.host_allow[0]"},
        BadCase{"deployment: {host_allow: [\"10.0.0.1:65536\"]}", "deployment.host_allow[0]"},
        BadCase{"deployment: {host_allow: [\"10.0.0.1\"]}", "deployment.host_allow[0]"},
        BadCase{"deployment: {host_allow: \"10.0.0.1:22\"}", "deployment.host_allow"},
        BadCase{"network: {bind_ip: \"::\"}\ndeployment: {rental_allowed_sources: [1.2.3.4]}",
                "network.bind_ip"},
        BadCase{"database: {sslmode: required}", "database.sslmode"},
        BadCase{"database: {sslrootcert: ca.pem}", "database.sslrootcert"},
        BadCase{"gpu: {dirty_timeout_seconds: 0}", "gpu.dirty_timeout_seconds"},
        BadCase{"gpu: {idle_memory_margin_mb: -1}", "gpu.idle_memory_margin_mb"},
        BadCase{"docker: {image_gc_days: -1}", "docker.image_gc_days"},
        BadCase{"docker: {image_gc_min_free_gb: -5}", "docker.image_gc_min_free_gb"},
        BadCase{"docker: {prefetch_images: [\"ubuntu\", \"Bad Image\"]}",
                "docker.prefetch_images[1]"},
        BadCase{"images: {prefetch: [\"Bad Image\"]}", "images.prefetch[0]"},
        BadCase{"deployment: {max_deployments: -1}", "deployment.max_deployments"},
        BadCase{"deployment: {max_committed_share: 0}", "deployment.max_committed_share"},
        BadCase{"deployment: {max_committed_share: 1.5}", "deployment.max_committed_share"},
        BadCase{"deployment: {min_free_disk_gb: -1}", "deployment.min_free_disk_gb"},
        BadCase{"deployment: {disk_quota_mb: -10}", "deployment.disk_quota_mb"},
        BadCase{"deployment: {allowed_registries: [\"https://r.example\"]}",
                "deployment.allowed_registries[0]"},
        BadCase{"network: {ports: {ssh: 0}}", "network.ports.ssh"},
        BadCase{"network: {ports: {ssh: 70000}}", "network.ports.ssh"},
        BadCase{"network: {ports: {ssh: 99999999999999}}", "network.ports.ssh"},
        BadCase{"network: {ports: {ssh: [1]}}", "network.ports.ssh"},
        BadCase{"network: {ports: {rental_port_1: 2222}}", "network.ports.rental_port_1"},
        BadCase{"network: {ports: {rental_port_3: 9999}}", "network.ports.rental_port_3"},
        BadCase{"network: {ports: 5}", "network.ports"}, BadCase{"network: [1, 2]", "network"},
        BadCase{"network: {port_range: \"30000\"}", "network.port_range"},
        BadCase{"network: {port_range: 30000}", "network.port_range"},
        BadCase{"network: {port_range: \"a-b\"}", "network.port_range"},
        BadCase{"network: {port_range: \"1000-2000\"}", "network.port_range"},
        BadCase{"network: {port_range: \"31000-30000\"}", "network.port_range"},
        BadCase{"network: {port_range: \"60000-70000\"}", "network.port_range"},
        BadCase{"network: {port_range: \"8000-9000\"}", "network.port_range"},
        BadCase{"network: {port_range: \"9100-9200\"}", "network.port_range"},  // api.port
        BadCase{"network: {public_ip: \"not an ip\"}", "network.public_ip"},
        BadCase{"network: {bind_ip: \"anywhere\"}", "network.bind_ip"},
        BadCase{"network: {upload_mbps: fast}", "network.upload_mbps"},
        BadCase{"network: {latency_ms: -1}", "network.latency_ms"},
        BadCase{"network: {security: {enable_ssl: maybe}}", "network.security.enable_ssl"},
        BadCase{"network: {security: {enable_ssl: true}}", "network.security.ssl_cert"},
        BadCase{"network: {security: {allowed_ips: \"10.0.0.1\"}}", "network.security.allowed_ips"},
        BadCase{"network: {security: {allowed_ips: [\"10.0.0.0/8\", \"bogus\"]}}",
                "network.security.allowed_ips[1]"},
        BadCase{"network: {security: {allowed_ips: [\"10.0.0.0/33\"]}}",
                "network.security.allowed_ips[0]"},
        BadCase{"api: {allowed_hosts: [\"gpu-host-1:9109\"]}", "api.allowed_hosts"},
        BadCase{"network: {security: {allowed_ips: [{a: 1}]}}", "network.security.allowed_ips[0]"},
        BadCase{"network: {port_descriptions: [a]}", "network.port_descriptions"},
        BadCase{"server: {url: \"\"}", "server.url"},
        BadCase{"server: {url: \"not a url\"}", "server.url"},
        BadCase{"server: {url: \"ftp://files.example.com\"}", "server.url"},
        BadCase{"server: {url: \"https://api.example.com:99999\"}", "server.url"},
        BadCase{"server: {url: \"https://user:pw@api.example.com\"}", "server.url"},
        BadCase{"server: {url: \"http://api.example.com\"}", "server.url"},
        BadCase{"server: {url: \"http://127.0.0.1.example.com\"}", "server.url"},
        BadCase{"server: {timeout: 0}", "server.timeout"},
        BadCase{"server: {timeout: 301}", "server.timeout"},
        BadCase{"server: {timeout: ten}", "server.timeout"},
        BadCase{"server: {allow_insecure: 2}", "server.allow_insecure"},
        BadCase{"server: {timestamp_format: iso}", "server.timestamp_format"},
        BadCase{"monitoring: {heartbeat_interval: 0}", "monitoring.heartbeat_interval"},
        BadCase{"monitoring: {heartbeat_interval: 86401}", "monitoring.heartbeat_interval"},
        BadCase{"monitoring: {command_poll_interval: -1}", "monitoring.command_poll_interval"},
        BadCase{"monitoring: {metrics_push_interval: 1.5}", "monitoring.metrics_push_interval"},
        BadCase{"monitoring: {health_push_interval: 0}", "monitoring.health_push_interval"},
        BadCase{"monitoring: {duration_check_interval: 0}", "monitoring.duration_check_interval"},
        BadCase{"monitoring: {gpu_metrics_interval: 0}", "monitoring.gpu_metrics_interval"},
        BadCase{"monitoring: {gpu_health_interval: 100000}", "monitoring.gpu_health_interval"},
        BadCase{"monitoring: {gpu_thresholds: {temperature_warning_c: 95, "
                "temperature_critical_c: 90}}",
                "monitoring.gpu_thresholds.temperature_warning_c"},
        BadCase{"monitoring: {gpu_thresholds: {temperature_critical_c: 200}}",
                "monitoring.gpu_thresholds.temperature_critical_c"},
        BadCase{"monitoring: {gpu_thresholds: {temperature_warning_c: -5}}",
                "monitoring.gpu_thresholds.temperature_warning_c"},
        BadCase{"monitoring: {gpu_thresholds: {memory_warning_percent: 101}}",
                "monitoring.gpu_thresholds.memory_warning_percent"},
        BadCase{"monitoring: {gpu_thresholds: {ecc_uncorrected_max: -1}}",
                "monitoring.gpu_thresholds.ecc_uncorrected_max"},
        BadCase{"monitoring: {alerts: {webhook_url: \"hooks.example.com/x\"}}",
                "monitoring.alerts.webhook_url"},
        BadCase{"monitoring: {alerts: {enabled: true}}", "monitoring.alerts.enabled"},
        BadCase{"monitoring: {alerts: {email_to: ops@example.com, smtp_username: u, "
                "smtp_password: p}}",
                "monitoring.alerts.smtp_username"},
        BadCase{"monitoring: {alerts: {smtp_port: 0}}", "monitoring.alerts.smtp_port"},
        BadCase{"monitoring: {alerts: {smtp_tls: true}}", "monitoring.alerts.smtp_tls"},
        BadCase{"monitoring: {alerts: {smtp_starttls: false, smtp_username: u, smtp_password: p}}",
                "monitoring.alerts.smtp_username"},
        BadCase{"monitoring: {alerts: {smtp_username: u}}", "monitoring.alerts.smtp_password"},
        BadCase{"monitoring: {alerts: {smtp_password: p}}", "monitoring.alerts.smtp_username"},
        BadCase{"monitoring: {alerts: {max_per_hour: 0}}", "monitoring.alerts.max_per_hour"},
        BadCase{"monitoring: {alerts: {platform_unreachable_seconds: 10}}",
                "monitoring.alerts.platform_unreachable_seconds"},
        BadCase{"monitoring: {alerts: {smtp_starttls: maybe}}", "monitoring.alerts.smtp_starttls"},
        BadCase{"monitoring: {power_sustain_seconds: -1}", "monitoring.power_sustain_seconds"},
        BadCase{"monitoring: {quarantine_clear_seconds: -1}",
                "monitoring.quarantine_clear_seconds"},
        BadCase{"monitoring: {gpu_thresholds: {ecc_corrected_per_hour: -1}}",
                "monitoring.gpu_thresholds.ecc_corrected_per_hour"},
        BadCase{"gpu: {allow_reset: sometimes}", "gpu.allow_reset"},
        BadCase{"monitoring: {retention: {metrics_days: 0}}", "monitoring.retention.metrics_days"},
        BadCase{"monitoring: {retention: {events_days: x}}", "monitoring.retention.events_days"},
        BadCase{"database: {mode: cloud}", "database.mode"},
        BadCase{"database: {mode: external}", "database.host"},
        BadCase{"database: {port: 0}", "database.port"},
        BadCase{"database: {port: \"5432x\"}", "database.port"},
        BadCase{"database: {name: \"\"}", "database.name"},
        BadCase{"database: {connect_timeout: 0}", "database.connect_timeout"},
        BadCase{"database: {statement_timeout_ms: 0}", "database.statement_timeout_ms"},
        BadCase{"database: {password: [a, b]}", "database.password"},
        BadCase{"gpu: {nvml_library: \"\"}", "gpu.nvml_library"},
        BadCase{"gpu: {exclude_uuids: {a: b}}", "gpu.exclude_uuids"},
        BadCase{"logging: {level: verbose}", "logging.level"},
        BadCase{"logging: {max_size_mb: 0}", "logging.max_size_mb"},
        BadCase{"logging: {max_size_mb: 20000}", "logging.max_size_mb"},
        BadCase{"logging: {max_files: 0}", "logging.max_files"},
        BadCase{"logging: {max_files: 101}", "logging.max_files"},
        BadCase{"logging: {journal: sometimes}", "logging.journal"},
        BadCase{"logging: {file: \"/var/log/\"}", "logging.file"},
        BadCase{"agent: {id: \"agent-XYZ\"}", "agent.id"},
        BadCase{"agent: {id: \"agent-0123456789AB\"}", "agent.id"},
        BadCase{"agent: {id: {x: 1}}", "agent.id"},
        BadCase{"docker: {host: \"/var/run/docker.sock\"}", "docker.host"},
        BadCase{"docker: {host: \"tcp://127.0.0.1:2375\"}", "docker.host"},
        BadCase{"docker: {timeout: 0}", "docker.timeout"},
        BadCase{"docker: {pull_timeout: -5}", "docker.pull_timeout"},
        BadCase{"docker: {pull_stall_timeout: 0}", "docker.pull_stall_timeout"},
        BadCase{"deployment: {allowed_volume_roots: [\"relative/dir\"]}",
                "deployment.allowed_volume_roots[0]"},
        BadCase{"deployment: {allowed_volume_roots: [\"/data\", \"/\"]}",
                "deployment.allowed_volume_roots[1]"},
        BadCase{"deployment: {allowed_volume_roots: [\"/data/..\"]}",
                "deployment.allowed_volume_roots[0]"},
        BadCase{"deployment: {max_ports: 0}", "deployment.max_ports"},
        BadCase{"deployment: {max_duration_minutes: -1}", "deployment.max_duration_minutes"},
        BadCase{"deployment: {stop_grace_seconds: 0}", "deployment.stop_grace_seconds"},
        BadCase{"deployment: {readiness_timeout_seconds: 0}",
                "deployment.readiness_timeout_seconds"},
        BadCase{"deployment: {pids_limit: 0}", "deployment.pids_limit"},
        BadCase{"deployment: {max_cpus: -2}", "deployment.max_cpus"},
        BadCase{"deployment: {max_memory_mb: 1000, default_memory_mb: 2000}",
                "deployment.default_memory_mb"},
        BadCase{"deployment: {log_max_files: 0}", "deployment.log_max_files"},
        BadCase{"deployment: {require_ssh: 1.5}", "deployment.require_ssh"},
        BadCase{"api: {port: 0}", "api.port"}, BadCase{"api: {port: 2222}", "api.port"},
        BadCase{"api: {listen: \"any\"}", "api.listen"},
        BadCase{"data_dir: relative/path", "data_dir"},
        BadCase{"provider: {name: [a]}", "provider.name"}, BadCase{"- just\n- a list\n", "(root)"},
        BadCase{"agent: {id: [unterminated", "(root)"}));

TEST(ConfigLoader, FatalProblemsDoNotEchoSecrets) {
  LoadResult r = LoadConfigString("database: {password: {nested: \"hunter2-secret\"}}");
  ASSERT_TRUE(HasFatal(r.problems));
  for (const auto& p : r.problems)
    EXPECT_THAT(FormatProblem(p), ::testing::Not(HasSubstr("hunter2")));
}

TEST(ConfigLoader, EnvironmentOverridesSecretsAndUrl) {
  auto env = FakeEnv({{"TAOLIE_API_KEY", "env-key-123456"},
                      {"TAOLIE_DB_PASSWORD", "env-db-pass"},
                      {"TAOLIE_SERVER_URL", "https://platform.example.org"},
                      {"DOCKER_HOST", "unix:///run/user/1000/docker.sock"}});
  LoadResult r =
      LoadConfigString("agent: {api_key: file-key}\ndatabase: {password: file-pass}\n", env);
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  EXPECT_EQ(r.config.agent.api_key, "env-key-123456");
  EXPECT_EQ(r.config.database.password, "env-db-pass");
  EXPECT_EQ(r.config.server.url, "https://platform.example.org");
  EXPECT_EQ(r.config.docker.host, "unix:///run/user/1000/docker.sock");
  EXPECT_THAT(ValidateForRun(r.config), IsEmpty());
}

TEST(ConfigLoader, AlertDeliveryAndHealthKeys) {
  LoadResult r = LoadConfigString(R"(
monitoring:
  power_sustain_seconds: 120
  quarantine_clear_seconds: 600
  gpu_thresholds: {ecc_corrected_per_hour: 50}
  alerts: {email: ops@example.com, smtp_host: mx, smtp_port: 465, smtp_starttls: false,
           smtp_tls: true, smtp_username: agent, smtp_password: file-pass, max_per_hour: 5,
           platform_unreachable_seconds: 300}
gpu: {allow_reset: true}
)");
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  const auto& m = r.config.monitoring;
  EXPECT_EQ(m.power_sustain_seconds, 120);
  EXPECT_EQ(m.quarantine_clear_seconds, 600);
  EXPECT_EQ(m.gpu_thresholds.ecc_corrected_per_hour, 50);
  EXPECT_TRUE(r.config.gpu.allow_reset);
  EXPECT_FALSE(m.alerts.smtp_starttls);
  EXPECT_TRUE(m.alerts.smtp_tls);
  EXPECT_EQ(m.alerts.smtp_username, "agent");
  EXPECT_EQ(m.alerts.smtp_password, "file-pass");
  EXPECT_EQ(m.alerts.max_per_hour, 5);
  EXPECT_EQ(m.alerts.platform_unreachable_seconds, 300);

  Config d;  // the defaults the brief and docs promise
  EXPECT_TRUE(d.monitoring.alerts.smtp_starttls);
  EXPECT_FALSE(d.monitoring.alerts.smtp_tls);
  EXPECT_EQ(d.monitoring.alerts.max_per_hour, 20);
  EXPECT_EQ(d.monitoring.alerts.platform_unreachable_seconds, 600);
  EXPECT_FALSE(d.gpu.allow_reset);

  // TAOLIE_SMTP_PASSWORD wins over the file, and alone satisfies smtp_username.
  auto env = FakeEnv({{"TAOLIE_SMTP_PASSWORD", "env-smtp-pass"}});
  r = LoadConfigString("monitoring: {alerts: {smtp_username: agent, smtp_password: file-pass}}",
                       env);
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
  EXPECT_EQ(r.config.monitoring.alerts.smtp_password, "env-smtp-pass");
  r = LoadConfigString("monitoring: {alerts: {smtp_username: agent}}", env);
  EXPECT_FALSE(HasFatal(r.problems)) << Dump(r.problems);
}

// images.prefetch and docker.prefetch_images are one list: the agent uses their union.
TEST(ConfigLoader, ImagesPrefetchAndDockerPrefetchImagesAreMerged) {
  auto r = LoadConfigString(R"(
docker: {prefetch_images: ["ubuntu:22.04", "pytorch/pytorch:2.3"]}
images: {prefetch: ["pytorch/pytorch:2.3", "127.0.0.1:5555/taolie-test/sshd:1"]}
)");
  EXPECT_THAT(Keys(r.problems, true), IsEmpty()) << Dump(r.problems);
  EXPECT_EQ(r.config.docker.prefetch_images,
            (std::vector<std::string>{"ubuntu:22.04", "pytorch/pytorch:2.3",
                                      "127.0.0.1:5555/taolie-test/sshd:1"}));
  auto only = LoadConfigString("images: {prefetch: [\"ubuntu\"]}\n");
  EXPECT_EQ(only.config.docker.prefetch_images, std::vector<std::string>{"ubuntu"});
  EXPECT_EQ(only.config.images.prefetch, std::vector<std::string>{"ubuntu"});
}

TEST(ConfigLoader, DockerHostEnvOnlyWhenKeyEmpty) {
  Config c;
  c.docker.host = "unix:///custom.sock";
  ApplyEnvironment(c, FakeEnv({{"DOCKER_HOST", "tcp://127.0.0.1:2375"}}));
  EXPECT_EQ(c.docker.host, "unix:///custom.sock");
}

TEST(ConfigLoader, EmptyOrUnsetEnvironmentChangesNothing) {
  Config c;
  c.agent.api_key = "file-key-123";
  ApplyEnvironment(c, FakeEnv({{"TAOLIE_API_KEY", ""}}));
  EXPECT_EQ(c.agent.api_key, "file-key-123");
  ApplyEnvironment(c, nullptr);
  EXPECT_EQ(c.agent.api_key, "file-key-123");
  EXPECT_EQ(c.docker.host, "");
}

TEST(ConfigLoader, EnvironmentValuesAreValidated) {
  LoadResult r = LoadConfigString("", FakeEnv({{"TAOLIE_SERVER_URL", "http://evil.example"}}));
  EXPECT_EQ(Keys(r.problems, true), std::vector<std::string>{"server.url"});
}

TEST(ConfigLoader, HostRootIsAnExistingAbsoluteDirectory) {
  const std::string dir = ::testing::TempDir() + "/config_loader_test_host_root";
  std::filesystem::create_directories(dir);
  LoadResult ok = LoadConfigString("agent:\n  host_root: " + dir + "\n");
  EXPECT_EQ(ok.config.agent.host_root, dir);
  EXPECT_THAT(Keys(ok.problems, true), IsEmpty()) << Dump(ok.problems);
  EXPECT_THAT(Keys(LoadConfigString("").problems, true), IsEmpty());  // "" = not contained

  LoadResult relative = LoadConfigString("agent:\n  host_root: host\n");
  ASSERT_EQ(Keys(relative.problems, true), std::vector<std::string>{"agent.host_root"});
  LoadResult missing = LoadConfigString("agent:\n  host_root: " + dir + "/nope\n");
  ASSERT_EQ(Keys(missing.problems, true), std::vector<std::string>{"agent.host_root"});
  EXPECT_THAT(Dump(missing.problems), HasSubstr("no such directory"));
  const std::string file = WriteTemp("host_root_file", "x");
  LoadResult not_dir = LoadConfigString("agent:\n  host_root: " + file + "\n");
  EXPECT_EQ(Keys(not_dir.problems, true), std::vector<std::string>{"agent.host_root"});
}

TEST(ConfigLoader, ValidateForRunRejectsMissingOrPlaceholderKey) {
  Config c;
  auto empty = ValidateForRun(c);
  ASSERT_EQ(Keys(empty, true), std::vector<std::string>{"agent.api_key"});
  c.agent.api_key = kApiKeyPlaceholder;
  auto placeholder = ValidateForRun(c);
  ASSERT_EQ(Keys(placeholder, true), std::vector<std::string>{"agent.api_key"});
  EXPECT_THAT(placeholder[0].reason, HasSubstr("placeholder"));
  c.agent.api_key = "real-key-abcdef";
  c.server.url = "https://platform.example.org";
  EXPECT_THAT(ValidateForRun(c), IsEmpty());
}

TEST(ConfigLoader, FileErrorsCarryPathAndPosition) {
  auto missing = LoadConfigFile("/nonexistent-dir/taolie.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent-dir/taolie.yaml"));

  std::string path = WriteTemp("broken.yaml", "agent:\n  id: x\n  api_key: [a, b\nnetwork: {\n");
  auto broken = LoadConfigFile(path);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(broken.error().message, HasSubstr(path + ":"));
  EXPECT_THAT(broken.error().message, HasSubstr("line "));

  auto dir = LoadConfigFile(::testing::TempDir());
  EXPECT_FALSE(dir.ok());
}

TEST(ConfigLoader, FileTypeErrorsAreProblemsNotErrors) {
  std::string path = WriteTemp("types.yaml", "network:\n  ports:\n    ssh: \"abc\"\n");
  auto r = LoadConfigFile(path);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(HasFatal(r->problems));
  EXPECT_EQ(FormatProblem(r->problems[0]), "network.ports.ssh: expected an integer, got \"abc\"");
}

TEST(PortRange, ParseAndFormat) {
  auto r = ParsePortRange(" 30000 - 30999 ");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 30000);
  EXPECT_EQ(r->last, 30999);
  EXPECT_EQ(FormatPortRange(*r), "30000-30999");
  EXPECT_TRUE(ParsePortRange("").value().empty());
  EXPECT_EQ(FormatPortRange(PortRange{}), "");
  EXPECT_FALSE(ParsePortRange("-5-10").ok());
  EXPECT_FALSE(ParsePortRange("5-").ok());
  EXPECT_FALSE(ParsePortRange("1e3-2000").ok());
}

TEST(HostAllow, ParseTable) {
  struct Case {
    std::string text;
    std::string cidr;  // "" = refused
    int port;
    std::string reason;  // part of the error when refused
  };
  const Case cases[] = {
      {"10.213.0.1/32:8080", "10.213.0.1/32", 8080, ""},
      {" 10.213.0.1:22 ", "10.213.0.1/32", 22, ""},
      {"10.1.2.3/16:65535", "10.1.0.0/16", 65535, ""},
      {"0.0.0.0/0:1", "0.0.0.0/0", 1, ""},
      {"10.0.0.1", "", 0, "CIDR:PORT"},
      {"10.0.0.1 8080", "", 0, "CIDR:PORT"},
      {"10.0.0.0/33:80", "", 0, "not an IPv4 address or CIDR"},
      {"host.example:80", "", 0, "not an IPv4 address or CIDR"},
      {"fd00::1:80", "", 0, "not an IPv4 address or CIDR"},
      {"10.0.0.1:", "", 0, "1..65535"},
      {"10.0.0.1:0", "", 0, "1..65535"},
      {"10.0.0.1:65536", "", 0, "1..65535"},
      {"10.0.0.1:-1", "", 0, "1..65535"},
      {"10.0.0.1:80x", "", 0, "1..65535"},
      {"10.0.0.1:0000000080", "", 0, "1..65535"},
  };
  for (const auto& tc : cases) {
    auto r = ParseHostAllow(tc.text);
    if (tc.cidr.empty()) {
      ASSERT_FALSE(r.ok()) << tc.text;
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << tc.text;
      EXPECT_THAT(r.error().message, HasSubstr(tc.reason)) << tc.text;
    } else {
      ASSERT_TRUE(r.ok()) << tc.text << ": " << r.error().message;
      EXPECT_EQ(r->cidr, tc.cidr) << tc.text;
      EXPECT_EQ(r->port, tc.port) << tc.text;
    }
  }
  // An IPv6 bind_ip is fine without an allow-list (nothing to bypass).
  EXPECT_FALSE(HasFatal(LoadConfigString("network: {bind_ip: \"::\"}").problems));
}

// The seed README's own examples (tests/config/testdata/seed_readme_*.yaml, copied exactly
// from its "Configuration File" and "Monitoring & Alerting" blocks) load: e-mail alerts without
// smtp_host go through the host's MTA, with one warning naming the key (issue 17 item 7).
TEST(ConfigLoader, TheSeedReadmeExamplesLoad) {
  const std::string dir = TAOLIE_CONFIG_TESTDATA_DIR;
  auto base = LoadConfigFile(dir + "/seed_readme_config.yaml");
  ASSERT_TRUE(base.ok()) << base.error().ToString();
  EXPECT_FALSE(HasFatal(base->problems)) << Dump(base->problems);

  auto alerting = LoadConfigFile(dir + "/seed_readme_monitoring_alerting.yaml");
  ASSERT_TRUE(alerting.ok()) << alerting.error().ToString();
  EXPECT_FALSE(HasFatal(alerting->problems)) << Dump(alerting->problems);
  const auto& al = alerting->config.monitoring.alerts;
  EXPECT_EQ(al.email_to, "admin@yourdomain.com");
  EXPECT_EQ(al.webhook_url, "https://your-webhook.com/alerts");
  EXPECT_TRUE(al.smtp_host.empty());
  const auto warned = Keys(alerting->problems, false);
  EXPECT_EQ(std::count(warned.begin(), warned.end(), "monitoring.alerts.smtp_host"), 1)
      << Dump(alerting->problems);
  for (const auto& p : alerting->problems) {
    if (p.key == "monitoring.alerts.smtp_host") {
      EXPECT_THAT(p.reason, HasSubstr("/usr/sbin/sendmail")) << p.reason;
      EXPECT_THAT(p.reason, HasSubstr("localhost:25")) << p.reason;
    }
  }
}

// The seed README's keys are read under their own names and win over the finer names.
TEST(ConfigLoader, SeedThresholdAlertAndRetentionKeys) {
  auto r = LoadConfigString(R"(
network: {public_ip: 203.0.113.5}
monitoring:
  gpu_thresholds: {temperature_max: 83, power_max: 350, utilization_min: 10}
  alerts: {email: ops@example.com, webhook: "https://hooks.example.com/seed", smtp_host: mx}
  retention: {logs_days: 14, metrics_days: 1}
)");
  EXPECT_THAT(r.problems, IsEmpty()) << Dump(r.problems);
  const auto& m = r.config.monitoring;
  EXPECT_DOUBLE_EQ(m.gpu_thresholds.temperature_warning_c, 83);
  EXPECT_DOUBLE_EQ(m.gpu_thresholds.power_max_watts, 350);
  EXPECT_DOUBLE_EQ(m.gpu_thresholds.utilization_min, 10);
  EXPECT_EQ(m.alerts.email_to, "ops@example.com");
  EXPECT_EQ(m.alerts.webhook_url, "https://hooks.example.com/seed");
  EXPECT_EQ(m.retention.logs_days, 14);
  EXPECT_EQ(m.retention.metrics_days, 1);

  // Both names set: the seed's wins, whatever the order in the file.
  r = LoadConfigString(R"(
network: {public_ip: 203.0.113.5}
monitoring:
  gpu_thresholds: {temperature_max: 83, temperature_warning_c: 70}
  alerts: {webhook: "https://a.example.com/", webhook_url: "https://b.example.com/",
           email_to: b@example.com, email: a@example.com, smtp_host: mx}
)");
  EXPECT_THAT(r.problems, IsEmpty()) << Dump(r.problems);
  EXPECT_DOUBLE_EQ(r.config.monitoring.gpu_thresholds.temperature_warning_c, 83);
  EXPECT_EQ(r.config.monitoring.alerts.webhook_url, "https://a.example.com/");
  EXPECT_EQ(r.config.monitoring.alerts.email_to, "a@example.com");

  for (const char* bad : {"monitoring: {gpu_thresholds: {power_max: -1}}",
                          "monitoring: {gpu_thresholds: {utilization_min: 101}}",
                          "monitoring: {retention: {logs_days: 0}}",
                          "monitoring: {alerts: {webhook: \"ftp://x\"}}"}) {
    EXPECT_TRUE(HasFatal(LoadConfigString(bad).problems)) << bad;
  }
}

// docs/configuration.md and the loader cannot drift: every key of its "## Keys" table is one
// the loader reads, and every key the loader reads has a row.
namespace docs_check {

std::set<std::string> DocumentedKeys(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::set<std::string> keys;
  std::string line;
  bool in_keys = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_keys = line == "## Keys";
    if (!in_keys || line.rfind("| `", 0) != 0) continue;
    const size_t end = line.find('`', 3);
    if (end == std::string::npos) continue;
    keys.insert(line.substr(3, end - 3));
  }
  return keys;
}

TEST(ConfigReference, EveryKeyTheLoaderReadsIsDocumentedAndNoOther) {
  const std::set<std::string> known = KnownConfigKeys();
  const std::set<std::string> documented = DocumentedKeys(TAOLIE_CONFIG_REFERENCE);
  ASSERT_GT(known.size(), 50u);
  EXPECT_THAT(known, Contains("network.ports.ssh"));
  EXPECT_THAT(known, Contains("provider"));
  EXPECT_EQ(known.count("network.ports"), 0u) << "sections are not keys";
  for (const auto& k : known) {
    EXPECT_EQ(documented.count(k), 1u)
        << k << ": read by the loader, no row in docs/configuration.md";
  }
  for (const auto& k : documented) {
    EXPECT_EQ(known.count(k), 1u) << k << ": documented, but the loader does not read it";
  }
}

// The defaults column holds exactly the loader's default, as one YAML value in backticks (no
// comment text: what a default means goes in the meaning column).
std::map<std::string, std::string> DocumentedDefaults(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, std::string> out;
  std::string line;
  bool in_keys = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_keys = line == "## Keys";
    if (!in_keys || line.rfind("| `", 0) != 0) continue;
    const size_t key_end = line.find('`', 3);
    const size_t cell = line.find('|', key_end);
    const size_t cell_end = cell == std::string::npos ? cell : line.find(" |", cell + 1);
    if (cell_end == std::string::npos) continue;
    std::string text = line.substr(cell + 1, cell_end - cell - 1);
    while (!text.empty() && text.front() == ' ') text.erase(0, 1);
    out[line.substr(3, key_end - 3)] = text;
  }
  return out;
}

TEST(ConfigReference, EveryDocumentedDefaultIsTheLoadersDefault) {
  const std::map<std::string, std::string> defaults = ConfigDefaults();
  const std::map<std::string, std::string> documented = DocumentedDefaults(TAOLIE_CONFIG_REFERENCE);
  ASSERT_EQ(defaults.size(), KnownConfigKeys().size());
  EXPECT_EQ(defaults.at("monitoring.heartbeat_interval"), "30");
  EXPECT_EQ(defaults.at("deployment.max_committed_share"), "0.9");
  EXPECT_EQ(defaults.at("api.listen"), "\"127.0.0.1\"");
  EXPECT_EQ(defaults.at("docker.prefetch_images"), "[]");
  for (const auto& [key, text] : documented) {
    auto d = defaults.find(key);
    if (d == defaults.end()) continue;  // reported by the test above
    EXPECT_EQ(text, "`" + d->second + "`")
        << key << ": the defaults column of docs/configuration.md";
  }
}

// Every key of the shipped deploy/config.yaml is one the loader reads (no "unknown key").
TEST(ConfigReference, TheShippedConfigHasNoUnknownKey) {
  auto r = LoadConfigFile(TAOLIE_DEPLOY_CONFIG);
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const auto& p : r->problems) {
    EXPECT_EQ(p.reason.find("unknown key"), std::string::npos) << p.key << ": " << p.reason;
  }
}

}  // namespace docs_check
}  // namespace
}  // namespace taolie::config
