#pragma once
// The process's own resource limits, set at start.
#include <cstdint>

#include "common/result.h"

namespace taolie::host {

struct OpenFilesLimit {
  std::uint64_t soft_before = 0;
  std::uint64_t soft = 0;  // after
  std::uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (systemd's default soft limit of 1024 is
// too few for the local API's connections on top of the agent's own descriptors).
Result<OpenFilesLimit> RaiseOpenFilesLimit();

}  // namespace taolie::host
