#include "host/volume_guard.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace taolie::host {
namespace {

int SysOpenBeneath(int dirfd, const char* component) {
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, component, &how, sizeof how));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Splits an absolute path into its components; empty ones ("//", a trailing '/') are dropped.
std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string JoinAbsolute(const std::vector<std::string>& comps) {
  if (comps.empty()) return "/";
  std::string out;
  for (const auto& c : comps) out += "/" + c;
  return out;
}

std::string Normal(const std::string& path) { return JoinAbsolute(Components(path)); }

// The path with its symlinks resolved, when it exists (the protected paths and the owner's
// roots may sit under a link, e.g. /var/run -> /run).
std::optional<std::string> Real(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return std::nullopt;
  return std::string(buf);
}

// "" when `path` neither is, lies in, nor contains a protected path.
std::string ProtectedProblem(const std::string& path, const std::vector<ProtectedPath>& prot) {
  for (const auto& p : prot) {
    std::vector<std::string> forms{Normal(p.path)};
    if (auto real = Real(p.path); real && *real != forms.front()) forms.push_back(*real);
    for (const auto& f : forms) {
      if (path == f) return "is " + p.what;
      if (PathIsWithin(path, f)) return "is inside " + p.what + " (" + Quote(f) + ")";
      if (PathIsWithin(f, path)) return "contains " + p.what + " (" + Quote(f) + ")";
    }
  }
  return "";
}

// "" when the directory open as `fd` is owned by root and writable by nobody else.
std::string OwnershipProblem(int fd, const std::string& where) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return "cannot be checked: fstat " + Quote(where) + ": " + std::strerror(errno);
  if (st.st_uid != 0) {
    return "passes directory " + Quote(where) + " owned by uid " + std::to_string(st.st_uid) +
           ", not root";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "passes directory " + Quote(where) + " writable by group or others";
  }
  return "";
}

}  // namespace

bool PathIsWithin(const std::string& path, const std::string& root) {
  if (root == "/") return !path.empty() && path.front() == '/';
  if (path.size() < root.size() || path.compare(0, root.size(), root) != 0) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

Result<std::string> ResolveVolumeHostPath(const std::string& host_path,
                                          const VolumeGuardOptions& options) {
  auto refuse = [&](const std::string& problem) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "volumes: host path " + Quote(host_path) + " " + problem);
  };
  if (options.allowed_roots.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "volumes: host volumes are disabled on this host "
                     "(deployment.allowed_volume_roots is empty)");
  }
  if (host_path.empty() || host_path.front() != '/') return refuse("must be an absolute path");
  const std::vector<std::string> comps = Components(host_path);
  for (const auto& c : comps) {
    if (c == "..") return refuse("contains '..'");
    if (c == ".") return refuse("contains '.'");
  }
  const std::string requested = JoinAbsolute(comps);

  // The deepest allowed root that holds the path, as written or with its links resolved.
  std::string root_written, root_real;
  for (const auto& r : options.allowed_roots) {
    const std::string written = Normal(r);
    const std::string real = Real(written).value_or(written);
    for (const auto& form : {written, real}) {
      if (requested == form) return refuse("is an allowed root itself; only paths inside it");
      if (PathIsWithin(requested, form) && form.size() > root_written.size()) {
        root_written = form;
        root_real = real;
      }
    }
  }
  if (root_written.empty()) return refuse("is not under an allowed root");
  if (auto p = ProtectedProblem(requested, options.protected_paths); !p.empty()) return refuse(p);

  const auto& open_beneath = options.open_beneath ? options.open_beneath : SysOpenBeneath;
  Fd dir(::open(root_real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    return refuse("cannot be checked: allowed root " + Quote(root_real) +
                  " cannot be opened: " + std::strerror(errno));
  }
  std::string canonical = root_real;
  if (auto p = OwnershipProblem(dir.get(), canonical); !p.empty()) return refuse(p);
  const size_t skip = Components(root_written).size();
  for (size_t i = skip; i < comps.size(); ++i) {
    const std::string where = canonical + "/" + comps[i];
    int fd = open_beneath(dir.get(), comps[i].c_str());
    if (fd < 0) {
      const int e = errno;
      const std::string at = where == requested ? "" : " at " + Quote(where);
      switch (e) {
        case ELOOP:
          return refuse("contains a symlink" + at);
        case ENOENT:
          return refuse("does not exist" + (at.empty() ? "" : " (missing" + at + ")"));
        case ENOTDIR:
          return refuse("is not a directory" + at);
        case EXDEV:
          return refuse("leaves its allowed root" + at);
        case ENOSYS:
        case E2BIG:
          return MakeError(ErrorCode::kFailedPrecondition,
                           "volumes: host volumes are refused on this host: the kernel lacks "
                           "openat2(2) (Linux 5.6 or later), needed to resolve host paths "
                           "without following symlinks");
        default:
          return refuse("cannot be opened" + at + ": " + std::strerror(e));
      }
    }
    dir.Reset(fd);
    canonical = where;
    if (auto p = OwnershipProblem(dir.get(), canonical); !p.empty()) return refuse(p);
  }
  if (canonical != requested) {
    if (auto p = ProtectedProblem(canonical, options.protected_paths); !p.empty()) {
      return refuse(p);
    }
  }
  return canonical;
}

}  // namespace taolie::host
