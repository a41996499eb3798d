#include "agent/agent_app.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "agent/api_token.h"
#include "agent/data_dir.h"
#include "agent/metrics_exposition.h"
#include "common/failpoints.h"
#include "common/real_time.h"
#include "common/secrets.h"
#include "docker/engine_docker_client.h"
#include "engine/container_spec.h"
#include "engine/readiness_probe.h"
#include "engine/rental_engine.h"
#include "engine/work_queue.h"
#include "health/gpu_source.h"
#include "host/command_runner.h"
#include "host/firewall.h"
#include "host/host_resolver.h"
#include "host/linux_host_probe.h"
#include "isolation/rental_isolation.h"
#include "isolation/rental_network.h"
#include "loops/image_prefetch.h"
#include "loops/loops.h"
#include "loops/periodic_runner.h"
#include "loops/retention_loop.h"
#include "platform/counting_platform_api.h"
#include "platform/https_platform_api.h"
#include "runtime/runtime.h"
#include "store/conninfo.h"
#include "store/managed_postgres.h"
#include "store/pg_store.h"
#include "telemetry/alert_channels.h"
#include "telemetry/alerter.h"
#include "telemetry/logging.h"
#include "telemetry/status_server.h"

namespace taolie::agent {

struct AgentApp::Impl {
  config::Config cfg;
  std::string version;
  RealClock clock;
  std::unique_ptr<store::ManagedPostgres> pg;
  store::ManagedPostgres::Options pg_options;
  std::unique_ptr<store::PgStore> store;
  std::unique_ptr<docker::EngineDockerClient> docker;
  std::unique_ptr<gpu::GpuProbe> gpus;  // NVML, or the nvidia-smi fallback (gpu_source.h)
  std::string gpu_source;
  std::string gpu_source_detail;
  std::unique_ptr<host::LinuxHostProbe> host;
  std::unique_ptr<platform::HttpsPlatformApi> api;
  std::unique_ptr<platform::CountingPlatformApi> counted_api;  // api, counted for /metrics
  std::string hostname;                                        // for /metrics, read at start
  std::string driver_version;  // for /metrics, read at start ("" without NVML)
  std::unique_ptr<runtime::Deps> deps;
  std::unique_ptr<runtime::Runtime> rt;
  engine::TcpReadinessProbe probe;
  std::unique_ptr<engine::RentalEngine> engine;
  host::SubprocessRunner tool_runner;  // iptables for the firewall, nvidia-smi -r for resets
  std::unique_ptr<host::IptablesFirewall> firewall;
  std::unique_ptr<host::IptablesFirewall> firewall6;
  std::unique_ptr<isolation::RentalIsolation> isolation;
  std::unique_ptr<engine::ImageCollector> image_gc;
  std::unique_ptr<telemetry::Alerter> alerter;  // null: no webhook and no e-mail configured
  std::vector<std::unique_ptr<loops::Loop>> loops;
  std::vector<std::unique_ptr<loops::PeriodicRunner>> runners;
  loops::PeriodicRunner* outbox_runner = nullptr;
  loops::RegistrationLoop* registration = nullptr;
  loops::PeriodicRunner* registration_runner = nullptr;
  std::unique_ptr<telemetry::StatusServer> status;
  std::chrono::steady_clock::time_point started{};
  std::stop_source stop;
  bool stopped = false;
};

namespace {

std::string StatusJson(AgentApp::Impl& m);
loops::Liveness LoopsLiveness(const AgentApp::Impl& m);
telemetry::ApiRoutes LocalApiRoutes(AgentApp& app, AgentApp::Impl& m);

// The alerter with a channel per configured destination (docs/alerts.md); null when neither a
// webhook nor an e-mail address is set.
std::unique_ptr<telemetry::Alerter> MakeAlerter(const config::Config& cfg,
                                                const std::string& agent_id,
                                                const std::string& version, const Clock& clock,
                                                host::CommandRunner& runner) {
  const config::AlertsConfig& al = cfg.monitoring.alerts;
  std::vector<std::unique_ptr<telemetry::AlertChannel>> channels;
  if (!al.webhook_url.empty()) {
    telemetry::WebhookOptions w;
    w.url = al.webhook_url;
    w.user_agent = "taolie-host-agent/" + version;
    channels.push_back(telemetry::MakeWebhookChannel(w));
  }
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  if (!al.email_to.empty()) {
    telemetry::SmtpOptions o;
    o.host = al.smtp_host;
    o.port = al.smtp_port;
    o.starttls = al.smtp_starttls;
    o.tls = al.smtp_tls;
    o.username = al.smtp_username;
    o.password = al.smtp_password;
    o.from = al.email_from.empty() ? "taolie-host-agent@" + std::string(host) : al.email_from;
    o.to = telemetry::SplitAddresses(al.email_to);
    if (!al.smtp_host.empty()) {
      channels.push_back(telemetry::MakeSmtpChannel(o));
    } else if (::access(telemetry::kSendmailPath, X_OK) == 0) {
      // No smtp_host (the config loader warned): the host's MTA takes the mail.
      telemetry::SendmailOptions s;
      s.from = o.from;
      s.to = o.to;
      channels.push_back(telemetry::MakeSendmailChannel(s, runner));
      spdlog::info("alerts: e-mail handed to {} (no monitoring.alerts.smtp_host)", s.path);
    } else {
      // Nor a sendmail: the MTA listening on this host's loopback, in plain SMTP (the mail
      // never leaves the host on this hop; no credentials are sent).
      o.host = "localhost";
      o.starttls = false;
      o.tls = false;
      channels.push_back(telemetry::MakeSmtpChannel(o));
      spdlog::info("alerts: e-mail sent to the local MTA at localhost:{} (no smtp_host, no {})",
                   o.port, telemetry::kSendmailPath);
    }
  }
  if (channels.empty()) return nullptr;
  telemetry::AlerterOptions ao;
  ao.agent_id = agent_id;
  ao.host = host;
  ao.cooldown = std::chrono::seconds(al.cooldown_seconds);
  ao.max_per_hour = al.max_per_hour;
  auto alerter = std::make_unique<telemetry::Alerter>(std::move(ao), std::move(channels), clock);
  std::string names;
  for (const auto& n : alerter->ChannelNames()) names += (names.empty() ? "" : ", ") + n;
  spdlog::info("alerts: sent by {} (at most {} an hour; repeats after {} s)", names,
               al.max_per_hour, al.cooldown_seconds);
  return alerter;
}

// Managed mode: restarts the private PostgreSQL when it dies; the store reconnects by itself.
class PostgresSupervisor final : public loops::Loop {
 public:
  explicit PostgresSupervisor(AgentApp::Impl& m) : m_(m) {}
  const char* Name() const override { return "postgres-supervisor"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  AgentApp::Impl& m_;
};
std::string MetricsText(AgentApp::Impl& m);

// The one agent id that the rental containers on this host carry, or "" (none, several, or
// Docker not answering).
std::string RecoverAgentId(docker::DockerClient& docker) {
  auto listed = docker.List({{engine::kLabelManaged, "true"}});
  if (!listed.ok()) {
    spdlog::warn("cannot look for an earlier identity in Docker: {}", listed.error().ToString());
    return "";
  }
  std::set<std::string> ids;
  for (const auto& c : *listed) {
    if (auto it = c.labels.find(engine::kLabelAgent); it != c.labels.end() && !it->second.empty()) {
      ids.insert(it->second);
    }
  }
  if (ids.size() == 1) {
    spdlog::warn(
        "no agent id in the database: taking {} from the labels of {} rental container(s) on "
        "this host (the database was lost; its rentals are adopted)",
        *ids.begin(), listed->size());
    return *ids.begin();
  }
  if (ids.size() > 1) {
    spdlog::warn(
        "rental containers of {} different agent ids on this host: none taken; their "
        "containers are left alone",
        ids.size());
  }
  return "";
}

}  // namespace

AgentApp::AgentApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AgentApp::~AgentApp() { Stop(); }

const std::string& AgentApp::agent_id() const { return impl_->rt->agent_id(); }

Result<std::unique_ptr<AgentApp>> AgentApp::Create(const config::Config& cfg,
                                                   const std::string& version) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->version = version;
  InitFailpoints();
  // The state directory first: the managed database and the admin token live in it.
  TAOLIE_RETURN_IF_ERROR(EnsureDataDir(cfg.data_dir));

  // Database: managed (private cluster under data_dir) or external.
  std::string conninfo;
  if (store::UsesManagedDatabase(cfg.database)) {
    store::ManagedPostgres::Options o;
    o.data_dir = cfg.data_dir;
    impl->pg_options = o;
    auto pg = store::ManagedPostgres::Start(o);
    if (!pg.ok()) return MakeError(pg.error().code, "managed PostgreSQL: " + pg.error().message);
    impl->pg = std::move(*pg);
    conninfo = impl->pg->ConnInfo();
  } else {
    conninfo = store::ExternalConnInfo(cfg.database);
    spdlog::info("database: external, host {} port {}, sslmode {}{}", cfg.database.host,
                 cfg.database.port, store::EffectiveSslMode(cfg.database),
                 cfg.database.sslrootcert.empty() ? "" : ", CA " + cfg.database.sslrootcert);
  }
  auto store = store::PgStore::Create(conninfo, cfg.database.statement_timeout_ms);
  if (!store.ok()) return MakeError(store.error().code, "database: " + store.error().message);
  impl->store = std::move(*store);

  auto docker = docker::EngineDockerClient::Create(
      cfg.docker.host, std::chrono::seconds(cfg.docker.timeout), cfg.docker.api_version);
  if (!docker.ok()) return MakeError(docker.error().code, "docker: " + docker.error().message);
  impl->docker = std::move(*docker);
  impl->docker->SetPullLimits(std::chrono::seconds(cfg.docker.pull_timeout),
                              std::chrono::seconds(cfg.docker.pull_stall_timeout));
  std::string storage_path = "/var/lib/docker";
  if (auto v = impl->docker->Version(); v.ok()) {
    spdlog::info("docker engine {} (API {})", v->version, v->api_version);
    if (!v->root_dir.empty()) storage_path = v->root_dir;
  } else {
    spdlog::warn("docker engine not reachable yet: {}", v.error().ToString());
  }

  // Identity: configured, else kept in our own state, else recovered from the labels of the
  // rental containers on this host (the database was lost: the containers keep the identity
  // the platform knows), else generated once.
  std::string agent_id = cfg.agent.id;
  if (agent_id.empty()) {
    auto saved = impl->store->GetState("agent_id");
    if (!saved.ok()) return saved.error();
    if (saved->has_value()) {
      agent_id = **saved;
    } else {
      agent_id = RecoverAgentId(*impl->docker);
      if (agent_id.empty()) {
        auto fresh = NewAgentId();
        if (!fresh.ok()) return fresh.error();
        agent_id = *fresh;
        spdlog::info("generated agent id {}", agent_id);
      }
      TAOLIE_RETURN_IF_ERROR(impl->store->SetState("agent_id", agent_id));
    }
  }

  health::GpuSource gpu_source = health::SelectGpuSource(cfg.gpu);
  impl->gpus = std::move(gpu_source.probe);
  impl->gpu_source = gpu_source.name;
  impl->gpu_source_detail = gpu_source.detail;
  if (impl->gpu_source == "nvml") {
    spdlog::info("GPU source: nvml ({})", impl->gpu_source_detail);
  } else if (impl->gpu_source == "nvidia-smi") {
    spdlog::warn("GPU source: nvidia-smi fallback ({})", impl->gpu_source_detail);
  } else {
    spdlog::warn("no GPUs available: {}", impl->gpu_source_detail);
  }
  host::LinuxHostProbe::Options ho;
  ho.storage_path = storage_path;
  ho.interface = cfg.network.interface;
  // In a container (agent.host_root): the host's /proc, /sys, /etc files and data root.
  ho = host::WithHostRoot(std::move(ho), cfg.agent.host_root);
  if (!cfg.agent.host_root.empty()) {
    spdlog::info("host facts read under agent.host_root {} (storage {})", cfg.agent.host_root,
                 ho.storage_path);
    storage_path = ho.storage_path;
  }
  impl->host = host::LinuxHostProbe::Create(ho);
  // The labels /metrics puts on every GPU series (dcgm-exporter's hostname and driver version).
  if (auto f = impl->host->Facts(); f.ok()) impl->hostname = f->hostname;
  if (impl->gpus->Available()) {
    if (auto d = impl->gpus->Driver(); d.ok()) impl->driver_version = d->driver_version;
  }
  impl->image_gc = std::make_unique<engine::ImageCollector>(
      *impl->docker, *impl->store, *impl->host, impl->cfg.docker, impl->clock, storage_path);

  platform::HttpsPlatformApi::Options po;
  po.base_url = cfg.server.url;
  po.api_key = cfg.agent.api_key;
  po.timeout = std::chrono::seconds(cfg.server.timeout);
  po.ca_file = cfg.server.ca_file;
  po.allow_insecure = cfg.server.allow_insecure;
  po.user_agent = "taolie-host-agent/" + version;
  auto api = platform::HttpsPlatformApi::Create(po);
  if (!api.ok()) return MakeError(api.error().code, "server.url: " + api.error().message);
  impl->api = std::move(*api);
  impl->counted_api = std::make_unique<platform::CountingPlatformApi>(*impl->api);

  TimestampFormat ts = cfg.server.timestamp_format == "rfc3339" ? TimestampFormat::kRfc3339
                                                                : TimestampFormat::kNaive;
  impl->rt = std::make_unique<runtime::Runtime>(agent_id, version, ts);
  if (auto g = impl->store->GetState("platform_gpu_uuid"); g.ok() && g->has_value()) {
    impl->rt->set_platform_gpu_uuid(**g);
  }
  // Drained by the operator before this start: still drained (taolie-host-agent undrain).
  if (auto dr = impl->store->GetState("draining"); dr.ok() && dr->has_value() && **dr == "1") {
    impl->rt->set_draining(true);
    spdlog::warn("the host is drained: no new rental is accepted (taolie-host-agent undrain)");
  }
  // Admission keeps deployment.min_free_disk_gb free on the database's filesystem: known for
  // the managed cluster; an external database's data directory is not (documented).
  if (impl->pg) {
    impl->rt->set_database_dir(impl->pg->DataDir());
  } else {
    spdlog::info("database: external; its filesystem's free space is not checked by admission");
  }
  impl->deps = std::make_unique<runtime::Deps>(runtime::Deps{
      impl->cfg, *impl->store, *impl->docker, *impl->gpus, *impl->host, *impl->counted_api,
      impl->clock,
      [](const std::string& host) { return host::ResolveHost(host, std::chrono::seconds(3)); }});
  impl->engine = std::make_unique<engine::RentalEngine>(*impl->deps, *impl->rt, impl->probe);

  // Rental isolation: the agent's network and firewall. Failing to set them up is not fatal:
  // it is reported, and rentals are refused unless deployment.require_isolation is false.
  std::string firewall_error;
  if (auto fw = host::IptablesFirewall::Create(impl->tool_runner); fw.ok()) {
    impl->firewall = std::move(*fw);
  } else {
    firewall_error = fw.error().message;
  }
  // IPv6: ip6tables rules mirror the IPv4 ones; none are needed on a kernel without IPv6, and
  // a missing ip6tables is a warning (the rental network has IPv6 off), not a failure.
  isolation::Ipv6Firewall ipv6;
  if (!host::KernelHasIpv6()) {
    ipv6.note = "the kernel has IPv6 disabled; none needed";
    ipv6.needed = false;
  } else if (auto fw6 = host::IptablesFirewall::Create(impl->tool_runner, host::IpFamily::kIpv6);
             fw6.ok()) {
    impl->firewall6 = std::move(*fw6);
    ipv6.firewall = impl->firewall6.get();
  } else {
    ipv6.note = "ip6tables: " + fw6.error().message + " (install iptables' ip6tables)";
  }
  if (auto addresses = host::HostIpv4Addresses(); addresses.ok()) {
    for (const auto& w : isolation::EgressAllowHostWarnings(impl->cfg.deployment, *addresses)) {
      spdlog::warn("{}", w);
    }
  } else {
    spdlog::warn("the host's addresses: {}", addresses.error().message);
  }
  impl->isolation = std::make_unique<isolation::RentalIsolation>(
      impl->cfg.deployment, *impl->docker, impl->firewall.get(), firewall_error,
      [](const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
      },
      ipv6);
  impl->rt->set_isolation(impl->isolation.get());
  impl->alerter = MakeAlerter(cfg, agent_id, version, impl->clock, impl->tool_runner);
  impl->rt->set_alerts(impl->alerter.get());
  return std::unique_ptr<AgentApp>(new AgentApp(std::move(impl)));
}

Status AgentApp::Start() {
  auto& m = *impl_;
  const auto& mon = m.cfg.monitoring;
  runtime::Deps& d = *m.deps;
  auto started = d.clock.Monotonic();

  // Nothing here waits on the platform: the local API, metrics, reconcile and expiry come up
  // (and systemd's READY follows) while the registration loop keeps trying.
  // Inventory first, so claims have rows to land on.
  loops::GpuHealthLoop inventory(d, *m.rt);
  loops::LoopStats inventory_stats;
  runtime::WarnIfError(loops::RunOnceGuarded(inventory, m.stop.get_token(), inventory_stats),
                       "start-up GPU inventory");
  // Before any rental is admitted or resumed: the network they join and their firewall.
  // RentalIsolation logs what is missing; rentals are refused meanwhile (fail closed).
  (void)m.isolation->Ensure();
  if (Status st = m.engine->reconciler().Run(m.stop.get_token()); !st.ok()) {
    spdlog::warn("start-up reconciliation incomplete: {} (retried by the duration monitor)",
                 st.error().ToString());
  }
  // GPUs left dirty by the last rentals (ended before a restart, or just now by the
  // reconciler) are verified now, not at the first metrics round: a deploy right after the
  // start finds them free when they are idle.
  if (!m.engine->dirty_gpus().VerifyNow() && d.gpus.Available()) {
    spdlog::warn("start-up: dirty GPUs not verified yet (store or GPUs not readable)");
  }

  auto add = [&](std::unique_ptr<loops::Loop> loop, int interval_s, int splay_ms) {
    auto runner = std::make_unique<loops::PeriodicRunner>(*loop, std::chrono::seconds(interval_s),
                                                          std::chrono::milliseconds(splay_ms));
    m.loops.push_back(std::move(loop));
    m.runners.push_back(std::move(runner));
    return m.runners.back().get();
  };
  add(std::make_unique<loops::GpuMetricsLoop>(d, *m.rt, m.engine->dirty_gpus()),
      mon.gpu_metrics_interval, 0);
  add(std::make_unique<loops::GpuHealthLoop>(d, *m.rt, &m.tool_runner), mon.gpu_health_interval,
      mon.gpu_health_interval * 1000);
  // After the first registration, every loop is woken: those that waited for it go at once.
  auto registration = std::make_unique<loops::RegistrationLoop>(d, *m.rt, [&m] {
    for (auto& r : m.runners) {
      if (r.get() != m.registration_runner) r->Wake();
    }
  });
  m.registration = registration.get();
  m.registration_runner = add(std::move(registration), mon.heartbeat_interval, 0);
  add(std::make_unique<loops::HeartbeatLoop>(d, *m.rt, started), mon.heartbeat_interval, 0);
  add(std::make_unique<loops::CommandPollLoop>(d, *m.rt, m.engine->commands()),
      mon.command_poll_interval, 100);
  add(std::make_unique<loops::MetricsPushLoop>(d, *m.rt), mon.metrics_push_interval, 2000);
  add(std::make_unique<loops::HealthPushLoop>(d, *m.rt), mon.health_push_interval, 3000);
  add(std::make_unique<loops::DurationMonitorLoop>(m.engine->monitor(), m.engine->reconciler(),
                                                   m.isolation.get(), m.image_gc.get()),
      mon.duration_check_interval, 500);
  // Retention: its first round a health interval after start (when the health loop's first
  // round pruned before retention had its own loop), then hourly.
  add(std::make_unique<loops::RetentionLoop>(d.store, m.cfg.monitoring.retention,
                                             m.cfg.logging.file, d.clock),
      static_cast<int>(std::chrono::seconds(loops::RetentionLoop::kInterval).count()),
      mon.gpu_health_interval * 1000);
  // The outbox is woken whenever an event is written; the interval is only a safety net.
  m.outbox_runner = add(std::make_unique<loops::OutboxLoop>(d, *m.rt), 60, 200);
  if (m.pg) add(std::make_unique<PostgresSupervisor>(m), 15, 15000);
  // images.prefetch (merged with docker.prefetch_images): kept pulled in the background.
  if (!m.cfg.docker.prefetch_images.empty()) {
    add(std::make_unique<loops::PrefetchLoop>(d.docker, m.engine->work(), m.engine->pulls(),
                                              m.cfg.docker.prefetch_images),
        static_cast<int>(std::chrono::seconds(loops::PrefetchLoop::kInterval).count()), 3000);
  }
  loops::PeriodicRunner* outbox = m.outbox_runner;
  m.rt->SetOutboxNotifier([outbox] { outbox->Wake(); });
  for (auto& r : m.runners) r->Start();
  m.started = started;
  if (m.cfg.api.enabled) {
    telemetry::StatusServerOptions so;
    so.listen = m.cfg.api.listen == "localhost" ? "127.0.0.1" : m.cfg.api.listen;
    so.port = m.cfg.api.port;
    so.allowed_ips = m.cfg.network.security.allowed_ips;
    so.allowed_hosts = m.cfg.api.allowed_hosts;
    if (m.cfg.network.security.enable_ssl) {
      so.tls_cert = m.cfg.network.security.ssl_cert;
      so.tls_key = m.cfg.network.security.ssl_key;
    }
    // The admin token for changes (drain) and /v1/deployments; without it they answer 403.
    if (auto token = LoadOrCreateApiToken(m.cfg.data_dir + "/" + kApiTokenFile); token.ok()) {
      so.admin_token = *token;
      telemetry::RegisterSecret(*token);
    } else {
      spdlog::warn("local API: {}; drain/undrain and /v1/deployments through it are disabled",
                   token.error().message);
    }
    auto server = telemetry::StatusServer::Start(so, LocalApiRoutes(*this, m));
    if (server.ok()) {
      m.status = std::move(*server);
      spdlog::info(
          "local API on {}://{}:{}/ (/healthz /readyz /v1/status /v1/deployments /metrics)",
          m.status->tls() ? "https" : "http", so.listen, m.status->port());
    } else {
      spdlog::warn("status endpoint not started: {}", server.error().ToString());
    }
  }
  spdlog::info("agent {} running: {} loops", m.rt->agent_id(), m.runners.size());
  return OkStatus();
}

loops::Liveness AgentApp::CheckLiveness() const { return LoopsLiveness(*impl_); }

namespace {

loops::Liveness LoopsLiveness(const AgentApp::Impl& m) {
  std::vector<loops::LoopProgress> loops;
  for (const auto& r : m.runners) {
    loops.push_back({r->name(), r->interval(), r->stats().round_started_ns.load(),
                     r->stats().last_round_end_ns.load()});
  }
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyNow().time_since_epoch()).count();
  return loops::EvaluateLiveness(loops, now,
                                 std::chrono::seconds(m.cfg.monitoring.stuck_loop_seconds));
}

}  // namespace

std::string AgentApp::StatusLine() const {
  const auto& m = *impl_;
  const runtime::Runtime& rt = *m.rt;
  std::string line;
  if (!rt.registered()) {
    line = "platform: not registered yet";
  } else {
    const auto since =
        std::chrono::duration_cast<std::chrono::seconds>(m.clock.Now() - rt.last_platform_ok())
            .count();
    line = since <= 3 * m.cfg.monitoring.heartbeat_interval
               ? std::string("platform ok")
               : "platform unreachable for " + std::to_string(since) + " s";
  }
  const int rentals = rt.active_deployments.load();
  line += " · " + std::to_string(rentals) + (rentals == 1 ? " rental" : " rentals");
  // GPUs seen in the last sample (none yet before the first).
  const size_t seen = rt.LatestGpuSamples().size();
  line += " · GPUs " + std::to_string(rt.available_gpus.load()) + " free";
  if (seen > 0) line += " of " + std::to_string(seen);
  if (rt.draining()) line += " · draining";
  if (loops::Liveness l = CheckLiveness(); !l.ok) line += " · STUCK: " + l.detail;
  return line;
}

Status AgentApp::SetDraining(bool draining) {
  auto& m = *impl_;
  if (Status st = m.store->SetState("draining", draining ? "1" : "0"); !st.ok()) {
    return MakeError(st.error().code, "cannot record the drain: " + st.error().message);
  }
  if (m.rt->draining() != draining) {
    m.rt->set_draining(draining);
    if (draining) {
      spdlog::warn("drained: current rentals run on, no new rental is accepted");
    } else {
      spdlog::info("undrained: rentals are accepted again");
    }
  }
  return OkStatus();
}

void AgentApp::Reload(const std::string& api_key) {
  if (!api_key.empty()) impl_->api->SetApiKey(api_key);
  // Sent by the registration loop (the signal thread never waits on the platform).
  if (impl_->registration != nullptr) {
    impl_->registration->RetryNow();
    impl_->registration_runner->Wake();
  }
}

void AgentApp::Stop() {
  auto& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  m.stop.request_stop();
  if (m.status) m.status->Stop();
  if (m.rt) m.rt->SetOutboxNotifier(nullptr);
  for (auto& r : m.runners) r->RequestStop();
  if (m.engine) m.engine->Shutdown();
  for (auto& r : m.runners) r->Join();
  m.runners.clear();
  if (m.alerter) m.alerter->Stop();  // an alert still being delivered is abandoned
  spdlog::info("agent stopped; renters' containers keep running");
  m.store.reset();
  if (m.pg) {
    if (Status st = m.pg->Stop(); !st.ok())
      spdlog::warn("managed PostgreSQL: {}", st.error().ToString());
  }
}

}  // namespace taolie::agent

namespace taolie::agent {
namespace {

using nlohmann::json;

int64_t UnixSeconds(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Status PostgresSupervisor::RunOnce(std::stop_token stop) {
  if (stop.stop_requested() || m_.pg->Running()) return OkStatus();
  spdlog::error("managed PostgreSQL (pid {}) is gone: restarting it", m_.pg->Pid());
  auto pg = store::ManagedPostgres::Start(m_.pg_options);
  if (!pg.ok())
    return MakeError(pg.error().code, "managed PostgreSQL restart: " + pg.error().message);
  m_.pg = std::move(*pg);
  spdlog::info("managed PostgreSQL is back (pid {})", m_.pg->Pid());
  return OkStatus();
}

json IsolationJson(const isolation::RentalIsolation& isolation,
                   const config::DeploymentConfig& dc) {
  isolation::IsolationStatus s = isolation.Current();
  return {{"ok", s.ok},
          {"error", s.error},
          {"network", isolation::kRentalNetworkName},
          {"network_ready", s.network_ready},
          {"subnet", dc.network_subnet},
          {"firewall_backend", s.backend},
          {"ipv6_rules", s.ipv6_rules},
          {"ipv6_note", s.ipv6_note},
          {"rules_reapplied", s.reapplied},
          {"required", dc.require_isolation},
          {"accepting_rentals", isolation.AdmitsRentals()}};
}

const char* StorageOptName(runtime::Runtime::StorageOpt s) {
  switch (s) {
    case runtime::Runtime::StorageOpt::kSupported:
      return "supported";
    case runtime::Runtime::StorageOpt::kRefused:
      return "refused";
    case runtime::Runtime::StorageOpt::kUnknown:
      break;
  }
  return "unknown";
}

// The alert counters for /status (null when no channel is configured).
json AlertsJson(const AgentApp::Impl& m) {
  if (!m.alerter) return nullptr;
  const telemetry::AlerterCounters c = m.alerter->Counters();
  return {{"channels", m.alerter->ChannelNames()},
          {"raised", c.raised},
          {"sent", c.sent},
          {"failed", c.failed},
          {"retries", c.retries},
          {"suppressed", c.suppressed},
          {"rate_limited", c.rate_limited},
          {"dropped", c.dropped},
          {"queued", c.queued}};
}

std::string StatusJson(AgentApp::Impl& m) {
  const runtime::Runtime& rt = *m.rt;
  json loops = json::array();
  for (const auto& r : m.runners) {
    loops.push_back({{"name", r->name()},
                     {"rounds", r->stats().rounds.load()},
                     {"failures", r->stats().failures.load()},
                     {"exceptions", r->stats().exceptions.load()},
                     {"last_success_unix", r->stats().last_success_unix.load()}});
  }
  json deployments = json::array();
  if (auto active = m.store->ActiveDeployments(); active.ok()) {
    for (const auto& d : *active) {
      deployments.push_back({{"id", d.id},
                             {"state", domain::DeploymentStateName(d.state)},
                             {"image", d.image},
                             {"gpus", d.gpu_uuids},
                             {"expires_at", d.expires_at ? FormatRfc3339(*d.expires_at) : ""}});
    }
  }
  json gpus = json::array();
  const auto held_back = rt.GpusHeldBack();
  if (auto list = m.store->ListGpus(); list.ok()) {
    for (const auto& g : *list) {
      auto held = held_back.find(g.uuid);
      gpus.push_back(
          {{"index", g.index},
           {"uuid", g.uuid},
           {"name", g.name},
           {"health", g.health},
           {"health_state", domain::GpuHealthStateName(g.health)},
           {"present", g.present},
           {"deployment_id", g.deployment_id},
           // Dirty after a rental: not claimed until NVML shows it idle again.
           {"dirty", g.dirty_since.has_value()},
           {"dirty_after", g.dirty_after},
           // Only a dirty GPU is held back: the store's flag is cleared first, the
           // loop's list a moment later, and the page must not show one without
           // the other.
           {"held_back",
            held == held_back.end() || !g.dirty_since ? json(nullptr) : json(held->second)}});
    }
  }
  auto up = std::chrono::duration_cast<std::chrono::seconds>(SteadyNow() - m.started).count();
  json out = {{"agent_id", rt.agent_id()},
              {"version", rt.version()},
              {"registered", rt.registered()},
              {"platform_gpu_uuid", rt.platform_gpu_uuid()},
              {"draining", rt.draining()},
              {"liveness",
               [&m] {
                 loops::Liveness l = LoopsLiveness(m);
                 return json{{"ok", l.ok}, {"stuck", l.stuck}, {"detail", l.detail}};
               }()},
              {"uptime_seconds", up},
              {"last_platform_contact_unix", UnixSeconds(rt.last_platform_ok())},
              {"database", m.store->Ping().ok() ? "ok" : "unavailable"},
              {"gpu_probe", m.gpus->Available() ? "ok" : m.gpus->UnavailableReason()},
              {"gpu_source", m.gpu_source},  // "nvml" | "nvidia-smi" | "none"
              {"gpu_source_detail", m.gpu_source_detail},
              {"deployments", deployments},
              {"pulls", json::parse(m.engine->pulls().Json())},
              {"gpus", gpus},
              {"loops", loops},
              {"counters",
               {{"rental_jobs_thrown", m.engine->work().jobs_thrown()},
                {"images_collected", m.image_gc->collected()}}},
              {"alerts", AlertsJson(m)},
              {"without_database", {{"rentals_known", m.engine->monitor().KnownRentals()}}},
              {"isolation", IsolationJson(*m.isolation, m.cfg.deployment)},
              // "supported": writable layers bounded by StorageOpt; "refused": measured only.
              {"disk_quota",
               {{"storage_opt", StorageOptName(rt.storage_opt.load())},
                {"measured_every_seconds", m.cfg.monitoring.duration_check_interval}}},
              {"clock", {{"last_wall_step_seconds", rt.last_clock_step_ms.load() / 1000.0}}}};
  AddRuntimeStatus(rt.Read(), out);  // counters.*, without_database.*, clock.wall_steps
  return out.dump();
}

std::string MetricsText(AgentApp::Impl& m) {
  const runtime::Runtime& rt = *m.rt;
  MetricsSnapshot s;
  s.version = rt.version();
  s.hostname = m.hostname;
  s.driver_version = m.driver_version;
  s.gpu_samples = rt.LatestGpuSamples();
  s.last_xid = rt.LastXids();
  if (auto list = m.store->ListGpus(); list.ok()) {
    for (const auto& g : *list) {
      gpu::GpuInfo info;
      info.index = g.index;
      info.uuid = g.uuid;
      info.name = g.name;
      info.pci_bus_id = g.pci_bus_id;
      s.gpu_infos.push_back(std::move(info));
      s.gpu_states.push_back({g.uuid, g.index, domain::GpuHealthStateName(g.health), g.present,
                              g.quarantined_since.has_value(), g.needs_reset,
                              g.dirty_since.has_value(), g.deployment_id});
    }
  }
  for (const auto& r : m.runners) {
    const loops::LoopStats& st = r->stats();
    s.loops.push_back({r->name(), st.rounds.load(), st.failures.load(), st.exceptions.load(),
                       static_cast<double>(st.last_round_micros.load()) / 1e6});
  }
  if (auto active = m.store->ActiveDeployments(); active.ok()) {
    s.deployments_by_state.emplace();
    for (const auto& d : *active) ++(*s.deployments_by_state)[domain::DeploymentStateName(d.state)];
  }
  if (auto n = m.store->CountPendingEvents(); n.ok()) s.outbox_pending = *n;
  for (const auto& c : m.counted_api->Counts()) {
    s.platform_requests.push_back({c.request, c.outcome, c.count});
  }
  s.runtime_metrics = rt.Read();
  s.registered = rt.registered();
  return MetricsExposition(s);
}

json ReadyJson(AgentApp::Impl& m, bool* ready) {
  json checks = json::object();
  auto check = [&](const char* name, bool ok, const std::string& detail) {
    checks[name] = {{"ok", ok}, {"detail", detail}};
    *ready = *ready && ok;
  };
  *ready = true;
  Status db = m.store->Ping();
  check("database", db.ok(), db.ok() ? "ok" : db.error().message);
  auto dv = m.docker->Version();
  check("docker", dv.ok(), dv.ok() ? "Docker " + dv->version : dv.error().message);
  if (m.gpus->Available()) {
    check("gpus", true, m.gpu_source + ": " + m.gpu_source_detail);
  } else {
    // A host with no NVIDIA driver at all is a CPU-only host, ready as such; a driver that is
    // there but cannot be read is not.
    std::error_code ec;
    const bool driver = std::filesystem::exists("/proc/driver/nvidia/version", ec);
    check("gpus", !driver,
          driver ? "the NVIDIA driver is loaded but unreadable: " + m.gpus->UnavailableReason()
                 : "no NVIDIA driver: CPU-only host");
  }
  const runtime::Runtime& rt = *m.rt;
  const auto since =
      std::chrono::duration_cast<std::chrono::seconds>(m.clock.Now() - rt.last_platform_ok())
          .count();
  const int64_t fresh = std::max<int64_t>(90, 3 * int64_t{m.cfg.monitoring.heartbeat_interval});
  if (!rt.registered()) {
    check("platform", false, "not registered yet");
  } else {
    check("platform", since <= fresh,
          since <= fresh ? "last answer " + std::to_string(since) + " s ago"
                         : "no answer for " + std::to_string(since) + " s");
  }
  return {{"ready", *ready}, {"checks", checks}};
}

json DeploymentsJson(AgentApp::Impl& m) {
  auto active = m.store->ActiveDeployments();
  if (!active.ok()) throw std::runtime_error("database: " + active.error().message);
  json out = json::array();
  for (const auto& d : *active) {
    json ports = json::array();
    for (const auto& p : d.ports) {
      ports.push_back(
          {{"host_port", p.host_port}, {"container_port", p.container_port}, {"role", p.role}});
    }
    auto when = [](const std::optional<SystemTime>& t) {
      return t ? json(FormatRfc3339(*t)) : json(nullptr);
    };
    out.push_back({{"id", d.id},
                   {"state", domain::DeploymentStateName(d.state)},
                   {"image", d.image},
                   {"user_id", d.user_id},
                   {"gpus", d.gpu_uuids},
                   {"ports", ports},
                   {"container", d.container_name},
                   {"duration_minutes", d.duration_minutes},
                   {"started_at", when(d.started_at)},
                   {"expires_at", when(d.expires_at)}});
  }
  return out;
}

// The local API (docs/local-api.md): reads open to the allowed clients, changes with the token.
telemetry::ApiRoutes LocalApiRoutes(AgentApp& app, AgentApp::Impl& m) {
  using telemetry::ApiReply;
  using telemetry::ApiRoute;
  AgentApp::Impl* impl = &m;
  AgentApp* agent = &app;
  telemetry::ApiRoutes routes;
  auto read = [](std::function<ApiReply()> f) {
    return ApiRoute{ApiRoute::Kind::kRead, [f = std::move(f)](const std::string&) { return f(); }};
  };
  // Liveness, as systemd's watchdog sees it: 503 only when a loop is stuck.
  routes["/healthz"] = read([agent] {
    loops::Liveness l = agent->CheckLiveness();
    return l.ok ? ApiReply{200, "text/plain", "ok\n"}
                : ApiReply{503, "text/plain", "stuck: " + l.detail + "\n"};
  });
  routes["/readyz"] = read([impl] {
    bool ready = false;
    json body = ReadyJson(*impl, &ready);
    return ApiReply{ready ? 200 : 503, "application/json", body.dump()};
  });
  auto status = read([impl] { return ApiReply{200, "application/json", StatusJson(*impl)}; });
  routes["/status"] = status;
  routes["/v1/status"] = status;
  // Who rents what, with their ports: for the owner (the admin token), not any local user.
  routes["/v1/deployments"] =
      ApiRoute{ApiRoute::Kind::kTokenRead, [impl](const std::string&) {
                 return ApiReply{200, "application/json", DeploymentsJson(*impl).dump()};
               }};
  routes["/metrics"] = read([impl] {
    return ApiReply{200, telemetry::kPrometheusContentType, MetricsText(*impl)};
  });
  auto drain = [agent, impl](bool on) {
    return ApiRoute{
        ApiRoute::Kind::kChange, [agent, impl, on](const std::string&) {
          Status st = agent->SetDraining(on);
          if (!st.ok()) {
            return ApiReply{503, "application/json", json{{"error", st.error().message}}.dump()};
          }
          return ApiReply{
              200, "application/json",
              json{{"draining", on}, {"active_deployments", impl->rt->active_deployments.load()}}
                  .dump()};
        }};
  };
  routes["/v1/drain"] = drain(true);
  routes["/v1/undrain"] = drain(false);
  return routes;
}

}  // namespace
}  // namespace taolie::agent
