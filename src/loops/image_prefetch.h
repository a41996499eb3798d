#pragma once
// images.prefetch (and docker.prefetch_images, the same list; the loader merges them): the
// owner's popular templates, kept pulled in the background so that a renter of one waits for
// no pull. The first round after start pulls every listed image (a tag may have moved); each
// later round (every kInterval) pulls again only the listed images missing locally (removed by
// the owner, or never pulled because the registry was away).
//
// Low priority: a round starts nothing while a deploy is pulling, the pulls run one at a time
// as a single job on the deploy lane (never more than one of its threads), and a running
// prefetch pull is cancelled the moment a deploy's pull starts (PullBoard::YieldToken); what
// was not pulled is tried again next round.
#include <atomic>
#include <chrono>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "docker/docker_client.h"
#include "engine/pull_tracker.h"
#include "engine/work_queue.h"
#include "loops/periodic_runner.h"

namespace taolie::loops {

struct PrefetchInput {
  std::vector<std::string> listed;  // the owner's list, in order
  std::set<std::string> present;    // listed images found locally
  std::set<std::string> unknown;    // listed images that could not be checked (Docker away)
  bool deploy_pulling = false;      // a deploy's pull is in progress
  bool refresh = false;             // first round since start: pull every listed image
};

// The images to pull now, in list order, without duplicates: none while a deploy pulls; on a
// refresh round every listed image; otherwise those neither present nor unknown.
std::vector<std::string> ImagesToPrefetch(const PrefetchInput& in);

class PrefetchLoop : public Loop {
 public:
  static constexpr std::chrono::minutes kInterval{10};

  // `images` is the merged list; the loop must outlive `work`'s jobs (WorkQueue::Shutdown
  // first).
  PrefetchLoop(docker::DockerClient& docker, engine::WorkQueue& work, engine::PullBoard& pulls,
               std::vector<std::string> images);
  const char* Name() const override { return "image-prefetch"; }
  // Decides and queues the pulls; never waits for them. Errors: an image could not be checked.
  Status RunOnce(std::stop_token stop) override;

  // The queued job: pulls `images` one after the other, giving way to deploys.
  void PullInBackground(const std::vector<std::string>& images, std::stop_token worker);
  uint64_t pulled() const { return pulled_.load(); }
  uint64_t yielded() const { return yielded_.load(); }

 private:
  docker::DockerClient& docker_;
  engine::WorkQueue& work_;
  engine::PullBoard& pulls_;
  const std::vector<std::string> images_;
  bool refreshed_ = false;  // the start-up round (every image) has been queued
  std::atomic<uint64_t> pulled_{0};
  std::atomic<uint64_t> yielded_{0};
};

}  // namespace taolie::loops
