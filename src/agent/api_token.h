#pragma once
// The local API's admin token: 32 random characters in a root-only file (mode 0600) under
// data_dir, made by the agent at its first start and kept. Changes through the local API
// (drain, undrain) need it; the CLI reads it, so only root (or who can read data_dir) may
// drain the host.
#include <string>

#include "common/result.h"

namespace taolie::agent {

inline constexpr const char* kApiTokenFile = "api-token";

// Reads the token at `path`, or makes a new one there when none exists. A file that others
// could read is made 0600 again (logged).
Result<std::string> LoadOrCreateApiToken(const std::string& path);
// Reads the token; NotFound / PermissionDenied say what to do.
Result<std::string> ReadApiToken(const std::string& path);

}  // namespace taolie::agent
