// database.sslmode / sslrootcert against a real server: a private cluster that also listens
// on a loopback TCP address (127.45.0.1, on lo like all of 127/8) with a self-signed
// certificate made by openssl for this test.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "fixtures/test_env.h"
#include "store/conninfo.h"
#include "store/managed_postgres.h"
#include "store/pg_store.h"

namespace taolie::store {
namespace {

namespace fs = std::filesystem;
constexpr const char* kAddress = "127.45.0.1";

std::string ReadLine(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

bool MakeSelfSigned(const fs::path& dir, const std::string& name, const std::string& ip) {
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + ip +
                          " -addext subjectAltName=IP:" + ip + " -keyout '" +
                          (dir / (name + ".key")).string() + "' -out '" +
                          (dir / (name + ".crt")).string() + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Connects the way the agent does (PgStore::Create with ExternalConnInfo) and, when that
// works, reports whether a plain libpq connection with the same settings uses TLS.
struct Attempt {
  bool connected = false;
  bool tls = false;
  std::string error;
};
Attempt Connect(const config::DatabaseConfig& db) {
  Attempt a;
  auto store = PgStore::Create(ExternalConnInfo(db));
  if (!store.ok()) {
    a.error = store.error().message;
    return a;
  }
  a.connected = true;
  PGconn* conn = PQconnectdb(ExternalConnInfo(db).c_str());
  a.tls = PQstatus(conn) == CONNECTION_OK && PQsslInUse(conn) == 1;
  PQfinish(conn);
  return a;
}

class DatabaseTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/taolie-pg-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);  // the server's user must reach its cluster under it
    opts_.data_dir = dir_ + "/data";
    opts_.durable = false;
    opts_.startup_timeout_s = 20;
  }
  void TearDown() override {
    if (pg_) (void)pg_->Stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // (Re)starts the cluster with `extra` settings in postgresql.auto.conf, which PostgreSQL
  // reads after the agent's own taolie.conf.
  void Restart(const std::string& extra) {
    if (pg_) {
      ASSERT_TRUE(pg_->Stop().ok());
    }
    pg_.reset();
    if (fs::exists(opts_.data_dir + "/pg")) {
      std::ofstream(opts_.data_dir + "/pg/postgresql.auto.conf") << extra;
    }
    auto pg = ManagedPostgres::Start(opts_);
    if (!pg.ok() && pg.error().code == ErrorCode::kNotFound && !testing::InCi()) {
      skipped_ = true;
      return;
    }
    ASSERT_TRUE(pg.ok()) << pg.error().ToString();
    pg_ = std::move(*pg);
  }
  config::DatabaseConfig Db(const std::string& sslmode, const std::string& rootcert = "") {
    config::DatabaseConfig db;
    db.host = kAddress;
    db.port = 5432;
    db.name = ManagedPostgres::kDatabaseName;
    db.user = ManagedPostgres::kSuperuser;
    db.password = ReadLine(opts_.data_dir + "/pg-password");
    db.connect_timeout = 5;
    db.sslmode = sslmode;
    db.sslrootcert = rootcert;
    return db;
  }

  std::string dir_;
  ManagedPostgres::Options opts_;
  std::unique_ptr<ManagedPostgres> pg_;
  bool skipped_ = false;
};

TEST_F(DatabaseTlsTest, SslModeAndRootCertDecideWhatConnects) {
  Restart("");  // first start: initdb
  if (skipped_) GTEST_SKIP() << "no PostgreSQL server binaries";
  if (HasFatalFailure()) return;
  const fs::path pgdata = pg_->DataDir();
  struct stat owner {};
  ASSERT_EQ(::stat(pgdata.c_str(), &owner), 0);
  {
    std::ofstream hba(pgdata / "pg_hba.conf", std::ios::app);
    hba << "host all all " << kAddress << "/32 scram-sha-256\n";
  }
  // A server certificate for 127.45.0.1 and an unrelated CA.
  ASSERT_TRUE(MakeSelfSigned(dir_, "server", kAddress)) << "openssl is needed";
  ASSERT_TRUE(MakeSelfSigned(dir_, "other", kAddress));
  for (const char* f : {"server.crt", "server.key"}) {
    fs::copy_file(fs::path(dir_) / f, pgdata / f, fs::copy_options::overwrite_existing);
    ASSERT_EQ(::chown((pgdata / f).c_str(), owner.st_uid, owner.st_gid), 0);
    ASSERT_EQ(::chmod((pgdata / f).c_str(), 0600), 0);
  }

  // Without TLS on the server: the default for a loopback host (prefer) connects in clear,
  // require does not.
  Restart(std::string("listen_addresses = '") + kAddress + "'\nssl = off\n");
  if (HasFatalFailure()) return;
  Attempt plain = Connect(Db(""));
  EXPECT_TRUE(plain.connected) << plain.error;
  EXPECT_FALSE(plain.tls);
  Attempt required = Connect(Db("require"));
  EXPECT_FALSE(required.connected);
  EXPECT_NE(required.error.find("SSL"), std::string::npos) << required.error;
  std::cout << "# sslmode=require, server without TLS: " << required.error << "\n";

  // With TLS: require encrypts; verify-full checks the chain and the name.
  Restart(std::string("listen_addresses = '") + kAddress + "'\nssl = on\n");
  if (HasFatalFailure()) return;
  Attempt req = Connect(Db("require"));
  EXPECT_TRUE(req.connected) << req.error;
  EXPECT_TRUE(req.tls);
  Attempt verified = Connect(Db("verify-full", dir_ + "/server.crt"));
  EXPECT_TRUE(verified.connected) << verified.error;
  EXPECT_TRUE(verified.tls);
  Attempt wrong_ca = Connect(Db("verify-full", dir_ + "/other.crt"));
  EXPECT_FALSE(wrong_ca.connected);
  EXPECT_NE(wrong_ca.error.find("certificate"), std::string::npos) << wrong_ca.error;
  std::cout << "# sslmode=verify-full, another CA: " << wrong_ca.error << "\n";
  Attempt missing_ca = Connect(Db("verify-full", dir_ + "/no-such-ca.crt"));
  EXPECT_FALSE(missing_ca.connected);
}

}  // namespace
}  // namespace taolie::store
