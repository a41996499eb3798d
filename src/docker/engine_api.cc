#include "docker/engine_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>

#include "common/json_bounds.h"
#include "common/net_address.h"

namespace taolie::docker {
namespace {

using nlohmann::json;

constexpr size_t kMaxMessageLength = 2048;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

Error BadImage(std::string_view image, const std::string& why) {
  std::string shown(image.substr(0, 80));
  for (char& c : shown) {
    if (c < 0x21 || c > 0x7e) c = '?';
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "invalid image reference \"" + shown + "\": " + why);
}

std::string StringOr(const json& j, const char* key, std::string fallback = "") {
  auto it = j.find(key);
  if (it != j.end() && it->is_string()) return it->get<std::string>();
  return fallback;
}

int64_t IntOr(const json& j, const char* key, int64_t fallback = 0) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number_integer()) return it->get<int64_t>();
  return fallback;
}

bool BoolOr(const json& j, const char* key, bool fallback = false) {
  auto it = j.find(key);
  if (it != j.end() && it->is_boolean()) return it->get<bool>();
  return fallback;
}

std::map<std::string, std::string> StringMap(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return out;
  for (const auto& [k, v] : it->items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

std::vector<std::string> StringList(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

int ToPort(std::string_view s) {
  int port = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (ec != std::errc() || ptr != s.data() + s.size() || port < 0 || port > 65535) return 0;
  return port;
}

// "Exited (137) 5 seconds ago" -> 137.
int ExitCodeFromStatus(std::string_view status) {
  if (status.rfind("Exited (", 0) != 0) return 0;
  std::string_view rest = status.substr(8);
  int code = 0;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), code);
  return ec == std::errc() ? code : 0;
}

Result<json> ParseJson(std::string_view text, const char* what) {
  // Bounded before the tree is built: nothing past kMaxJsonDepth reaches a copy or a dump.
  // (nlohmann's acceptor is iterative and builds nothing.)
  if (!json::accept(text)) {
    return MakeError(ErrorCode::kInternal, std::string("docker: unparsable ") + what + " response");
  }
  if (Status bounds = CheckJsonBounds(text); !bounds.ok()) {
    return MakeError(ErrorCode::kInternal,
                     std::string("docker: ") + what + " response: " + bounds.error().message);
  }
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

Result<ContainerInfo> InspectFromJson(const json& j) {
  if (!j.is_object() || StringOr(j, "Id").empty()) {
    return MakeError(ErrorCode::kInternal, "docker: inspect response has no Id");
  }
  ContainerInfo info;
  info.id = StringOr(j, "Id");
  info.name = StringOr(j, "Name");
  if (!info.name.empty() && info.name.front() == '/') info.name.erase(0, 1);
  static const json kEmpty = json::object();
  const json& config = j.contains("Config") && j["Config"].is_object() ? j["Config"] : kEmpty;
  const json& state = j.contains("State") && j["State"].is_object() ? j["State"] : kEmpty;
  const json& host =
      j.contains("HostConfig") && j["HostConfig"].is_object() ? j["HostConfig"] : kEmpty;
  info.image = StringOr(config, "Image", StringOr(j, "Image"));
  info.state = StringOr(state, "Status");
  info.running = BoolOr(state, "Running");
  info.exit_code = static_cast<int>(IntOr(state, "ExitCode"));
  info.oom_killed = BoolOr(state, "OOMKilled");
  info.started_at = StringOr(state, "StartedAt");
  info.finished_at = StringOr(state, "FinishedAt");
  info.labels = StringMap(config, "Labels");
  info.env = StringList(config, "Env");
  info.privileged = BoolOr(host, "Privileged");
  if (auto it = host.find("DeviceRequests"); it != host.end() && it->is_array()) {
    for (const auto& req : *it) {
      if (!req.is_object()) continue;
      for (const auto& id : StringList(req, "DeviceIDs")) info.device_request_ids.push_back(id);
    }
  }
  if (auto ns = j.find("NetworkSettings"); ns != j.end() && ns->is_object()) {
    if (auto ports = ns->find("Ports"); ports != ns->end() && ports->is_object()) {
      for (const auto& [key, bindings] : ports->items()) {
        if (!bindings.is_array()) continue;  // exposed but not published
        size_t slash = key.find('/');
        int container_port = ToPort(std::string_view(key).substr(0, slash));
        std::string proto = slash == std::string::npos ? "tcp" : key.substr(slash + 1);
        for (const auto& b : bindings) {
          if (!b.is_object()) continue;
          PortBinding pb;
          pb.container_port = container_port;
          pb.protocol = proto;
          pb.host_ip = StringOr(b, "HostIp");
          pb.host_port = ToPort(StringOr(b, "HostPort"));
          info.ports.push_back(pb);
        }
      }
    }
  }
  return info;
}

}  // namespace

Result<ImageRef> ParseImageReference(std::string_view image) {
  auto ref = domain::ParseImageReference(image);
  if (!ref.ok()) return BadImage(image, ref.error().message);
  return ref;
}

bool IsValidContainerRef(std::string_view s) {
  if (s.empty() || s.size() > 255 || !IsAlnum(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::optional<std::pair<int, int>> ParseApiVersion(std::string_view v) {
  size_t dot = v.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= v.size()) return std::nullopt;
  int major = 0;
  int minor = 0;
  auto r1 = std::from_chars(v.data(), v.data() + dot, major);
  auto r2 = std::from_chars(v.data() + dot + 1, v.data() + v.size(), minor);
  if (r1.ec != std::errc() || r1.ptr != v.data() + dot || r2.ec != std::errc() ||
      r2.ptr != v.data() + v.size() || major < 0 || minor < 0) {
    return std::nullopt;
  }
  return std::make_pair(major, minor);
}

Result<std::string> NegotiateApiVersion(std::string_view server, std::string_view min_supported,
                                        std::string_view max_supported) {
  auto s = ParseApiVersion(server);
  auto lo = ParseApiVersion(min_supported);
  auto hi = ParseApiVersion(max_supported);
  if (!s) {
    return MakeError(ErrorCode::kInternal, "docker: engine reported malformed API version \"" +
                                               std::string(server.substr(0, 32)) + "\"");
  }
  if (!lo || !hi) return MakeError(ErrorCode::kInvalidArgument, "docker: bad supported range");
  if (*s < *lo) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "docker: engine API " + std::string(server) + " is older than the " +
                         std::string(min_supported) + " this agent needs");
  }
  auto chosen = std::min(*s, *hi);
  return std::to_string(chosen.first) + "." + std::to_string(chosen.second);
}

bool StreamDemuxer::Feed(std::string_view data) {
  while (!data.empty()) {
    if (remaining_ > 0) {
      size_t n = std::min<size_t>(remaining_, data.size());
      Append(data.substr(0, n));
      remaining_ -= static_cast<uint32_t>(n);
      data.remove_prefix(n);
      continue;
    }
    size_t need = 8 - header_.size();
    size_t n = std::min(need, data.size());
    header_.append(data.substr(0, n));
    data.remove_prefix(n);
    if (header_.size() < 8) break;
    auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(header_[i])); };
    if (b(0) > 2) return false;  // 0 stdin, 1 stdout, 2 stderr
    remaining_ = (b(4) << 24) | (b(5) << 16) | (b(6) << 8) | b(7);
    header_.clear();
  }
  return true;
}

void StreamDemuxer::Append(std::string_view payload) {
  size_t room = max_output_ - std::min(max_output_, output_.size());
  if (payload.size() > room) truncated_ = true;
  output_.append(payload.substr(0, room));
}

Status ValidateSpec(const ContainerSpec& spec) {
  auto bad = [](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument, "docker: container spec: " + why);
  };
  if (!spec.name.empty() && !IsValidContainerRef(spec.name)) return bad("invalid name");
  auto image = ParseImageReference(spec.image);
  if (!image.ok()) return image.error();
  static const char* kPolicies[] = {"no", "on-failure", "unless-stopped", "always"};
  if (std::find(std::begin(kPolicies), std::end(kPolicies), spec.restart_policy) ==
      std::end(kPolicies)) {
    return bad("unknown restart_policy \"" + spec.restart_policy.substr(0, 32) + "\"");
  }
  for (const auto& p : spec.ports) {
    if (p.container_port < 1 || p.container_port > 65535) return bad("container_port out of range");
    if (p.host_port < 0 || p.host_port > 65535) return bad("host_port out of range");
    if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp") {
      return bad("protocol must be tcp, udp or sctp");
    }
  }
  if (spec.memory_bytes < 0 || spec.nano_cpus < 0 || spec.shm_size_bytes < 0 ||
      spec.pids_limit < 0 || spec.storage_size_bytes < 0) {
    return bad("negative resource limit");
  }
  for (const auto& uuid : spec.gpu_uuids) {
    if (uuid.empty() || uuid.find(',') != std::string::npos) return bad("invalid GPU UUID");
  }
  return OkStatus();
}

std::string BuildCreateBody(const ContainerSpec& spec) {
  json body = json::object();
  body["Image"] = spec.image;
  body["Env"] = spec.env;
  body["Labels"] = spec.labels;
  if (spec.cmd) body["Cmd"] = *spec.cmd;

  json host = json::object();
  json restart = {{"Name", spec.restart_policy == "no" ? "" : spec.restart_policy}};
  if (spec.restart_policy == "on-failure") restart["MaximumRetryCount"] = 3;
  host["RestartPolicy"] = restart;

  json exposed = json::object();
  json bindings = json::object();
  for (const auto& p : spec.ports) {
    std::string key = std::to_string(p.container_port) + "/" + p.protocol;
    exposed[key] = json::object();
    json b = {{"HostIp", p.host_ip},
              {"HostPort", p.host_port > 0 ? std::to_string(p.host_port) : std::string()}};
    if (!bindings.contains(key)) bindings[key] = json::array();
    bindings[key].push_back(b);
  }
  if (!exposed.empty()) body["ExposedPorts"] = exposed;
  host["PortBindings"] = bindings;

  if (!spec.gpu_uuids.empty()) {
    host["DeviceRequests"] = json::array({json{{"Driver", "nvidia"},
                                               {"Count", 0},
                                               {"DeviceIDs", spec.gpu_uuids},
                                               {"Capabilities", json::array({{"gpu"}})},
                                               {"Options", json::object()}}});
  }
  if (!spec.binds.empty()) host["Binds"] = spec.binds;
  if (!spec.mounts.empty()) {
    json mounts = json::array();
    for (const auto& m : spec.mounts) {
      mounts.push_back({{"Type", "bind"},
                        {"Source", m.source},
                        {"Target", m.target},
                        {"ReadOnly", m.read_only},
                        {"BindOptions", {{"CreateMountpoint", false}}}});
    }
    host["Mounts"] = std::move(mounts);
  }
  if (spec.memory_bytes > 0) {
    host["Memory"] = spec.memory_bytes;
    host["MemorySwap"] = spec.memory_bytes;  // no swap beyond the memory limit
  }
  if (spec.nano_cpus > 0) host["NanoCpus"] = spec.nano_cpus;
  if (spec.shm_size_bytes > 0) host["ShmSize"] = spec.shm_size_bytes;
  if (spec.pids_limit > 0) host["PidsLimit"] = spec.pids_limit;
  if (spec.storage_size_bytes > 0) {
    host["StorageOpt"] = {{"size", std::to_string(spec.storage_size_bytes)}};
  }
  json log_opts = json::object();
  if (!spec.log_max_size.empty()) log_opts["max-size"] = spec.log_max_size;
  if (!spec.log_max_file.empty()) log_opts["max-file"] = spec.log_max_file;
  host["LogConfig"] = {{"Type", "json-file"}, {"Config", log_opts}};
  if (spec.no_new_privileges) host["SecurityOpt"] = json::array({"no-new-privileges"});
  if (!spec.cap_drop.empty()) host["CapDrop"] = spec.cap_drop;
  if (!spec.cap_add.empty()) host["CapAdd"] = spec.cap_add;
  if (!spec.runtime.empty()) host["Runtime"] = spec.runtime;
  host["Privileged"] = false;
  if (spec.network_mode && !spec.network_mode->empty()) host["NetworkMode"] = *spec.network_mode;
  if (!spec.extra_hosts.empty()) host["ExtraHosts"] = spec.extra_hosts;
  body["HostConfig"] = host;
  return body.dump();
}

Status ValidateNetworkSpec(const NetworkSpec& spec) {
  auto bad = [](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument, "docker: network spec: " + why);
  };
  if (!IsValidContainerRef(spec.name)) return bad("invalid name");
  const std::string& br = spec.bridge_name;
  if (br.empty() || br.size() > 15 || !std::all_of(br.begin(), br.end(), [](char c) {
        return IsAlnum(c) || c == '-' || c == '_' || c == '.';
      })) {
    return bad("invalid bridge_name \"" + br.substr(0, 32) + "\"");
  }
  auto subnet = CanonicalIpv4Cidr(spec.subnet);
  if (!subnet.ok()) return bad("subnet: " + subnet.error().message);
  for (const auto& [key, value] : spec.labels) {
    if (key.empty()) return bad("empty label key");
  }
  return OkStatus();
}

std::string BuildNetworkCreateBody(const NetworkSpec& spec) {
  json body = {
      {"Name", spec.name},
      {"Driver", "bridge"},
      {"CheckDuplicate", true},
      {"EnableIPv6", false},
      {"Internal", false},
      {"Attachable", false},
      {"Labels", spec.labels},
      {"IPAM", {{"Driver", "default"}, {"Config", json::array({{{"Subnet", spec.subnet}}})}}},
      {"Options",
       {{"com.docker.network.bridge.name", spec.bridge_name},
        {"com.docker.network.bridge.enable_icc", spec.enable_icc ? "true" : "false"}}},
  };
  return body.dump();
}

Result<NetworkInfo> ParseNetworkInspect(std::string_view text) {
  auto j = ParseJson(text, "network inspect");
  if (!j.ok()) return j.error();
  if (!j->is_object() || StringOr(*j, "Id").empty()) {
    return MakeError(ErrorCode::kInternal, "docker: network inspect: no Id in answer");
  }
  NetworkInfo info;
  info.id = StringOr(*j, "Id");
  info.name = StringOr(*j, "Name");
  info.driver = StringOr(*j, "Driver");
  info.enable_ipv6 = BoolOr(*j, "EnableIPv6");
  info.internal = BoolOr(*j, "Internal");
  if (auto ipam = j->find("IPAM"); ipam != j->end() && ipam->is_object()) {
    if (auto cfg = ipam->find("Config"); cfg != ipam->end() && cfg->is_array()) {
      for (const auto& c : *cfg) {
        if (!c.is_object()) continue;
        info.subnets.push_back(StringOr(c, "Subnet"));
        info.gateways.push_back(StringOr(c, "Gateway"));
      }
    }
  }
  info.options = StringMap(*j, "Options");
  info.labels = StringMap(*j, "Labels");
  return info;
}

Result<ContainerInfo> ParseInspect(std::string_view text) {
  auto j = ParseJson(text, "inspect");
  if (!j.ok()) return j.error();
  return InspectFromJson(*j);
}

Result<std::vector<ContainerInfo>> ParseList(std::string_view text) {
  auto j = ParseJson(text, "list");
  if (!j.ok()) return j.error();
  if (!j->is_array()) return MakeError(ErrorCode::kInternal, "docker: list response not an array");
  std::vector<ContainerInfo> out;
  for (const auto& c : *j) {
    if (!c.is_object() || StringOr(c, "Id").empty()) continue;
    ContainerInfo info;
    info.id = StringOr(c, "Id");
    std::vector<std::string> names = StringList(c, "Names");
    if (!names.empty()) {
      info.name = names.front();
      if (!info.name.empty() && info.name.front() == '/') info.name.erase(0, 1);
    }
    info.image = StringOr(c, "Image");
    info.image_id = StringOr(c, "ImageID");
    info.state = StringOr(c, "State");
    info.running = info.state == "running";
    info.exit_code = ExitCodeFromStatus(StringOr(c, "Status"));
    info.labels = StringMap(c, "Labels");
    if (auto ports = c.find("Ports"); ports != c.end() && ports->is_array()) {
      for (const auto& p : *ports) {
        if (!p.is_object() || IntOr(p, "PublicPort") <= 0) continue;
        PortBinding pb;
        pb.container_port = static_cast<int>(IntOr(p, "PrivatePort"));
        pb.protocol = StringOr(p, "Type", "tcp");
        pb.host_ip = StringOr(p, "IP");
        pb.host_port = static_cast<int>(IntOr(p, "PublicPort"));
        info.ports.push_back(pb);
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::map<std::string, int64_t>> ParseWritableSizes(std::string_view text) {
  auto j = ParseJson(text, "list");
  if (!j.ok()) return j.error();
  if (!j->is_array()) return MakeError(ErrorCode::kInternal, "docker: list response not an array");
  std::map<std::string, int64_t> out;
  for (const auto& c : *j) {
    if (!c.is_object() || StringOr(c, "Id").empty()) continue;
    out[StringOr(c, "Id")] = std::max<int64_t>(0, IntOr(c, "SizeRw"));
  }
  return out;
}

Result<std::vector<ImageInfo>> ParseImageList(std::string_view text) {
  auto j = ParseJson(text, "image list");
  if (!j.ok()) return j.error();
  if (!j->is_array()) {
    return MakeError(ErrorCode::kInternal, "docker: image list response not an array");
  }
  std::vector<ImageInfo> out;
  for (const auto& i : *j) {
    if (!i.is_object() || StringOr(i, "Id").empty()) continue;
    ImageInfo info;
    info.id = StringOr(i, "Id");
    for (std::string& tag : StringList(i, "RepoTags")) {
      if (tag != "<none>:<none>") info.repo_tags.push_back(std::move(tag));
    }
    info.created = IntOr(i, "Created");
    info.size = std::max<int64_t>(0, IntOr(i, "Size"));
    out.push_back(std::move(info));
  }
  return out;
}

bool IsValidImageId(std::string_view id) {
  if (id.rfind("sha256:", 0) == 0) id.remove_prefix(7);
  if (id.size() < 12 || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string BuildLabelFilter(const std::vector<std::pair<std::string, std::string>>& labels) {
  json values = json::array();
  for (const auto& [k, v] : labels) {
    std::string value = k;
    if (!v.empty()) value.append("=").append(v);
    values.push_back(std::move(value));
  }
  return json{{"label", values}}.dump();
}

Result<PullLine> ParsePullLine(std::string_view line) {
  auto j = ParseJson(line, "pull progress");
  if (!j.ok()) return j.error();
  if (!j->is_object()) return MakeError(ErrorCode::kInternal, "docker: pull line not an object");
  PullLine out;
  std::string error = StringOr(*j, "error");
  if (auto d = j->find("errorDetail"); d != j->end() && d->is_object()) {
    std::string detail = StringOr(*d, "message");
    if (!detail.empty()) error = detail;
  }
  if (!error.empty() || j->contains("errorDetail")) {
    out.error = error.empty() ? "unknown pull error" : error.substr(0, kMaxMessageLength);
  }
  out.progress.status = StringOr(*j, "status");
  out.progress.id = StringOr(*j, "id");
  if (auto d = j->find("progressDetail"); d != j->end() && d->is_object()) {
    out.progress.current = IntOr(*d, "current");
    out.progress.total = IntOr(*d, "total");
  }
  return out;
}

std::string EngineMessage(std::string_view body) {
  json j;  // discarded (null) when too deep: the raw text is shown instead
  if (CheckJsonBounds(body).ok()) j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    std::string m = StringOr(j, "message");
    if (!m.empty()) return m.substr(0, kMaxMessageLength);
  }
  std::string raw(body.substr(0, kMaxMessageLength));
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.pop_back();
  for (char& c : raw) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return raw.empty() ? "(empty response)" : raw;
}

ErrorCode CodeForHttpStatus(long status, ErrorCode conflict) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
    case 403:
      return ErrorCode::kPermissionDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return conflict;
    case 500:
      return ErrorCode::kInternal;
    default:
      return status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  }
}

namespace {
// Whether `message` contains any of `needles` (lower case), ignoring case.
bool MentionsAny(std::string_view message, std::initializer_list<const char*> needles) {
  std::string m(message);
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::any_of(needles.begin(), needles.end(),
                     [&](const char* n) { return m.find(n) != std::string::npos; });
}
}  // namespace

ErrorCode CodeForPullError(std::string_view message) {
  if (MentionsAny(message, {"not found", "manifest unknown", "does not exist"})) {
    return ErrorCode::kNotFound;
  }
  if (MentionsAny(message, {"denied", "unauthorized"})) return ErrorCode::kPermissionDenied;
  return ErrorCode::kUnavailable;
}

bool IsStorageOptUnsupported(std::string_view message) {
  return MentionsAny(message, {"storage-opt", "storageopt", "storage opt"});
}

bool IsNoSuchImage(std::string_view message) { return MentionsAny(message, {"no such image"}); }

std::string RegistryAuthHeader(const RegistryAuth& auth, const std::string& registry) {
  if (auth.empty()) return "";
  nlohmann::json j;
  if (!auth.identity_token.empty()) {
    j["identitytoken"] = auth.identity_token;
  } else {
    j["username"] = auth.username;
    j["password"] = auth.password;
  }
  j["serveraddress"] = registry;
  const std::string text = j.dump();
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((text.size() + 2) / 3 * 4);
  for (size_t i = 0; i < text.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(text[i])) << 16;
    if (i + 1 < text.size())
      n |= static_cast<uint32_t>(static_cast<unsigned char>(text[i + 1])) << 8;
    if (i + 2 < text.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(text[i + 2]));
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < text.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < text.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

}  // namespace taolie::docker
