#pragma once
// Secrets from the kernel CSPRNG (getrandom). Never log what these return.
#include <string>

#include "common/result.h"

namespace taolie {

// Random string of `length` characters from [A-Za-z0-9] (unbiased rejection sampling).
Result<std::string> RandomAlnum(size_t length);
// Random lowercase hex string of `length` characters.
Result<std::string> RandomHex(size_t length);
// New agent id: "agent-" + 12 lowercase hex.
Result<std::string> NewAgentId();
bool IsValidAgentId(const std::string& id);

}  // namespace taolie
