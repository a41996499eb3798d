#pragma once
#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 6. Health push (60 s): oldest unpushed first.
class HealthPushLoop final : public Loop {
 public:
  HealthPushLoop(runtime::Deps d, runtime::Runtime& rt) : d_(d), rt_(rt) {}
  const char* Name() const override { return "health-push"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
};

}  // namespace taolie::loops
