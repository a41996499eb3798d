#include "loops/outbox_loop.h"

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

OutboxLoop::OutboxLoop(runtime::Deps d, runtime::Runtime& rt)
    : d_(d), rt_(rt), rng_(std::random_device{}()) {
  policy_.ext_give_up = std::chrono::hours(d.cfg.server.ext_event_give_up_hours);
}

Result<bool> OutboxLoop::Deliver(const store::OutboxHead& head, std::stop_token stop) {
  const store::OutboxEvent& e = head.event;
  const char* kind = domain::EventKindName(e.kind);
  auto r = d_.api.Send(platform::Method::kPost, e.path, e.body, stop);
  if (Cancelled(r)) return r.error();  // shutting down: not a verdict on the event
  std::string outcome;
  switch (platform::Classify(r, e.ext)) {
    case platform::Disposition::kSuccess:
      outcome = "delivered";
      break;
    case platform::Disposition::kUnsupported:
      outcome = "unsupported";
      rt_.events_unsupported++;
      if (unsupported_warned_.insert(kind).second) {
        spdlog::warn(
            "platform does not support '{}' events (HTTP {}); kept as delivered-unsupported", kind,
            r.ok() ? r->status : 0);
      }
      break;
    case platform::Disposition::kPermanent:
      outcome = "rejected";
      spdlog::warn("platform refused {} event {}: {}", kind, e.id,
                   HttpError(r, kind).error().message);
      break;
    case platform::Disposition::kRetry: {
      rt_.platform_errors++;
      last_error_ = HttpError(r, std::string("deliver ") + kind).error().message;
      const SystemTime now = d_.clock.Now();
      std::uniform_real_distribution<double> jitter(0.0, 1.0);
      const platform::FailureVerdict v = platform::OnDeliveryFailure(
          e.ext, e.attempts + 1, head.first_failed_at.value_or(now), now,
          r.ok() ? r->retry_after : std::nullopt, policy_, jitter(rng_));
      if (!v.give_up) {
        if (e.attempts == 0) {
          spdlog::warn(
              "{} event {} of deployment '{}' not delivered ({}); retried with backoff, "
              "other deployments' events go on",
              kind, e.id, e.deployment_id, last_error_);
        }
        runtime::WarnIfError(d_.store.MarkEventAttempt(e.id, last_error_, now, v.next_attempt_at),
                             "record delivery attempt");
        return false;
      }
      outcome = "failed";
      rt_.events_given_up++;
      spdlog::error(
          "gave up {} event {} of deployment '{}' after {} attempts ({}); kept as failed, "
          "the deployment's next events go on",
          kind, e.id, e.deployment_id, e.attempts + 1, last_error_);
      break;
    }
  }
  std::string scrubbed =
      e.kind == domain::EventKind::kSuccess ? platform::ScrubSecretsFromBody(e.body) : "";
  TAOLIE_RETURN_IF_ERROR(d_.store.MarkEventDone(e.id, outcome, scrubbed));
  if (outcome == "failed") return true;
  rt_.events_delivered++;
  rt_.MarkPlatformOk(d_.clock.Now());
  // A `success` delivered or refused: MarkEventDone scrubbed the deployment's password and token
  // with the event's body, in one transaction.
  if (e.kind == domain::EventKind::kAck) {
    if (auto cid = engine::CommandIdFromAckPath(e.path))
      runtime::WarnIfError(d_.store.MarkCommandAcked(*cid), "mark acked");
  }
  return true;
}

Status OutboxLoop::RunOnce(std::stop_token stop) {
  rerun_ = false;
  if (!rt_.registered()) return OkStatus();
  // Heads of at most this many groups per round (one group per deployment or ack).
  constexpr int kMaxHeads = 200;
  auto heads = d_.store.OutboxHeads(kMaxHeads);
  if (!heads.ok()) return heads.error();
  std::map<int64_t, const store::OutboxHead*> by_id;
  std::vector<platform::GroupHead> view;
  for (const auto& h : *heads) {
    by_id[h.event.id] = &h;
    view.push_back({h.event.id, h.event.kind, h.event.attempts, h.next_attempt_at, h.end_pending});
  }
  const platform::OutboxPlan plan = platform::PlanOutboxRound(view, d_.clock.Now(), policy_);
  int done = 0, failed = 0;
  std::set<int64_t> planned;
  for (const auto& step : plan.steps) {
    if (stop.stop_requested()) break;
    planned.insert(step.id);
    const store::OutboxHead& h = *by_id.at(step.id);
    if (step.action == platform::OutboxAction::kSupersede) {
      TAOLIE_RETURN_IF_ERROR(d_.store.MarkEventDone(h.event.id, "superseded", ""));
      spdlog::info(
          "expiring event {} of deployment '{}' superseded by its ending (not delivered "
          "in {} attempts: {})",
          h.event.id, h.event.deployment_id, h.event.attempts, h.event.last_error);
      ++done;
      continue;
    }
    auto r = Deliver(h, stop);
    if (!r.ok()) return r.error();
    *r ? ++done : ++failed;
  }
  // Progress: go again at once, the groups' next events are due now. Nothing but heads backing
  // off: an error makes the runner retry soon (its backoff), not after the safety interval.
  rerun_ = done > 0;
  if (done > 0 || stop.stop_requested()) return OkStatus();
  size_t waiting = failed;
  for (const auto& h : *heads) {
    if (planned.count(h.event.id) > 0) continue;
    if (waiting++ == 0 && failed == 0) last_error_ = h.event.last_error;
  }
  if (waiting > 0) {
    return MakeError(
        ErrorCode::kUnavailable,
        std::to_string(waiting) +
            " outbox event(s) backing off after failed deliveries; last error: " + last_error_);
  }
  return OkStatus();
}

}  // namespace taolie::loops
