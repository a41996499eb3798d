// Host volumes end to end (issue 7, item 5): a path under a root-owned allowed root is
// mounted through the Mounts API with its canonical source; a symlink planted under the root,
// `..`, the root itself, the Docker socket and a path another running rental binds are each
// refused at stage validate, with the reason.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class VolumeTest : public AgentE2eTest {
 protected:
  void SetUp() override {
    AgentE2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) {
      if (InCi()) FAIL() << "root is needed for a root-owned allowed root (CI=true)";
      GTEST_SKIP() << "not root";
    }
    char tmpl[] = "/tmp/taolie-volume-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = fs::canonical(tmpl).string();
    ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
    fs::create_directories(root_ + "/shared");
    std::ofstream(root_ + "/shared/hello.txt") << "hello from the host\n";
    fs::create_directory_symlink("/", root_ + "/link");
    const std::string scheme = "unix://";
    ASSERT_EQ(docker_host_.rfind(scheme, 0), 0u) << docker_host_;
    socket_ = docker_host_.substr(scheme.size());
  }
  void TearDown() override {
    AgentE2eTest::TearDown();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // Queues a deploy of the SSH image binding `host` at /workspace.
  void Deploy(const std::string& id, const std::string& host) {
    sim_->QueueCommand(agent_id_, "deploy",
                       json{{"deployment_id", id},
                            {"image", SshImage()},
                            {"gpu_count", 0},
                            {"duration_minutes", 10},
                            {"ports", {{"22", 22}}},
                            {"volumes", {{host, "/workspace"}}}}
                           .dump());
  }
  // The failed event of a refused deploy: stage validate, a reason naming `problem`, and no
  // container.
  void ExpectRefused(const std::string& id, const std::string& problem) {
    json failed = WaitEvent(id, "failed", 30s);
    ASSERT_FALSE(failed.is_null()) << id << " was not refused";
    std::cout << "# " << id << ": " << failed["error"].get<std::string>() << "\n";
    EXPECT_EQ(failed["stage"], "validate") << failed.dump();
    EXPECT_NE(failed["error"].get<std::string>().find(problem), std::string::npos) << failed.dump();
    EXPECT_TRUE(Containers(id).empty()) << id;
  }

  std::string root_, socket_;
};

TEST_F(VolumeTest, MountsARootOwnedPathAndRefusesLinksDotDotRootsSocketAndSharing) {
  HarnessOptions o;
  // The socket's directory is an allowed root too, so that the socket itself is refused by
  // the protected-path rule rather than for lying outside every root.
  const std::string sock_dir = fs::path(socket_).parent_path().string();
  o.deployment_yaml = "  allowed_volume_roots: [\"" + root_ + "\", \"" + sock_dir + "\"]\n";
  StartAgent(o);
  const std::string dk = "docker -H " + docker_host_ + " ";

  Deploy("vol-ok", root_ + "/shared");
  json ok = WaitEvent("vol-ok", "success", 120s);
  ASSERT_FALSE(ok.is_null()) << "the valid volume was not deployed";
  EXPECT_EQ(Shell(dk + "exec deployment-vol-ok cat /workspace/hello.txt"), "hello from the host\n");
  EXPECT_EQ(Shell(dk + "exec deployment-vol-ok ls /workspace"), "hello.txt\n");
  std::string mounts = Shell(dk + "inspect -f '{{json .HostConfig.Mounts}}' deployment-vol-ok");
  std::cout << "# docker inspect -f '{{json .HostConfig.Mounts}}' deployment-vol-ok\n" << mounts;
  json m = json::parse(mounts, nullptr, false);
  ASSERT_TRUE(m.is_array() && m.size() == 1) << mounts;
  EXPECT_EQ(m[0]["Type"], "bind");
  EXPECT_EQ(m[0]["Source"], root_ + "/shared");
  EXPECT_EQ(m[0]["Target"], "/workspace");
  EXPECT_EQ(Shell(dk + "inspect -f '{{json .HostConfig.Binds}}' deployment-vol-ok"), "null\n");
  std::string seen = Shell(dk +
                           "inspect -f '{{range .Mounts}}{{.Type}} {{.Source}}{{end}}' "
                           "deployment-vol-ok");
  EXPECT_EQ(seen, "bind " + root_ + "/shared\n");

  // Each refused at validate; the first rental keeps running meanwhile.
  Deploy("vol-link", root_ + "/link");
  Deploy("vol-link-deep", root_ + "/link/etc");
  Deploy("vol-dotdot", root_ + "/shared/../link");
  Deploy("vol-root", root_);
  Deploy("vol-socket", socket_);
  Deploy("vol-shared", root_ + "/shared");
  ExpectRefused("vol-link", "contains a symlink");
  ExpectRefused("vol-link-deep", "contains a symlink at '" + root_ + "/link'");
  ExpectRefused("vol-dotdot", "'..'");
  ExpectRefused("vol-root", "is an allowed root itself");
  ExpectRefused("vol-socket", "is the Docker socket");
  ExpectRefused("vol-shared", "another running rental binds");
  EXPECT_EQ(Managed().size(), 1u);

  // A missing path is refused, and not created.
  Deploy("vol-missing", root_ + "/nothing-here");
  ExpectRefused("vol-missing", "does not exist");
  EXPECT_FALSE(fs::exists(root_ + "/nothing-here"));
}

}  // namespace
}  // namespace taolie::testing
