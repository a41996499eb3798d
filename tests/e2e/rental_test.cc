// End-to-end rental tests: the real agent binary, a private dockerd with the fake GPU hook, a
// local registry, the platform simulator, the fake NVML and managed PostgreSQL.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/time_format.h"
#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string Banner(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    char buf[128];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) out.assign(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class RentalTest : public AgentE2eTest {};

TEST_F(RentalTest, DeployRedeliverTerminate) {
  StartAgent();
  json payload = {{"deployment_id", "e2e-loop-1"}, {"image", SshImage()},
                  {"duration_minutes", 30},        {"ports", {{"22", 22}, {"8888", 8888}}},
                  {"user_id", "renter-1"},         {"price_per_hour", 1.5}};
  std::string cmd = sim_->QueueCommand(agent_id_, "deploy", payload.dump(), "cmd-loop-1");

  json success = WaitEvent("e2e-loop-1", "success", 120s);
  ASSERT_FALSE(success.is_null()) << "no success event";
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(cmd); }, 30s));

  // The container runs with exactly the claimed GPU, and the reported ports are the bound ones.
  auto containers = Containers("e2e-loop-1");
  ASSERT_EQ(containers.size(), 1u);
  auto info = docker_->Inspect(containers[0].id);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->running);
  EXPECT_FALSE(info->privileged);
  EXPECT_EQ(info->name, "deployment-e2e-loop-1");
  ASSERT_EQ(info->device_request_ids.size(), 1u);
  std::string gpu = info->device_request_ids[0];
  auto env_has = [&](const std::string& kv) {
    return std::find(info->env.begin(), info->env.end(), kv) != info->env.end();
  };
  EXPECT_TRUE(env_has("DEPLOYMENT_ID=e2e-loop-1"));
  // The GPU hook sets it in the main process only; the image's entrypoint exports it to sessions.
  auto nv = docker_->Exec(info->id, {"sh", "-c", "grep NVIDIA_VISIBLE_DEVICES /etc/profile"}, 10s);
  ASSERT_TRUE(nv.ok());
  EXPECT_NE(nv->output.find(gpu), std::string::npos) << nv->output;
  EXPECT_EQ(success["status"], "running");
  EXPECT_EQ(success["container_id"], info->id);
  EXPECT_EQ(success["gpus"], json::array({gpu}));
  const json& access = success["access_info"];
  int ssh_port = access["ssh"]["port"];
  int jupyter_port = access["rental_ports"]["port_1"]["port"];
  std::map<int, int> bound;
  for (const auto& p : info->ports) bound[p.container_port] = p.host_port;
  EXPECT_EQ(bound[22], ssh_port);
  EXPECT_EQ(bound[8888], jupyter_port);
  EXPECT_EQ(access["port_mappings"]["22"], ssh_port);
  EXPECT_EQ(ssh_port, agent_->ssh_port());
  EXPECT_EQ(Banner(ssh_port).rfind("SSH-2.0", 0), 0u);
  std::string password = access["ssh"]["password"];
  EXPECT_GE(password.size(), 16u);
  EXPECT_TRUE(env_has("SSH_PASSWORD=" + password));

  // The local status endpoint shows the rental; the metrics endpoint counts it.
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object()) << "no /status";
  EXPECT_EQ(st["agent_id"], agent_id_);
  ASSERT_EQ(st["deployments"].size(), 1u);
  EXPECT_EQ(st["deployments"][0]["state"], "running");
  // Its pull is over: off the status page's pulls, its last line logged at info.
  EXPECT_EQ(st["pulls"], json::array()) << st["pulls"];
  EXPECT_NE(agent_->Log().find("deployment e2e-loop-1: pulled " + SshImage() + " in "),
            std::string::npos);
  EXPECT_NE(HttpGet(agent_->status_port(), "/metrics")
                .find("taolie_deploys_total{result=\"succeeded\"} 1"),
            std::string::npos);

  // A re-delivered copy of the command changes nothing.
  sim_->QueueCommand(agent_id_, "deploy", payload.dump(), cmd);
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(cmd); }, 30s));
  ASSERT_TRUE(WaitForPolls(2));
  auto again = Containers("e2e-loop-1");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, info->id);
  EXPECT_EQ(sim_->Events("e2e-loop-1", "success").size(), 1u);

  // Terminate: container gone, GPU free, event recorded with usage and refund.
  std::string term =
      sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", "e2e-loop-1"}}.dump());
  json ended = WaitEvent("e2e-loop-1", "terminated", 60s);
  ASSERT_FALSE(ended.is_null());
  EXPECT_EQ(ended["status"], "terminated");
  EXPECT_EQ(ended["reason"], "user_requested");
  EXPECT_EQ(ended["reserved_minutes"], 30);
  EXPECT_GT(ended["refund_amount"].get<double>(), 0.0);
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(term); }, 30s));
  EXPECT_TRUE(Containers("e2e-loop-1").empty());
  auto db = OpenAgentDb(agent_->root() + "/data");
  ASSERT_NE(db, nullptr);
  auto gpus = db->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 2u);
  for (const auto& g : *gpus) EXPECT_TRUE(g.deployment_id.empty()) << g.uuid;
  auto ports = db->AllocatedPorts();
  ASSERT_TRUE(ports.ok());
  EXPECT_TRUE(ports->empty());
  auto dep = db->GetDeployment("e2e-loop-1");
  ASSERT_TRUE(dep.ok() && dep->has_value());
  EXPECT_FALSE((*dep)->ssh_password.has_value()) << "password kept after success was delivered";
  EXPECT_EQ((*dep)->jupyter_token, "") << "Jupyter token kept after success was delivered";

  // SIGTERM stops the agent cleanly and quickly.
  auto t0 = std::chrono::steady_clock::now();
  int status = agent_->Terminate(10s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(RentalTest, RentalExpires) {
  StartAgent();
  json payload = {{"deployment_id", "e2e-exp-1"},
                  {"image", SshImage()},
                  {"duration_minutes", 1},
                  {"ports", {{"22", 22}}},
                  {"price_per_hour", 6.0}};
  sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  ASSERT_FALSE(WaitEvent("e2e-exp-1", "success", 120s).is_null());
  json expiring = WaitEvent("e2e-exp-1", "expiring", 70s);
  ASSERT_FALSE(expiring.is_null());
  EXPECT_LE(expiring["seconds_left"].get<int>(), 31);
  auto c = Containers("e2e-exp-1");
  ASSERT_EQ(c.size(), 1u);
  auto warn = docker_->Exec(c[0].id, {"cat", "/run/taolie/expiry"}, 10s);
  ASSERT_TRUE(warn.ok());
  EXPECT_NE(warn->output.find("rental ends"), std::string::npos) << warn->output;
  json ended = WaitEvent("e2e-exp-1", "terminated", 60s);
  ASSERT_FALSE(ended.is_null());
  EXPECT_EQ(ended["status"], "expired");
  EXPECT_EQ(ended["reserved_minutes"], 1);
  EXPECT_GE(ended["refund_amount"].get<double>(), 0.0);
  EXPECT_LE(ended["used_minutes"].get<double>(), 1.0);
  EXPECT_TRUE(Containers("e2e-exp-1").empty());
}

}  // namespace
}  // namespace taolie::testing

namespace taolie::testing {
namespace {

// Samples taken while the platform was unreachable are kept and sent later, oldest first,
// with their original timestamps; the heartbeat resumes on its own.
TEST_F(RentalTest, MetricsTakenDuringAnOutageArriveLaterInOrder) {
  StartAgent();
  auto accepted = [&](const std::string& prefix) {
    std::vector<json> out;
    for (const auto& r : sim_->Requests(prefix)) {
      if (r.status == 200) out.push_back(json::parse(r.body));
    }
    return out;
  };
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] { return accepted("/api/host-agents/metrics").size() >= 2; }, 30s));
  sim_->SetDown(true);
  auto down_at = std::chrono::system_clock::now();
  // The outage lasts until the agent has kept three samples taken in it (one per 2 s).
  auto db = OpenAgentDb(agent_->root() + "/data");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        auto kept = db->UnpushedMetricSamples(100);
        if (!kept.ok()) return false;
        return std::count_if(kept->begin(), kept->end(),
                             [&](const auto& s) { return s.taken_at > down_at + 1s; }) >= 3;
      },
      30s));
  size_t before = accepted("/api/host-agents/metrics").size();
  int heartbeats_before = sim_->CountHeartbeats();
  sim_->SetDown(false);
  auto up_at = std::chrono::system_clock::now();
  // The outage's samples (one per 2 s) arrive once the platform is back.
  std::vector<json> metrics;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        metrics = accepted("/api/host-agents/metrics");
        int in_outage = 0;
        for (const auto& m : metrics) {
          auto t = ParseTimestamp(m["timestamp"].get<std::string>());
          if (t && *t > down_at + 1s && *t < up_at - 1s) ++in_outage;
        }
        return in_outage >= 2;
      },
      30s))
      << "samples from the outage were not delivered";
  EXPECT_GT(metrics.size(), before);
  for (size_t i = 1; i < metrics.size(); ++i) {
    EXPECT_LE(metrics[i - 1]["timestamp"].get<std::string>(),
              metrics[i]["timestamp"].get<std::string>())
        << "metrics out of order at " << i;
  }
  // Eight compat GPU keys aggregate both GPUs; the ext list has one entry per GPU.
  const json& last = metrics.back();
  EXPECT_EQ(last["gpus"].size(), 2u);
  EXPECT_TRUE(last["gpu_utilization"].is_number());
  EXPECT_TRUE(last["vram_used_mb"].is_number_integer());
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [&] { return sim_->CountHeartbeats() > heartbeats_before + 1; }, 15s));
}

}  // namespace
}  // namespace taolie::testing

namespace taolie::testing {
namespace {

// A wrong API key is said plainly; the agent keeps running and does not hammer the platform.
TEST_F(RentalTest, WrongApiKeyKeepsRunningAndRetriesSlowly) {
  HarnessOptions o;
  o.api_key = "wrong-key-123";
  agent_ = std::make_unique<AgentHarness>(docker_host_, registry_, *sim_, o);
  agent_->Start();
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] { return !sim_->Requests("/api/host-agents/register").empty(); }, 60s));
  // Three more rounds of the registration loop (2 s apart): none may hammer the platform.
  auto registration_rounds = [&] {
    json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
    if (!st.is_object()) return 0;
    for (const auto& l : st["loops"]) {
      if (l["name"] == "registration") return l["rounds"].get<int>();
    }
    return 0;
  };
  const int rounds = registration_rounds();
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return registration_rounds() >= rounds + 3; }, 30s));
  EXPECT_TRUE(agent_->Running());
  auto attempts = sim_->Requests("/api/host-agents/register");
  EXPECT_LE(attempts.size(), 3u);
  for (const auto& r : attempts) EXPECT_EQ(r.status, 401);
  EXPECT_NE(agent_->Log().find("API key"), std::string::npos);
  EXPECT_EQ(agent_->Log().find("wrong-key-123"), std::string::npos) << "the key was logged";
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["registered"], false);
  // The operator fixes the key and sends SIGHUP: registered at once, no restart.
  agent_->ReloadWithApiKey("sim-key");
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return sim_->LatestRegistration().has_value(); }, 15s));
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return sim_->CountHeartbeats() > 0; }, 15s));
  EXPECT_EQ(agent_->Log().find("sim-key"), std::string::npos) << "the new key was logged";
}

// An older platform without the ext event endpoints: 404 is recorded once, the events are
// kept as delivered-unsupported (never retried forever), and the compat traffic flows on.
TEST_F(RentalTest, PlatformWithoutExtEndpoints) {
  sim_->Stop();
  sim::Simulator::Options so;
  so.ext_endpoints = false;
  auto sim = sim::Simulator::Start(so);
  ASSERT_TRUE(sim.ok());
  sim_ = std::move(*sim);
  StartAgent();
  std::string bad = sim_->QueueCommand(agent_id_, "deploy", json{{"image", "--privileged"}}.dump());
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(bad); }, 30s));
  sim_->QueueCommand(
      agent_id_, "deploy",
      json{{"deployment_id", "old-1"}, {"image", SshImage()}, {"ports", {{"22", 22}}}}.dump());
  ASSERT_FALSE(WaitEvent("old-1", "success", 120s).is_null());
  std::string term =
      sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", "old-1"}}.dump());
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(term); }, 60s));
  // Each unsupported event was tried once (retries honour 404 as final), not again and again:
  // once both are recorded as unsupported, nothing retries them.
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        return HttpGet(agent_->status_port(), "/metrics")
                   .find("taolie_events_unsupported_total 2") != std::string::npos;
      },
      30s));
  int failed_posts = 0, terminated_posts = 0;
  for (const auto& r : sim_->Requests("/api/deployments/")) {
    if (r.path.find("/failed") != std::string::npos) ++failed_posts;
    if (r.path.find("/terminated") != std::string::npos) ++terminated_posts;
    EXPECT_TRUE(r.status == 200 || r.status == 404) << r.path << " " << r.status;
  }
  EXPECT_EQ(failed_posts, 1);
  EXPECT_EQ(terminated_posts, 1);
  EXPECT_NE(HttpGet(agent_->status_port(), "/metrics").find("taolie_events_unsupported_total 2"),
            std::string::npos);
  EXPECT_NE(agent_->Log().find("does not support"), std::string::npos);
}

// No NVML on the host: a clear state, not a crash. The host registers as a CPU host, GPU
// rentals are refused, CPU-only rentals work.
TEST_F(RentalTest, GpuLessHostIsAClearState) {
  HarnessOptions o;
  o.nvml_library = "/nonexistent/libnvidia-ml.so.1";
  o.gpu_yaml = "  nvidia_smi_path: /nonexistent/nvidia-smi\n";  // nor the nvidia-smi fallback
  StartAgent(o);
  json reg = json::parse(*sim_->LatestRegistration());
  EXPECT_EQ(reg["gpu_count"], 0);
  EXPECT_EQ(reg["resource_type"], "cpu");
  json st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
  ASSERT_TRUE(st.is_object());
  EXPECT_NE(st["gpu_probe"].get<std::string>().find("nonexistent"), std::string::npos)
      << st["gpu_probe"];
  std::string gpu = sim_->QueueCommand(
      agent_id_, "deploy",
      json{{"deployment_id", "gpu-1"}, {"image", SshImage()}, {"ports", {{"22", 22}}}}.dump());
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return sim_->Acked(gpu); }, 30s));
  EXPECT_NE(sim_->AckBodies(gpu).back().find("gpu_count"), std::string::npos);
  sim_->QueueCommand(agent_id_, "deploy",
                     json{{"deployment_id", "cpu-1"},
                          {"image", SshImage()},
                          {"gpu_count", 0},
                          {"ports", {{"22", 22}}}}
                         .dump());
  json ok = WaitEvent("cpu-1", "success", 120s);
  ASSERT_FALSE(ok.is_null());
  EXPECT_TRUE(ok["gpus"].empty());
  auto c = Containers("cpu-1");
  ASSERT_EQ(c.size(), 1u);
  auto info = docker_->Inspect(c[0].id);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->device_request_ids.empty());
}

// The managed PostgreSQL is killed under the agent: heartbeats keep their rhythm, the agent
// restarts the database, reconnects, and rents again.
TEST_F(RentalTest, DatabaseKilledUnderTheAgentIsSurvived) {
  StartAgent();
  std::string pidfile = agent_->root() + "/data/pg/postmaster.pid";
  auto read_pid = [&] { return std::atoi(ReadFile(pidfile).c_str()); };
  int pg = read_pid();
  ASSERT_GT(pg, 0);
  int beats = sim_->CountHeartbeats();
  ASSERT_EQ(::kill(pg, SIGKILL), 0);
  // Heartbeats do not wait for the database (interval 2 s).
  EXPECT_TRUE(sim::Simulator::WaitFor([&] { return sim_->CountHeartbeats() >= beats + 2; }, 10s));
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        int now = read_pid();
        return now > 0 && now != pg && ::kill(now, 0) == 0;
      },
      40s))
      << "the database was not restarted";
  sim_->QueueCommand(
      agent_id_, "deploy",
      json{{"deployment_id", "after-db"}, {"image", SshImage()}, {"ports", {{"22", 22}}}}.dump());
  EXPECT_FALSE(WaitEvent("after-db", "success", 120s).is_null());
  EXPECT_TRUE(agent_->Running());
}

}  // namespace
}  // namespace taolie::testing
