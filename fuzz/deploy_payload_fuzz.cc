// The deploy and terminate payload validators, and the stored form of what they accept.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/rules/deploy_spec.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string payload(reinterpret_cast<const char*>(data), size);
  taolie::agent::ValidationLimits limits;
  limits.allowed_volume_roots = {"/srv/rentals"};
  limits.max_disk_mb = 10240;
  auto spec = taolie::agent::ParseDeployPayload("cmd-fuzz-1", payload, limits);
  if (spec.ok()) {
    // What validation accepted round-trips through the database form unchanged.
    const std::string stored = taolie::agent::SpecToJson(*spec);
    auto back = taolie::agent::SpecFromJson(stored);
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(taolie::agent::SpecToJson(*back) == stored);
  }
  (void)taolie::agent::ParseTerminatePayload(payload);
  return 0;
}
