#include "engine/volume_admission.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>

namespace taolie::engine {
namespace {

// The socket path of a "unix://" Docker host; "" for any other scheme.
std::string UnixSocketPath(const std::string& docker_host) {
  const std::string scheme = "unix://";
  return docker_host.rfind(scheme, 0) == 0 ? docker_host.substr(scheme.size()) : "";
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

}  // namespace

std::vector<host::ProtectedPath> ProtectedHostPaths(const config::Config& cfg,
                                                    const std::string& docker_root) {
  std::vector<host::ProtectedPath> out = {{"/var/run/docker.sock", "the Docker socket"},
                                          {"/run/docker.sock", "the Docker socket"}};
  std::string docker_host = cfg.docker.host;
  if (docker_host.empty()) {
    const char* env = std::getenv("DOCKER_HOST");
    docker_host = env != nullptr ? env : "";
  }
  if (std::string sock = UnixSocketPath(docker_host); !sock.empty()) {
    out.push_back({Absolute(sock), "the Docker socket"});
  }
  if (!cfg.data_dir.empty()) out.push_back({Absolute(cfg.data_dir), "data_dir"});
  if (!cfg.config_file.empty()) {
    out.push_back({std::filesystem::path(Absolute(cfg.config_file)).parent_path().string(),
                   "the config file's directory"});
  }
  if (!docker_root.empty()) out.push_back({Absolute(docker_root), "Docker's data root"});
  return out;
}

Status AdmitVolumes(const config::Config& cfg, const Result<docker::VersionInfo>& engine,
                    const std::vector<domain::Deployment>& active, rules::DeploySpec* spec) {
  if (spec->volumes.empty()) return OkStatus();
  if (!engine.ok() || engine->root_dir.empty()) {
    return MakeError(
        ErrorCode::kFailedPrecondition,
        "volumes: host paths cannot be checked: Docker's data root is unknown (" +
            (engine.ok() ? std::string("the engine did not report it") : engine.error().message) +
            ")");
  }
  host::VolumeGuardOptions opts;
  opts.allowed_roots = cfg.deployment.allowed_volume_roots;
  opts.protected_paths = ProtectedHostPaths(cfg, engine->root_dir);

  // What the running rentals bind (their recorded specs hold the canonical paths).
  std::vector<std::pair<std::string, std::string>> bound;  // host path, deployment id
  for (const auto& d : active) {
    if (d.state == domain::DeploymentState::kEnded || d.spec_json.empty()) continue;
    auto other = rules::SpecFromJson(d.spec_json);
    if (!other.ok()) {
      spdlog::warn("deployment {}: recorded spec unreadable ({}); its volumes are not known", d.id,
                   other.error().message);
      continue;
    }
    for (const auto& v : other->volumes) bound.emplace_back(v.first, d.id);
  }

  for (auto& [host_path, container_path] : spec->volumes) {
    auto canonical = host::ResolveVolumeHostPath(host_path, opts);
    if (!canonical.ok()) return canonical.error();
    for (const auto& [other_path, other_id] : bound) {
      if (host::PathIsWithin(*canonical, other_path) ||
          host::PathIsWithin(other_path, *canonical)) {
        spdlog::info("volume {} overlaps {} of deployment {}", *canonical, other_path, other_id);
        return MakeError(ErrorCode::kInvalidArgument,
                         "volumes: host path '" + host_path +
                             "' overlaps a host path another running rental binds");
      }
    }
    host_path = *canonical;
  }
  return OkStatus();
}

}  // namespace taolie::engine
