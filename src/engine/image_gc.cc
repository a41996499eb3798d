#include "engine/image_gc.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "common/time_format.h"
#include "rules/registry_policy.h"

namespace taolie::engine {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

bool AnyTagListed(const docker::ImageInfo& image, const std::vector<std::string>& refs) {
  return std::any_of(image.repo_tags.begin(), image.repo_tags.end(),
                     [&](const std::string& tag) { return rules::IsListedImage(tag, refs); });
}

std::string Name(const docker::ImageInfo& image) {
  return image.repo_tags.empty() ? image.id : image.repo_tags.front();
}

}  // namespace

std::vector<ImageGcPick> SelectImagesToCollect(const ImageGcInput& in) {
  if (in.free_bytes >= in.threshold_bytes) return {};
  const std::vector<std::string> in_use_refs(in.in_use.begin(), in.in_use.end());
  const SystemTime cutoff = in.now - std::chrono::hours(24) * in.days;
  std::vector<ImageGcPick> candidates;
  for (const auto& image : in.images) {
    if (in.in_use.count(image.id) > 0 || AnyTagListed(image, in_use_refs)) continue;
    if (AnyTagListed(image, in.prefetch)) continue;
    ImageGcPick pick{image, SystemTime{} + std::chrono::seconds(image.created), false};
    for (const auto& [ref, at] : in.last_use) {
      if (AnyTagListed(image, {ref})) {
        pick.last_use = std::max(pick.last_use, at);
        pick.used_by_rental = true;
      }
    }
    // Only what the agent brought in: an image some rental named, or a dangling one (no tag:
    // typically an old copy of a rental's image whose tag a later pull moved, and what
    // `docker image prune` removes too). A tagged image no rental used is the owner's.
    if (!pick.used_by_rental && !image.repo_tags.empty()) continue;
    if (pick.last_use > cutoff) continue;
    candidates.push_back(std::move(pick));
  }
  std::stable_sort(
      candidates.begin(), candidates.end(),
      [](const ImageGcPick& a, const ImageGcPick& b) { return a.last_use < b.last_use; });
  std::vector<ImageGcPick> out;
  uint64_t free = in.free_bytes;
  for (auto& c : candidates) {
    if (free >= in.threshold_bytes) break;
    free += static_cast<uint64_t>(std::max<int64_t>(0, c.image.size));
    out.push_back(std::move(c));
  }
  return out;
}

ImageCollector::ImageCollector(docker::DockerClient& docker, store::Store& store,
                               host::HostProbe& host, const config::DockerConfig& cfg,
                               const Clock& clock, std::string data_root)
    : docker_(docker),
      store_(store),
      host_(host),
      cfg_(cfg),
      clock_(clock),
      data_root_(std::move(data_root)) {}

Status ImageCollector::RunOnce() {
  if (cfg_.image_gc_min_free_gb <= 0) return OkStatus();
  ImageGcInput in;
  in.threshold_bytes = static_cast<uint64_t>(cfg_.image_gc_min_free_gb * kGiB);
  auto free = host_.FreeBytes(data_root_);
  if (!free.ok()) return free.error();
  in.free_bytes = *free;
  if (in.free_bytes >= in.threshold_bytes) return OkStatus();

  auto images = docker_.ListImages();
  if (!images.ok()) return images.error();
  in.images = std::move(*images);
  auto containers = docker_.List({});
  if (!containers.ok()) return containers.error();
  for (const auto& c : *containers) {
    if (!c.image_id.empty()) in.in_use.insert(c.image_id);
    if (!c.image.empty()) in.in_use.insert(c.image);
  }
  // Read after the images: a rental accepted since then whose image was already here is in
  // this list (one accepted later still is covered by its create, which pulls again when
  // the image went away).
  auto active = store_.ActiveDeployments();
  if (!active.ok()) return active.error();
  for (const auto& d : *active) in.in_use.insert(d.image);
  auto last_use = store_.ImageLastUse();
  if (!last_use.ok()) return last_use.error();
  in.last_use = std::move(*last_use);
  in.now = clock_.Now();
  in.days = cfg_.image_gc_days;
  in.prefetch = cfg_.prefetch_images;

  for (const ImageGcPick& pick : SelectImagesToCollect(in)) {
    const docker::ImageInfo& image = pick.image;
    std::string reason = fmt::format(
        "{:.2f} GiB free under docker.image_gc_min_free_gb {}, unused for {}+ days",
        static_cast<double>(in.free_bytes) / kGiB, cfg_.image_gc_min_free_gb, cfg_.image_gc_days);
    // By each tag (an id with several tags is refused without force); the last untag
    // deletes the image. An untagged image goes by id.
    Status st = OkStatus();
    if (image.repo_tags.empty()) {
      st = docker_.RemoveImage(image.id);
    } else {
      for (const auto& tag : image.repo_tags) {
        st = docker_.RemoveImage(tag);
        if (!st.ok()) break;
      }
    }
    if (!st.ok()) {
      spdlog::warn("image gc: could not remove {} ({}): {}", Name(image), image.id,
                   st.error().message);
      continue;
    }
    collected_++;
    spdlog::info("image gc: removed {} ({}, {:.2f} GiB), last {} {}; {}", Name(image), image.id,
                 static_cast<double>(image.size) / kGiB, pick.used_by_rental ? "used" : "created",
                 FormatRfc3339(pick.last_use), reason);
  }
  return OkStatus();
}

}  // namespace taolie::engine
