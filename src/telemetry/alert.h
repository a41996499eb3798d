#pragma once
// An alert and where alerts go: what raises alerts (GPU health) needs only this header; the
// Alerter that delivers them by webhook and e-mail (libcurl) is in alerter.h.
#include <optional>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "common/result.h"

namespace taolie::telemetry {

struct Alert {
  // gpu_verdict, gpu_quarantined, gpu_released, gpu_threshold, platform_unreachable,
  // platform_reachable (docs/alerts.md lists them).
  std::string kind;
  std::string severity = "warning";  // info | warning | critical
  std::string key;                   // de-duplication key
  std::string state;                 // de-duplication state under the key
  std::string agent_id;              // filled by the Alerter when empty
  std::string host;                  // filled by the Alerter when empty
  std::string gpu_uuid;              // "" = not about one GPU
  std::optional<int> gpu_index;
  std::string deployment_id;  // the rental on the GPU, "" = none
  std::string check;          // the threshold or health check concerned, "" = none
  std::string message;
  std::optional<double> value;
  std::optional<double> threshold;
  SystemTime at{};
};

// Where alerts go. Deliver is one try; an error with code kUnavailable or kDeadlineExceeded is
// tried again, any other is final. Called from the Alerter's one worker thread only.
class AlertChannel {
 public:
  virtual ~AlertChannel() = default;
  virtual const char* Name() const = 0;
  virtual Status Deliver(const Alert& alert, std::stop_token stop) = 0;
};

// What raises alerts sees only this (the health loop; tests use a recording fake).
class AlertSink {
 public:
  virtual ~AlertSink() = default;
  virtual void Raise(Alert alert) = 0;
};

}  // namespace taolie::telemetry
