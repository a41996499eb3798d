#pragma once
// EngineDockerClient: DockerClient over the Docker Engine HTTP API on a unix socket (libcurl).
//
// Every call has a deadline: `timeout` for ordinary calls, Stop adds its grace period, Exec
// uses the caller's timeout, Pull has its own long deadline plus a stall limit and honours
// the stop_token. The API version is negotiated on first use (GET /version, min(server,
// kMaxApiVersion)), so creating the client never needs the daemon up; a failed negotiation is
// retried on the next call. Errors carry the engine's own message. Thread-safe: each request
// uses its own curl handle.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "docker/docker_client.h"

namespace taolie::docker {

class EngineDockerClient : public DockerClient {
 public:
  static constexpr const char* kMinApiVersion = "1.40";  // DeviceRequests
  static constexpr const char* kMaxApiVersion = "1.43";

  // `host`: "unix:///path/docker.sock" or a bare "/path/docker.sock"; "" means $DOCKER_HOST,
  // else unix:///var/run/docker.sock. `api_version` pins the version ("" = negotiate).
  static Result<std::unique_ptr<EngineDockerClient>> Create(const std::string& host,
                                                            std::chrono::seconds timeout,
                                                            const std::string& api_version = "");

  // Overall deadline of one Pull (default 6 h); a pull that receives nothing for
  // `stall` (default 5 min) fails with DeadlineExceeded earlier. Call before sharing the client.
  void SetPullLimits(std::chrono::seconds total, std::chrono::seconds stall);

  // The negotiated API version ("1.41"), negotiating now if needed.
  Result<std::string> ApiVersion();
  const std::string& socket_path() const { return socket_path_; }

  Result<VersionInfo> Version() override;
  Result<bool> ImageExists(const std::string& image) override;
  Status Pull(const std::string& image, const std::function<void(const PullProgress&)>& progress,
              std::stop_token stop, const RegistryAuth& auth = {}) override;
  Result<std::string> Create(const ContainerSpec& spec) override;
  Status Start(const std::string& id) override;
  Status Stop(const std::string& id, std::chrono::seconds grace) override;
  Status Kill(const std::string& id, const std::string& signal) override;
  Status Remove(const std::string& id, bool force) override;
  Result<ContainerInfo> Inspect(const std::string& id_or_name) override;
  Result<std::vector<ContainerInfo>> List(
      const std::map<std::string, std::string>& labels) override;
  Result<std::map<std::string, int64_t>> WritableLayerSizes(
      const std::map<std::string, std::string>& labels) override;
  Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                          std::chrono::seconds timeout) override;
  Result<std::vector<ImageInfo>> ListImages() override;
  Status RemoveImage(const std::string& id_or_ref) override;
  Result<NetworkInfo> InspectNetwork(const std::string& name) override;
  Result<std::string> CreateNetwork(const NetworkSpec& spec) override;
  Status RemoveNetwork(const std::string& name) override;

 private:
  EngineDockerClient(std::string socket_path, std::chrono::seconds timeout,
                     std::string pinned_api_version);
  // "/v1.41" + path, negotiating first.
  Result<std::string> VersionedPath(const std::string& path);
  // GET /containers/json?all=1[&size=true] of the containers carrying `labels`: the body.
  Result<std::string> ListJson(const std::map<std::string, std::string>& labels, bool sizes);

  const std::string socket_path_;
  const std::chrono::seconds timeout_;
  std::chrono::seconds pull_total_{std::chrono::hours(6)};
  std::chrono::seconds pull_stall_{std::chrono::minutes(5)};
  std::mutex mu_;
  std::string api_version_;  // guarded by mu_; "" until negotiated
};

}  // namespace taolie::docker
