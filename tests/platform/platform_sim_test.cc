// Integration: HttpsPlatformApi + delivery + messages against the simulator on 127.0.0.1.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "platform/delivery.h"
#include "platform/https_platform_api.h"
#include "platform/messages.h"
#include "sim/simulator.h"
#include "support/contract_check.h"

namespace taolie::platform {
namespace {

using Json = nlohmann::json;
using sim::Simulator;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kAgent[] = "agent-0123456789ab";
const SystemTime kNow = SystemTime(seconds(1700000000));

class PlatformSimTest : public ::testing::Test {
 protected:
  void SetUp() override { StartSim({}); }

  void StartSim(Simulator::Options o) {
    auto s = Simulator::Start(o);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    sim_ = std::move(*s);
    api_ = MakeApi(sim_->base_url(), "sim-key");
  }

  std::unique_ptr<HttpsPlatformApi> MakeApi(const std::string& url, const std::string& key,
                                            seconds timeout = seconds(5)) {
    HttpsPlatformApi::Options o;
    o.base_url = url + "/";  // a trailing slash must not produce "//api"
    o.api_key = key;
    o.timeout = timeout;
    o.user_agent = "taolie-host-agent/9.9.9";
    auto r = HttpsPlatformApi::Create(o);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  Result<Response> Post(const std::string& path, const std::string& body) {
    return api_->Send(Method::kPost, path, body, {});
  }

  RegistrationInput Registration() {
    RegistrationInput in;
    in.agent_id = kAgent;
    in.public_ip = "127.0.0.1";
    in.host.hostname = "h";
    in.host.os = "Debian GNU/Linux 12 (bookworm)";
    in.host.storage_type = "SSD";
    in.host.ram_total_bytes = 64ull << 30;
    in.now = kNow;
    gpu::GpuInfo g;
    g.uuid = "GPU-a";
    g.name = "NVIDIA H100";
    g.pci_bus_id = "0000:01:00.0";
    g.memory_total_mb = 81559;
    g.compute_capability = "9.0";
    g.power_limit_watts = 700.0;
    g.mig_mode = "disabled";
    in.gpus.push_back(g);
    return in;
  }

  RetryPolicy FastPolicy(int attempts) {
    RetryPolicy p;
    p.max_attempts = attempts;
    p.base_delay = milliseconds(1);
    p.max_delay = milliseconds(5);
    return p;
  }

  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<HttpsPlatformApi> api_;
};

TEST_F(PlatformSimTest, RegisterSendsHeadersAndGetsStableUuid) {
  const std::string body = BuildRegisterBody(Registration());
  auto r1 = Post(RegisterPath(), body);
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  EXPECT_EQ(r1->status, 200) << r1->body;
  auto first = ParseRegisterResponse(r1->status, r1->body);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_FALSE(first->gpu_uuid.empty());

  auto r2 = Post(RegisterPath(), body);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->status, 409);
  auto second = ParseRegisterResponse(r2->status, r2->body);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->gpu_uuid, first->gpu_uuid);

  auto reqs = sim_->Requests("/api/host-agents/register");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].authorization, "Bearer sim-key");
  EXPECT_EQ(reqs[0].user_agent, "taolie-host-agent/9.9.9");
  EXPECT_EQ(reqs[0].content_type, "application/json");
  EXPECT_EQ(reqs[0].body, body);
  ASSERT_TRUE(sim_->LatestRegistration().has_value());
  EXPECT_EQ(Json::parse(*sim_->LatestRegistration()), Json::parse(body));
}

TEST_F(PlatformSimTest, WrongKeyIs401) {
  auto bad = MakeApi(sim_->base_url(), "wrong-key");
  auto r = bad->Send(Method::kPost, RegisterPath(), BuildRegisterBody(Registration()), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  auto parsed = ParseRegisterResponse(r->status, r->body);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kPermissionDenied);
}

TEST_F(PlatformSimTest, MissingOrMistypedCompatFieldIs422) {
  Json body = Json::parse(BuildRegisterBody(Registration()));
  body.erase("storage_available_gb");
  auto r = Post(RegisterPath(), body.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 422);
  auto parsed = ParseRegisterResponse(r->status, r->body);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find("storage_available_gb"), std::string::npos);

  body = Json::parse(BuildRegisterBody(Registration()));
  body["gpu_count"] = 1.0;  // int field sent as float
  r = Post(RegisterPath(), body.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 422);
  EXPECT_NE(Json::parse(r->body)["error"].get<std::string>().find("gpu_count"), std::string::npos);

  Json hb = Json::parse(
      BuildHeartbeatBody(kAgent, kNow, TimestampFormat::kNaive, "online", "v", 0, 1, 5));
  hb["timestamp"] = 12;
  r = Post(HeartbeatPath(kAgent), hb.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(sim_->CountHeartbeats(), 0);
}

TEST_F(PlatformSimTest, EveryBuiltBodyIsAccepted) {
  ASSERT_EQ(Post(RegisterPath(), BuildRegisterBody(Registration()))->status, 200);
  for (auto ts : {TimestampFormat::kNaive, TimestampFormat::kRfc3339}) {
    EXPECT_EQ(Post(HeartbeatPath(kAgent),
                   BuildHeartbeatBody(kAgent, kNow, ts, "online", "0.1.0", 1, 0, 100))
                  ->status,
              200);
  }
  EXPECT_EQ(sim_->CountHeartbeats(), 2);

  domain::MetricSample s;
  s.taken_at = kNow;
  domain::GpuMetricRow g;
  g.gpu_uuid = "GPU-a";
  g.utilization = 10;
  s.gpus.push_back(g);
  auto m = Post(MetricsPath(), BuildMetricsBody(kAgent, "plat-1", s, TimestampFormat::kNaive));
  EXPECT_EQ(m->status, 200) << m->body;

  domain::HealthReport h;
  h.checked_at = kNow;
  h.status = "available";
  h.details_json = "[]";
  auto hr = Post(HealthPath(), BuildHealthBody(kAgent, "plat-1", h, kNow, TimestampFormat::kNaive));
  EXPECT_EQ(hr->status, 200) << hr->body;

  AccessInfo a;
  a.public_ip = "127.0.0.1";
  a.ssh_username = "gpu-user";
  a.ssh_password = "pw";
  a.ssh_port = 2222;
  a.port_mappings = {{22, 2222}, {8888, 30000}};
  a.jupyter_host_port = 30000;
  a.jupyter_token = "t";
  auto su = Post(DeploymentEventPath("d1", "success"),
                 BuildSuccessBody("d1", "cid", a, {"GPU-a"}, kNow, kNow + seconds(3600),
                                  TimestampFormat::kNaive));
  EXPECT_EQ(su->status, 200) << su->body;
  auto fa = Post(DeploymentEventPath("d2", "failed"),
                 BuildFailedBody("d2", "pull", "no such image", kNow, TimestampFormat::kNaive));
  EXPECT_EQ(fa->status, 200) << fa->body;
  auto ex = Post(DeploymentEventPath("d1", "expiring"),
                 BuildExpiringBody("d1", kNow, 30, TimestampFormat::kNaive));
  EXPECT_EQ(ex->status, 200) << ex->body;
  domain::Usage u{60, 59.5, 0.5, 1.0, 0.99, 0.01, 0, std::nullopt, std::nullopt};
  auto te = Post(DeploymentEventPath("d1", "terminated"),
                 BuildTerminatedBody("d1", "expired", "duration elapsed", kNow, kNow, u,
                                     TimestampFormat::kNaive));
  EXPECT_EQ(te->status, 200) << te->body;
  // A body whose deployment_id is not the path's is refused.
  auto mismatch = Post(DeploymentEventPath("d9", "failed"),
                       BuildFailedBody("d2", "pull", "x", kNow, TimestampFormat::kNaive));
  EXPECT_EQ(mismatch->status, 422);

  EXPECT_EQ(sim_->Events("d1", "success").size(), 1u);
  EXPECT_EQ(Json::parse(sim_->Events("d1", "success")[0])["access_info"]["ssh"]["password"], "pw");
  auto counts = sim_->EventCounts();
  EXPECT_EQ((counts[{"d1", "success"}]), 1);
  EXPECT_EQ((counts[{"d1", "expiring"}]), 1);
  EXPECT_EQ((counts[{"d1", "terminated"}]), 1);
  EXPECT_EQ((counts[{"d2", "failed"}]), 1);
  EXPECT_EQ(counts.size(), 4u);
}

TEST_F(PlatformSimTest, CommandsAreRedeliveredUntilAcked) {
  const std::string id = sim_->QueueCommand(kAgent, "deploy", R"({"image":"busybox"})");
  sim_->QueueCommand("agent-ffffffffffff", "deploy", "{}", "other");
  for (int i = 0; i < 2; ++i) {
    auto r = api_->Send(Method::kGet, CommandsPath(kAgent), "", {});
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200);
    auto cmds = ParseCommands(r->body);
    ASSERT_TRUE(cmds.ok()) << cmds.error().ToString();
    ASSERT_EQ(cmds->commands.size(), 1u);
    EXPECT_EQ(cmds->commands[0].command_id, id);
    EXPECT_EQ(cmds->commands[0].command_type, "deploy");
    EXPECT_EQ(cmds->commands[0].payload_json, R"({"image":"busybox"})");
  }
  EXPECT_FALSE(sim_->Acked(id));
  const std::string ack = BuildAckBody(kNow, TimestampFormat::kNaive, "succeeded", "", id);
  EXPECT_EQ(Post(AckPath(kAgent, id), ack)->status, 200);
  EXPECT_EQ(Post(AckPath(kAgent, id), ack)->status, 200);  // a duplicate ack is harmless
  EXPECT_TRUE(sim_->Acked(id));
  EXPECT_EQ(sim_->AckBodies(id).size(), 2u);
  auto after = ParseCommands(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->body);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->commands.empty());
  EXPECT_EQ(Post(AckPath(kAgent, "never-queued"), ack)->status, 404);
  EXPECT_FALSE(sim_->Acked("other"));
}

TEST_F(PlatformSimTest, RetryOn503ThenSuccess) {
  sim_->SetFailNext(2, 503);
  std::vector<milliseconds> sleeps;
  auto r = SendWithRetry(
      *api_, Method::kPost, HeartbeatPath(kAgent),
      BuildHeartbeatBody(kAgent, kNow, TimestampFormat::kNaive, "online", "v", 0, 0, 0), false,
      FastPolicy(5), {}, [&](milliseconds d) { sleeps.push_back(d); });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  auto reqs = sim_->Requests(HeartbeatPath(kAgent));
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].status, 503);
  EXPECT_EQ(reqs[1].status, 503);
  EXPECT_EQ(reqs[2].status, 200);
  EXPECT_EQ(sim_->CountHeartbeats(), 1);
}

TEST_F(PlatformSimTest, RetryAfterIsParsedAndHonoured) {
  sim_->SetFailNext(1, 429, 7);
  auto raw = api_->Send(Method::kGet, CommandsPath(kAgent), "", {});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->status, 429);
  ASSERT_TRUE(raw->retry_after.has_value());
  EXPECT_EQ(*raw->retry_after, seconds(7));

  sim_->SetFailNext(1, 503, 3);
  std::vector<milliseconds> sleeps;
  auto r = SendWithRetry(*api_, Method::kGet, CommandsPath(kAgent), "", false, FastPolicy(3), {},
                         [&](milliseconds d) { sleeps.push_back(d); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(sleeps, std::vector<milliseconds>{milliseconds(3000)});
}

TEST_F(PlatformSimTest, DownPlatformExhaustsAttempts) {
  sim_->SetDown(true);
  int sleeps = 0;
  auto r = SendWithRetry(*api_, Method::kGet, CommandsPath(kAgent), "", false, FastPolicy(3), {},
                         [&](milliseconds) { ++sleeps; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(sleeps, 2);
  EXPECT_EQ(sim_->Requests(CommandsPath(kAgent)).size(), 3u);
  sim_->SetDown(false);
  EXPECT_EQ(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->status, 200);
}

TEST_F(PlatformSimTest, ConnectionRefusedIsUnavailable) {
  const std::string url = sim_->base_url();
  sim_->Stop();
  auto api = MakeApi(url, "sim-key");
  auto r = api->Send(Method::kGet, CommandsPath(kAgent), "", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(Classify(r, false), Disposition::kRetry);
  EXPECT_EQ(r.error().message.find("sim-key"), std::string::npos);
}

TEST_F(PlatformSimTest, HttpsIsRealTlsNotPlainHttp) {
  // The simulator speaks plain HTTP: an https:// client must fail the TLS handshake.
  auto tls = MakeApi("https://127.0.0.1:" + std::to_string(sim_->port()), "sim-key");
  auto r = tls->Send(Method::kGet, CommandsPath(kAgent), "", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().ToString();
}

TEST_F(PlatformSimTest, StopTokenCancelsAnInFlightRequest) {
  sim_->SetResponseDelay(milliseconds(8000));
  std::stop_source stop;
  std::jthread stopper([&] {
    std::this_thread::sleep_for(milliseconds(200));
    stop.request_stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto r = api_->Send(Method::kGet, CommandsPath(kAgent), "", stop.get_token());
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled) << r.error().ToString();
  EXPECT_LT(took, seconds(4));
  sim_->SetResponseDelay(milliseconds(0));
}

TEST_F(PlatformSimTest, TimeoutIsDeadlineExceeded) {
  sim_->SetResponseDelay(milliseconds(4000));
  auto api = MakeApi(sim_->base_url(), "sim-key", seconds(1));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = api->Send(Method::kGet, CommandsPath(kAgent), "", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded) << r.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(3));
  sim_->SetResponseDelay(milliseconds(0));
}

TEST_F(PlatformSimTest, ExtEndpointsCanBeAbsent) {
  sim_.reset();
  Simulator::Options o;
  o.ext_endpoints = false;
  StartSim(o);
  std::vector<milliseconds> sleeps;
  auto r = SendWithRetry(*api_, Method::kPost, DeploymentEventPath("d1", "terminated"),
                         BuildTerminatedBody("d1", "terminated", "user_requested", kNow, kNow, {},
                                             TimestampFormat::kNaive),
                         true, FastPolicy(3), {}, [&](milliseconds d) { sleeps.push_back(d); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Classify(r, true), Disposition::kUnsupported);
  EXPECT_TRUE(sleeps.empty());
  EXPECT_TRUE(sim_->EventCounts().empty());
}

TEST_F(PlatformSimTest, ConcurrentSendsAreSafe) {
  std::vector<std::jthread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto r =
            Post(HeartbeatPath(kAgent),
                 BuildHeartbeatBody(kAgent, kNow, TimestampFormat::kNaive, "online", "v", 0, 0, 0));
        if (r.ok() && r->status == 200) ++ok;
      }
    });
  }
  threads.clear();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(sim_->CountHeartbeats(), 40);
}

TEST_F(PlatformSimTest, ControlEndpointsForAPerson) {
  auto post = [&](const std::string& path, const std::string& body) {
    return api_->Send(Method::kPost, path, body, {});
  };
  auto dep = post("/sim/agents/" + std::string(kAgent) + "/deploy",
                  R"({"image":"busybox","deployment_id":"dep-1"})");
  ASSERT_TRUE(dep.ok());
  ASSERT_EQ(dep->status, 200) << dep->body;
  Json d = Json::parse(dep->body);
  EXPECT_EQ(d["deployment_id"], "dep-1");
  const std::string cmd = d["command_id"];
  auto plain = post("/sim/agents/" + std::string(kAgent) + "/deploy", "");
  ASSERT_EQ(plain->status, 200);
  Json p = Json::parse(plain->body);
  EXPECT_EQ(p["deployment_id"], p["command_id"]);  // no deployment_id: the command id is it
  auto term = post("/sim/agents/" + std::string(kAgent) + "/terminate/dep-1", "");
  ASSERT_EQ(term->status, 200);

  auto cmds = ParseCommands(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->body);
  ASSERT_TRUE(cmds.ok());
  ASSERT_EQ(cmds->commands.size(), 3u);
  EXPECT_EQ(cmds->commands[0].command_id, cmd);
  EXPECT_EQ(cmds->commands[2].command_type, "terminate");
  EXPECT_EQ(Json::parse(cmds->commands[2].payload_json),
            Json::parse(R"({"deployment_id":"dep-1","reason":"user_requested"})"));

  ASSERT_EQ(Post(RegisterPath(), BuildRegisterBody(Registration()))->status, 200);
  AccessInfo a;
  a.public_ip = "127.0.0.1";
  a.ssh_port = 2222;
  a.ssh_username = "u";
  ASSERT_EQ(Post(DeploymentEventPath("dep-1", "success"),
                 BuildSuccessBody("dep-1", "c", a, {}, kNow, kNow, TimestampFormat::kNaive))
                ->status,
            200);
  Json deployments = Json::parse(api_->Send(Method::kGet, "/sim/deployments", "", {})->body);
  ASSERT_EQ(deployments.size(), 1u);
  EXPECT_EQ(deployments[0]["deployment_id"], "dep-1");
  EXPECT_EQ(deployments[0]["latest_kind"], "success");
  EXPECT_EQ(deployments[0]["access_info"]["ssh"]["port"], 2222);
  Json events = Json::parse(api_->Send(Method::kGet, "/sim/events", "", {})->body);
  EXPECT_EQ(events.size(), 1u);
  Json agents = Json::parse(api_->Send(Method::kGet, "/sim/agents", "", {})->body);
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0]["agent_id"], kAgent);
  EXPECT_EQ(post("/sim/agents/x/deploy", "[1]")->status, 400);
}

TEST(SimulatorWaitFor, IsBounded) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(Simulator::WaitFor([] { return false; }, milliseconds(50)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(2));
  EXPECT_TRUE(Simulator::WaitFor([] { return true; }, milliseconds(0)));
}

TEST_F(PlatformSimTest, EndpointNamesFollowTheContract) {
  const std::vector<std::tuple<const char*, const char*, const char*>> cases = {
      {"POST", "/api/host-agents/register", "register"},
      {"POST", "/api/host-agents/metrics", "metrics"},
      {"POST", "/api/host-agents/health", "health"},
      {"POST", "/api/host-agents/agent-1/heartbeat", "heartbeat"},
      {"GET", "/api/host-agents/agent-1/commands", "commands"},
      {"POST", "/api/host-agents/agent-1/commands/c-1/ack", "ack"},
      {"POST", "/api/deployments/d-1/success", "event.success"},
      {"POST", "/api/deployments/d-1/failed", "event.failed"},
      {"POST", "/api/deployments/d-1/expiring", "event.expiring"},
      {"POST", "/api/deployments/d-1/terminated", "event.terminated"},
      {"POST", "/api/deployments/d-1/gpu_failed", "event.gpu_failed"},
      {"GET", "/api/host-agents/register", ""},
      {"POST", "/api/host-agents/agent-1/commands", ""},
      {"GET", "/api/host-agents/agent-1/commands/c-1/ack", ""},
      {"POST", "/api/deployments/d-1/paused", ""},
      {"POST", "/api/host-agents/agent-1/reboot", ""},
      {"POST", "/sim/agents/agent-1/deploy", ""},
  };
  for (const auto& [method, path, endpoint] : cases) {
    EXPECT_EQ(Simulator::EndpointOf(method, path), endpoint) << method << " " << path;
  }
}

// Every exchange is recorded with its endpoint and the answer as sent; what the agent's
// messages build and what the simulator answers all validate against schemas/; answers that
// carry text a test injected on purpose are marked.
TEST_F(PlatformSimTest, RecordedExchangesFollowTheSchemas) {
  ASSERT_EQ(Post(RegisterPath(), BuildRegisterBody(Registration()))->status, 200);
  ASSERT_EQ(Post(RegisterPath(), BuildRegisterBody(Registration()))->status, 409);
  ASSERT_EQ(Post(HeartbeatPath(kAgent), BuildHeartbeatBody(kAgent, kNow, TimestampFormat::kNaive,
                                                           "online", "0.1.0", 0, 1, 5))
                ->status,
            200);
  const std::string id = sim_->QueueCommand(kAgent, "deploy", R"({"image":"busybox"})");
  sim_->QueueCommand(kAgent, "terminate", R"({"deployment_id":"d1"})");
  ASSERT_EQ(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->status, 200);
  ASSERT_EQ(
      Post(AckPath(kAgent, id), BuildAckBody(kNow, TimestampFormat::kNaive, "succeeded", "", id))
          ->status,
      200);
  ASSERT_EQ(Post(DeploymentEventPath("d1", "failed"),
                 BuildFailedBody("d1", "pull", "no such image", kNow, TimestampFormat::kNaive))
                ->status,
            200);
  sim_->SetFailNext(1, 503);
  domain::MetricSample sample;
  sample.taken_at = kNow;
  ASSERT_EQ(Post(MetricsPath(), BuildMetricsBody(kAgent, "plat-1", sample, TimestampFormat::kNaive))
                ->status,
            503);  // the injected failure's answer
  EXPECT_EQ(Post("/api/host-agents/" + std::string(kAgent) + "/heartbeat", "{}")->status, 422);

  auto all = sim_->Requests("/api/");
  ASSERT_EQ(all.size(), 8u);
  EXPECT_EQ(all[0].endpoint, "register");
  EXPECT_EQ(Json::parse(all[0].response_body)["gpu_uuid"],
            Json::parse(all[1].response_body)["gpu_uuid"]);
  EXPECT_EQ(all[3].endpoint, "commands");
  EXPECT_EQ(Json::parse(all[3].response_body)["commands"].size(), 2u);
  EXPECT_FALSE(all[3].injected);
  EXPECT_EQ(all[5].endpoint, "event.failed");
  // The first seven follow the contract; the last, an empty heartbeat, does not.
  EXPECT_EQ(testing::ContractViolations({all.begin(), all.end() - 1}), std::vector<std::string>{});
  auto bad = testing::ContractViolations({all.back()});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].find("[heartbeat] request: heartbeat.request.json: /: required property "
                        "'agent_id' is missing"),
            std::string::npos)
      << bad[0];

  // Text a test feeds in on purpose is marked as such.
  sim_->QueueCommand(kAgent, "deploy", "not json at all");
  ASSERT_EQ(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->status, 200);
  sim_->SetRawPollReply(kAgent, R"([{"command_id": 7}])");
  ASSERT_EQ(api_->Send(Method::kGet, CommandsPath(kAgent), "", {})->status, 200);
  std::vector<Simulator::Request> polls;
  for (const auto& r : sim_->Requests(CommandsPath(kAgent))) {
    if (r.method == "GET") polls.push_back(r);
  }
  ASSERT_EQ(polls.size(), 3u);
  EXPECT_FALSE(polls[0].injected);
  EXPECT_TRUE(polls[1].injected);
  EXPECT_TRUE(polls[2].injected);
  EXPECT_NE(polls[2].response_body.find(R"({"command_id": 7})"), std::string::npos);
}

}  // namespace
}  // namespace taolie::platform
