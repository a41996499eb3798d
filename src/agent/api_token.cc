#include "agent/api_token.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/secrets.h"

namespace taolie::agent {
namespace {

constexpr size_t kTokenLength = 32;

Result<std::string> ReadFd(int fd, const std::string& path) {
  std::string text(256, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  if (n < 0) {
    return MakeError(ErrorCode::kUnavailable, "read " + path + ": " + std::strerror(errno));
  }
  text.resize(static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() < 16) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     path +
                         " holds no valid token (delete it: the agent makes a new one at its "
                         "next start)");
  }
  return text;
}

}  // namespace

Result<std::string> ReadApiToken(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EACCES) {
      return MakeError(ErrorCode::kPermissionDenied,
                       "cannot read the admin token " + path + ": run this as root");
    }
    return MakeError(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                     "cannot read the admin token " + path + ": " + std::strerror(err) +
                         " (the agent makes it at its first start; is it running with this "
                         "data_dir?)");
  }
  auto token = ReadFd(fd, path);
  ::close(fd);
  return token;
}

Result<std::string> LoadOrCreateApiToken(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    auto token = RandomAlnum(kTokenLength);
    if (!token.ok()) {
      ::close(fd);
      ::unlink(path.c_str());
      return token.error();
    }
    const std::string line = *token + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    const bool closed = ::close(fd) == 0;
    if (!written || !closed) {
      ::unlink(path.c_str());
      return MakeError(ErrorCode::kUnavailable, "cannot write " + path);
    }
    return token;
  }
  if (errno != EEXIST) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot create the admin token " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("{} was readable by others: made 0600 again", path);
    if (::chmod(path.c_str(), 0600) != 0) {
      return MakeError(ErrorCode::kUnavailable, "chmod " + path + ": " + std::strerror(errno));
    }
  }
  return ReadApiToken(path);
}

}  // namespace taolie::agent
