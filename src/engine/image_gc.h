#pragma once
// Image collection (docker.image_gc_min_free_gb, docker.image_gc_days): when free space on
// Docker's data root is under the threshold, local images no rental used for image_gc_days
// are removed, oldest last use first, until the freed sizes bring free space back over the
// threshold. Only images some rental used, and dangling (untagged) ones, are candidates: a
// tagged image no rental ever named is the owner's and stays. An image a container uses (any
// state), one a rental not yet ended names (it may be pulling it, or about to create its
// container), or one listed in docker.prefetch_images is never removed.
#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "host/host_probe.h"
#include "store/store.h"

namespace taolie::engine {

struct ImageGcInput {
  std::vector<docker::ImageInfo> images;
  uint64_t free_bytes = 0;
  uint64_t threshold_bytes = 0;
  SystemTime now{};
  int days = 7;  // 0: any image not in use
  // Latest rental use by image reference as rentals named it ("ubuntu", "host/repo:tag").
  std::map<std::string, SystemTime> last_use;
  // Image ids ("sha256:...") and references of every container, any state, and the
  // references rentals not yet ended name.
  std::set<std::string> in_use;
  std::vector<std::string> prefetch;  // docker.prefetch_images
};

struct ImageGcPick {
  docker::ImageInfo image;
  SystemTime last_use{};        // the later of its Created and its latest rental use
  bool used_by_rental = false;  // some rental named it (else it is dangling)
};

// The images to remove, oldest last use first; empty when free_bytes >= threshold_bytes.
std::vector<ImageGcPick> SelectImagesToCollect(const ImageGcInput& in);

// The check run once per duration-monitor round: one statvfs of the data root; only under
// the threshold are images, containers and the store's last uses read. Each removal is
// logged (image, size, last use, reason) and counted; a failed removal is logged and the
// others go on.
class ImageCollector {
 public:
  ImageCollector(docker::DockerClient& docker, store::Store& store, host::HostProbe& host,
                 const config::DockerConfig& cfg, const Clock& clock, std::string data_root);
  // Errors reading free space, images, containers or the store; removals never fail it.
  Status RunOnce();
  uint64_t collected() const { return collected_.load(); }  // images removed since start

 private:
  docker::DockerClient& docker_;
  store::Store& store_;
  host::HostProbe& host_;
  const config::DockerConfig& cfg_;
  const Clock& clock_;
  const std::string data_root_;
  std::atomic<uint64_t> collected_{0};
};

}  // namespace taolie::engine
