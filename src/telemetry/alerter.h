#pragma once
// Alerts to the host's operator (issue 8 item 5; docs/alerts.md): by webhook and by e-mail.
//
// Alerter::Raise never blocks its caller (a health loop): it decides at once whether the alert
// goes out (de-duplication, rate limit) and queues it for one worker thread, which hands it to
// every channel (alert_channels.h) with a bounded number of tries and a growing pause between
// them. A full queue drops the alert and counts it. Stop() is instant: the worker's waits and
// the channels' transfers end when their stop_token is requested.
//
// De-duplication: every alert has a key (what it is about, e.g. "gpu_verdict/GPU-1") and a
// state (e.g. "unhealthy"). An alert with the same key and state as one sent less than
// cooldown_seconds ago is suppressed; a change of state (a transition back included) is always
// a new alert. Rate limit: at most max_per_hour alerts are accepted per rolling hour; more are
// suppressed. Both read the monotonic clock, so a test moves them with a FakeClock.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "telemetry/alert.h"

namespace taolie::telemetry {

// The documented JSON body of a webhook POST (docs/alerts.md); timestamps are RFC 3339 UTC.
std::string AlertToJson(const Alert& a);
// A one-line mail subject: "[TAOLIE warning] host: message".
std::string AlertSubject(const Alert& a);

struct AlerterOptions {
  std::string agent_id;
  std::string host;
  std::chrono::seconds cooldown{900};  // monitoring.alerts.cooldown_seconds
  int max_per_hour = 20;               // monitoring.alerts.max_per_hour
  size_t queue_capacity = 64;
  int max_tries = 4;                           // per channel and alert
  std::chrono::milliseconds retry_base{2000};  // pause after the first failed try; doubles
  std::chrono::milliseconds retry_cap{60000};
  bool start_worker = true;  // false: nothing is sent until RunPending (unit tests)
};

struct AlerterCounters {
  uint64_t raised = 0;        // Raise calls
  uint64_t sent = 0;          // deliveries that succeeded (one per channel and alert)
  uint64_t failed = 0;        // deliveries given up after their tries (or refused for good)
  uint64_t retries = 0;       // tries after a first failed one
  uint64_t suppressed = 0;    // de-duplicated or over the rate limit
  uint64_t rate_limited = 0;  // of the suppressed: over max_per_hour
  uint64_t dropped = 0;       // queue full
  size_t queued = 0;          // waiting for the worker now
};

class Alerter final : public AlertSink {
 public:
  Alerter(AlerterOptions options, std::vector<std::unique_ptr<AlertChannel>> channels,
          const Clock& clock);
  ~Alerter() override;
  Alerter(const Alerter&) = delete;
  Alerter& operator=(const Alerter&) = delete;

  // Thread-safe; returns at once.
  void Raise(Alert alert) override;
  // Stops the worker: a delivery in progress is abandoned (its transfer aborted).
  void Stop();

  AlerterCounters Counters() const;
  std::vector<std::string> ChannelNames() const;

  // Without a worker (start_worker false): delivers what is queued on this thread; returns how
  // many alerts it took.
  size_t RunPending(const std::stop_token& stop);
  // True once the queue is empty and no delivery is in progress, false after `timeout`.
  bool WaitIdle(std::chrono::milliseconds timeout) const;

 private:
  void Work(const std::stop_token& stop);
  void DeliverOne(const Alert& alert, const std::stop_token& stop);

  const AlerterOptions options_;
  std::vector<std::unique_ptr<AlertChannel>> channels_;
  const Clock& clock_;

  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;       // wakes the worker
  mutable std::condition_variable_any idle_cv_;  // wakes WaitIdle
  std::deque<Alert> queue_;
  bool busy_ = false;
  struct Sent {
    std::string state;
    MonoTime at;
  };
  std::map<std::string, Sent> last_;  // by key
  std::deque<MonoTime> accepted_;     // accepted in the last hour, oldest first
  bool rate_warned_ = false;
  AlerterCounters counters_;
  std::jthread worker_;
};

}  // namespace taolie::telemetry
