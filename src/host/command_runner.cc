#include "host/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/real_time.h"

namespace taolie::host {
namespace {

constexpr size_t kMaxOutput = size_t{64} * 1024;
constexpr const char* kSearchDirs[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                       "/usr/bin",        "/sbin",          "/bin"};

std::string ErrnoText(int e) { return std::strerror(e); }

std::string Resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : kSearchDirs) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Closes a descriptor once, whatever path leaves the scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The child's stdin: an anonymous file holding the data, so writing it can neither block on
// a tool that does not read nor raise SIGPIPE.
Result<int> StdinFile(std::string_view data) {
  int fd = ::memfd_create("taolie-stdin", MFD_CLOEXEC);
  if (fd < 0) return MakeError(ErrorCode::kInternal, "memfd_create: " + ErrnoText(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return MakeError(ErrorCode::kInternal, "write stdin: " + ErrnoText(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    ::close(fd);
    return MakeError(ErrorCode::kInternal, "lseek stdin: " + ErrnoText(e));
  }
  return fd;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Result<CommandOutput> SubprocessRunner::Run(const std::vector<std::string>& argv,
                                            std::string_view stdin_data,
                                            std::chrono::milliseconds timeout) {
  if (argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty command");
  const std::string path = Resolve(argv[0]);
  if (path.empty()) return MakeError(ErrorCode::kNotFound, argv[0] + ": not installed");

  auto in = StdinFile(stdin_data);
  if (!in.ok()) return in.error();
  Fd in_fd(*in);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternal, "pipe: " + ErrnoText(errno));
  }
  Fd out_read(pipe_fds[0]);
  Fd out_write(pipe_fds[1]);
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternal, "pipe: " + ErrnoText(errno));
  }
  Fd err_read(pipe_fds[0]);
  Fd err_write(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_fd.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char* kEnv[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "LC_ALL=C", nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, args.data(),
                         const_cast<char* const*>(kEnv));
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return MakeError(ErrorCode::kUnavailable, "spawn " + path + ": " + ErrnoText(rc));
  out_write.Reset();
  err_write.Reset();
  in_fd.Reset();

  CommandOutput result;
  const auto deadline = SteadyNow() + timeout;
  bool timed_out = false;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow());
    if (left.count() <= 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    if (p[0].fd < 0 && p[1].fd < 0) break;  // EOF on both: the tool closed its output
    int r = ::poll(p, 2, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;      // the wait below still ends at the deadline
    if (r == 0) continue;  // the deadline check above ends it
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // EOF (or an error): the tool, and anything it started, closed it
        (i == 0 ? out_read : err_read).Reset();
        continue;
      }
      const auto got = static_cast<size_t>(n);
      result.output.append(buf, std::min(got, kMaxOutput - result.output.size()));
      if (i == 0) {
        result.stdout_text.append(buf, std::min(got, kMaxOutput - result.stdout_text.size()));
      }
    }
  }
  // The tool closed its output (or the deadline passed): reap it, killing it at the deadline.
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      return MakeError(ErrorCode::kInternal, "waitpid: " + ErrnoText(errno));
    }
    if (w == 0 && SteadyNow() >= deadline) {
      timed_out = true;
      ::kill(pid, SIGKILL);
    } else if (w == 0) {
      ::usleep(5000);
    }
  }
  if (timed_out) {
    return MakeError(ErrorCode::kDeadlineExceeded,
                     argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms");
  }
  result.exit_code = ExitCodeOf(status);
  return result;
}

}  // namespace taolie::host
