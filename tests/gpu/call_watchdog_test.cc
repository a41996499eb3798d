// The NVML call worker survives what throws on it (issue 17 item 8): a throwing call becomes
// an Internal error for its caller, a throwing posted task is logged, and the next call runs.
// It holds a thread only while a call is in flight (issue 18 item 9).
#include "gpu/call_watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>

#include "thread_count.h"

namespace taolie::gpu {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using test_support::ThreadCount;
using test_support::ThreadCountReaching;

TEST(CallWatchdogTest, AThrowingCallIsAnErrorForItsCaller) {
  CallWatchdog w("test");
  Result<int> r = w.Run<int>("nvmlInit", seconds(10),
                             []() -> Result<int> { throw std::runtime_error("driver bug"); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_NE(r.error().message.find("driver bug"), std::string::npos);
  Result<int> next = w.Run<int>("next", seconds(10), []() -> Result<int> { return 7; });
  ASSERT_TRUE(next.ok()) << next.error().ToString();
  EXPECT_EQ(*next, 7);
}

TEST(CallWatchdogTest, AThrowingPostedTaskDoesNotEndTheWorker) {
  CallWatchdog w("test");
  w.Post([] { throw std::runtime_error("posted bug"); });
  w.Post([] { throw 42; });  // not even an std::exception
  Result<int> next = w.Run<int>("after", seconds(10), []() -> Result<int> { return 1; });
  ASSERT_TRUE(next.ok()) << next.error().ToString();
  EXPECT_EQ(*next, 1);
  EXPECT_FALSE(w.Stuck());
}

TEST(CallWatchdogTest, HoldsAThreadOnlyWhileACallIsInFlight) {
  const size_t idle = ThreadCount();
  CallWatchdog w("test");
  EXPECT_EQ(ThreadCount(), idle);  // no worker before the first call
  for (int i = 0; i < 3; ++i) {
    Result<size_t> during =
        w.Run<size_t>("count", seconds(10), []() -> Result<size_t> { return ThreadCount(); });
    ASSERT_TRUE(during.ok()) << during.error().ToString();
    EXPECT_EQ(*during, idle + 1);                // the call ran on a worker of its own...
    EXPECT_EQ(ThreadCountReaching(idle), idle);  // ...which ended with it
  }
}

TEST(CallWatchdogTest, AnAbandonedCallKeepsOneWorkerUntilItReturnsThenNoneRemains) {
  const size_t idle = ThreadCount();
  CallWatchdog w("test");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Result<int> hung = w.Run<int>("hung call", milliseconds(50), [released]() -> Result<int> {
    released.wait();
    return 1;
  });
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.error().code, ErrorCode::kDeadlineExceeded) << hung.error().ToString();
  EXPECT_TRUE(w.Stuck());
  EXPECT_EQ(ThreadCount(), idle + 1);  // the abandoned call still holds its worker

  // Further calls fail fast and start no second worker.
  Result<int> busy = w.Run<int>("next", seconds(10), []() -> Result<int> { return 2; });
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kUnavailable) << busy.error().ToString();
  EXPECT_EQ(ThreadCount(), idle + 1);

  // The driver "returns": a task posted behind the hung call runs once it has.
  auto after = std::make_shared<std::promise<void>>();
  std::future<void> ran = after->get_future();
  w.Post([after] { after->set_value(); });
  release.set_value();
  ASSERT_EQ(ran.wait_for(seconds(10)), std::future_status::ready);
  Result<int> next = w.Run<int>("next", seconds(10), []() -> Result<int> { return 3; });
  ASSERT_TRUE(next.ok()) << next.error().ToString();
  EXPECT_EQ(*next, 3);
  EXPECT_FALSE(w.Stuck());
  EXPECT_EQ(ThreadCountReaching(idle), idle);
}

TEST(CallWatchdogTest, StopJoinsAnIdleWatchdogAtOnce) {
  CallWatchdog w("test");
  ASSERT_TRUE(w.Run<int>("call", seconds(10), []() -> Result<int> { return 1; }).ok());
  const auto start = std::chrono::steady_clock::now();
  w.Stop(std::chrono::steady_clock::now() + seconds(10));
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(1));
  Result<int> late = w.Run<int>("late", seconds(10), []() -> Result<int> { return 1; });
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kCancelled);
}

}  // namespace
}  // namespace taolie::gpu
