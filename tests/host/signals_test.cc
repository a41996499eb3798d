#include "host/signals.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

namespace taolie::host {
namespace {

TEST(SignalWaiterTest, TakesBlockedSignalsSynchronously) {
  ASSERT_TRUE(SignalWaiter::BlockSignals().ok());
  EXPECT_EQ(SignalWaiter::Wait(std::chrono::milliseconds(0)), 0);  // nothing pending: poll

  ASSERT_EQ(kill(getpid(), SIGHUP), 0);  // blocked, so it stays pending instead of killing us
  EXPECT_EQ(SignalWaiter::Wait(std::chrono::milliseconds(2000)), SIGHUP);

  // A thread started after BlockSignals inherits the mask; the waiting thread receives it.
  std::thread sender([] { kill(getpid(), SIGTERM); });
  sender.join();
  EXPECT_EQ(SignalWaiter::Wait(std::chrono::milliseconds(2000)), SIGTERM);
  EXPECT_EQ(SignalWaiter::Wait(std::chrono::milliseconds(0)), 0);
}

}  // namespace
}  // namespace taolie::host
