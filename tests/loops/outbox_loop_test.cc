// The outbox sender on a fake outbox (issue 18 item 2): events go in order within their
// ordering group (one per deployment, each ack alone); a group backing off never holds back
// another; an `expiring` that failed is superseded by its deployment's ending; an ext event
// failing past server.ext_event_give_up_hours is given up, counted, and the deployment's next
// event proceeds. A FakeClock moves time; nothing sleeps.
#include "loops/outbox_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fakes/fake_docker.h"
#include "fakes/fake_seams.h"
#include "fakes/fake_store.h"
#include "loops/loop_test_support.h"

namespace taolie::loops {
namespace {

using domain::EventKind;
using std::chrono::minutes;
using testing::Http;

// The outbox as PgStore keeps it: rows by id; a group's head is its first undelivered row;
// MarkEventAttempt and MarkEventDone as store/command_store.h describes them.
class OutboxStore final : public testing::FakeStore {
 public:
  struct Row {
    store::OutboxEvent event;
    std::optional<SystemTime> next_attempt_at, first_failed_at;
    std::string outcome;  // "" while undelivered
  };
  std::map<int64_t, Row> rows;
  std::vector<std::string> acked;  // MarkCommandAcked, in order

  int64_t Add(const std::string& deployment_id, EventKind kind, bool ext = false) {
    store::OutboxEvent e;
    e.id = static_cast<int64_t>(rows.size()) + 1;
    e.deployment_id = deployment_id;
    e.kind = kind;
    e.ext = ext;
    e.path = kind == EventKind::kAck
                 ? "/api/host-agents/agent-1/commands/cmd-" + std::to_string(e.id) + "/ack"
                 : "/api/deployments/" + deployment_id + "/" + domain::EventKindName(kind);
    e.body = "{}";
    rows[e.id] = Row{e, std::nullopt, std::nullopt, ""};
    return e.id;
  }
  std::string Outcome(int64_t id) const { return rows.at(id).outcome; }

  Result<std::vector<store::OutboxHead>> OutboxHeads(int limit) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    std::vector<store::OutboxHead> heads;
    std::set<std::string> groups;
    for (const auto& [id, row] : rows) {
      if (!row.outcome.empty()) continue;
      const bool alone = row.event.kind == EventKind::kAck || row.event.deployment_id.empty();
      const std::string group = alone ? "#" + std::to_string(id) : row.event.deployment_id;
      if (!groups.insert(group).second) continue;
      store::OutboxHead h{row.event, row.next_attempt_at, row.first_failed_at, false};
      for (const auto& [later_id, later] : rows) {
        if (later_id > id && later.outcome.empty() && !alone &&
            later.event.deployment_id == row.event.deployment_id &&
            (later.event.kind == EventKind::kTerminated || later.event.kind == EventKind::kFailed))
          h.end_pending = true;
      }
      heads.push_back(h);
    }
    // Never failed first (oldest first), then by next_attempt_at.
    std::stable_sort(heads.begin(), heads.end(), [](const auto& a, const auto& b) {
      if (a.next_attempt_at.has_value() != b.next_attempt_at.has_value())
        return !a.next_attempt_at.has_value();
      return a.next_attempt_at.has_value() && *a.next_attempt_at < *b.next_attempt_at;
    });
    if (static_cast<int>(heads.size()) > limit) heads.resize(static_cast<size_t>(limit));
    return heads;
  }
  Status MarkEventDone(int64_t id, const std::string& outcome, const std::string&) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    Row& r = rows.at(id);
    EXPECT_TRUE(r.outcome.empty()) << "event " << id << " done twice";
    r.outcome = outcome;
    return OkStatus();
  }
  Status MarkEventAttempt(int64_t id, const std::string& error, SystemTime at,
                          SystemTime next_attempt_at) override {
    TAOLIE_RETURN_IF_ERROR(Up());
    Row& r = rows.at(id);
    r.event.attempts++;
    r.event.last_error = error;
    if (!r.first_failed_at) r.first_failed_at = at;
    r.next_attempt_at = next_attempt_at;
    return OkStatus();
  }
  Status MarkCommandAcked(const std::string& command_id) override {
    acked.push_back(command_id);
    return OkStatus();
  }
};

class OutboxLoopTest : public ::testing::Test, public testing::LoopSeams<OutboxStore> {
 protected:
  OutboxLoopTest() {
    cfg.server.ext_event_give_up_hours = 1;
    rt.set_registered(true);
    platform.answer = [this](const testing::SentRequest& r) {
      return failing.count(r.path) > 0 ? Http(503, "down for maintenance") : Http(200);
    };
  }
  std::string PathOf(int64_t id) const { return store.rows.at(id).event.path; }
  // One round; the paths it sent.
  std::vector<std::string> Round(OutboxLoop& loop, bool expect_ok = true) {
    platform.Clear();
    EXPECT_EQ(loop.RunOnce({}).ok(), expect_ok);
    return platform.paths();
  }

  std::set<std::string> failing;  // paths the platform answers 503
};

TEST_F(OutboxLoopTest, NothingIsSentBeforeRegistration) {
  rt.set_registered(false);
  store.Add("d1", EventKind::kSuccess);
  OutboxLoop loop(deps, rt);
  EXPECT_TRUE(Round(loop).empty());
  EXPECT_EQ(store.Outcome(1), "");
}

// Within a deployment one event at a time, in id order; every ack is a group of its own and
// goes in the first round.
TEST_F(OutboxLoopTest, EventsGoInOrderWithinTheirGroup) {
  const int64_t success = store.Add("d1", EventKind::kSuccess);
  const int64_t expiring = store.Add("d1", EventKind::kExpiring, /*ext=*/true);
  const int64_t ack = store.Add("", EventKind::kAck);
  const int64_t terminated = store.Add("d1", EventKind::kTerminated);
  OutboxLoop loop(deps, rt);
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(success), PathOf(ack)}));
  EXPECT_TRUE(loop.WantsImmediateRerun());
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(expiring)}));
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(terminated)}));
  EXPECT_TRUE(loop.WantsImmediateRerun());
  EXPECT_TRUE(Round(loop).empty());
  EXPECT_FALSE(loop.WantsImmediateRerun());
  for (int64_t id : {success, expiring, ack, terminated}) EXPECT_EQ(store.Outcome(id), "delivered");
  EXPECT_EQ(store.acked, (std::vector<std::string>{"cmd-3"}));
  EXPECT_EQ(rt.events_delivered.load(), 4u);
}

// d1's head fails and backs off; d2's events and the ack go on meanwhile, and d1's resumes
// once its retry is due.
TEST_F(OutboxLoopTest, AGroupBackingOffDoesNotHoldBackAnother) {
  const int64_t d1_success = store.Add("d1", EventKind::kSuccess);
  const int64_t d1_end = store.Add("d1", EventKind::kTerminated);
  const int64_t d2_success = store.Add("d2", EventKind::kSuccess);
  const int64_t d2_end = store.Add("d2", EventKind::kTerminated);
  failing.insert(PathOf(d1_success));
  OutboxLoop loop(deps, rt);
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(d1_success), PathOf(d2_success)}));
  EXPECT_EQ(store.rows.at(d1_success).event.attempts, 1);
  ASSERT_TRUE(store.rows.at(d1_success).next_attempt_at.has_value());
  EXPECT_GT(*store.rows.at(d1_success).next_attempt_at, clock.Now());
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(d2_end)}));  // d1 waits its turn
  // Only d1 left, backing off: the round says so (the runner retries after its backoff).
  EXPECT_TRUE(Round(loop, /*expect_ok=*/false).empty());
  EXPECT_EQ(rt.platform_errors.load(), 1u);
  failing.clear();
  clock.Advance(minutes(6));  // past the longest backoff
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(d1_success)}));
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(d1_end)}));
  for (int64_t id : {d1_success, d1_end, d2_success, d2_end})
    EXPECT_EQ(store.Outcome(id), "delivered");
}

// An `expiring` that could not be delivered is never sent again once its deployment's end
// waits behind it: superseded, and the end goes next.
TEST_F(OutboxLoopTest, AFailedExpiringIsSupersededByTheDeploymentsEnd) {
  const int64_t expiring = store.Add("d1", EventKind::kExpiring, /*ext=*/true);
  failing.insert(PathOf(expiring));
  OutboxLoop loop(deps, rt);
  EXPECT_EQ(Round(loop, /*expect_ok=*/false), (std::vector<std::string>{PathOf(expiring)}));
  const int64_t end = store.Add("d1", EventKind::kTerminated);
  failing.clear();  // it would go through now, but is moot
  EXPECT_TRUE(Round(loop).empty());
  EXPECT_EQ(store.Outcome(expiring), "superseded");
  EXPECT_TRUE(loop.WantsImmediateRerun());
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(end)}));
  EXPECT_EQ(store.Outcome(end), "delivered");
}

// An ext event still failing server.ext_event_give_up_hours (1 h here) after its first
// failure is kept as failed and counted; the deployment's next event goes next. A compat
// event failing as long is never given up.
TEST_F(OutboxLoopTest, AnExtEventIsGivenUpAfterItsHoursAndTheNextProceeds) {
  const int64_t gpu_failed = store.Add("d1", EventKind::kGpuFailed, /*ext=*/true);
  const int64_t end = store.Add("d1", EventKind::kFailed);
  const int64_t success = store.Add("d2", EventKind::kSuccess);  // compat: never given up
  failing = {PathOf(gpu_failed), PathOf(success)};
  OutboxLoop loop(deps, rt);
  for (int i = 0; i < 12; ++i) {  // 55 minutes of failures, a retry due every 5 minutes
    EXPECT_EQ(Round(loop, /*expect_ok=*/false).size(), 2u) << "round " << i;
    clock.Advance(minutes(5));
  }
  EXPECT_EQ(store.Outcome(gpu_failed), "");
  EXPECT_EQ(rt.events_given_up.load(), 0u);
  clock.Advance(minutes(6));  // past the hour
  auto sent = Round(loop);
  EXPECT_EQ(sent, (std::vector<std::string>{PathOf(gpu_failed), PathOf(success)}));
  EXPECT_EQ(store.Outcome(gpu_failed), "failed");
  EXPECT_EQ(rt.events_given_up.load(), 1u);
  EXPECT_EQ(store.Outcome(success), "");  // compat: still retried
  failing.clear();
  clock.Advance(minutes(6));  // the success's next retry
  EXPECT_EQ(Round(loop), (std::vector<std::string>{PathOf(end), PathOf(success)}));
  EXPECT_EQ(store.Outcome(end), "delivered");
  EXPECT_EQ(store.Outcome(success), "delivered");
}

}  // namespace
}  // namespace taolie::loops
