#pragma once
// Delivery with retries on top of the PlatformApi seam (platform-api.md "Common rules"):
// transport errors, 408, 429 and 5xx are retried with exponential backoff and full jitter,
// honouring Retry-After; everything else is returned at once.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "domain/enums.h"
#include "platform/platform_api.h"

namespace taolie::platform {

struct RetryPolicy {
  int max_attempts = 5;                                // total tries, >= 1
  std::chrono::milliseconds base_delay{500};           // backoff base
  std::chrono::milliseconds max_delay{30'000};         // backoff cap
  std::chrono::milliseconds max_retry_after{300'000};  // cap on a server's Retry-After
  std::optional<uint64_t> seed;                        // jitter seed (tests); none = random
};

using Sleeper = std::function<void(std::chrono::milliseconds)>;

// Sends until success, a non-retryable answer, max_attempts, or stop (-> Cancelled).
// Sleeps between tries through `sleeper` (tests inject a recorder; production uses
// StopAwareSleeper). Returns the last response or error.
Result<Response> SendWithRetry(PlatformApi& api, Method method, const std::string& path,
                               const std::string& body, bool ext_endpoint,
                               const RetryPolicy& policy, std::stop_token stop,
                               const Sleeper& sleeper);

// A sleeper that waits for the duration or until `stop` is requested, whichever comes first.
Sleeper StopAwareSleeper(std::stop_token stop);

// The longest Retry-After the agent takes from a server; anything longer counts as this.
inline constexpr std::chrono::seconds kMaxRetryAfter{24 * 3600};

// A Retry-After header's value: delay-seconds (digits; any number of them, clamped to
// kMaxRetryAfter before it becomes a duration) or an HTTP-date (IMF-fixdate, "Sun, 06 Nov 1994
// 08:49:37 GMT": the time from `now` until then, 0 when past, clamped likewise). nullopt for
// anything else (a negative number, junk).
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, SystemTime now);

// A server's Retry-After as a delay: at most `cap`, never negative; safe for any value.
std::chrono::milliseconds RetryAfterDelay(std::chrono::seconds retry_after,
                                          std::chrono::milliseconds cap);

// ---- Outbox scheduling (pure) ----
// The outbox keeps order per ordering group (store.h, OutboxHead: one group per deployment,
// each ack on its own). Every round the sender looks at each group's head only: it sends the
// heads that are due, one attempt each, and skips heads that are backing off, so one event
// the platform refuses for hours never holds back another deployment's events or any ack.

struct OutboxRetryPolicy {
  std::chrono::milliseconds base_delay{2'000};         // first retry after about this
  std::chrono::milliseconds max_delay{300'000};        // backoff cap (5 min)
  std::chrono::milliseconds max_retry_after{300'000};  // cap on a server's Retry-After
  std::chrono::hours ext_give_up{24};                  // server.ext_event_give_up_hours
};

// What the planner needs to know about one group's head.
struct GroupHead {
  int64_t id = 0;
  domain::EventKind kind = domain::EventKind::kAck;
  int attempts = 0;                           // failed attempts so far
  std::optional<SystemTime> next_attempt_at;  // none: never failed, due at once
  bool end_pending = false;  // a later terminated/failed event of the same deployment waits
};

enum class OutboxAction {
  kSend,       // one delivery attempt now
  kSupersede,  // mark done as "superseded" without sending
};
struct OutboxStep {
  int64_t id = 0;
  OutboxAction action = OutboxAction::kSend;
  bool operator==(const OutboxStep&) const = default;
};
struct OutboxPlan {
  std::vector<OutboxStep> steps;       // by id ascending
  std::optional<SystemTime> next_due;  // earliest retry among heads left backing off
};

// One round's plan. A head is due when it never failed or its next_attempt_at has come. A
// next_attempt_at further away than any backoff this policy gives (the wall clock was set
// back) counts as due. An `expiring` head that has failed at least once is superseded when
// its deployment's terminated/failed event waits behind it: the ending says more than the
// warning, and the ending must not wait for it.
OutboxPlan PlanOutboxRound(const std::vector<GroupHead>& heads, SystemTime now,
                           const OutboxRetryPolicy& policy);

struct FailureVerdict {
  bool give_up = false;  // keep the event as "failed"; the group's next event proceeds
  SystemTime next_attempt_at{};
};
// After a failed attempt (transport error, 408, 429, 5xx) at `now`. `attempts` counts the
// failures including this one; `first_failed_at` is the first failure (now for the first).
// Ext events still failing `ext_give_up` after their first failure are given up; compat
// events (success, acks) never are. The delay is exponential (Backoff::Ceiling of the attempt)
// with equal jitter: ceiling/2 + jitter * ceiling/2, jitter in [0, 1), so a broken endpoint
// is never hammered; a Retry-After (capped) is honoured as the least delay.
FailureVerdict OnDeliveryFailure(bool ext, int attempts, SystemTime first_failed_at, SystemTime now,
                                 std::optional<std::chrono::seconds> retry_after,
                                 const OutboxRetryPolicy& policy, double jitter);

// For log lines: masks the values of secret-looking keys (password, token, api_key, full_url,
// AUTHORIZED_KEYS; case-insensitive, also as part of a key such as ssh_password) in JSON or
// JSON-like text and "Bearer ..." credentials, then truncates to `max` characters.
std::string RedactForLog(std::string body, size_t max);

}  // namespace taolie::platform
