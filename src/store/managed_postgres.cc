#include "store/managed_postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/real_time.h"
#include "common/secrets.h"

namespace taolie::store {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kPort = 5432;
constexpr int kInitdbTimeoutS = 120;
constexpr int kFastShutdownWaitMs = 15000;

struct RunAs {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

Error Err(ErrorCode code, std::string msg) { return MakeError(code, "managed postgres: " + msg); }

std::string Errno() { return std::strerror(errno); }

bool IsExecutable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; }

bool HasServerBinaries(const fs::path& dir) {
  return IsExecutable(dir / "postgres") && IsExecutable(dir / "initdb");
}

std::string ReadFirstLine(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

std::string Tail(const fs::path& p, size_t max_bytes = 2000) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::string> FindBinDir(const std::string& configured, const fs::path& pgdata) {
  if (!configured.empty()) {
    if (HasServerBinaries(configured)) return configured;
    return Err(ErrorCode::kNotFound, "no postgres/initdb in bin_dir " + configured);
  }
  if (const char* env = std::getenv("TAOLIE_PG_BIN_DIR"); env != nullptr && *env != '\0') {
    if (HasServerBinaries(env)) return std::string(env);
    return Err(ErrorCode::kNotFound,
               std::string("no postgres/initdb in $TAOLIE_PG_BIN_DIR ") + env);
  }
  const fs::path root = "/usr/lib/postgresql";
  std::error_code ec;
  // An existing cluster must run with its own major version.
  std::string version = ReadFirstLine(pgdata / "PG_VERSION");
  if (!version.empty() && HasServerBinaries(root / version / "bin")) {
    return (root / version / "bin").string();
  }
  int best = -1;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    char* end = nullptr;
    long v = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str() || *end != '\0') continue;
    if (v > best && HasServerBinaries(entry.path() / "bin")) best = static_cast<int>(v);
  }
  if (best >= 0) return (root / std::to_string(best) / "bin").string();
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
      if (!dir.empty() && HasServerBinaries(dir)) return dir;
    }
  }
  return Err(ErrorCode::kNotFound,
             "PostgreSQL server binaries (postgres, initdb) not found; install postgresql or "
             "set TAOLIE_PG_BIN_DIR");
}

Result<RunAs> ResolveUser(const std::string& requested) {
  RunAs as;
  if (::geteuid() != 0) return as;  // run as ourselves
  as.name = requested.empty() ? "postgres" : requested;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(as.name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return Err(ErrorCode::kFailedPrecondition,
               "running as root, and PostgreSQL refuses to run as root: user '" + as.name +
                   "' (to run the server as) does not exist; create it or set run_as_user");
  }
  if (pw.pw_uid == 0) {
    return Err(ErrorCode::kFailedPrecondition, "run_as_user '" + as.name + "' is root");
  }
  as.switch_user = true;
  as.uid = pw.pw_uid;
  as.gid = pw.pw_gid;
  return as;
}

bool CanSearch(const struct stat& st, const RunAs& as) {
  if (st.st_uid == as.uid) return (st.st_mode & S_IXUSR) != 0;
  if (st.st_gid == as.gid) return (st.st_mode & S_IXGRP) != 0;
  return (st.st_mode & S_IXOTH) != 0;
}

// The server's user must be able to traverse to data_dir. data_dir itself gets o+x (search
// only, no listing) when needed; a closed ancestor is reported, not changed.
Status EnsureTraversable(const fs::path& data_dir, const RunAs& as) {
  if (!as.switch_user) return OkStatus();
  fs::path p;
  for (const auto& part : data_dir) {
    p /= part;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      return Err(ErrorCode::kFailedPrecondition, "stat " + p.string() + ": " + Errno());
    }
    if (CanSearch(st, as)) continue;
    if (p == data_dir) {
      if (::chmod(p.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0) {
        return Err(ErrorCode::kFailedPrecondition, "chmod o+x " + p.string() + ": " + Errno());
      }
      continue;
    }
    return Err(ErrorCode::kFailedPrecondition,
               "user '" + as.name + "' cannot traverse " + p.string() +
                   " (needed to reach the cluster); allow search (x) on it");
  }
  return OkStatus();
}

Status Chown(const fs::path& p, const RunAs& as) {
  if (!as.switch_user) return OkStatus();
  if (::chown(p.c_str(), as.uid, as.gid) != 0) {
    return Err(ErrorCode::kFailedPrecondition, "chown " + p.string() + ": " + Errno());
  }
  return OkStatus();
}

Status MakeDir(const fs::path& p, mode_t mode, const RunAs& as) {
  if (::mkdir(p.c_str(), mode) != 0 && errno != EEXIST) {
    return Err(ErrorCode::kFailedPrecondition, "mkdir " + p.string() + ": " + Errno());
  }
  if (::chmod(p.c_str(), mode) != 0) {
    return Err(ErrorCode::kFailedPrecondition, "chmod " + p.string() + ": " + Errno());
  }
  return Chown(p, as);
}

// Writes `content` to `p` (truncating) with `mode`, owned by the server's user.
Status WriteFile(const fs::path& p, const std::string& content, mode_t mode, const RunAs& as,
                 bool exclusive = false) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(p.c_str(), flags, mode);
  if (fd < 0) return Err(ErrorCode::kFailedPrecondition, "open " + p.string() + ": " + Errno());
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string e = Errno();
      ::close(fd);
      return Err(ErrorCode::kInternal, "write " + p.string() + ": " + e);
    }
    off += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  if (as.switch_user && ::fchown(fd, as.uid, as.gid) != 0) {
    std::string e = Errno();
    ::close(fd);
    return Err(ErrorCode::kFailedPrecondition, "chown " + p.string() + ": " + e);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Err(ErrorCode::kInternal, "close " + p.string() + ": " + Errno());
  }
  return OkStatus();
}

Result<int> OpenLog(const fs::path& p, const RunAs& as) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Err(ErrorCode::kFailedPrecondition, "open " + p.string() + ": " + Errno());
  if (as.switch_user && ::fchown(fd, as.uid, as.gid) != 0) {
    std::string e = Errno();
    ::close(fd);
    return Err(ErrorCode::kFailedPrecondition, "chown " + p.string() + ": " + e);
  }
  return fd;
}

// fork + exec with a clean environment, new session, default signals, the server's user,
// stdout/stderr to `out_fd`. Everything the child needs is prepared before fork.
Result<pid_t> Spawn(const std::vector<std::string>& args, const RunAs& as, int out_fd) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  static const char* kEnv[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", nullptr};
  pid_t pid = ::fork();
  if (pid < 0) return Err(ErrorCode::kInternal, "fork: " + Errno());
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
    }
    ::setsid();
    if (as.switch_user) {
      gid_t groups[1] = {as.gid};
      if (::setgroups(1, groups) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0) {
        ::_exit(126);
      }
    }
    if (::chdir("/") != 0) ::_exit(126);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) {
      ::_exit(126);
    }
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    }
    ::execve(argv[0], argv.data(), const_cast<char* const*>(kEnv));
    ::_exit(127);
  }
  return pid;
}

// Waits for our child to exit; nullopt on timeout.
std::optional<int> WaitChild(pid_t pid, milliseconds timeout) {
  auto deadline = SteadyNow() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;  // not our child any more
    if (SteadyNow() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// Alive and not a zombie (a zombie child of ours counts as gone).
bool ProcessAlive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::string stat = ReadFirstLine("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return !(paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z');
}

std::string ProcCwd(pid_t pid) {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd", ec);
  return ec ? "" : p.string();
}

bool IsPostgresProcess(pid_t pid) {
  return ReadFirstLine("/proc/" + std::to_string(pid) + "/comm").rfind("postgres", 0) == 0;
}

// Processes (other than us) whose working directory is the cluster: the postmaster chdirs
// there and its backends inherit it.
std::vector<pid_t> ProcessesInDir(const std::string& dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    char* end = nullptr;
    long pid = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str() || *end != '\0' || pid == ::getpid()) continue;
    if (ProcCwd(static_cast<pid_t>(pid)) == dir) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

void KillAndWait(const std::vector<pid_t>& pids, milliseconds timeout) {
  for (pid_t p : pids) ::kill(p, SIGQUIT);
  auto deadline = SteadyNow() + timeout;
  for (pid_t p : pids) {
    while (ProcessAlive(p) && SteadyNow() < deadline) std::this_thread::sleep_for(milliseconds(20));
    if (ProcessAlive(p)) ::kill(p, SIGKILL);
  }
}

std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string QuoteConfValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace

std::string ManagedPostgres::SocketConnInfo(const std::string& socket_dir,
                                            const std::string& dbname,
                                            const std::string& password) {
  return "host=" + QuoteConnValue(socket_dir) + " port=" + std::to_string(kPort) +
         " dbname=" + QuoteConnValue(dbname) + " user=" + QuoteConnValue(kSuperuser) +
         " password=" + QuoteConnValue(password) + " connect_timeout=5";
}

std::string ManagedPostgres::ConnInfo(const std::string& dbname) const {
  return SocketConnInfo(socket_dir_, dbname, password_);
}

Result<std::string> ManagedPostgres::ConnInfoUnder(const std::string& data_dir) {
  std::ifstream in(data_dir + "/pg-password");
  std::string password;
  std::getline(in, password);
  while (!password.empty() && (password.back() == '\r' || password.back() == ' ')) {
    password.pop_back();
  }
  if (password.empty()) {
    return MakeError(ErrorCode::kNotFound, "no managed database under " + data_dir);
  }
  return SocketConnInfo(data_dir + "/pg-run", kDatabaseName, password);
}

Result<std::string> ManagedPostgres::FindBinaries(const std::string& data_dir,
                                                  const std::string& bin_dir) {
  return FindBinDir(bin_dir, fs::path(data_dir) / "pg");
}

namespace {

// The data dir, created when missing, as its canonical path.
Result<fs::path> CanonicalDataDir(const std::string& dir) {
  if (dir.empty()) return Err(ErrorCode::kInvalidArgument, "data_dir is empty");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Err(ErrorCode::kFailedPrecondition,
               "cannot create data dir " + dir + ": " + ec.message());
  }
  fs::path canonical = fs::canonical(dir, ec);
  if (ec) return Err(ErrorCode::kFailedPrecondition, "data dir " + dir + ": " + ec.message());
  return canonical;
}

// The superuser's password: generated once, kept next to the cluster.
Result<std::string> LoadOrCreatePassword(const fs::path& password_file, const fs::path& pgdata,
                                         const RunAs& as) {
  if (fs::exists(password_file)) {
    std::string password = ReadFirstLine(password_file);
    if (password.empty()) {
      return Err(ErrorCode::kFailedPrecondition, password_file.string() + " is empty");
    }
    TAOLIE_RETURN_IF_ERROR(Chown(password_file, as));
    return password;
  }
  if (fs::exists(pgdata / "PG_VERSION")) {
    return Err(ErrorCode::kFailedPrecondition,
               "cluster exists but " + password_file.string() + " is missing");
  }
  auto pw = RandomAlnum(32);
  if (!pw.ok()) return pw.error();
  TAOLIE_RETURN_IF_ERROR(WriteFile(password_file, *pw + "\n", 0600, as, true));
  return *pw;
}

// Runs initdb into `scratch` (bounded), its output to `log`.
Status RunInitdb(const std::string& bin_dir, const fs::path& scratch, const fs::path& password_file,
                 bool durable, const fs::path& log, const RunAs& as) {
  auto log_fd = OpenLog(log, as);
  if (!log_fd.ok()) return log_fd.error();
  std::vector<std::string> args = {bin_dir + "/initdb",
                                   "-D",
                                   scratch.string(),
                                   "-U",
                                   ManagedPostgres::kSuperuser,
                                   "--auth=scram-sha-256",
                                   "--pwfile=" + password_file.string(),
                                   "-E",
                                   "UTF8",
                                   "--no-locale"};
  if (!durable) args.push_back("--no-sync");
  auto pid = Spawn(args, as, *log_fd);
  ::close(*log_fd);
  if (!pid.ok()) return pid.error();
  auto status = WaitChild(*pid, std::chrono::seconds(kInitdbTimeoutS));
  if (!status) {
    ::kill(*pid, SIGKILL);
    WaitChild(*pid, milliseconds(2000));
    return Err(ErrorCode::kDeadlineExceeded, "initdb did not finish in time");
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return Err(ErrorCode::kInternal, "initdb failed: " + Tail(log));
  }
  return OkStatus();
}

// First start: initdb into a scratch dir, then rename, so a crash never leaves half a cluster.
Status InitCluster(const std::string& bin_dir, const fs::path& data_dir, const fs::path& pgdata,
                   const fs::path& password_file, bool durable, const RunAs& as) {
  std::error_code ec;
  const fs::path scratch = data_dir / "pg.init";
  fs::remove_all(scratch, ec);
  if (fs::exists(pgdata)) fs::remove(pgdata, ec);  // only succeeds when empty
  if (fs::exists(pgdata)) {
    return Err(ErrorCode::kFailedPrecondition,
               pgdata.string() + " exists but holds no cluster (no PG_VERSION); move it away");
  }
  TAOLIE_RETURN_IF_ERROR(MakeDir(scratch, 0700, as));
  spdlog::info("managed postgres: initialising cluster in {}", pgdata.string());
  TAOLIE_RETURN_IF_ERROR(
      RunInitdb(bin_dir, scratch, password_file, durable, data_dir / "pg-initdb.log", as));
  std::ofstream conf(scratch / "postgresql.conf", std::ios::app);
  conf << "\n# Settings of the TAOLIE host agent (rewritten at every start)\n"
       << "include_if_exists = 'taolie.conf'\n";
  conf.close();
  if (!conf) return Err(ErrorCode::kInternal, "cannot append to postgresql.conf");
  fs::rename(scratch, pgdata, ec);
  if (ec) return Err(ErrorCode::kInternal, "rename cluster dir: " + ec.message());
  return OkStatus();
}

// pg/taolie.conf, rewritten at every start: the UNIX socket only, small memory, the logging
// collector; without fsync for a throwaway (not durable) cluster.
Status WriteServerConfig(const fs::path& pgdata, const std::string& socket_dir, bool durable,
                         const RunAs& as) {
  std::ostringstream conf;
  conf << "# Managed by taolie-host-agent; rewritten at every start.\n"
       << "listen_addresses = ''\n"
       << "port = " << kPort << "\n"
       << "unix_socket_directories = " << QuoteConfValue(socket_dir) << "\n"
       << "unix_socket_permissions = 0700\n"
       << "max_connections = 20\n"
       << "shared_buffers = 16MB\n"
       << "work_mem = 4MB\n"
       << "maintenance_work_mem = 16MB\n"
       // Small tables, pruned hourly by the agent: vacuum checks need not run every minute.
       << "autovacuum_naptime = 5min\n"
       << "logging_collector = on\n"
       << "log_directory = 'log'\n"
       << "log_filename = 'postgresql-%a.log'\n"
       << "log_truncate_on_rotation = on\n"
       << "log_rotation_age = 1d\n"
       << "log_rotation_size = 0\n"
       << "log_timezone = 'UTC'\n"
       << "timezone = 'UTC'\n";
  if (!durable) conf << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
  return WriteFile(pgdata / "taolie.conf", conf.str(), 0600, as);
}

// A postmaster.pid: the pid of the server to adopt when it is ours and alive; otherwise the
// file is stale: leftover backends are stopped, the file and the socket removed, and 0 is
// returned (as when there is no postmaster.pid).
Result<pid_t> AdoptableServer(const fs::path& pgdata, const std::string& socket_dir) {
  const fs::path pid_file = pgdata / "postmaster.pid";
  if (!fs::exists(pid_file)) return 0;
  pid_t old = static_cast<pid_t>(std::strtol(ReadFirstLine(pid_file).c_str(), nullptr, 10));
  if (ProcessAlive(old) && IsPostgresProcess(old) && ProcCwd(old) == pgdata.string()) {
    spdlog::info("managed postgres: adopting running server (pid {})", old);
    return old;
  }
  // Leftover backends of a dead postmaster would share the data dir with a new one.
  auto orphans = ProcessesInDir(pgdata.string());
  if (!orphans.empty()) {
    spdlog::warn("managed postgres: stopping {} orphaned server process(es)", orphans.size());
    KillAndWait(orphans, milliseconds(3000));
  }
  spdlog::warn("managed postgres: removing stale postmaster.pid (pid {} is not our server)", old);
  std::error_code ec;
  fs::remove(pid_file, ec);
  if (ec)
    return Err(ErrorCode::kFailedPrecondition, "remove stale postmaster.pid: " + ec.message());
  fs::remove(fs::path(socket_dir) / ".s.PGSQL.5432", ec);
  fs::remove(fs::path(socket_dir) / ".s.PGSQL.5432.lock", ec);
  return 0;
}

// Starts the postmaster as our child, its early output to `log`.
Result<pid_t> SpawnServer(const std::string& bin_dir, const fs::path& pgdata, const fs::path& log,
                          const RunAs& as) {
  auto log_fd = OpenLog(log, as);
  if (!log_fd.ok()) return log_fd.error();
  auto pid = Spawn({bin_dir + "/postgres", "-D", pgdata.string()}, as, *log_fd);
  ::close(*log_fd);
  if (!pid.ok()) return pid.error();
  spdlog::info("managed postgres: started server (pid {})", *pid);
  return *pid;
}

// The agent's database (idempotent: also repairs a crash between initdb and here), through
// the server's `admin` conninfo.
Status EnsureDatabase(const std::string& admin) {
  PGconn* conn = PQconnectdb(admin.c_str());
  Status db_status = OkStatus();
  if (PQstatus(conn) != CONNECTION_OK) {
    db_status = Err(ErrorCode::kUnavailable, std::string("connect: ") + PQerrorMessage(conn));
  } else {
    const char* values[] = {ManagedPostgres::kDatabaseName};
    PGresult* r = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1, nullptr,
                               values, nullptr, nullptr, 0);
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      db_status = Err(ErrorCode::kInternal, std::string("query: ") + PQerrorMessage(conn));
    }
    PQclear(r);
    if (db_status.ok() && !exists) {
      // kDatabaseName is a constant identifier, not a value: no injection possible.
      PGresult* c = PQexec(conn, "CREATE DATABASE taolie_host_agent");
      const char* state = PQresultErrorField(c, PG_DIAG_SQLSTATE);
      if (PQresultStatus(c) != PGRES_COMMAND_OK && !(state && std::string(state) == "42P04")) {
        db_status =
            Err(ErrorCode::kInternal, std::string("create database: ") + PQerrorMessage(conn));
      }
      PQclear(c);
    }
  }
  PQfinish(conn);
  return db_status;
}

}  // namespace

Result<std::unique_ptr<ManagedPostgres>> ManagedPostgres::Start(const Options& options) {
  auto canonical = CanonicalDataDir(options.data_dir);
  if (!canonical.ok()) return canonical.error();
  const fs::path data_dir = *canonical;

  std::unique_ptr<ManagedPostgres> pg(new ManagedPostgres());
  pg->pgdata_ = (data_dir / "pg").string();
  pg->socket_dir_ = (data_dir / "pg-run").string();
  const fs::path pgdata = pg->pgdata_;
  const fs::path password_file = data_dir / "pg-password";

  if (pg->socket_dir_.size() + std::strlen("/.s.PGSQL.5432") >= 107) {
    return Err(ErrorCode::kInvalidArgument,
               "data dir path too long for a UNIX socket: " + pg->socket_dir_);
  }
  auto bin = FindBinDir(options.bin_dir, pgdata);
  if (!bin.ok()) return bin.error();
  pg->bin_dir_ = *bin;
  auto user = ResolveUser(options.run_as_user);
  if (!user.ok()) return user.error();
  const RunAs as = *user;
  TAOLIE_RETURN_IF_ERROR(EnsureTraversable(data_dir, as));

  auto password = LoadOrCreatePassword(password_file, pgdata, as);
  if (!password.ok()) return password.error();
  pg->password_ = *password;
  if (!fs::exists(pgdata / "PG_VERSION")) {
    TAOLIE_RETURN_IF_ERROR(
        InitCluster(pg->bin_dir_, data_dir, pgdata, password_file, options.durable, as));
  }
  TAOLIE_RETURN_IF_ERROR(MakeDir(pg->socket_dir_, 0700, as));
  TAOLIE_RETURN_IF_ERROR(WriteServerConfig(pgdata, pg->socket_dir_, options.durable, as));

  auto running = AdoptableServer(pgdata, pg->socket_dir_);
  if (!running.ok()) return running.error();
  const fs::path startup_log = data_dir / "pg-startup.log";
  if (*running > 0) {
    pg->pid_ = *running;
    pg->adopted_ = true;
  } else {
    auto pid = SpawnServer(pg->bin_dir_, pgdata, startup_log, as);
    if (!pid.ok()) return pid.error();
    pg->pid_ = *pid;
  }
  TAOLIE_RETURN_IF_ERROR(pg->WaitUntilReady(startup_log.string(), options.startup_timeout_s));
  if (Status db = EnsureDatabase(pg->ConnInfo("postgres")); !db.ok()) {
    (void)pg->Stop();
    return db.error();
  }
  return pg;
}

Status ManagedPostgres::WaitUntilReady(const std::string& startup_log, int startup_timeout_s) {
  const std::string admin = ConnInfo("postgres");
  auto deadline = SteadyNow() + std::chrono::seconds(std::max(1, startup_timeout_s));
  while (true) {
    if (!adopted_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return Err(ErrorCode::kUnavailable, "postgres exited during startup: " + Tail(startup_log));
      }
    } else if (!ProcessAlive(pid_)) {
      return Err(ErrorCode::kUnavailable, "adopted postgres exited");
    }
    if (PQping(admin.c_str()) == PQPING_OK) return OkStatus();
    if (SteadyNow() >= deadline) {
      std::string log = Tail(startup_log);
      (void)Stop();
      return Err(ErrorCode::kDeadlineExceeded, "postgres did not accept connections within " +
                                                   std::to_string(startup_timeout_s) +
                                                   " s: " + log);
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

bool ManagedPostgres::Running() {
  if (pid_ <= 0) return false;
  if (!adopted_) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;  // reaped: it is gone
      return false;
    }
  }
  return ProcessAlive(pid_);
}

ManagedPostgres::~ManagedPostgres() {
  auto st = Stop();
  if (!st.ok()) spdlog::error("{}", st.error().message);
}

Status ManagedPostgres::Stop() {
  if (pid_ <= 0) return OkStatus();
  const pid_t pid = pid_;
  auto gone_within = [&](milliseconds timeout) {
    if (!adopted_) return WaitChild(pid, timeout).has_value();
    auto deadline = SteadyNow() + timeout;
    while (ProcessAlive(pid)) {
      if (SteadyNow() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  };
  spdlog::info("managed postgres: stopping server (pid {})", pid);
  ::kill(pid, SIGINT);  // fast shutdown: abort transactions, checkpoint, exit
  if (gone_within(milliseconds(kFastShutdownWaitMs))) {
    pid_ = 0;
    return OkStatus();
  }
  spdlog::warn("managed postgres: fast shutdown timed out; immediate shutdown");
  ::kill(pid, SIGQUIT);
  if (gone_within(milliseconds(5000))) {
    pid_ = 0;
    return OkStatus();
  }
  ::kill(pid, SIGKILL);
  if (gone_within(milliseconds(2000))) {
    pid_ = 0;
    return OkStatus();
  }
  return Err(ErrorCode::kInternal, "postgres (pid " + std::to_string(pid) + ") did not stop");
}

}  // namespace taolie::store
