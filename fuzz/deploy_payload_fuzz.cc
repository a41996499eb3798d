// The deploy and terminate payload validators, and the stored form of what they accept.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "rules/deploy_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string payload(reinterpret_cast<const char*>(data), size);
  taolie::rules::ValidationLimits limits;
  limits.allowed_volume_roots = {"/srv/rentals"};
  limits.max_disk_mb = 10240;
  auto spec = taolie::rules::ParseDeployPayload("cmd-fuzz-1", payload, limits);
  if (spec.ok()) {
    // What validation accepted round-trips through the database form unchanged.
    const std::string stored = taolie::rules::SpecToJson(*spec);
    auto back = taolie::rules::SpecFromJson(stored);
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(taolie::rules::SpecToJson(*back) == stored);
  }
  (void)taolie::rules::ParseTerminatePayload(payload);
  return 0;
}
