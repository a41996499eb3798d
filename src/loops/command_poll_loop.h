#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <string>

#include "engine/command_handler.h"
#include "loops/periodic_runner.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// 4. Command polling (10 s; again at once after a poll that returned commands).
class CommandPollLoop final : public Loop {
 public:
  CommandPollLoop(runtime::Deps d, runtime::Runtime& rt, engine::CommandHandler& m)
      : d_(d), rt_(rt), m_(m) {}
  const char* Name() const override { return "command-poll"; }
  Status RunOnce(std::stop_token stop) override;
  bool WantsImmediateRerun() override { return rerun_; }

 private:
  runtime::Deps d_;
  runtime::Runtime& rt_;
  engine::CommandHandler& m_;
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

}  // namespace taolie::loops
