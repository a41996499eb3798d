#include "platform/messages.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace taolie::platform {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

enum class JT { kString, kInt, kFloat, kBool, kObject, kArray, kNull };

// Asserts that `j` has exactly the given JSON type at `key`.
void ExpectType(const Json& j, const std::string& key, JT t) {
  SCOPED_TRACE(key);
  ASSERT_TRUE(j.contains(key)) << "missing key " << key << " in " << j.dump();
  const Json& v = j.at(key);
  switch (t) {
    case JT::kString:
      EXPECT_TRUE(v.is_string()) << v;
      break;
    case JT::kInt:
      EXPECT_TRUE(v.is_number_integer()) << v;
      break;
    case JT::kFloat:
      EXPECT_TRUE(v.is_number_float()) << v;
      break;
    case JT::kBool:
      EXPECT_TRUE(v.is_boolean()) << v;
      break;
    case JT::kObject:
      EXPECT_TRUE(v.is_object()) << v;
      break;
    case JT::kArray:
      EXPECT_TRUE(v.is_array()) << v;
      break;
    case JT::kNull:
      EXPECT_TRUE(v.is_null()) << v;
      break;
  }
}

const SystemTime kNow = SystemTime(seconds(1700000000)) + std::chrono::microseconds(123456);
constexpr uint64_t kGiB = 1024ull * 1024 * 1024;

RegistrationInput SampleRegistration() {
  RegistrationInput in;
  in.agent_id = "agent-0123456789ab";
  in.agent_version = "0.1.0";
  in.docker_version = "20.10.24";
  in.public_ip = "203.0.113.7";
  in.location = "eu-west";
  in.port_range = "30000-30999";
  in.ssh_port = 2222;
  in.rental_port_1 = 8888;
  in.rental_port_2 = 9999;
  in.rental_port_3 = 0;
  in.host.hostname = "gpu-box";
  in.host.os = "Ubuntu 22.04.4 LTS";
  in.host.cpu_model = "AMD EPYC";
  in.host.cpu_sockets = 2;
  in.host.cpu_cores = 64;
  in.host.ram_total_bytes = 251 * kGiB + kGiB / 2;  // floor -> 251
  in.host.storage_total_bytes = 1000 * kGiB + 5;
  in.host.storage_available_bytes = 800 * kGiB - 1;  // floor -> 799
  in.host.storage_type = "SSD";
  in.host.uptime_seconds = 3 * 3600 + 1799;
  in.host.boot_time_unix = 1699990000;
  in.driver = {"550.54.15", "12.4", "12.550"};
  gpu::GpuInfo g0;
  g0.index = 0;
  g0.uuid = "GPU-aaaa";
  g0.name = "NVIDIA A100-SXM4-80GB";
  g0.pci_bus_id = "00000000:07:00.0";
  g0.memory_total_mb = 81920;
  g0.compute_capability = "8.0";
  g0.power_limit_watts = 400.0;
  g0.mig_mode = "disabled";
  gpu::GpuInfo g1 = g0;
  g1.index = 1;
  g1.uuid = "GPU-bbbb";
  g1.pci_bus_id = "00000000:0F:00.0";
  g1.power_limit_watts = std::nullopt;
  in.gpus = {g0, g1};
  in.upload_mbps = 940.5;
  in.download_mbps = 0;
  in.latency_ms = 12;
  in.now = kNow;
  return in;
}

TEST(Messages, RegisterBodyHasEveryCompatKeyWithItsType) {
  Json j = Json::parse(BuildRegisterBody(SampleRegistration()));
  for (const char* k : {"host_agent_id", "gpu_name", "driver_version", "cuda_version", "hostname",
                        "os", "storage_type", "last_reboot", "public_ip"}) {
    ExpectType(j, k, JT::kString);
  }
  for (const char* k : {"gpu_memory_mb", "gpu_count", "cpu_count", "cpu_cores", "total_ram_gb",
                        "total_vram_gb", "storage_total_gb", "storage_available_gb", "uptime_hours",
                        "ssh_port", "rental_port_1", "rental_port_2"}) {
    ExpectType(j, k, JT::kInt);
  }
  for (const char* k : {"upload_speed_mbps", "download_speed_mbps", "latency_ms"}) {
    ExpectType(j, k, JT::kFloat);
  }
  EXPECT_EQ(j["host_agent_id"], "agent-0123456789ab");
  EXPECT_EQ(j["gpu_name"], "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(j["gpu_memory_mb"], 81920);
  EXPECT_EQ(j["gpu_count"], 2);
  EXPECT_EQ(j["driver_version"], "550.54.15");
  EXPECT_EQ(j["cuda_version"], "12.4");
  EXPECT_EQ(j["cpu_count"], 2);
  EXPECT_EQ(j["cpu_cores"], 64);
  EXPECT_EQ(j["total_ram_gb"], 251);
  EXPECT_EQ(j["total_vram_gb"], 160);
  EXPECT_EQ(j["storage_total_gb"], 1000);
  EXPECT_EQ(j["storage_available_gb"], 799);
  EXPECT_EQ(j["storage_type"], "SSD");
  EXPECT_DOUBLE_EQ(j["upload_speed_mbps"].get<double>(), 940.5);
  EXPECT_DOUBLE_EQ(j["download_speed_mbps"].get<double>(), 0.0);
  EXPECT_EQ(j["uptime_hours"], 3);
  EXPECT_EQ(j["last_reboot"], FormatNaiveIso(SystemTime(seconds(1699990000))));
  EXPECT_EQ(j["ssh_port"], 2222);
  EXPECT_EQ(j["rental_port_1"], 8888);
  EXPECT_EQ(j["rental_port_2"], 9999);
  // ext
  EXPECT_EQ(j["resource_type"], "gpu");
  EXPECT_EQ(j["port_range"], "30000-30999");
  EXPECT_EQ(j["cpu_model"], "AMD EPYC");
  EXPECT_EQ(j["agent_version"], "0.1.0");
  EXPECT_EQ(j["docker_version"], "20.10.24");
  EXPECT_FALSE(j.contains("rental_port_3"));
  ASSERT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["gpus"][0]["uuid"], "GPU-aaaa");
  ExpectType(j["gpus"][0], "memory_mb", JT::kInt);
  ExpectType(j["gpus"][0], "index", JT::kInt);
  EXPECT_EQ(j["gpus"][0]["power_limit_watts"], 400.0);
  EXPECT_TRUE(j["gpus"][1]["power_limit_watts"].is_null());
  EXPECT_EQ(j["gpus"][1]["pci_bus_id"], "00000000:0F:00.0");
}

TEST(Messages, RegisterBodyWithoutGpusIsCpuOffer) {
  RegistrationInput in = SampleRegistration();
  in.gpus.clear();
  in.host.storage_type = "";
  in.host.boot_time_unix = 0;  // unknown: derived from now - uptime
  in.host.uptime_seconds = 7200;
  in.rental_port_3 = 7777;
  in.port_range = "";
  in.ts = TimestampFormat::kRfc3339;
  Json j = Json::parse(BuildRegisterBody(in));
  EXPECT_EQ(j["gpu_name"], "");
  ExpectType(j, "gpu_memory_mb", JT::kInt);
  EXPECT_EQ(j["gpu_memory_mb"], 0);
  EXPECT_EQ(j["gpu_count"], 0);
  EXPECT_EQ(j["total_vram_gb"], 0);
  EXPECT_EQ(j["resource_type"], "cpu");
  EXPECT_EQ(j["storage_type"], "Unknown");
  EXPECT_EQ(j["last_reboot"], FormatRfc3339(kNow - seconds(7200)));
  EXPECT_EQ(j["rental_port_3"], 7777);
  EXPECT_FALSE(j.contains("port_range"));
  EXPECT_TRUE(j["gpus"].is_array());
  EXPECT_TRUE(j["gpus"].empty());
}

TEST(Messages, RegisterGpuZeroIsLowestIndex) {
  RegistrationInput in = SampleRegistration();
  in.gpus[0].index = 3;
  in.gpus[0].name = "third";
  in.gpus[1].name = "first";
  in.gpus[1].memory_total_mb = 1000;
  Json j = Json::parse(BuildRegisterBody(in));
  EXPECT_EQ(j["gpu_name"], "first");
  EXPECT_EQ(j["gpu_memory_mb"], 1000);
  EXPECT_EQ(j["total_vram_gb"], (81920 + 1000) / 1024);
}

TEST(Messages, ParseRegisterResponse) {
  struct Case {
    long status;
    std::string body;
    bool ok;
    ErrorCode code;
    std::string want;  // gpu_uuid or part of the message
  };
  const std::vector<Case> cases = {
      {200, R"({"gpu_uuid":"g-1","message":"hi"})", true, ErrorCode::kInternal, "g-1"},
      {201, R"({"gpu_uuid":"g-2"})", true, ErrorCode::kInternal, "g-2"},
      {409, R"({"error":"exists","gpu_uuid":"g-3"})", true, ErrorCode::kInternal, "g-3"},
      {409, R"({"error":"exists"})", false, ErrorCode::kUnavailable, "gpu_uuid"},
      {200, "not json", false, ErrorCode::kUnavailable, "gpu_uuid"},
      {401, "{}", false, ErrorCode::kPermissionDenied, "platform rejected the API key (401)"},
      {422, R"({"error":"gpu_count: expected int"})", false, ErrorCode::kInvalidArgument,
       "gpu_count: expected int"},
      {500, "boom", false, ErrorCode::kUnavailable, "500"},
      {404, "", false, ErrorCode::kUnavailable, "404"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.status) + " " + c.body);
    auto r = ParseRegisterResponse(c.status, c.body);
    ASSERT_EQ(r.ok(), c.ok);
    if (c.ok) {
      EXPECT_EQ(r->gpu_uuid, c.want);
    } else {
      EXPECT_EQ(r.error().code, c.code);
      EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
    }
  }
  EXPECT_EQ(ParseRegisterResponse(200, R"({"gpu_uuid":"g","message":"hi"})")->message, "hi");
}

TEST(Messages, HeartbeatBody) {
  Json j = Json::parse(BuildHeartbeatBody("agent-0123456789ab", kNow, TimestampFormat::kNaive,
                                          "draining", "0.1.0", 2, 5, 86400));
  ExpectType(j, "agent_id", JT::kString);
  ExpectType(j, "timestamp", JT::kString);
  ExpectType(j, "status", JT::kString);
  ExpectType(j, "active_deployments", JT::kInt);
  ExpectType(j, "available_gpus", JT::kInt);
  ExpectType(j, "uptime_seconds", JT::kInt);
  EXPECT_EQ(j["timestamp"], "2023-11-14T22:13:20.123456");
  EXPECT_EQ(j["status"], "draining");
  EXPECT_EQ(j["active_deployments"], 2);
  EXPECT_EQ(j["available_gpus"], 5);
  EXPECT_EQ(j["uptime_seconds"], 86400);
  Json r =
      Json::parse(BuildHeartbeatBody("a", kNow, TimestampFormat::kRfc3339, "online", "v", 0, 0, 0));
  EXPECT_EQ(r["timestamp"], "2023-11-14T22:13:20.123456Z");
  EXPECT_FALSE(r.contains("isolation_ok"));
}

TEST(Messages, HeartbeatBodyCarriesIsolation) {
  Json ok = Json::parse(BuildHeartbeatBody("a", kNow, TimestampFormat::kNaive, "online", "v", 0, 0,
                                           0, {true, true, ""}));
  EXPECT_EQ(ok["isolation_ok"], true);
  EXPECT_FALSE(ok.contains("isolation_error"));
  Json bad = Json::parse(BuildHeartbeatBody("a", kNow, TimestampFormat::kNaive, "online", "v", 0, 0,
                                            0, {true, false, "firewall: you must be root"}));
  EXPECT_EQ(bad["isolation_ok"], false);
  EXPECT_EQ(bad["isolation_error"], "firewall: you must be root");
}

TEST(Messages, ParseCommandsRejectsBadShapes) {
  for (const std::string body :
       {"[]", "{}", "not json", R"({"commands": {}})", "null", "", R"({"commands": "x"})"}) {
    SCOPED_TRACE(body);
    auto r = ParseCommands(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

// One element per row, always followed by a valid command: the bad element never holds it back.
TEST(Messages, ParseCommandsTableOfMalformedElements) {
  const std::string k3000(3000, 'a');
  const std::string k128(128, 'b');
  struct Row {
    std::string element;  // JSON text of commands[0]
    enum { kKept, kRejected, kSkipped } outcome;
    std::string id;       // kept/rejected: the command_id handed on
    std::string type;     // kept/rejected: the command_type handed on
    std::string payload;  // kept/rejected: payload_json
    std::string message;  // a part of the logged message ("" = none logged)
  };
  const std::vector<Row> rows = {
      {R"({"command_id": "c1", "command_type": "DEPLOY", "payload": {"image": "b", "n": [1]}})",
       Row::kKept, "c1", "deploy", R"({"image":"b","n":[1]})", ""},
      {R"({"command_id": "c1", "command_type": "reboot", "payload": null})", Row::kKept, "c1",
       "reboot", "{}", ""},
      {R"({"command_id": "c1", "command_type": "Terminate"})", Row::kKept, "c1", "terminate", "{}",
       ""},
      {R"({"command_id": ")" + k128 + R"(", "command_type": "deploy"})", Row::kKept, k128, "deploy",
       "{}", ""},
      {R"({"command_id": "a/b c", "command_type": "deploy"})", Row::kKept, "a/b c", "deploy", "{}",
       ""},
      // Has an id, so recorded and acknowledged "rejected" with the reason.
      {R"({"command_id": "c1", "command_type": "terminate", "payload": [1]})", Row::kRejected, "c1",
       "terminate", "[1]", "payload is array"},
      {R"({"command_id": "c1", "command_type": 3})", Row::kRejected, "c1", "", "{}",
       "command_type is number, not a string"},
      {R"({"command_id": "c1", "payload": {}})", Row::kRejected, "c1", "", "{}",
       "command_type missing"},
      {R"({"command_id": "c1", "command_type": "dep\u0000loy"})", Row::kRejected, "c1", "", "{}",
       R"(unknown command_type 'dep\x00loy')"},
      // No id that can be acknowledged: skipped.
      {"7", Row::kSkipped, "", "", "", "commands[0]: skipped: not an object but number"},
      {R"({"command_type": "deploy"})", Row::kSkipped, "", "", "", "command_id missing"},
      {R"({"command_id": 5, "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "(command_id 5): skipped: command_id is number, not a string"},
      {R"({"command_id": null, "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "command_id is null"},
      {R"({"command_id": "", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "command_id is empty"},
      {R"({"command_id": ")" + k128 + R"(b", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "command_id is 129 bytes, over 128"},
      {R"({"command_id": ")" + k3000 + R"(", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "(command_id \"" + std::string(64, 'a') + "\u2026\"): skipped: command_id is 3000 bytes"},
      {R"({"command_id": "a\u0000b", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       R"((command_id "a\x00b"): skipped: command_id contains NUL)"},
      {R"({"command_id": "a\nb\u001b[31m", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       R"((command_id "a\x0Ab\x1B[31m"): skipped: command_id contains a control character)"},
      {R"({"command_id": "a\u007f", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "control character"},
      {R"({"command_id": "a\u0085", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "control character"},
      {R"({"command_id": ".", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "cannot be a path segment"},
      {R"({"command_id": "..", "command_type": "deploy"})", Row::kSkipped, "", "", "",
       "cannot be a path segment"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.element.substr(0, 200));
    auto r = ParseCommands(R"({"commands": [)" + row.element +
                           R"(, {"command_id": "ok-1", "command_type": "deploy"}]})");
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    const size_t kept = row.outcome == Row::kSkipped ? 0 : 1;
    ASSERT_EQ(r->commands.size(), kept + 1);
    EXPECT_EQ(r->commands.back().command_id, "ok-1");
    EXPECT_EQ(r->commands.back().command_type, "deploy");
    EXPECT_TRUE(r->commands.back().rejection.empty());
    if (kept == 1) {
      const PlatformCommand& c = r->commands.front();
      EXPECT_EQ(c.command_id, row.id);
      EXPECT_EQ(c.command_type, row.type);
      EXPECT_EQ(c.payload_json, row.payload);
      // The workflow rejects a bad payload itself; only a bad type is rejected here.
      EXPECT_EQ(c.rejection.empty(), row.outcome == Row::kKept || row.payload == "[1]");
    }
    if (row.message.empty()) {
      EXPECT_TRUE(r->errors.empty()) << r->errors.front().message;
      continue;
    }
    ASSERT_EQ(r->errors.size(), 1u);
    const CommandProblem& p = r->errors.front();
    EXPECT_NE(p.message.find(row.message), std::string::npos) << p.message;
    EXPECT_EQ(p.skipped, row.outcome == Row::kSkipped);
    EXPECT_LT(p.message.size(), 400u) << "not truncated";
    for (unsigned char ch : p.message) EXPECT_FALSE(ch < 0x20 || ch == 0x7F) << p.message;
    // The same element in a later poll has the same key (logged once); another has another.
    auto again = ParseCommands(R"({"commands": [{"command_id": "x"}, )" + row.element + "]}");
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->errors.size(), 2u);
    EXPECT_EQ(again->errors[1].key, p.key);
    EXPECT_NE(again->errors[0].key, p.key);
  }

  auto empty = ParseCommands(R"({"commands": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->commands.empty());
  EXPECT_TRUE(empty->errors.empty());
}

std::string DeepValue(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// issue 17 item 1: a value nested 100 000 deep (200 KB) crashed the agent in the recursive
// dump() that hashed each element; now it is rejected on its own, the others go on.
TEST(Messages, ParseCommandsRejectsTooDeepElementAndKeepsTheOthers) {
  const std::string deep =
      R"({"command_id": "deep-1", "command_type": "deploy", "payload": {"x": )" +
      DeepValue(100000) + "}}";
  const std::string valid =
      R"({"command_id": "ok-1", "command_type": "deploy", "payload": {"image": "busybox"}})";
  const std::string body = R"({"commands": [)" + deep + ", " + valid + "]}";
  auto r = ParseCommands(body);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->commands.size(), 2u);
  const PlatformCommand& rejected = r->commands[0];
  EXPECT_EQ(rejected.command_id, "deep-1");
  EXPECT_EQ(rejected.payload_json, "{}");  // never stored
  EXPECT_EQ(rejected.rejection, "payload nested 100002 levels deep, over the limit of 64");
  const PlatformCommand& ok = r->commands[1];
  EXPECT_EQ(ok.command_id, "ok-1");
  EXPECT_EQ(ok.command_type, "deploy");
  EXPECT_EQ(ok.payload_json, R"({"image":"busybox"})");
  EXPECT_TRUE(ok.rejection.empty());
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_FALSE(r->errors[0].skipped);
  EXPECT_EQ(r->errors[0].message,
            R"(commands[0] (command_id "deep-1"): nested 100002 levels deep, over the limit of )"
            R"(64 (rejected))");

  // The dedupe key is the hash of the element's bytes: stable across re-delivery (also at
  // another position), distinct from another deep element.
  auto again = ParseCommands(R"({"commands": [)" + valid + ",\n  " + deep + "]}");
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->errors.size(), 1u);
  EXPECT_EQ(again->errors[0].key, r->errors[0].key);
  EXPECT_EQ(again->commands[1].command_id, "deep-1");
  auto other =
      ParseCommands(R"({"commands": [)" + deep.substr(0, deep.size() - 2) + R"(,"y":1}}]})");
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->errors.size(), 1u);
  EXPECT_NE(other->errors[0].key, r->errors[0].key);
}

TEST(Messages, ParseCommandsTooDeepElementsTable) {
  const std::string d = DeepValue(100000);
  struct Row {
    std::string element;
    bool rejected;        // true: handed on with its id; false: skipped
    std::string message;  // a part of the logged message
  };
  const std::vector<Row> rows = {
      // Exactly at the limit: parsed as usual (element 1 + payload 1 + x 62 = 64).
      {R"({"command_id": "c", "command_type": "deploy", "payload": {"x": )" + DeepValue(62) + "}}",
       false, ""},
      {R"({"command_id": "c", "command_type": "deploy", "payload": {"x": )" + DeepValue(63) + "}}",
       true, "nested 65 levels deep, over the limit of 64 (rejected)"},
      // The id is read at the top level whatever comes before or after it.
      {R"({"payload": )" + d + R"(, "command_id": "late-id"})", true, "(command_id \"late-id\")"},
      {R"({"command_id": "first", "command_id": "last", "p": )" + d + "}", true,
       "(command_id \"last\")"},
      {R"({"command\u005fid": "esc", "p": )" + d + "}", true, "(command_id \"esc\")"},
      // No usable id: skipped (logged once per key).
      {d, false,
       "commands[0]: skipped: nested 100000 levels deep, over the limit of 64; not an "
       "object but array"},
      {R"({"p": )" + d + "}", false, "; command_id missing"},
      {R"({"command_id": 7, "p": )" + d + "}", false,
       "(command_id 7): skipped: nested 100001 levels deep, over the limit of 64; command_id is "
       "number, not a string"},
      {R"({"command_id": )" + d + "}", false, "command_id is array, not a string"},
      {R"({"command_id": "", "p": )" + d + "}", false, "command_id is empty"},
      {R"({"command_id": "a\nb", "p": )" + d + "}", false,
       R"((command_id "a\x0Ab"): skipped: nested 100001 levels deep, over the limit of 64; )"
       R"(command_id contains a control character)"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.element.substr(0, 120));
    auto r = ParseCommands(R"({"commands": [)" + row.element +
                           R"(, {"command_id": "ok-1", "command_type": "terminate"}]})");
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_FALSE(r->commands.empty());
    EXPECT_EQ(r->commands.back().command_id, "ok-1");
    EXPECT_TRUE(r->commands.back().rejection.empty());
    if (row.message.empty()) {  // within the limit
      ASSERT_EQ(r->commands.size(), 2u);
      EXPECT_TRUE(r->errors.empty());
      EXPECT_TRUE(r->commands[0].rejection.empty());
      EXPECT_EQ(r->commands[0].payload_json.size(), 5u + 62 * 2 + 1);
      continue;
    }
    ASSERT_EQ(r->errors.size(), 1u);
    EXPECT_NE(r->errors[0].message.find(row.message), std::string::npos) << r->errors[0].message;
    EXPECT_EQ(r->errors[0].skipped, !row.rejected);
    EXPECT_LT(r->errors[0].message.size(), 400u);
    ASSERT_EQ(r->commands.size(), row.rejected ? 2u : 1u);
    if (row.rejected) {
      EXPECT_NE(r->commands[0].rejection.find("over the limit of 64"), std::string::npos);
      EXPECT_EQ(r->commands[0].payload_json, "{}");
    }
  }
  // A body whose `commands` is not an array, or not JSON at all, stays a bad body, however deep.
  EXPECT_FALSE(ParseCommands(R"({"commands": {"a": )" + d + "}}").ok());
  EXPECT_FALSE(ParseCommands(R"({"commands": [)" + d + "}").ok());
  EXPECT_FALSE(ParseCommands(d).ok());
}

TEST(Messages, CommandIdProblem) {
  EXPECT_EQ(CommandIdProblem("cmd-1"), "");
  EXPECT_EQ(CommandIdProblem("caf\u00e9 \u2603"), "");  // UTF-8 that is not a control char
  EXPECT_EQ(CommandIdProblem(std::string(kMaxCommandIdLength, 'x')), "");
  EXPECT_NE(CommandIdProblem(std::string(kMaxCommandIdLength + 1, 'x')), "");
  EXPECT_NE(CommandIdProblem(std::string("a\0b", 3)), "");
  EXPECT_NE(CommandIdProblem("\t"), "");
  EXPECT_NE(CommandIdProblem(".."), "");
  EXPECT_EQ(CommandIdProblem("..."), "");
  EXPECT_TRUE(IsAcknowledgeableCommandId("a.b"));
  EXPECT_FALSE(IsAcknowledgeableCommandId(""));
}

TEST(Messages, EscapeForLog) {
  struct Row {
    std::string in;
    size_t max;
    std::string out;
  };
  const std::vector<Row> rows = {
      {"plain", 64, "plain"},
      {std::string("a\0b", 3), 64, R"(a\x00b)"},
      {"\x1b[2J\r\n", 64, R"(\x1B[2J\x0D\x0A)"},
      {"back\\slash", 64, R"(back\\slash)"},
      {"a\x7f", 64, R"(a\x7F)"},
      {"a\u0085", 64, R"(a\xC2\x85)"},
      {"abcdef", 3, "abc\u2026"},
      {"abc", 3, "abc"},
      {"\u00e9\u00e9\u00e9\u00e9", 2, "\u00e9\u00e9\u2026"},  // cut between characters, not bytes
      {std::string(3000, 'z'), 64, std::string(64, 'z') + "\u2026"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.in.substr(0, 80));
    EXPECT_EQ(EscapeForLog(row.in, row.max), row.out);
  }
}

TEST(Messages, AckBody) {
  Json j = Json::parse(BuildAckBody(kNow, TimestampFormat::kNaive, "failed", "pull failed", "d1"));
  ExpectType(j, "status", JT::kString);
  ExpectType(j, "timestamp", JT::kString);
  EXPECT_EQ(j["status"], "processed");
  EXPECT_EQ(j["result"], "failed");
  EXPECT_EQ(j["error"], "pull failed");
  EXPECT_EQ(j["deployment_id"], "d1");
  Json ok = Json::parse(BuildAckBody(kNow, TimestampFormat::kNaive, "succeeded", "", ""));
  EXPECT_FALSE(ok.contains("error"));
  EXPECT_FALSE(ok.contains("deployment_id"));
  EXPECT_EQ(ok["result"], "succeeded");
}

TEST(Messages, MetricsBodyAggregatesGpus) {
  domain::MetricSample s;
  s.taken_at = kNow - seconds(600);
  s.host = {12.5, 30.25, 100.0, 1.5, 10.0, 20.0, 49};
  domain::GpuMetricRow a;
  a.gpu_uuid = "GPU-a";
  a.gpu_index = 0;
  a.utilization = 50;
  a.memory_used_mb = 1000;
  a.memory_total_mb = 81920;
  a.temperature_c = 60;
  a.power_draw_watts = 200;
  a.power_limit_watts = 400;
  a.fan_speed_percent = 40;
  a.sm_clock_mhz = 1400;
  a.mem_clock_mhz = 1593;
  a.deployment_id = "d1";
  domain::GpuMetricRow b;  // fanless, partially unreadable
  b.gpu_uuid = "GPU-b";
  b.gpu_index = 1;
  b.utilization = 100;
  b.memory_used_mb = 3000;
  b.temperature_c = 71.5;
  b.power_draw_watts = 250.5;
  s.gpus = {a, b};
  Json j =
      Json::parse(BuildMetricsBody("agent-0123456789ab", "plat-1", s, TimestampFormat::kNaive));
  for (const char* k : {"agent_id", "gpu_uuid", "timestamp"}) ExpectType(j, k, JT::kString);
  for (const char* k : {"vram_used_mb", "uptime_hours"}) ExpectType(j, k, JT::kInt);
  for (const char* k : {"gpu_utilization", "temperature_celsius", "power_draw_watts",
                        "fan_speed_percent", "cpu_utilization", "ram_used_gb", "storage_used_gb",
                        "network_utilization", "current_upload_mbps", "current_download_mbps"}) {
    ExpectType(j, k, JT::kFloat);
  }
  EXPECT_EQ(j["gpu_uuid"], "plat-1");
  EXPECT_DOUBLE_EQ(j["gpu_utilization"].get<double>(), 75.0);
  EXPECT_EQ(j["vram_used_mb"], 4000);
  EXPECT_DOUBLE_EQ(j["temperature_celsius"].get<double>(), 71.5);
  EXPECT_DOUBLE_EQ(j["power_draw_watts"].get<double>(), 450.5);
  EXPECT_DOUBLE_EQ(j["fan_speed_percent"].get<double>(), 20.0);  // missing fan counts 0
  EXPECT_DOUBLE_EQ(j["cpu_utilization"].get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(j["ram_used_gb"].get<double>(), 30.25);
  EXPECT_DOUBLE_EQ(j["current_download_mbps"].get<double>(), 20.0);
  EXPECT_EQ(j["uptime_hours"], 49);
  EXPECT_EQ(j["timestamp"], FormatNaiveIso(s.taken_at));  // the sample's own time
  ASSERT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["gpus"][0]["fan_speed_percent"], 40.0);
  EXPECT_EQ(j["gpus"][0]["deployment_id"], "d1");
  ExpectType(j["gpus"][0], "memory_used_mb", JT::kInt);
  ExpectType(j["gpus"][0], "sm_clock_mhz", JT::kInt);
  ExpectType(j["gpus"][1], "fan_speed_percent", JT::kNull);
  ExpectType(j["gpus"][1], "memory_total_mb", JT::kNull);
  ExpectType(j["gpus"][1], "deployment_id", JT::kNull);
  EXPECT_EQ(j["gpus"][1]["index"], 1);
}

TEST(Messages, MetricsBodyWithoutGpus) {
  domain::MetricSample s;
  s.taken_at = kNow;
  Json j = Json::parse(BuildMetricsBody("a", "", s, TimestampFormat::kRfc3339));
  ExpectType(j, "gpu_utilization", JT::kFloat);
  EXPECT_DOUBLE_EQ(j["gpu_utilization"].get<double>(), 0.0);
  ExpectType(j, "vram_used_mb", JT::kInt);
  EXPECT_EQ(j["timestamp"], FormatRfc3339(kNow));
  EXPECT_TRUE(j["gpus"].empty());
}

TEST(Messages, HealthBody) {
  domain::HealthReport h;
  h.checked_at = kNow - seconds(5);
  h.is_healthy = false;
  h.status = "unhealthy";
  h.temperature_ok = false;
  h.power_ok = true;
  h.network_ok = true;
  h.storage_ok = false;
  h.gpu_performance_score = 87.349;
  h.system_stability_score = 100;
  h.details_json =
      R"([{"index":0,"uuid":"GPU-a","health":"warning","checks":{},"recent_xids":[]}])";
  Json j = Json::parse(BuildHealthBody("a", "plat-1", h, kNow, TimestampFormat::kNaive));
  for (const char* k : {"agent_id", "gpu_uuid", "status", "last_health_check", "timestamp"}) {
    ExpectType(j, k, JT::kString);
  }
  for (const char* k : {"is_healthy", "temperature_ok", "power_ok", "network_ok", "storage_ok"}) {
    ExpectType(j, k, JT::kBool);
  }
  ExpectType(j, "gpu_performance_score", JT::kFloat);
  ExpectType(j, "system_stability_score", JT::kFloat);
  EXPECT_DOUBLE_EQ(j["gpu_performance_score"].get<double>(), 87.3);
  EXPECT_DOUBLE_EQ(j["system_stability_score"].get<double>(), 100.0);
  EXPECT_EQ(j["is_healthy"], false);
  EXPECT_EQ(j["temperature_ok"], false);
  EXPECT_EQ(j["storage_ok"], false);
  EXPECT_EQ(j["last_health_check"], FormatNaiveIso(h.checked_at));
  EXPECT_EQ(j["timestamp"], FormatNaiveIso(kNow));
  ASSERT_TRUE(j["gpus"].is_array());
  EXPECT_EQ(j["gpus"][0]["health"], "warning");

  h.details_json = "{not json";
  EXPECT_FALSE(
      Json::parse(BuildHealthBody("a", "p", h, kNow, TimestampFormat::kNaive)).contains("gpus"));
  h.details_json = R"({"an":"object"})";
  EXPECT_FALSE(
      Json::parse(BuildHealthBody("a", "p", h, kNow, TimestampFormat::kNaive)).contains("gpus"));
}

// Issue 17 item 7: every ext `gpus` entry has `quarantined` (bool) and `quarantine_reason`
// (string or null), as platform-api.md section 6 promises; a report stored before the agent
// wrote them shows its quarantine as its "quarantine" check did.
TEST(Messages, HealthBodyGpusCarryTheirQuarantine) {
  domain::HealthReport h;
  h.checked_at = kNow;
  h.status = "available";
  h.details_json =
      R"([{"index":0,"uuid":"GPU-a","health":"unhealthy","checks":{},"recent_xids":[],)"
      R"("quarantined":true,"quarantine_reason":"ecc: 2 uncorrected ECC errors"},)"
      R"({"index":1,"uuid":"GPU-b","health":"healthy","checks":{},"recent_xids":[],)"
      R"("quarantined":false,"quarantine_reason":null},)"
      R"({"index":2,"uuid":"GPU-c","health":"healthy","recent_xids":[],)"
      R"("checks":{"quarantine":{"ok":false,"message":"quarantined (xid): waits"}}},)"
      R"({"index":3,"uuid":"GPU-d","health":"healthy","checks":{},"recent_xids":[]}])";
  Json j = Json::parse(BuildHealthBody("a", "p", h, kNow, TimestampFormat::kNaive));
  ASSERT_EQ(j["gpus"].size(), 4u);
  for (const auto& g : j["gpus"]) {
    ExpectType(g, "quarantined", JT::kBool);
    ASSERT_TRUE(g.contains("quarantine_reason")) << g.dump();
    EXPECT_TRUE(g["quarantine_reason"].is_string() || g["quarantine_reason"].is_null());
  }
  EXPECT_EQ(j["gpus"][0]["quarantined"], true);
  EXPECT_EQ(j["gpus"][0]["quarantine_reason"], "ecc: 2 uncorrected ECC errors");
  EXPECT_EQ(j["gpus"][1]["quarantined"], false);
  EXPECT_TRUE(j["gpus"][1]["quarantine_reason"].is_null());
  EXPECT_EQ(j["gpus"][2]["quarantined"], true);  // stored before: from its quarantine check
  EXPECT_EQ(j["gpus"][3]["quarantined"], false);
  EXPECT_TRUE(j["gpus"][3]["quarantine_reason"].is_null());
}

AccessInfo SampleAccess() {
  AccessInfo a;
  a.public_ip = "203.0.113.7";
  a.ssh_username = "gpu-user";
  a.ssh_password = "s3cretPassw0rd!!";
  a.ssh_port = 2222;
  a.port_mappings = {{22, 2222}, {8888, 8888}, {6006, 30001}};
  a.jupyter_host_port = 8888;
  a.jupyter_token = "tok123";
  a.custom_host_port = 30001;
  return a;
}

TEST(Messages, SuccessBodyShape) {
  const SystemTime started = kNow, expires = kNow + std::chrono::minutes(60);
  Json j = Json::parse(BuildSuccessBody("d1", "c0ffee", SampleAccess(), {"GPU-a", "GPU-b"}, started,
                                        expires, TimestampFormat::kNaive));
  for (const char* k : {"deployment_id", "status", "container_id"}) ExpectType(j, k, JT::kString);
  ExpectType(j, "access_info", JT::kObject);
  EXPECT_EQ(j["status"], "running");
  EXPECT_EQ(j["container_id"], "c0ffee");
  const Json& a = j["access_info"];
  ExpectType(a, "public_ip", JT::kString);
  ExpectType(a, "ssh", JT::kObject);
  ExpectType(a, "port_mappings", JT::kObject);
  ExpectType(a, "rental_ports", JT::kObject);
  const Json& ssh = a["ssh"];
  for (const char* k : {"host", "username", "password", "command"}) ExpectType(ssh, k, JT::kString);
  ExpectType(ssh, "port", JT::kInt);
  EXPECT_EQ(ssh["host"], "203.0.113.7");
  EXPECT_EQ(ssh["port"], 2222);
  EXPECT_EQ(ssh["username"], "gpu-user");
  EXPECT_EQ(ssh["password"], "s3cretPassw0rd!!");
  EXPECT_EQ(ssh["command"], "ssh gpu-user@203.0.113.7 -p 2222");
  EXPECT_EQ(a["port_mappings"], Json::parse(R"({"22":2222,"6006":30001,"8888":8888})"));
  const Json& p1 = a["rental_ports"]["port_1"];
  ExpectType(p1, "port", JT::kInt);
  for (const char* k : {"url", "description", "token", "full_url"}) ExpectType(p1, k, JT::kString);
  EXPECT_EQ(p1["port"], 8888);
  EXPECT_EQ(p1["url"], "http://203.0.113.7:8888");
  EXPECT_EQ(p1["description"], "Jupyter Lab");
  EXPECT_EQ(p1["token"], "tok123");
  EXPECT_EQ(p1["full_url"], "http://203.0.113.7:8888/?token=tok123");
  const Json& p2 = a["rental_ports"]["port_2"];
  ExpectType(p2, "port", JT::kInt);
  EXPECT_EQ(p2["port"], 30001);
  EXPECT_EQ(p2["url"], "http://203.0.113.7:30001");
  EXPECT_EQ(p2["description"], "Custom application port");
  EXPECT_FALSE(p2.contains("token"));
  EXPECT_EQ(j["gpus"], Json::parse(R"(["GPU-a","GPU-b"])"));
  EXPECT_EQ(j["started_at"], FormatNaiveIso(started));
  EXPECT_EQ(j["expires_at"], FormatNaiveIso(expires));
}

TEST(Messages, SuccessBodyOmitsUnboundPorts) {
  AccessInfo a = SampleAccess();
  a.ssh_port = 0;
  a.jupyter_host_port = 0;
  a.custom_host_port = 0;
  a.port_mappings.clear();
  Json j = Json::parse(BuildSuccessBody("d1", "c", a, {}, kNow, kNow, TimestampFormat::kNaive));
  EXPECT_FALSE(j["access_info"].contains("ssh"));
  EXPECT_TRUE(j["access_info"]["rental_ports"].is_object());
  EXPECT_TRUE(j["access_info"]["rental_ports"].empty());
  EXPECT_TRUE(j["access_info"]["port_mappings"].is_object());
  EXPECT_TRUE(j["gpus"].is_array());
}

TEST(Messages, ScrubSecretsKeepsStructure) {
  const std::string body =
      BuildSuccessBody("d1", "c", SampleAccess(), {"GPU-a"}, kNow, kNow, TimestampFormat::kNaive);
  const std::string scrubbed = ScrubSecretsFromBody(body);
  EXPECT_EQ(scrubbed.find("s3cretPassw0rd"), std::string::npos);
  Json before = Json::parse(body), after = Json::parse(scrubbed);
  EXPECT_EQ(scrubbed.find("tok123"), std::string::npos);
  EXPECT_EQ(after["access_info"]["ssh"]["password"], "");
  before["access_info"]["ssh"]["password"] = "";
  before["access_info"]["rental_ports"]["port_1"]["token"] = "";
  before["access_info"]["rental_ports"]["port_1"]["full_url"] =
      before["access_info"]["rental_ports"]["port_1"]["url"];
  EXPECT_EQ(before, after);
  // Key order is kept (only the value changes).
  EXPECT_EQ(scrubbed.find("\"deployment_id\""), 1u);
  EXPECT_EQ(ScrubSecretsFromBody("not json"), "not json");
  EXPECT_EQ(ScrubSecretsFromBody(R"({"a":1})"), R"({"a":1})");
}

TEST(Messages, FailedExpiringTerminatedBodies) {
  Json f =
      Json::parse(BuildFailedBody("d1", "pull", "manifest unknown", kNow, TimestampFormat::kNaive));
  EXPECT_EQ(f, Json::parse(R"({"deployment_id":"d1","status":"failed","stage":"pull",
      "error":"manifest unknown","timestamp":"2023-11-14T22:13:20.123456"})"));
  Json e = Json::parse(BuildExpiringBody("d1", kNow, 30, TimestampFormat::kRfc3339));
  ExpectType(e, "seconds_left", JT::kInt);
  EXPECT_EQ(e["seconds_left"], 30);
  EXPECT_EQ(e["expires_at"], "2023-11-14T22:13:20.123456Z");

  domain::Usage u{60,           20.5, 39.5,         std::nullopt, std::nullopt,
                  std::nullopt, 0,    std::nullopt, std::nullopt};
  Json t = Json::parse(BuildTerminatedBody("d1", "terminated", "user_requested", kNow,
                                           kNow + seconds(1230), u, TimestampFormat::kNaive));
  for (const char* k : {"reserved_minutes", "used_minutes", "unused_minutes"}) {
    ExpectType(t, k, JT::kFloat);
  }
  EXPECT_EQ(t["status"], "terminated");
  EXPECT_EQ(t["reason"], "user_requested");
  EXPECT_EQ(t["started_at"], FormatNaiveIso(kNow));
  EXPECT_EQ(t["ended_at"], FormatNaiveIso(kNow + seconds(1230)));
  EXPECT_DOUBLE_EQ(t["used_minutes"].get<double>(), 20.5);
  EXPECT_FALSE(t.contains("price_per_hour"));
  EXPECT_FALSE(t.contains("refund_amount"));

  u.price_per_hour = 2.0;
  u.usage_amount = 0.68;
  u.refund_amount = 1.32;
  Json p = Json::parse(BuildTerminatedBody("d1", "failed", "container died", std::nullopt, kNow, u,
                                           TimestampFormat::kNaive));
  ExpectType(p, "started_at", JT::kNull);
  EXPECT_DOUBLE_EQ(p["price_per_hour"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(p["usage_amount"].get<double>(), 0.68);
  EXPECT_DOUBLE_EQ(p["refund_amount"].get<double>(), 1.32);
}

TEST(Messages, TerminatedBodyCarriesMetering) {
  domain::Usage u;
  u.used_minutes = 10;
  Json none = Json::parse(
      BuildTerminatedBody("d1", "expired", "", kNow, kNow, u, TimestampFormat::kRfc3339));
  ExpectType(none, "gpu_seconds", JT::kFloat);
  ExpectType(none, "energy_wh", JT::kNull);
  ExpectType(none, "mean_gpu_utilization", JT::kNull);
  u.gpu_seconds = 1200;
  u.energy_wh = 41.5;
  u.mean_gpu_utilization = 87.5;
  Json j = Json::parse(
      BuildTerminatedBody("d1", "expired", "", kNow, kNow, u, TimestampFormat::kRfc3339));
  EXPECT_DOUBLE_EQ(j["gpu_seconds"].get<double>(), 1200);
  EXPECT_DOUBLE_EQ(j["energy_wh"].get<double>(), 41.5);
  EXPECT_DOUBLE_EQ(j["mean_gpu_utilization"].get<double>(), 87.5);
}

TEST(Messages, GpuFailedBody) {
  Json j = Json::parse(BuildGpuFailedBody("d1", "GPU-a", "unhealthy", "XID 79 (fallen off the bus)",
                                          79, kNow, TimestampFormat::kRfc3339));
  EXPECT_EQ(j, Json::parse(R"j({"deployment_id":"d1","gpu_uuid":"GPU-a","health":"unhealthy",
      "reason":"XID 79 (fallen off the bus)","xid":79,
      "timestamp":"2023-11-14T22:13:20.123456Z"})j"));
  Json none = Json::parse(BuildGpuFailedBody("d1", "GPU-a", "unhealthy", "ECC", std::nullopt, kNow,
                                             TimestampFormat::kRfc3339));
  ExpectType(none, "xid", JT::kNull);
  EXPECT_EQ(DeploymentEventPath("d 1", "gpu_failed"), "/api/deployments/d%201/gpu_failed");
}

TEST(Messages, MetricsBodyCarriesEveryGpuSignalAsExt) {
  domain::MetricSample s;
  s.taken_at = kNow;
  domain::GpuMetricRow g;
  g.gpu_uuid = "GPU-a";
  g.energy_joules = 123456.5;
  g.pcie_gen = 4;
  g.pcie_width = 16;
  g.remapped_rows_pending = true;
  g.ecc_aggregate_uncorrected = 2;
  g.process_count = 3;
  domain::GpuMetricRow bare;
  bare.gpu_uuid = "GPU-b";
  bare.gpu_index = 1;
  s.gpus = {g, bare};
  Json j = Json::parse(BuildMetricsBody("a", "", s, TimestampFormat::kRfc3339));
  EXPECT_DOUBLE_EQ(j["gpus"][0]["energy_joules"].get<double>(), 123456.5);
  EXPECT_EQ(j["gpus"][0]["pcie_gen"], 4);
  EXPECT_EQ(j["gpus"][0]["pcie_width"], 16);
  EXPECT_EQ(j["gpus"][0]["remapped_rows_pending"], true);
  EXPECT_EQ(j["gpus"][0]["ecc_aggregate_uncorrected"], 2);
  EXPECT_EQ(j["gpus"][0]["process_count"], 3);
  for (const char* k : {"energy_joules", "pcie_replay_count", "retired_pages_pending",
                        "remapped_rows_failure", "memory_free_mb", "thermal_violation_ns"}) {
    ExpectType(j["gpus"][1], k, JT::kNull);
  }
  EXPECT_EQ(j["gpus"][1]["process_count"], 0);
}

TEST(Messages, PathsEscapeIds) {
  EXPECT_EQ(RegisterPath(), "/api/host-agents/register");
  EXPECT_EQ(HeartbeatPath("agent-0123456789ab"), "/api/host-agents/agent-0123456789ab/heartbeat");
  EXPECT_EQ(CommandsPath("a"), "/api/host-agents/a/commands");
  EXPECT_EQ(AckPath("a", "c/1 x"), "/api/host-agents/a/commands/c%2F1%20x/ack");
  EXPECT_EQ(MetricsPath(), "/api/host-agents/metrics");
  EXPECT_EQ(HealthPath(), "/api/host-agents/health");
  EXPECT_EQ(DeploymentEventPath("d?1", "success"), "/api/deployments/d%3F1/success");
  EXPECT_EQ(EscapePathSegment("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(EscapePathSegment("\xC3\xA9"), "%C3%A9");
}

}  // namespace
}  // namespace taolie::platform
