#include "loops/image_prefetch.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace taolie::loops {

std::vector<std::string> ImagesToPrefetch(const PrefetchInput& in) {
  std::vector<std::string> out;
  if (in.deploy_pulling) return out;
  std::set<std::string> seen;
  for (const std::string& image : in.listed) {
    if (!seen.insert(image).second) continue;
    if (!in.refresh && (in.present.count(image) > 0 || in.unknown.count(image) > 0)) continue;
    out.push_back(image);
  }
  return out;
}

PrefetchLoop::PrefetchLoop(docker::DockerClient& docker, engine::WorkQueue& work,
                           engine::PullBoard& pulls, std::vector<std::string> images)
    : docker_(docker), work_(work), pulls_(pulls), images_(std::move(images)) {}

Status PrefetchLoop::RunOnce(std::stop_token stop) {
  if (images_.empty() || stop.stop_requested()) return OkStatus();
  PrefetchInput in;
  in.listed = images_;
  in.deploy_pulling = !pulls_.Empty();
  in.refresh = !refreshed_;
  if (in.deploy_pulling) return OkStatus();  // next round: a renter's pull goes first
  Status checked = OkStatus();
  if (!in.refresh) {
    for (const std::string& image : images_) {
      auto exists = docker_.ImageExists(image);
      if (!exists.ok()) {
        in.unknown.insert(image);
        checked = exists.error();
      } else if (*exists) {
        in.present.insert(image);
      }
    }
  }
  std::vector<std::string> todo = ImagesToPrefetch(in);
  if (todo.empty()) return checked;
  for (const std::string& image : todo) {
    if (!in.refresh) {
      spdlog::info("prefetch: {} is missing locally; pulling it again in the background", image);
    }
  }
  bool queued = work_.Submit(engine::Lane::kDeploy, "prefetch", "prefetch",
                             [this, todo](std::stop_token st) { PullInBackground(todo, st); });
  if (queued) refreshed_ = true;
  return checked;
}

void PrefetchLoop::PullInBackground(const std::vector<std::string>& images,
                                    std::stop_token worker) {
  for (const std::string& image : images) {
    if (worker.stop_requested()) return;
    if (!pulls_.Empty()) {
      spdlog::info("prefetch: a rental's pull goes first; {} is pulled at a later round", image);
      yielded_++;
      return;
    }
    std::stop_source stop;
    std::stop_token yield = pulls_.YieldToken();
    std::stop_callback on_shutdown(worker, [&stop] { stop.request_stop(); });
    std::stop_callback on_deploy(yield, [&stop] { stop.request_stop(); });
    // A deploy may have started between the check and the token: check again.
    if (!pulls_.Empty()) stop.request_stop();
    Status pulled = docker_.Pull(image, {}, stop.get_token());
    if (pulled.ok()) {
      pulled_++;
      spdlog::info("prefetch: {} pulled", image);
      continue;
    }
    if (worker.stop_requested()) return;
    if (stop.stop_requested()) {
      yielded_++;
      spdlog::info(
          "prefetch: pull of {} paused: a rental's pull goes first (tried again within {} min)",
          image, kInterval.count());
      return;
    }
    spdlog::warn(
        "prefetch: {} not pulled ({}); tried again within {} min. Check the name in "
        "images.prefetch / docker.prefetch_images and that this host reaches its registry",
        image, pulled.error().message, kInterval.count());
  }
}

}  // namespace taolie::loops
