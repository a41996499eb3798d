#pragma once
// The agent's own state directory (config key `data_dir`): the admin token, the managed
// PostgreSQL cluster and its password live there. Made at start when missing (issue 17 item 7),
// so drain through the local API never silently stops for want of it.
#include <string>

#include "common/result.h"

namespace taolie::agent {

inline constexpr unsigned kDataDirMode = 0750;

// Makes `path` (mode 0750, whatever the umask) when it does not exist; its parent must exist
// (no chain of directories is invented from a typo). An existing directory is left as it is
// (mode, owner, contents). Not a directory, a missing parent, or a directory the agent cannot
// write: FailedPrecondition with a message that starts with "data_dir: ".
Status EnsureDataDir(const std::string& path);

}  // namespace taolie::agent
