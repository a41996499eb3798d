// The real subprocess runner: small commands that finish (or are killed) within a second.
#include "host/command_runner.h"

#include <gtest/gtest.h>

namespace taolie::host {
namespace {

using std::chrono::milliseconds;

TEST(SubprocessRunnerTest, ExitCodeOutputAndStdin) {
  SubprocessRunner runner;
  auto out =
      runner.Run({"sh", "-c", "cat; echo err >&2; exit 3"}, "from stdin\n", milliseconds(5000));
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->output, "from stdin\nerr\n");
  EXPECT_EQ(out->stdout_text, "from stdin\n");
}

// What a tool writes to stderr in the middle of a stdout line (iptables-nft's remark about
// legacy tables, between two 4 KiB blocks of iptables-save) stays out of stdout_text.
TEST(SubprocessRunnerTest, StderrInTheMiddleOfALineStaysOutOfStdout) {
  SubprocessRunner runner;
  auto out = runner.Run({"sh", "-c", "printf 'half a '; printf '# remark\\n' >&2; echo line"}, "",
                        milliseconds(5000));
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(out->stdout_text, "half a line\n");
  EXPECT_NE(out->output.find("# remark"), std::string::npos);
  EXPECT_EQ(out->output.size(), out->stdout_text.size() + std::string("# remark\n").size());
}

TEST(SubprocessRunnerTest, NoShellInterpretsTheArguments) {
  SubprocessRunner runner;
  auto out = runner.Run({"echo", "$HOME;", "`id`", "a b"}, "", milliseconds(5000));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(out->output, "$HOME; `id` a b\n");
}

TEST(SubprocessRunnerTest, MissingToolIsNotFound) {
  SubprocessRunner runner;
  auto out = runner.Run({"taolie-no-such-tool"}, "", milliseconds(5000));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kNotFound);
}

TEST(SubprocessRunnerTest, KilledAtTheDeadline) {
  SubprocessRunner runner;
  auto start = std::chrono::steady_clock::now();
  auto out = runner.Run({"sleep", "30"}, "", milliseconds(300));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace taolie::host
