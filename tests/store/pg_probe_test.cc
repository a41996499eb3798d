// store::ProbePostgres (doctor's read-only look) and ManagedPostgres::FindBinaries against a real
// private cluster (initdb into a temp dir, UNIX socket only).
#include "store/pg_probe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "fixtures/test_env.h"
#include "store/managed_postgres.h"
#include "store/pg_store.h"

namespace taolie::store {
namespace {

TEST(PgProbeTest, ReadsTheVersionAndTheAgentIdWithoutChangingAnything) {
  char tmpl[] = "/tmp/taolie-pgprobe-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto bin = ManagedPostgres::FindBinaries(dir);
  if (!bin.ok()) {
    if (::taolie::testing::InCi()) FAIL() << bin.error().ToString();
    GTEST_SKIP() << bin.error().ToString();
  }
  EXPECT_TRUE(std::filesystem::exists(*bin + "/initdb")) << *bin;

  ManagedPostgres::Options o;
  o.data_dir = dir;
  o.durable = false;
  o.startup_timeout_s = 20;
  auto pg = ManagedPostgres::Start(o);
  ASSERT_TRUE(pg.ok()) << pg.error().ToString();

  auto fresh = ProbePostgres((*pg)->ConnInfo());
  ASSERT_TRUE(fresh.ok()) << fresh.error().ToString();
  EXPECT_FALSE(fresh->server_version.empty());
  EXPECT_FALSE(fresh->agent_id.has_value()) << "the agent never ran here";
  {  // the probe applied no migration: the agent's tables are still absent
    auto again = ProbePostgres((*pg)->ConnInfo());
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->agent_id.has_value());
  }

  {
    auto db = PgStore::Create((*pg)->ConnInfo());
    ASSERT_TRUE(db.ok()) << db.error().ToString();
    auto before = ProbePostgres((*pg)->ConnInfo());
    ASSERT_TRUE(before.ok());
    EXPECT_FALSE(before->agent_id.has_value()) << "tables exist, no id yet";
    ASSERT_TRUE((*db)->SetState("agent_id", "agent-0123456789ab").ok());
  }
  auto known = ProbePostgres((*pg)->ConnInfo());
  ASSERT_TRUE(known.ok()) << known.error().ToString();
  EXPECT_EQ(known->agent_id.value_or(""), "agent-0123456789ab");

  auto wrong = ProbePostgres((*pg)->ConnInfo() + " password=not-the-password-42");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(wrong.error().message.find("not-the-password-42"), std::string::npos)
      << wrong.error().message;

  (void)(*pg)->Stop();
  pg->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace taolie::store
