// Host volume paths resolved on a real temporary tree (issue 7, item 5). Ownership and mode
// rules need root (chown); the tests run as root, as CI does.
#include "host/volume_guard.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "fixtures/test_env.h"

namespace taolie::host {
namespace {

namespace fs = std::filesystem;

class VolumeGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      if (testing::InCi()) FAIL() << "the volume guard tests need root (CI=true)";
      GTEST_SKIP() << "not root: ownership rules cannot be set up";
    }
    char tmpl[] = "/tmp/taolie-volume-guard-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = fs::canonical(tmpl).string();
    root_ = base_ + "/root";
    Dir(root_);
    opts_.allowed_roots = {root_};
  }
  void TearDown() override {
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }
  static void Dir(const std::string& p, mode_t mode = 0755) {
    fs::create_directories(p);
    ASSERT_EQ(::chmod(p.c_str(), mode), 0) << p;
  }
  std::string Error(const std::string& path) {
    auto r = ResolveVolumeHostPath(path, opts_);
    EXPECT_FALSE(r.ok()) << path << " was accepted as " << r.value_or("");
    return r.ok() ? "" : r.error().message;
  }

  std::string base_, root_;
  VolumeGuardOptions opts_;
};

TEST_F(VolumeGuardTest, AcceptsARootOwnedDirectoryStrictlyInsideARoot) {
  Dir(root_ + "/renter/data");
  auto r = ResolveVolumeHostPath(root_ + "/renter/data", opts_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, root_ + "/renter/data");
  // Written with doubled or trailing slashes, the canonical form comes back.
  r = ResolveVolumeHostPath(root_ + "//renter/data/", opts_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, root_ + "/renter/data");
}

TEST_F(VolumeGuardTest, ARootBehindASymlinkBindsItsCanonicalPath) {
  Dir(root_ + "/x");
  fs::create_directory_symlink(root_, base_ + "/alias");
  opts_.allowed_roots = {base_ + "/alias/"};
  auto r = ResolveVolumeHostPath(base_ + "/alias/x", opts_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, root_ + "/x");
}

TEST_F(VolumeGuardTest, RefusesASymlinkPlantedUnderTheRoot) {
  fs::create_directory_symlink("/", root_ + "/link");
  EXPECT_EQ(Error(root_ + "/link"), "volumes: host path '" + root_ + "/link' contains a symlink");
  EXPECT_EQ(
      Error(root_ + "/link/etc"),
      "volumes: host path '" + root_ + "/link/etc' contains a symlink at '" + root_ + "/link'");
  // A relative link that stays inside the root is refused all the same.
  Dir(root_ + "/real");
  fs::create_directory_symlink("real", root_ + "/inside");
  EXPECT_NE(Error(root_ + "/inside").find("contains a symlink"), std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesDotDotAndDot) {
  Dir(root_ + "/a");
  EXPECT_EQ(Error(root_ + "/a/.."), "volumes: host path '" + root_ + "/a/..' contains '..'");
  EXPECT_NE(Error(root_ + "/a/../../etc").find("contains '..'"), std::string::npos);
  EXPECT_NE(Error(root_ + "/./a").find("contains '.'"), std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesTheRootItselfAndWhatIsOutsideIt) {
  EXPECT_NE(Error(root_).find("is an allowed root itself"), std::string::npos);
  EXPECT_NE(Error(root_ + "/").find("is an allowed root itself"), std::string::npos);
  EXPECT_NE(Error(base_).find("is not under an allowed root"), std::string::npos);
  EXPECT_NE(Error(base_ + "/rootx").find("is not under an allowed root"), std::string::npos);
  EXPECT_NE(Error("relative/x").find("must be an absolute path"), std::string::npos);
  opts_.allowed_roots.clear();
  EXPECT_NE(Error(root_ + "/a").find("host volumes are disabled"), std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesAMissingPathAndNeverCreatesIt) {
  EXPECT_EQ(Error(root_ + "/missing"), "volumes: host path '" + root_ + "/missing' does not exist");
  EXPECT_NE(Error(root_ + "/missing/deeper").find("does not exist (missing at"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_ + "/missing"));
}

TEST_F(VolumeGuardTest, RefusesAFile) {
  std::ofstream(root_ + "/file") << "x";
  EXPECT_NE(Error(root_ + "/file").find("is not a directory"), std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesADirectoryOnTheWayWritableByGroupOrOthers) {
  Dir(root_ + "/shared", 0775);
  Dir(root_ + "/shared/x");
  EXPECT_EQ(Error(root_ + "/shared/x"), "volumes: host path '" + root_ +
                                            "/shared/x' passes directory '" + root_ +
                                            "/shared' writable by group or others");
  Dir(root_ + "/open", 0757);
  EXPECT_NE(Error(root_ + "/open").find("writable by group or others"), std::string::npos);
  // The root itself counts.
  Dir(root_ + "/ok");
  ASSERT_EQ(::chmod(root_.c_str(), 01777), 0);
  EXPECT_NE(Error(root_ + "/ok").find("passes directory '" + root_ + "' writable"),
            std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesADirectoryOnTheWayNotOwnedByRoot) {
  Dir(root_ + "/renter/x");
  ASSERT_EQ(::chown((root_ + "/renter").c_str(), 1000, 1000), 0);
  EXPECT_EQ(Error(root_ + "/renter/x"), "volumes: host path '" + root_ +
                                            "/renter/x' passes directory '" + root_ +
                                            "/renter' owned by uid 1000, not root");
  // The last component counts too.
  Dir(root_ + "/mine");
  ASSERT_EQ(::chown((root_ + "/mine").c_str(), 1000, 0), 0);
  EXPECT_NE(Error(root_ + "/mine").find("owned by uid 1000"), std::string::npos);
}

TEST_F(VolumeGuardTest, RefusesTheDockerSocketAndWhatHoldsIt) {
  Dir(root_ + "/run");
  std::ofstream(root_ + "/run/docker.sock") << "";
  opts_.protected_paths = {{root_ + "/run/docker.sock", "the Docker socket"}};
  EXPECT_EQ(Error(root_ + "/run/docker.sock"),
            "volumes: host path '" + root_ + "/run/docker.sock' is the Docker socket");
  EXPECT_EQ(Error(root_ + "/run"), "volumes: host path '" + root_ +
                                       "/run' contains the Docker socket ('" + root_ +
                                       "/run/docker.sock')");
}

TEST_F(VolumeGuardTest, RefusesDataDirAndWhatIsInsideIt) {
  Dir(root_ + "/agent/pg");
  opts_.protected_paths = {{root_ + "/agent", "data_dir"}};
  EXPECT_EQ(
      Error(root_ + "/agent/pg"),
      "volumes: host path '" + root_ + "/agent/pg' is inside data_dir ('" + root_ + "/agent')");
  EXPECT_NE(Error(root_ + "/agent").find("is data_dir"), std::string::npos);
}

TEST_F(VolumeGuardTest, AProtectedPathReachedThroughTheRootsLinkIsRefused) {
  // The protected path is named through a link; the canonical path still matches it.
  Dir(root_ + "/agent");
  fs::create_directory_symlink(root_, base_ + "/alias");
  opts_.protected_paths = {{base_ + "/alias/agent", "data_dir"}};
  EXPECT_NE(Error(root_ + "/agent").find("is data_dir"), std::string::npos);
}

TEST_F(VolumeGuardTest, WithoutOpenat2HostVolumesAreRefused) {
  Dir(root_ + "/x");
  opts_.open_beneath = [](int, const char*) {
    errno = ENOSYS;
    return -1;
  };
  auto r = ResolveVolumeHostPath(root_ + "/x", opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("openat2"), std::string::npos) << r.error().message;
}

TEST(PathIsWithin, ComparesWholeComponents) {
  EXPECT_TRUE(PathIsWithin("/a/b", "/a"));
  EXPECT_TRUE(PathIsWithin("/a", "/a"));
  EXPECT_TRUE(PathIsWithin("/a", "/"));
  EXPECT_FALSE(PathIsWithin("/ab", "/a"));
  EXPECT_FALSE(PathIsWithin("/a", "/a/b"));
}

}  // namespace
}  // namespace taolie::host
