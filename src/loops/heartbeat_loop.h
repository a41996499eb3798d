#pragma once
#include <chrono>

#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 3. Heartbeat (30 s), once registered.
class HeartbeatLoop final : public Loop {
 public:
  HeartbeatLoop(runtime::Deps d, runtime::Runtime& rt,
                std::chrono::steady_clock::time_point started)
      : d_(d), rt_(rt), started_(started) {}
  const char* Name() const override { return "heartbeat"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace taolie::loops
