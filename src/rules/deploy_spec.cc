#include "rules/deploy_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/json_bounds.h"
#include "domain/image_reference.h"

namespace taolie::rules {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxIdLength = 128;
constexpr size_t kMaxTextFieldBytes = 255;  // template_id, user_id, container_name
constexpr size_t kMaxSshKeyBytes = 16 * 1024;
constexpr size_t kMaxRegistryAuthBytes = 8 * 1024;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxGpuUuidLength = 128;
constexpr size_t kMaxTerminateIdBytes = 256;
constexpr size_t kMaxReasonBytes = 1024;
constexpr int64_t kMaxSizeMb = int64_t{1} << 32;  // 4 PiB: keeps byte counts inside int64
constexpr double kMaxCpuLimit = 1'000'000;

Error Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }
bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return IsControl(static_cast<unsigned char>(c)); });
}

// Quotes user text for an error message: bounded, control characters escaped.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (IsControl(c)) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

const char* TypeName(const Json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// ---- scalar readers ----------------------------------------------------------------------

bool ParseIntString(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  size_t i = s.front() == '-' ? 1 : 0;
  if (i == s.size()) return false;
  if (!std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(), IsDigit)) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// An integer: a JSON integer, an integer-valued JSON number, or a decimal-integer string.
Result<int64_t> ReadInteger(const Json& v, std::string_view field) {
  std::string f(field);
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(f + ": " + std::to_string(u) + " is out of range");
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) {
      return Invalid(f + ": must be a whole number, got " + v.dump());
    }
    if (std::fabs(d) > 9.0e15) return Invalid(f + ": " + v.dump() + " is out of range");
    return static_cast<int64_t>(d);
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    int64_t n = 0;
    if (!ParseIntString(s, &n)) return Invalid(f + ": " + Quote(s) + " is not a whole number");
    return n;
  }
  return Invalid(f + ": must be a whole number, got " + TypeName(v));
}

Result<int> ReadIntInRange(const Json& v, std::string_view field, int64_t lo, int64_t hi,
                           std::string_view what = "") {
  auto n = ReadInteger(v, field);
  if (!n.ok()) return n.error();
  std::string prefix = std::string(field) + ": " + std::string(what);
  if (*n < lo) {
    return Invalid(prefix + std::to_string(*n) + " is below the minimum " + std::to_string(lo));
  }
  if (*n > hi) {
    return Invalid(prefix + std::to_string(*n) + " is above the maximum " + std::to_string(hi));
  }
  return static_cast<int>(*n);
}

// A number: a JSON number or a decimal string ("1.50").
Result<double> ReadNumber(const Json& v, std::string_view field) {
  std::string f(field);
  double d = 0;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    bool shape_ok = !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
      return IsDigit(c) || c == '.' || c == '-';
    });
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (!shape_ok || ec != std::errc() || ptr != s.data() + s.size()) {
      return Invalid(f + ": " + Quote(s) + " is not a number");
    }
  } else {
    return Invalid(f + ": must be a number, got " + TypeName(v));
  }
  if (!std::isfinite(d)) return Invalid(f + ": must be a finite number");
  return d;
}

std::string FormatNumber(double d) {
  Json j = d;
  return j.dump();
}

// A bounded, single-line text field. Integers are accepted and converted (ids often are).
Result<std::string> ReadText(const Json& v, std::string_view field, size_t max_bytes,
                             bool allow_integer) {
  std::string f(field);
  std::string s;
  if (v.is_string()) {
    s = v.get<std::string>();
  } else if (allow_integer && (v.is_number_integer() || v.is_number_unsigned())) {
    s = v.dump();
  } else {
    return Invalid(f + ": must be a string, got " + TypeName(v));
  }
  if (s.size() > max_bytes) {
    return Invalid(f + ": is longer than " + std::to_string(max_bytes) + " bytes");
  }
  if (HasControl(s)) return Invalid(f + ": must not contain control characters");
  return s;
}

// ---- paths -------------------------------------------------------------------------------

// Absolute, normalised path: starts with '/', no empty, "." or ".." components, no trailing
// '/', no ':' or ',' (they split Docker bind and mount strings), no control characters.
// "/" itself is accepted here; callers decide about it.
std::string PathProblem(std::string_view p) {
  if (p.empty() || p.front() != '/') return "must be an absolute path";
  if (p.size() > kMaxPathBytes) return "is too long";
  if (HasControl(p)) return "must not contain control characters";
  if (p.find_first_of(":,") != std::string_view::npos) return "must not contain ':' or ','";
  if (p == "/") return "";
  if (p.back() == '/') return "must not end with '/'";
  size_t start = 1;
  while (true) {
    size_t slash = p.find('/', start);
    std::string_view comp =
        p.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (comp.empty()) return "must not contain '//'";
    if (comp == "." || comp == "..") return "must not contain '.' or '..' components";
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return "";
}

// Component-wise: "/data" is under "/data" and "/data/x", not "/database". Root "/" covers all.
bool IsUnder(std::string_view path, std::string_view root) {
  if (root == "/") return true;
  if (path.size() < root.size() || path.substr(0, root.size()) != root) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

std::string NormaliseRoot(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root;
}

// ---- fields ------------------------------------------------------------------------------

const Json* Field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Status ParsePorts(const Json& v, const ValidationLimits& limits, DeploySpec* spec) {
  if (!v.is_object()) return Invalid(std::string("ports: must be an object, got ") + TypeName(v));
  if (v.size() > static_cast<size_t>(std::max(limits.max_ports, 0))) {
    return Invalid("ports: " + std::to_string(v.size()) + " ports requested, at most " +
                   std::to_string(limits.max_ports) + " allowed");
  }
  std::set<int> seen;
  for (auto it = v.begin(); it != v.end(); ++it) {
    int64_t host = 0;
    if (!ParseIntString(it.key(), &host) || host < 1 || host > 65535) {
      return Invalid("ports: advertised host port " + Quote(it.key()) + " is not a number 1-65535");
    }
    auto container = ReadInteger(it.value(), "ports");
    if (!container.ok()) {
      return Invalid("ports: container port for " + Quote(it.key()) + " must be a whole number");
    }
    if (*container < 1 || *container > 65535) {
      return Invalid("ports: container port " + std::to_string(*container) +
                     " is out of range 1-65535");
    }
    if (!seen.insert(static_cast<int>(*container)).second) {
      return Invalid("ports: container port " + std::to_string(*container) +
                     " is listed more than once");
    }
    spec->ports.push_back({static_cast<int>(host), static_cast<int>(*container)});
  }
  return OkStatus();
}

Status ParseEnvironment(const Json& v, const ValidationLimits& limits, DeploySpec* spec) {
  if (!v.is_object()) {
    return Invalid(std::string("environment: must be an object, got ") + TypeName(v));
  }
  if (v.size() > limits.max_env_vars) {
    return Invalid("environment: " + std::to_string(v.size()) + " variables, at most " +
                   std::to_string(limits.max_env_vars) + " allowed");
  }
  const auto& reserved = ReservedEnvNames();
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& name = it.key();
    if (!IsValidEnvName(name)) return Invalid("environment: invalid name " + Quote(name));
    if (IsRefusedNvidiaEnv(name)) {
      return Invalid("environment: " + Quote(name) +
                     " is not allowed: NVIDIA_* variables are the agent's (the rental's GPUs, "
                     "driver capabilities and the NVIDIA container toolkit's device features); "
                     "only NVIDIA_DISABLE_REQUIRE and NVIDIA_REQUIRE_* may be set");
    }
    const Json& val = it.value();
    std::string value;
    if (val.is_string()) {
      value = val.get<std::string>();
    } else if (val.is_boolean()) {
      value = val.get<bool>() ? "true" : "false";
    } else if (val.is_number()) {
      value = val.dump();
    } else {
      return Invalid("environment: value of " + Quote(name) +
                     " must be a string, number or boolean, got " + TypeName(val));
    }
    if (value.size() > limits.max_env_value_bytes) {
      return Invalid("environment: value of " + Quote(name) + " is longer than " +
                     std::to_string(limits.max_env_value_bytes) + " bytes");
    }
    if (value.find('\0') != std::string::npos) {
      return Invalid("environment: value of " + Quote(name) + " contains a NUL byte");
    }
    if (name == "SSH_USERNAME") {
      if (IsValidUserName(value)) spec->ssh_username = value;
      continue;
    }
    if (std::find(reserved.begin(), reserved.end(), name) != reserved.end()) continue;
    spec->env.emplace_back(name, std::move(value));
  }
  std::sort(spec->env.begin(), spec->env.end());
  return OkStatus();
}

Status ParseVolumes(const Json& v, const ValidationLimits& limits, DeploySpec* spec) {
  if (!v.is_object()) return Invalid(std::string("volumes: must be an object, got ") + TypeName(v));
  if (v.empty()) return OkStatus();
  std::vector<std::string> roots;
  for (const auto& r : limits.allowed_volume_roots) {
    std::string root = NormaliseRoot(r);
    if (PathProblem(root).empty()) roots.push_back(std::move(root));
  }
  if (roots.empty()) {
    return Invalid(
        "volumes: host volumes are disabled on this host (deployment.allowed_volume_roots is "
        "empty)");
  }
  std::set<std::string> container_paths;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& host = it.key();
    if (auto problem = PathProblem(host); !problem.empty()) {
      return Invalid("volumes: host path " + Quote(host) + " " + problem);
    }
    bool allowed = host != "/" && std::any_of(roots.begin(), roots.end(),
                                              [&](const auto& r) { return IsUnder(host, r); });
    if (!allowed) {
      return Invalid("volumes: host path " + Quote(host) + " is not under an allowed root");
    }
    if (!it.value().is_string()) {
      return Invalid("volumes: container path for " + Quote(host) + " must be a string, got " +
                     TypeName(it.value()));
    }
    const auto& target = it.value().get_ref<const std::string&>();
    if (auto problem = PathProblem(target); !problem.empty()) {
      return Invalid("volumes: container path " + Quote(target) + " " + problem);
    }
    bool forbidden = target == "/" || target == "/etc" || IsUnder(target, "/proc") ||
                     IsUnder(target, "/sys") || IsUnder(target, "/dev");
    if (forbidden) {
      return Invalid("volumes: container path " + Quote(target) + " is not allowed");
    }
    if (IsNvidiaDeviceMountTarget(target)) {
      return Invalid("volumes: container path " + Quote(target) +
                     " is not allowed: the NVIDIA container toolkit reads GPU and device "
                     "requests from mounts under /var/run/nvidia-container-devices");
    }
    if (!container_paths.insert(target).second) {
      return Invalid("volumes: container path " + Quote(target) + " is used more than once");
    }
    spec->volumes.emplace_back(host, target);
  }
  return OkStatus();
}

Status ParseGpus(const Json& obj, const ValidationLimits& limits, DeploySpec* spec) {
  std::optional<int> count;
  if (const Json* v = Field(obj, "gpu_count")) {
    auto n = ReadIntInRange(*v, "gpu_count", 0, limits.max_gpus);
    if (!n.ok()) return n.error();
    count = *n;
    spec->gpu_count = *n;
  }
  const Json* v = Field(obj, "gpu_uuids");
  if (v == nullptr) return OkStatus();
  if (!v->is_array())
    return Invalid(std::string("gpu_uuids: must be an array, got ") + TypeName(*v));
  if (v->empty()) return OkStatus();
  if (v->size() > static_cast<size_t>(std::max(limits.max_gpus, 0))) {
    return Invalid("gpu_uuids: " + std::to_string(v->size()) + " GPUs requested, at most " +
                   std::to_string(limits.max_gpus) + " allowed");
  }
  std::set<std::string> seen;
  for (const auto& e : *v) {
    if (!e.is_string())
      return Invalid(std::string("gpu_uuids: entries must be strings, got ") + TypeName(e));
    const auto& s = e.get_ref<const std::string&>();
    std::string_view rest;
    if (s.rfind("GPU-", 0) == 0 || s.rfind("MIG-", 0) == 0) rest = std::string_view(s).substr(4);
    bool ok = !rest.empty() && s.size() <= kMaxGpuUuidLength &&
              std::all_of(rest.begin(), rest.end(), [](char c) { return IsAlnum(c) || c == '-'; });
    if (!ok) return Invalid("gpu_uuids: " + Quote(s) + " is not a GPU or MIG UUID");
    if (!seen.insert(s).second) return Invalid("gpu_uuids: " + Quote(s) + " is listed twice");
    spec->gpu_uuids.push_back(s);
  }
  int n = static_cast<int>(spec->gpu_uuids.size());
  if (count && *count != n) {
    return Invalid("gpu_count: " + std::to_string(*count) + " does not match the " +
                   std::to_string(n) + " entries of gpu_uuids");
  }
  spec->gpu_count = n;
  return OkStatus();
}

Result<std::string> ReadSshKey(const Json& v) {
  if (!v.is_string())
    return Invalid(std::string("ssh_public_key: must be a string, got ") + TypeName(v));
  std::string s = v.get<std::string>();
  if (s.size() > kMaxSshKeyBytes) return Invalid("ssh_public_key: is longer than 16384 bytes");
  size_t keys = 0;
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    std::string_view line(s.data() + start, (nl == std::string::npos ? s.size() : nl) - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (HasControl(line)) return Invalid("ssh_public_key: must not contain control characters");
    if (!line.empty() && line.front() != '#') {
      bool key =
          line.rfind("ssh-", 0) == 0 || line.rfind("ecdsa-", 0) == 0 || line.rfind("sk-", 0) == 0;
      if (!key) {
        return Invalid("ssh_public_key: line " + Quote(line.substr(0, 20)) +
                       " is not an OpenSSH public key (ssh-*, ecdsa-*, sk-*)");
      }
      ++keys;
    }
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  if (keys == 0) return Invalid("ssh_public_key: contains no key");
  return s;
}

// registry_auth: {username, password} or {identitytoken}; bounded strings without control
// characters. Messages never quote the values.
Result<RegistryCredentials> ReadRegistryAuth(const Json& v) {
  if (!v.is_object()) {
    return Invalid(std::string("registry_auth: must be an object, got ") + TypeName(v));
  }
  RegistryCredentials c;
  for (const auto& [key, value] : v.items()) {
    std::string* out = key == "username"        ? &c.username
                       : key == "password"      ? &c.password
                       : key == "identitytoken" ? &c.identity_token
                                                : nullptr;
    if (out == nullptr) {
      return Invalid("registry_auth: unknown key " + Quote(key) +
                     " (username and password, or identitytoken)");
    }
    if (!value.is_string()) {
      return Invalid("registry_auth." + key + ": must be a string, got " + TypeName(value));
    }
    *out = value.get<std::string>();
    if (out->empty() || out->size() > kMaxRegistryAuthBytes || HasControl(*out)) {
      return Invalid("registry_auth." + key + ": must be 1 to " +
                     std::to_string(kMaxRegistryAuthBytes) + " bytes without control characters");
    }
  }
  const bool basic = !c.username.empty() || !c.password.empty();
  if (basic == !c.identity_token.empty()) {
    return Invalid("registry_auth: give username and password, or identitytoken");
  }
  if (basic && (c.username.empty() || c.password.empty())) {
    return Invalid("registry_auth: username and password go together");
  }
  return c;
}

Result<int64_t> ReadPositiveMb(const Json& v, const char* field) {
  auto n = ReadInteger(v, field);
  if (!n.ok()) return n.error();
  if (*n < 1) return Invalid(std::string(field) + ": must be a positive whole number of MiB");
  if (*n > kMaxSizeMb)
    return Invalid(std::string(field) + ": " + std::to_string(*n) + " is out of range");
  return *n;
}

Result<DeploySpec> ParseDeployObject(const std::string& command_id, const Json& obj,
                                     const ValidationLimits& limits) {
  if (!obj.is_object())
    return Invalid(std::string("payload: must be a JSON object, got ") + TypeName(obj));
  DeploySpec spec;
  spec.command_id = command_id;

  if (const Json* v = Field(obj, "deployment_id")) {
    auto id = ReadText(*v, "deployment_id", kMaxIdLength, /*allow_integer=*/true);
    if (!id.ok()) return id.error();
    if (!IsValidDeploymentId(*id)) {
      return Invalid("deployment_id: " + Quote(*id) +
                     " must match [A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
    }
    spec.deployment_id = *id;
  } else {
    if (!IsValidDeploymentId(command_id)) {
      return Invalid("command_id: " + Quote(command_id) +
                     " cannot be used as the deployment id: it must match "
                     "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
    }
    spec.deployment_id = command_id;
  }

  const Json* tmpl = Field(obj, "template_id");
  const char* tmpl_field = "template_id";
  if (tmpl == nullptr) {
    tmpl = Field(obj, "template_type");
    tmpl_field = "template_type";
  }
  if (tmpl != nullptr) {
    auto t = ReadText(*tmpl, tmpl_field, kMaxTextFieldBytes, /*allow_integer=*/true);
    if (!t.ok()) return t.error();
    if (!t->empty()) spec.template_id = *t;
  }
  if (const Json* v = Field(obj, "user_id")) {
    auto t = ReadText(*v, "user_id", kMaxTextFieldBytes, /*allow_integer=*/true);
    if (!t.ok()) return t.error();
    if (!t->empty()) spec.user_id = *t;
  }
  if (const Json* v = Field(obj, "container_name")) {
    auto t = ReadText(*v, "container_name", kMaxTextFieldBytes, /*allow_integer=*/false);
    if (!t.ok()) return t.error();
    spec.container_name_hint = *t;
  }
  if (const Json* v = Field(obj, "image")) {
    if (!v->is_string())
      return Invalid(std::string("image: must be a string, got ") + TypeName(*v));
    const auto& image = v->get_ref<const std::string&>();
    if (auto ref = domain::ParseImageReference(image); !ref.ok()) {
      return Invalid("image: " + ref.error().message);
    }
    spec.image = image;
  }
  if (const Json* v = Field(obj, "restart_policy")) {
    if (!v->is_string()) {
      return Invalid(std::string("restart_policy: must be a string, got ") + TypeName(*v));
    }
    const auto& p = v->get_ref<const std::string&>();
    if (p != "no" && p != "on-failure" && p != "unless-stopped" && p != "always") {
      return Invalid("restart_policy: " + Quote(p) +
                     " is not one of no, on-failure, unless-stopped, always");
    }
    spec.restart_policy = p;
  }
  if (const Json* v = Field(obj, "duration_minutes")) {
    auto d = ReadIntInRange(*v, "duration_minutes", 1, limits.max_duration_minutes);
    if (!d.ok()) return d.error();
    spec.duration_minutes = *d;
  }
  if (const Json* v = Field(obj, "ports")) TAOLIE_RETURN_IF_ERROR(ParsePorts(*v, limits, &spec));
  if (const Json* v = Field(obj, "environment")) {
    TAOLIE_RETURN_IF_ERROR(ParseEnvironment(*v, limits, &spec));
  }
  if (const Json* v = Field(obj, "volumes"))
    TAOLIE_RETURN_IF_ERROR(ParseVolumes(*v, limits, &spec));
  if (const Json* v = Field(obj, "command")) {
    if (!v->is_string())
      return Invalid(std::string("command: must be a string, got ") + TypeName(*v));
    const auto& c = v->get_ref<const std::string&>();
    if (c.size() > limits.max_command_bytes) {
      return Invalid("command: is longer than " + std::to_string(limits.max_command_bytes) +
                     " bytes");
    }
    if (c.find('\0') != std::string::npos) return Invalid("command: contains a NUL byte");
    bool blank = std::all_of(c.begin(), c.end(), [](char ch) { return ch == ' ' || ch == '\t'; });
    if (!blank) spec.command = c;  // "" means: the image's own command
  }
  TAOLIE_RETURN_IF_ERROR(ParseGpus(obj, limits, &spec));
  if (const Json* v = Field(obj, "memory_limit_mb")) {
    auto n = ReadPositiveMb(*v, "memory_limit_mb");
    if (!n.ok()) return n.error();
    spec.memory_limit_mb = *n;
  }
  if (const Json* v = Field(obj, "shm_size_mb")) {
    auto n = ReadPositiveMb(*v, "shm_size_mb");
    if (!n.ok()) return n.error();
    spec.shm_size_mb = *n;
  }
  if (const Json* v = Field(obj, "cpu_limit")) {
    auto d = ReadNumber(*v, "cpu_limit");
    if (!d.ok()) return d.error();
    if (*d <= 0) return Invalid("cpu_limit: must be a positive number of cores");
    if (*d > kMaxCpuLimit) return Invalid("cpu_limit: " + FormatNumber(*d) + " is out of range");
    spec.cpu_limit = *d;
  }
  if (const Json* v = Field(obj, "disk_mb")) {
    auto n = ReadPositiveMb(*v, "disk_mb");
    if (!n.ok()) return n.error();
    if (limits.max_disk_mb > 0 && *n > limits.max_disk_mb) {
      return Invalid("disk_mb: " + std::to_string(*n) + " exceeds this host's disk quota of " +
                     std::to_string(limits.max_disk_mb) + " MiB");
    }
    spec.disk_mb = *n;
  }
  if (const Json* v = Field(obj, "registry_auth")) {
    auto a = ReadRegistryAuth(*v);
    if (!a.ok()) return a.error();
    spec.registry_auth = std::move(*a);
  }
  if (const Json* v = Field(obj, "ssh_public_key")) {
    auto k = ReadSshKey(*v);
    if (!k.ok()) return k.error();
    spec.ssh_public_key = *k;
  }
  if (const Json* v = Field(obj, "price_per_hour")) {
    auto d = ReadNumber(*v, "price_per_hour");
    if (!d.ok()) return d.error();
    if (*d < 0) return Invalid("price_per_hour: must not be negative");
    spec.price_per_hour = *d;
  }
  return spec;
}

// ---- persisted form ----------------------------------------------------------------------

template <typename T>
Status Get(const Json& obj, const char* key, T* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Invalid(std::string("spec: missing '") + key + "'");
  try {
    *out = it->template get<T>();
  } catch (const std::exception&) {
    return Invalid(std::string("spec: '") + key + "' has the wrong type");
  }
  return OkStatus();
}

template <typename T>
Status GetOptional(const Json& obj, const char* key, std::optional<T>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    out->reset();
    return OkStatus();
  }
  T value{};
  TAOLIE_RETURN_IF_ERROR(Get(obj, key, &value));
  *out = std::move(value);
  return OkStatus();
}

}  // namespace

ValidationLimits ValidationLimitsFromConfig(const config::DeploymentConfig& cfg, int max_gpus) {
  ValidationLimits limits;
  limits.max_duration_minutes = cfg.max_duration_minutes;
  limits.max_ports = cfg.max_ports;
  limits.allowed_volume_roots = cfg.allowed_volume_roots;
  limits.max_gpus = max_gpus;
  return limits;
}

const std::vector<std::string>& ReservedEnvNames() {
  static const std::vector<std::string> kNames = {"DEPLOYMENT_ID", "SSH_PASSWORD",
                                                  "JUPYTER_TOKEN", "DEPLOYMENT_EXPIRES_AT",
                                                  "SSH_USERNAME",  "AUTHORIZED_KEYS"};
  return kNames;
}

bool IsRefusedNvidiaEnv(std::string_view name) {
  if (!name.starts_with("NVIDIA_")) return false;
  return name != "NVIDIA_DISABLE_REQUIRE" && !name.starts_with("NVIDIA_REQUIRE_");
}

bool IsNvidiaDeviceMountTarget(std::string_view container_path) {
  // Lexical normalisation (as Go's filepath.Clean, rooted at "/"): no symlink is followed,
  // since the toolkit compares the mount's destination text, not what it resolves to.
  std::vector<std::string_view> parts;
  for (size_t start = 0; start <= container_path.size();) {
    size_t slash = container_path.find('/', start);
    if (slash == std::string_view::npos) slash = container_path.size();
    std::string_view comp = container_path.substr(start, slash - start);
    if (comp == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!comp.empty() && comp != ".") {
      parts.push_back(comp);
    }
    start = slash + 1;
  }
  std::string path;
  for (auto comp : parts) {
    path += '/';
    path += comp;
  }
  if (path.empty()) path = "/";
  return path.starts_with("/var/run/nvidia-container-devices") ||
         path.starts_with("/run/nvidia-container-devices");
}

bool IsValidEnvName(std::string_view name) {
  if (name.empty() || !(IsAlpha(name.front()) || name.front() == '_')) return false;
  return std::all_of(name.begin(), name.end(), IsWordChar);
}

bool IsValidUserName(std::string_view name) {
  if (name.empty() || name.size() > 32 || name == "root") return false;
  if (!((name.front() >= 'a' && name.front() <= 'z') || name.front() == '_')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '_' || c == '-'; });
}

bool IsValidDeploymentId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || !IsAlnum(id.front())) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return IsWordChar(c) || c == '.' || c == '-'; });
}

Result<DeploySpec> ParseDeployPayload(const std::string& command_id,
                                      const std::string& payload_json,
                                      const ValidationLimits& limits) {
  try {
    // Bounded before the tree is built: the validation walks, copies and dumps parts of it.
    // (nlohmann's acceptor is iterative and builds nothing.)
    if (!Json::accept(payload_json)) return Invalid("payload: is not valid JSON");
    if (Status bounds = CheckJsonBounds(payload_json); !bounds.ok()) {
      return Invalid("payload: " + bounds.error().message);
    }
    Json obj = Json::parse(payload_json, nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) return Invalid("payload: is not valid JSON");
    return ParseDeployObject(command_id, obj, limits);
  } catch (const std::exception& e) {
    return Invalid(std::string("payload: ") + e.what());
  }
}

std::string SpecToJson(const DeploySpec& spec) {
  Json j;
  j["version"] = 1;
  j["deployment_id"] = spec.deployment_id;
  j["command_id"] = spec.command_id;
  j["template_id"] = spec.template_id;
  j["user_id"] = spec.user_id;
  j["image"] = spec.image;
  j["container_name_hint"] = spec.container_name_hint;
  j["restart_policy"] = spec.restart_policy;
  j["duration_minutes"] = spec.duration_minutes;
  Json ports = Json::array();
  for (const auto& p : spec.ports) {
    ports.push_back(
        {{"advertised_host_port", p.advertised_host_port}, {"container_port", p.container_port}});
  }
  j["ports"] = std::move(ports);
  Json env = Json::array();
  for (const auto& [k, v] : spec.env) env.push_back(Json::array({k, v}));
  j["env"] = std::move(env);
  Json volumes = Json::array();
  for (const auto& [h, c] : spec.volumes) volumes.push_back(Json::array({h, c}));
  j["volumes"] = std::move(volumes);
  j["command"] = spec.command ? Json(*spec.command) : Json(nullptr);
  j["gpu_count"] = spec.gpu_count;
  j["gpu_uuids"] = spec.gpu_uuids;
  j["memory_limit_mb"] = spec.memory_limit_mb ? Json(*spec.memory_limit_mb) : Json(nullptr);
  j["cpu_limit"] = spec.cpu_limit ? Json(*spec.cpu_limit) : Json(nullptr);
  j["shm_size_mb"] = spec.shm_size_mb ? Json(*spec.shm_size_mb) : Json(nullptr);
  j["ssh_public_key"] = spec.ssh_public_key ? Json(*spec.ssh_public_key) : Json(nullptr);
  j["price_per_hour"] = spec.price_per_hour ? Json(*spec.price_per_hour) : Json(nullptr);
  j["ssh_username"] = spec.ssh_username;
  j["disk_mb"] = spec.disk_mb ? Json(*spec.disk_mb) : Json(nullptr);
  j["admitted"] = {{"memory_bytes", spec.admitted_memory_bytes},
                   {"nano_cpus", spec.admitted_nano_cpus},
                   {"disk_mb", spec.admitted_disk_mb}};
  // Strings here were validated as UTF-8 by the parser; replace defensively rather than throw.
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

Result<DeploySpec> SpecFromJson(const std::string& json_text) {
  try {
    Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Invalid("spec: is not a JSON object");
    int version = 0;
    TAOLIE_RETURN_IF_ERROR(Get(j, "version", &version));
    if (version != 1) return Invalid("spec: unsupported version " + std::to_string(version));
    DeploySpec s;
    TAOLIE_RETURN_IF_ERROR(Get(j, "deployment_id", &s.deployment_id));
    TAOLIE_RETURN_IF_ERROR(Get(j, "command_id", &s.command_id));
    TAOLIE_RETURN_IF_ERROR(Get(j, "template_id", &s.template_id));
    TAOLIE_RETURN_IF_ERROR(Get(j, "user_id", &s.user_id));
    TAOLIE_RETURN_IF_ERROR(Get(j, "image", &s.image));
    TAOLIE_RETURN_IF_ERROR(Get(j, "container_name_hint", &s.container_name_hint));
    TAOLIE_RETURN_IF_ERROR(Get(j, "restart_policy", &s.restart_policy));
    TAOLIE_RETURN_IF_ERROR(Get(j, "duration_minutes", &s.duration_minutes));
    const auto& ports = j.at("ports");
    if (!ports.is_array()) return Invalid("spec: 'ports' must be an array");
    for (const auto& p : ports) {
      if (!p.is_object()) return Invalid("spec: 'ports' entries must be objects");
      DeploySpec::Port port;
      TAOLIE_RETURN_IF_ERROR(Get(p, "advertised_host_port", &port.advertised_host_port));
      TAOLIE_RETURN_IF_ERROR(Get(p, "container_port", &port.container_port));
      s.ports.push_back(port);
    }
    TAOLIE_RETURN_IF_ERROR(Get(j, "env", &s.env));
    TAOLIE_RETURN_IF_ERROR(Get(j, "volumes", &s.volumes));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "command", &s.command));
    TAOLIE_RETURN_IF_ERROR(Get(j, "gpu_count", &s.gpu_count));
    TAOLIE_RETURN_IF_ERROR(Get(j, "gpu_uuids", &s.gpu_uuids));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "memory_limit_mb", &s.memory_limit_mb));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "cpu_limit", &s.cpu_limit));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "shm_size_mb", &s.shm_size_mb));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "ssh_public_key", &s.ssh_public_key));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "price_per_hour", &s.price_per_hour));
    TAOLIE_RETURN_IF_ERROR(Get(j, "ssh_username", &s.ssh_username));
    TAOLIE_RETURN_IF_ERROR(GetOptional(j, "disk_mb", &s.disk_mb));
    if (auto it = j.find("admitted"); it != j.end()) {  // absent in rows from before
      TAOLIE_RETURN_IF_ERROR(Get(*it, "memory_bytes", &s.admitted_memory_bytes));
      TAOLIE_RETURN_IF_ERROR(Get(*it, "nano_cpus", &s.admitted_nano_cpus));
      TAOLIE_RETURN_IF_ERROR(Get(*it, "disk_mb", &s.admitted_disk_mb));
    }
    return s;
  } catch (const std::exception& e) {
    return Invalid(std::string("spec: ") + e.what());
  }
}

Result<TerminateSpec> ParseTerminatePayload(const std::string& payload_json) {
  try {
    if (!Json::accept(payload_json)) return Invalid("payload: is not valid JSON");
    if (Status bounds = CheckJsonBounds(payload_json); !bounds.ok()) {
      return Invalid("payload: " + bounds.error().message);
    }
    Json obj = Json::parse(payload_json, nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) return Invalid("payload: is not valid JSON");
    if (!obj.is_object()) {
      return Invalid(std::string("payload: must be a JSON object, got ") + TypeName(obj));
    }
    const Json* id = Field(obj, "deployment_id");
    if (id == nullptr) return Invalid("deployment_id: is required");
    auto text = ReadText(*id, "deployment_id", kMaxTerminateIdBytes, /*allow_integer=*/true);
    if (!text.ok()) return text.error();
    if (text->empty()) return Invalid("deployment_id: must not be empty");
    TerminateSpec spec;
    spec.deployment_id = *text;
    if (const Json* r = Field(obj, "reason")) {
      std::string reason;
      if (r->is_string()) {
        reason = r->get<std::string>();
      } else if (r->is_primitive()) {
        reason = r->dump();
      }  // arrays/objects: keep the default reason
      for (char& c : reason) {
        if (IsControl(static_cast<unsigned char>(c))) c = ' ';
      }
      if (reason.size() > kMaxReasonBytes) {
        size_t cut = kMaxReasonBytes;
        // Do not split a UTF-8 sequence: back up over continuation bytes.
        while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
        reason.resize(cut);
      }
      if (!reason.empty()) spec.reason = std::move(reason);
    }
    return spec;
  } catch (const std::exception& e) {
    return Invalid(std::string("payload: ") + e.what());
  }
}

}  // namespace taolie::rules
