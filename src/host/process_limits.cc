#include "host/process_limits.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace taolie::host {

Result<OpenFilesLimit> RaiseOpenFilesLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return MakeError(ErrorCode::kInternal,
                     std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  OpenFilesLimit out{lim.rlim_cur, lim.rlim_cur, lim.rlim_max};
  if (lim.rlim_cur != lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      return MakeError(ErrorCode::kInternal, "setrlimit(RLIMIT_NOFILE, " +
                                                 std::to_string(lim.rlim_max) +
                                                 "): " + std::strerror(errno));
    }
    out.soft = lim.rlim_max;
  }
  return out;
}

}  // namespace taolie::host
