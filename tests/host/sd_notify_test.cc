#include "host/sd_notify.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

namespace taolie::host {
namespace {

namespace fs = std::filesystem;

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  NotifySocket() {
    std::string tmpl = (fs::temp_directory_path() / "taolie-notify-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return;
    dir_ = tmpl;
    path_ = dir_ + "/notify.sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
    timeval tv{2, 0};  // bounded receive
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  std::string Receive() {
    char buf[512];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

class SdNotifyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("INVOCATION_ID");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
};

TEST_F(SdNotifyTest, SendsStateToNotifySocket) {
  NotifySocket sock;
  ASSERT_TRUE(sock.ok());
  setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  EXPECT_TRUE(UnderSystemd());
  EXPECT_TRUE(SdNotify::Ready());
  EXPECT_EQ(sock.Receive(), "READY=1");
  EXPECT_TRUE(SdNotify::Status("3 GPUs\nidle"));
  EXPECT_EQ(sock.Receive(), "STATUS=3 GPUs idle");
  EXPECT_TRUE(SdNotify::Watchdog());
  EXPECT_EQ(sock.Receive(), "WATCHDOG=1");
  EXPECT_TRUE(SdNotify::Stopping());
  EXPECT_EQ(sock.Receive(), "STOPPING=1");
}

TEST_F(SdNotifyTest, NoOpOutsideSystemd) {
  unsetenv("NOTIFY_SOCKET");
  unsetenv("INVOCATION_ID");
  EXPECT_FALSE(UnderSystemd());
  EXPECT_FALSE(SdNotify::Ready());
  EXPECT_FALSE(SdNotify::Watchdog());
  EXPECT_FALSE(SdNotify::WatchdogInterval().has_value());
  setenv("INVOCATION_ID", "0123456789abcdef", 1);
  EXPECT_TRUE(UnderSystemd());
}

TEST_F(SdNotifyTest, WatchdogIntervalFromEnvironment) {
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  auto interval = SdNotify::WatchdogInterval();
  ASSERT_TRUE(interval.has_value());
  EXPECT_EQ(*interval, std::chrono::seconds(30));
}

}  // namespace
}  // namespace taolie::host
