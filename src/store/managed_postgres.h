#pragma once
// ManagedPostgres: the agent's private PostgreSQL cluster under its data dir
// (`database.mode: managed`). The server listens on a UNIX socket only (no TCP), in a 0700
// directory, with a generated password (scram-sha-256). The agent supervises the postmaster
// as its own child process; Stop() does a fast shutdown.
//
// Layout under data_dir:
//   pg/               the cluster (PGDATA); pg/taolie.conf is rewritten at every start
//   pg-run/           the socket directory (0700, owned by the server's user)
//   pg-password       the superuser password (0600, owned by the server's user)
//   pg-initdb.log     output of the first initdb; pg-startup.log: the postmaster's early output
//                     (later logs go to pg/log/ via the logging collector)
#include <sys/types.h>

#include <memory>
#include <string>

#include "common/result.h"

namespace taolie::store {

class ManagedPostgres {
 public:
  static constexpr const char* kDatabaseName = "taolie_host_agent";
  static constexpr const char* kSuperuser = "taolie";

  struct Options {
    std::string data_dir;  // the cluster lives at data_dir/pg
    // "" = search: $TAOLIE_PG_BIN_DIR, /usr/lib/postgresql/<cluster's version>/bin,
    // /usr/lib/postgresql/<highest>/bin, then PATH.
    std::string bin_dir;
    // Only when running as root (PostgreSQL refuses root): run initdb/postgres as this user.
    // "" = "postgres". Ignored when not root (the server runs as the current user).
    std::string run_as_user;
    int startup_timeout_s = 30;
    // false: initdb --no-sync and fsync=off. Only for throwaway clusters (tests).
    bool durable = true;
  };

  // Initialises the cluster on first use (password, initdb, database), removes a stale
  // postmaster.pid, starts the server (or adopts one still running from a previous agent run
  // with the same data dir) and waits until it accepts connections.
  // NotFound: no PostgreSQL binaries; FailedPrecondition: unusable user/dir; Unavailable or
  // DeadlineExceeded: the server did not come up (message includes its log's last lines).
  static Result<std::unique_ptr<ManagedPostgres>> Start(const Options& options);

  // Where Start would find initdb and postgres for a cluster under `data_dir` (the search of
  // Options::bin_dir), without starting anything. NotFound says what to install.
  static Result<std::string> FindBinaries(const std::string& data_dir,
                                          const std::string& bin_dir = "");

  ~ManagedPostgres();  // Stop()
  ManagedPostgres(const ManagedPostgres&) = delete;
  ManagedPostgres& operator=(const ManagedPostgres&) = delete;

  // libpq conninfo: host=<socket dir> port dbname user password connect_timeout=5.
  // Contains the password: never log it.
  std::string ConnInfo() const { return ConnInfo(kDatabaseName); }
  std::string ConnInfo(const std::string& dbname) const;
  // The same conninfo for a tool outside the agent (doctor, gpu reset-done) reaching the
  // agent's cluster under `data_dir` through its socket; NotFound when no cluster was made there
  // (no password file).
  static Result<std::string> ConnInfoUnder(const std::string& data_dir);

  // Fast shutdown (SIGINT), bounded wait, then SIGQUIT / SIGKILL. Idempotent. Also stops an
  // adopted server: the agent owns its private cluster.
  Status Stop();

  pid_t Pid() const { return pid_; }  // the postmaster; 0 once stopped
  // False once the server has died (crash, OOM kill, someone's kill -9): restart with Start().
  bool Running();
  bool Adopted() const { return adopted_; }  // true: found running, not started by us
  const std::string& SocketDir() const { return socket_dir_; }
  const std::string& DataDir() const { return pgdata_; }
  const std::string& BinDir() const { return bin_dir_; }

 private:
  ManagedPostgres() = default;
  static std::string SocketConnInfo(const std::string& socket_dir, const std::string& dbname,
                                    const std::string& password);
  // Start's last step before the database: waits (bounded) until the server accepts
  // connections. Unavailable when it exits meanwhile; DeadlineExceeded (after Stop) when late.
  Status WaitUntilReady(const std::string& startup_log, int startup_timeout_s);

  std::string pgdata_;
  std::string socket_dir_;
  std::string bin_dir_;
  std::string password_;
  pid_t pid_ = 0;
  bool adopted_ = false;  // not our child: wait by polling instead of waitpid
};

}  // namespace taolie::store
