#include "platform/messages.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "common/json_bounds.h"

namespace taolie::platform {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kGiB = 1024ull * 1024ull * 1024ull;

int64_t FloorGiB(uint64_t bytes) { return static_cast<int64_t>(bytes / kGiB); }

std::string Ts(SystemTime t, TimestampFormat f) { return FormatTimestamp(t, f); }

double Round1(double v) { return std::round(v * 10.0) / 10.0; }

template <typename T>
Json OrNull(const std::optional<T>& v) {
  return v.has_value() ? Json(*v) : Json(nullptr);
}

std::string Dump(const Json& j) {
  // `replace`: invalid UTF-8 from a device name or an error text must not throw.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

// ---- Registration ---------------------------------------------------------------------------

std::string BuildRegisterBody(const RegistrationInput& in) {
  const gpu::GpuInfo* gpu0 = nullptr;
  uint64_t vram_total_mb = 0;
  for (const auto& g : in.gpus) {
    if (gpu0 == nullptr || g.index < gpu0->index) gpu0 = &g;
    vram_total_mb += g.memory_total_mb;
  }
  SystemTime boot = in.host.boot_time_unix > 0
                        ? SystemTime(std::chrono::seconds(in.host.boot_time_unix))
                        : in.now - std::chrono::duration_cast<SystemTime::duration>(
                                       std::chrono::duration<double>(in.host.uptime_seconds));
  Json j;
  j["host_agent_id"] = in.agent_id;
  j["gpu_name"] = gpu0 != nullptr ? gpu0->name : std::string();
  j["gpu_memory_mb"] = gpu0 != nullptr ? static_cast<int64_t>(gpu0->memory_total_mb) : 0;
  j["gpu_count"] = static_cast<int64_t>(in.gpus.size());
  j["driver_version"] = in.driver.driver_version;
  j["cuda_version"] = in.driver.cuda_version;
  j["hostname"] = in.host.hostname;
  j["os"] = in.host.os;
  j["cpu_count"] = in.host.cpu_sockets;
  j["cpu_cores"] = in.host.cpu_cores;
  j["total_ram_gb"] = FloorGiB(in.host.ram_total_bytes);
  j["total_vram_gb"] = static_cast<int64_t>(vram_total_mb / 1024);
  j["storage_total_gb"] = FloorGiB(in.host.storage_total_bytes);
  j["storage_type"] = in.host.storage_type.empty() ? std::string("Unknown") : in.host.storage_type;
  j["storage_available_gb"] = FloorGiB(in.host.storage_available_bytes);
  j["upload_speed_mbps"] = static_cast<double>(in.upload_mbps);
  j["download_speed_mbps"] = static_cast<double>(in.download_mbps);
  j["latency_ms"] = static_cast<double>(in.latency_ms);
  j["uptime_hours"] = static_cast<int64_t>(std::max(0.0, in.host.uptime_seconds) / 3600.0);
  j["last_reboot"] = Ts(boot, in.ts);
  j["public_ip"] = in.public_ip;
  j["ssh_port"] = in.ssh_port;
  j["rental_port_1"] = in.rental_port_1;
  j["rental_port_2"] = in.rental_port_2;
  // ext
  j["agent_version"] = in.agent_version;
  j["docker_version"] = in.docker_version;
  j["cpu_model"] = in.host.cpu_model;
  j["location"] = in.location;
  j["resource_type"] = in.gpus.empty() ? "cpu" : "gpu";
  if (in.rental_port_3 != 0) j["rental_port_3"] = in.rental_port_3;
  if (!in.port_range.empty()) j["port_range"] = in.port_range;
  Json gpus = Json::array();
  for (const auto& g : in.gpus) {
    Json o;
    o["index"] = g.index;
    o["uuid"] = g.uuid;
    o["name"] = g.name;
    o["memory_mb"] = static_cast<int64_t>(g.memory_total_mb);
    o["pci_bus_id"] = g.pci_bus_id;
    o["compute_capability"] = g.compute_capability;
    o["power_limit_watts"] = OrNull(g.power_limit_watts);
    o["mig_mode"] = g.mig_mode;
    gpus.push_back(std::move(o));
  }
  j["gpus"] = std::move(gpus);
  return Dump(j);
}

Result<RegisterResult> ParseRegisterResponse(long status, const std::string& body) {
  // A body nested too deep is read as no JSON at all (no gpu_uuid, no error text).
  Json j;
  if (CheckJsonBounds(body).ok()) j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto str = [&](const char* key) -> std::string {
    if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
    return "";
  };
  if (status == 200 || status == 201 || status == 409) {
    RegisterResult r{str("gpu_uuid"), str("message")};
    if (r.gpu_uuid.empty()) {
      return MakeError(ErrorCode::kUnavailable, "registration answered " + std::to_string(status) +
                                                    " without a gpu_uuid string");
    }
    return r;
  }
  if (status == 401) {
    return MakeError(ErrorCode::kPermissionDenied, "platform rejected the API key (401)");
  }
  if (status == 422) {
    std::string err = str("error");
    if (err.empty()) err = str("detail");
    return MakeError(ErrorCode::kInvalidArgument,
                     "platform rejected the registration (422): " +
                         (err.empty() ? std::string("no error given") : err));
  }
  return MakeError(ErrorCode::kUnavailable,
                   "registration failed with HTTP status " + std::to_string(status));
}

// ---- Heartbeat ------------------------------------------------------------------------------

std::string BuildHeartbeatBody(const std::string& agent_id, SystemTime now, TimestampFormat ts,
                               const std::string& status, const std::string& agent_version,
                               int active_deployments, int available_gpus, int64_t uptime_seconds,
                               const HeartbeatIsolation& isolation) {
  Json j;
  j["agent_id"] = agent_id;
  j["timestamp"] = Ts(now, ts);
  j["status"] = status;
  j["agent_version"] = agent_version;
  j["active_deployments"] = active_deployments;
  j["available_gpus"] = available_gpus;
  j["uptime_seconds"] = uptime_seconds;
  if (isolation.known) {
    j["isolation_ok"] = isolation.ok;
    if (!isolation.ok) j["isolation_error"] = isolation.error;
  }
  return Dump(j);
}

// ---- Commands -------------------------------------------------------------------------------

std::string CommandIdProblem(const std::string& id) {
  if (id.empty()) return "command_id is empty";
  if (id.size() > kMaxCommandIdLength) {
    return "command_id is " + std::to_string(id.size()) + " bytes, over " +
           std::to_string(kMaxCommandIdLength);
  }
  if (id == "." || id == "..") return "command_id '" + id + "' cannot be a path segment";
  for (size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    const bool c1 = c == 0xC2 && i + 1 < id.size() &&
                    static_cast<unsigned char>(id[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(id[i + 1]) <= 0x9F;
    if (c < 0x20 || c == 0x7F || c1) {
      return c == 0 ? "command_id contains NUL" : "command_id contains a control character";
    }
  }
  return "";
}

std::string EscapeForLog(const std::string& s, size_t max_chars) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool continuation = (c & 0xC0) == 0x80;
    if (!continuation && chars++ == max_chars) {
      out += "\u2026";
      return out;
    }
    const bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(s[i + 1]) <= 0x9F;
    if (c1) {
      const auto next = static_cast<unsigned char>(s[++i]);
      out += "\\xC2\\x";
      out.push_back(kHex[next >> 4]);
      out.push_back(kHex[next & 0xF]);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

namespace {

// The decoded text of a string token (a key or a value; a scalar, so parsing it cannot recurse).
std::optional<std::string> DecodeString(std::string_view token) {
  Json s = Json::parse(token, nullptr, /*allow_exceptions=*/false);
  if (!s.is_string()) return std::nullopt;
  return s.get<std::string>();
}

// The value of the last member named `key` (nlohmann keeps the last of duplicates too).
std::optional<JsonSpan> FindMember(std::string_view text, const std::vector<JsonMember>& members,
                                   std::string_view key) {
  std::optional<JsonSpan> found;
  for (const auto& m : members) {
    if (DecodeString(SpanText(text, m.key)) == key) found = m.value;
  }
  return found;
}

// An element nested deeper than kMaxJsonDepth: never parsed into a tree (copying, comparing or
// dumping one recurses per level). Its command_id is read from its top level only, so that it
// can be acknowledged "rejected"; without a usable one it is skipped.
void ParseTooDeepElement(std::string_view body, const JsonSpan& element, uint64_t key,
                         std::string where, ParsedCommands& out) {
  const std::string why = "nested " + std::to_string(element.depth) +
                          " levels deep, over the limit of " + std::to_string(kMaxJsonDepth);
  auto skip = [&](const std::string& also) {
    out.errors.push_back(CommandProblem{key, where + ": skipped: " + why + "; " + also, true});
  };
  if (body[element.begin] != '{') {
    skip(std::string("not an object but ") + JsonKindName(body, element));
    return;
  }
  auto members = SplitJsonObject(body, element);
  if (!members.ok()) {
    skip(members.error().message);
    return;
  }
  auto id_span = FindMember(body, *members, "command_id");
  if (!id_span.has_value()) {
    skip("command_id missing");
    return;
  }
  const std::string_view id_text = SpanText(body, *id_span);
  std::optional<std::string> command_id;
  if (id_span->depth == 0) command_id = DecodeString(id_text);
  if (!command_id.has_value()) {
    if (id_span->depth == 0) where += " (command_id " + EscapeForLog(std::string(id_text)) + ")";
    skip(std::string("command_id is ") + JsonKindName(body, *id_span) + ", not a string");
    return;
  }
  where += " (command_id \"" + EscapeForLog(*command_id) + "\")";
  if (std::string bad = CommandIdProblem(*command_id); !bad.empty()) {
    skip(bad);
    return;
  }
  out.errors.push_back(CommandProblem{key, where + ": " + why + " (rejected)", false});
  out.commands.push_back(PlatformCommand{*command_id, "", "{}", "payload " + why});
}

}  // namespace

Result<ParsedCommands> ParseCommands(const std::string& body) {
  // Validated without building a tree (nlohmann's acceptor is iterative), then split by bytes:
  // each element is parsed on its own, and only when it is within kMaxJsonDepth.
  if (!Json::accept(body)) return MakeError(ErrorCode::kInvalidArgument, "commands: not JSON");
  auto top = ScanJsonValue(body);
  if (!top.ok()) return MakeError(ErrorCode::kInvalidArgument, "commands: not JSON");
  if (body[top->begin] != '{') {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string("commands: expected an object, got ") + JsonKindName(body, *top));
  }
  auto members = SplitJsonObject(body, *top);
  if (!members.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "commands: " + members.error().message);
  }
  auto list = FindMember(body, *members, "commands");
  if (!list.has_value()) {
    return MakeError(ErrorCode::kInvalidArgument, "commands: missing `commands` key");
  }
  if (body[list->begin] != '[') {
    return MakeError(ErrorCode::kInvalidArgument, std::string("commands: `commands` is ") +
                                                      JsonKindName(body, *list) + ", not an array");
  }
  auto elements = SplitJsonArray(body, *list);
  if (!elements.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "commands: " + elements.error().message);
  }
  ParsedCommands out;
  size_t i = 0;
  for (const JsonSpan& element : *elements) {
    std::string where = "commands[" + std::to_string(i++) + "]";
    // The element's own bytes identify it across polls (no tree is dumped to hash it).
    const std::string_view raw = SpanText(body, element);
    const uint64_t key = std::hash<std::string_view>{}(raw);
    if (element.depth > kMaxJsonDepth) {
      ParseTooDeepElement(body, element, key, std::move(where), out);
      continue;
    }
    const Json e = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
    auto skip = [&](const std::string& why) {
      out.errors.push_back(CommandProblem{key, where + ": skipped: " + why, true});
    };
    if (!e.is_object()) {
      skip(std::string("not an object but ") + e.type_name());
      continue;
    }
    auto id = e.find("command_id");
    if (id == e.end()) {
      skip("command_id missing");
      continue;
    }
    if (!id->is_string()) {
      where += " (command_id " + EscapeForLog(Dump(*id)) + ")";
      skip(std::string("command_id is ") + id->type_name() + ", not a string");
      continue;
    }
    const std::string command_id = id->get<std::string>();
    where += " (command_id \"" + EscapeForLog(command_id) + "\")";
    if (std::string why = CommandIdProblem(command_id); !why.empty()) {
      skip(why);
      continue;
    }
    PlatformCommand cmd{command_id, "", "{}", ""};
    auto type = e.find("command_type");
    if (type == e.end()) {
      cmd.rejection = "command_type missing";
    } else if (!type->is_string()) {
      cmd.rejection = std::string("command_type is ") + type->type_name() + ", not a string";
    } else {
      std::string t = type->get<std::string>();
      std::transform(t.begin(), t.end(), t.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      // An unprintable or huge type cannot be a known one: rejected here, never stored.
      if (t.size() > 64 || !CommandIdProblem(t).empty()) {
        cmd.rejection = "unknown command_type '" + EscapeForLog(t) + "'";
      } else {
        cmd.command_type = std::move(t);
      }
    }
    auto payload = e.find("payload");
    if (payload != e.end() && !payload->is_null()) {
      if (!payload->is_object() && cmd.rejection.empty()) {
        // Still handed on, raw: the command has an id, so the workflow rejects it with an
        // ack (otherwise the platform would re-deliver it forever).
        out.errors.push_back(CommandProblem{
            key, where + ": payload is " + payload->type_name() + ", not an object (rejected)",
            false});
      }
      cmd.payload_json = Dump(*payload);
    }
    if (!cmd.rejection.empty()) {
      out.errors.push_back(
          CommandProblem{key, where + ": " + cmd.rejection + " (rejected)", false});
    }
    out.commands.push_back(std::move(cmd));
  }
  return out;
}

// ---- Ack ------------------------------------------------------------------------------------

std::string BuildAckBody(SystemTime now, TimestampFormat ts, const std::string& result,
                         const std::string& error, const std::string& deployment_id) {
  Json j;
  j["status"] = "processed";
  j["timestamp"] = Ts(now, ts);
  if (!result.empty()) j["result"] = result;
  if (!error.empty()) j["error"] = error;
  if (!deployment_id.empty()) j["deployment_id"] = deployment_id;
  return Dump(j);
}

// ---- Metrics --------------------------------------------------------------------------------

std::string BuildMetricsBody(const std::string& agent_id, const std::string& platform_gpu_uuid,
                             const domain::MetricSample& sample, TimestampFormat ts) {
  double util_sum = 0, power_sum = 0, fan_sum = 0, temp_max = 0;
  int64_t vram_sum = 0;
  for (const auto& g : sample.gpus) {
    util_sum += g.utilization.value_or(0);
    power_sum += g.power_draw_watts.value_or(0);
    fan_sum += g.fan_speed_percent.value_or(0);
    temp_max = std::max(temp_max, g.temperature_c.value_or(0));
    vram_sum += g.memory_used_mb.value_or(0);
  }
  const double n = sample.gpus.empty() ? 1.0 : static_cast<double>(sample.gpus.size());
  Json j;
  j["agent_id"] = agent_id;
  j["gpu_uuid"] = platform_gpu_uuid;
  j["gpu_utilization"] = util_sum / n;
  j["vram_used_mb"] = vram_sum;
  j["temperature_celsius"] = temp_max;
  j["power_draw_watts"] = power_sum;
  j["fan_speed_percent"] = fan_sum / n;
  j["cpu_utilization"] = static_cast<double>(sample.host.cpu_utilization);
  j["ram_used_gb"] = static_cast<double>(sample.host.ram_used_gb);
  j["storage_used_gb"] = static_cast<double>(sample.host.storage_used_gb);
  j["network_utilization"] = static_cast<double>(sample.host.network_utilization);
  j["current_upload_mbps"] = static_cast<double>(sample.host.upload_mbps);
  j["current_download_mbps"] = static_cast<double>(sample.host.download_mbps);
  j["uptime_hours"] = sample.host.uptime_hours;
  j["timestamp"] = Ts(sample.taken_at, ts);
  Json gpus = Json::array();
  for (const auto& g : sample.gpus) {
    Json o;
    o["index"] = g.gpu_index;
    o["uuid"] = g.gpu_uuid;
    o["utilization"] = OrNull(g.utilization);
    o["memory_used_mb"] = OrNull(g.memory_used_mb);
    o["memory_total_mb"] = OrNull(g.memory_total_mb);
    o["temperature_celsius"] = OrNull(g.temperature_c);
    o["power_draw_watts"] = OrNull(g.power_draw_watts);
    o["power_limit_watts"] = OrNull(g.power_limit_watts);
    o["fan_speed_percent"] = OrNull(g.fan_speed_percent);
    o["sm_clock_mhz"] = OrNull(g.sm_clock_mhz);
    o["mem_clock_mhz"] = OrNull(g.mem_clock_mhz);
    o["deployment_id"] = g.deployment_id.empty() ? Json(nullptr) : Json(g.deployment_id);
    o["memory_utilization"] = OrNull(g.memory_utilization);
    o["memory_free_mb"] = OrNull(g.memory_free_mb);
    o["energy_joules"] = OrNull(g.energy_joules);
    o["pcie_gen"] = OrNull(g.pcie_gen);
    o["pcie_width"] = OrNull(g.pcie_width);
    o["pcie_replay_count"] = OrNull(g.pcie_replay_count);
    o["throttle_reasons"] = OrNull(g.throttle_reasons);
    o["ecc_volatile_corrected"] = OrNull(g.ecc_volatile_corrected);
    o["ecc_volatile_uncorrected"] = OrNull(g.ecc_volatile_uncorrected);
    o["ecc_aggregate_corrected"] = OrNull(g.ecc_aggregate_corrected);
    o["ecc_aggregate_uncorrected"] = OrNull(g.ecc_aggregate_uncorrected);
    o["retired_pages_sbe"] = OrNull(g.retired_pages_sbe);
    o["retired_pages_dbe"] = OrNull(g.retired_pages_dbe);
    o["retired_pages_pending"] = OrNull(g.retired_pages_pending);
    o["remapped_rows_correctable"] = OrNull(g.remapped_rows_correctable);
    o["remapped_rows_uncorrectable"] = OrNull(g.remapped_rows_uncorrectable);
    o["remapped_rows_pending"] = OrNull(g.remapped_rows_pending);
    o["remapped_rows_failure"] = OrNull(g.remapped_rows_failure);
    o["power_violation_ns"] = OrNull(g.power_violation_ns);
    o["thermal_violation_ns"] = OrNull(g.thermal_violation_ns);
    o["process_count"] = g.process_count;
    gpus.push_back(std::move(o));
  }
  j["gpus"] = std::move(gpus);
  return Dump(j);
}

// ---- Health ---------------------------------------------------------------------------------

std::string BuildHealthBody(const std::string& agent_id, const std::string& platform_gpu_uuid,
                            const domain::HealthReport& report, SystemTime now,
                            TimestampFormat ts) {
  Json j;
  j["agent_id"] = agent_id;
  j["gpu_uuid"] = platform_gpu_uuid;
  j["is_healthy"] = report.is_healthy;
  j["status"] = report.status;
  j["temperature_ok"] = report.temperature_ok;
  j["power_ok"] = report.power_ok;
  j["network_ok"] = report.network_ok;
  j["storage_ok"] = report.storage_ok;
  j["gpu_performance_score"] = Round1(report.gpu_performance_score);
  j["system_stability_score"] = Round1(report.system_stability_score);
  j["last_health_check"] = Ts(report.checked_at, ts);
  j["timestamp"] = Ts(now, ts);
  if (!report.details_json.empty()) {
    Json details = Json::parse(report.details_json, nullptr, /*allow_exceptions=*/false);
    if (!details.is_discarded() && details.is_array()) {
      // Every entry carries `quarantined` and `quarantine_reason` (ext); a report stored by an
      // agent that did not write them yet shows its quarantine as its "quarantine" check did.
      for (auto& g : details) {
        if (!g.is_object() || g.contains("quarantined")) continue;
        const bool in =
            g.contains("checks") && g["checks"].is_object() && g["checks"].contains("quarantine");
        g["quarantined"] = in;
        g["quarantine_reason"] = nullptr;
      }
      j["gpus"] = std::move(details);
    }
  }
  return Dump(j);
}

// ---- Deployment events ----------------------------------------------------------------------

std::string BuildSuccessBody(const std::string& deployment_id, const std::string& container_id,
                             const AccessInfo& a, const std::vector<std::string>& gpu_uuids,
                             SystemTime started_at, SystemTime expires_at, TimestampFormat ts) {
  Json access;
  access["public_ip"] = a.public_ip;
  if (a.ssh_port != 0) {
    Json ssh;
    ssh["host"] = a.public_ip;
    ssh["port"] = a.ssh_port;
    ssh["username"] = a.ssh_username;
    ssh["password"] = a.ssh_password;
    ssh["command"] =
        "ssh " + a.ssh_username + "@" + a.public_ip + " -p " + std::to_string(a.ssh_port);
    access["ssh"] = std::move(ssh);
  }
  Json mappings = Json::object();
  for (const auto& [container_port, host_port] : a.port_mappings) {
    mappings[std::to_string(container_port)] = host_port;
  }
  access["port_mappings"] = std::move(mappings);
  Json rental = Json::object();
  const std::string base = "http://" + UrlHost(a.public_ip) + ":";
  if (a.jupyter_host_port != 0) {
    std::string url = base + std::to_string(a.jupyter_host_port);
    Json p1;
    p1["port"] = a.jupyter_host_port;
    p1["url"] = url;
    p1["description"] = "Jupyter Lab";
    p1["token"] = a.jupyter_token;
    p1["full_url"] = url + "/?token=" + a.jupyter_token;
    rental["port_1"] = std::move(p1);
  }
  if (a.custom_host_port != 0) {
    Json p2;
    p2["port"] = a.custom_host_port;
    p2["url"] = base + std::to_string(a.custom_host_port);
    p2["description"] = "Custom application port";
    rental["port_2"] = std::move(p2);
  }
  access["rental_ports"] = std::move(rental);

  Json j;
  j["deployment_id"] = deployment_id;
  j["status"] = "running";
  j["container_id"] = container_id;
  j["access_info"] = std::move(access);
  j["gpus"] = gpu_uuids;
  j["started_at"] = Ts(started_at, ts);
  j["expires_at"] = Ts(expires_at, ts);
  return Dump(j);
}

std::string ScrubSecretsFromBody(const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return body;
  auto ai = j.find("access_info");
  if (ai == j.end() || !ai->is_object()) return body;
  bool changed = false;
  if (auto ssh = ai->find("ssh");
      ssh != ai->end() && ssh->is_object() && ssh->contains("password")) {
    (*ssh)["password"] = "";
    changed = true;
  }
  // The Jupyter token, and the URL that carries it.
  if (auto rp = ai->find("rental_ports"); rp != ai->end() && rp->is_object()) {
    if (auto p1 = rp->find("port_1"); p1 != rp->end() && p1->is_object()) {
      if (p1->contains("token")) {
        (*p1)["token"] = "";
        changed = true;
      }
      if (auto url = p1->find("url");
          url != p1->end() && url->is_string() && p1->contains("full_url")) {
        (*p1)["full_url"] = *url;
        changed = true;
      }
    }
  }
  return changed ? Dump(j) : body;
}

std::string BuildFailedBody(const std::string& deployment_id, const std::string& stage,
                            const std::string& error, SystemTime now, TimestampFormat ts) {
  Json j;
  j["deployment_id"] = deployment_id;
  j["status"] = "failed";
  j["stage"] = stage;
  j["error"] = error;
  j["timestamp"] = Ts(now, ts);
  return Dump(j);
}

std::string BuildExpiringBody(const std::string& deployment_id, SystemTime expires_at,
                              int64_t seconds_left, TimestampFormat ts) {
  Json j;
  j["deployment_id"] = deployment_id;
  j["expires_at"] = Ts(expires_at, ts);
  j["seconds_left"] = seconds_left;
  return Dump(j);
}

std::string BuildTerminatedBody(const std::string& deployment_id, const std::string& status,
                                const std::string& reason, std::optional<SystemTime> started_at,
                                SystemTime ended_at, const domain::Usage& usage,
                                TimestampFormat ts) {
  Json j;
  j["deployment_id"] = deployment_id;
  j["status"] = status;
  j["reason"] = reason;
  j["started_at"] = started_at.has_value() ? Json(Ts(*started_at, ts)) : Json(nullptr);
  j["ended_at"] = Ts(ended_at, ts);
  j["reserved_minutes"] = static_cast<double>(usage.reserved_minutes);
  j["used_minutes"] = static_cast<double>(usage.used_minutes);
  j["unused_minutes"] = static_cast<double>(usage.unused_minutes);
  if (usage.price_per_hour.has_value()) {
    j["price_per_hour"] = *usage.price_per_hour;
    j["usage_amount"] = OrNull(usage.usage_amount);
    j["refund_amount"] = OrNull(usage.refund_amount);
  }
  j["gpu_seconds"] = usage.gpu_seconds;
  j["energy_wh"] = OrNull(usage.energy_wh);
  j["mean_gpu_utilization"] = OrNull(usage.mean_gpu_utilization);
  return Dump(j);
}

std::string BuildGpuFailedBody(const std::string& deployment_id, const std::string& gpu_uuid,
                               const std::string& health, const std::string& reason,
                               std::optional<uint64_t> xid, SystemTime now, TimestampFormat ts) {
  Json j;
  j["deployment_id"] = deployment_id;
  j["gpu_uuid"] = gpu_uuid;
  j["health"] = health;
  j["reason"] = reason;
  j["xid"] = OrNull(xid);
  j["timestamp"] = Ts(now, ts);
  return Dump(j);
}

// ---- Paths ----------------------------------------------------------------------------------

std::string EscapePathSegment(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string RegisterPath() { return "/api/host-agents/register"; }
std::string HeartbeatPath(const std::string& agent_id) {
  return "/api/host-agents/" + EscapePathSegment(agent_id) + "/heartbeat";
}
std::string CommandsPath(const std::string& agent_id) {
  return "/api/host-agents/" + EscapePathSegment(agent_id) + "/commands";
}
std::string AckPath(const std::string& agent_id, const std::string& command_id) {
  return CommandsPath(agent_id) + "/" + EscapePathSegment(command_id) + "/ack";
}
std::string MetricsPath() { return "/api/host-agents/metrics"; }
std::string HealthPath() { return "/api/host-agents/health"; }
std::string DeploymentEventPath(const std::string& deployment_id, const std::string& kind) {
  return "/api/deployments/" + EscapePathSegment(deployment_id) + "/" + EscapePathSegment(kind);
}

}  // namespace taolie::platform
