// E-mail alerts through the host's MTA (issue 17 item 7): `sendmail -t -i` with the whole
// message on its standard input, run by argument vector (no shell), through the real
// SubprocessRunner; a recording script stands in for /usr/sbin/sendmail.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "host/command_runner.h"
#include "telemetry/alert_channels.h"

namespace taolie::telemetry {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SendmailChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taolie-sendmail-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // A fake sendmail: records its arguments and standard input, then exits with `status`.
  std::string FakeSendmail(int status) {
    const std::string path = dir_ + "/sendmail";
    std::ofstream(path) << "#!/bin/sh\n"
                        << "printf '%s\\n' \"$@\" > '" << dir_ << "/argv'\n"
                        << "cat > '" << dir_ << "/stdin'\n"
                        << "echo 'queued as 4XyZ'\n"
                        << "exit " << status << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }
  static Alert SampleAlert() {
    Alert a;
    a.kind = "gpu_quarantined";
    a.severity = "critical";
    a.state = "quarantined";
    a.host = "gpu-host-1";
    a.agent_id = "agent-1";
    a.gpu_uuid = "GPU-a";
    a.message = "GPU 0 quarantined: ecc: 2 uncorrected ECC errors";
    a.at = SystemTime(std::chrono::seconds(1'800'000'000));
    return a;
  }
  std::string dir_;
  host::SubprocessRunner runner_;
};

TEST_F(SendmailChannelTest, TheMessageGoesOnStdinOfSendmailDashTDashI) {
  SendmailOptions o;
  o.path = FakeSendmail(0);
  o.from = "agent@gpu-host-1";
  o.to = {"ops@example.com", "oncall@example.com"};
  auto ch = MakeSendmailChannel(o, runner_);
  EXPECT_STREQ(ch->Name(), "email");
  Status st = ch->Deliver(SampleAlert(), std::stop_token());
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(ReadAll(dir_ + "/argv"), "-t\n-i\n");
  const std::string mail = ReadAll(dir_ + "/stdin");
  EXPECT_NE(mail.find("From: agent@gpu-host-1\r\n"), std::string::npos) << mail;
  EXPECT_NE(mail.find("To: ops@example.com, oncall@example.com\r\n"), std::string::npos) << mail;
  EXPECT_NE(mail.find("Subject: "), std::string::npos) << mail;
  EXPECT_NE(mail.find("GPU 0 quarantined: ecc: 2 uncorrected ECC errors"), std::string::npos);
  EXPECT_NE(mail.find("gpu_uuid: GPU-a\r\n"), std::string::npos) << mail;
}

TEST_F(SendmailChannelTest, ExitStatusesMapToRetryOrFinal) {
  const struct {
    int status;
    ErrorCode code;
  } cases[] = {{75, ErrorCode::kUnavailable},
               {1, ErrorCode::kFailedPrecondition},
               {67, ErrorCode::kFailedPrecondition}};
  for (const auto& c : cases) {
    SendmailOptions o;
    o.path = FakeSendmail(c.status);
    o.from = "agent@h";
    o.to = {"ops@example.com"};
    Status st = MakeSendmailChannel(o, runner_)->Deliver(SampleAlert(), std::stop_token());
    ASSERT_FALSE(st.ok()) << c.status;
    EXPECT_EQ(st.error().code, c.code) << c.status << ": " << st.error().ToString();
    EXPECT_NE(st.error().message.find("exited with " + std::to_string(c.status)), std::string::npos)
        << st.error().message;
  }
}

TEST_F(SendmailChannelTest, AMissingProgramIsRetriedAndNoRecipientIsRefused) {
  SendmailOptions o;
  o.path = dir_ + "/no-such-sendmail";
  o.from = "agent@h";
  o.to = {"ops@example.com"};
  Status st = MakeSendmailChannel(o, runner_)->Deliver(SampleAlert(), std::stop_token());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable) << st.error().ToString();
  o.path = FakeSendmail(0);
  o.to.clear();
  st = MakeSendmailChannel(o, runner_)->Deliver(SampleAlert(), std::stop_token());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/stdin"));  // never ran
}

}  // namespace
}  // namespace taolie::telemetry
