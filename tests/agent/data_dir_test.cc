// data_dir made at start when missing (issue 17 item 7): mode 0750 whatever the umask; a
// missing parent, a file in the way or an unusable path is an error naming the key; an
// existing directory is left as it is.
#include "agent/data_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace taolie::agent {
namespace {

namespace fs = std::filesystem;

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taolie-data-dir-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  static unsigned Mode(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  std::string root_;
};

TEST_F(DataDirTest, AMissingDirectoryIsCreatedWithMode0750WhateverTheUmask) {
  const std::string dir = root_ + "/state";
  const mode_t old = ::umask(0077);
  Status st = EnsureDataDir(dir);
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(Mode(dir), 0750u);
  // A second start finds it and keeps it.
  EXPECT_TRUE(EnsureDataDir(dir).ok());
  EXPECT_EQ(Mode(dir), 0750u);
}

TEST_F(DataDirTest, AnExistingDirectoryIsLeftAsItIs) {
  const std::string dir = root_ + "/kept";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0711), 0);
  std::ofstream(dir + "/api-token") << "secret\n";
  ASSERT_TRUE(EnsureDataDir(dir).ok());
  EXPECT_EQ(Mode(dir), 0711u);
  EXPECT_TRUE(fs::exists(dir + "/api-token"));
  EXPECT_TRUE(EnsureDataDir(dir + "/").ok());  // a trailing slash names the same directory
}

TEST_F(DataDirTest, BadPathsAreStartUpErrorsNamingTheKey) {
  std::ofstream(root_ + "/file") << "x";
  const struct Case {
    std::string path;
    std::string says;
  } cases[] = {
      {root_ + "/missing/state", "does not exist"},
      {root_ + "/file", "is not a directory"},
      {root_ + "/file/state", "is not a directory"},
      {"relative/state", "absolute path"},
      {"", "absolute path"},
  };
  for (const auto& c : cases) {
    Status st = EnsureDataDir(c.path);
    ASSERT_FALSE(st.ok()) << c.path;
    EXPECT_EQ(st.error().code, ErrorCode::kFailedPrecondition) << c.path;
    EXPECT_EQ(st.error().message.rfind("data_dir: ", 0), 0u) << st.error().message;
    EXPECT_NE(st.error().message.find(c.says), std::string::npos) << st.error().message;
  }
  // Nothing was made on the way.
  EXPECT_FALSE(fs::exists(root_ + "/missing"));
}

TEST_F(DataDirTest, ADanglingLinkIsNotTakenForADirectory) {
  const std::string link = root_ + "/link";
  ASSERT_EQ(::symlink((root_ + "/nowhere").c_str(), link.c_str()), 0);
  Status st = EnsureDataDir(link);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("data_dir: "), std::string::npos);
}

// Writability as the agent sees it: only meaningful for a user the permissions bind (root
// passes every mode bit), so the check runs as that user when the test is not root.
TEST_F(DataDirTest, AnUnwritableDirectoryIsAnError) {
  if (::geteuid() == 0) {
    // Root is refused only by a read-only filesystem: /proc/1 is not writable by anyone.
    Status st = EnsureDataDir("/proc/1");
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("data_dir: /proc/1 is not writable"), std::string::npos)
        << st.error().message;
    return;
  }
  const std::string dir = root_ + "/ro";
  ASSERT_EQ(::mkdir(dir.c_str(), 0500), 0);
  Status st = EnsureDataDir(dir);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("not writable"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace taolie::agent
