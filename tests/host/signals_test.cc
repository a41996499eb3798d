#include "host/signals.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
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

// A write to a pipe nobody reads fails with EPIPE instead of killing the process (issue 17
// item 8): without IgnoreSigpipe() this test dies of SIGPIPE.
TEST(IgnoreSigpipeTest, AWriteToAClosedPipeIsAnErrorNotADeath) {
  ASSERT_TRUE(IgnoreSigpipe().ok());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  errno = 0;
  EXPECT_EQ(write(fds[1], "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
  close(fds[1]);
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
}

}  // namespace
}  // namespace taolie::host
