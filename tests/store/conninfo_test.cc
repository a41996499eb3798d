// database.sslmode defaults and the external conninfo, parsed back by libpq itself.
#include "store/conninfo.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <string>

namespace taolie::store {
namespace {

std::map<std::string, std::string> Parse(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  std::map<std::string, std::string> out;
  if (opts == nullptr) {
    ADD_FAILURE() << "libpq cannot parse: " << (err ? err : "?");
    PQfreemem(err);
    return out;
  }
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  return out;
}

config::DatabaseConfig Db(const std::string& host, const std::string& sslmode = "") {
  config::DatabaseConfig d;
  d.host = host;
  d.sslmode = sslmode;
  return d;
}

TEST(Conninfo, LocalHostsAreSocketsLocalhostAndLoopback) {
  for (const char* h :
       {"", "/var/run/postgresql", "@abstract", "localhost", "127.0.0.1", "127.8.9.10", "::1"}) {
    EXPECT_TRUE(IsLocalDatabaseHost(h)) << h;
  }
  for (const char* h :
       {"db.internal", "10.0.0.5", "192.168.1.2", "2001:db8::1", "localhost.evil", "128.0.0.1"}) {
    EXPECT_FALSE(IsLocalDatabaseHost(h)) << h;
  }
}

TEST(Conninfo, SslModeDefaultsToRequireForARemoteHost) {
  EXPECT_EQ(EffectiveSslMode(Db("db.internal")), "require");
  EXPECT_EQ(EffectiveSslMode(Db("10.0.0.5")), "require");
  EXPECT_EQ(EffectiveSslMode(Db("127.0.0.1")), "prefer");
  EXPECT_EQ(EffectiveSslMode(Db("/run/postgresql")), "prefer");
  // What the owner configured always wins, both ways.
  EXPECT_EQ(EffectiveSslMode(Db("db.internal", "verify-full")), "verify-full");
  EXPECT_EQ(EffectiveSslMode(Db("db.internal", "disable")), "disable");
  EXPECT_EQ(EffectiveSslMode(Db("127.0.0.1", "require")), "require");
}

TEST(Conninfo, EveryValueReachesLibpqIntactEvenWithQuotesAndBackslashes) {
  config::DatabaseConfig d = Db("db.internal", "verify-full");
  d.port = 6432;
  d.name = "agent db";
  d.user = "o'brien";
  d.password = R"(p w'\x)";
  d.connect_timeout = 7;
  d.sslrootcert = "/etc/ssl/db ca.pem";
  auto kv = Parse(ExternalConnInfo(d));
  EXPECT_EQ(kv["host"], "db.internal");
  EXPECT_EQ(kv["port"], "6432");
  EXPECT_EQ(kv["dbname"], "agent db");
  EXPECT_EQ(kv["user"], "o'brien");
  EXPECT_EQ(kv["password"], R"(p w'\x)");
  EXPECT_EQ(kv["connect_timeout"], "7");
  EXPECT_EQ(kv["sslmode"], "verify-full");
  EXPECT_EQ(kv["sslrootcert"], "/etc/ssl/db ca.pem");
  EXPECT_EQ(kv["application_name"], "taolie-host-agent");

  auto remote_default = Parse(ExternalConnInfo(Db("db.internal")));
  EXPECT_EQ(remote_default["sslmode"], "require");
  EXPECT_EQ(remote_default.count("sslrootcert"), 0u);  // libpq's default stays
}

// Issue 17 item 8: a silent link to an external database fails the call (keepalives, TCP user
// timeout) instead of blocking the store; the operator's values are the ones used.
TEST(Conninfo, KeepalivesAndTcpUserTimeoutAreAlwaysSetAndTheConfigsValuesWin) {
  auto defaults = Parse(ExternalConnInfo(Db("db.internal")));
  EXPECT_EQ(defaults["keepalives"], "1");
  EXPECT_EQ(defaults["keepalives_idle"], "10");
  EXPECT_EQ(defaults["keepalives_interval"], "5");
  EXPECT_EQ(defaults["keepalives_count"], "3");
  EXPECT_EQ(defaults["tcp_user_timeout"], "30000");

  config::DatabaseConfig d = Db("10.0.0.5");
  d.keepalives_idle = 60;
  d.keepalives_interval = 7;
  d.keepalives_count = 9;
  d.tcp_user_timeout_ms = 0;  // the kernel's default
  auto set = Parse(ExternalConnInfo(d));
  EXPECT_EQ(set["keepalives"], "1");
  EXPECT_EQ(set["keepalives_idle"], "60");
  EXPECT_EQ(set["keepalives_interval"], "7");
  EXPECT_EQ(set["keepalives_count"], "9");
  EXPECT_EQ(set["tcp_user_timeout"], "0");
}

}  // namespace
}  // namespace taolie::store
