#include "loops/command_poll_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "engine/events.h"
#include "engine/rental_monitor.h"
#include "gpu/xid_catalog.h"
#include "loops/loop_helpers.h"
#include "platform/delivery.h"
#include "platform/messages.h"
#include "telemetry/logging.h"

namespace taolie::loops {

bool CommandPollLoop::FirstTimeSeen(uint64_t key) {
  if (!logged_.insert(key).second) return false;
  logged_order_.push_back(key);
  if (logged_order_.size() > kMaxRemembered) {
    logged_.erase(logged_order_.front());
    logged_order_.pop_front();
  }
  return true;
}

// A malformed command that has an id: done at once with result "rejected", acked via the outbox.
Status CommandPollLoop::Reject(const std::string& command_id, const std::string& reason) {
  TAOLIE_RETURN_IF_ERROR(
      d_.store.FinishCommand(command_id, "rejected", reason, "",
                             {AckOutboxEvent(rt_, d_.clock, command_id, "rejected", reason, "")}));
  rt_.NotifyOutbox();
  return OkStatus();
}

Status CommandPollLoop::RunOnce(std::stop_token stop) {
  rerun_ = false;
  if (!rt_.registered()) return OkStatus();  // the platform does not know this agent yet
  auto r = d_.api.Send(platform::Method::kGet, platform::CommandsPath(rt_.agent_id()), "", stop);
  if (platform::Classify(r, false) != platform::Disposition::kSuccess) {
    rt_.platform_errors++;
    return HttpError(r, "command poll");
  }
  rt_.MarkPlatformOk(d_.clock.Now());
  auto parsed = platform::ParseCommands(r->body);
  if (!parsed.ok()) {
    spdlog::warn("command poll: bad response: {}", parsed.error().message);
    return OkStatus();  // bad input: logged, keep polling at the normal rate
  }
  for (const auto& e : parsed->errors) {
    if (FirstTimeSeen(e.key)) spdlog::warn("command poll: malformed command: {}", e.message);
  }
  // One command the store cannot take never holds back the others: each is tried, and what
  // was not recorded is re-delivered by the platform.
  int fresh = 0, unrecorded = 0;
  Status first_error = OkStatus();
  auto failed = [&](const Status& st) {
    if (++unrecorded == 1) first_error = st;
  };
  for (const auto& c : parsed->commands) {
    store::CommandRecord rec;
    rec.command_id = c.command_id;
    rec.command_type = c.command_type;
    rec.payload_json = c.payload_json;
    rec.received_at = d_.clock.Now();
    auto is_new = d_.store.RecordCommand(rec);
    if (!is_new.ok()) {
      failed(is_new.error());
      continue;
    }
    if (*is_new) {
      ++fresh;
      if (!c.rejection.empty()) {
        if (Status st = Reject(c.command_id, c.rejection); !st.ok()) failed(st);
        continue;
      }
      spdlog::info("command {} ({}) received", c.command_id, c.command_type);
      m_.Schedule(rec);
      continue;
    }
    auto known = d_.store.GetCommand(c.command_id);
    if (!known.ok()) {
      failed(known.error());
      continue;
    }
    if (!known->has_value()) continue;
    if ((*known)->state == store::CommandState::kPending) {
      if (!c.rejection.empty()) {
        if (Status st = Reject(c.command_id, c.rejection); !st.ok()) failed(st);
        continue;
      }
      // Deduplicated by the work queue while in progress. The platform's copy of the payload:
      // it brings again what the store never keeps (registry_auth).
      store::CommandRecord again = **known;
      again.payload_json = c.payload_json;
      m_.Schedule(again);
    } else if ((*known)->acked_at) {
      // Done and acked, yet re-delivered: our ack was lost on the way. Ack again (harmless),
      // from the command's ack row: the outbox never grows with re-deliveries.
      auto e = AckOutboxEvent(rt_, d_.clock, c.command_id, (*known)->result, (*known)->error,
                              (*known)->deployment_id);
      e.deployment_id = (*known)->deployment_id;
      if (auto queued = d_.store.RequeueAck(e); queued.ok() && *queued) rt_.NotifyOutbox();
    }
  }
  // Poll again at once after new commands, a few times in a row at most.
  rerun_ = fresh > 0 && ++immediate_in_a_row_ < 5;
  if (!rerun_) immediate_in_a_row_ = 0;
  if (unrecorded > 0) {
    return MakeError(first_error.error().code,
                     std::to_string(unrecorded) + " of " + std::to_string(parsed->commands.size()) +
                         " commands not recorded (the platform re-delivers them): " +
                         first_error.error().message);
  }
  return OkStatus();
}

}  // namespace taolie::loops
