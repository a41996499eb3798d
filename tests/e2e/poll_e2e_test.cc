// End-to-end: a poll with malformed commands, a reused deployment id, and a start-up that
// does not wait on the platform. The real agent binary, PostgreSQL, dockerd and the simulator.
#include <gtest/gtest.h>

#include <algorithm>

#include "e2e/agent_harness.h"

namespace taolie::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class PollTest : public AgentE2eTest {
 protected:
  // Requests to `prefix` that arrived after `since`.
  std::vector<sim::Simulator::Request> RequestsSince(const std::string& prefix,
                                                     std::chrono::system_clock::time_point since) {
    std::vector<sim::Simulator::Request> out;
    for (auto& r : sim_->Requests(prefix)) {
      if (r.at > since) out.push_back(std::move(r));
    }
    return out;
  }
  // Queues a deploy of the SSH image as `deployment_id` (command "cmd-<id>"), next to whatever
  // malformed elements the raw poll reply carries, and checks that it runs and is acked.
  void ExpectValidDeployRuns(const std::string& deployment_id) {
    json payload = {
        {"deployment_id", deployment_id}, {"image", SshImage()}, {"ports", {{"22", 22}}}};
    std::string cmd =
        sim_->QueueCommand(agent_id_, "deploy", payload.dump(), "cmd-" + deployment_id);
    json success = WaitEvent(deployment_id, "success", 120s);
    ASSERT_FALSE(success.is_null()) << "the valid command next to malformed ones did not deploy";
    json ack = Ack(cmd, 30s);
    ASSERT_FALSE(ack.is_null());
    EXPECT_EQ(ack["result"], "succeeded");
    auto c = Containers(deployment_id);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_TRUE(c[0].running);
  }
  // The first ack sent for `command_id`, one the simulator never queued (it answers 404, but
  // the ack was sent).
  json UnqueuedAck(const std::string& command_id) {
    const std::string path = "/api/host-agents/" + agent_id_ + "/commands/" + command_id + "/ack";
    if (!sim::Simulator::WaitFor([&] { return !sim_->Requests(path).empty(); }, 30s)) return {};
    return json::parse(sim_->Requests(path).front().body);
  }
  size_t Count(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (size_t at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + needle.size()))
      ++n;
    return n;
  }
};

// Every poll starts with elements the agent cannot acknowledge (a 3000-character command_id,
// one with a NUL) and one it must reject (a bad command_type); the valid deploy after them
// deploys, and each malformed element is logged once, escaped and truncated.
TEST_F(PollTest, MalformedCommandsFirstInEveryPollNeverHoldBackTheValidOne) {
  StartAgent();
  const std::string huge(3000, 'x');
  json raw = json::array(
      {json{{"command_id", huge}, {"command_type", "deploy"}, {"payload", {{"image", "busybox"}}}},
       json{{"command_id", std::string("nul\0id", 6)}, {"command_type", "deploy"}},
       json{{"command_id", "bad-type-1"}, {"command_type", 7}, {"payload", json::object()}}});
  sim_->SetRawPollReply(agent_id_, raw.dump());
  ASSERT_NO_FATAL_FAILURE(ExpectValidDeployRuns("poll-ok-1"));

  // The bad command_type has an id: acknowledged "rejected" with the reason.
  json rejected = UnqueuedAck("bad-type-1");
  ASSERT_FALSE(rejected.is_null());
  EXPECT_EQ(rejected["result"], "rejected");
  EXPECT_NE(rejected["error"].get<std::string>().find("command_type"), std::string::npos);

  // Three more polls that each carried the same malformed elements: still one line each.
  ASSERT_TRUE(WaitForPolls(3));
  std::string log = agent_->Log();
  EXPECT_EQ(Count(log, "command_id is 3000 bytes, over 128"), 1u);
  EXPECT_EQ(Count(log, R"((command_id "nul\x00id"): skipped: command_id contains NUL)"), 1u);
  EXPECT_EQ(Count(log, "command_type is number, not a string"), 1u);
  EXPECT_NE(log.find("(command_id \"" + std::string(64, 'x') + "\u2026\")"), std::string::npos);
  EXPECT_EQ(log.find(std::string(65, 'x')), std::string::npos) << "an id was logged untruncated";
  EXPECT_TRUE(agent_->Running());
}

// issue 17 item 1: one element nested 100 000 deep (200 KB) crashed the agent (a recursive
// dump() hashed every element) at every poll that carried it. Now it is acknowledged
// "rejected" with the reason, an unidentifiable deep element is skipped, and the valid deploy
// in the same poll deploys.
TEST_F(PollTest, TooDeepCommandIsRejectedAndTheValidOneDeploys) {
  StartAgent();
  const size_t kDepth = 100000;
  const std::string deep = std::string(kDepth, '[') + std::string(kDepth, ']');
  sim_->SetRawPollReply(agent_id_, R"([{"command_id": "deep-e2e-1", "command_type": "deploy", )"
                                   R"("payload": {"image": "busybox", "x": )" +
                                       deep + R"(}}, {"payload": )" + deep + "}]");
  ASSERT_NO_FATAL_FAILURE(ExpectValidDeployRuns("poll-deep-ok"));

  json rejected = UnqueuedAck("deep-e2e-1");
  ASSERT_FALSE(rejected.is_null());
  EXPECT_EQ(rejected["result"], "rejected");
  EXPECT_EQ(rejected["error"], "payload nested 100002 levels deep, over the limit of 64");
  EXPECT_TRUE(Containers("deep-e2e-1").empty());

  // Later polls carry both again: the agent stays up and logs each element once.
  ASSERT_TRUE(WaitForPolls(3));
  EXPECT_TRUE(agent_->Running());
  std::string log = agent_->Log();
  EXPECT_EQ(Count(log, R"((command_id "deep-e2e-1"): nested 100002 levels deep)"), 1u);
  EXPECT_EQ(Count(log,
                  "commands[1]: skipped: nested 100001 levels deep, over the limit of 64; "
                  "command_id missing"),
            1u);
}

// A deploy whose deployment_id already belongs to another command's deployment is refused:
// acknowledged "rejected" with a reason, never "succeeded"; the first rental is untouched.
TEST_F(PollTest, ReusedDeploymentIdIsRefused) {
  StartAgent();
  json payload = {{"deployment_id", "reuse-1"}, {"image", SshImage()}, {"ports", {{"22", 22}}}};
  std::string first = sim_->QueueCommand(agent_id_, "deploy", payload.dump(), "cmd-reuse-a");
  json success = WaitEvent("reuse-1", "success", 120s);
  ASSERT_FALSE(success.is_null());
  json ack_a = Ack(first, 30s);
  ASSERT_FALSE(ack_a.is_null());
  ASSERT_EQ(ack_a["result"], "succeeded");
  auto before = Containers("reuse-1");
  ASSERT_EQ(before.size(), 1u);

  payload["duration_minutes"] = 5;
  std::string second = sim_->QueueCommand(agent_id_, "deploy", payload.dump(), "cmd-reuse-b");
  json ack_b = Ack(second, 60s);
  ASSERT_FALSE(ack_b.is_null()) << "the second command was never acknowledged";
  for (const auto& body : sim_->AckBodies(second)) {
    EXPECT_NE(json::parse(body)["result"], "succeeded") << body;
  }
  EXPECT_EQ(ack_b["result"], "rejected");
  EXPECT_FALSE(ack_b.value("error", "").empty());
  // The first rental: same container, running, one success, neither failed nor ended.
  auto after = Containers("reuse-1");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id, before[0].id);
  EXPECT_TRUE(after[0].running);
  EXPECT_EQ(sim_->Events("reuse-1", "success").size(), 1u);
  EXPECT_TRUE(sim_->Events("reuse-1", "failed").empty());
  EXPECT_TRUE(sim_->Events("reuse-1", "terminated").empty());
}

// After a restart the platform answers registration 503 with Retry-After: 60. Start-up does not
// wait on it: /status answers at once, nothing that needs the platform's ids is sent, the
// rental still expires on time, and its `terminated` event arrives once the platform accepts.
TEST_F(PollTest, RegistrationRefusedAfterRestartBlocksNeitherStatusNorExpiry) {
  StartAgent();
  json payload = {{"deployment_id", "reg-exp-1"},
                  {"image", SshImage()},
                  {"duration_minutes", 1},
                  {"ports", {{"22", 22}}}};
  sim_->QueueCommand(agent_id_, "deploy", payload.dump());
  ASSERT_FALSE(WaitEvent("reg-exp-1", "success", 120s).is_null());
  const auto ready_at = std::chrono::steady_clock::now();
  int status = agent_->Terminate();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  sim_->SetFailNext(1'000'000, 503, 60);
  const auto restart = std::chrono::system_clock::now();
  const auto restart_steady = std::chrono::steady_clock::now();
  agent_->Start();
  json st;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
        return st.is_object();
      },
      20s))
      << "no /status while the platform refuses registration\n"
      << Tail(agent_->Log(), 3000);
  EXPECT_LT(std::chrono::steady_clock::now() - restart_steady, 20s);
  EXPECT_EQ(st["registered"], false);
  EXPECT_EQ(st["agent_id"], agent_id_);
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] { return !RequestsSince("/api/host-agents/register", restart).empty(); }, 20s));

  // Expiry is enforced while the platform still refuses the registration.
  ASSERT_TRUE(sim::Simulator::WaitFor([&] { return Containers("reg-exp-1").empty(); }, 100s))
      << "the rental did not expire while the agent was unregistered";
  EXPECT_LT(std::chrono::steady_clock::now() - ready_at, 60s + 25s) << "expired late";
  for (const auto& r : RequestsSince("/api/", restart)) {
    EXPECT_EQ(r.path, "/api/host-agents/register") << "sent before registration: " << r.path;
    EXPECT_EQ(r.status, 503);
  }
  EXPECT_TRUE(agent_->Running());

  // The platform accepts again: registration, then the events that waited.
  sim_->SetFailNext(0, 503, 0);
  json ended = WaitEvent("reg-exp-1", "terminated", 180s);
  ASSERT_FALSE(ended.is_null()) << "terminated never delivered";
  EXPECT_EQ(ended["status"], "expired");
  EXPECT_TRUE(sim::Simulator::WaitFor(
      [&] {
        json s = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
        return s.is_object() && s["registered"] == true;
      },
      10s));
}

// A loop that throws is counted per loop on /status and /metrics (zero here: the agent's loops
// do not throw; the runner's guard itself is unit-tested).
TEST_F(PollTest, LoopExceptionsAreShownPerLoop) {
  StartAgent();
  json st;
  ASSERT_TRUE(sim::Simulator::WaitFor(
      [&] {
        st = json::parse(HttpGet(agent_->status_port(), "/status"), nullptr, false);
        return st.is_object();
      },
      20s));
  bool registration = false;
  for (const auto& l : st["loops"]) {
    EXPECT_TRUE(l.contains("exceptions")) << l.dump();
    registration = registration || l["name"] == "registration";
  }
  EXPECT_TRUE(registration);
  EXPECT_NE(HttpGet(agent_->status_port(), "/metrics")
                .find("taolie_loop_exceptions_total{loop=\"command-poll\"} 0"),
            std::string::npos);
}

}  // namespace
}  // namespace taolie::testing
