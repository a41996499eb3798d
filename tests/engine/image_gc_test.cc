// Image collection: which images go (selection) and what one check does (fakes).
#include "engine/image_gc.h"

#include <gtest/gtest.h>

#include <tuple>

#include "docker/engine_api.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"

namespace taolie::engine {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
const SystemTime kNow = SystemTime(std::chrono::seconds(1'700'000'000));

int64_t DaysAgo(int days) {
  return std::chrono::duration_cast<std::chrono::seconds>(
             (kNow - std::chrono::hours(24) * days).time_since_epoch())
      .count();
}

docker::ImageInfo Image(const std::string& hex, const std::string& tag, int created_days_ago,
                        int64_t size_gib) {
  return docker::ImageInfo{"sha256:" + std::string(60, '0') + hex,
                           tag.empty() ? std::vector<std::string>{} : std::vector{tag},
                           DaysAgo(created_days_ago), static_cast<int64_t>(size_gib * kGiB)};
}

std::vector<std::string> Tags(const std::vector<ImageGcPick>& picks) {
  std::vector<std::string> out;
  for (const auto& p : picks)
    out.push_back(p.image.repo_tags.empty() ? p.image.id : p.image.repo_tags[0]);
  return out;
}

ImageGcInput BaseInput() {
  ImageGcInput in;
  in.now = kNow;
  in.days = 7;
  in.free_bytes = 5 * kGiB;
  in.threshold_bytes = 20 * kGiB;
  return in;
}

TEST(ImageGcSelect, NothingWhenFreeSpaceIsAtTheThreshold) {
  ImageGcInput in = BaseInput();
  in.images = {Image("0001", "old:1", 100, 1)};
  in.free_bytes = in.threshold_bytes;
  EXPECT_TRUE(SelectImagesToCollect(in).empty());
}

TEST(ImageGcSelect, OldestLastUseFirstAndStopsOnceOverTheThreshold) {
  ImageGcInput in = BaseInput();
  in.images = {Image("0001", "b:1", 30, 10), Image("0002", "a:1", 60, 10),
               Image("0003", "c:1", 20, 10)};
  in.last_use = {{"a:1", kNow - std::chrono::hours(24) * 50},
                 {"b:1", kNow - std::chrono::hours(24) * 25},
                 {"c:1", kNow - std::chrono::hours(24) * 15}};
  // 5 free + 10 (a) + 10 (b) = 25 >= 20: c stays.
  EXPECT_EQ(Tags(SelectImagesToCollect(in)), (std::vector<std::string>{"a:1", "b:1"}));
}

TEST(ImageGcSelect, RentalUseCountsOverCreationAndDaysProtectRecentOnes) {
  ImageGcInput in = BaseInput();
  in.threshold_bytes = 1000 * kGiB;
  in.images = {Image("0001", "docker.io/library/ubuntu:latest", 300, 1),
               Image("0002", "recent:1", 3, 1), Image("0003", "rented:1", 200, 1),
               Image("0004", "", 50, 1), Image("0005", "owner:1", 400, 1)};
  in.last_use = {{"ubuntu", kNow - std::chrono::hours(24) * 2},  // same image as the tag
                 {"rented:1", kNow - std::chrono::hours(24) * 10}};
  auto picks = SelectImagesToCollect(in);
  // ubuntu: used 2 days ago; recent: never rented (and new). The untagged one (50 days) is
  // older than rented:1's last use (10 days). owner:1, however old, no rental ever used.
  ASSERT_EQ(Tags(picks), (std::vector<std::string>{in.images[3].id, "rented:1"}));
  EXPECT_FALSE(picks[0].used_by_rental);
  EXPECT_TRUE(picks[1].used_by_rental);
  EXPECT_EQ(picks[1].last_use, kNow - std::chrono::hours(24) * 10);
}

TEST(ImageGcSelect, NeverOneInUseOrPrefetchListed) {
  ImageGcInput in = BaseInput();
  in.threshold_bytes = 1000 * kGiB;
  in.images = {Image("0001", "by-id:1", 100, 1), Image("0002", "by-ref:1", 100, 1),
               Image("0003", "docker.io/library/busybox:latest", 100, 1),
               Image("0004", "free:1", 100, 1)};
  in.in_use = {in.images[0].id, "by-ref:1"};
  in.prefetch = {"busybox"};
  for (const auto& image : in.images)
    in.last_use[image.repo_tags[0]] = kNow - std::chrono::hours(24) * 90;
  EXPECT_EQ(Tags(SelectImagesToCollect(in)), (std::vector<std::string>{"free:1"}));
}

TEST(ImageGcSelect, ZeroDaysTakesAnyUnusedImage) {
  ImageGcInput in = BaseInput();
  in.threshold_bytes = 1000 * kGiB;
  in.days = 0;
  in.images = {Image("0001", "new:1", 0, 1)};
  in.last_use = {{"new:1", kNow}};
  EXPECT_EQ(Tags(SelectImagesToCollect(in)), (std::vector<std::string>{"new:1"}));
  in.days = 1;
  EXPECT_TRUE(SelectImagesToCollect(in).empty());
}

TEST(ImageGcEngine, ParsesTheImageListAndChecksIds) {
  auto list = docker::ParseImageList(
      R"([{"Id":"sha256:ab","RepoTags":["a:1","b:2"],"Created":1700000000,"Size":42},
          {"Id":"sha256:cd","RepoTags":["<none>:<none>"],"Created":5,"Size":-1},
          {"RepoTags":["no-id:1"]}])");
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].repo_tags, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ((*list)[0].created, 1700000000);
  EXPECT_EQ((*list)[0].size, 42);
  EXPECT_TRUE((*list)[1].repo_tags.empty());
  EXPECT_EQ((*list)[1].size, 0);
  EXPECT_FALSE(docker::ParseImageList("{}").ok());
  auto containers = docker::ParseList(R"([{"Id":"c1","Image":"a:1","ImageID":"sha256:ab"}])");
  ASSERT_TRUE(containers.ok());
  EXPECT_EQ((*containers)[0].image_id, "sha256:ab");
  EXPECT_TRUE(docker::IsValidImageId("sha256:" + std::string(64, 'a')));
  EXPECT_TRUE(docker::IsValidImageId("0123456789ab"));
  EXPECT_FALSE(docker::IsValidImageId("sha256:0123"));
  EXPECT_FALSE(docker::IsValidImageId("../containers/x"));
  EXPECT_FALSE(docker::IsValidImageId("SHA256:" + std::string(64, 'a')));
}

struct CollectorFixture : ::testing::Test {
  testing::FakeDocker docker;
  testing::FakeStore store;
  testing::FakeHostProbe host;
  FakeClock clock{kNow};
  config::DockerConfig cfg;
  ImageCollector gc{docker, store, host, cfg, clock, "/data"};
};

TEST_F(CollectorFixture, OverTheThresholdOnlyFreeSpaceIsRead) {
  host.free_bytes["/data"] = 30 * kGiB;
  docker.images = {Image("0001", "old:1", 100, 1)};
  ASSERT_TRUE(gc.RunOnce().ok());
  EXPECT_EQ(docker.calls, std::vector<std::string>{});
  EXPECT_EQ(docker.images.size(), 1u);
}

TEST_F(CollectorFixture, ThresholdZeroNeverCollects) {
  cfg.image_gc_min_free_gb = 0;
  ASSERT_TRUE(gc.RunOnce().ok());  // not even free space is read (no path listed: error)
  EXPECT_EQ(docker.calls, std::vector<std::string>{});
}

TEST_F(CollectorFixture, RemovesUnusedByTagGoesOnAfterAFailureAndCounts) {
  host.free_bytes["/data"] = 1 * kGiB;
  cfg.image_gc_min_free_gb = 100;
  docker.images = {Image("0001", "refused:1", 100, 1), Image("0002", "old:1", 90, 1),
                   Image("0003", "", 80, 1), Image("0004", "running:1", 100, 1)};
  docker.images[1].repo_tags.push_back("old:alias");
  docker.images_in_use = {docker.images[0].id};  // the engine refuses it (409)
  docker::ContainerSpec spec;
  spec.name = "c1";
  spec.image = "running:1";
  ASSERT_TRUE(docker.Create(spec).ok());
  const std::string untagged = docker.images[2].id;
  for (const char* image : {"refused:1", "old:1", "running:1"}) {
    domain::Deployment d;
    d.id = std::string("dep-") + image;
    d.image = image;
    d.created_at = kNow - std::chrono::hours(24) * 60;
    d.state = domain::DeploymentState::kEnded;
    store.deployments[d.id] = d;
  }
  docker.images.push_back(Image("0005", "owner:1", 100, 1));  // no rental used it: it stays
  ASSERT_TRUE(gc.RunOnce().ok());
  ASSERT_EQ(docker.images.size(), 3u);
  EXPECT_EQ(docker.images[0].repo_tags, std::vector<std::string>{"refused:1"});
  EXPECT_EQ(docker.images[1].repo_tags, std::vector<std::string>{"running:1"});
  EXPECT_EQ(docker.images[2].repo_tags, std::vector<std::string>{"owner:1"});
  EXPECT_EQ(docker.Count("RemoveImage"), 4);  // refused:1, old:1, old:alias, the untagged id
  EXPECT_EQ(docker.Count("RemoveImage " + untagged), 1);
  EXPECT_EQ(gc.collected(), 2u);
}

// A rental not yet ended may be pulling its image or about to create its container: the
// image stays although no container uses it yet (CI once saw it collected mid-deploy).
TEST_F(CollectorFixture, TheImageOfARentalNotYetEndedStays) {
  host.free_bytes["/data"] = 1 * kGiB;
  cfg.image_gc_min_free_gb = 100;
  cfg.image_gc_days = 0;
  docker.images = {Image("0001", "host/pulling:1", 100, 1), Image("0002", "host/ended:1", 90, 1)};
  for (auto [id, image, state] :
       {std::tuple{"p", "host/pulling:1", domain::DeploymentState::kPulling},
        std::tuple{"e", "host/ended:1", domain::DeploymentState::kEnded}}) {
    domain::Deployment d;
    d.id = id;
    d.image = image;
    d.state = state;
    d.created_at = kNow - std::chrono::hours(1);
    store.deployments[d.id] = d;
  }
  ASSERT_TRUE(gc.RunOnce().ok());
  ASSERT_EQ(docker.images.size(), 1u);
  EXPECT_EQ(docker.images[0].repo_tags, std::vector<std::string>{"host/pulling:1"});
  EXPECT_EQ(docker.Count("RemoveImage host/pulling:1"), 0);
  EXPECT_EQ(gc.collected(), 1u);
}

TEST_F(CollectorFixture, ErrorsReadingStateAreReturnedAndNothingIsRemoved) {
  host.free_bytes["/data"] = 1 * kGiB;
  docker.images = {Image("0001", "old:1", 100, 1)};
  store.down = true;
  EXPECT_FALSE(gc.RunOnce().ok());
  EXPECT_EQ(docker.Count("RemoveImage"), 0);
  store.down = false;
  docker.down = true;
  EXPECT_FALSE(gc.RunOnce().ok());
  EXPECT_FALSE(ImageCollector(docker, store, host, cfg, clock, "/elsewhere").RunOnce().ok());
}

}  // namespace
}  // namespace taolie::engine
