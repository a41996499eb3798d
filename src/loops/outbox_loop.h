#pragma once
#include <random>
#include <set>
#include <string>

#include "loops/periodic_runner.h"
#include "platform/delivery.h"
#include "runtime/runtime.h"

namespace taolie::loops {

// Outbox sender: delivers events (deployment events and acks) at least once, in order per
// ordering group (store.h, OutboxHead: one per deployment, each ack on its own). A round sends
// every group's head that is due, one attempt each (platform::PlanOutboxRound); a head that
// fails backs off on its own schedule (the row's next_attempt_at), so it never holds back
// another group. An `expiring` that cannot be delivered is superseded by its deployment's
// ending; an ext event failing past server.ext_event_give_up_hours is kept as "failed"
// (counted: events_given_up) and its deployment's next event proceeds.
// Scheduling: a round that finished an event reruns at once (the group's next event goes
// next); a round that only found heads backing off returns an error, so that the runner comes
// back after its own short, growing backoff instead of the 60 s safety interval.
class OutboxLoop final : public Loop {
 public:
  OutboxLoop(runtime::Deps d, runtime::Runtime& rt);
  const char* Name() const override { return "outbox"; }
  Status RunOnce(std::stop_token stop) override;
  bool WantsImmediateRerun() override { return rerun_; }

 private:
  // One attempt for one head. True when the event is done (any outcome); false when it backs
  // off (last_error_ says why).
  Result<bool> Deliver(const store::OutboxHead& head, std::stop_token stop);

  runtime::Deps d_;
  runtime::Runtime& rt_;
  platform::OutboxRetryPolicy policy_;
  std::mt19937_64 rng_;
  bool rerun_ = false;
  std::string last_error_;
  std::set<std::string> unsupported_warned_;
};

}  // namespace taolie::loops
