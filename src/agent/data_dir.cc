#include "agent/data_dir.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace taolie::agent {
namespace {

Error DataDirError(const std::string& what) {
  return Error{ErrorCode::kFailedPrecondition, "data_dir: " + what};
}

std::string Errno() { return std::strerror(errno); }

Status CheckWritable(const std::string& path) {
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    return DataDirError(path + " is not writable by the agent (" + Errno() +
                        "): it holds the admin token and the managed database");
  }
  return OkStatus();
}

}  // namespace

Status EnsureDataDir(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return DataDirError("must be an absolute path, got \"" + path + "\"");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return DataDirError(path + " exists and is not a directory");
    return CheckWritable(path);
  }
  // ENOTDIR: a component on the way is a file; its parent is judged (and named) below.
  if (errno != ENOENT && errno != ENOTDIR) {
    return DataDirError("cannot stat " + path + ": " + Errno());
  }
  const std::string parent = std::filesystem::path(path).lexically_normal().parent_path().string();
  struct stat pst {};
  if (::stat(parent.c_str(), &pst) != 0) {
    return DataDirError("cannot create " + path + ": its parent " + parent + " " +
                        (errno == ENOENT ? std::string("does not exist") : Errno()));
  }
  if (!S_ISDIR(pst.st_mode)) {
    return DataDirError("cannot create " + path + ": its parent " + parent + " is not a directory");
  }
  if (::mkdir(path.c_str(), kDataDirMode) != 0) {
    if (errno != EEXIST) return DataDirError("cannot create " + path + ": " + Errno());
    // Made meanwhile, or a dangling symbolic link: judge what is there, once.
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return DataDirError(path + " exists and is not a directory");
    }
    return CheckWritable(path);
  }
  if (::chmod(path.c_str(), kDataDirMode) != 0) {  // the umask may have taken bits off
    return DataDirError("chmod 0750 " + path + ": " + Errno());
  }
  spdlog::info("data_dir {} did not exist: created (mode 0750)", path);
  return CheckWritable(path);
}

}  // namespace taolie::agent
