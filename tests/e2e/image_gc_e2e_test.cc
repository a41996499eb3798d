// Image collection end to end (issue 7, item 4): with docker.image_gc_min_free_gb far above
// the free space and docker.image_gc_days 0, the image of a rental that ended is removed
// within a few monitor rounds, with its removal logged and counted on /status; the owner's
// image no rental used, an image a (stopped) container uses, the running rental's image and
// the prefetch-listed test images stay.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kOwner = "taolie-gc-owner:1";
constexpr const char* kInUse = "taolie-gc-inuse:1";
constexpr const char* kHolder = "taolie-gc-holder";

class ImageGcTest : public AgentE2eTest {
 protected:
  void TearDown() override {
    AgentE2eTest::TearDown();
    if (docker_) {
      (void)docker_->Remove(kHolder, true);
      (void)docker_->RemoveImage(kOwner);
      (void)docker_->RemoveImage(Victim());
      (void)docker_->RemoveImage(kInUse);
    }
  }
  std::string Cli(const std::string& args) {
    return Shell("docker -H " + docker_host_ + " " + args + " 2>&1");
  }
  // A one-file image of its own (distinct content, so a distinct id), imported as `tag`.
  void Import(const std::string& tag) {
    char tmpl[] = "/tmp/taolie-gc-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::ofstream(std::string(tmpl) + "/marker") << tag << "\n";
    Shell(std::string("tar -C ") + tmpl + " -cf - marker | docker -H " + docker_host_ +
          " import - " + tag + " 2>&1");
    fs::remove_all(tmpl);
    auto exists = docker_->ImageExists(tag);
    ASSERT_TRUE(exists.ok() && *exists) << tag << " not imported";
  }
  // The rental image that ends: the sshd image with one more label (a distinct id), pushed to
  // the test registry.
  std::string Victim() const { return registry_ + "/taolie-test/gc-victim:1"; }
  void PushVictim() {
    Cli("rm -f taolie-gc-commit");
    ASSERT_NE(Cli("create --name taolie-gc-commit " + SshImage()), "");
    Cli("commit --change 'LABEL taolie.test=gc-victim' taolie-gc-commit " + Victim());
    Cli("rm -f taolie-gc-commit");
    const std::string pushed = Cli("push " + Victim());
    ASSERT_TRUE(Exists(Victim())) << pushed;
  }
  void Deploy(const std::string& id, const std::string& image) {
    sim_->QueueCommand(agent_id_, "deploy",
                       json{{"deployment_id", id},
                            {"image", image},
                            {"gpu_count", 0},
                            {"duration_minutes", 10},
                            {"ports", {{"22", 22}}}}
                           .dump());
  }
  bool Exists(const std::string& image) {
    auto e = docker_->ImageExists(image);
    return e.ok() && *e;
  }
};

TEST_F(ImageGcTest, RemovesAnEndedRentalsImageAndKeepsTheOwnersInUseAndPrefetchListed) {
  Import(kOwner);
  Import(kInUse);
  PushVictim();
  ASSERT_NE(Cli(std::string("create --name ") + kHolder + " " + kInUse + " /marker"), "");
  ASSERT_TRUE(docker_->Inspect(kHolder).ok()) << "holder container not created";

  // Every other image already in the test daemon comes from the test registry: protect it by
  // listing it (the collection here would otherwise take every unused image).
  auto images = docker_->ListImages();
  ASSERT_TRUE(images.ok()) << images.error().ToString();
  std::vector<std::string> protect = {SshImage()};
  for (const auto& image : *images) {
    for (const auto& tag : image.repo_tags) {
      if (tag == kOwner || tag == kInUse || tag == Victim()) continue;
      ASSERT_EQ(tag.rfind(registry_ + "/", 0), 0u)
          << "unexpected image " << tag << " in the test daemon: this test would remove it";
      protect.push_back(tag);
    }
  }
  std::string list;
  for (const auto& tag : protect) list += (list.empty() ? "\"" : ", \"") + tag + "\"";
  HarnessOptions o;
  o.docker_yaml =
      "  image_gc_min_free_gb: 100000\n  image_gc_days: 0\n  prefetch_images: [" + list + "]\n";
  StartAgent(o);

  // A rental of the victim runs, ends and is cleaned up: from then on nothing uses its image.
  Deploy("gc-ended", Victim());
  ASSERT_FALSE(WaitEvent("gc-ended", "success", 120s).is_null()) << "victim rental did not start";
  EXPECT_TRUE(Exists(Victim())) << "collected while its rental ran";
  sim_->QueueCommand(agent_id_, "terminate", json{{"deployment_id", "gc-ended"}}.dump());
  ASSERT_FALSE(WaitEvent("gc-ended", "terminated", 60s).is_null());
  Deploy("gc-rental", SshImage());
  ASSERT_FALSE(WaitEvent("gc-rental", "success", 120s).is_null()) << "rental did not start";

  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return !Exists(Victim()); }, 30s))
      << Victim() << " was not collected";
  json st;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
        return st.is_object() && st["counters"].value("images_collected", 0) >= 1;
      },
      10s))
      << st.dump();
  const std::string log = agent_->Log();
  EXPECT_NE(log.find("image gc: removed " + Victim()), std::string::npos);
  for (size_t at = log.find("image gc:"); at != std::string::npos;
       at = log.find("image gc:", at + 1)) {
    std::cout << "# " << log.substr(at, log.find('\n', at) - at) << "\n";
  }

  // A few more rounds: what is used or listed is still there.
  ASSERT_TRUE(WaitForPolls(3));
  EXPECT_TRUE(Exists(kInUse)) << "an image a stopped container uses was removed";
  EXPECT_TRUE(Exists(kOwner)) << "the owner's image, which no rental used, was removed";
  for (const auto& tag : protect) EXPECT_TRUE(Exists(tag)) << tag << " was removed";
  auto rental = Containers("gc-rental");
  ASSERT_EQ(rental.size(), 1u);
  auto info = docker_->Inspect(rental[0].id);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->running);
}

}  // namespace
}  // namespace taolie::testing
