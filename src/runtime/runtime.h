#pragma once
// What the agent's parts share at run time: collaborators (seams) and in-memory state.
#include <spdlog/spdlog.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time_format.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "gpu/gpu_probe.h"
#include "host/host_probe.h"
#include "platform/platform_api.h"
#include "runtime/runtime_metrics.h"
#include "store/store.h"

namespace taolie::telemetry {
class AlertSink;  // telemetry/alert.h
}  // namespace taolie::telemetry
namespace taolie::isolation {
class RentalIsolation;  // isolation/rental_isolation.h
}  // namespace taolie::isolation

namespace taolie::runtime {

// For writes whose failure must not stop the caller but must leave a trace.
inline void WarnIfError(const Status& st, std::string_view what) {
  if (!st.ok()) spdlog::warn("{}: {}", what, st.error().ToString());
}

struct Deps {
  const config::Config& cfg;
  store::Store& store;
  docker::DockerClient& docker;
  gpu::GpuProbe& gpus;
  host::HostProbe& host;
  platform::PlatformApi& api;
  Clock& clock;
  // Resolves registry host names for the registry rule (agent/rules/registry_policy.h); empty:
  // names are not resolved, so only allowed or literal public registries pass.
  std::function<Result<std::vector<std::string>>(const std::string& host)> resolve_host;
};

// Thread-safe shared state.
class Runtime : public RuntimeMetrics {
 public:
  Runtime(std::string agent_id, std::string version, TimestampFormat ts)
      : agent_id_(std::move(agent_id)), version_(std::move(version)), ts_(ts) {}

  const std::string& agent_id() const { return agent_id_; }
  const std::string& version() const { return version_; }
  TimestampFormat ts() const { return ts_; }

  std::string platform_gpu_uuid() const {
    std::lock_guard l(mu_);
    return platform_gpu_uuid_;
  }
  void set_platform_gpu_uuid(const std::string& v) {
    std::lock_guard l(mu_);
    platform_gpu_uuid_ = v;
  }
  // What the last registration described (GPU UUIDs, ports...): a change means re-register.
  // The database's data directory when it is on this host ("" = not known: its free space is
  // not checked by admission).
  std::string database_dir() const {
    std::lock_guard l(mu_);
    return database_dir_;
  }
  void set_database_dir(const std::string& v) {
    std::lock_guard l(mu_);
    database_dir_ = v;
  }
  std::string registered_signature() const {
    std::lock_guard l(mu_);
    return registered_signature_;
  }
  void set_registered_signature(const std::string& v) {
    std::lock_guard l(mu_);
    registered_signature_ = v;
  }
  bool registered() const { return registered_; }
  void set_registered(bool v) { registered_ = v; }
  bool draining() const { return draining_; }
  void set_draining(bool v) { draining_ = v; }

  void MarkPlatformOk(SystemTime t) {
    std::lock_guard l(mu_);
    last_platform_ok_ = t;
  }
  SystemTime last_platform_ok() const {
    std::lock_guard l(mu_);
    return last_platform_ok_;
  }

  void SetLatestGpuSamples(std::vector<gpu::GpuSample> s, SystemTime at) {
    std::lock_guard l(mu_);
    latest_gpu_ = std::move(s);
    latest_gpu_at_ = at;
  }
  std::vector<gpu::GpuSample> LatestGpuSamples(SystemTime* at = nullptr) const {
    std::lock_guard l(mu_);
    if (at != nullptr) *at = latest_gpu_at_;
    return latest_gpu_;
  }

  // GPUs still dirty after gpu.dirty_timeout_seconds, with why (set by the GPU metrics loop).
  void SetGpusHeldBack(std::map<std::string, std::string> held) {
    std::lock_guard l(mu_);
    gpus_held_back_ = std::move(held);
  }
  std::map<std::string, std::string> GpusHeldBack() const {
    std::lock_guard l(mu_);
    return gpus_held_back_;
  }

  // The last XID each GPU reported since the agent started (/metrics DCGM_FI_DEV_XID_ERRORS).
  void NoteXids(const std::vector<gpu::XidEvent>& xids) {
    std::lock_guard l(mu_);
    for (const auto& x : xids) last_xid_[x.uuid] = x.xid;
  }
  std::map<std::string, uint64_t> LastXids() const {
    std::lock_guard l(mu_);
    return last_xid_;
  }

  // Wakes the outbox sender (set by the composition root).
  void SetOutboxNotifier(std::function<void()> f) {
    std::lock_guard l(mu_);
    outbox_notifier_ = std::move(f);
  }
  void NotifyOutbox() const {
    std::function<void()> f;
    {
      std::lock_guard l(mu_);
      f = outbox_notifier_;
    }
    if (f) f();
  }

  // The rental network and firewall keeper (set by the composition root; null in tests that
  // do not isolate: then nothing is refused for want of isolation).
  void set_isolation(::taolie::isolation::RentalIsolation* isolation) { isolation_ = isolation; }
  ::taolie::isolation::RentalIsolation* isolation() const { return isolation_; }

  // Where the health loop raises alerts (set by the composition root when a webhook or an
  // e-mail address is configured; null: no alerts).
  void set_alerts(telemetry::AlertSink* alerts) { alerts_ = alerts; }
  telemetry::AlertSink* alerts() const { return alerts_; }

  std::atomic<bool> reregister_wanted{false};  // set when the inventory changed
  std::atomic<uint64_t> claims_generation{0};  // bumped when GPUs are claimed or released
  // The counters and gauges shown on /metrics and /v1/status are RuntimeMetrics' atomics
  // (runtime_metrics.h): `rt.deploys_succeeded++`.
  std::atomic<int64_t> last_clock_step_ms{0};  // size of the last wall-clock step (+ = ahead)
  // Whether the storage driver bounds a rental's writable layer (StorageOpt size): unknown
  // until the first create with a disk quota tries it; refused = quotas are only measured.
  enum class StorageOpt : int { kUnknown = 0, kSupported = 1, kRefused = 2 };
  std::atomic<StorageOpt> storage_opt{StorageOpt::kUnknown};

 private:
  mutable std::mutex mu_;
  const std::string agent_id_;
  const std::string version_;
  const TimestampFormat ts_;
  std::string platform_gpu_uuid_;
  std::string registered_signature_;
  std::string database_dir_;
  std::atomic<bool> registered_{false};
  std::atomic<bool> draining_{false};
  SystemTime last_platform_ok_{};
  std::vector<gpu::GpuSample> latest_gpu_;
  SystemTime latest_gpu_at_{};
  std::function<void()> outbox_notifier_;
  std::map<std::string, std::string> gpus_held_back_;  // uuid -> reason
  std::map<std::string, uint64_t> last_xid_;           // uuid -> last XID
  std::atomic<::taolie::isolation::RentalIsolation*> isolation_{nullptr};
  std::atomic<telemetry::AlertSink*> alerts_{nullptr};
};

}  // namespace taolie::runtime
