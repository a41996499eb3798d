#pragma once
#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 5. Metrics push (10 s): oldest unpushed first.
class MetricsPushLoop final : public Loop {
 public:
  MetricsPushLoop(runtime::Deps d, runtime::Runtime& rt) : d_(d), rt_(rt) {}
  const char* Name() const override { return "metrics-push"; }
  Status RunOnce(std::stop_token stop) override;

 private:
  Result<bool> PushBatch(std::stop_token stop);  // true when a full batch went out
  runtime::Deps d_;
  runtime::Runtime& rt_;
};

}  // namespace taolie::loops
