#include "host/process_limits.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace taolie::host {
namespace {

// Lowers the soft limit (allowed to any process), then raises it back to the hard one.
TEST(RaiseOpenFilesLimitTest, SoftLimitBecomesTheHardOne) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  ASSERT_GT(lim.rlim_max, 64u);
  rlimit lowered = lim;
  lowered.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  auto raised = RaiseOpenFilesLimit();
  ASSERT_TRUE(raised.ok()) << raised.error().ToString();
  EXPECT_EQ(raised->soft_before, 64u);
  EXPECT_EQ(raised->soft, lim.rlim_max);
  EXPECT_EQ(raised->hard, lim.rlim_max);
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, lim.rlim_max);
  // Already raised: nothing to change.
  auto again = RaiseOpenFilesLimit();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->soft_before, lim.rlim_max);
}

}  // namespace
}  // namespace taolie::host
