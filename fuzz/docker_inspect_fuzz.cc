// Docker Engine API answers the agent maps: container inspect and list, sizes, images,
// network inspect, and error bodies.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "docker/engine_api.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto info = taolie::docker::ParseInspect(text); info.ok()) {
    FUZZ_CHECK(!info->id.empty());
  }
  (void)taolie::docker::ParseList(text);
  (void)taolie::docker::ParseWritableSizes(text);
  (void)taolie::docker::ParseImageList(text);
  (void)taolie::docker::ParseNetworkInspect(text);
  FUZZ_CHECK(!taolie::docker::EngineMessage(text).empty());
  return 0;
}
