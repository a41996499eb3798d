#pragma once
// Readiness: a rental is ready when its SSH port answers with an SSH-2.0 banner and, when
// Jupyter's port 8888 is published, that port answers HTTP. The probe is a small seam (tests
// fake it); TcpReadinessProbe speaks TCP with RAII sockets and bounded waits.
#include <chrono>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "docker/docker_client.h"
#include "domain/deployment.h"

namespace taolie::engine {

class ReadinessProbe {
 public:
  virtual ~ReadinessProbe() = default;
  virtual bool SshBanner(const std::string& host, int port) = 0;
  virtual bool HttpAnswers(const std::string& host, int port) = 0;
};

class TcpReadinessProbe final : public ReadinessProbe {
 public:
  bool SshBanner(const std::string& host, int port) override;
  bool HttpAnswers(const std::string& host, int port) override;
};

struct ReadinessOptions {
  std::string bind_ip;  // network.bind_ip: where the published ports listen
  std::chrono::seconds timeout{120};
  bool require_ssh = true;
};

// Probes quickly at first, then calmer (25 ms doubling to 500 ms), until ready, the container
// exits, the timeout passes (monotonic, from `clock`) or `stop` fires (Cancelled). On failure
// `why` says what did not answer.
Status WaitUntilReady(const domain::Deployment& d, const ReadinessOptions& options,
                      ReadinessProbe& probe, docker::DockerClient& docker, const Clock& clock,
                      std::stop_token stop, std::string* why);

}  // namespace taolie::engine
