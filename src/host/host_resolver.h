#pragma once
// Host name resolution with a deadline: getaddrinfo cannot be cancelled, so it runs on a
// detached helper thread and the caller waits at most `timeout` for its answer.
#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"

namespace taolie::host {

// The addresses `host` resolves to, as texts ("93.184.216.34", "2606:2800::1"), IPv4 and
// IPv6. DeadlineExceeded after `timeout` (the lookup finishes in the background and is
// dropped); NotFound or Unavailable with getaddrinfo's reason otherwise.
Result<std::vector<std::string>> ResolveHost(const std::string& host,
                                             std::chrono::milliseconds timeout);

}  // namespace taolie::host
