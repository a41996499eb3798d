#include "sim/simulator.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/net_address.h"
#include "common/real_time.h"
#include "common/secrets.h"
#include "common/time_format.h"

namespace taolie::sim {
namespace {

using Json = nlohmann::ordered_json;

enum class T { kString, kInt, kNumber, kBool, kObject, kArray, kTimestamp };

struct Field {
  const char* name;
  T type;
};

const char* TypeName(T t) {
  switch (t) {
    case T::kString:
      return "string";
    case T::kInt:
      return "int";
    case T::kNumber:
      return "number";
    case T::kBool:
      return "bool";
    case T::kObject:
      return "object";
    case T::kArray:
      return "array";
    case T::kTimestamp:
      return "timestamp string";
  }
  return "?";
}

std::string JsonTypeName(const Json& v) {
  if (v.is_number_integer()) return "int";
  if (v.is_number_float()) return "float";
  return v.type_name();
}

bool HasType(const Json& v, T t) {
  switch (t) {
    case T::kString:
      return v.is_string();
    case T::kInt:
      return v.is_number_integer();
    case T::kNumber:
      return v.is_number();
    case T::kBool:
      return v.is_boolean();
    case T::kObject:
      return v.is_object();
    case T::kArray:
      return v.is_array();
    case T::kTimestamp:
      return v.is_string() && ParseTimestamp(v.get<std::string>()).has_value();
  }
  return false;
}

// "" when every required field is present with its type, else "<prefix><field>: <reason>".
std::string CheckRequired(const Json& obj, std::initializer_list<Field> fields,
                          const std::string& prefix = "") {
  if (!obj.is_object())
    return prefix.empty() ? "body: expected a JSON object" : prefix + ": expected an object";
  for (const auto& f : fields) {
    auto it = obj.find(f.name);
    if (it == obj.end()) return prefix + f.name + ": field required";
    if (!HasType(*it, f.type)) {
      return prefix + f.name + ": expected " + TypeName(f.type) + ", got " + JsonTypeName(*it) +
             (f.type == T::kTimestamp && it->is_string() ? " '" + it->get<std::string>() + "'"
                                                         : "");
    }
  }
  return "";
}

// Optional (ext) fields: checked only when present and not null.
std::string CheckOptional(const Json& obj, std::initializer_list<Field> fields,
                          const std::string& prefix = "") {
  for (const auto& f : fields) {
    auto it = obj.find(f.name);
    if (it == obj.end() || it->is_null()) continue;
    if (!HasType(*it, f.type)) {
      return prefix + f.name + ": expected " + TypeName(f.type) + ", got " + JsonTypeName(*it);
    }
  }
  return "";
}

std::string CheckOneOf(const Json& obj, const char* key,
                       std::initializer_list<const char*> allowed) {
  const std::string v = obj[key].get<std::string>();
  for (const char* a : allowed) {
    if (v == a) return "";
  }
  return std::string(key) + ": unexpected value '" + v + "'";
}

std::string ValidateRegister(const Json& j) {
  std::string e = CheckRequired(j, {{"host_agent_id", T::kString},
                                    {"gpu_name", T::kString},
                                    {"gpu_memory_mb", T::kInt},
                                    {"gpu_count", T::kInt},
                                    {"driver_version", T::kString},
                                    {"cuda_version", T::kString},
                                    {"hostname", T::kString},
                                    {"os", T::kString},
                                    {"cpu_count", T::kInt},
                                    {"cpu_cores", T::kInt},
                                    {"total_ram_gb", T::kInt},
                                    {"total_vram_gb", T::kInt},
                                    {"storage_total_gb", T::kInt},
                                    {"storage_type", T::kString},
                                    {"storage_available_gb", T::kInt},
                                    {"upload_speed_mbps", T::kNumber},
                                    {"download_speed_mbps", T::kNumber},
                                    {"latency_ms", T::kNumber},
                                    {"uptime_hours", T::kInt},
                                    {"last_reboot", T::kTimestamp},
                                    {"public_ip", T::kString},
                                    {"ssh_port", T::kInt},
                                    {"rental_port_1", T::kInt},
                                    {"rental_port_2", T::kInt}});
  if (!e.empty()) return e;
  if (j["host_agent_id"].get<std::string>().empty()) return "host_agent_id: must not be empty";
  e = CheckOneOf(j, "storage_type", {"SSD", "HDD", "Unknown"});
  if (!e.empty()) return e;
  e = CheckOptional(j, {{"agent_version", T::kString},
                        {"docker_version", T::kString},
                        {"cpu_model", T::kString},
                        {"location", T::kString},
                        {"resource_type", T::kString},
                        {"rental_port_3", T::kInt},
                        {"port_range", T::kString},
                        {"gpus", T::kArray}});
  if (!e.empty()) return e;
  if (j.contains("gpus")) {
    size_t i = 0;
    for (const auto& g : j["gpus"]) {
      const std::string p = "gpus[" + std::to_string(i++) + "].";
      e = CheckRequired(
          g,
          {{"index", T::kInt}, {"uuid", T::kString}, {"name", T::kString}, {"memory_mb", T::kInt}},
          p);
      if (e.empty()) {
        e = CheckOptional(g,
                          {{"pci_bus_id", T::kString},
                           {"compute_capability", T::kString},
                           {"power_limit_watts", T::kNumber},
                           {"mig_mode", T::kString}},
                          p);
      }
      if (!e.empty()) return e;
    }
  }
  return "";
}

std::string ValidateHeartbeat(const Json& j, const std::string& agent_id) {
  std::string e = CheckRequired(
      j, {{"agent_id", T::kString}, {"timestamp", T::kTimestamp}, {"status", T::kString}});
  if (!e.empty()) return e;
  if (j["agent_id"] != agent_id) return "agent_id: does not match the path";
  e = CheckOneOf(j, "status", {"online", "draining"});
  if (!e.empty()) return e;
  return CheckOptional(j, {{"agent_version", T::kString},
                           {"active_deployments", T::kInt},
                           {"available_gpus", T::kInt},
                           {"uptime_seconds", T::kInt}});
}

std::string ValidateAck(const Json& j) {
  std::string e = CheckRequired(j, {{"status", T::kString}, {"timestamp", T::kTimestamp}});
  if (!e.empty()) return e;
  e = CheckOneOf(j, "status", {"processed"});
  if (!e.empty()) return e;
  e = CheckOptional(j,
                    {{"result", T::kString}, {"error", T::kString}, {"deployment_id", T::kString}});
  if (!e.empty()) return e;
  if (j.contains("result")) return CheckOneOf(j, "result", {"succeeded", "failed", "rejected"});
  return "";
}

std::string ValidateMetrics(const Json& j) {
  std::string e = CheckRequired(j, {{"agent_id", T::kString},
                                    {"gpu_uuid", T::kString},
                                    {"gpu_utilization", T::kNumber},
                                    {"vram_used_mb", T::kInt},
                                    {"temperature_celsius", T::kNumber},
                                    {"power_draw_watts", T::kNumber},
                                    {"fan_speed_percent", T::kNumber},
                                    {"cpu_utilization", T::kNumber},
                                    {"ram_used_gb", T::kNumber},
                                    {"storage_used_gb", T::kNumber},
                                    {"network_utilization", T::kNumber},
                                    {"current_upload_mbps", T::kNumber},
                                    {"current_download_mbps", T::kNumber},
                                    {"uptime_hours", T::kInt},
                                    {"timestamp", T::kTimestamp}});
  if (!e.empty()) return e;
  return CheckOptional(j, {{"gpus", T::kArray}});
}

std::string ValidateHealth(const Json& j) {
  std::string e = CheckRequired(j, {{"agent_id", T::kString},
                                    {"gpu_uuid", T::kString},
                                    {"is_healthy", T::kBool},
                                    {"status", T::kString},
                                    {"temperature_ok", T::kBool},
                                    {"power_ok", T::kBool},
                                    {"network_ok", T::kBool},
                                    {"storage_ok", T::kBool},
                                    {"gpu_performance_score", T::kNumber},
                                    {"system_stability_score", T::kNumber},
                                    {"last_health_check", T::kTimestamp},
                                    {"timestamp", T::kTimestamp}});
  if (!e.empty()) return e;
  e = CheckOneOf(j, "status", {"available", "busy", "unhealthy", "draining"});
  if (!e.empty()) return e;
  for (const char* k : {"gpu_performance_score", "system_stability_score"}) {
    const double v = j[k].get<double>();
    if (v < 0 || v > 100) return std::string(k) + ": out of range 0-100";
  }
  return CheckOptional(j, {{"gpus", T::kArray}});
}

std::string ValidateSuccess(const Json& j) {
  std::string e = CheckRequired(j, {{"deployment_id", T::kString},
                                    {"status", T::kString},
                                    {"container_id", T::kString},
                                    {"access_info", T::kObject}});
  if (!e.empty()) return e;
  e = CheckOneOf(j, "status", {"running"});
  if (!e.empty()) return e;
  const Json& a = j["access_info"];
  e = CheckRequired(
      a, {{"public_ip", T::kString}, {"port_mappings", T::kObject}, {"rental_ports", T::kObject}},
      "access_info.");
  if (!e.empty()) return e;
  if (a.contains("ssh")) {
    e = CheckRequired(a["ssh"],
                      {{"host", T::kString},
                       {"port", T::kInt},
                       {"username", T::kString},
                       {"password", T::kString},
                       {"command", T::kString}},
                      "access_info.ssh.");
    if (!e.empty()) return e;
  }
  for (auto it = a["port_mappings"].begin(); it != a["port_mappings"].end(); ++it) {
    if (!it.value().is_number_integer()) {
      return "access_info.port_mappings." + it.key() + ": expected int, got " +
             JsonTypeName(it.value());
    }
  }
  const Json& rp = a["rental_ports"];
  if (rp.contains("port_1")) {
    e = CheckRequired(rp["port_1"],
                      {{"port", T::kInt},
                       {"url", T::kString},
                       {"description", T::kString},
                       {"token", T::kString},
                       {"full_url", T::kString}},
                      "access_info.rental_ports.port_1.");
    if (!e.empty()) return e;
  }
  if (rp.contains("port_2")) {
    e = CheckRequired(rp["port_2"],
                      {{"port", T::kInt}, {"url", T::kString}, {"description", T::kString}},
                      "access_info.rental_ports.port_2.");
    if (!e.empty()) return e;
  }
  return CheckOptional(
      j, {{"gpus", T::kArray}, {"expires_at", T::kTimestamp}, {"started_at", T::kTimestamp}});
}

std::string ValidateEvent(const std::string& kind, const Json& j) {
  if (kind == "success") return ValidateSuccess(j);
  if (kind == "failed") {
    std::string e = CheckRequired(j, {{"deployment_id", T::kString},
                                      {"status", T::kString},
                                      {"stage", T::kString},
                                      {"error", T::kString},
                                      {"timestamp", T::kTimestamp}});
    if (!e.empty()) return e;
    return CheckOneOf(j, "status", {"failed"});
  }
  if (kind == "expiring") {
    return CheckRequired(
        j,
        {{"deployment_id", T::kString}, {"expires_at", T::kTimestamp}, {"seconds_left", T::kInt}});
  }
  if (kind == "gpu_failed") {
    std::string e = CheckRequired(j, {{"deployment_id", T::kString},
                                      {"gpu_uuid", T::kString},
                                      {"health", T::kString},
                                      {"reason", T::kString},
                                      {"timestamp", T::kTimestamp}});
    if (!e.empty()) return e;
    if (!j.contains("xid")) return "xid: missing (int or null)";
    return CheckOptional(j, {{"xid", T::kInt}});
  }
  // terminated
  std::string e = CheckRequired(j, {{"deployment_id", T::kString},
                                    {"status", T::kString},
                                    {"reason", T::kString},
                                    {"ended_at", T::kTimestamp},
                                    {"reserved_minutes", T::kNumber},
                                    {"used_minutes", T::kNumber},
                                    {"unused_minutes", T::kNumber}});
  if (!e.empty()) return e;
  e = CheckOneOf(j, "status", {"terminated", "expired", "failed"});
  if (!e.empty()) return e;
  return CheckOptional(j, {{"started_at", T::kTimestamp},
                           {"price_per_hour", T::kNumber},
                           {"usage_amount", T::kNumber},
                           {"refund_amount", T::kNumber},
                           {"gpu_seconds", T::kNumber},
                           {"energy_wh", T::kNumber},
                           {"mean_gpu_utilization", T::kNumber}});
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string StableGpuUuid(const std::string& agent_id) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : agent_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string("plat-gpu-") + buf;
}

struct Reply {
  int status = 200;
  std::string body;
  int retry_after = 0;
  bool injected = false;  // carries text a test fed in on purpose (Request::injected)
};

Reply JsonReply(int status, const Json& j) { return Reply{status, j.dump(), 0, false}; }
Reply ErrorReply(int status, const std::string& msg) {
  return JsonReply(status, Json{{"error", msg}});
}

}  // namespace

struct Simulator::State {
  struct Command {
    std::string agent_id, command_id, type;
    Json payload;
  };
  struct Agent {
    std::string gpu_uuid;
    std::string registration;
    SystemTime registered_at{};
    std::optional<SystemTime> last_heartbeat;
  };
  struct Event {
    std::string deployment_id, kind, body;
    SystemTime at;
  };

  Options options;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> stopped{false};

  mutable std::mutex mu;
  std::condition_variable cv;  // wakes delayed handlers on Stop()
  bool stopping = false;
  int fail_next = 0, fail_status = 503, fail_retry_after = 0;
  struct PathFault {
    int status = 500, remaining = -1, retry_after = 0;  // remaining < 0: forever
  };
  std::map<std::string, PathFault> path_faults;  // by path suffix
  bool down = false;
  std::chrono::milliseconds delay{0};
  uint64_t next_id = 1;

  std::vector<Request> requests;
  std::map<std::string, Agent> agents;
  std::optional<std::string> latest_registration;
  int heartbeats = 0;
  std::vector<Command> queue;  // unacked, in queue order
  std::set<std::string> known_commands, acked;
  std::map<std::string, std::vector<std::string>> ack_bodies;
  std::vector<Event> events;
  std::map<std::string, std::pair<RawPoll, std::string>> raw_poll;  // agent id -> raw reply

  // The commands poll reply of one agent: its queue, unless a raw reply is set.
  Reply PollReplyLocked(const std::string& agent_id, Json list) const {
    auto raw = raw_poll.find(agent_id);
    if (raw == raw_poll.end()) return JsonReply(200, Json{{"commands", std::move(list)}});
    const auto& [mode, text] = raw->second;
    if (mode == RawPoll::kReplace) return Reply{200, text, 0, true};
    const size_t open = text.find('['), close = text.rfind(']');
    std::string prefix = open < close ? text.substr(open + 1, close - open - 1) : text;
    std::string queued = list.dump();
    queued = queued.substr(1, queued.size() - 2);
    const bool both = prefix.find_first_not_of(" \t\r\n") != std::string::npos && !queued.empty();
    return Reply{200, "{\"commands\": [" + prefix + (both ? "," : "") + queued + "]}", 0, true};
  }

  std::string NewCommandIdLocked() {
    auto hex = RandomHex(12);
    return "cmd-" + (hex.ok() ? *hex : std::to_string(next_id++));
  }

  std::string QueueLocked(const std::string& agent_id, const std::string& type,
                          const std::string& payload_json, std::string command_id) {
    if (command_id.empty()) command_id = NewCommandIdLocked();
    Json payload = Json::object();
    if (!payload_json.empty()) {
      payload = Json::parse(payload_json, nullptr, false);
      // Not JSON: sent as a string, so tests can feed the agent a malformed payload.
      if (payload.is_discarded()) payload = payload_json;
    }
    queue.push_back(Command{agent_id, command_id, type, std::move(payload)});
    known_commands.insert(command_id);
    return command_id;
  }

  Reply HandleApi(const httplib::Request& req, const std::vector<std::string>& seg) {
    {
      std::unique_lock lock(mu);
      if (delay.count() > 0) cv.wait_for(lock, delay, [this] { return stopping; });
      if (down) return ErrorReply(503, "platform is down (simulated)");
      if (fail_next > 0) {
        --fail_next;
        Reply r = ErrorReply(fail_status, "injected failure");
        r.retry_after = fail_retry_after;
        return r;
      }
      for (auto it = path_faults.begin(); it != path_faults.end(); ++it) {
        const std::string& suffix = it->first;
        if (req.path.size() < suffix.size() ||
            req.path.compare(req.path.size() - suffix.size(), suffix.size(), suffix) != 0)
          continue;
        Reply r = ErrorReply(it->second.status, "injected failure for " + suffix);
        r.retry_after = it->second.retry_after;
        if (it->second.remaining > 0 && --it->second.remaining == 0) path_faults.erase(it);
        return r;
      }
    }
    if (req.get_header_value("Authorization") != "Bearer " + options.api_key) {
      return ErrorReply(401, "invalid API key");
    }
    const bool post = req.method == "POST";
    Json body;
    if (post) {
      body = Json::parse(req.body, nullptr, false);
      if (body.is_discarded()) return ErrorReply(422, "body: not valid JSON");
    }
    // The router: one name per contract endpoint (EndpointOf), the /api/ paths only.
    const std::string endpoint = Simulator::EndpointOf(req.method, req.path);
    if (endpoint == "register") return Register(body);
    if (endpoint == "metrics") {
      std::string e = ValidateMetrics(body);
      return e.empty() ? JsonReply(200, Json{{"status", "ok"}}) : ErrorReply(422, e);
    }
    if (endpoint == "health") {
      std::string e = ValidateHealth(body);
      return e.empty() ? JsonReply(200, Json{{"status", "ok"}}) : ErrorReply(422, e);
    }
    if (endpoint == "heartbeat") {
      std::string e = ValidateHeartbeat(body, seg[2]);
      if (!e.empty()) return ErrorReply(422, e);
      std::lock_guard lock(mu);
      ++heartbeats;
      auto it = agents.find(seg[2]);
      if (it != agents.end()) it->second.last_heartbeat = WallNow();
      return JsonReply(200, Json{{"status", "ok"}});
    }
    if (endpoint == "commands") {
      std::lock_guard lock(mu);
      Json list = Json::array();
      bool injected = false;  // a payload a test queued as not-an-object
      for (const auto& c : queue) {
        if (c.agent_id != seg[2]) continue;
        injected = injected || !c.payload.is_object();
        list.push_back(
            Json{{"command_id", c.command_id}, {"command_type", c.type}, {"payload", c.payload}});
      }
      Reply r = PollReplyLocked(seg[2], std::move(list));
      r.injected = r.injected || injected;
      return r;
    }
    if (endpoint == "ack") {
      std::string e = ValidateAck(body);
      if (!e.empty()) return ErrorReply(422, e);
      std::lock_guard lock(mu);
      const std::string& id = seg[4];
      if (known_commands.count(id) == 0) return ErrorReply(404, "unknown command " + id);
      ack_bodies[id].push_back(req.body);
      acked.insert(id);
      std::erase_if(queue, [&](const Command& c) { return c.command_id == id; });
      return JsonReply(200, Json{{"status", "acknowledged"}});
    }
    // /api/deployments/{id}/{kind}
    if (endpoint.rfind("event.", 0) == 0) {
      const std::string& id = seg[2];
      const std::string& kind = seg[3];
      const bool is_ext = kind != "success";
      if (is_ext && !options.ext_endpoints) return ErrorReply(404, "not found");
      std::string e = ValidateEvent(kind, body);
      if (e.empty() && body["deployment_id"] != id) e = "deployment_id: does not match the path";
      if (!e.empty()) return ErrorReply(422, e);
      std::lock_guard lock(mu);
      events.push_back(Event{id, kind, req.body, WallNow()});
      return JsonReply(200, Json{{"status", "ok"}});
    }
    return ErrorReply(404, "not found");
  }

  Reply Register(const Json& body) {
    std::string e = ValidateRegister(body);
    if (!e.empty()) return ErrorReply(422, e);
    const std::string id = body["host_agent_id"].get<std::string>();
    std::lock_guard lock(mu);
    latest_registration = body.dump();
    auto it = agents.find(id);
    if (it != agents.end()) {
      it->second.registration = body.dump();
      return JsonReply(
          409, Json{{"error", "host agent already registered"}, {"gpu_uuid", it->second.gpu_uuid}});
    }
    Agent a{StableGpuUuid(id), body.dump(), WallNow(), std::nullopt};
    agents.emplace(id, a);
    return JsonReply(200, Json{{"gpu_uuid", a.gpu_uuid}, {"message", "registered"}});
  }

  Reply HandleControl(const httplib::Request& req, const std::vector<std::string>& seg) {
    if (!IsLoopbackHost(req.remote_addr))
      return ErrorReply(403, "control endpoints are loopback only");
    const bool post = req.method == "POST";
    std::lock_guard lock(mu);
    if (post && seg.size() == 4 && seg[1] == "agents" && seg[3] == "deploy") {
      Json payload = Json::object();
      if (!req.body.empty()) {
        payload = Json::parse(req.body, nullptr, false);
        if (payload.is_discarded() || !payload.is_object()) {
          return ErrorReply(400, "body: expected a JSON object (the deploy payload)");
        }
      }
      const std::string command_id = NewCommandIdLocked();
      std::string deployment_id = command_id;
      if (payload.contains("deployment_id") && payload["deployment_id"].is_string()) {
        deployment_id = payload["deployment_id"].get<std::string>();
      }
      QueueLocked(seg[2], "deploy", payload.dump(), command_id);
      return JsonReply(200, Json{{"command_id", command_id}, {"deployment_id", deployment_id}});
    }
    if (post && seg.size() == 5 && seg[1] == "agents" && seg[3] == "terminate") {
      std::string reason = "user_requested";
      if (!req.body.empty()) {
        Json b = Json::parse(req.body, nullptr, false);
        if (!b.is_discarded() && b.is_object() && b.contains("reason") && b["reason"].is_string()) {
          reason = b["reason"].get<std::string>();
        }
      }
      Json payload{{"deployment_id", seg[4]}, {"reason", reason}};
      const std::string command_id = QueueLocked(seg[2], "terminate", payload.dump(), "");
      return JsonReply(200, Json{{"command_id", command_id}, {"deployment_id", seg[4]}});
    }
    if (!post && seg.size() == 2 && seg[1] == "deployments") {
      std::map<std::string, Json> latest;
      for (const auto& e : events) {
        Json& d = latest[e.deployment_id];
        Json parsed = Json::parse(e.body, nullptr, false);
        d["deployment_id"] = e.deployment_id;
        d["latest_kind"] = e.kind;
        d["latest_at"] = FormatRfc3339(e.at);
        d["latest"] = parsed;
        if (e.kind == "success" && parsed.is_object() && parsed.contains("access_info")) {
          d["access_info"] = parsed["access_info"];
        }
      }
      Json out = Json::array();
      for (auto& [id, d] : latest) out.push_back(std::move(d));
      return JsonReply(200, out);
    }
    if (!post && seg.size() == 2 && seg[1] == "events") {
      Json out = Json::array();
      for (const auto& e : events) {
        out.push_back(Json{{"deployment_id", e.deployment_id},
                           {"kind", e.kind},
                           {"at", FormatRfc3339(e.at)},
                           {"body", Json::parse(e.body, nullptr, false)}});
      }
      return JsonReply(200, out);
    }
    if (!post && seg.size() == 2 && seg[1] == "agents") {
      Json out = Json::array();
      for (const auto& [id, a] : agents) {
        Json o{{"agent_id", id},
               {"gpu_uuid", a.gpu_uuid},
               {"registered_at", FormatRfc3339(a.registered_at)},
               {"registration", Json::parse(a.registration, nullptr, false)}};
        o["last_heartbeat"] =
            a.last_heartbeat ? Json(FormatRfc3339(*a.last_heartbeat)) : Json(nullptr);
        out.push_back(std::move(o));
      }
      return JsonReply(200, out);
    }
    return ErrorReply(404, "not found");
  }

  void Handle(const httplib::Request& req, httplib::Response& res) {
    const std::vector<std::string> seg = SplitPath(req.path);
    Reply r;
    if (!seg.empty() && seg[0] == "api") {
      r = HandleApi(req, seg);
    } else if (!seg.empty() && seg[0] == "sim") {
      r = HandleControl(req, seg);
    } else {
      r = ErrorReply(404, "not found");
    }
    {
      std::lock_guard lock(mu);
      requests.push_back(Request{req.method, req.path, req.body, WallNow(), r.status,
                                 req.get_header_value("Authorization"),
                                 req.get_header_value("User-Agent"),
                                 req.get_header_value("Content-Type"),
                                 EndpointOf(req.method, req.path), r.body, r.injected});
    }
    res.status = r.status;
    if (r.retry_after > 0) res.set_header("Retry-After", std::to_string(r.retry_after));
    res.set_content(r.body, "application/json");
  }
};

Simulator::Simulator() : state_(std::make_unique<State>()) {}

Simulator::~Simulator() { Stop(); }

Result<std::unique_ptr<Simulator>> Simulator::Start(const Options& options) {
  std::unique_ptr<Simulator> sim(new Simulator());
  State& s = *sim->state_;
  s.options = options;
  s.server.set_keep_alive_timeout(1);
  // Without it, each reply on a kept-alive connection waits ~40 ms (Nagle against the client's
  // delayed ACK): the simulator would be the bottleneck of any throughput measured through it.
  s.server.set_tcp_nodelay(true);
  s.server.set_read_timeout(5, 0);
  s.server.set_write_timeout(5, 0);
  auto handler = [&s](const httplib::Request& req, httplib::Response& res) { s.Handle(req, res); };
  s.server.Get(".*", handler);
  s.server.Post(".*", handler);
  if (options.port == 0) {
    s.port = s.server.bind_to_any_port(options.host);
  } else {
    s.port = s.server.bind_to_port(options.host, options.port) ? options.port : -1;
  }
  if (s.port <= 0) {
    return MakeError(ErrorCode::kUnavailable, "simulator: cannot listen on " + options.host + ":" +
                                                  std::to_string(options.port));
  }
  s.thread = std::thread([&s] { s.server.listen_after_bind(); });
  // Stop() is a no-op for httplib until its accept loop runs: wait for it (bounded), so that an
  // early Stop() cannot leave the loop running forever.
  const bool running = WaitFor([&s] { return s.server.is_running(); }, std::chrono::seconds(10));
  if (!running) {
    sim->Stop();
    return MakeError(ErrorCode::kUnavailable, "simulator: server did not start within 10 s");
  }
  spdlog::info("platform simulator listening on http://{}:{}", options.host, s.port);
  return sim;
}

void Simulator::Stop() {
  if (state_->stopped.exchange(true)) return;
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  state_->server.stop();
  if (state_->thread.joinable()) state_->thread.join();
}

int Simulator::port() const { return state_->port; }

std::string Simulator::EndpointOf(const std::string& method, const std::string& path) {
  const std::vector<std::string> seg = SplitPath(path);
  if (seg.size() < 3 || seg[0] != "api") return "";
  const bool post = method == "POST";
  if (seg[1] == "host-agents") {
    if (post && seg.size() == 3) {
      for (const char* e : {"register", "metrics", "health"}) {
        if (seg[2] == e) return e;
      }
    }
    if (post && seg.size() == 4 && seg[3] == "heartbeat") return "heartbeat";
    if (method == "GET" && seg.size() == 4 && seg[3] == "commands") return "commands";
    if (post && seg.size() == 6 && seg[3] == "commands" && seg[5] == "ack") return "ack";
    return "";
  }
  if (post && seg[1] == "deployments" && seg.size() == 4) {
    for (const char* kind : {"success", "failed", "expiring", "terminated", "gpu_failed"}) {
      if (seg[3] == kind) return "event." + seg[3];
    }
  }
  return "";
}

std::string Simulator::base_url() const {
  const std::string& h = state_->options.host;
  const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  return "http://" + host + ":" + std::to_string(state_->port);
}

void Simulator::SetFailNext(int n, int status, int retry_after_seconds) {
  std::lock_guard lock(state_->mu);
  state_->fail_next = n;
  state_->fail_status = status;
  state_->fail_retry_after = retry_after_seconds;
}

void Simulator::SetPathFault(const std::string& path_suffix, int status, int count,
                             int retry_after_seconds) {
  std::lock_guard lock(state_->mu);
  if (count == 0) {
    state_->path_faults.erase(path_suffix);
    return;
  }
  state_->path_faults[path_suffix] = {status, count, retry_after_seconds};
}

void Simulator::ClearPathFault(const std::string& path_suffix) {
  std::lock_guard lock(state_->mu);
  state_->path_faults.erase(path_suffix);
}

void Simulator::SetDown(bool down) {
  std::lock_guard lock(state_->mu);
  state_->down = down;
}

void Simulator::SetResponseDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(state_->mu);
  state_->delay = delay;
}

std::vector<Simulator::Request> Simulator::Requests(const std::string& path_prefix) const {
  std::lock_guard lock(state_->mu);
  std::vector<Request> out;
  for (const auto& r : state_->requests) {
    if (r.path.rfind(path_prefix, 0) == 0) out.push_back(r);
  }
  return out;
}

std::vector<Simulator::Request> Simulator::RequestsSince(size_t from,
                                                         const std::string& path_prefix,
                                                         size_t* next) const {
  std::lock_guard lock(state_->mu);
  std::vector<Request> out;
  const auto& all = state_->requests;
  for (size_t i = from; i < all.size(); ++i) {
    if (all[i].path.rfind(path_prefix, 0) == 0) out.push_back(all[i]);
  }
  if (next != nullptr) *next = std::max(from, all.size());
  return out;
}

std::vector<std::string> Simulator::Events(const std::string& deployment_id,
                                           const std::string& kind) const {
  std::lock_guard lock(state_->mu);
  std::vector<std::string> out;
  for (const auto& e : state_->events) {
    if (e.deployment_id == deployment_id && e.kind == kind) out.push_back(e.body);
  }
  return out;
}

std::map<std::pair<std::string, std::string>, int> Simulator::EventCounts() const {
  std::lock_guard lock(state_->mu);
  std::map<std::pair<std::string, std::string>, int> out;
  for (const auto& e : state_->events) ++out[{e.deployment_id, e.kind}];
  return out;
}

int Simulator::CountHeartbeats() const {
  std::lock_guard lock(state_->mu);
  return state_->heartbeats;
}

std::vector<std::string> Simulator::AckBodies(const std::string& command_id) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->ack_bodies.find(command_id);
  return it == state_->ack_bodies.end() ? std::vector<std::string>{} : it->second;
}

std::optional<std::string> Simulator::LatestRegistration() const {
  std::lock_guard lock(state_->mu);
  return state_->latest_registration;
}

std::string Simulator::QueueCommand(const std::string& agent_id, const std::string& type,
                                    const std::string& payload_json, std::string command_id) {
  std::lock_guard lock(state_->mu);
  return state_->QueueLocked(agent_id, type, payload_json, std::move(command_id));
}

bool Simulator::Acked(const std::string& command_id) const {
  std::lock_guard lock(state_->mu);
  return state_->acked.count(command_id) > 0;
}

void Simulator::SetRawPollReply(const std::string& agent_id, std::string text, RawPoll mode) {
  std::lock_guard lock(state_->mu);
  if (text.empty()) {
    state_->raw_poll.erase(agent_id);
  } else {
    state_->raw_poll[agent_id] = {mode, std::move(text)};
  }
}

bool Simulator::WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyNow() + timeout;
  while (!pred()) {
    if (SteadyNow() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace taolie::sim
