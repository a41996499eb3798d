#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// Registration: one try (with the platform's retries) of the registration request; on
// success, marks the runtime registered and wakes the outbox.
Status RegisterWithPlatform(runtime::Deps& d, runtime::Runtime& rt, std::stop_token stop);

// Registration (heartbeat interval): start-up never waits on the platform. This loop sends
// the registration until the platform accepts it, again when what it describes changes (GPUs
// appear or vanish: rt.reregister_wanted) and on SIGHUP (RetryNow). A refused key (401) or
// field (422) is retried every 5 minutes. What needs the platform's ids (heartbeat, command
// poll, pushes, outbox) waits for rt.registered(); `on_registered` runs after the first success
// so that those loops go at once.
class RegistrationLoop final : public Loop {
 public:
  RegistrationLoop(runtime::Deps d, runtime::Runtime& rt, std::function<void()> on_registered)
      : d_(d), rt_(rt), on_registered_(std::move(on_registered)) {}
  const char* Name() const override { return "registration"; }
  Status RunOnce(std::stop_token stop) override;
  // Thread-safe: the next round registers again, even within the 5 minutes after a refusal.
  void RetryNow() {
    retry_now_ = true;
    rt_.reregister_wanted = true;
  }

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
  std::function<void()> on_registered_;
  std::atomic<bool> retry_now_{false};
  std::chrono::steady_clock::time_point next_register_{};  // after a 401/422: retry slowly
};

}  // namespace taolie::loops
