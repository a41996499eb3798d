#pragma once
// The agent's periodic loops (platform-api.md and the README's seven), plus the outbox sender.
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/alert_rules.h"
#include "agent/command_handler.h"
#include "agent/gpu_cleanliness.h"
#include "agent/health_rules.h"
#include "agent/image_gc.h"
#include "agent/periodic_runner.h"
#include "agent/quarantine.h"
#include "agent/reconciler.h"
#include "agent/rental_isolation.h"
#include "agent/rental_monitor.h"
#include "agent/runtime.h"
#include "host/command_runner.h"
#include "host/kmsg_xid_reader.h"
#include "platform/delivery.h"

namespace taolie::agent {

// Registration: one try (with the platform's retries) of the registration request; on
// success, marks the runtime registered and wakes the outbox.
Status RegisterWithPlatform(Deps& d, Runtime& rt, std::stop_token stop);
std::string InventorySignature(const std::vector<gpu::GpuInfo>& gpus);

// 1. GPU metrics (10 s): sample GPUs and host, store one metric sample.
class GpuMetricsLoop final : public Loop {
 public:
  // Each sample also verifies the dirty GPUs (`dirty_gpus`, shared with the rental engine).
  GpuMetricsLoop(Deps d, Runtime& rt, DirtyGpuVerifier& dirty_gpus)
      : d_(d), rt_(rt), dirty_gpus_(dirty_gpus) {}
  const char* Name() const override { return "gpu-metrics"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  Deps d_;
  Runtime& rt_;
  DirtyGpuVerifier& dirty_gpus_;
  // The store's GPU rows (claims, dirty marks), re-read only when claims change (or every few
  // minutes); GPU -> deployment from them.
  std::vector<store::GpuRecord> rows_;
  std::map<std::string, std::string> claims_;
  uint64_t claims_generation_ = ~0ull;
  std::chrono::steady_clock::time_point claims_read_{};
};

// 2. GPU health (60 s): checks per GPU, host report, GPU inventory sync, retention.
class GpuHealthLoop final : public Loop {
 public:
  // `reset_runner` runs `nvidia-smi -r` for gpu.allow_reset (agent/quarantine.h); null: the
  // agent never resets a GPU itself.
  GpuHealthLoop(Deps d, Runtime& rt, host::CommandRunner* reset_runner = nullptr)
      : d_(d), rt_(rt), reset_runner_(reset_runner) {}
  const char* Name() const override { return "gpu-health"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  // Quarantines, resets and releases GPUs from this round's verdicts (agent/quarantine.h);
  // returns the GPUs quarantined after it, with the line their entry shows.
  std::map<std::string, std::string> ApplyQuarantine(const std::vector<GpuHealth>& verdicts,
                                                     std::vector<store::GpuRecord>& gpus,
                                                     SystemTime now);
  // `gpu_failed` for the rental holding a GPU that turned unhealthy.
  store::OutboxEvent GpuFailedEvent(const std::string& deployment_id, const GpuHealth& v,
                                    SystemTime now) const;
  // Writes the failure into the rental's container (/run/taolie/gpu_failed and its terminals).
  void TellRenter(const std::string& deployment_id, const GpuHealth& v);
  // This round's new XIDs, from NVML's events and the kernel log (gpu.kmsg_path), recorded in
  // the store with the kernel-log cursor, and the last hour's (read back once after a start).
  void CollectXids(SystemTime now);
  // The kernel log's new XID lines not already seen through NVML; sets the cursor to record.
  void ReadKernelLog(SystemTime now, const std::vector<gpu::XidEvent>& from_nvml,
                     std::vector<store::XidRecord>& out,
                     std::optional<store::KmsgCursorRow>& cursor);

  Deps d_;
  Runtime& rt_;
  host::CommandRunner* reset_runner_;
  std::map<std::string, GpuHealthMemory> memory_;       // by GPU uuid
  std::map<std::string, QuarantineMemory> quarantine_;  // by GPU uuid
  AlertMemory alert_memory_;                            // what the last round's alerts saw
  std::map<std::string, gpu::GpuInfo> infos_;           // the last scan, by GPU uuid
  std::vector<gpu::XidEvent> xids_;                     // last hour
  bool xids_loaded_ = false;                            // the store's last hour read back
  std::vector<store::XidRecord> xids_unrecorded_;       // the store was down: next round
  std::unique_ptr<host::KmsgXidReader> kmsg_;
  std::string kmsg_error_;  // why the kernel log cannot be read (logged when it changes)
  std::optional<store::KmsgCursorRow> kmsg_cursor_;  // read from the store, then kept here
  bool kmsg_cursor_loaded_ = false;
  std::chrono::steady_clock::time_point last_prune_{};
  bool prune_more_ = false;  // the last prune left a backlog: prune again next round
  // Writes only what changed (inventory, per-GPU health); everything again every 10 minutes.
  std::string synced_signature_;
  std::map<std::string, domain::GpuHealthState> health_written_;
  std::chrono::steady_clock::time_point full_write_{};
};

// Registration (heartbeat interval): start-up never waits on the platform. This loop sends
// the registration until the platform accepts it, again when what it describes changes (GPUs
// appear or vanish: rt.reregister_wanted) and on SIGHUP (RetryNow). A refused key (401) or
// field (422) is retried every 5 minutes. What needs the platform's ids (heartbeat, command
// poll, pushes, outbox) waits for rt.registered(); `on_registered` runs after the first success
// so that those loops go at once.
class RegistrationLoop final : public Loop {
 public:
  RegistrationLoop(Deps d, Runtime& rt, std::function<void()> on_registered)
      : d_(d), rt_(rt), on_registered_(std::move(on_registered)) {}
  const char* Name() const override { return "registration"; }
  Status RunOnce(std::stop_token stop) override;
  // Thread-safe: the next round registers again, even within the 5 minutes after a refusal.
  void RetryNow() {
    retry_now_ = true;
    rt_.reregister_wanted = true;
  }

 private:
  Deps d_;
  Runtime& rt_;
  std::function<void()> on_registered_;
  std::atomic<bool> retry_now_{false};
  std::chrono::steady_clock::time_point next_register_{};  // after a 401/422: retry slowly
};

// 3. Heartbeat (30 s), once registered.
class HeartbeatLoop final : public Loop {
 public:
  HeartbeatLoop(Deps d, Runtime& rt, std::chrono::steady_clock::time_point started)
      : d_(d), rt_(rt), started_(started) {}
  const char* Name() const override { return "heartbeat"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  Deps d_;
  Runtime& rt_;
  std::chrono::steady_clock::time_point started_;
};

// 4. Command polling (10 s; again at once after a poll that returned commands).
class CommandPollLoop final : public Loop {
 public:
  CommandPollLoop(Deps d, Runtime& rt, CommandHandler& m) : d_(d), rt_(rt), m_(m) {}
  const char* Name() const override { return "command-poll"; }
  Status RunOnce(std::stop_token stop) override;
  bool WantsImmediateRerun() override { return rerun_; }

 private:
  Deps d_;
  Runtime& rt_;
  CommandHandler& m_;
  bool rerun_ = false;
  int immediate_in_a_row_ = 0;
  // Malformed elements already logged in this run (a bad element is re-delivered every poll):
  // bounded, the oldest forgotten first.
  bool FirstTimeSeen(uint64_t key);
  Status Reject(const std::string& command_id, const std::string& reason);
  static constexpr size_t kMaxRemembered = 1024;
  std::set<uint64_t> logged_;
  std::deque<uint64_t> logged_order_;
};

// 5. Metrics push (10 s) and 6. health push (60 s): oldest unpushed first.
class MetricsPushLoop final : public Loop {
 public:
  MetricsPushLoop(Deps d, Runtime& rt) : d_(d), rt_(rt) {}
  const char* Name() const override { return "metrics-push"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  Result<bool> PushBatch(std::stop_token stop);  // true when a full batch went out
  Deps d_;
  Runtime& rt_;
};

class HealthPushLoop final : public Loop {
 public:
  HealthPushLoop(Deps d, Runtime& rt) : d_(d), rt_(rt) {}
  const char* Name() const override { return "health-push"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  Deps d_;
  Runtime& rt_;
};

// 7. Duration monitor (30 s): expiry warnings, expiries, dead containers, reconciliation.
class DurationMonitorLoop final : public Loop {
 public:
  // `isolation` (may be null) is ensured every round: rules flushed by someone come back.
  // `images` (may be null) checks free space and collects unused images every round.
  DurationMonitorLoop(RentalMonitor& monitor, Reconciler& reconciler,
                      RentalIsolation* isolation = nullptr, ImageCollector* images = nullptr)
      : monitor_(monitor), reconciler_(reconciler), isolation_(isolation), images_(images) {}
  const char* Name() const override { return "duration-monitor"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  RentalMonitor& monitor_;
  Reconciler& reconciler_;
  RentalIsolation* isolation_;
  ImageCollector* images_;
  std::string images_error_;  // the last image check's error, logged when it changes
  int rounds_ = 0;
};

// Outbox sender: delivers events (deployment events and acks) at least once, in order per
// ordering group (store.h, OutboxHead: one per deployment, each ack on its own). A round sends
// every group's head that is due, one attempt each (platform::PlanOutboxRound); a head that
// fails backs off on its own schedule (the row's next_attempt_at), so it never holds back
// another group. An `expiring` that cannot be delivered is superseded by its deployment's
// ending; an ext event failing past server.ext_event_give_up_hours is kept as "failed"
// (counted: events_given_up) and its deployment's next event proceeds.
// Scheduling: a round that finished an event reruns at once (the group's next event goes
// next); a round that only found heads backing off returns an error, so that the runner comes
// back after its own short, growing backoff instead of the 60 s safety interval.
class OutboxLoop final : public Loop {
 public:
  OutboxLoop(Deps d, Runtime& rt);
  const char* Name() const override { return "outbox"; }
  Status RunOnce(std::stop_token stop) override;
  bool WantsImmediateRerun() override { return rerun_; }

 private:
  // One attempt for one head. True when the event is done (any outcome); false when it backs
  // off (last_error_ says why).
  Result<bool> Deliver(const store::OutboxHead& head, std::stop_token stop);

  Deps d_;
  Runtime& rt_;
  platform::OutboxRetryPolicy policy_;
  std::mt19937_64 rng_;
  bool rerun_ = false;
  std::string last_error_;
  std::set<std::string> unsupported_warned_;
};

}  // namespace taolie::agent
