#include "doctor/doctor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "common/secrets.h"
#include "docker/engine_docker_client.h"
#include "engine/container_spec.h"  // kLabelManaged
#include "gpu/nvml_gpu_probe.h"
#include "health/gpu_source.h"
#include "platform/https_platform_api.h"
#include "store/conninfo.h"
#include "store/managed_postgres.h"

namespace taolie::doctor {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

Check Make(std::string name, Level level, std::string message, std::string fix = "") {
  return Check{std::move(name), level, std::move(message), std::move(fix)};
}

std::string Gb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// `text` with every occurrence of `secret` replaced (libpq's messages never quote the password,
// but a message is shown to people: make sure).
std::string Redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "***");
    at += 3;
  }
  return text;
}

// The first line of `text`, at most `max` characters.
std::string FirstLine(const std::string& text, size_t max = 200) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > max) line = line.substr(0, max) + "...";
  return line;
}

bool Contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

// `path`, or its nearest existing ancestor (data_dir may not exist before the first start).
std::string ExistingAncestor(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) p = path;
  while (!p.empty() && !fs::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return p.empty() ? std::string("/") : p.string();
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kOk:
      return "OK";
    case Level::kWarn:
      return "WARN";
    case Level::kFail:
      return "FAIL";
  }
  return "?";
}

std::string FormatLine(const Check& check) {
  char head[64];
  std::snprintf(head, sizeof(head), "%-4s %-16s ", std::string(LevelName(check.level)).c_str(),
                check.name.c_str());
  std::string line = head + check.message;
  if (!check.fix.empty()) line += " -- fix: " + check.fix;
  std::replace(line.begin(), line.end(), '\n', ' ');
  return line;
}

Level Verdict(const std::vector<Check>& checks) {
  Level worst = Level::kOk;
  for (const auto& c : checks) worst = std::max(worst, c.level);
  return worst;
}

int ExitCode(const std::vector<Check>& checks) { return Verdict(checks) == Level::kFail ? 1 : 0; }

std::string FormatJson(const std::vector<Check>& checks) {
  json list = json::array();
  for (const auto& c : checks) {
    list.push_back(json{{"name", c.name},
                        {"level", std::string(LevelName(c.level))},
                        {"message", c.message},
                        {"fix", c.fix}});
  }
  json out = {{"verdict", std::string(LevelName(Verdict(checks)))},
              {"exit_code", ExitCode(checks)},
              {"checks", std::move(list)}};
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

// ---- config ---------------------------------------------------------------------------------

Check CheckConfig(const config::LoadResult& loaded) {
  auto problems = loaded.problems;
  auto run = config::ValidateForRun(loaded.config);
  problems.insert(problems.end(), run.begin(), run.end());
  std::vector<std::string> fatal, warnings;
  for (const auto& p : problems) (p.fatal ? fatal : warnings).push_back(config::FormatProblem(p));
  const std::string file =
      loaded.config.config_file.empty() ? "the config" : loaded.config.config_file;
  if (!fatal.empty()) {
    return Make("config", Level::kFail,
                std::to_string(fatal.size()) + " error(s) in " + file + ": " + Join(fatal, "; "),
                "correct these keys (taolie-host-agent check-config lists every problem; "
                "docs/configuration.md describes each key)");
  }
  if (!warnings.empty()) {
    return Make("config", Level::kWarn,
                file + " loads, with " + std::to_string(warnings.size()) +
                    " warning(s): " + Join(warnings, "; "),
                "see docs/configuration.md for these keys");
  }
  return Make("config", Level::kOk, file + " loads and validates");
}

// ---- NVIDIA driver and NVML -----------------------------------------------------------------

Check CheckNvml(const config::Config& cfg, Environment& env, Findings& found) {
  auto probe = env.open_nvml(cfg.gpu);
  const bool driver = env.nvidia_driver_present();
  if (!probe->Available()) {
    const std::string reason = probe->UnavailableReason();
    std::string tool;
    auto fallback = driver && env.open_fallback ? env.open_fallback(cfg.gpu, &tool) : nullptr;
    if (fallback && fallback->Available()) {
      auto listed = fallback->ListGpus();
      if (listed.ok()) {
        for (const auto& g : *listed) found.gpu_uuids.push_back(g.uuid);
        found.nvml_ok = true;
        return Make("nvml", Level::kWarn,
                    "NVML (" + cfg.gpu.nvml_library + ") cannot be used: " + reason +
                        "; the agent reads " + std::to_string(listed->size()) + " GPU(s) through " +
                        tool +
                        " instead (no XID events, thresholds or energy: "
                        "docs/nvidia-smi-fallback.md)",
                    "install the NVML library of the loaded driver's version "
                    "(libnvidia-ml.so.1), or point gpu.nvml_library at it");
      }
    }
    if (driver) {
      return Make("nvml", Level::kFail,
                  "an NVIDIA driver is loaded but NVML (" + cfg.gpu.nvml_library +
                      ") cannot be used: " + reason,
                  "install the NVML library of the loaded driver's version (libnvidia-ml.so.1, "
                  "e.g. the libnvidia-ml1 / nvidia-utils package), or point gpu.nvml_library at "
                  "it; after a driver upgrade, reboot so the kernel module and library match "
                  "(nvidia-smi must work)");
    }
    return Make("nvml", Level::kWarn,
                "CPU-only host: no GPU will be offered (no NVIDIA driver; NVML: " + reason + ")",
                "nothing to do for a CPU-only host; to offer GPUs install the NVIDIA driver "
                "(nvidia-smi must work)");
  }
  found.nvml_ok = true;
  auto gpus = probe->ListGpus();
  if (!gpus.ok()) {
    return Make("nvml", Level::kFail,
                "NVML loaded but cannot list the GPUs: " + gpus.error().message,
                "check the driver with nvidia-smi; a GPU that fell off the bus needs a reset "
                "(nvidia-smi -r) or a reboot");
  }
  std::string driver_text;
  if (auto d = probe->Driver(); d.ok()) {
    driver_text = "driver " + d->driver_version +
                  (d->cuda_version.empty() ? "" : ", CUDA " + d->cuda_version);
  } else {
    driver_text = "driver version unknown (" + d.error().message + ")";
  }
  std::map<std::string, int> names;
  for (const auto& g : *gpus) {
    found.gpu_uuids.push_back(g.uuid);
    ++names[g.name];
  }
  std::vector<std::string> kinds;
  for (const auto& [name, n] : names) kinds.push_back(std::to_string(n) + "x " + name);
  if (gpus->empty()) {
    return Make("nvml", Level::kWarn,
                "NVML loaded (" + driver_text + ") but it lists no GPU" +
                    (cfg.gpu.exclude_uuids.empty() ? "" : " (after gpu.exclude_uuids)") +
                    ": no GPU will be offered",
                "check nvidia-smi -L; gpu.exclude_uuids hides the GPUs the owner keeps");
  }
  return Make("nvml", Level::kOk,
              std::to_string(gpus->size()) + " GPU(s): " + Join(kinds, ", ") + "; " + driver_text);
}

// ---- Docker ---------------------------------------------------------------------------------

Check CheckDocker(const config::Config& cfg, Environment& env, Findings& found) {
  const std::string fix =
      "start Docker (systemctl start docker) or set docker.host to its socket "
      "(unix:///var/run/docker.sock); the agent needs access to it (it runs as root)";
  if (!env.docker) {
    return Make("docker", Level::kFail,
                "docker.host " + env.docker_address + ": " + env.docker_error, fix);
  }
  auto v = env.docker->Version();
  if (!v.ok()) {
    return Make("docker", Level::kFail,
                "cannot reach Docker at " + env.docker_address + ": " + v.error().message, fix);
  }
  found.docker = *v;
  if (auto rentals = env.docker->List({{engine::kLabelManaged, "true"}}); rentals.ok()) {
    for (const auto& c : *rentals) {
      for (const auto& p : c.ports) {
        if (p.host_port > 0) found.rental_ports.insert(p.host_port);
      }
    }
  }
  std::string msg = "Docker " + v->version + " (API " + v->api_version + ") at " +
                    env.docker_address + "; cgroup driver " +
                    (v->cgroup_driver.empty() ? "unknown" : v->cgroup_driver) + ", cgroup v" +
                    (v->cgroup_version.empty() ? "?" : v->cgroup_version) + "; data root " +
                    (v->root_dir.empty() ? "unknown" : v->root_dir);
  if (v->cgroup_version == "2" && v->cgroup_driver == "cgroupfs") {
    return Make(
        "docker", Level::kWarn, msg,
        "on cgroup v2 use the systemd cgroup driver: \"exec-opts\": "
        "[\"native.cgroupdriver=systemd\"] in /etc/docker/daemon.json, then restart Docker");
  }
  (void)cfg;
  return Make("docker", Level::kOk, msg);
}

// ---- GPU passthrough ------------------------------------------------------------------------

namespace {

// A local image to run the test container from: the first of docker.prefetch_images present,
// else the smallest tagged local image; "" when there is none. Never pulls.
std::string PickLocalImage(const config::Config& cfg, docker::DockerClient& docker) {
  for (const auto& image : cfg.docker.prefetch_images) {
    if (auto have = docker.ImageExists(image); have.ok() && *have) return image;
  }
  auto images = docker.ListImages();
  if (!images.ok()) return "";
  std::string best;
  int64_t best_size = 0;
  for (const auto& i : *images) {
    for (const auto& tag : i.repo_tags) {
      if (tag.empty() || tag == "<none>:<none>") continue;
      if (best.empty() || i.size < best_size) {
        best = tag;
        best_size = i.size;
      }
      break;
    }
  }
  return best;
}

}  // namespace

Check CheckGpuPassthrough(const config::Config& cfg, Environment& env, Findings& found) {
  const std::string name = "gpu-passthrough";
  if (found.gpu_uuids.empty()) {
    if (env.nvidia_driver_present() && !found.nvml_ok) {
      return Make(name, Level::kWarn, "skipped: no GPU (NVML failed, see the nvml line)");
    }
    return Make(name, Level::kOk, "skipped: no GPU on this host");
  }
  if (!env.docker || !found.docker) {
    return Make(name, Level::kWarn, "skipped: Docker is not reachable (see the docker line)");
  }
  docker::DockerClient& docker = *env.docker;
  const std::string image = PickLocalImage(cfg, docker);
  if (image.empty()) {
    return Make(name, Level::kWarn,
                "not tested: no image on this host to run a test container from",
                "pull a small image (docker pull busybox) or list one in docker.prefetch_images; "
                "doctor never pulls");
  }
  const std::string gpu = found.gpu_uuids.front();
  docker::ContainerSpec spec;
  auto suffix = RandomHex(8);
  spec.name = "taolie-doctor-" + (suffix.ok() ? *suffix : std::to_string(::getpid()));
  spec.image = image;
  spec.cmd = std::vector<std::string>{"true"};
  spec.restart_policy = "no";
  spec.gpu_uuids = {gpu};
  spec.network_mode = "none";
  spec.memory_bytes = int64_t{256} << 20;
  spec.labels = {{"taolie.doctor", "true"}};
  spec.env = {"NVIDIA_DRIVER_CAPABILITIES=utility"};
  const std::string toolkit_fix =
      "install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` and "
      "restart Docker (systemctl restart docker)";
  auto id = docker.Create(spec);
  if (!id.ok()) {
    return Make(name, Level::kFail,
                "cannot create a container with GPU " + gpu + " from " + image + ": " +
                    FirstLine(id.error().message),
                toolkit_fix);
  }
  Status started = docker.Start(*id);
  (void)docker.Remove(*id, /*force=*/true);
  if (!started.ok()) {
    const std::string& m = started.error().message;
    if (Contains(m, "executable file not found") || Contains(m, "no such file or directory")) {
      return Make(name, Level::kWarn,
                  "not verified: " + image + " has no `true` to run (" + FirstLine(m) + ")",
                  "list a small image with a shell (e.g. busybox) in docker.prefetch_images");
    }
    return Make(name, Level::kFail,
                "a container with GPU " + gpu + " cannot start: " + FirstLine(m), toolkit_fix);
  }
  return Make(name, Level::kOk, "a container with GPU " + gpu + " started (image " + image + ")");
}

// ---- nvidia-toolkit -------------------------------------------------------------------------

namespace {

std::string_view TrimView(std::string_view s) {
  const char* kSpace = " \t\r";
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

// A TOML key or table name, dotted parts trimmed and unquoted: `"features" . gds` -> features.gds
// (quoted parts holding a '.' are not split correctly; no toolkit key has one).
std::string NormaliseKey(std::string_view key) {
  std::string out;
  for (size_t start = 0; start <= key.size();) {
    size_t dot = key.find('.', start);
    if (dot == std::string_view::npos) dot = key.size();
    std::string_view part = TrimView(key.substr(start, dot - start));
    if (part.size() >= 2 && (part.front() == '"' || part.front() == '\'') &&
        part.back() == part.front()) {
      part = part.substr(1, part.size() - 2);
    }
    if (!out.empty()) out += '.';
    out += part;
    start = dot + 1;
  }
  return out;
}

size_t Count(std::string_view s, std::string_view what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string_view::npos; at = s.find(what, at + what.size()))
    ++n;
  return n;
}

}  // namespace

std::vector<std::string> RiskyToolkitSettings(std::string_view toml) {
  static const std::set<std::string> kRisky = {"accept-nvidia-visible-devices-as-volume-mounts",
                                               "features.gds", "features.mofed",
                                               "features.nvswitch", "features.gdrcopy"};
  std::vector<std::string> found;
  std::string table;
  std::string_view open_string;  // `"""` or `'''` while inside a multi-line string
  bool in_array = false;         // inside a multi-line array value
  for (size_t start = 0; start < toml.size();) {
    size_t end = toml.find('\n', start);
    if (end == std::string_view::npos) end = toml.size();
    std::string_view line = TrimView(toml.substr(start, end - start));
    start = end + 1;
    if (!open_string.empty()) {
      if (Count(line, open_string) % 2 == 1) open_string = {};
      continue;
    }
    if (in_array) {
      if (line.find(']') != std::string_view::npos) in_array = false;
      continue;
    }
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      const bool array_table = line.starts_with("[[");
      size_t close = line.find(array_table ? "]]" : "]");
      if (close == std::string_view::npos) continue;
      const size_t from = array_table ? 2 : 1;
      table = NormaliseKey(line.substr(from, close - from));
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key = NormaliseKey(line.substr(0, eq));
    std::string_view value = TrimView(line.substr(eq + 1));
    for (std::string_view quotes : {std::string_view("\"\"\""), std::string_view("'''")}) {
      if (value.starts_with(quotes) && Count(value, quotes) % 2 == 1) open_string = quotes;
    }
    if (value.starts_with('[') && value.find(']') == std::string_view::npos) in_array = true;
    // A boolean is the bare word, up to whitespace or a comment.
    std::string_view word = value.substr(0, value.find_first_of(" \t#"));
    if (!table.empty()) key.insert(0, table + ".");
    if (word == "true" && kRisky.count(key) > 0) found.push_back(key + " = true");
  }
  return found;
}

Check CheckNvidiaToolkit(const config::Config& /*cfg*/, Environment& env, Findings& /*found*/) {
  const std::string name = "nvidia-toolkit";
  const std::string& path = env.nvidia_toolkit_config;
  std::error_code ec;
  if (!fs::exists(path, ec) && !ec) {
    return Make(name, Level::kOk,
                "no " + path +
                    ": the toolkit's defaults (no device requests as mounts, no device feature "
                    "forced on)");
  }
  const std::string fix_read = "run doctor as root; the file must be the toolkit's config.toml";
  if (ec) return Make(name, Level::kWarn, "cannot read " + path + ": " + ec.message(), fix_read);
  if (!fs::is_regular_file(path, ec)) {
    return Make(name, Level::kWarn, "cannot read " + path + ": not a regular file", fix_read);
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    const std::string why = errno != 0 ? std::strerror(errno) : "read error";
    return Make(name, Level::kWarn, "cannot read " + path + ": " + why, fix_read);
  }
  const std::vector<std::string> risky = RiskyToolkitSettings(text.str());
  if (risky.empty()) {
    return Make(name, Level::kOk,
                path +
                    ": no device requests as mounts, no device feature (gds, mofed, "
                    "nvswitch, gdrcopy) forced on");
  }
  return Make(name, Level::kWarn,
              path + " sets " + Join(risky, ", ") +
                  ": a container can be given devices the agent did not give it (InfiniBand "
                  "devices bypass the host's firewall)",
              "in " + path +
                  " set accept-nvidia-visible-devices-as-volume-mounts = false and remove gds, "
                  "mofed, nvswitch and gdrcopy from [features] (the agent refuses rental mounts "
                  "under /var/run/nvidia-container-devices and sets NVIDIA_MOFED, "
                  "NVIDIA_NVSWITCH, NVIDIA_GDS and NVIDIA_GDRCOPY to disabled, but a feature "
                  "set here overrides a container's env)");
}

// ---- ports ----------------------------------------------------------------------------------

Check CheckPorts(const config::Config& cfg, Environment& env, Findings& found) {
  const std::string& ip =
      cfg.network.bind_ip.empty() ? std::string("0.0.0.0") : cfg.network.bind_ip;
  std::vector<std::pair<std::string, int>> ports = {
      {"ssh", cfg.network.ports.ssh},
      {"rental_port_1", cfg.network.ports.rental_port_1},
      {"rental_port_2", cfg.network.ports.rental_port_2}};
  if (cfg.network.ports.rental_port_3 > 0) {
    ports.emplace_back("rental_port_3", cfg.network.ports.rental_port_3);
  }
  const config::PortRange& range = cfg.network.port_range;
  if (!range.empty()) {
    for (int p = range.first; p <= range.last && p > 0 && p <= 65535; ++p) {
      ports.emplace_back("port_range", p);
    }
  }
  std::vector<std::string> busy;
  int first_busy = 0;
  int rentals = 0;
  for (const auto& [key, port] : ports) {
    if (port <= 0 || port > 65535) continue;
    auto used = env.port_in_use(ip, port);
    if (!used.ok()) {
      return Make("ports", Level::kFail,
                  "cannot bind on network.bind_ip " + ip + ": " + used.error().message,
                  "set network.bind_ip to an address of this host (0.0.0.0 for all)");
    }
    if (!*used) continue;
    if (found.rental_ports.count(port) > 0) {
      ++rentals;
      continue;
    }
    if (busy.empty()) first_busy = port;
    busy.push_back(std::to_string(port) + " (" + key + ")");
  }
  const std::string range_text =
      range.empty() ? "no port_range" : "port_range " + config::FormatPortRange(range);
  const std::string rental_text =
      rentals > 0 ? "; " + std::to_string(rentals) + " held by the agent's rentals" : "";
  if (!busy.empty()) {
    std::vector<std::string> shown(busy.begin(), busy.begin() + std::min<size_t>(busy.size(), 8));
    if (busy.size() > shown.size())
      shown.push_back("and " + std::to_string(busy.size() - 8) + " more");
    return Make("ports", Level::kFail,
                "in use on " + ip + " by something else: " + Join(shown, ", ") + rental_text,
                "stop what listens there (ss -ltnp 'sport = :" + std::to_string(first_busy) +
                    "' shows it) or choose other ports in network.ports / network.port_range");
  }
  return Make("ports", Level::kOk,
              "free on " + ip + ": ssh " + std::to_string(cfg.network.ports.ssh) +
                  ", rental ports " + std::to_string(cfg.network.ports.rental_port_1) + " and " +
                  std::to_string(cfg.network.ports.rental_port_2) + ", " + range_text +
                  rental_text);
}

Check CheckApiPort(const config::Config& cfg, Environment& env, Findings& found) {
  (void)found;
  if (!cfg.api.enabled) return Make("api-port", Level::kOk, "the local API is off (api.enabled)");
  const std::string where = cfg.api.listen + ":" + std::to_string(cfg.api.port);
  auto used = env.port_in_use(cfg.api.listen, cfg.api.port);
  if (!used.ok()) {
    return Make("api-port", Level::kFail, "cannot bind " + where + ": " + used.error().message,
                "set api.listen to an address of this host (127.0.0.1)");
  }
  if (*used) {
    return Make("api-port", Level::kWarn,
                where + " is in use: the running agent, or something else",
                "if the agent is not running, free the port or set api.port");
  }
  return Make("api-port", Level::kOk, where + " is free");
}

// ---- PostgreSQL -----------------------------------------------------------------------------

Check CheckPostgres(const config::Config& cfg, Environment& env, Findings& found) {
  if (store::UsesManagedDatabase(cfg.database)) {
    auto bin = env.find_postgres(cfg.data_dir);
    if (!bin.ok()) {
      return Make("postgres", Level::kFail, "managed: " + bin.error().message,
                  "apt-get install postgresql (the agent runs its own private cluster; the "
                  "distribution's service may stay disabled), or set TAOLIE_PG_BIN_DIR");
    }
    const std::string dir = ExistingAncestor(cfg.data_dir);
    if (Status w = env.dir_writable(dir); !w.ok()) {
      return Make("postgres", Level::kFail,
                  "managed: data_dir " + cfg.data_dir + " cannot be written (" + dir + ": " +
                      w.error().message + ")",
                  "create it (mkdir -p " + cfg.data_dir +
                      ") on a writable filesystem and run "
                      "the agent as root");
    }
    std::string state = "not running: it starts with the agent";
    auto managed = store::ManagedPostgres::ConnInfoUnder(cfg.data_dir);
    if (managed.ok() && fs::exists(cfg.data_dir + "/pg-run")) {
      if (auto p = env.probe_postgres(*managed); p.ok()) {
        state = "running, PostgreSQL " + p->server_version;
        if (p->agent_id) found.agent_id = *p->agent_id;
      }
    }
    return Make(
        "postgres", Level::kOk,
        "managed; cluster under " + cfg.data_dir + "/pg, " + state + "; binaries in " + *bin);
  }
  config::DatabaseConfig db = cfg.database;
  db.connect_timeout = db.connect_timeout > 0 ? std::min(db.connect_timeout, 5) : 5;
  const std::string where = (db.host.empty() ? std::string("(local socket)") : db.host) + ":" +
                            std::to_string(db.port) + "/" + db.name + " as " + db.user;
  auto p = env.probe_postgres(store::ExternalConnInfo(db));
  if (!p.ok()) {
    return Make("postgres", Level::kFail,
                "external: cannot connect to " + where + ": " +
                    FirstLine(Redact(p.error().message, db.password), 300),
                "check database.host, port, name, user and password (TAOLIE_DB_PASSWORD), that "
                "PostgreSQL listens there and that pg_hba.conf lets this host in");
  }
  if (p->agent_id) found.agent_id = *p->agent_id;
  return Make("postgres", Level::kOk,
              "external: PostgreSQL " + p->server_version + " at " + where +
                  (p->agent_id ? "" : " (the agent has not used it yet)"));
}

// ---- platform -------------------------------------------------------------------------------

Check CheckPlatform(const config::Config& cfg, Environment& env, Findings& found) {
  const std::string url = cfg.server.url;
  if (!env.platform) {
    return Make("platform", Level::kFail, "server.url " + url + ": " + env.platform_error,
                "set server.url to the platform's https:// address");
  }
  std::string agent_id = cfg.agent.id.empty() ? found.agent_id : cfg.agent.id;
  const bool registered = !agent_id.empty();
  if (!registered) agent_id = kUnregisteredAgentId;
  // One command poll: the cheapest authenticated request. Polling does not consume commands —
  // the platform re-delivers each one until it is acknowledged (platform-api.md §3, §4) — and
  // doctor acts on none and acknowledges none, so the agent still receives them.
  auto r = env.platform->Send(platform::Method::kGet, "/api/host-agents/" + agent_id + "/commands",
                              "", std::stop_token{});
  if (!r.ok()) {
    return Make("platform", Level::kFail, "cannot reach " + url + ": " + r.error().message,
                "check server.url, DNS and outbound HTTPS from this host (firewall, proxy); a "
                "custom CA goes in server.ca_file");
  }
  const long status = r->status;
  if (status == 401 || status == 403) {
    return Make("platform", Level::kFail,
                "API key rejected by " + url + " (HTTP " + std::to_string(status) + ")",
                "set agent.api_key (or TAOLIE_API_KEY) to this host's key from the platform, then "
                "restart the agent or send it SIGHUP");
  }
  if (status >= 200 && status < 300) {
    size_t waiting = 0;
    json body = json::parse(r->body, nullptr, false);
    if (body.is_object() && body.contains("commands") && body["commands"].is_array()) {
      waiting = body["commands"].size();
    }
    if (!registered) {
      return Make("platform", Level::kOk,
                  "reachable at " + url +
                      ", API key accepted (not registered yet: the agent "
                      "registers at its first start)");
    }
    return Make("platform", Level::kOk,
                "reachable at " + url + ", API key accepted (agent " + agent_id + "; " +
                    std::to_string(waiting) + " command(s) waiting, left for the agent)");
  }
  if (status == 404 && !registered) {
    return Make("platform", Level::kWarn,
                "reachable at " + url +
                    ", but the API key could not be confirmed: the platform "
                    "knows no agent here yet (HTTP 404)",
                "start the agent once (it registers), then run doctor again");
  }
  const std::string body = FirstLine(r->body, 160);
  return Make("platform", Level::kFail,
              url + " answered HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body),
              status >= 500 || status == 429 || status == 408
                  ? "the platform has a problem; the agent retries by itself: try again later"
                  : "check server.url (it must be the platform's API base address)");
}

// ---- clock ----------------------------------------------------------------------------------

Check CheckClock(Environment& env) {
  auto c = env.read_clock();
  if (!c.ok()) {
    return Make("clock", Level::kWarn, "cannot read the clock's state: " + c.error().message);
  }
  const std::string fix =
      "enable time synchronisation: systemctl enable --now systemd-timesyncd "
      "(or install chrony)";
  if (c->unsynchronised) {
    return Make("clock", Level::kWarn, "clock not synchronised (adjtimex: STA_UNSYNC)", fix);
  }
  constexpr int64_t kMaxErrorUs = 500'000;
  if (c->max_error_us > kMaxErrorUs) {
    return Make("clock", Level::kWarn,
                "clock synchronised but its error bound is " +
                    std::to_string(c->max_error_us / 1000) + " ms",
                fix);
  }
  return Make("clock", Level::kOk,
              "synchronised (error bound " + std::to_string(c->max_error_us / 1000) + " ms)");
}

// ---- disk -----------------------------------------------------------------------------------

Check CheckDisk(const config::Config& cfg, Environment& env, Findings& found) {
  const double min_gb = cfg.deployment.min_free_disk_gb;
  struct Place {
    std::string what, path;
  };
  const std::string data_path = ExistingAncestor(cfg.data_dir);
  std::vector<Place> places = {{"data_dir " + data_path, data_path}};
  std::string note;
  if (found.docker && !found.docker->root_dir.empty()) {
    std::error_code ec;
    if (fs::exists(found.docker->root_dir, ec)) {
      places.push_back({"Docker data root " + found.docker->root_dir, found.docker->root_dir});
    } else {
      note = "; Docker's data root " + found.docker->root_dir + " is not visible here";
    }
  } else {
    note = "; Docker's data root unknown (Docker not reachable)";
  }
  if (places.size() == 2) {
    auto a = env.filesystem_id(places[0].path), b = env.filesystem_id(places[1].path);
    if (a.ok() && b.ok() && *a == *b) {
      places[0].what = "data_dir " + places[0].path + " and Docker data root (one filesystem)";
      places.pop_back();
    }
  }
  Level level = Level::kOk;
  std::vector<std::string> parts;
  for (const auto& p : places) {
    auto free = env.free_bytes(p.path);
    if (!free.ok()) {
      level = std::max(level, Level::kWarn);
      parts.push_back(p.what + ": " + free.error().message);
      continue;
    }
    const double gb = static_cast<double>(*free) / 1e9;
    if (min_gb > 0 && gb < min_gb) {
      level = Level::kFail;
    } else if (min_gb > 0 && gb < 2 * min_gb) {
      level = std::max(level, Level::kWarn);
    }
    parts.push_back(p.what + ": " + Gb(*free) + " free");
  }
  char min_text[48];
  std::snprintf(min_text, sizeof(min_text), "%g GB", min_gb);
  std::string msg = Join(parts, "; ") + " (deployment.min_free_disk_gb " + min_text + ")" + note;
  if (level == Level::kFail) {
    return Make("disk", level, msg,
                "free space there (docker image prune, docker system df shows what uses it) or "
                "lower deployment.min_free_disk_gb; rentals are refused below it");
  }
  if (level == Level::kWarn) {
    return Make("disk", level, msg,
                "under twice the minimum: free space soon (docker image prune); rentals are "
                "refused below the minimum");
  }
  return Make("disk", level, msg);
}

// ---- the real environment -------------------------------------------------------------------

Environment RealEnvironment(const config::Config& cfg) {
  Environment env;
  env.open_nvml = [](const config::GpuConfig& g) -> std::unique_ptr<gpu::GpuProbe> {
    gpu::NvmlGpuProbe::Options o;
    o.library_path = g.nvml_library;
    o.exclude_uuids = g.exclude_uuids;
    return gpu::NvmlGpuProbe::Create(std::move(o));
  };
  env.open_fallback = [](const config::GpuConfig& g,
                         std::string* detail) -> std::unique_ptr<gpu::GpuProbe> {
    health::GpuSource source = health::SelectGpuSource(g);  // as the agent chooses
    if (source.name != "nvidia-smi") return nullptr;
    const char* path = std::getenv("PATH");
    *detail = health::FindOnPath(g.nvidia_smi_path, path != nullptr ? path : "/usr/bin:/bin");
    return std::move(source.probe);
  };
  env.nvidia_driver_present = [] {
    std::error_code ec;
    return fs::exists("/dev/nvidiactl", ec) || fs::exists("/proc/driver/nvidia/version", ec);
  };

  std::string host = cfg.docker.host;
  if (host.empty()) {
    const char* e = std::getenv("DOCKER_HOST");
    host = (e != nullptr && *e != '\0') ? e : "unix:///var/run/docker.sock";
  }
  env.docker_address = host;
  auto docker = docker::EngineDockerClient::Create(
      host, std::chrono::seconds(std::clamp(cfg.docker.timeout, 1, 10)), cfg.docker.api_version);
  if (docker.ok()) {
    env.docker = std::shared_ptr<docker::DockerClient>(std::move(*docker));
  } else {
    env.docker_error = docker.error().message;
  }

  platform::HttpsPlatformApi::Options po;
  po.base_url = cfg.server.url;
  po.api_key = cfg.agent.api_key;
  po.timeout = std::chrono::seconds(std::clamp(cfg.server.timeout, 1, 15));
  po.ca_file = cfg.server.ca_file;
  po.allow_insecure = cfg.server.allow_insecure;
  po.user_agent = "taolie-host-agent-doctor";
  if (auto api = platform::HttpsPlatformApi::Create(po); api.ok()) {
    env.platform = std::shared_ptr<platform::PlatformApi>(std::move(*api));
  } else {
    env.platform_error = api.error().message;
  }

  env.probe_postgres = [](const std::string& conninfo) {
    return store::ProbePostgres(conninfo, 5000);
  };
  env.find_postgres = [](const std::string& data_dir) {
    return store::ManagedPostgres::FindBinaries(data_dir);
  };
  env.dir_writable = [](const std::string& dir) -> Status {
    std::string tmpl = dir + "/.taolie-doctor-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return MakeError(ErrorCode::kPermissionDenied, std::strerror(errno));
    ::close(fd);
    ::unlink(tmpl.c_str());
    return OkStatus();
  };
  env.port_in_use = [](const std::string& ip, int port) -> Result<bool> {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
    if (auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
        inet_pton(AF_INET, ip.c_str(), &a4->sin_addr) == 1) {
      a4->sin_family = AF_INET;
      a4->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof(sockaddr_in);
    } else if (auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
               inet_pton(AF_INET6, ip.c_str(), &a6->sin6_addr) == 1) {
      family = AF_INET6;
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof(sockaddr_in6);
    } else {
      return MakeError(ErrorCode::kInvalidArgument, ip + " is not an IP address");
    }
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return MakeError(ErrorCode::kUnavailable, std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
    const int err = errno;
    ::close(fd);
    if (rc == 0) return false;
    if (err == EADDRINUSE) return true;
    if (err == EACCES) return false;  // a privileged port as non-root: the agent runs as root
    return MakeError(ErrorCode::kUnavailable, std::strerror(err));
  };
  env.read_clock = []() -> Result<ClockStatus> {
    struct timex tx {};
    tx.modes = 0;  // read only
    if (::ntp_adjtime(&tx) < 0) {
      return MakeError(ErrorCode::kUnavailable, std::string("adjtimex: ") + std::strerror(errno));
    }
    return ClockStatus{(tx.status & STA_UNSYNC) != 0, static_cast<int64_t>(tx.maxerror),
                       static_cast<int64_t>(tx.esterror)};
  };
  env.free_bytes = [](const std::string& path) -> Result<uint64_t> {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) {
      return MakeError(ErrorCode::kUnavailable, "statvfs: " + std::string(std::strerror(errno)));
    }
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  };
  env.filesystem_id = [](const std::string& path) -> Result<uint64_t> {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return MakeError(ErrorCode::kUnavailable, "stat: " + std::string(std::strerror(errno)));
    }
    return static_cast<uint64_t>(st.st_dev);
  };
  return env;
}

// ---- running them all -----------------------------------------------------------------------

Report RunDoctor(const config::LoadResult& loaded, std::shared_ptr<Environment> env,
                 const RunOptions& options) {
  using CheckFn = Check (*)(const config::Config&, Environment&, Findings&);
  struct Step {
    const char* name;
    CheckFn fn;
  };
  static const Step kSteps[] = {
      {"nvml", CheckNvml},
      {"docker", CheckDocker},
      {"gpu-passthrough", CheckGpuPassthrough},
      {"nvidia-toolkit", CheckNvidiaToolkit},
      {"ports", CheckPorts},
      {"api-port", CheckApiPort},
      {"postgres", CheckPostgres},
      {"platform", CheckPlatform},
      {"clock", [](const config::Config&, Environment& e, Findings&) { return CheckClock(e); }},
      {"disk", CheckDisk},
  };
  Report report;
  report.checks.push_back(CheckConfig(loaded));
  auto cfg = std::make_shared<const config::Config>(loaded.config);
  Findings found;
  for (const auto& step : kSteps) {
    // The check runs on its own thread with a copy of the findings; a check that overruns its
    // deadline is left running (it owns what it uses) and its line says so.
    struct Work {
      Findings found;
      std::promise<Check> done;
    };
    auto work = std::make_shared<Work>();
    work->found = found;
    auto result = work->done.get_future();
    std::thread worker([work, cfg, env, fn = step.fn, name = step.name] {
      try {  // the thread's catch-all: a check that throws is a FAIL line, not a crash
        work->done.set_value(fn(*cfg, *env, work->found));
      } catch (const std::exception& e) {
        work->done.set_value(Make(name, Level::kFail, std::string("check failed: ") + e.what(),
                                  "report this as a bug"));
      } catch (...) {
        work->done.set_value(
            Make(name, Level::kFail, "check failed: unknown exception", "report this as a bug"));
      }
    });
    if (result.wait_for(options.check_deadline) == std::future_status::ready) {
      worker.join();
      report.checks.push_back(result.get());
      found = work->found;
    } else {
      worker.detach();
      report.abandoned = true;
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g s", options.check_deadline.count() / 1000.0);
      report.checks.push_back(Make(step.name, Level::kFail,
                                   std::string("no answer within ") + seconds,
                                   "this dependency hangs: see docs/doctor.md for the line"));
    }
  }
  return report;
}

}  // namespace taolie::doctor
