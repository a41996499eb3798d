#pragma once
// Simulator of the central platform's API (platform-api.md) for tests and `dev` mode. Serves on
// loopback, checks the Bearer key, validates every compat field's presence and JSON type
// (422 {"error": "<field>: <reason>"}), keeps per-agent command queues that re-deliver until
// acknowledged, records every request, and offers fault injection. Also offers control
// endpoints for a person (loopback only):
//   POST /sim/agents/{agent_id}/deploy            body: deploy payload (optional)
//   POST /sim/agents/{agent_id}/terminate/{deployment_id}   body: {"reason": ...} (optional)
//   GET  /sim/deployments   latest event per deployment, with access_info of its success event
//   GET  /sim/events        all accepted deployment events
//   GET  /sim/agents        registered agents
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace taolie::sim {

class Simulator {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0 = pick a free port
    std::string api_key = "sim-key";
    bool ext_endpoints = true;  // false: failed/expiring/terminated answer 404 (old platform)
  };
  struct Request {
    std::string method, path, body;
    SystemTime at;
    int status = 0;
    std::string authorization;  // the Authorization header as received
    std::string user_agent;
    std::string content_type;
    // The contract endpoint (EndpointOf); "" for a path outside the platform's API.
    std::string endpoint;
    std::string response_body;  // the answer as sent
    // The answer carries text a test fed in on purpose (SetRawPollReply, or a queued payload
    // that is not a JSON object): it is off the contract by design.
    bool injected = false;
  };
  // The platform endpoint `method path` addresses, named as in docs/platform-api.md and
  // schemas/README.md: "register", "heartbeat", "commands", "ack", "metrics", "health",
  // "event.success", "event.failed", "event.expiring", "event.terminated", "event.gpu_failed";
  // "" for anything else (a /sim/ control path, an unknown path or method).
  static std::string EndpointOf(const std::string& method, const std::string& path);

  static Result<std::unique_ptr<Simulator>> Start(const Options& options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  int port() const;
  std::string base_url() const;  // "http://127.0.0.1:<port>"
  void Stop();                   // idempotent

  // Fault injection (only /api/ requests are affected).
  // The next n requests get `status` (with Retry-After when retry_after_seconds > 0).
  void SetFailNext(int n, int status, int retry_after_seconds = 0);
  void SetDown(bool down);  // 503 for everything
  // Each /api/ request waits this long before it is answered (interrupted by Stop()).
  void SetResponseDelay(std::chrono::milliseconds delay);
  // Per-endpoint fault: /api/ requests whose path ends with `path_suffix` (for example
  // "/<deployment_id>/expiring") are answered `status` (with Retry-After when
  // retry_after_seconds > 0) the next `count` times, or forever when count < 0; every other
  // path is answered as usual. Setting a suffix again replaces its fault.
  void SetPathFault(const std::string& path_suffix, int status, int count = -1,
                    int retry_after_seconds = 0);
  void ClearPathFault(const std::string& path_suffix);

  // Recorded traffic (thread-safe).
  std::vector<Request> Requests(const std::string& path_prefix = "") const;
  // Incremental read for long runs (thousands of requests): the requests recorded at position
  // `from` or later (0 = the first one) whose path starts with `path_prefix`; `*next` receives
  // the position to pass on the following call.
  std::vector<Request> RequestsSince(size_t from, const std::string& path_prefix,
                                     size_t* next) const;
  // Bodies of accepted deployment events of one deployment and kind, in arrival order.
  std::vector<std::string> Events(const std::string& deployment_id, const std::string& kind) const;
  std::map<std::pair<std::string, std::string>, int> EventCounts() const;
  int CountHeartbeats() const;  // accepted heartbeats
  std::vector<std::string> AckBodies(const std::string& command_id) const;
  std::optional<std::string> LatestRegistration() const;  // body of the last accepted one

  // Command queue. Returns the command_id (generated when empty).
  std::string QueueCommand(const std::string& agent_id, const std::string& type,
                           const std::string& payload_json, std::string command_id = "");
  bool Acked(const std::string& command_id) const;

  // Raw poll reply, for tests of malformed input: the commands poll of `agent_id` answers 200
  // with `text` taken verbatim (never re-serialised, so it may hold a 3000-character
  // command_id, "\u0000", a bare array, invalid JSON...) until cleared with "".
  //   kPrepend: `text` is a JSON array literal ("[...]"); its elements come first in every
  //             reply, before the queued commands (which still work as usual).
  //   kReplace: `text` is the whole body; queued commands are not shown meanwhile.
  // Acks of ids that were never queued answer 404, as for any unknown command.
  enum class RawPoll { kPrepend, kReplace };
  void SetRawPollReply(const std::string& agent_id, std::string text,
                       RawPoll mode = RawPoll::kPrepend);

  // Polls `pred` every 10 ms until it is true or `timeout` passed; returns the last result.
  static bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

 private:
  struct State;
  Simulator();
  std::unique_ptr<State> state_;
};

}  // namespace taolie::sim
