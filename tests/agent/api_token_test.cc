#include "agent/api_token.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace taolie::agent {
namespace {

class ApiTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taolie-token-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

mode_t Mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 0777 : 0;
}

TEST_F(ApiTokenTest, MadeOnceRootOnlyAndKept) {
  const std::string path = dir_ + "/api-token";
  auto first = LoadOrCreateApiToken(path);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->size(), 32u);
  EXPECT_EQ(Mode(path), 0600u);
  auto again = LoadOrCreateApiToken(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  auto read = ReadApiToken(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, *first);
  // Another file gets another token.
  auto other = LoadOrCreateApiToken(dir_ + "/other-token");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *first);
}

TEST_F(ApiTokenTest, AFileOthersCanReadIsMadeRootOnlyAgain) {
  const std::string path = dir_ + "/api-token";
  std::ofstream(path) << "abcdefghijklmnopqrstuvwxyz012345\n";
  ::chmod(path.c_str(), 0644);
  auto token = LoadOrCreateApiToken(path);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, "abcdefghijklmnopqrstuvwxyz012345");
  EXPECT_EQ(Mode(path), 0600u);
}

TEST_F(ApiTokenTest, MissingOrInvalidTokensSayWhatToDo) {
  auto missing = ReadApiToken(dir_ + "/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("the agent makes it at its first start"),
            std::string::npos);
  std::ofstream(dir_ + "/short") << "abc\n";
  auto bad = ReadApiToken(dir_ + "/short");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("delete it"), std::string::npos);
}

}  // namespace
}  // namespace taolie::agent
