#pragma once
// Host volumes checked on the filesystem, not as text (issue 7, item 5). dockerd resolves a
// bind source again at every container start, so a path is only safe to bind when nobody but
// root can change any directory from its allowed root down to it: then no renter can swap a
// component for a symlink between this check and a later start.
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"

namespace taolie::host {

// A host path no rental may mount, nor anything inside it or containing it.
struct ProtectedPath {
  std::string path;  // absolute
  std::string what;  // for messages: "the Docker socket", "data_dir", ...
};

struct VolumeGuardOptions {
  std::vector<std::string> allowed_roots;  // absolute; empty = host volumes disabled
  std::vector<ProtectedPath> protected_paths;
  // Opens one path component below `dirfd` as openat2(2) with RESOLVE_BENEATH |
  // RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS and O_PATH | O_DIRECTORY | O_CLOEXEC: the new
  // fd, or -1 with errno set. Unset = the real syscall (tests replace it to play an old kernel).
  std::function<int(int dirfd, const char* component)> open_beneath;
};

// Resolves `host_path` (absolute, as the renter wrote it) and returns the canonical path to
// bind. InvalidArgument, with a message "volumes: host path '<path>' <problem>", when the path
// is not strictly inside an allowed root (a root itself is refused), has a '.' or '..'
// component, meets a symlink on the way (the last component included), does not exist (it is
// never created), is not a directory, passes a directory (its root included) not owned by uid
// 0 or writable by group or others, or is, lies in or contains a protected path.
// FailedPrecondition when openat2(2) is unavailable (ENOSYS: host volumes are refused).
Result<std::string> ResolveVolumeHostPath(const std::string& host_path,
                                          const VolumeGuardOptions& options);

// True when `path` is `root` or lies below it (both lexically normal, absolute).
bool PathIsWithin(const std::string& path, const std::string& root);

}  // namespace taolie::host
