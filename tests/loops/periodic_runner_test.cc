// The periodic runner's round guard: a loop whose RunOnce throws is logged, counted and goes
// on. The guard is called directly (no thread, no clock); one runner test checks that the
// thread survives, waiting only on the loop's own signal.
#include "loops/periodic_runner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>

namespace taolie::loops {
namespace {

// Round n does what script[n] says (the last entry repeats).
class ScriptedLoop : public Loop {
 public:
  enum Step { kOk, kError, kThrowStd, kThrowOther };
  explicit ScriptedLoop(std::vector<Step> script) : script_(std::move(script)) {}
  const char* Name() const override { return "scripted"; }
  Status RunOnce(std::stop_token) override {
    const size_t n = rounds_++;
    if (n < 2) round_done_[n].set_value();
    switch (script_[std::min(n, script_.size() - 1)]) {
      case kOk:
        return OkStatus();
      case kError:
        return MakeError(ErrorCode::kUnavailable, "peer down");
      case kThrowStd:
        throw std::runtime_error("bad index 7");
      case kThrowOther:
        throw 42;
    }
    return OkStatus();
  }
  // Set when round 0 or 1 starts.
  std::future<void> Round(size_t n) { return round_done_[n].get_future(); }
  size_t rounds() const { return rounds_; }

 private:
  std::vector<Step> script_;
  std::atomic<size_t> rounds_{0};
  std::promise<void> round_done_[2];
};

TEST(RunOnceGuarded, Table) {
  struct Row {
    ScriptedLoop::Step step;
    bool ok;
    ErrorCode code;
    std::string message;  // a part of the error message
    uint64_t exceptions;
  };
  const std::vector<Row> rows = {
      {ScriptedLoop::kOk, true, ErrorCode::kInternal, "", 0},
      {ScriptedLoop::kError, false, ErrorCode::kUnavailable, "peer down", 0},
      {ScriptedLoop::kThrowStd, false, ErrorCode::kInternal,
       "scripted round threw an exception: bad index 7", 1},
      {ScriptedLoop::kThrowOther, false, ErrorCode::kInternal, "non-standard exception", 1},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(static_cast<int>(row.step));
    ScriptedLoop loop({row.step});
    LoopStats stats;
    Status st = RunOnceGuarded(loop, std::stop_token(), stats);
    EXPECT_EQ(st.ok(), row.ok);
    if (!st.ok()) {
      EXPECT_EQ(st.error().code, row.code);
      EXPECT_NE(st.error().message.find(row.message), std::string::npos) << st.error().message;
    }
    EXPECT_EQ(stats.exceptions, row.exceptions);
  }
}

TEST(RunOnceGuarded, TheLoopGoesOnAfterAThrow) {
  ScriptedLoop loop({ScriptedLoop::kThrowStd, ScriptedLoop::kThrowOther, ScriptedLoop::kOk});
  LoopStats stats;
  EXPECT_FALSE(RunOnceGuarded(loop, std::stop_token(), stats).ok());
  EXPECT_FALSE(RunOnceGuarded(loop, std::stop_token(), stats).ok());
  EXPECT_TRUE(RunOnceGuarded(loop, std::stop_token(), stats).ok());
  EXPECT_TRUE(RunOnceGuarded(loop, std::stop_token(), stats).ok());
  EXPECT_EQ(loop.rounds(), 4u);
  EXPECT_EQ(stats.exceptions, 2u);
}

TEST(PeriodicRunner, AThrowingRoundIsCountedAndTheThreadGoesOn) {
  ScriptedLoop loop({ScriptedLoop::kThrowStd, ScriptedLoop::kOk});
  auto first = loop.Round(0), second = loop.Round(1);
  PeriodicRunner runner(loop, std::chrono::hours(1), std::chrono::milliseconds(0));
  runner.Start();
  ASSERT_EQ(first.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  runner.Wake();  // the second round at once, not after the failure backoff
  ASSERT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the runner thread did not survive the exception";
  runner.RequestStop();
  runner.Join();
  EXPECT_GE(runner.stats().rounds, 2u);
  EXPECT_GE(runner.stats().failures, 1u);
  EXPECT_EQ(runner.stats().exceptions, 1u);
}

// A loop that asks for its next round sooner than the interval (retention's backlog) gets it;
// without the ask, the hour-long interval would keep the second round from coming.
class SoonerLoop : public ScriptedLoop {
 public:
  SoonerLoop() : ScriptedLoop({kOk}) {}
  std::optional<std::chrono::milliseconds> NextRoundIn() override {
    return std::chrono::milliseconds(5);
  }
};

TEST(PeriodicRunner, NextRoundInBringsTheNextRoundSooner) {
  SoonerLoop loop;
  auto first = loop.Round(0), second = loop.Round(1);
  PeriodicRunner runner(loop, std::chrono::hours(1), std::chrono::milliseconds(0));
  runner.Start();
  ASSERT_EQ(first.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the second round waited for the interval";
  runner.RequestStop();
  runner.Join();
  EXPECT_GE(runner.stats().rounds, 2u);
  EXPECT_EQ(runner.stats().failures, 0u);
}

}  // namespace
}  // namespace taolie::loops
