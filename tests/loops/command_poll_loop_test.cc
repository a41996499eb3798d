// The command poll loop on the fake engine (issue 18 item 2): a new command reaches the
// handler; a malformed element is acked "rejected" once and logged once however often it is
// re-delivered; a command already recorded is not run twice (acked again when it was acked); a poll
// that brought commands asks for another at once, a few times in a row at most. No sleeps: the
// engine's lanes are waited for with WorkQueue::WaitIdle (bounded).
#include "loops/command_poll_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine_harness.h"
#include "engine/rental_engine.h"
#include "loops/loop_test_support.h"

namespace taolie::loops {
namespace {

using nlohmann::json;
using testing::Http;

class CommandPollLoopTest : public testing::EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    rt->set_registered(true);
    platform.answer = [this](const testing::SentRequest& r) {
      EXPECT_EQ(r.method, platform::Method::kGet);
      EXPECT_EQ(r.path, "/api/host-agents/agent-1/commands");
      return Http(200, json{{"commands", commands}}.dump());
    };
    loop = std::make_unique<CommandPollLoop>(Deps(), *rt, engine->commands());
  }
  runtime::Deps Deps() {
    return runtime::Deps{cfg, store, docker, gpus, host, platform, clock, {}};
  }
  // One poll; the work it scheduled done before it returns.
  void Poll() {
    ASSERT_TRUE(loop->RunOnce({}).ok());
    ASSERT_TRUE(Idle());
  }
  static json DeployCommand(const std::string& command_id, const std::string& deployment_id) {
    return {
        {"command_id", command_id}, {"command_type", "deploy"}, {"payload", Deploy(deployment_id)}};
  }

  testing::ScriptedPlatform platform;
  json commands = json::array();  // what the platform's next polls return
  std::unique_ptr<CommandPollLoop> loop;
};

TEST_F(CommandPollLoopTest, ANewCommandIsRecordedAndHandedToTheHandler) {
  commands = {DeployCommand("cmd-1", "d1")};
  Poll();
  ASSERT_EQ(store.commands.count("cmd-1"), 1u);
  EXPECT_EQ(store.commands.at("cmd-1").command_type, "deploy");
  EXPECT_EQ(Result("cmd-1"), "succeeded");  // the handler ran it to its end
  EXPECT_EQ(docker.Count("Create "), 1);
  EXPECT_EQ(store.AckBodies("cmd-1").size(), 1u);
  EXPECT_EQ(rt->last_platform_ok(), clock.Now());
}

TEST_F(CommandPollLoopTest, NothingIsPolledBeforeRegistration) {
  rt->set_registered(false);
  platform.answer = nullptr;  // a request fails the test
  EXPECT_TRUE(loop->RunOnce({}).ok());
  EXPECT_TRUE(platform.sent().empty());
  EXPECT_FALSE(loop->WantsImmediateRerun());
}

// A bad element with an id is acked "rejected" once, not on each re-delivery; one without a
// usable id is skipped. Each is logged once, however many polls bring it again.
TEST_F(CommandPollLoopTest, AMalformedElementIsRejectedOnceAndLoggedOnce) {
  testing::LogCapture log;
  commands = {{{"command_id", "bad-1"}, {"command_type", 42}},  // has an id: rejected
              {{"command_type", "deploy"}}};                    // no id: skipped
  for (int i = 0; i < 3; ++i) Poll();
  EXPECT_EQ(Result("bad-1"), "rejected");
  EXPECT_EQ(store.commands.at("bad-1").error, "command_type is number, not a string");
  ASSERT_EQ(store.AckBodies("bad-1").size(), 1u);
  EXPECT_EQ(json::parse(store.AckBodies("bad-1")[0])["result"], "rejected");
  EXPECT_EQ(store.commands.size(), 1u);  // the one without an id is never recorded
  EXPECT_EQ(docker.calls.size(), 0u);
  EXPECT_EQ(log.Count("malformed command"), 2) << log.Text();
  EXPECT_EQ(log.Count("bad-1"), 1) << log.Text();
  EXPECT_EQ(log.Count("command_id missing"), 1) << log.Text();
}

// Re-delivered after it ran (its ack still on the way): recorded as seen again, never run
// again, no second ack.
TEST_F(CommandPollLoopTest, ARedeliveredCommandIsNotRunTwice) {
  commands = {DeployCommand("cmd-1", "d1")};
  Poll();
  ASSERT_EQ(Result("cmd-1"), "succeeded");
  Poll();
  Poll();
  EXPECT_EQ(store.commands.at("cmd-1").times_seen, 3);
  EXPECT_EQ(docker.Count("Create "), 1);
  EXPECT_EQ(docker.Count("Pull "), 1);
  EXPECT_EQ(store.AckBodies("cmd-1").size(), 1u);
  EXPECT_EQ(store.deployments.size(), 1u);
}

// A poll that brought new commands asks for the next one at once, at most 4 times in a row;
// a poll with nothing new ends the run, and the count starts again.
TEST_F(CommandPollLoopTest, AnImmediateRerunFollowsNewCommandsAFewTimesInARow) {
  std::vector<bool> reruns;
  for (int i = 0; i < 6; ++i) {
    // Each poll brings one new command (rejected at once: no engine work).
    commands = {{{"command_id", "c" + std::to_string(i)}, {"command_type", "reboot"}}};
    Poll();
    reruns.push_back(loop->WantsImmediateRerun());
  }
  EXPECT_EQ(reruns, (std::vector<bool>{true, true, true, true, false, true}));
  Poll();  // the same command again: nothing new
  EXPECT_FALSE(loop->WantsImmediateRerun());
  commands = {{{"command_id", "c9"}, {"command_type", "reboot"}}};
  Poll();
  EXPECT_TRUE(loop->WantsImmediateRerun());
  commands = json::array();
  Poll();
  EXPECT_FALSE(loop->WantsImmediateRerun());
}

TEST_F(CommandPollLoopTest, AFailedPollIsAnErrorAndCounted) {
  platform.answer = [](const testing::SentRequest&) { return Http(503, "busy"); };
  auto st = loop->RunOnce({});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("HTTP 503"), std::string::npos) << st.error().message;
  EXPECT_EQ(rt->platform_errors.load(), 1u);
  EXPECT_FALSE(loop->WantsImmediateRerun());
}

// The store refusing one command does not hold back the others; the round reports it.
TEST_F(CommandPollLoopTest, ACommandTheStoreCannotTakeIsReportedAndRedelivered) {
  commands = {DeployCommand("cmd-1", "d1")};
  store.down = true;
  auto st = loop->RunOnce({});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("1 of 1 commands not recorded"), std::string::npos)
      << st.error().message;
  store.down = false;
  Poll();  // re-delivered: recorded and run now
  EXPECT_EQ(Result("cmd-1"), "succeeded");
}

// The ack queued again (RequeueAck) is recorded.
class RequeueStore final : public testing::FakeStore {
 public:
  std::vector<store::OutboxEvent> requeued;
  Result<bool> RequeueAck(const store::OutboxEvent& ack) override {
    requeued.push_back(ack);
    return true;
  }
};

// Done and acked, yet delivered again (our ack was lost on the way): acked again from its
// row, with its result, never run again.
class CommandPollLoopAcked : public ::testing::Test, public testing::LoopSeams<RequeueStore> {};

TEST_F(CommandPollLoopAcked, AnAckedCommandDeliveredAgainIsAckedAgainNotRun) {
  testing::FakeReadinessProbe probe;
  engine::RentalEngine engine(deps, rt, probe, {1, 1});
  rt.set_registered(true);
  int notified = 0;
  rt.SetOutboxNotifier([&notified] { ++notified; });
  store::CommandRecord done;
  done.command_id = "cmd-1";
  done.command_type = "terminate";
  done.state = store::CommandState::kDone;
  done.result = "failed";
  done.error = "no such deployment";
  done.deployment_id = "d1";
  done.acked_at = clock.Now();
  store.commands["cmd-1"] = done;
  platform.answer = [](const testing::SentRequest&) {
    return Http(200, R"({"commands":[{"command_id":"cmd-1","command_type":"terminate",)"
                     R"("payload":{"deployment_id":"d1"}}]})");
  };
  CommandPollLoop loop(deps, rt, engine.commands());
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(loop.RunOnce({}).ok());
  ASSERT_TRUE(engine.work().WaitIdle(std::chrono::seconds(10)));
  engine.Shutdown();
  ASSERT_EQ(store.requeued.size(), 2u);
  EXPECT_EQ(store.requeued[0].path, "/api/host-agents/agent-1/commands/cmd-1/ack");
  EXPECT_EQ(store.requeued[0].deployment_id, "d1");
  const json body = json::parse(store.requeued[0].body);
  EXPECT_EQ(body["result"], "failed");
  EXPECT_EQ(body["error"], "no such deployment");
  EXPECT_EQ(notified, 2);
  EXPECT_TRUE(docker.calls.empty());
  EXPECT_EQ(store.commands.at("cmd-1").result, "failed");  // not run again
  EXPECT_FALSE(loop.WantsImmediateRerun());                // nothing new
}

}  // namespace
}  // namespace taolie::loops
