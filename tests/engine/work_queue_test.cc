// The work lanes: order within a serial key (across lanes), dedupe, promotion of queued
// deploys to the stop lane, shutdown, and a job that throws. Threads meet on promises and
// latches; nothing sleeps.
#include "engine/work_queue.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace taolie::engine {
namespace {

constexpr auto kWait = std::chrono::seconds(10);

// Blocks a job until the test opens it.
struct Gate {
  std::promise<void> open_p;
  std::shared_future<void> opened = open_p.get_future().share();
  void Open() { open_p.set_value(); }
};

bool WaitIdle(WorkQueue& q) { return q.WaitIdle(kWait); }

TEST(WorkQueue, SerialKeysRunInOrderAndDedupe) {
  WorkQueue q(3, 1);
  std::mutex mu;
  std::vector<int> order;
  Gate gate;
  auto opened = gate.opened;
  ASSERT_TRUE(q.Submit(Lane::kDeploy, "a1", "dep:a", [&, opened](std::stop_token) {
    opened.wait();
    std::lock_guard l(mu);
    order.push_back(1);
  }));
  ASSERT_TRUE(q.Submit(Lane::kDeploy, "a2", "dep:a", [&](std::stop_token) {
    std::lock_guard l(mu);
    order.push_back(2);
  }));
  EXPECT_FALSE(q.Submit(Lane::kDeploy, "a2", "dep:a", [](std::stop_token) {}));  // dedupe
  EXPECT_TRUE(q.Busy("dep:a"));
  std::promise<void> b_done;
  ASSERT_TRUE(q.Submit(Lane::kDeploy, "b1", "dep:b", [&](std::stop_token) { b_done.set_value(); }));
  ASSERT_EQ(b_done.get_future().wait_for(kWait), std::future_status::ready);  // not blocked by a
  gate.Open();
  ASSERT_TRUE(WaitIdle(q));
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_FALSE(q.Busy("dep:a"));
}

TEST(WorkQueue, StopLaneRunsWhileEveryDeployThreadHangs) {
  WorkQueue q(2, 1);
  Gate hang;
  auto opened = hang.opened;
  for (const char* k : {"p1", "p2", "p3"}) {  // more hanging pulls than deploy threads
    q.Submit(Lane::kDeploy, k, std::string("dep:") + k,
             [opened](std::stop_token) { opened.wait(); });
  }
  std::promise<void> ended;
  q.Submit(Lane::kStop, "end:x", "dep:x", [&](std::stop_token) { ended.set_value(); });
  EXPECT_EQ(ended.get_future().wait_for(kWait), std::future_status::ready);
  hang.Open();
  ASSERT_TRUE(WaitIdle(q));
}

TEST(WorkQueue, OrderWithinAKeyHoldsAcrossLanes) {
  WorkQueue q(1, 1);
  Gate hang;
  auto opened = hang.opened;
  std::mutex mu;
  std::vector<std::string> order;
  // The only deploy thread hangs on another rental; a's deploy is queued behind it.
  q.Submit(Lane::kDeploy, "other", "dep:other", [opened](std::stop_token) { opened.wait(); });
  q.Submit(Lane::kDeploy, "deploy-a", "dep:a", [&](std::stop_token) {
    std::lock_guard l(mu);
    order.push_back("deploy");
  });
  std::promise<void> terminated;
  q.Submit(Lane::kStop, "terminate-a", "dep:a", [&](std::stop_token) {
    {
      std::lock_guard l(mu);
      order.push_back("terminate");
    }
    terminated.set_value();
  });
  auto done = terminated.get_future();
  // Without promotion the terminate would wait for a's queued deploy, which waits for the
  // hanging thread (order within a key holds across lanes).
  q.Promote("dep:a");  // what a terminate does after cancelling a's deploy
  ASSERT_EQ(done.wait_for(kWait), std::future_status::ready);
  {
    std::lock_guard l(mu);
    EXPECT_EQ(order, (std::vector<std::string>{"deploy", "terminate"}));
  }
  hang.Open();
  ASSERT_TRUE(WaitIdle(q));
}

TEST(WorkQueue, ShutdownStopsRunningJob) {
  WorkQueue q(1, 1);
  std::promise<void> started;
  std::promise<bool> saw_stop;
  q.Submit(Lane::kDeploy, "long", "x", [&](std::stop_token st) {
    std::mutex m;
    std::condition_variable_any cv;
    started.set_value();
    std::unique_lock l(m);
    cv.wait_for(l, st, kWait, [] { return false; });
    saw_stop.set_value(st.stop_requested());
  });
  started.get_future().wait();
  q.Shutdown();
  EXPECT_TRUE(saw_stop.get_future().get());
}

TEST(WorkQueue, AJobThatThrowsIsCountedAndTheWorkerGoesOn) {
  WorkQueue q(1, 1);
  q.Submit(Lane::kDeploy, "bad", "k", [](std::stop_token) { throw std::runtime_error("boom"); });
  std::promise<void> next;
  q.Submit(Lane::kDeploy, "good", "k", [&](std::stop_token) { next.set_value(); });
  ASSERT_EQ(next.get_future().wait_for(kWait), std::future_status::ready);
  ASSERT_TRUE(WaitIdle(q));
  EXPECT_EQ(q.jobs_thrown(), 1u);
}

}  // namespace
}  // namespace taolie::engine
