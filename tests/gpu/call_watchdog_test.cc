// The NVML call worker survives what throws on it (issue 17 item 8): a throwing call becomes
// an Internal error for its caller, a throwing posted task is logged, and the next call runs.
#include "gpu/call_watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>

namespace taolie::gpu {
namespace {

using std::chrono::seconds;

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

}  // namespace
}  // namespace taolie::gpu
