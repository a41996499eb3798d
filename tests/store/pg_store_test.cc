// Integration tests of PgStore and ManagedPostgres against a real PostgreSQL cluster, started
// privately (initdb into a temp dir, UNIX socket only) by each test process.
#include "store/pg_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/time_format.h"
#include "fixtures/test_env.h"
#include "store/managed_postgres.h"
#include "store/migrations.h"

namespace taolie::store {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::seconds;

// A second, plain libpq connection for checks and fault injection.
class Sql {
 public:
  explicit Sql(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {}
  ~Sql() { PQfinish(conn_); }
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  // Rows of text values; FAILs the test on error.
  std::vector<std::vector<std::string>> Query(const std::string& sql,
                                              const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
    std::vector<std::vector<std::string>> rows;
    auto st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        << sql << ": " << PQerrorMessage(conn_);
    for (int i = 0; i < PQntuples(r); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r); ++j) row.push_back(PQgetvalue(r, i, j));
      rows.push_back(std::move(row));
    }
    PQclear(r);
    return rows;
  }
  std::string Scalar(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto rows = Query(sql, params);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

 private:
  PGconn* conn_;
};

std::string MakeTempDir() {
  std::string tmpl = "/tmp/taolie-pg-test-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  return dir ? std::string(dir) : std::string();
}

ManagedPostgres::Options TestOptions(const std::string& dir) {
  ManagedPostgres::Options o;
  o.data_dir = dir;
  o.durable = false;  // throwaway cluster: no fsync
  o.startup_timeout_s = 20;
  return o;
}

// Missing PostgreSQL binaries: skip locally, fail under CI=true.
#define TAOLIE_REQUIRE_CLUSTER(result)                                                 \
  if (!(result).ok()) {                                                                \
    if ((result).error().code == ErrorCode::kNotFound && !::taolie::testing::InCi()) { \
      GTEST_SKIP() << (result).error().ToString();                                     \
    }                                                                                  \
    FAIL() << "cannot start PostgreSQL: " << (result).error().ToString();              \
  }

SystemTime Micros(SystemTime t) {  // what the database keeps
  return std::chrono::time_point_cast<microseconds>(t);
}

GpuRecord Gpu(const std::string& uuid, int index,
              GpuHealthState health = GpuHealthState::kHealthy) {
  GpuRecord g;
  g.uuid = uuid;
  g.index = index;
  g.name = "NVIDIA Test " + std::to_string(index);
  g.memory_total_mb = 81920;
  g.pci_bus_id = "00000000:0" + std::to_string(index) + ":00.0";
  g.health = health;
  return g;
}

Deployment MakeDeployment(const std::string& id, std::vector<int> host_ports = {}) {
  Deployment d;
  d.id = id;
  d.command_id = "cmd-" + id;
  d.user_id = "user-1";
  d.template_id = "tpl-1";
  d.image = "registry.local/pytorch:latest";
  d.spec_json = R"({"image":"registry.local/pytorch:latest"})";
  d.container_name = "deployment-" + id;
  d.duration_minutes = 90;
  d.price_per_hour = 1.25;
  d.ssh_username = "renter";
  d.ssh_password = "s3cret-pass";
  d.jupyter_token = "tok";
  for (size_t i = 0; i < host_ports.size(); ++i) {
    d.ports.push_back(PortAllocation{host_ports[i], i == 0 ? 22 : 8888 + static_cast<int>(i),
                                     i == 0 ? "ssh" : "rental_port_" + std::to_string(i)});
  }
  return d;
}

OutboxEvent Event(const std::string& deployment_id, EventKind kind,
                  const std::string& body = "{}") {
  OutboxEvent e;
  e.deployment_id = deployment_id;
  e.kind = kind;
  e.path = "/api/deployments/" + deployment_id + "/" + domain::EventKindName(kind);
  e.body = body;
  return e;
}

class PgStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    auto pg = ManagedPostgres::Start(TestOptions(*dir_));
    if (pg.ok()) {
      cluster_ = std::move(*pg).release();
    } else {
      start_error_ = new Error(pg.error());
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
    std::error_code ec;
    if (dir_ && !dir_->empty()) fs::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (cluster_ == nullptr) {
      Result<int> r = start_error_ ? Result<int>(*start_error_) : Result<int>(0);
      TAOLIE_REQUIRE_CLUSTER(r);
      FAIL() << "no cluster";
    }
    // A fresh database per test: tests are independent in one process too.
    db_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    Sql admin(cluster_->ConnInfo("postgres"));
    ASSERT_TRUE(admin.ok()) << admin.error();
    admin.Query("CREATE DATABASE " + db_);  // test-made identifier, not user data
    auto s = PgStore::Create(cluster_->ConnInfo(db_), 5000);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
    sql_ = std::make_unique<Sql>(cluster_->ConnInfo(db_));
    ASSERT_TRUE(sql_->ok());
  }

  void SyncThreeGpus() {
    ASSERT_TRUE(store_->SyncGpus({Gpu("GPU-a", 0), Gpu("GPU-b", 1), Gpu("GPU-c", 2)}).ok());
  }

  static inline std::string* dir_ = nullptr;
  static inline ManagedPostgres* cluster_ = nullptr;
  static inline Error* start_error_ = nullptr;
  static inline std::atomic<int> counter_{0};
  std::string db_;
  std::unique_ptr<PgStore> store_;
  std::unique_ptr<Sql> sql_;
};

TEST_F(PgStoreTest, MigrationsAreIdempotent) {
  auto again = PgStore::Create(cluster_->ConnInfo(db_));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  auto v = (*again)->SchemaVersion();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, Migrations().back().version);
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM schema_migrations"),
            std::to_string(Migrations().size()));
  EXPECT_TRUE((*again)->Ping().ok());
}

TEST_F(PgStoreTest, ASchemaANewerAgentMigratedIsRefused) {
  const int next = Migrations().back().version + 1;
  sql_->Query("INSERT INTO schema_migrations (version, name) VALUES (" + std::to_string(next) +
              ", 'from a newer agent')");
  auto s = PgStore::Create(cluster_->ConnInfo(db_));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("schema is at migration " + std::to_string(next) +
                                   ", newer than this agent knows"),
            std::string::npos)
      << s.error().message;
}

TEST_F(PgStoreTest, CreateFailsUnavailableWhenServerUnreachable) {
  auto s = PgStore::Create("host=/nonexistent-taolie-dir dbname=x user=x connect_timeout=1");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
}

TEST_F(PgStoreTest, AgentState) {
  auto missing = store_->GetState("agent_id");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store_->SetState("agent_id", "agent-0123456789ab").ok());
  ASSERT_TRUE(store_->SetState("agent_id", "agent-ba9876543210").ok());
  auto got = store_->GetState("agent_id");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(""), "agent-ba9876543210");
  // Values are bound parameters: quotes are data, not SQL.
  ASSERT_TRUE(store_->SetState("it's", "a 'quoted'; DROP TABLE agent_state; --").ok());
  EXPECT_EQ(store_->GetState("it's")->value_or(""), "a 'quoted'; DROP TABLE agent_state; --");
}

TEST_F(PgStoreTest, SyncGpusKeepsClaimsAndMarksMissing) {
  SyncThreeGpus();
  auto d = store_->CreateDeployment(MakeDeployment("d1"), GpuClaim{1, {}}, {});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  ASSERT_EQ(d->gpu_uuids, std::vector<std::string>{"GPU-a"});
  ASSERT_TRUE(store_->SetGpuHealth("GPU-b", GpuHealthState::kWarning).ok());

  // GPU-a disappears from a scan: kept with its claim, marked not present.
  GpuRecord b = Gpu("GPU-b", 0);
  b.name = "renamed";
  ASSERT_TRUE(store_->SyncGpus({b, Gpu("GPU-c", 2)}).ok());
  auto gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 3u);
  std::map<std::string, GpuRecord> by_uuid;
  for (const auto& g : *gpus) by_uuid[g.uuid] = g;
  EXPECT_FALSE(by_uuid["GPU-a"].present);
  EXPECT_EQ(by_uuid["GPU-a"].deployment_id, "d1");
  EXPECT_TRUE(by_uuid["GPU-b"].present);
  EXPECT_EQ(by_uuid["GPU-b"].name, "renamed");
  EXPECT_EQ(by_uuid["GPU-b"].health,
            GpuHealthState::kWarning);  // health belongs to the health loop
  EXPECT_EQ(by_uuid["GPU-c"].memory_total_mb, 81920u);
  EXPECT_EQ(by_uuid["GPU-c"].pci_bus_id, "00000000:02:00.0");

  // It comes back: present again, claim kept. Ordered by index.
  ASSERT_TRUE(store_->SyncGpus({Gpu("GPU-a", 1), b, Gpu("GPU-c", 2)}).ok());
  gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[0].uuid, "GPU-b");
  EXPECT_EQ((*gpus)[1].uuid, "GPU-a");
  EXPECT_TRUE((*gpus)[1].present);
  EXPECT_EQ((*gpus)[1].deployment_id, "d1");

  EXPECT_EQ(store_->SetGpuHealth("GPU-x", GpuHealthState::kHealthy).error().code,
            ErrorCode::kNotFound);
}

// One PgStore behind each role (issue 18 item 5): what one role writes the others read, on the
// one connection, as through Store.
TEST_F(PgStoreTest, EachRoleReadsWhatAnotherWrote) {
  GpuStore& gpus = *store_;
  DeploymentStore& deployments = *store_;
  CommandStore& commands = *store_;
  StateStore& state = *store_;
  ASSERT_TRUE(gpus.SyncGpus({Gpu("GPU-a", 0)}).ok());
  auto d = deployments.CreateDeployment(MakeDeployment("r1", {40050}), GpuClaim{1, {}},
                                        {Event("r1", EventKind::kSuccess)});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  auto list = gpus.ListGpus();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].deployment_id, "r1");
  auto pending = commands.PendingEvents(10);
  ASSERT_TRUE(pending.ok()) << pending.error().ToString();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].deployment_id, "r1");
  ASSERT_TRUE(state.SetState("agent_id", "agent-roles").ok());
  EXPECT_EQ(store_->GetState("agent_id")->value_or(""), "agent-roles");
  EXPECT_TRUE(state.Ping().ok());
}

// Issue 17 item 5: a command's registry_auth is never written, whatever happens to the command
// later (refused, re-delivered); only that there was one.
TEST_F(PgStoreTest, RecordCommandNeverWritesRegistryAuthAndKeepsTheRestInOrder) {
  CommandRecord c;
  c.command_id = "c-auth";
  c.command_type = "deploy";
  c.payload_json =
      R"({"image":"r.example/private:1","registry_auth":{"username":"u","password":"s3cr3t"},)"
      R"("ports":{"8888":8888,"22":22}})";
  ASSERT_TRUE(*store_->RecordCommand(c));
  auto got = store_->GetCommand("c-auth");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->payload_json,
            R"({"image":"r.example/private:1","ports":{"8888":8888,"22":22}})");
  EXPECT_TRUE((*got)->registry_auth_withheld);
  EXPECT_FALSE(*store_->RecordCommand(c));  // re-delivered: still nothing written
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM command_queue WHERE payload LIKE '%s3cr3t%'"), "0");
  ASSERT_TRUE(store_->FinishCommand("c-auth", "rejected", "bad", "", {}).ok());
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM command_queue WHERE payload LIKE '%s3cr3t%'"), "0");

  // Without one: the text as it came, and nothing withheld.
  c.command_id = "c-plain";
  c.payload_json = R"({"image": "x",  "ports": {}})";
  ASSERT_TRUE(*store_->RecordCommand(c));
  EXPECT_EQ((*store_->GetCommand("c-plain"))->payload_json, c.payload_json);
  EXPECT_FALSE((*store_->GetCommand("c-plain"))->registry_auth_withheld);
}

// A done command keeps its renter's environment names, not the values.
TEST_F(PgStoreTest, FinishCommandBlanksTheEnvironmentValues) {
  CommandRecord c;
  c.command_id = "c-env";
  c.command_type = "deploy";
  c.payload_json = R"({"image":"x","environment":{"API_KEY":"env-secret-1","B":"2"}})";
  ASSERT_TRUE(*store_->RecordCommand(c));
  EXPECT_EQ((*store_->GetCommand("c-env"))->payload_json, c.payload_json);  // pending: kept
  ASSERT_TRUE(store_->FinishCommand("c-env", "rejected", "bad", "", {}).ok());
  EXPECT_EQ((*store_->GetCommand("c-env"))->payload_json,
            R"({"image":"x","environment":{"API_KEY":"","B":""}})");
}

TEST_F(PgStoreTest, RecordCommandDeduplicatesAndFinishes) {
  CommandRecord c;
  c.command_id = "c-1";
  c.command_type = "deploy";
  c.payload_json = R"({"image":"x"})";
  auto first = store_->RecordCommand(c);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  auto second = store_->RecordCommand(c);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(*second);
  CommandRecord c2 = c;
  c2.command_id = "c-2";
  ASSERT_TRUE(store_->RecordCommand(c2).ok());

  auto got = store_->GetCommand("c-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->times_seen, 2);
  EXPECT_EQ((*got)->state, CommandState::kPending);
  EXPECT_EQ((*got)->payload_json, c.payload_json);
  EXPECT_EQ((*got)->command_type, "deploy");
  EXPECT_FALSE((*got)->processed_at.has_value());

  auto pending = store_->PendingCommands(10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].command_id, "c-1");
  EXPECT_EQ((*pending)[1].command_id, "c-2");

  OutboxEvent ack = Event("", EventKind::kAck);
  ack.path = "/api/commands/c-1/ack";
  ASSERT_TRUE(store_->FinishCommand("c-1", "succeeded", "", "d-9", {ack}).ok());
  got = store_->GetCommand("c-1");
  EXPECT_EQ((*got)->state, CommandState::kDone);
  EXPECT_EQ((*got)->result, "succeeded");
  EXPECT_EQ((*got)->deployment_id, "d-9");
  EXPECT_TRUE((*got)->processed_at.has_value());
  EXPECT_EQ(store_->PendingCommands(10)->size(), 1u);
  auto events = store_->PendingEvents(10);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].path, "/api/commands/c-1/ack");
  EXPECT_EQ((*events)[0].deployment_id, "");

  ASSERT_TRUE(store_->MarkCommandAcked("c-1").ok());
  EXPECT_TRUE((*store_->GetCommand("c-1"))->acked_at.has_value());
  EXPECT_EQ(store_->FinishCommand("nope", "failed", "x", "", {ack}).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->PendingEvents(10)->size(), 1u);  // the failed call wrote no event
  EXPECT_FALSE(store_->GetCommand("nope")->has_value());
}

TEST_F(PgStoreTest, CreateDeploymentClaimsByCountSkippingUnusableGpus) {
  ASSERT_TRUE(store_
                  ->SyncGpus({Gpu("GPU-a", 0), Gpu("GPU-b", 1, GpuHealthState::kUnhealthy),
                              Gpu("GPU-c", 2, GpuHealthState::kWarning), Gpu("GPU-d", 3)})
                  .ok());
  auto d = store_->CreateDeployment(MakeDeployment("d1", {40022, 40023}), GpuClaim{2, {}},
                                    {Event("d1", EventKind::kFailed)});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->gpu_uuids, (std::vector<std::string>{"GPU-a", "GPU-c"}));
  EXPECT_EQ(d->state, DeploymentState::kAccepted);
  EXPECT_NE(d->created_at, SystemTime{});

  auto got = store_->GetDeployment("d1");
  ASSERT_TRUE(got.ok() && got->has_value());
  const Deployment& r = **got;
  EXPECT_EQ(r.gpu_uuids, d->gpu_uuids);
  ASSERT_EQ(r.ports.size(), 2u);
  EXPECT_EQ(r.ports[0].host_port, 40022);
  EXPECT_EQ(r.ports[0].container_port, 22);
  EXPECT_EQ(r.ports[0].role, "ssh");
  EXPECT_EQ(r.ports[1].host_port, 40023);
  EXPECT_EQ(r.command_id, "cmd-d1");
  EXPECT_EQ(r.image, "registry.local/pytorch:latest");
  EXPECT_EQ(r.spec_json, R"({"image":"registry.local/pytorch:latest"})");
  EXPECT_EQ(r.price_per_hour, 1.25);
  EXPECT_EQ(r.ssh_password, std::optional<std::string>("s3cret-pass"));
  EXPECT_EQ(r.duration_minutes, 90);
  EXPECT_EQ(Micros(r.created_at), Micros(d->created_at));

  auto by_cmd = store_->FindDeploymentByCommand("cmd-d1");
  ASSERT_TRUE(by_cmd.ok() && by_cmd->has_value());
  EXPECT_EQ((*by_cmd)->id, "d1");
  EXPECT_FALSE(store_->FindDeploymentByCommand("cmd-none")->has_value());

  auto ports = store_->AllocatedPorts();
  ASSERT_EQ(ports->size(), 2u);
  EXPECT_EQ((*ports)[1].host_port, 40023);
  EXPECT_EQ(store_->PendingEvents(10)->size(), 1u);

  // Only GPU-d is left usable.
  auto too_many = store_->CreateDeployment(MakeDeployment("d2"), GpuClaim{2, {}}, {});
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(too_many.error().message.find("need 2"), std::string::npos);
  EXPECT_FALSE(store_->GetDeployment("d2")->has_value());
  auto gpus = store_->ListGpus();
  EXPECT_EQ((*gpus)[3].deployment_id, "");  // nothing half-claimed
}

// Adoption after the database was lost: the row as found (running, times, no password), its
// GPUs claimed whatever their health, its ports; another deployment's GPU is a conflict.
TEST_F(PgStoreTest, ImageLastUseIsTheLatestDeploymentOfEachImage) {
  auto empty = store_->ImageLastUse();
  ASSERT_TRUE(empty.ok()) << empty.error().ToString();
  EXPECT_TRUE(empty->empty());
  Deployment a1 = MakeDeployment("img-a1"), a2 = MakeDeployment("img-a2");
  Deployment b = MakeDeployment("img-b");
  b.image = "ubuntu";
  a1.created_at = SystemTime(std::chrono::seconds(1'700'000'000));
  a2.created_at = a1.created_at + std::chrono::hours(5);
  b.created_at = a1.created_at + std::chrono::hours(1);
  for (const auto& d : {a2, a1, b}) {
    ASSERT_TRUE(store_->CreateDeployment(d, GpuClaim{0, {}}, {}).ok()) << d.id;
  }
  auto last = store_->ImageLastUse();
  ASSERT_TRUE(last.ok()) << last.error().ToString();
  ASSERT_EQ(last->size(), 2u);
  EXPECT_EQ(last->at(a1.image), a2.created_at);
  EXPECT_EQ(last->at("ubuntu"), b.created_at);
}

// XIDs are recorded with the rental holding their GPU at that moment, with the kernel log's
// cursor in the same transaction; read back oldest first (issue 8 item 2).
TEST_F(PgStoreTest, XidsAreRecordedWithTheRentalAndTheKernelLogCursor) {
  SyncThreeGpus();
  auto cursor = store_->KmsgCursor();
  ASSERT_TRUE(cursor.ok()) << cursor.error().ToString();
  EXPECT_FALSE(cursor->has_value());
  auto d = store_->CreateDeployment(MakeDeployment("x1", {40040}), GpuClaim{0, {"GPU-a"}}, {});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  const SystemTime t0 = SystemTime(seconds(1'767'261'600));
  XidRecord rented;
  rented.gpu_uuid = "GPU-a";
  rented.pci_bus_id = "00000000:3B:00.0";
  rented.xid = 48;
  rented.source = "kmsg";
  rented.at = t0 + seconds(5);
  rented.severity = "failure";
  rented.action = "reset_gpu";
  rented.message = "NVRM: Xid (PCI:0000:3b:00): 48, pid=7, name=a, DBE";
  rented.pid = 7;
  rented.process_name = "a";
  XidRecord free_gpu;
  free_gpu.gpu_uuid = "GPU-b";
  free_gpu.xid = 79;
  free_gpu.source = "nvml";
  free_gpu.at = t0;
  XidRecord unknown_bus = rented;
  unknown_bus.gpu_uuid = "";
  unknown_bus.at = t0 + seconds(9);
  ASSERT_TRUE(
      store_->RecordXids({rented, free_gpu, unknown_bus}, KmsgCursorRow{"boot-1", 902}).ok());
  auto all = store_->XidsSince(t0);
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].xid, 79u);  // oldest first
  EXPECT_EQ((*all)[0].deployment_id, "");
  EXPECT_FALSE((*all)[0].pid.has_value());
  const XidRecord& r = (*all)[1];
  EXPECT_EQ(r.deployment_id, "x1");
  EXPECT_EQ(r.pci_bus_id, "00000000:3B:00.0");
  EXPECT_EQ(r.severity, "failure");
  EXPECT_EQ(r.action, "reset_gpu");
  EXPECT_EQ(r.message, rented.message);
  EXPECT_EQ(r.pid, std::optional<uint32_t>(7));
  EXPECT_EQ(r.process_name, "a");
  EXPECT_EQ(r.at, rented.at);
  EXPECT_EQ((*all)[2].gpu_uuid, "");
  EXPECT_EQ(store_->XidsSince(t0 + seconds(6))->size(), 1u);
  cursor = store_->KmsgCursor();
  ASSERT_TRUE(cursor.ok() && cursor->has_value());
  EXPECT_EQ((*cursor)->boot_id, "boot-1");
  EXPECT_EQ((*cursor)->next_seq, 902u);
  ASSERT_TRUE(store_->RecordXids({}, KmsgCursorRow{"boot-2", 3}).ok());  // the cursor alone
  EXPECT_EQ((*store_->KmsgCursor())->boot_id, "boot-2");
  EXPECT_EQ(store_->XidsSince(t0)->size(), 3u);
}

// A quarantined GPU is never claimed, by count or by name, until it is released; the reason
// and the reset it waits for are kept (issue 8 item 3).
TEST_F(PgStoreTest, AQuarantinedGpuIsNotClaimedUntilReleased) {
  SyncThreeGpus();
  ASSERT_TRUE(
      store_->QuarantineGpu("GPU-a", "xid: XID 79", false, {Event("r1", EventKind::kGpuFailed)})
          .ok());
  ASSERT_TRUE(store_->QuarantineGpu("GPU-a", "xid: XID 79 again", true, {}).ok());
  ASSERT_TRUE(store_->QuarantineGpu("GPU-a", "later", false, {}).ok());  // needs_reset stays
  auto queued = store_->PendingEvents(10);
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 1u) << "the quarantine's event, written with it";
  EXPECT_EQ((*queued)[0].kind, EventKind::kGpuFailed);
  EXPECT_EQ((*queued)[0].deployment_id, "r1");
  auto gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  const GpuRecord* a = nullptr;
  for (const auto& g : *gpus) {
    if (g.uuid == "GPU-a") a = &g;
  }
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->quarantined_since.has_value());
  EXPECT_EQ(a->quarantine_reason, "later");
  EXPECT_TRUE(a->needs_reset);
  auto d1 = store_->CreateDeployment(MakeDeployment("q1", {40030}), GpuClaim{3, {}}, {});
  ASSERT_FALSE(d1.ok());  // two GPUs left
  EXPECT_EQ(d1.error().code, ErrorCode::kFailedPrecondition);
  auto d2 = store_->CreateDeployment(MakeDeployment("q2", {40031}), GpuClaim{0, {"GPU-a"}}, {});
  ASSERT_FALSE(d2.ok());
  EXPECT_NE(d2.error().message.find("quarantined: later"), std::string::npos) << d2.error().message;
  ASSERT_TRUE(store_->MarkGpuReset("GPU-a").ok());
  ASSERT_TRUE(store_->ReleaseGpu("GPU-a").ok());
  auto d3 = store_->CreateDeployment(MakeDeployment("q3", {40032}), GpuClaim{3, {}}, {});
  ASSERT_TRUE(d3.ok()) << d3.error().ToString();
  EXPECT_EQ(d3->gpu_uuids.size(), 3u);
  EXPECT_EQ(
      store_->QuarantineGpu("GPU-x", "r", false, {Event("r2", EventKind::kGpuFailed)}).error().code,
      ErrorCode::kNotFound);
  EXPECT_EQ(store_->PendingEvents(10)->size(), 1u) << "an unknown GPU's event is not written";
  EXPECT_EQ(store_->ReleaseGpu("GPU-x").error().code, ErrorCode::kNotFound);
}

TEST_F(PgStoreTest, AdoptDeploymentInsertsARunningRowAndClaimsItsGpusInUse) {
  SyncThreeGpus();
  ASSERT_TRUE(store_->SetGpuHealth("GPU-b", GpuHealthState::kUnhealthy).ok());
  Deployment d = MakeDeployment("lost-1", {40050});
  d.state = DeploymentState::kRunning;
  d.container_id = "c0ffee";
  d.ssh_password.reset();
  d.gpu_uuids = {"GPU-b"};
  d.started_at = SystemTime(std::chrono::seconds(1'700'000'000));
  d.expires_at = *d.started_at + std::chrono::minutes(60);
  d.ready_elapsed_ms = 0;
  auto adopted = store_->AdoptDeployment(d);
  ASSERT_TRUE(adopted.ok()) << adopted.error().ToString();
  EXPECT_EQ(adopted->gpu_uuids, std::vector<std::string>{"GPU-b"});
  auto got = store_->GetDeployment("lost-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, DeploymentState::kRunning);
  EXPECT_EQ((*got)->container_id, "c0ffee");
  EXPECT_EQ((*got)->expires_at, d.expires_at);
  EXPECT_EQ((*got)->started_at, d.started_at);
  EXPECT_EQ((*got)->ready_elapsed_ms, std::optional<int64_t>(0));
  EXPECT_FALSE((*got)->ssh_password.has_value());
  EXPECT_EQ(store_->AllocatedPorts()->size(), 1u);
  auto gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  for (const auto& g : *gpus) {
    EXPECT_EQ(g.deployment_id, g.uuid == "GPU-b" ? "lost-1" : "") << g.uuid;
  }

  Deployment other = MakeDeployment("lost-2");
  other.state = DeploymentState::kRunning;
  other.gpu_uuids = {"GPU-a", "GPU-b"};
  auto conflict = store_->AdoptDeployment(other);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(conflict.error().message.find("lost-1"), std::string::npos) << conflict.error().message;
  EXPECT_FALSE(store_->GetDeployment("lost-2")->has_value());
  gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  for (const auto& g : *gpus) {
    EXPECT_EQ(g.deployment_id, g.uuid == "GPU-b" ? "lost-1" : "") << g.uuid;  // rolled back
  }
}

TEST_F(PgStoreTest, CreateDeploymentConflictsRollBackEverything) {
  SyncThreeGpus();
  auto d1 = store_->CreateDeployment(MakeDeployment("d1", {40022}), GpuClaim{0, {"GPU-b"}},
                                     {Event("d1", EventKind::kFailed)});
  ASSERT_TRUE(d1.ok()) << d1.error().ToString();
  EXPECT_EQ(d1->gpu_uuids, std::vector<std::string>{"GPU-b"});

  auto expect_nothing_written = [&](const std::string& id) {
    EXPECT_FALSE(store_->GetDeployment(id)->has_value());
    auto ports = store_->AllocatedPorts();
    ASSERT_EQ(ports->size(), 1u);
    EXPECT_EQ((*ports)[0].host_port, 40022);
    EXPECT_EQ(store_->PendingEvents(10)->size(), 1u);
    auto gpus = store_->ListGpus();
    ASSERT_TRUE(gpus.ok());
    for (const auto& g : *gpus) {
      EXPECT_EQ(g.deployment_id, g.uuid == "GPU-b" ? "d1" : "") << g.uuid;
    }
  };

  // Named GPU taken: FailedPrecondition names it; nothing written.
  auto taken =
      store_->CreateDeployment(MakeDeployment("d2", {40030}), GpuClaim{0, {"GPU-a", "GPU-b"}},
                               {Event("d2", EventKind::kFailed)});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(taken.error().message.find("GPU-b"), std::string::npos) << taken.error().message;
  EXPECT_NE(taken.error().message.find("d1"), std::string::npos);
  expect_nothing_written("d2");

  // Unknown GPU.
  auto unknown = store_->CreateDeployment(MakeDeployment("d2"), GpuClaim{0, {"GPU-zzz"}}, {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("GPU-zzz"), std::string::npos);
  expect_nothing_written("d2");

  // Port taken (after the GPU claim succeeded in the same transaction): all rolled back.
  auto port = store_->CreateDeployment(MakeDeployment("d2", {40031, 40022}), GpuClaim{1, {}},
                                       {Event("d2", EventKind::kFailed)});
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(port.error().message.find("port 40022 already allocated"), std::string::npos)
      << port.error().message;
  expect_nothing_written("d2");

  // Same id, same command: AlreadyExists.
  auto same_id = store_->CreateDeployment(MakeDeployment("d1"), GpuClaim{}, {});
  ASSERT_FALSE(same_id.ok());
  EXPECT_EQ(same_id.error().code, ErrorCode::kAlreadyExists);
  Deployment same_cmd = MakeDeployment("d3");
  same_cmd.command_id = "cmd-d1";
  auto dup_cmd = store_->CreateDeployment(same_cmd, GpuClaim{}, {});
  ASSERT_FALSE(dup_cmd.ok());
  EXPECT_EQ(dup_cmd.error().code, ErrorCode::kAlreadyExists);
  expect_nothing_written("d3");

  // Deployments without a command id do not collide with each other.
  Deployment n1 = MakeDeployment("n1"), n2 = MakeDeployment("n2");
  n1.command_id.clear();
  n2.command_id.clear();
  EXPECT_TRUE(store_->CreateDeployment(n1, GpuClaim{}, {}).ok());
  EXPECT_TRUE(store_->CreateDeployment(n2, GpuClaim{}, {}).ok());
}

// A stale copy of a deployment (queued work that read it earlier) never restores a scrubbed
// password, never moves the start, and never moves the rental's clock back.
TEST_F(PgStoreTest, StaleWritesNeverRestoreSecretsNorMoveTimeBack) {
  SyncThreeGpus();
  auto created = store_->CreateDeployment(MakeDeployment("d1", {40022}), GpuClaim{1, {}}, {});
  ASSERT_TRUE(created.ok());
  Deployment d = *created;
  const SystemTime start = Micros(std::chrono::system_clock::now());
  d.state = DeploymentState::kRunning;
  d.started_at = start;
  d.clock_boot_id = "boot-1";
  d.clock_mono_ns = 5'000'000'000;
  d.clock_wall = start;
  d.elapsed_ms = 60'000;
  d.ready_elapsed_ms = 1'000;
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());
  Deployment stale = d;
  ASSERT_TRUE(store_->ScrubSecrets("d1").ok());
  d.clock_mono_ns = 65'000'000'000;
  d.elapsed_ms = 120'000;
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());

  stale.started_at = start + hours(1);
  stale.ready_elapsed_ms = 9'999;
  ASSERT_TRUE(store_->UpdateDeployment(stale, {}).ok());
  auto got = **store_->GetDeployment("d1");
  EXPECT_FALSE(got.ssh_password.has_value());
  EXPECT_EQ(got.started_at, std::optional<SystemTime>(start));
  EXPECT_EQ(got.elapsed_ms, 120'000);
  EXPECT_EQ(got.clock_mono_ns, 65'000'000'000);
  EXPECT_EQ(got.clock_boot_id, "boot-1");
  EXPECT_EQ(got.clock_wall, start);
  EXPECT_EQ(got.ready_elapsed_ms, std::optional<int64_t>(1'000));
}

// Issue 7, item 3: the GPUs of an ended rental are dirty (kept across restarts: a column) and
// never claimed, by count or by name, until MarkGpuClean.
TEST_F(PgStoreTest, DirtyGpusAreNotClaimedUntilClean) {
  SyncThreeGpus();
  auto first = store_->CreateDeployment(MakeDeployment("d1"), GpuClaim{0, {"GPU-a"}}, {});
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  Deployment d = *first;
  d.state = DeploymentState::kStopping;
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());
  d.state = DeploymentState::kEnded;
  ASSERT_TRUE(store_->UpdateDeployment(d, {Event("d1", EventKind::kTerminated)}).ok());
  auto gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  EXPECT_EQ((*gpus)[0].deployment_id, "");
  EXPECT_TRUE((*gpus)[0].dirty_since.has_value());
  EXPECT_EQ((*gpus)[0].dirty_after, "d1");
  EXPECT_FALSE((*gpus)[1].dirty_since.has_value());
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM gpu_status WHERE dirty_since IS NOT NULL"), "1");

  auto named = store_->CreateDeployment(MakeDeployment("d2"), GpuClaim{0, {"GPU-a"}}, {});
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(named.error().message.find("GPU-a (dirty since deployment d1 ended)"),
            std::string::npos)
      << named.error().message;
  EXPECT_FALSE(store_->GetDeployment("d2")->has_value());
  // By count: only GPU-b and GPU-c, never the dirty GPU-a.
  auto counted = store_->CreateDeployment(MakeDeployment("d3"), GpuClaim{2, {}}, {});
  ASSERT_TRUE(counted.ok()) << counted.error().ToString();
  EXPECT_EQ(counted->gpu_uuids, (std::vector<std::string>{"GPU-b", "GPU-c"}));
  auto none_left = store_->CreateDeployment(MakeDeployment("d4"), GpuClaim{1, {}}, {});
  ASSERT_FALSE(none_left.ok());
  EXPECT_EQ(none_left.error().code, ErrorCode::kFailedPrecondition);

  ASSERT_TRUE(store_->MarkGpuClean("GPU-a").ok());
  EXPECT_EQ(store_->MarkGpuClean("GPU-z").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE((*store_->ListGpus())[0].dirty_since.has_value());
  auto clean = store_->CreateDeployment(MakeDeployment("d5"), GpuClaim{0, {"GPU-a"}}, {});
  ASSERT_TRUE(clean.ok()) << clean.error().ToString();
  EXPECT_EQ(clean->gpu_uuids, std::vector<std::string>{"GPU-a"});
}

TEST_F(PgStoreTest, UpdateDeploymentToEndedReleasesGpusAndPorts) {
  SyncThreeGpus();
  auto created = store_->CreateDeployment(MakeDeployment("d1", {40022, 40023}), GpuClaim{2, {}},
                                          {Event("d1", EventKind::kFailed)});
  ASSERT_TRUE(created.ok());
  Deployment d = *created;
  const SystemTime start = Micros(std::chrono::system_clock::now());
  d.state = DeploymentState::kReadiness;
  d.container_id = "abc123";
  d.expires_at = start + hours(1);
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());
  d.state = DeploymentState::kRunning;
  d.started_at = start;
  ASSERT_TRUE(
      store_->UpdateDeployment(d, {Event("d1", EventKind::kSuccess, R"({"pw":"s3cret-pass"})")})
          .ok());
  // success is reported once: a second one (a stale copy) is refused and writes nothing.
  EXPECT_EQ(store_->UpdateDeployment(d, {Event("d1", EventKind::kSuccess, "{}")}).error().code,
            ErrorCode::kFailedPrecondition);
  auto active = store_->ActiveDeployments();
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].container_id, "abc123");
  EXPECT_EQ((*active)[0].started_at, std::optional<SystemTime>(start));
  EXPECT_EQ((*active)[0].expires_at, std::optional<SystemTime>(start + hours(1)));
  EXPECT_EQ((*active)[0].ports.size(), 2u);

  // Backwards is refused, unknown is NotFound.
  Deployment back = d;
  back.state = DeploymentState::kPulling;
  EXPECT_EQ(store_->UpdateDeployment(back, {}).error().code, ErrorCode::kFailedPrecondition);
  Deployment unknown = d;
  unknown.id = "nope";
  EXPECT_EQ(store_->UpdateDeployment(unknown, {Event("nope", EventKind::kFailed)}).error().code,
            ErrorCode::kNotFound);

  d.state = DeploymentState::kStopping;
  d.end_status = "terminated";
  d.end_reason = "renter asked";
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());
  d.state = DeploymentState::kEnded;
  ASSERT_TRUE(store_->UpdateDeployment(d, {Event("d1", EventKind::kTerminated)}).ok());

  auto gpus = store_->ListGpus();
  ASSERT_TRUE(gpus.ok());
  for (const auto& g : *gpus) EXPECT_EQ(g.deployment_id, "") << g.uuid;
  EXPECT_TRUE(store_->AllocatedPorts()->empty());
  EXPECT_TRUE(store_->ActiveDeployments()->empty());
  auto ended = store_->GetDeployment("d1");
  ASSERT_TRUE(ended->has_value());
  EXPECT_EQ((*ended)->state, DeploymentState::kEnded);
  EXPECT_EQ((*ended)->end_status, "terminated");
  EXPECT_EQ((*ended)->end_reason, "renter asked");
  EXPECT_TRUE((*ended)->ended_at.has_value());
  EXPECT_EQ((*ended)->gpu_uuids.size(), 2u);  // history keeps which GPUs it had

  auto events = store_->PendingEvents(10);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].kind, EventKind::kFailed);
  EXPECT_EQ((*events)[1].kind, EventKind::kSuccess);
  EXPECT_EQ((*events)[2].kind, EventKind::kTerminated);
  EXPECT_LT((*events)[0].id, (*events)[1].id);

  // The freed GPUs and ports can be claimed again, the GPUs once found idle (dirty until then).
  for (const auto& g : *gpus) ASSERT_TRUE(store_->MarkGpuClean(g.uuid).ok()) << g.uuid;
  auto again = store_->CreateDeployment(MakeDeployment("d2", {40022}), GpuClaim{3, {}}, {});
  EXPECT_TRUE(again.ok()) << again.error().ToString();
  auto recent = store_->RecentDeployments(10);
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].id, "d2");
}

TEST_F(PgStoreTest, OutboxOrderAttemptsAndScrubbedDone) {
  ASSERT_TRUE(
      store_
          ->AppendEvents({Event("d1", EventKind::kSuccess, R"({"ssh_password":"pw"})"),
                          Event("d1", EventKind::kExpiring), Event("d2", EventKind::kFailed)})
          .ok());
  EXPECT_EQ(*store_->CountPendingEvents(), 3);
  auto pending = store_->PendingEvents(2);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].kind, EventKind::kSuccess);
  EXPECT_EQ((*pending)[1].kind, EventKind::kExpiring);
  const int64_t first = (*pending)[0].id;

  const SystemTime t0 = SystemTime(seconds(1'700'000'000));
  ASSERT_TRUE(store_->MarkEventAttempt(first, "HTTP 503", t0, t0 + seconds(2)).ok());
  ASSERT_TRUE(store_->MarkEventAttempt(first, "timeout", t0 + seconds(2), t0 + seconds(6)).ok());
  pending = store_->PendingEvents(10);
  EXPECT_EQ((*pending)[0].attempts, 2);
  EXPECT_EQ((*pending)[0].last_error, "timeout");

  ASSERT_TRUE(store_->MarkEventDone(first, "delivered", R"({"ssh_password":"***"})").ok());
  pending = store_->PendingEvents(10);
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].kind, EventKind::kExpiring);
  EXPECT_EQ(sql_->Scalar("SELECT body FROM outbox WHERE id = $1", {std::to_string(first)}),
            R"({"ssh_password":"***"})");
  EXPECT_EQ(sql_->Scalar("SELECT outcome FROM outbox WHERE id = $1", {std::to_string(first)}),
            "delivered");
  // Empty scrubbed body keeps the body.
  const int64_t second = (*pending)[0].id;
  ASSERT_TRUE(store_->MarkEventDone(second, "unsupported", "").ok());
  EXPECT_EQ(sql_->Scalar("SELECT body FROM outbox WHERE id = $1", {std::to_string(second)}), "{}");

  EXPECT_EQ(store_->MarkEventDone(first, "lost", "").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->MarkEventDone(999999, "delivered", "").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->MarkEventAttempt(999999, "x", t0, t0).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->PendingEvents(0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->PendingEvents(10)->size(), 1u);
  EXPECT_EQ(*store_->CountPendingEvents(), 1);  // done events, delivered or not, do not count
}

OutboxEvent Ack(const std::string& command_id, const std::string& deployment_id) {
  OutboxEvent e;
  e.deployment_id = deployment_id;  // acks carry their deployment, yet form their own group
  e.kind = EventKind::kAck;
  e.path = "/api/host-agents/agent-0123456789ab/commands/" + command_id + "/ack";
  return e;
}

std::vector<int64_t> HeadIds(const std::vector<OutboxHead>& heads) {
  std::vector<int64_t> ids;
  for (const auto& h : heads) ids.push_back(h.event.id);
  return ids;
}

TEST_F(PgStoreTest, OutboxHeadsOnePerDeploymentEveryAckApart) {
  ASSERT_TRUE(
      store_
          ->AppendEvents({Event("a", EventKind::kSuccess), Event("a", EventKind::kExpiring),
                          Ack("c1", "a"), Event("b", EventKind::kSuccess), Ack("c2", "b"),
                          Event("a", EventKind::kTerminated), Event("b", EventKind::kFailed)})
          .ok());
  auto all = *store_->PendingEvents(10);
  ASSERT_EQ(all.size(), 7u);
  auto id = [&](int i) { return all[i].id; };
  auto heads = store_->OutboxHeads(10);
  ASSERT_TRUE(heads.ok()) << heads.error().ToString();
  // a's success, a's ack, b's success, b's ack: oldest first (none has failed yet).
  EXPECT_EQ(HeadIds(*heads), (std::vector<int64_t>{id(0), id(2), id(3), id(4)}));
  EXPECT_TRUE((*heads)[0].end_pending);   // a's terminated waits behind it
  EXPECT_FALSE((*heads)[1].end_pending);  // an ack never is superseded
  EXPECT_TRUE((*heads)[2].end_pending);   // b's failed
  EXPECT_FALSE((*heads)[0].next_attempt_at.has_value());
  EXPECT_FALSE((*heads)[0].first_failed_at.has_value());

  // Strictly in id order within a deployment: a's next head is its expiring.
  ASSERT_TRUE(store_->MarkEventDone(id(0), "delivered", "").ok());
  ASSERT_TRUE(store_->MarkEventDone(id(2), "delivered", "").ok());
  heads = store_->OutboxHeads(10);
  EXPECT_EQ(HeadIds(*heads), (std::vector<int64_t>{id(1), id(3), id(4)}));
  EXPECT_EQ((*heads)[0].event.kind, EventKind::kExpiring);
  EXPECT_TRUE((*heads)[0].end_pending);

  EXPECT_EQ(store_->OutboxHeads(0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->OutboxHeads(2)->size(), 2u);
}

TEST_F(PgStoreTest, OutboxHeadsBackingOffGoLastWithTheirRetryState) {
  ASSERT_TRUE(store_
                  ->AppendEvents({Event("a", EventKind::kExpiring), Event("a", EventKind::kSuccess),
                                  Event("b", EventKind::kSuccess), Ack("c1", "")})
                  .ok());
  auto all = *store_->PendingEvents(10);
  const SystemTime t0 = SystemTime(seconds(1'700'000'000));
  ASSERT_TRUE(store_->MarkEventAttempt(all[0].id, "HTTP 500", t0, t0 + seconds(30)).ok());
  ASSERT_TRUE(
      store_->MarkEventAttempt(all[0].id, "HTTP 502", t0 + seconds(30), t0 + seconds(90)).ok());
  ASSERT_TRUE(store_->MarkEventAttempt(all[2].id, "timeout", t0, t0 + seconds(10)).ok());

  auto heads = store_->OutboxHeads(10);
  ASSERT_TRUE(heads.ok()) << heads.error().ToString();
  // The ack that never failed first, then by retry time; a's success stays behind a's head.
  EXPECT_EQ(HeadIds(*heads), (std::vector<int64_t>{all[3].id, all[2].id, all[0].id}));
  const OutboxHead& a = (*heads)[2];
  EXPECT_EQ(a.event.attempts, 2);
  EXPECT_EQ(a.event.last_error, "HTTP 502");
  EXPECT_EQ(a.first_failed_at, t0);  // kept from the first failure
  EXPECT_EQ(a.next_attempt_at, t0 + seconds(90));
  EXPECT_FALSE(a.end_pending);
  // A limit keeps the heads that are due.
  EXPECT_EQ(HeadIds(*store_->OutboxHeads(1)), (std::vector<int64_t>{all[3].id}));
}

TEST_F(PgStoreTest, OutboxSupersededAndFailedAreKeptAndUnblockTheDeployment) {
  ASSERT_TRUE(
      store_
          ->AppendEvents({Event("a", EventKind::kExpiring), Event("a", EventKind::kTerminated),
                          Event("a", EventKind::kSuccess)})
          .ok());
  auto all = *store_->PendingEvents(10);
  ASSERT_TRUE(store_->MarkEventDone(all[0].id, "superseded", "").ok());
  auto heads = store_->OutboxHeads(10);
  ASSERT_EQ(HeadIds(*heads), (std::vector<int64_t>{all[1].id}));
  ASSERT_TRUE(store_->MarkEventDone(all[1].id, "failed", "").ok());
  EXPECT_EQ(HeadIds(*store_->OutboxHeads(10)), (std::vector<int64_t>{all[2].id}));
  // Both rows are kept, with their outcome.
  EXPECT_EQ(sql_->Scalar("SELECT string_agg(outcome, ',' ORDER BY id) FROM outbox "
                         "WHERE done_at IS NOT NULL"),
            "superseded,failed");
  EXPECT_EQ(store_->MarkEventDone(all[2].id, "dropped", "").error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(PgStoreTest, ScrubSecrets) {
  ASSERT_TRUE(store_->CreateDeployment(MakeDeployment("d1"), GpuClaim{}, {}).ok());
  ASSERT_TRUE(store_->ScrubSecrets("d1").ok());
  auto d = store_->GetDeployment("d1");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_FALSE((*d)->ssh_password.has_value());
  EXPECT_EQ((*d)->jupyter_token, "");
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM deployments WHERE ssh_password IS NOT NULL"), "0");
  // A stale copy written later restores neither secret.
  Deployment stale = MakeDeployment("d1");
  stale.state = DeploymentState::kPulling;
  ASSERT_TRUE(store_->UpdateDeployment(stale, {}).ok());
  EXPECT_EQ(sql_->Scalar("SELECT coalesce(ssh_password, '<null>') || '/' || jupyter_token "
                         "FROM deployments WHERE id = 'd1'"),
            "<null>/");
  EXPECT_EQ(store_->ScrubSecrets("nope").error().code, ErrorCode::kNotFound);
}

TEST_F(PgStoreTest, MetricSamplesRoundTripAndPushedMarking) {
  MetricSample s;
  s.taken_at = SystemTime(seconds(1'767'261'600)) + microseconds(123456);  // 2026-01-01 10:00
  s.host = HostMetricRow{12.5, 31.25, 400.75, 3.5, 10.1, 20.2, 1234};
  GpuMetricRow full;
  full.gpu_uuid = "GPU-a";
  full.gpu_index = 0;
  full.utilization = 97.5;
  full.memory_used_mb = 40000;
  full.memory_total_mb = 81920;
  full.temperature_c = 71;
  full.power_draw_watts = 312.25;
  full.power_limit_watts = 400;
  full.fan_speed_percent = 55;
  full.sm_clock_mhz = 1980;
  full.mem_clock_mhz = 2619;
  full.deployment_id = "d1";
  full.memory_utilization = 33.5;
  full.memory_free_mb = 41920;
  full.energy_joules = 987654.25;
  full.pcie_gen = 4;
  full.pcie_width = 8;
  full.pcie_replay_count = 7;
  full.throttle_reasons = 0x20;
  full.ecc_volatile_corrected = 3;
  full.ecc_volatile_uncorrected = 0;
  full.ecc_aggregate_corrected = 30;
  full.ecc_aggregate_uncorrected = 1;
  full.retired_pages_sbe = 2;
  full.retired_pages_dbe = 1;
  full.retired_pages_pending = false;
  full.remapped_rows_correctable = 5;
  full.remapped_rows_uncorrectable = 1;
  full.remapped_rows_pending = true;
  full.remapped_rows_failure = false;
  full.power_violation_ns = 1'000'000'000'000;
  full.thermal_violation_ns = 42;
  full.process_count = 2;
  GpuMetricRow sparse;  // every optional missing (e.g. NVML_ERROR_NOT_SUPPORTED)
  sparse.gpu_uuid = "GPU-b";
  sparse.gpu_index = 1;
  s.gpus = {full, sparse};
  auto id1 = store_->InsertMetricSample(s);
  ASSERT_TRUE(id1.ok()) << id1.error().ToString();
  MetricSample s2;  // zero taken_at = now
  auto id2 = store_->InsertMetricSample(s2);
  ASSERT_TRUE(id2.ok());
  EXPECT_GT(*id2, *id1);

  auto samples = store_->UnpushedMetricSamples(10);
  ASSERT_TRUE(samples.ok());
  ASSERT_EQ(samples->size(), 2u);
  const MetricSample& r = (*samples)[0];
  EXPECT_EQ(r.id, *id1);
  EXPECT_EQ(r.taken_at, s.taken_at);
  EXPECT_EQ(FormatRfc3339(r.taken_at), "2026-01-01T10:00:00.123456Z");
  EXPECT_EQ(r.host.cpu_utilization, 12.5);
  EXPECT_EQ(r.host.download_mbps, 20.2);
  EXPECT_EQ(r.host.upload_mbps, 10.1);
  EXPECT_EQ(r.host.uptime_hours, 1234);
  ASSERT_EQ(r.gpus.size(), 2u);
  const GpuMetricRow& g0 = r.gpus[0];
  EXPECT_EQ(g0.gpu_uuid, "GPU-a");
  EXPECT_EQ(g0.utilization, std::optional<double>(97.5));
  EXPECT_EQ(g0.memory_used_mb, std::optional<int64_t>(40000));
  EXPECT_EQ(g0.power_draw_watts, std::optional<double>(312.25));
  EXPECT_EQ(g0.mem_clock_mhz, std::optional<int64_t>(2619));
  EXPECT_EQ(g0.deployment_id, "d1");
  EXPECT_EQ(g0.memory_utilization, std::optional<double>(33.5));
  EXPECT_EQ(g0.memory_free_mb, std::optional<int64_t>(41920));
  EXPECT_EQ(g0.energy_joules, std::optional<double>(987654.25));
  EXPECT_EQ(g0.pcie_gen, std::optional<int64_t>(4));
  EXPECT_EQ(g0.pcie_width, std::optional<int64_t>(8));
  EXPECT_EQ(g0.pcie_replay_count, std::optional<int64_t>(7));
  EXPECT_EQ(g0.throttle_reasons, std::optional<int64_t>(0x20));
  EXPECT_EQ(g0.ecc_volatile_corrected, std::optional<int64_t>(3));
  EXPECT_EQ(g0.ecc_volatile_uncorrected, std::optional<int64_t>(0));
  EXPECT_EQ(g0.ecc_aggregate_corrected, std::optional<int64_t>(30));
  EXPECT_EQ(g0.ecc_aggregate_uncorrected, std::optional<int64_t>(1));
  EXPECT_EQ(g0.retired_pages_sbe, std::optional<int64_t>(2));
  EXPECT_EQ(g0.retired_pages_dbe, std::optional<int64_t>(1));
  EXPECT_EQ(g0.retired_pages_pending, std::optional<bool>(false));
  EXPECT_EQ(g0.remapped_rows_correctable, std::optional<int64_t>(5));
  EXPECT_EQ(g0.remapped_rows_uncorrectable, std::optional<int64_t>(1));
  EXPECT_EQ(g0.remapped_rows_pending, std::optional<bool>(true));
  EXPECT_EQ(g0.remapped_rows_failure, std::optional<bool>(false));
  EXPECT_EQ(g0.power_violation_ns, std::optional<int64_t>(1'000'000'000'000));
  EXPECT_EQ(g0.thermal_violation_ns, std::optional<int64_t>(42));
  EXPECT_EQ(g0.process_count, 2);
  const GpuMetricRow& g1 = r.gpus[1];
  EXPECT_EQ(g1.gpu_index, 1);
  EXPECT_FALSE(g1.utilization.has_value());
  EXPECT_FALSE(g1.memory_used_mb.has_value());
  EXPECT_FALSE(g1.memory_total_mb.has_value());
  EXPECT_FALSE(g1.temperature_c.has_value());
  EXPECT_FALSE(g1.power_draw_watts.has_value());
  EXPECT_FALSE(g1.power_limit_watts.has_value());
  EXPECT_FALSE(g1.fan_speed_percent.has_value());
  EXPECT_FALSE(g1.sm_clock_mhz.has_value());
  EXPECT_FALSE(g1.mem_clock_mhz.has_value());
  EXPECT_FALSE(g1.energy_joules.has_value());
  EXPECT_FALSE(g1.remapped_rows_failure.has_value());
  EXPECT_FALSE(g1.ecc_aggregate_corrected.has_value());
  EXPECT_EQ(g1.process_count, 0);
  const auto now = std::chrono::system_clock::now();
  EXPECT_LT(std::chrono::abs((*samples)[1].taken_at - now), seconds(60));
  EXPECT_TRUE((*samples)[1].gpus.empty());

  ASSERT_TRUE(store_->MarkMetricSamplesPushed({*id1}).ok());
  samples = store_->UnpushedMetricSamples(10);
  ASSERT_EQ(samples->size(), 1u);
  EXPECT_EQ((*samples)[0].id, *id2);
  EXPECT_TRUE(store_->MarkMetricSamplesPushed({}).ok());
}

// Each rented GPU's samples add to its rental's running totals: energy from the counter's rises
// (a counter that went back adds nothing for that interval), utilization averaged over the
// samples that had it; free GPUs and other rentals do not count.
TEST_F(PgStoreTest, RentalMeteringAddsUpTheRentedGpusSamples) {
  auto round = [&](std::optional<double> util_a, std::optional<double> energy_a,
                   std::optional<double> energy_b) {
    MetricSample s;
    GpuMetricRow a;
    a.gpu_uuid = "GPU-a";
    a.deployment_id = "dm";
    a.utilization = util_a;
    a.energy_joules = energy_a;
    GpuMetricRow b;
    b.gpu_uuid = "GPU-b";
    b.gpu_index = 1;
    b.deployment_id = "dm";
    b.utilization = 50;
    b.energy_joules = energy_b;
    GpuMetricRow free_gpu;
    free_gpu.gpu_uuid = "GPU-c";
    free_gpu.gpu_index = 2;
    free_gpu.utilization = 100;
    free_gpu.energy_joules = 1e9;
    s.gpus = {a, b, free_gpu};
    ASSERT_TRUE(store_->InsertMetricSample(s).ok());
  };
  auto none = store_->RentalMeteringOf("dm");
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_EQ(none->samples, 0);
  EXPECT_FALSE(none->energy_wh.has_value());
  EXPECT_FALSE(none->mean_utilization.has_value());

  round(100, 1000, 36000);
  auto first = store_->RentalMeteringOf("dm");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->samples, 2);
  EXPECT_FALSE(first->energy_wh.has_value()) << "one reading is no energy yet";
  EXPECT_DOUBLE_EQ(*first->mean_utilization, 75);

  round(std::nullopt, 4600, 43200);  // a: +3600 J; b: +7200 J; a's utilization not reported
  round(90, 100, 50400);             // a's counter went back (driver reload): +0; b: +7200 J
  round(80, 3700, std::nullopt);     // a: +3600 J; b reports no energy this time
  auto m = store_->RentalMeteringOf("dm");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->samples, 8);
  ASSERT_TRUE(m->energy_wh.has_value());
  EXPECT_DOUBLE_EQ(*m->energy_wh, (3600.0 + 7200 + 0 + 7200 + 3600) / 3600.0);
  // a: 100, 90, 80; b: 50 four times.
  EXPECT_DOUBLE_EQ(*m->mean_utilization, (100.0 + 90 + 80 + 4 * 50) / 7.0);
  auto other = store_->RentalMeteringOf("someone-else");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->samples, 0);
}

TEST_F(PgStoreTest, HealthReports) {
  EXPECT_FALSE(store_->LatestHealthReport()->has_value());
  HealthReport h;
  h.checked_at = SystemTime(seconds(1'767'261'600));
  h.is_healthy = false;
  h.status = "unhealthy";
  h.temperature_ok = false;
  h.gpu_performance_score = 62.5;
  h.details_json = R"({"gpus":[{"uuid":"GPU-a","health":"warning"}]})";
  auto id1 = store_->InsertHealthReport(
      h, {GpuHealthRow{"GPU-a", GpuHealthState::kWarning, R"({"temperature":"high"})"},
          GpuHealthRow{"GPU-b", GpuHealthState::kHealthy, ""}});
  ASSERT_TRUE(id1.ok()) << id1.error().ToString();
  HealthReport later = h;
  later.checked_at += seconds(60);
  later.is_healthy = true;
  later.status = "available";
  later.details_json = "";
  auto id2 = store_->InsertHealthReport(later, {});
  ASSERT_TRUE(id2.ok());

  auto latest = store_->LatestHealthReport();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->id, *id2);
  EXPECT_EQ((*latest)->status, "available");
  EXPECT_EQ((*latest)->details_json, "");
  auto unpushed = store_->UnpushedHealthReports(10);
  ASSERT_EQ(unpushed->size(), 2u);
  const HealthReport& r = (*unpushed)[0];
  EXPECT_EQ(r.checked_at, h.checked_at);
  EXPECT_FALSE(r.is_healthy);
  EXPECT_FALSE(r.temperature_ok);
  EXPECT_TRUE(r.power_ok);
  EXPECT_EQ(r.gpu_performance_score, 62.5);
  EXPECT_EQ(nlohmann::json::parse(r.details_json), nlohmann::json::parse(h.details_json));
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM gpu_health_history WHERE report_id = $1",
                         {std::to_string(*id1)}),
            "2");

  ASSERT_TRUE(store_->MarkHealthReportsPushed({*id1, *id2}).ok());
  EXPECT_TRUE(store_->UnpushedHealthReports(10)->empty());

  HealthReport bad = h;
  bad.details_json = "{not json";
  auto rejected = store_->InsertHealthReport(bad, {});
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(PgStoreTest, PruneDeletesOnlyOldPushedAndDoneRows) {
  const auto now = std::chrono::system_clock::now();
  auto sample_at = [&](SystemTime t) {
    MetricSample s;
    s.taken_at = t;
    s.gpus.resize(1);
    s.gpus[0].gpu_uuid = "GPU-a";
    return *store_->InsertMetricSample(s);
  };
  const int64_t old_pushed = sample_at(now - hours(24 * 10));
  const int64_t old_unpushed = sample_at(now - hours(24 * 10));
  const int64_t new_pushed = sample_at(now - hours(1));
  ASSERT_TRUE(store_->MarkMetricSamplesPushed({old_pushed, new_pushed}).ok());

  HealthReport h;
  h.checked_at = now - hours(24 * 40);
  const int64_t old_report =
      *store_->InsertHealthReport(h, {GpuHealthRow{"GPU-a", GpuHealthState::kHealthy, ""}});
  h.checked_at = now - hours(24 * 40);
  const int64_t old_unpushed_report = *store_->InsertHealthReport(h, {});
  ASSERT_TRUE(store_->MarkHealthReportsPushed({old_report}).ok());

  ASSERT_TRUE(
      store_
          ->AppendEvents({Event("d1", EventKind::kSuccess), Event("d1", EventKind::kExpiring),
                          Event("d1", EventKind::kTerminated)})
          .ok());
  auto events = *store_->PendingEvents(10);
  ASSERT_TRUE(store_->MarkEventDone(events[0].id, "delivered", "").ok());
  ASSERT_TRUE(store_->MarkEventDone(events[1].id, "delivered", "").ok());
  sql_->Query("UPDATE outbox SET done_at = now() - interval '31 days' WHERE id = $1",
              {std::to_string(events[0].id)});

  CommandRecord c;
  c.command_type = "deploy";
  for (const char* id : {"old-done", "new-done", "old-pending"}) {
    c.command_id = id;
    ASSERT_TRUE(store_->RecordCommand(c).ok());
  }
  ASSERT_TRUE(store_->FinishCommand("old-done", "succeeded", "", "", {}).ok());
  ASSERT_TRUE(store_->FinishCommand("new-done", "succeeded", "", "", {}).ok());
  sql_->Query(
      "UPDATE command_queue SET processed_at = now() - interval '31 days', "
      "received_at = now() - interval '31 days' WHERE command_id IN ('old-done', "
      "'old-pending')");

  XidRecord x;
  x.gpu_uuid = "GPU-a";
  x.xid = 79;
  x.source = "nvml";
  x.at = now - hours(24 * 40);
  XidRecord recent = x;
  recent.at = now - hours(1);
  ASSERT_TRUE(store_->RecordXids({x, recent}, std::nullopt).ok());
  MetricSample rented;  // two rentals' totals: one ended long ago, one running
  rented.gpus.resize(2);
  rented.gpus[0].gpu_uuid = "GPU-a";
  rented.gpus[0].deployment_id = "ended-long-ago";
  rented.gpus[1].gpu_uuid = "GPU-b";
  rented.gpus[1].deployment_id = "running";
  ASSERT_TRUE(store_->InsertMetricSample(rented).ok());
  sql_->Query(
      "UPDATE rental_metering SET last_at = now() - interval '31 days' "
      "WHERE deployment_id = 'ended-long-ago'");

  // Retention 0 = keep forever.
  auto none = store_->Prune({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->rows, 0);
  EXPECT_FALSE(none->more);

  const Store::PruneLimits limits{7, 30, 30, 30};
  auto n = store_->Prune(limits);
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  // 1 sample + its GPU row, 1 report + its GPU row, 1 event, 1 command, 1 XID, 1 total.
  EXPECT_EQ(n->rows, 8);
  EXPECT_FALSE(n->more);
  EXPECT_EQ(sql_->Scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM metric_samples"),
            std::to_string(old_unpushed) + "," + std::to_string(new_pushed) + "," +
                std::to_string(new_pushed + 1));
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM gpu_metrics"), "4");
  EXPECT_EQ(store_->XidsSince(SystemTime{})->size(), 1u);
  EXPECT_EQ(sql_->Scalar("SELECT string_agg(deployment_id, ',') FROM rental_metering"), "running");
  EXPECT_EQ(sql_->Scalar("SELECT string_agg(id::text, ',') FROM health_checks"),
            std::to_string(old_unpushed_report));
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM outbox"), "2");
  EXPECT_EQ(sql_->Scalar("SELECT string_agg(command_id, ',' ORDER BY command_id) "
                         "FROM command_queue"),
            "new-done,old-pending");
  EXPECT_EQ(store_->Prune(limits)->rows, 0);
}

// Retention on a large backlog (issue 8, item 8): 2 M GPU rows (250 000 samples x 8 GPUs)
// older than metrics_days are pruned in short batches while a writer doing what the metrics
// loop does (a sample and its 8 GPU rows, then marking it pushed), with lock_timeout = 100ms,
// never times out, and rows newer than the cut stay.
TEST_F(PgStoreTest, PrunesTwoMillionRowsInBatchesWhileAWriterNeverWaits) {
  constexpr int kSamples = 250000;
  constexpr int kGpus = 8;
  auto t0 = std::chrono::steady_clock::now();
  sql_->Query(
      "INSERT INTO metric_samples (taken_at, pushed_at) "
      "SELECT now() - interval '3 days' + g * interval '1 ms', now() "
      "FROM generate_series(1, $1::int) AS g",
      {std::to_string(kSamples)});
  sql_->Query(
      "INSERT INTO gpu_metrics (sample_id, gpu_uuid, gpu_index, utilization, taken_at) "
      "SELECT s.id, 'GPU-' || i, i, 50, s.taken_at FROM metric_samples s, "
      "generate_series(0, $1::int - 1) AS i",
      {std::to_string(kGpus)});
  const double fill_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(sql_->Scalar("SELECT count(*) FROM gpu_metrics"), std::to_string(kSamples * kGpus));

  // The writer: its own connection, lock_timeout 100ms, bounded in count and time.
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0}, failures{0};
  std::string first_failure, lock_timeout;
  std::vector<double> write_ms;  // written by the writer only, read after join
  std::thread writer([&] {
    PGconn* c = PQconnectdb((cluster_->ConnInfo(db_) + " options='-c lock_timeout=100ms'").c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      failures++;
      first_failure = PQerrorMessage(c);
      PQfinish(c);
      return;
    }
    if (PGresult* lt = PQexec(c, "SHOW lock_timeout"); lt != nullptr) {
      if (PQresultStatus(lt) == PGRES_TUPLES_OK && PQntuples(lt) == 1) {
        lock_timeout = PQgetvalue(lt, 0, 0);
      }
      PQclear(lt);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    for (int i = 0; i < 100000 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      const auto w0 = std::chrono::steady_clock::now();
      PGresult* r =
          PQexec(c,
                 "BEGIN; "
                 "WITH s AS (INSERT INTO metric_samples (taken_at) VALUES (now()) RETURNING id) "
                 "INSERT INTO gpu_metrics (sample_id, gpu_uuid, gpu_index, utilization, taken_at) "
                 "SELECT s.id, 'GPU-' || i, i, 40, now() FROM s, generate_series(0, 7) AS i; "
                 "UPDATE metric_samples SET pushed_at = now() WHERE id = currval("
                 "pg_get_serial_sequence('metric_samples', 'id')); "
                 "COMMIT");
      if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        if (failures++ == 0) first_failure = PQerrorMessage(c);
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
      } else {
        PQclear(r);
        writes++;
        write_ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0)
                .count());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    PQfinish(c);
  });

  Store::PruneLimits limits{1, 30, 30, 30};
  limits.batch_rows = 2000;  // samples per transaction: 18 000 rows with their GPU rows
  limits.max_batches = 25;   // per call, as the health loop calls it
  int64_t pruned = 0;
  int calls = 0;
  double longest_call_s = 0;
  t0 = std::chrono::steady_clock::now();
  for (; calls < 50; ++calls) {
    auto c0 = std::chrono::steady_clock::now();
    auto r = store_->Prune(limits);
    longest_call_s =
        std::max(longest_call_s,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    pruned += r->rows;
    if (!r->more) {
      ++calls;
      break;
    }
  }
  const double prune_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  writer.join();
  std::cout << "# filled " << kSamples * (kGpus + 1) << " rows in " << fill_s << " s; pruned "
            << pruned << " rows in " << prune_s << " s over " << calls << " calls (longest call "
            << longest_call_s << " s); writer: " << writes << " writes, " << failures
            << " failures\n";
  std::sort(write_ms.begin(), write_ms.end());
  if (!write_ms.empty()) {
    std::cout << "# writer transaction: p50 " << write_ms[write_ms.size() / 2] << " ms, max "
              << write_ms.back() << " ms\n";
  }
  EXPECT_EQ(lock_timeout, "100ms");
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(writes.load(), 0);
  EXPECT_EQ(pruned, int64_t{kSamples} * (kGpus + 1));
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM metric_samples WHERE taken_at < now() - "
                         "interval '1 day'"),
            "0");
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM gpu_metrics"),
            std::to_string(writes.load() * kGpus));
}

TEST_F(PgStoreTest, SurvivesTerminatedBackend) {
  ASSERT_TRUE(store_->SetState("k", "v1").ok());
  Sql admin(cluster_->ConnInfo("postgres"));
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin.Scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = $1 AND application_name = 'taolie-host-agent'",
                         {db_}),
            "1");
  // The next call reconnects transparently (the failure happened before any of its work).
  ASSERT_TRUE(store_->SetState("k", "v2").ok());
  EXPECT_EQ(store_->GetState("k")->value_or(""), "v2");
  // Twice in a row, with a read.
  admin.Scalar(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE datname = $1 AND application_name = 'taolie-host-agent'",
      {db_});
  auto gpus = store_->ListGpus();
  EXPECT_TRUE(gpus.ok()) << gpus.error().ToString();
  EXPECT_TRUE(store_->Ping().ok());
}

TEST_F(PgStoreTest, TimeoutBecomesDeadlineExceeded) {
  auto s = PgStore::Create(cluster_->ConnInfo(db_), 200);
  ASSERT_TRUE(s.ok());
  // Hold the GPU row lock from another session: the claim waits and times out.
  SyncThreeGpus();
  sql_->Query("BEGIN");
  sql_->Query("SELECT * FROM gpu_status WHERE uuid = 'GPU-a' FOR UPDATE");
  auto d = (*s)->CreateDeployment(MakeDeployment("d1"), GpuClaim{0, {"GPU-a"}}, {});
  sql_->Query("ROLLBACK");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kDeadlineExceeded) << d.error().ToString();
  EXPECT_FALSE((*s)->GetDeployment("d1")->has_value());
  // And the connection is still usable.
  EXPECT_TRUE((*s)->Ping().ok());
}

// ---------- ManagedPostgres ----------

class ManagedPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
};

mode_t Mode(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

TEST_F(ManagedPostgresTest, LayoutSocketOnlyAndStalePidRestart) {
  auto first = ManagedPostgres::Start(TestOptions(dir_));
  TAOLIE_REQUIRE_CLUSTER(first);
  auto& pg = *first;
  EXPECT_GT(pg->Pid(), 0);
  EXPECT_FALSE(pg->Adopted());
  EXPECT_EQ(Mode(fs::path(dir_) / "pg-password"), 0600u);
  EXPECT_EQ(Mode(fs::path(dir_) / "pg-run"), 0700u);
  const std::string password = [&] {
    std::ifstream in(fs::path(dir_) / "pg-password");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  EXPECT_EQ(password.size(), 32u);
  {
    Sql sql(pg->ConnInfo());
    ASSERT_TRUE(sql.ok()) << sql.error();
    EXPECT_EQ(sql.Scalar("SELECT current_database()"), "taolie_host_agent");
    EXPECT_EQ(sql.Scalar("SHOW listen_addresses"), "");
    EXPECT_EQ(sql.Scalar("SHOW max_connections"), "20");
    EXPECT_EQ(sql.Scalar("SHOW password_encryption"), "scram-sha-256");
    EXPECT_EQ(sql.Scalar("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'"),
              "0");
  }
  // A wrong password is refused.
  Sql wrong("host=" + pg->SocketDir() + " dbname=taolie_host_agent user=taolie password=nope");
  EXPECT_FALSE(wrong.ok());

  auto store = PgStore::Create(pg->ConnInfo());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  ASSERT_TRUE((*store)->SetState("survives", "restart").ok());

  // Server down: the store reports Unavailable, it does not crash.
  ASSERT_TRUE(pg->Stop().ok());
  EXPECT_EQ(pg->Pid(), 0);
  auto down = (*store)->Ping();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, ErrorCode::kUnavailable);

  // A crash leaves postmaster.pid behind; its pid now belongs to another process (pid 1).
  {
    std::ofstream pidfile(fs::path(dir_) / "pg" / "postmaster.pid");
    pidfile << "1\n" << dir_ << "/pg\n1700000000\n5432\n" << dir_ << "/pg-run\n\n";
  }
  auto second = ManagedPostgres::Start(TestOptions(dir_));
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_FALSE((*second)->Adopted());
  EXPECT_NE((*second)->Pid(), 1);
  EXPECT_EQ((*second)->ConnInfo(), pg->ConnInfo());  // same password, same socket

  // The store reconnects to the restarted server; data survived.
  auto value = (*store)->GetState("survives");
  ASSERT_TRUE(value.ok()) << value.error().ToString();
  EXPECT_EQ(value->value_or(""), "restart");
  store->reset();
  EXPECT_TRUE((*second)->Stop().ok());
  EXPECT_TRUE((*second)->Stop().ok());  // idempotent
}

TEST_F(ManagedPostgresTest, AdoptsServerStillRunning) {
  auto first = ManagedPostgres::Start(TestOptions(dir_));
  TAOLIE_REQUIRE_CLUSTER(first);
  auto second = ManagedPostgres::Start(TestOptions(dir_));
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_TRUE((*second)->Adopted());
  EXPECT_EQ((*second)->Pid(), (*first)->Pid());
  Sql sql((*second)->ConnInfo());
  EXPECT_TRUE(sql.ok()) << sql.error();
  const pid_t pid = (*first)->Pid();
  // The adopting instance can stop it.
  ASSERT_TRUE((*second)->Stop().ok());
  EXPECT_TRUE((*first)->Stop().ok());  // reaps the child
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST_F(ManagedPostgresTest, BadBinDirIsNotFound) {
  ManagedPostgres::Options o = TestOptions(dir_);
  o.bin_dir = dir_ + "/no-such-bin";
  auto r = ManagedPostgres::Start(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace taolie::store

namespace taolie::store {
namespace {

// Issue 17 item 5: an ended rental keeps its environment variables' names, not their values,
// in its spec and in its command, written in the transaction that ends it.
TEST_F(PgStoreTest, EndingARentalBlanksItsEnvironmentValuesInSpecAndCommand) {
  SyncThreeGpus();
  CommandRecord c;
  c.command_id = "cmd-d1";
  c.command_type = "deploy";
  c.payload_json = R"({"image":"x","environment":{"TOKEN":"env-secret-2"}})";
  ASSERT_TRUE(*store_->RecordCommand(c));
  Deployment d = MakeDeployment("d1", {40022});
  d.spec_json = R"({"image":"x","env":[["TOKEN","env-secret-2"],["HOME","/w"]],"ports":[]})";
  auto created = store_->CreateDeployment(d, GpuClaim{1, {}}, {});
  ASSERT_TRUE(created.ok()) << created.error().ToString();
  d = *created;
  d.state = DeploymentState::kRunning;
  ASSERT_TRUE(store_->UpdateDeployment(d, {}).ok());
  EXPECT_EQ((*store_->GetDeployment("d1"))->spec_json, d.spec_json);  // running: kept

  d.state = DeploymentState::kEnded;
  d.end_status = "terminated";
  ASSERT_TRUE(store_->UpdateDeployment(d, {Event("d1", EventKind::kTerminated)}).ok());
  EXPECT_EQ((*store_->GetDeployment("d1"))->spec_json,
            R"({"image":"x","env":[["TOKEN",""],["HOME",""]],"ports":[]})");
  EXPECT_EQ((*store_->GetCommand("cmd-d1"))->payload_json,
            R"({"image":"x","environment":{"TOKEN":""}})");
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM deployments WHERE spec_json LIKE '%env-secret%'"),
            "0");
}

// The access details' scrub is part of marking the `success` event done: one transaction, so a
// failure in between leaves both (the event is sent again, then scrubbed), never one of them.
TEST_F(PgStoreTest, MarkingSuccessDoneScrubsTheDeploymentsSecretsInTheSameTransaction) {
  SyncThreeGpus();
  ASSERT_TRUE(store_->CreateDeployment(MakeDeployment("d1"), GpuClaim{1, {}}, {}).ok());
  ASSERT_TRUE(
      store_->AppendEvents({Event("d1", EventKind::kSuccess, R"({"ssh_password":"s3cret-pass"})")})
          .ok());
  const int64_t id = (*store_->PendingEvents(10))[0].id;

  // Injected: the deployment's update fails inside the transaction.
  sql_->Query(
      "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE EXCEPTION 'injected failure'; END$$");
  sql_->Query(
      "CREATE TRIGGER refuse BEFORE UPDATE ON deployments FOR EACH ROW "
      "EXECUTE FUNCTION refuse_update()");
  EXPECT_FALSE(store_->MarkEventDone(id, "delivered", R"({"ssh_password":"***"})").ok());
  EXPECT_EQ(*store_->CountPendingEvents(), 1);  // not done, its body intact, the password kept
  EXPECT_EQ(sql_->Scalar("SELECT body FROM outbox WHERE id = $1", {std::to_string(id)}),
            R"({"ssh_password":"s3cret-pass"})");
  EXPECT_EQ((*store_->GetDeployment("d1"))->ssh_password,
            std::optional<std::string>("s3cret-pass"));

  sql_->Query("DROP TRIGGER refuse ON deployments");
  ASSERT_TRUE(store_->MarkEventDone(id, "delivered", R"({"ssh_password":"***"})").ok());
  EXPECT_EQ(*store_->CountPendingEvents(), 0);
  auto d = **store_->GetDeployment("d1");
  EXPECT_FALSE(d.ssh_password.has_value());
  EXPECT_EQ(d.jupyter_token, "");
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM outbox WHERE body LIKE '%s3cret-pass%'"), "0");
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM deployments WHERE ssh_password IS NOT NULL"), "0");
}

// Issue 17 item 8: a command delivered again after its ack went out is acked again from the
// same outbox row, however often it comes.
TEST_F(PgStoreTest, RequeueAckSendsTheSameRowAgainWithoutGrowingTheOutbox) {
  OutboxEvent ack = Event("", EventKind::kAck, R"({"result":"succeeded"})");
  ack.path = "/api/host-agents/a1/commands/c-7/ack";
  ASSERT_TRUE(store_->AppendEvents({ack}).ok());
  const int64_t id = (*store_->PendingEvents(10))[0].id;
  const SystemTime t0 = SystemTime(seconds(1'700'000'000));
  ASSERT_TRUE(store_->MarkEventAttempt(id, "HTTP 503", t0, t0 + seconds(2)).ok());
  // Still pending: nothing changes.
  EXPECT_FALSE(*store_->RequeueAck(ack));
  ASSERT_TRUE(store_->MarkEventDone(id, "delivered", "").ok());
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(*store_->RequeueAck(ack)) << round;   // queued again...
    EXPECT_FALSE(*store_->RequeueAck(ack)) << round;  // ...once
    auto pending = store_->PendingEvents(10);
    ASSERT_EQ(pending->size(), 1u);
    EXPECT_EQ((*pending)[0].id, id);
    EXPECT_EQ((*pending)[0].attempts, 0);
    ASSERT_TRUE(store_->MarkEventDone(id, "delivered", "").ok());
  }
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM outbox"), "1");
  // The row pruned meanwhile: one again.
  sql_->Query("DELETE FROM outbox");
  EXPECT_TRUE(*store_->RequeueAck(ack));
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM outbox"), "1");
  EXPECT_EQ(store_->RequeueAck(Event("d1", EventKind::kSuccess)).error().code,
            ErrorCode::kInvalidArgument);
}

// Migration 8 removes what an older agent kept: registry_auth of its commands (remembered as
// withheld), environment values of done commands and of ended rentals.
TEST_F(PgStoreTest, MigrationEightRemovesSecretsAnOlderAgentKept) {
  SyncThreeGpus();
  ASSERT_TRUE(store_->CreateDeployment(MakeDeployment("d-old"), GpuClaim{1, {}}, {}).ok());
  ASSERT_TRUE(store_->CreateDeployment(MakeDeployment("d-run"), GpuClaim{1, {}}, {}).ok());
  // Back to migration 7, with rows as the older agent wrote them.
  sql_->Query("ALTER TABLE command_queue DROP COLUMN registry_auth_withheld");
  sql_->Query("DROP INDEX outbox_ack_path_idx");
  sql_->Query("DELETE FROM schema_migrations WHERE version = 8");
  sql_->Query(
      "INSERT INTO command_queue (command_id, command_type, payload, state) VALUES "
      "('c-pending', 'deploy', "
      "  '{\"image\":\"x\",\"registry_auth\":{\"password\":\"old-pw-1\"},"
      "\"environment\":{\"K\":\"old-env-1\"}}', 'pending'), "
      "('c-done', 'deploy', "
      "  '{\"image\":\"x\",\"registry_auth\":{\"password\":\"old-pw-2\"},"
      "\"environment\":{\"K\":\"old-env-2\"}}', 'done'), "
      "('c-junk', 'deploy', 'not json', 'done')");
  sql_->Query(
      "UPDATE deployments SET state = 'ended', "
      "  spec_json = '{\"env\":[[\"K\",\"old-env-3\"]],\"image\":\"x\"}' WHERE id = 'd-old'");
  sql_->Query(
      "UPDATE deployments SET state = 'running', "
      "  spec_json = '{\"env\":[[\"K\",\"live-env\"]],\"image\":\"x\"}' WHERE id = 'd-run'");

  auto again = PgStore::Create(cluster_->ConnInfo(db_));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(sql_->Scalar("SELECT count(*) FROM command_queue WHERE payload LIKE '%old-pw-%'"), "0");
  auto pending = (*again)->GetCommand("c-pending");
  ASSERT_TRUE(pending.ok() && pending->has_value());
  EXPECT_TRUE((*pending)->registry_auth_withheld);
  auto p = nlohmann::json::parse((*pending)->payload_json);
  EXPECT_EQ(p["environment"]["K"], "old-env-1");  // pending: still to run
  auto done = nlohmann::json::parse((*(*again)->GetCommand("c-done"))->payload_json);
  EXPECT_EQ(done["environment"]["K"], "");
  EXPECT_EQ(done["image"], "x");
  EXPECT_EQ((*(*again)->GetCommand("c-junk"))->payload_json, "not json");
  auto ended = nlohmann::json::parse((*(*again)->GetDeployment("d-old"))->spec_json);
  EXPECT_EQ(ended["env"], nlohmann::json::parse(R"([["K",""]])"));
  auto running = nlohmann::json::parse((*(*again)->GetDeployment("d-run"))->spec_json);
  EXPECT_EQ(running["env"], nlohmann::json::parse(R"([["K","live-env"]])"));
}

}  // namespace
}  // namespace taolie::store
