// Every body messages.cc builds validates against its schema in schemas/ (docs/platform-api.md),
// in both timestamp forms and with and without the optional parts; a body with a compat field
// renamed, dropped or of the wrong type is rejected (the check can fail). Issue 18 item 7.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "platform/messages.h"
#include "support/contract_check.h"
#include "support/json_schema.h"

namespace taolie::platform {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;
using testing::ContractViolations;
using testing::JsonSchema;
using testing::LoadContractSchema;

const SystemTime kNow = SystemTime(seconds(1700000000)) + std::chrono::microseconds(123456);
constexpr uint64_t kGiB = 1024ull * 1024 * 1024;
const TimestampFormat kBothForms[] = {TimestampFormat::kNaive, TimestampFormat::kRfc3339};

JsonSchema Schema(const std::string& name) {
  auto s = LoadContractSchema(name);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  if (!s.ok()) std::abort();  // a broken schema file: nothing below can mean anything
  return *s;
}

// Validates `body` (JSON text) against schema `name`; the message names the body.
::testing::AssertionResult Valid(const std::string& name, const std::string& body) {
  const Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded()) return ::testing::AssertionFailure() << "not JSON: " << body;
  const std::string e = Schema(name).Validate(j);
  if (e.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << e << "\nbody: " << body;
}

RegistrationInput Registration(bool with_gpus) {
  RegistrationInput in;
  in.agent_id = "agent-0123456789ab";
  in.agent_version = "0.1.0";
  in.docker_version = "20.10.24";
  in.public_ip = "203.0.113.7";
  in.ssh_port = 2222;
  in.rental_port_1 = 8888;
  in.rental_port_2 = 9999;
  in.host.hostname = "gpu-box";
  in.host.os = "Debian GNU/Linux 12 (bookworm)";
  in.host.cpu_sockets = 1;
  in.host.cpu_cores = 16;
  in.host.ram_total_bytes = 64 * kGiB;
  in.host.storage_total_bytes = 500 * kGiB;
  in.host.storage_available_bytes = 100 * kGiB;
  in.host.uptime_seconds = 7200;
  in.now = kNow;
  if (with_gpus) {
    in.port_range = "30000-30999";
    in.rental_port_3 = 7777;
    in.location = "eu-west";
    in.driver = {"550.54.15", "12.4", "12.550"};
    gpu::GpuInfo g;
    g.uuid = "GPU-aaaa";
    g.name = "NVIDIA A100";
    g.memory_total_mb = 81920;
    g.pci_bus_id = "00000000:07:00.0";
    g.compute_capability = "8.0";
    g.power_limit_watts = 400.0;
    g.mig_mode = "disabled";
    gpu::GpuInfo g1 = g;
    g1.index = 1;
    g1.uuid = "GPU-bbbb";
    g1.power_limit_watts = std::nullopt;
    in.gpus = {g, g1};
  }
  return in;
}

domain::MetricSample Sample() {
  domain::MetricSample s;
  s.taken_at = kNow - seconds(60);
  s.host = {12.5, 30.25, 100.0, 1.5, 10.0, 20.0, 49};
  domain::GpuMetricRow a;
  a.gpu_uuid = "GPU-a";
  a.utilization = 50;
  a.memory_used_mb = 1000;
  a.memory_total_mb = 81920;
  a.temperature_c = 60;
  a.power_draw_watts = 200;
  a.power_limit_watts = 400;
  a.fan_speed_percent = 40;
  a.sm_clock_mhz = 1400;
  a.mem_clock_mhz = 1593;
  a.memory_free_mb = 80920;
  a.energy_joules = 1.5e6;
  a.pcie_gen = 4;
  a.throttle_reasons = 0;
  a.ecc_volatile_corrected = 0;
  a.retired_pages_pending = false;
  a.remapped_rows_pending = false;
  a.remapped_rows_failure = false;
  a.power_violation_ns = 0;
  a.process_count = 2;
  a.deployment_id = "d1";
  domain::GpuMetricRow b;  // fanless and mostly unreadable: nulls in the ext list
  b.gpu_uuid = "GPU-b";
  b.gpu_index = 1;
  s.gpus = {a, b};
  return s;
}

// The per-GPU details as the health rules store them (agent/health_rules.cc GpuHealthToJson),
// plus one entry written before `quarantined` existed.
constexpr char kHealthDetails[] =
    R"([{"index":0,"uuid":"GPU-a","health":"unhealthy","checks":{"temperature":{"ok":false,)"
    R"("severity":"unhealthy","value":95.0,"threshold":90.0,"message":"too hot"},"xid":{"ok":)"
    R"(false,"severity":"unhealthy","value":79,"threshold":null,"message":"XID 79"}},)"
    R"("recent_xids":[{"xid":79,"at":"2023-11-14T22:13:20.123456Z"}],"quarantined":true,)"
    R"("quarantine_reason":"XID 79","reason":"XID 79","needs_reset":true},)"
    R"({"index":1,"uuid":"GPU-b","health":"healthy","checks":{},"recent_xids":[]}])";

domain::HealthReport Report(bool with_details) {
  domain::HealthReport h;
  h.checked_at = kNow - seconds(5);
  h.is_healthy = false;
  h.status = "unhealthy";
  h.temperature_ok = false;
  h.gpu_performance_score = 87.349;
  h.system_stability_score = 100;
  if (with_details) h.details_json = kHealthDetails;
  return h;
}

AccessInfo Access(bool full) {
  AccessInfo a;
  a.public_ip = full ? "203.0.113.7" : "2001:db8::7";
  if (full) {
    a.ssh_username = "gpu-user";
    a.ssh_password = "s3cretPassw0rd!!";
    a.ssh_port = 2222;
    a.jupyter_host_port = 8888;
    a.jupyter_token = "tok123";
    a.custom_host_port = 30001;
    a.port_mappings = {{22, 2222}, {8888, 8888}, {6006, 30001}};
  }
  return a;
}

TEST(ContractSchemas, EverySchemaFileLoadsAndIsNamedByAnEndpoint) {
  std::set<std::string> routed;
  for (const char* endpoint :
       {"register", "heartbeat", "commands", "ack", "metrics", "health", "event.success",
        "event.failed", "event.expiring", "event.terminated", "event.gpu_failed"}) {
    for (int status : {200, 409, 500}) {
      for (const std::string& name :
           {testing::RequestSchemaFor(endpoint), testing::ResponseSchemaFor(endpoint, status)}) {
        if (!name.empty()) routed.insert(name);
      }
    }
  }
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(TAOLIE_SCHEMA_DIR)) {
    if (e.path().extension() != ".json") continue;
    files.insert(e.path().filename().string());
    auto s = JsonSchema::Load(e.path().string());
    EXPECT_TRUE(s.ok()) << s.error().ToString();
  }
  EXPECT_EQ(files, routed) << "a schema no endpoint uses, or an endpoint without its file";
}

TEST(ContractSchemas, RegisterBodies) {
  for (TimestampFormat ts : kBothForms) {
    for (bool gpus : {true, false}) {
      RegistrationInput in = Registration(gpus);
      in.ts = ts;
      EXPECT_TRUE(Valid("register.request.json", BuildRegisterBody(in)));
    }
  }
  RegistrationInput unknown_boot = Registration(true);
  unknown_boot.host.boot_time_unix = 0;  // last_reboot from uptime
  EXPECT_TRUE(Valid("register.request.json", BuildRegisterBody(unknown_boot)));
}

TEST(ContractSchemas, HeartbeatBodies) {
  for (TimestampFormat ts : kBothForms) {
    EXPECT_TRUE(Valid("heartbeat.request.json", BuildHeartbeatBody("agent-0123456789ab", kNow, ts,
                                                                   "online", "0.1.0", 1, 1, 3600)));
    EXPECT_TRUE(Valid("heartbeat.request.json",
                      BuildHeartbeatBody("agent-0123456789ab", kNow, ts, "draining", "0.1.0", 0, 2,
                                         5, HeartbeatIsolation{true, false, "DOCKER-USER gone"})));
    EXPECT_TRUE(Valid("heartbeat.request.json",
                      BuildHeartbeatBody("agent-0123456789ab", kNow, ts, "online", "0.1.0", 0, 2, 5,
                                         HeartbeatIsolation{true, true, ""})));
  }
}

TEST(ContractSchemas, AckBodies) {
  for (TimestampFormat ts : kBothForms) {
    EXPECT_TRUE(Valid("ack.request.json", BuildAckBody(kNow, ts, "succeeded", "", "d1")));
    EXPECT_TRUE(Valid("ack.request.json", BuildAckBody(kNow, ts, "failed", "pull failed", "d1")));
    EXPECT_TRUE(Valid("ack.request.json", BuildAckBody(kNow, ts, "rejected", "draining", "")));
  }
}

TEST(ContractSchemas, MetricsBodies) {
  for (TimestampFormat ts : kBothForms) {
    EXPECT_TRUE(Valid("metrics.request.json", BuildMetricsBody("a", "plat-1", Sample(), ts)));
    domain::MetricSample none = Sample();
    none.gpus.clear();  // a CPU host
    EXPECT_TRUE(Valid("metrics.request.json", BuildMetricsBody("a", "plat-1", none, ts)));
  }
}

TEST(ContractSchemas, HealthBodies) {
  for (TimestampFormat ts : kBothForms) {
    EXPECT_TRUE(
        Valid("health.request.json", BuildHealthBody("a", "plat-1", Report(true), kNow, ts)));
    EXPECT_TRUE(
        Valid("health.request.json", BuildHealthBody("a", "plat-1", Report(false), kNow, ts)));
  }
}

TEST(ContractSchemas, DeploymentEventBodies) {
  for (TimestampFormat ts : kBothForms) {
    for (bool full : {true, false}) {
      std::vector<std::string> gpus;
      if (full) gpus = {"GPU-a", "GPU-b"};
      const std::string success =
          BuildSuccessBody("d1", "c0ffee", Access(full), gpus, kNow, kNow + seconds(3600), ts);
      EXPECT_TRUE(Valid("event.success.request.json", success));
      // What the agent keeps after delivery (password and token blanked) keeps the shape.
      EXPECT_TRUE(Valid("event.success.request.json", ScrubSecretsFromBody(success)));
    }
    for (const char* stage : {"validate", "pull", "create", "start", "readiness"}) {
      EXPECT_TRUE(Valid("event.failed.request.json",
                        BuildFailedBody("d1", stage, "manifest unknown", kNow, ts)));
    }
    EXPECT_TRUE(
        Valid("event.expiring.request.json", BuildExpiringBody("d1", kNow + seconds(30), 30, ts)));
    domain::Usage plain{60,           20.5, 39.5,         std::nullopt, std::nullopt,
                        std::nullopt, 0,    std::nullopt, std::nullopt};
    domain::Usage priced{60, 20.5, 39.5, 1.2, 0.41, 0.79, 1230, 12.5, 87.0};
    domain::Usage priced_unknown{60,           0, 60,           1.2,         std::nullopt,
                                 std::nullopt, 0, std::nullopt, std::nullopt};
    for (const char* status : {"terminated", "expired", "failed"}) {
      EXPECT_TRUE(Valid("event.terminated.request.json",
                        BuildTerminatedBody("d1", status, "user_requested", kNow,
                                            kNow + seconds(1230), plain, ts)));
    }
    EXPECT_TRUE(Valid("event.terminated.request.json",
                      BuildTerminatedBody("d1", "expired", "duration", kNow, kNow, priced, ts)));
    EXPECT_TRUE(Valid(
        "event.terminated.request.json",
        BuildTerminatedBody("d1", "failed", "disk_quota", std::nullopt, kNow, priced_unknown, ts)));
    EXPECT_TRUE(Valid("event.gpu_failed.request.json",
                      BuildGpuFailedBody("d1", "GPU-a", "unhealthy", "XID 79", 79, kNow, ts)));
    EXPECT_TRUE(
        Valid("event.gpu_failed.request.json",
              BuildGpuFailedBody("d1", "GPU-a", "lost", "GPU lost", std::nullopt, kNow, ts)));
  }
}

TEST(ContractSchemas, CommandPollAnswers) {
  const JsonSchema s = Schema("commands.response.json");
  EXPECT_EQ(s.Validate(Json::parse(R"({"commands": []})")), "");
  EXPECT_EQ(s.Validate(Json::parse(R"({"commands": [
      {"command_id": "c1", "command_type": "deploy", "payload": {
        "image": "127.0.0.1:5555/taolie-test/sshd:1", "duration_minutes": 5,
        "ports": {"22": 22, "8888": "8888"}, "environment": {"A": "b"}, "volumes": {},
        "gpu_count": 0, "gpu_uuids": null, "cpu_limit": 1.5, "restart_policy": "no",
        "registry_auth": {"username": "u", "password": "p"}, "price_per_hour": 2}},
      {"command_id": "c2", "command_type": "deploy"},
      {"command_id": "c3", "command_type": "terminate",
       "payload": {"deployment_id": "d1", "reason": "user_requested"}},
      {"command_id": "c4", "command_type": "terminate", "payload": {"deployment_id": 17}},
      {"command_id": "c5", "command_type": "reboot", "payload": {"anything": [1]}}]})")),
            "");
  // Shapes outside the contract are refused by the schema. Values the agent refuses by its own
  // rules (a restart policy "sometimes", port 0, a huge duration) have the right shape: they
  // are answered with a rejected ack, inside the protocol, so the schema accepts them.
  EXPECT_EQ(s.Validate(Json::parse(R"({"commands": [{"command_id": "c", "command_type": "deploy",
      "payload": {"restart_policy": "sometimes", "ports": {"22": 0}, "duration_minutes": 100000,
                  "deployment_id": "../x", "environment": {"A=B": "x"}}}]})")),
            "");
  const std::vector<std::pair<const char*, const char*>> off_contract = {
      {R"([])", "/: expected object, got array"},
      {R"({})", "required property 'commands' is missing"},
      {R"({"commands": [{"command_type": "deploy"}]})", "'command_id' is missing"},
      {R"({"commands": [{"command_id": "", "command_type": "deploy"}]})", "shorter than 1"},
      {R"({"commands": [{"command_id": 7, "command_type": "deploy"}]})",
       "/commands/0/command_id: expected string, got integer"},
      {R"({"commands": [{"command_id": "c", "command_type": "deploy", "payload": "x"}]})",
       "expected object or null, got string"},
      {R"({"commands": [{"command_id": "c", "command_type": "deploy",
           "payload": {"duration_minutes": "60"}}]})",
       "/commands/0/payload/duration_minutes: expected integer or null, got string"},
      {R"({"commands": [{"command_id": "c", "command_type": "terminate", "payload": {}}]})",
       "required property 'deployment_id' is missing"},
      {R"({"commands": [{"command_id": "c", "command_type": "terminate"}]})",
       "required property 'payload' is missing"},
  };
  for (const auto& [body, why] : off_contract) {
    const std::string e = s.Validate(Json::parse(body));
    EXPECT_NE(e.find(why), std::string::npos) << body << "\n-> " << e;
  }
}

TEST(ContractSchemas, RegisterAnswers) {
  const JsonSchema ok = Schema("register.response.json");
  EXPECT_EQ(ok.Validate(Json::parse(R"({"gpu_uuid": "plat-gpu-1", "message": "registered"})")), "");
  EXPECT_EQ(ok.Validate(Json::parse(R"({"gpu_uuid": "plat-gpu-1", "error": "already"})")), "");
  EXPECT_NE(ok.Validate(Json::parse(R"({"message": "registered"})")), "");
  EXPECT_NE(ok.Validate(Json::parse(R"({"gpu_uuid": 5})")), "");
  const JsonSchema err = Schema("error.response.json");
  EXPECT_EQ(err.Validate(Json::parse(R"({"error": "gpu_count: expected int"})")), "");
  EXPECT_EQ(err.Validate(Json::parse(R"({"detail": "bad"})")), "");
  EXPECT_NE(err.Validate(Json::parse(R"({"message": "bad"})")), "");
}

// The proof that the check can fail: the agent's own bodies, each altered the way a refactor
// could break the contract, are rejected with a message that names the field.
TEST(ContractSchemas, AlteredBodiesAreRejected) {
  struct Alteration {
    const char* schema;
    std::string body;
    std::function<void(Json&)> alter;
    const char* error;
  };
  const std::string reg = BuildRegisterBody(Registration(true));
  const std::string metrics = BuildMetricsBody("a", "plat-1", Sample(), TimestampFormat::kNaive);
  const std::string success = BuildSuccessBody("d1", "c0ffee", Access(true), {"GPU-a"}, kNow,
                                               kNow + seconds(60), TimestampFormat::kNaive);
  const std::string ack = BuildAckBody(kNow, TimestampFormat::kNaive, "failed", "x", "d1");
  const std::string hb =
      BuildHeartbeatBody("a", kNow, TimestampFormat::kNaive, "online", "1", 0, 0, 0);
  const std::vector<Alteration> cases = {
      {"register.request.json", reg,
       [](Json& j) {
         j["gpu_mem_mb"] = j["gpu_memory_mb"];  // a compat field renamed
         j.erase("gpu_memory_mb");
       },
       "required property 'gpu_memory_mb' is missing"},
      {"register.request.json", reg, [](Json& j) { j["total_ram_gb"] = 251.5; },
       "/total_ram_gb: expected integer, got number"},
      {"register.request.json", reg, [](Json& j) { j["storage_type"] = "NVMe"; },
       "/storage_type: \"NVMe\" is not one of"},
      {"register.request.json", reg, [](Json& j) { j["last_reboot"] = "yesterday"; },
       "/last_reboot: \"yesterday\" does not match"},
      {"register.request.json", reg, [](Json& j) { j["gpus"][1]["memory_mb"] = "81920"; },
       "/gpus/1/memory_mb: expected integer, got string"},
      {"heartbeat.request.json", hb, [](Json& j) { j["status"] = "up"; },
       "/status: \"up\" is not one of"},
      {"ack.request.json", ack, [](Json& j) { j["status"] = "done"; },
       "/status: must be \"processed\""},
      {"ack.request.json", ack, [](Json& j) { j["result"] = "ok"; }, "/result: \"ok\" is not one"},
      {"metrics.request.json", metrics,
       [](Json& j) {
         j["gpu_util"] = j["gpu_utilization"];
         j.erase("gpu_utilization");
       },
       "required property 'gpu_utilization' is missing"},
      {"metrics.request.json", metrics, [](Json& j) { j["vram_used_mb"] = 1000.5; },
       "/vram_used_mb: expected integer, got number"},
      {"event.success.request.json", success,
       [](Json& j) { j["access_info"]["ssh"]["port"] = "2222"; },
       "/access_info/ssh/port: expected integer, got string"},
      {"event.success.request.json", success,
       [](Json& j) { j["access_info"]["port_mappings"]["22"] = 0; },
       "/access_info/port_mappings/22: 0 is below the minimum 1"},
      {"event.success.request.json", success,
       [](Json& j) {
         j["access_info"]["rental_ports"]["port_1"]["jupyter_url"] =
             j["access_info"]["rental_ports"]["port_1"]["full_url"];
         j["access_info"]["rental_ports"]["port_1"].erase("full_url");
       },
       "/access_info/rental_ports/port_1: required property 'full_url' is missing"},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(Valid(c.schema, c.body)) << "the unaltered body must pass first";
    Json j = Json::parse(c.body);
    c.alter(j);
    const std::string e = Schema(c.schema).Validate(j);
    EXPECT_NE(e.find(c.error), std::string::npos)
        << c.schema << ": expected '" << c.error << "', got '" << e << "'";
  }
}

sim::Simulator::Request Exchange(std::string method, std::string path, std::string endpoint,
                                 std::string body, int status, std::string answer) {
  sim::Simulator::Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.endpoint = std::move(endpoint);
  r.body = std::move(body);
  r.status = status;
  r.response_body = std::move(answer);
  return r;
}

// The check the e2e harness runs at teardown, on recorded exchanges made up here.
TEST(ContractViolations, NamesTheEndpointTheReasonAndTheMaskedBody) {
  const std::string ok = R"({"status":"ok"})";
  const std::string success = BuildSuccessBody("d1", "c0ffee", Access(true), {"GPU-a"}, kNow,
                                               kNow + seconds(60), TimestampFormat::kNaive);
  const std::string hb = BuildHeartbeatBody("agent-0123456789ab", kNow, TimestampFormat::kNaive,
                                            "online", "1", 0, 0, 0);
  std::vector<sim::Simulator::Request> good = {
      Exchange("POST", "/api/host-agents/register", "register",
               BuildRegisterBody(Registration(true)), 200,
               R"({"gpu_uuid":"plat-gpu-1","message":"registered"})"),
      Exchange("POST", "/api/host-agents/a/heartbeat", "heartbeat", hb, 200, ok),
      Exchange("GET", "/api/host-agents/a/commands", "commands", "", 200,
               R"({"commands":[{"command_id":"c1","command_type":"deploy","payload":{}}]})"),
      Exchange("POST", "/api/deployments/d1/success", "event.success", success, 200, ok),
      Exchange("POST", "/api/deployments/d1/success", "event.success", success, 503,
               R"j({"error":"platform is down (simulated)"})j"),
      Exchange("POST", "/sim/agents/a/deploy", "", "not json", 200, "[]"),  // control: skipped
  };
  EXPECT_TRUE(ContractViolations(good).empty());

  // A raw poll reply a test injected is off the contract on purpose: not checked.
  auto injected = Exchange("GET", "/api/host-agents/a/commands", "commands", "", 200, "[1,2]");
  injected.injected = true;
  EXPECT_TRUE(ContractViolations({injected}).empty());
  injected.injected = false;
  auto v = ContractViolations({injected});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("GET /api/host-agents/a/commands [commands] answer HTTP 200: "
                      "commands.response.json: /: expected object, got array"),
            std::string::npos)
      << v[0];

  // A compat field renamed in a body the agent sent: the endpoint, the reason, and the body
  // with its secrets masked.
  Json renamed = Json::parse(success);
  renamed["access_info"]["ssh"]["user"] = renamed["access_info"]["ssh"]["username"];
  renamed["access_info"]["ssh"].erase("username");
  v = ContractViolations(
      {Exchange("POST", "/api/deployments/d1/success", "event.success", renamed.dump(), 200, ok)});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("POST /api/deployments/d1/success [event.success] request: "
                      "event.success.request.json: /access_info/ssh: required property "
                      "'username' is missing"),
            std::string::npos)
      << v[0];
  EXPECT_EQ(v[0].find("s3cretPassw0rd!!"), std::string::npos) << "the password leaked: " << v[0];
  EXPECT_EQ(v[0].find("tok123"), std::string::npos) << "the token leaked: " << v[0];
  EXPECT_NE(v[0].find("\"password\":\"***\""), std::string::npos) << v[0];

  // A path outside the contract, a body that is not JSON, and a simulator that refuses what
  // the schema accepts are problems too.
  v = ContractViolations(
      {Exchange("POST", "/api/host-agents/a/reboot", "", "{}", 404, R"({"error":"not found"})"),
       Exchange("POST", "/api/host-agents/metrics", "metrics", "{", 422, R"({"error":"x"})"),
       Exchange("POST", "/api/host-agents/a/heartbeat", "heartbeat", hb, 422,
                R"({"error":"status: unexpected value"})")});
  ASSERT_EQ(v.size(), 3u);
  EXPECT_NE(v[0].find("not an endpoint of the contract"), std::string::npos) << v[0];
  EXPECT_NE(v[1].find("[metrics] request: not JSON"), std::string::npos) << v[1];
  EXPECT_NE(v[2].find("the simulator refused it"), std::string::npos) << v[2];

  // Bounded: the first problems, then a count.
  std::vector<sim::Simulator::Request> many(
      15, Exchange("POST", "/api/host-agents/a/heartbeat", "heartbeat", "{}", 200, ok));
  v = ContractViolations(many, 3);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[3], "... and 12 more");
}

}  // namespace
}  // namespace taolie::platform
