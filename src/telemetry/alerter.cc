#include "telemetry/alerter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>

#include "common/time_format.h"

namespace taolie::telemetry {
namespace {

bool Retryable(const Status& st) {
  return !st.ok() && (st.error().code == ErrorCode::kUnavailable ||
                      st.error().code == ErrorCode::kDeadlineExceeded);
}

// A channel that throws fails this delivery (not retried), never the worker or the agent.
Status DeliverGuarded(AlertChannel& channel, const Alert& alert, const std::stop_token& stop) {
  try {
    return channel.Deliver(alert, stop);
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInternal, std::string("exception: ") + e.what());
  } catch (...) {
    return MakeError(ErrorCode::kInternal, "unknown exception");
  }
}

}  // namespace

std::string AlertToJson(const Alert& a) {
  using nlohmann::json;
  auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  auto str = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j = {{"kind", a.kind},
            {"severity", a.severity},
            {"state", a.state},
            {"agent_id", a.agent_id},
            {"host", a.host},
            {"gpu_uuid", str(a.gpu_uuid)},
            {"gpu_index", opt(a.gpu_index)},
            {"deployment_id", str(a.deployment_id)},
            {"check", str(a.check)},
            {"message", a.message},
            {"value", opt(a.value)},
            {"threshold", opt(a.threshold)},
            {"timestamp", FormatRfc3339(a.at)}};
  return j.dump();
}

std::string AlertSubject(const Alert& a) {
  std::string s = "[TAOLIE " + a.severity + "] " + a.host + ": " + a.message;
  // One header line: no line breaks, and short enough for every mail client.
  std::replace(s.begin(), s.end(), '\r', ' ');
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > 200) s = s.substr(0, 197) + "...";
  return s;
}

Alerter::Alerter(AlerterOptions options, std::vector<std::unique_ptr<AlertChannel>> channels,
                 const Clock& clock)
    : options_(std::move(options)), channels_(std::move(channels)), clock_(clock) {
  if (options_.start_worker) {
    worker_ = std::jthread([this](const std::stop_token& stop) { Work(stop); });
  }
}

Alerter::~Alerter() { Stop(); }

void Alerter::Stop() {
  if (worker_.joinable()) {
    worker_.request_stop();
    worker_.join();
  }
}

void Alerter::Raise(Alert alert) {
  if (alert.agent_id.empty()) alert.agent_id = options_.agent_id;
  if (alert.host.empty()) alert.host = options_.host;
  if (alert.at == SystemTime{}) alert.at = clock_.Now();
  const MonoTime now = clock_.Monotonic();
  std::lock_guard lock(mu_);
  ++counters_.raised;
  if (auto last = last_.find(alert.key); last != last_.end() && last->second.state == alert.state &&
                                         now - last->second.at < options_.cooldown) {
    ++counters_.suppressed;
    return;
  }
  while (!accepted_.empty() && now - accepted_.front() >= std::chrono::hours(1)) {
    accepted_.pop_front();
  }
  if (accepted_.size() >= static_cast<size_t>(std::max(options_.max_per_hour, 0))) {
    ++counters_.suppressed;
    ++counters_.rate_limited;
    if (!rate_warned_) {
      spdlog::warn("alerts: more than {} in an hour; suppressing ({} {})", options_.max_per_hour,
                   alert.kind, alert.key);
      rate_warned_ = true;
    }
    return;
  }
  if (queue_.size() >= options_.queue_capacity) {
    ++counters_.dropped;
    spdlog::warn("alerts: queue full, dropped {} {}", alert.kind, alert.key);
    return;
  }
  rate_warned_ = false;
  accepted_.push_back(now);
  last_[alert.key] = Sent{alert.state, now};
  queue_.push_back(std::move(alert));
  cv_.notify_one();
}

AlerterCounters Alerter::Counters() const {
  std::lock_guard lock(mu_);
  AlerterCounters c = counters_;
  c.queued = queue_.size();
  return c;
}

std::vector<std::string> Alerter::ChannelNames() const {
  std::vector<std::string> out;
  for (const auto& c : channels_) out.emplace_back(c->Name());
  return out;
}

void Alerter::Work(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    Alert next;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [&] { return !queue_.empty(); })) return;
      next = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    // The thread's catch-all (issue 17 item 8): whatever throws loses this alert, logged, and
    // the worker goes on with the next.
    try {
      DeliverOne(next, stop);
    } catch (const std::exception& e) {
      spdlog::error("alerts: delivering {} failed: {}", next.kind, e.what());
    } catch (...) {
      spdlog::error("alerts: delivering {} failed: unknown exception", next.kind);
    }
    std::lock_guard lock(mu_);
    busy_ = false;
    idle_cv_.notify_all();
  }
}

size_t Alerter::RunPending(const std::stop_token& stop) {
  size_t n = 0;
  while (!stop.stop_requested()) {
    Alert next;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) break;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    DeliverOne(next, stop);
    ++n;
  }
  return n;
}

bool Alerter::WaitIdle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

void Alerter::DeliverOne(const Alert& alert, const std::stop_token& stop) {
  for (const auto& channel : channels_) {
    std::chrono::milliseconds pause = options_.retry_base;
    Status st = OkStatus();
    for (int attempt = 1; attempt <= std::max(options_.max_tries, 1); ++attempt) {
      if (attempt > 1) {
        {
          std::lock_guard lock(mu_);
          ++counters_.retries;
        }
        if (!clock_.SleepFor(pause, stop)) return;  // stopping: the alert is abandoned
        pause = std::min(pause * 2, options_.retry_cap);
      }
      st = DeliverGuarded(*channel, alert, stop);
      if (st.ok() || !Retryable(st) || stop.stop_requested()) break;
    }
    if (stop.stop_requested()) return;
    std::lock_guard lock(mu_);
    if (st.ok()) {
      ++counters_.sent;
    } else {
      ++counters_.failed;
      spdlog::warn("alerts: {} not delivered by {}: {}", alert.kind, channel->Name(),
                   st.error().ToString());
    }
  }
}

}  // namespace taolie::telemetry
