// A deploy's host volumes at admission (issue 7, item 5): the paths no rental may reach come
// from the config and the engine, a path a running rental binds is refused, and what is
// admitted is the canonical path.
#include "engine/volume_admission.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "fixtures/test_env.h"

namespace taolie::engine {
namespace {

namespace fs = std::filesystem;

bool Protects(const std::vector<host::ProtectedPath>& v, const std::string& path,
              const std::string& what) {
  return std::any_of(v.begin(), v.end(),
                     [&](const auto& p) { return p.path == path && p.what == what; });
}

TEST(ProtectedHostPathsTest, NamesTheSocketsDataDirConfigDirAndDockerRoot) {
  config::Config cfg;
  cfg.docker.host = "unix:///tmp/private/docker.sock";
  cfg.data_dir = "/var/lib/taolie-host-agent";
  cfg.config_file = "/etc/taolie-host-agent/config.yaml";
  auto p = ProtectedHostPaths(cfg, "/srv/docker");
  EXPECT_TRUE(Protects(p, "/var/run/docker.sock", "the Docker socket"));
  EXPECT_TRUE(Protects(p, "/run/docker.sock", "the Docker socket"));
  EXPECT_TRUE(Protects(p, "/tmp/private/docker.sock", "the Docker socket"));
  EXPECT_TRUE(Protects(p, "/var/lib/taolie-host-agent", "data_dir"));
  EXPECT_TRUE(Protects(p, "/etc/taolie-host-agent", "the config file's directory"));
  EXPECT_TRUE(Protects(p, "/srv/docker", "Docker's data root"));
  cfg.docker.host = "tcp://127.0.0.1:2375";
  EXPECT_EQ(ProtectedHostPaths(cfg, "/srv/docker").size(), 5u);
}

class AdmitVolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      if (testing::InCi()) FAIL() << "needs root (CI=true)";
      GTEST_SKIP() << "not root: the allowed root cannot be root-owned";
    }
    char tmpl[] = "/tmp/taolie-volume-admission-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = fs::canonical(tmpl).string();
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    for (const char* d : {"/rentals/a/sub", "/rentals/b", "/agent"}) {
      fs::create_directories(base_ + d);
    }
    cfg_.deployment.allowed_volume_roots = {base_ + "/rentals"};
    cfg_.data_dir = base_ + "/agent";
    engine_ = docker::VersionInfo{"20.10.24", "1.41", "linux", base_ + "/docker", "", ""};
  }
  void TearDown() override {
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }
  domain::Deployment Running(const std::string& id, const std::string& host_path) {
    rules::DeploySpec other;
    other.volumes = {{host_path, "/data"}};
    domain::Deployment d;
    d.id = id;
    d.state = domain::DeploymentState::kRunning;
    d.spec_json = rules::SpecToJson(other);
    return d;
  }

  std::string base_;
  config::Config cfg_;
  Result<docker::VersionInfo> engine_ = docker::VersionInfo{};
};

TEST_F(AdmitVolumesTest, RewritesHostPathsToTheirCanonicalForm) {
  rules::DeploySpec spec;
  spec.volumes = {{base_ + "//rentals/a/", "/workspace"}};
  ASSERT_TRUE(AdmitVolumes(cfg_, engine_, {}, &spec).ok());
  EXPECT_EQ(spec.volumes[0].first, base_ + "/rentals/a");
  EXPECT_EQ(spec.volumes[0].second, "/workspace");
}

TEST_F(AdmitVolumesTest, RefusesAPathARunningRentalBindsOrOneInsideOrAroundIt) {
  std::vector<domain::Deployment> active = {Running("other", base_ + "/rentals/a")};
  for (const std::string& path : {base_ + "/rentals/a", base_ + "/rentals/a/sub"}) {
    rules::DeploySpec spec;
    spec.volumes = {{path, "/workspace"}};
    Status st = AdmitVolumes(cfg_, engine_, active, &spec);
    ASSERT_FALSE(st.ok()) << path;
    EXPECT_EQ(st.error().message, "volumes: host path '" + path +
                                      "' overlaps a host path another running rental binds");
  }
  active = {Running("other", base_ + "/rentals/a/sub")};
  rules::DeploySpec around;
  around.volumes = {{base_ + "/rentals/a", "/workspace"}};
  EXPECT_FALSE(AdmitVolumes(cfg_, engine_, active, &around).ok());
  // A sibling, or the same path held by an ended rental, is fine.
  rules::DeploySpec sibling;
  sibling.volumes = {{base_ + "/rentals/b", "/workspace"}};
  EXPECT_TRUE(AdmitVolumes(cfg_, engine_, active, &sibling).ok());
  active[0].state = domain::DeploymentState::kEnded;
  EXPECT_TRUE(AdmitVolumes(cfg_, engine_, active, &around).ok());
}

TEST_F(AdmitVolumesTest, RefusesDataDirUnderAnAllowedRoot) {
  cfg_.deployment.allowed_volume_roots = {base_};
  rules::DeploySpec spec;
  spec.volumes = {{base_ + "/agent", "/workspace"}};
  Status st = AdmitVolumes(cfg_, engine_, {}, &spec);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "volumes: host path '" + base_ + "/agent' is data_dir");
}

TEST_F(AdmitVolumesTest, WithoutDockersDataRootHostVolumesAreRefused) {
  rules::DeploySpec spec;
  spec.volumes = {{base_ + "/rentals/a", "/workspace"}};
  Result<docker::VersionInfo> down = MakeError(ErrorCode::kUnavailable, "docker: connect failed");
  Status st = AdmitVolumes(cfg_, down, {}, &spec);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("Docker's data root is unknown (docker: connect failed)"),
            std::string::npos);
  EXPECT_EQ(spec.volumes[0].first, base_ + "/rentals/a");  // unchanged
  // No volumes: nothing to check, the engine is not needed.
  rules::DeploySpec none;
  EXPECT_TRUE(AdmitVolumes(cfg_, down, {}, &none).ok());
}

}  // namespace
}  // namespace taolie::engine
