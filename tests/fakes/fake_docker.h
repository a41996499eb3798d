#pragma once
// In-memory Docker Engine for unit tests. Containers are created, started, stopped and removed
// as the engine would (names unique, Inspect by id or name, NotFound when absent). Pull feeds
// `pull_progress` to its callback, then answers what the test set: ok, an error, or a hang
// until its stop token fires. `down` makes every call Unavailable. Networks are kept by name
// (`networks`). Kill and RemoveNetwork are never used by the engine: a call fails the test
// loudly.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "docker/docker_client.h"

namespace taolie::testing {

class FakeDocker : public docker::DockerClient {
 public:
  enum class PullMode { kOk, kFail, kHang };
  PullMode pull_mode = PullMode::kOk;
  bool down = false;
  bool start_fails = false;
  bool refuse_storage_opt = false;     // Create with StorageOpt fails as on overlay2 over ext4
  std::set<std::string> local_images;  // ImageExists answers true for these
  int creates_without_image = 0;       // the next N creates fail with "No such image"
  std::vector<docker::RegistryAuth> pull_auths;     // what each Pull was given, in order
  std::vector<docker::PullProgress> pull_progress;  // fed to each Pull's callback first
  std::vector<std::string> calls;                   // "Pull image", "Create name", "Stop id", ...
  std::vector<std::vector<std::string>> execs;
  std::map<std::string, docker::ContainerInfo> containers;  // by id
  std::map<std::string, docker::ContainerSpec> specs;       // by id
  std::map<std::string, docker::NetworkInfo> networks;      // by name

  int Count(const std::string& prefix) const {
    std::lock_guard l(mu_);
    int n = 0;
    for (const auto& c : calls) n += c.rfind(prefix, 0) == 0;
    return n;
  }
  // Makes a running container exit (as if it crashed).
  void Exit(const std::string& id, int code) {
    std::lock_guard l(mu_);
    auto& c = containers.at(id);
    c.running = false;
    c.state = "exited";
    c.exit_code = code;
  }
  // Waits (bounded) until a Pull is in progress; for tests that cancel it.
  bool WaitPulling(std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pulling_ > 0; });
  }

  Result<docker::VersionInfo> Version() override {
    TAOLIE_RETURN_IF_ERROR(Call("Version"));
    return docker::VersionInfo{"20.10.24", "1.41", "linux", "/var/lib/docker", "systemd", "2"};
  }
  Result<bool> ImageExists(const std::string& image) override {
    TAOLIE_RETURN_IF_ERROR(Call("ImageExists " + image));
    std::lock_guard l(mu_);
    return local_images.count(image) > 0;
  }
  Status Pull(const std::string& image,
              const std::function<void(const docker::PullProgress&)>& progress,
              std::stop_token stop, const docker::RegistryAuth& auth = {}) override {
    TAOLIE_RETURN_IF_ERROR(Call("Pull " + image));
    if (progress) {
      for (const auto& p : pull_progress) progress(p);
    }
    std::unique_lock l(mu_);
    pull_auths.push_back(auth);
    switch (pull_mode) {
      case PullMode::kOk:
        local_images.insert(image);
        return OkStatus();
      case PullMode::kFail:
        return MakeError(ErrorCode::kNotFound, "manifest unknown");
      case PullMode::kHang: {
        ++pulling_;
        cv_.notify_all();
        cv_.wait_for(l, stop, std::chrono::seconds(30), [] { return false; });
        --pulling_;
        if (stop.stop_requested()) return MakeError(ErrorCode::kCancelled, "pull cancelled");
        ADD_FAILURE() << "FakeDocker: a hanging pull was never cancelled";
        return MakeError(ErrorCode::kDeadlineExceeded, "pull hung");
      }
    }
    return OkStatus();
  }
  Result<std::string> Create(const docker::ContainerSpec& spec) override {
    TAOLIE_RETURN_IF_ERROR(Call("Create " + spec.name));
    std::lock_guard l(mu_);
    if (creates_without_image > 0) {
      --creates_without_image;
      return MakeError(ErrorCode::kNotFound, "docker: create " + spec.name +
                                                 ": No such image: " + spec.image + " (HTTP 404)");
    }
    if (refuse_storage_opt && spec.storage_size_bytes > 0) {
      return MakeError(ErrorCode::kInternal,
                       "docker: create: --storage-opt is supported only for overlay over xfs "
                       "with 'pquota' mount option");
    }
    for (const auto& [id, c] : containers) {
      if (c.name == spec.name) return MakeError(ErrorCode::kAlreadyExists, "name in use");
    }
    std::string id = "c" + std::to_string(++next_id_) + std::string(63, '0');
    docker::ContainerInfo info;
    info.id = id;
    info.name = spec.name;
    info.image = spec.image;
    info.state = "created";
    info.labels = spec.labels;
    info.env = spec.env;
    for (const auto& p : spec.ports) info.ports.push_back(p);
    info.device_request_ids = spec.gpu_uuids;
    containers[id] = info;
    specs[id] = spec;
    return id;
  }
  Status Start(const std::string& id) override {
    TAOLIE_RETURN_IF_ERROR(Call("Start " + id));
    std::lock_guard l(mu_);
    auto* c = Find(id);
    if (c == nullptr) return MakeError(ErrorCode::kNotFound, "no container " + id);
    if (start_fails) return MakeError(ErrorCode::kInternal, "OCI runtime create failed");
    c->running = true;
    c->state = "running";
    return OkStatus();
  }
  Status Stop(const std::string& id, std::chrono::seconds grace) override {
    TAOLIE_RETURN_IF_ERROR(Call("Stop " + id + " " + std::to_string(grace.count())));
    std::lock_guard l(mu_);
    auto* c = Find(id);
    if (c == nullptr) return MakeError(ErrorCode::kNotFound, "no container " + id);
    c->running = false;
    c->state = "exited";
    return OkStatus();
  }
  Status Kill(const std::string& id, const std::string&) override {
    ADD_FAILURE() << "FakeDocker: unexpected Kill " << id;
    return MakeError(ErrorCode::kInternal, "unexpected");
  }
  Status Remove(const std::string& id, bool) override {
    TAOLIE_RETURN_IF_ERROR(Call("Remove " + id));
    std::lock_guard l(mu_);
    auto* c = Find(id);
    if (c == nullptr) return MakeError(ErrorCode::kNotFound, "no container " + id);
    std::string real = c->id;
    containers.erase(real);
    specs.erase(real);
    return OkStatus();
  }
  Result<docker::ContainerInfo> Inspect(const std::string& id) override {
    TAOLIE_RETURN_IF_ERROR(Call("Inspect"));
    std::lock_guard l(mu_);
    auto* c = Find(id);
    if (c == nullptr) return MakeError(ErrorCode::kNotFound, "no container " + id);
    return *c;
  }
  Result<std::vector<docker::ContainerInfo>> List(
      const std::map<std::string, std::string>& labels) override {
    TAOLIE_RETURN_IF_ERROR(Call("List"));
    std::lock_guard l(mu_);
    std::vector<docker::ContainerInfo> out;
    for (const auto& [id, c] : containers) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = c.labels.find(k);
        if (it == c.labels.end() || (!v.empty() && it->second != v)) match = false;
      }
      if (match) out.push_back(c);
    }
    return out;
  }
  std::map<std::string, int64_t> writable_sizes;  // by container id; a container not here: 0
  Result<std::map<std::string, int64_t>> WritableLayerSizes(
      const std::map<std::string, std::string>& labels) override {
    TAOLIE_RETURN_IF_ERROR(Call("WritableLayerSizes"));
    std::lock_guard l(mu_);
    std::map<std::string, int64_t> out;
    for (const auto& [id, c] : containers) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = c.labels.find(k);
        if (it == c.labels.end() || (!v.empty() && it->second != v)) match = false;
      }
      if (match) out[id] = writable_sizes.count(id) > 0 ? writable_sizes[id] : 0;
    }
    return out;
  }
  Result<docker::ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                                  std::chrono::seconds) override {
    TAOLIE_RETURN_IF_ERROR(Call("Exec " + id));
    std::lock_guard l(mu_);
    execs.push_back(cmd);
    return docker::ExecResult{0, ""};
  }
  std::vector<docker::ImageInfo> images;  // what ListImages answers; RemoveImage erases
  std::set<std::string> images_in_use;    // RemoveImage answers FailedPrecondition for these
  Result<std::vector<docker::ImageInfo>> ListImages() override {
    TAOLIE_RETURN_IF_ERROR(Call("ListImages"));
    std::lock_guard l(mu_);
    return images;
  }
  // By id (refused while it has several tags) or by tag (untags; the last tag deletes).
  Status RemoveImage(const std::string& id_or_ref) override {
    TAOLIE_RETURN_IF_ERROR(Call("RemoveImage " + id_or_ref));
    std::lock_guard l(mu_);
    auto it = std::find_if(images.begin(), images.end(), [&](const docker::ImageInfo& i) {
      return i.id == id_or_ref ||
             std::find(i.repo_tags.begin(), i.repo_tags.end(), id_or_ref) != i.repo_tags.end();
    });
    if (it == images.end()) return MakeError(ErrorCode::kNotFound, "no image " + id_or_ref);
    if (images_in_use.count(it->id) > 0) return MakeError(ErrorCode::kFailedPrecondition, "in use");
    if (it->id == id_or_ref && it->repo_tags.size() > 1) {
      return MakeError(ErrorCode::kFailedPrecondition, "referenced in multiple repositories");
    }
    std::erase(it->repo_tags, id_or_ref);
    if (it->id == id_or_ref || it->repo_tags.empty()) images.erase(it);
    return OkStatus();
  }
  Result<docker::NetworkInfo> InspectNetwork(const std::string& name) override {
    TAOLIE_RETURN_IF_ERROR(Call("InspectNetwork " + name));
    std::lock_guard l(mu_);
    auto it = networks.find(name);
    if (it == networks.end()) return MakeError(ErrorCode::kNotFound, "no network " + name);
    return it->second;
  }
  // Records the network as the engine would report it (the gateway is the subnet's first
  // address only in the test's own expectations, so it is left empty here).
  Result<std::string> CreateNetwork(const docker::NetworkSpec& spec) override {
    TAOLIE_RETURN_IF_ERROR(Call("CreateNetwork " + spec.name));
    std::lock_guard l(mu_);
    if (networks.count(spec.name) > 0) {
      return MakeError(ErrorCode::kAlreadyExists, "network " + spec.name + " exists");
    }
    docker::NetworkInfo info;
    info.id = "n" + std::to_string(++next_id_) + std::string(63, '0');
    info.name = spec.name;
    info.driver = "bridge";
    info.subnets = {spec.subnet};
    info.gateways = {""};
    info.options = {{"com.docker.network.bridge.name", spec.bridge_name},
                    {"com.docker.network.bridge.enable_icc", spec.enable_icc ? "true" : "false"}};
    info.labels = spec.labels;
    networks[spec.name] = info;
    return info.id;
  }
  Status RemoveNetwork(const std::string& name) override {
    ADD_FAILURE() << "FakeDocker: unexpected RemoveNetwork " << name;
    return MakeError(ErrorCode::kInternal, "unexpected");
  }

 private:
  Status Call(const std::string& what) {
    std::lock_guard l(mu_);
    calls.push_back(what);
    if (down) return MakeError(ErrorCode::kUnavailable, "FakeDocker: daemon down");
    return OkStatus();
  }
  docker::ContainerInfo* Find(const std::string& id_or_name) {
    for (auto& [id, c] : containers) {
      if (id == id_or_name || c.name == id_or_name) return &c;
    }
    return nullptr;
  }
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  int pulling_ = 0;
  int next_id_ = 0;
};

}  // namespace taolie::testing
