// Dirty GPUs after a rental: sample + baseline + margin + time -> clean, dirty or held back.
#include "health/gpu_cleanliness.h"

#include <gtest/gtest.h>

namespace taolie::health {
namespace {

using std::chrono::seconds;

gpu::GpuSample Sample(std::optional<uint64_t> used_mb, std::vector<uint32_t> pids) {
  gpu::GpuSample s;
  s.uuid = "GPU-0";
  s.memory_used_mb = used_mb;
  s.process_pids = std::move(pids);
  return s;
}

TEST(GpuCleanliness, BaselineIsTheFirstReadableSample) {
  auto b = BaselineFrom(Sample(1024, {4242}));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->memory_used_mb, 1024u);
  EXPECT_EQ(b->pids, std::vector<uint32_t>{4242});
  EXPECT_FALSE(BaselineFrom(Sample(std::nullopt, {})).has_value());
  auto lost = Sample(0, {});
  lost.lost = true;
  EXPECT_FALSE(BaselineFrom(lost).has_value());
}

TEST(GpuCleanliness, Table) {
  const GpuBaseline idle{0, {}};
  const GpuBaseline desktop{500, {1001}};  // the owner's display server was there at start
  struct Case {
    const char* name;
    gpu::GpuSample sample;
    const GpuBaseline* baseline;
    int dirty_for_s;
    GpuCleanliness state;
    const char* reason;
  } cases[] = {
      {"idle", Sample(0, {}), &idle, 5, GpuCleanliness::kClean, ""},
      {"memory at the margin", Sample(256, {}), &idle, 5, GpuCleanliness::kClean, ""},
      {"baseline process stays", Sample(700, {1001}), &desktop, 5, GpuCleanliness::kClean, ""},
      {"memory over the margin", Sample(257, {}), &idle, 5, GpuCleanliness::kDirty,
       "memory 257 MiB used, baseline 0 MiB + margin 256; 5 s after deployment d-1 ended"},
      {"left-over process", Sample(0, {77, 78}), &idle, 5, GpuCleanliness::kDirty,
       "2 process(es) still on the GPU; 5 s after deployment d-1 ended"},
      {"new process beside the baseline one", Sample(600, {1001, 77}), &desktop, 5,
       GpuCleanliness::kDirty, "1 process(es) still on the GPU; 5 s after deployment d-1 ended"},
      {"both, past the timeout", Sample(3000, {77, 78}), &idle, 300, GpuCleanliness::kHeldBack,
       "2 process(es) still on the GPU; memory 3000 MiB used, baseline 0 MiB + margin 256; "
       "300 s after deployment d-1 ended"},
      {"just under the timeout", Sample(3000, {}), &idle, 299, GpuCleanliness::kDirty,
       "memory 3000 MiB used, baseline 0 MiB + margin 256; 299 s after deployment d-1 ended"},
      {"clean past the timeout", Sample(0, {}), &idle, 900, GpuCleanliness::kClean, ""},
      {"memory unreadable", Sample(std::nullopt, {}), &idle, 5, GpuCleanliness::kDirty,
       "its memory use cannot be read; 5 s after deployment d-1 ended"},
      {"no baseline yet", Sample(0, {}), nullptr, 5, GpuCleanliness::kDirty,
       "no baseline of its idle memory yet; 5 s after deployment d-1 ended"},
  };
  for (const auto& c : cases) {
    DirtyCheck in;
    in.sample = &c.sample;
    in.baseline = c.baseline;
    in.margin_mb = 256;
    in.dirty_for = seconds(c.dirty_for_s);
    in.timeout = seconds(300);
    in.ended_deployment = "d-1";
    DirtyVerdict v = JudgeDirtyGpu(in);
    EXPECT_EQ(v.state, c.state) << c.name;
    EXPECT_EQ(v.reason, c.reason) << c.name;
  }
}

TEST(GpuCleanliness, LostGpuIsNeverClean) {
  auto s = Sample(0, {});
  s.lost = true;
  GpuBaseline idle{0, {}};
  DirtyCheck in;
  in.sample = &s;
  in.baseline = &idle;
  in.dirty_for = seconds(400);
  DirtyVerdict v = JudgeDirtyGpu(in);
  EXPECT_EQ(v.state, GpuCleanliness::kHeldBack);
  EXPECT_EQ(v.reason, "the GPU is lost; 400 s after its last rental ended");
}

}  // namespace
}  // namespace taolie::health
