// Pull progress (PullTracker, PullBoard) and images.prefetch (ImagesToPrefetch, PrefetchLoop)
// on the fake clock and the fake engine: no sleeps.
#include "engine/pull_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "engine/engine_harness.h"
#include "fakes/fake_clock.h"
#include "loops/image_prefetch.h"

namespace taolie::engine {
namespace {

using docker::PullProgress;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kMiB = 1024 * 1024;

PullProgress Line(const std::string& id, const std::string& status, int64_t current = 0,
                  int64_t total = 0) {
  return PullProgress{id, status, current, total};
}

TEST(PullTracker, SumsBytesOverLayersAndCountsLayersDone) {
  FakeClock clock;
  PullTracker t("img:1", clock);
  t.Add(Line("1", "Pulling from library/img"));  // the tag: not a layer
  t.Add(Line("a", "Pulling fs layer"));
  t.Add(Line("b", "Pulling fs layer"));
  t.Add(Line("c", "Waiting"));
  t.Add(Line("a", "Downloading", 30 * kMiB, 100 * kMiB));
  t.Add(Line("b", "Downloading", 10 * kMiB, 50 * kMiB));
  PullSnapshot s = t.Snapshot();
  EXPECT_EQ(s.image, "img:1");
  EXPECT_EQ(s.layers_total, 3);
  EXPECT_EQ(s.layers_done, 0);
  EXPECT_EQ(s.bytes_done, 40 * kMiB);
  EXPECT_EQ(s.bytes_total, 150 * kMiB);
  EXPECT_EQ(s.percent(), 26);

  t.Add(Line("b", "Verifying Checksum"));
  t.Add(Line("b", "Download complete"));
  t.Add(Line("b", "Extracting", 5 * kMiB, 50 * kMiB));  // extraction bytes are not downloads
  t.Add(Line("b", "Pull complete"));
  t.Add(Line("c", "Downloading", 20 * kMiB, 50 * kMiB));
  s = t.Snapshot();
  EXPECT_EQ(s.layers_done, 1);
  EXPECT_EQ(s.bytes_done, (30 + 50 + 20) * kMiB);
  EXPECT_EQ(s.bytes_total, 200 * kMiB);
  EXPECT_EQ(s.percent(), 50);

  t.Add(Line("a", "Download complete"));
  t.Add(Line("a", "Pull complete"));
  t.Add(Line("c", "Pull complete"));
  t.Add(Line("", "Digest: sha256:abc"));
  t.Add(Line("", "Status: Downloaded newer image for img:1"));
  s = t.Snapshot();
  EXPECT_EQ(s.layers_done, 3);
  EXPECT_EQ(s.layers_total, 3);
  EXPECT_EQ(s.bytes_done, 200 * kMiB);
  EXPECT_EQ(s.percent(), 100);
}

TEST(PullTracker, ALayerWhoseSizeIsUnknownCountsItsBytesButNotInThePercentage) {
  FakeClock clock;
  PullTracker t("img:1", clock);
  t.Add(Line("a", "Downloading", 50 * kMiB, 100 * kMiB));
  t.Add(Line("b", "Downloading", 7 * kMiB, 0));  // the engine gave no total
  PullSnapshot s = t.Snapshot();
  EXPECT_EQ(s.bytes_done, 57 * kMiB);
  EXPECT_EQ(s.bytes_total, 100 * kMiB);
  EXPECT_EQ(s.unknown_size_layers, 1);
  EXPECT_EQ(s.percent(), 50);
  EXPECT_THAT(DescribePull(s), ::testing::HasSubstr("50% of 100.0 MiB (and 1 layer of unknown"));

  // Only layers of unknown size: no percentage yet.
  PullTracker u("img:2", clock);
  u.Add(Line("x", "Downloading", 3 * kMiB, 0));
  EXPECT_EQ(u.Snapshot().percent(), -1);
  EXPECT_THAT(DescribePull(u.Snapshot()), ::testing::StartsWith("3.0 MiB (size not known yet)"));
  // Its size comes with the extraction: the download is over.
  u.Add(Line("x", "Extracting", 1, 4 * kMiB));
  EXPECT_EQ(u.Snapshot().bytes_total, 4 * kMiB);
  EXPECT_EQ(u.Snapshot().percent(), 100);
}

TEST(PullTracker, AlreadyExistsCountsAsDoneWithoutBytes) {
  FakeClock clock;
  PullTracker t("img:1", clock);
  t.Add(Line("a", "Already exists"));
  t.Add(Line("b", "Already exists"));
  t.Add(Line("c", "Downloading", 1 * kMiB, 4 * kMiB));
  PullSnapshot s = t.Snapshot();
  EXPECT_EQ(s.layers_done, 2);
  EXPECT_EQ(s.layers_total, 3);
  EXPECT_EQ(s.unknown_size_layers, 0);
  EXPECT_EQ(s.bytes_total, 4 * kMiB);
  EXPECT_EQ(s.percent(), 25);
  EXPECT_EQ(DescribePull(s), "25% of 4.0 MiB, 0 B/s, 2/3 layers done");
}

TEST(PullTracker, RateIsOverTheSlidingWindow) {
  FakeClock clock;
  PullTracker t("img:1", clock);
  // 10 MiB/s for 20 s, one line every 500 ms.
  for (int i = 1; i <= 40; ++i) {
    clock.Advance(milliseconds(500));
    t.Add(Line("a", "Downloading", i * 5 * kMiB, 1000 * kMiB));
  }
  EXPECT_NEAR(t.Snapshot().rate_bytes_per_s, 10.0 * kMiB, 0.6 * kMiB);
  // Then 1 MiB/s: after a whole window the old speed no longer counts.
  int64_t done = 200 * kMiB;
  for (int i = 1; i <= 24; ++i) {
    clock.Advance(milliseconds(500));
    done += kMiB / 2;
    t.Add(Line("a", "Downloading", done, 1000 * kMiB));
  }
  EXPECT_NEAR(t.Snapshot().rate_bytes_per_s, 1.0 * kMiB, 0.15 * kMiB);
  // A stall: the rate falls as time passes with nothing new.
  clock.Advance(PullTracker::kRateWindow * 2);
  t.Add(Line("a", "Downloading", done, 1000 * kMiB));
  EXPECT_LT(t.Snapshot().rate_bytes_per_s, 0.5 * kMiB);
  EXPECT_NEAR(t.Snapshot().average_bytes_per_s(), static_cast<double>(done) / 52.0, kMiB);
}

TEST(PullTracker, ALineIsDueAtMostEveryInterval) {
  FakeClock clock;
  PullTracker t("img:1", clock);
  int due = 0;
  // 60 s of progress, ten lines a second: 12 progress lines, one every 5 s.
  for (int i = 0; i < 600; ++i) {
    clock.Advance(milliseconds(100));
    if (t.Add(Line("a", "Downloading", i, 1000))) {
      ++due;
      EXPECT_EQ((i + 1) % 50, 0) << "line at " << (i + 1) * 100 << " ms";
    }
  }
  EXPECT_EQ(due, 12);
  // Nothing due at once after a line, however many updates come.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(t.Add(Line("a", "Downloading", 600, 1000)));
}

TEST(PullTracker, DescribesSizesInBinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(38.5 * kMiB), "38.5 MiB");
  EXPECT_EQ(FormatBytes(1.2 * 1024 * kMiB), "1.2 GiB");
  PullSnapshot s;
  s.bytes_total = static_cast<int64_t>(1.2 * 1024 * kMiB);
  s.sized_bytes_done = s.bytes_done = s.bytes_total * 43 / 100 + 1;
  s.rate_bytes_per_s = 38.5 * kMiB;
  s.layers_done = 3;
  s.layers_total = 7;
  EXPECT_EQ(DescribePull(s), "43% of 1.2 GiB, 38.5 MiB/s, 3/7 layers done");
}

TEST(PullBoard, KeepsTheLatestSnapshotPerDeploymentAsStatusJson) {
  FakeClock clock;
  PullBoard board;
  EXPECT_TRUE(board.Empty());
  EXPECT_EQ(board.Json(), "[]");
  PullTracker t("img:1", clock);
  clock.Advance(seconds(2));
  t.Add(Line("a", "Downloading", 25, 100));
  board.Set("d-2", t.Snapshot());
  board.Set("d-1", PullTracker("other:2", clock).Snapshot());
  auto j = nlohmann::json::parse(board.Json());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["deployment_id"], "d-1");
  EXPECT_EQ(j[0]["percent"], nullptr);  // no size known yet
  EXPECT_EQ(j[1], (nlohmann::json{{"deployment_id", "d-2"},
                                  {"image", "img:1"},
                                  {"percent", 25},
                                  {"bytes_done", 25},
                                  {"bytes_total", 100},
                                  {"rate_bytes_per_s", 12},
                                  {"layers_done", 0},
                                  {"layers_total", 1},
                                  {"since", FormatRfc3339(clock.Now() - seconds(2))}}));
  board.Erase("d-2");
  { PullBoardEntry scoped(board, "d-1"); }
  EXPECT_TRUE(board.Empty());
}

TEST(PullBoard, TheYieldTokenFiresWhenADeploymentsPullStarts) {
  FakeClock clock;
  PullBoard board;
  std::stop_token yield = board.YieldToken();
  EXPECT_FALSE(yield.stop_requested());
  board.Set("d-1", PullTracker("img:1", clock).Snapshot());
  EXPECT_TRUE(yield.stop_requested());
  // Updates of a pull already on the board do not fire a fresh token.
  std::stop_token next = board.YieldToken();
  board.Set("d-1", PullTracker("img:1", clock).Snapshot());
  EXPECT_FALSE(next.stop_requested());
  board.Set("d-2", PullTracker("img:2", clock).Snapshot());
  EXPECT_TRUE(next.stop_requested());
}

TEST(ImagesToPrefetch, PullsWhatIsMissingAndNothingWhileADeployPulls) {
  loops::PrefetchInput in;
  in.listed = {"a:1", "b:1", "c:1", "a:1", "d:1"};
  in.present = {"b:1"};
  in.unknown = {"d:1"};
  EXPECT_THAT(loops::ImagesToPrefetch(in), ElementsAre("a:1", "c:1"));
  in.refresh = true;  // the start-up round: every listed image, once
  EXPECT_THAT(loops::ImagesToPrefetch(in), ElementsAre("a:1", "b:1", "c:1", "d:1"));
  in.deploy_pulling = true;
  EXPECT_THAT(loops::ImagesToPrefetch(in), IsEmpty());
  in.refresh = false;
  EXPECT_THAT(loops::ImagesToPrefetch(in), IsEmpty());
  in.deploy_pulling = false;
  in.present = {"a:1", "b:1", "c:1", "d:1"};
  EXPECT_THAT(loops::ImagesToPrefetch(in), IsEmpty());
}

using testing::EngineTest;
using testing::FakeDocker;

// The runner's pull on the board while it lasts, gone when it ends.
TEST_F(EngineTest, ADeploysPullIsOnThePullBoardUntilItEnds) {
  Build({1, 1});
  docker.pull_progress = {Line("a", "Downloading", 30, 100), Line("b", "Already exists")};
  docker.pull_mode = FakeDocker::PullMode::kHang;
  engine->commands().Schedule(Command("cmd-d1", "deploy", Deploy("d1")));
  ASSERT_TRUE(docker.WaitPulling(seconds(10)));
  auto pulls = engine->pulls().Snapshot();
  ASSERT_EQ(pulls.size(), 1u);
  EXPECT_EQ(pulls[0].deployment_id, "d1");
  EXPECT_EQ(pulls[0].snapshot.image, "registry.local/sshd:1");
  EXPECT_EQ(pulls[0].snapshot.percent(), 30);
  EXPECT_EQ(pulls[0].snapshot.layers_done, 1);
  EXPECT_EQ(pulls[0].snapshot.layers_total, 2);
  engine->commands().Schedule(Command("cmd-t1", "terminate", {{"deployment_id", "d1"}}));
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(engine->pulls().Empty());
}

// images.prefetch: the start-up round pulls every image; later rounds only the missing ones.
TEST_F(EngineTest, PrefetchPullsTheListAtStartThenOnlyWhatGoesMissing) {
  Build({1, 1});
  loops::PrefetchLoop loop(docker, engine->work(), engine->pulls(), {"registry.local/a:1", "b:1"});
  docker.local_images = {"b:1"};
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.Count("Pull "), 2);  // both, though b:1 is there (its tag may have moved)
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.Count("Pull "), 2);              // nothing missing
  docker.local_images.erase("registry.local/a:1");  // the owner removed it
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.Count("Pull registry.local/a:1"), 2);
  EXPECT_EQ(docker.Count("Pull b:1"), 1);
  EXPECT_EQ(loop.pulled(), 3u);
  // Docker away: the round reports it and pulls nothing.
  docker.down = true;
  EXPECT_FALSE(loop.RunOnce({}).ok());
  docker.down = false;
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.Count("Pull "), 3);
}

// Low priority: no round while a deploy pulls, and a prefetch pull gives way to a deploy's.
TEST_F(EngineTest, PrefetchGivesWayToARentersPull) {
  Build({2, 1});
  loops::PrefetchLoop loop(docker, engine->work(), engine->pulls(), {"big:1"});
  engine->pulls().Set("d0", PullTracker("x:1", clock).Snapshot());
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(docker.Count("Pull "), 0) << "a deploy is pulling";
  engine->pulls().Erase("d0");

  docker.pull_mode = FakeDocker::PullMode::kHang;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(docker.WaitPulling(seconds(10)));
  // A renter's deploy starts pulling: the prefetch pull is cancelled at once.
  engine->pulls().Set("d1", PullTracker("registry.local/sshd:1", clock).Snapshot());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(loop.yielded(), 1u);
  EXPECT_EQ(loop.pulled(), 0u);
  engine->pulls().Erase("d1");
  // Next round: still missing, pulled now.
  docker.pull_mode = FakeDocker::PullMode::kOk;
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(Idle());
  EXPECT_EQ(loop.pulled(), 1u);
}

}  // namespace
}  // namespace taolie::engine
