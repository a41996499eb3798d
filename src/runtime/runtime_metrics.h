#pragma once
// The agent's own counters and gauges, declared once (issue 18 item 4).
//
// One line of TAOLIE_RUNTIME_METRICS gives a value its atomic in runtime::Runtime (the engine
// and the loops bump it as before: `rt.deploys_succeeded++`), its sample on /metrics
// (agent/metrics_exposition.h) and its key on /v1/status. Nothing else is to be written.
//
//   X(type, field, family, kind, help, label, status)
//
//   type    the atomic's value type (an integer)
//   field   its name in Runtime
//   family  the Prometheus family ("taolie_..._total" for a counter); "" = not on /metrics
//   kind    kCounter or kGauge
//   help    the family's help text; "" on the 2nd and later samples of one family
//   label   "name=value", the sample's one label ("" = none): the samples of one family are
//           consecutive lines, each with its own label value
//   status  "group.key" (or "key" at the top level) on /v1/status; "" = not there
//
// The lines' order is the families' order on /metrics. ValidMetricTable below checks these
// rules at compile time.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string_view>
#include <vector>

// clang-format off
#define TAOLIE_RUNTIME_METRICS(X)                                                                \
  X(int, active_deployments, "taolie_deployments_active", kGauge,                                \
    "Deployments not yet ended.", "", "")                                                        \
  X(int, available_gpus, "taolie_gpus_available", kGauge,                                        \
    "Healthy GPUs free to rent.", "", "")                                                        \
  X(uint64_t, deploys_succeeded, "taolie_deploys_total", kCounter,                               \
    "Deploys by outcome since start.", "result=succeeded", "counters.deploys_succeeded")         \
  X(uint64_t, deploys_failed, "taolie_deploys_total", kCounter,                                  \
    "", "result=failed", "counters.deploys_failed")                                              \
  X(uint64_t, events_delivered, "taolie_events_delivered_total", kCounter,                       \
    "Outbox events delivered to the platform.", "", "counters.events_delivered")                 \
  /* the ext endpoint answered 404/405 */                                                        \
  X(uint64_t, events_unsupported, "taolie_events_unsupported_total", kCounter,                   \
    "Events to ext endpoints the platform does not have (404/405), kept as "                     \
    "delivered-unsupported.", "", "counters.events_unsupported")                                 \
  /* ext events kept as failed by the outbox */                                                  \
  X(uint64_t, events_given_up, "taolie_events_given_up_total", kCounter,                         \
    "Ext events given up after server.ext_event_give_up_hours, kept as failed.", "",             \
    "counters.events_given_up")                                                                  \
  /* wall-clock steps seen against monotonic time */                                             \
  X(uint64_t, clock_steps, "taolie_clock_wall_steps_total", kCounter,                            \
    "Wall-clock steps against the monotonic clock (rentals are timed on the latter).", "",       \
    "clock.wall_steps")                                                                          \
  /* monitor rounds enforced without the database */                                             \
  X(uint64_t, store_down_rounds, "", kCounter, "", "", "without_database.monitor_rounds")        \
  /* expiry warnings given, rentals stopped at expiry, while the database was down */            \
  X(uint64_t, offline_warnings, "taolie_enforced_without_database_total", kCounter,              \
    "Expiry warnings and expiries enforced while the database was unavailable.",                 \
    "action=warning", "without_database.warnings")                                               \
  X(uint64_t, offline_expiries, "taolie_enforced_without_database_total", kCounter,              \
    "", "action=expiry", "without_database.expiries")                                            \
  /* found without a row and adopted from their labels */                                        \
  X(uint64_t, containers_adopted, "taolie_containers_adopted_total", kCounter,                   \
    "Rental containers found without a row (database lost) and adopted from labels.", "",        \
    "counters.containers_adopted")                                                               \
  /* found without a row, not adoptable */                                                       \
  X(uint64_t, containers_ended_unadoptable, "", kCounter, "", "",                                \
    "counters.containers_ended_unadoptable")                                                     \
  X(uint64_t, platform_errors, "taolie_platform_errors_total", kCounter,                         \
    "Failed calls to the platform.", "", "counters.platform_errors")
// clang-format on

namespace taolie::runtime {

enum class MetricKind { kCounter, kGauge };

constexpr std::string_view MetricKindName(MetricKind k) {
  return k == MetricKind::kCounter ? "counter" : "gauge";
}

// One line of a metrics table (see the top of this file).
struct MetricDecl {
  std::string_view family;
  MetricKind kind;
  std::string_view help;
  std::string_view label;
  std::string_view status;

  constexpr std::string_view label_name() const { return label.substr(0, label.find('=')); }
  constexpr std::string_view label_value() const {
    const size_t eq = label.find('=');
    return eq == std::string_view::npos ? std::string_view() : label.substr(eq + 1);
  }
  // "" = the top level of /v1/status.
  constexpr std::string_view status_group() const {
    const size_t dot = status.find('.');
    return dot == std::string_view::npos ? std::string_view() : status.substr(0, dot);
  }
  constexpr std::string_view status_key() const { return status.substr(status.find('.') + 1); }
};

// A declared value as read at one moment.
struct MetricReading {
  const MetricDecl* decl = nullptr;
  int64_t value = 0;
};

// The rules of a table: every line is shown somewhere; a counter's family ends in "_total"; a
// family's samples are consecutive lines of one kind, the first with the help text and the
// others without, each with its own label when there are several; "name=value" labels; a
// /v1/status path at most once.
constexpr bool ValidMetricTable(std::span<const MetricDecl> t) {
  for (size_t i = 0; i < t.size(); ++i) {
    const MetricDecl& d = t[i];
    if (d.family.empty() && d.status.empty()) return false;
    if (!d.label.empty() && (d.label_name().empty() || d.label.find('=') == d.label.npos)) {
      return false;
    }
    if (!d.status.empty() && (d.status.front() == '.' || d.status.back() == '.')) return false;
    for (size_t j = 0; j < i; ++j) {
      if (!d.status.empty() && t[j].status == d.status) return false;
    }
    if (d.family.empty()) continue;
    if (d.kind == MetricKind::kCounter && !d.family.ends_with("_total")) return false;
    const bool continues = i > 0 && t[i - 1].family == d.family;
    const bool continued = i + 1 < t.size() && t[i + 1].family == d.family;
    if (continues) {
      if (!d.help.empty() || t[i - 1].kind != d.kind || d.label.empty() ||
          d.label_name() != t[i - 1].label_name() || d.label == t[i - 1].label) {
        return false;
      }
    } else {
      if (d.help.empty() || (continued && d.label.empty())) return false;
      for (size_t j = 0; j < i; ++j) {
        if (t[j].family == d.family) return false;  // the family's samples are apart
      }
    }
  }
  return true;
}

}  // namespace taolie::runtime

// `field` names a member: it cannot be parenthesized.
#define TAOLIE_METRIC_ATOMIC_(type, field, family, kind, help, label, status) \
  std::atomic<type> field{0};  // NOLINT(bugprone-macro-parentheses): a member's name
#define TAOLIE_METRIC_DECL_(type, field, family, kind, help, label, status) \
  ::taolie::runtime::MetricDecl{family, ::taolie::runtime::MetricKind::kind, help, label, status},
#define TAOLIE_METRIC_READ_(type, field, family, kind, help, label, status)       \
  out.push_back(/* NOLINTNEXTLINE(bugprone-macro-parentheses): a member's name */ \
                {decl++, static_cast<int64_t>(field.load(std::memory_order_relaxed))});

// Declares struct `Name`: one atomic per line of LIST, the table (kDecls) and Read(), each
// value with its line in the table's order. Runtime holds TAOLIE_RUNTIME_METRICS this way; a
// test may declare its own list.
#define TAOLIE_DECLARE_METRICS(Name, LIST)                                                 \
  struct Name {                                                                            \
    LIST(TAOLIE_METRIC_ATOMIC_)                                                            \
    static constexpr ::taolie::runtime::MetricDecl kDecls[] = {LIST(TAOLIE_METRIC_DECL_)}; \
    std::vector<::taolie::runtime::MetricReading> Read() const {                           \
      std::vector<::taolie::runtime::MetricReading> out;                                   \
      out.reserve(std::size(kDecls));                                                      \
      const ::taolie::runtime::MetricDecl* decl = kDecls;                                  \
      LIST(TAOLIE_METRIC_READ_)                                                            \
      return out;                                                                          \
    }                                                                                      \
  };                                                                                       \
  static_assert(::taolie::runtime::ValidMetricTable(Name::kDecls),                         \
                #LIST " breaks a rule of runtime/runtime_metrics.h")

namespace taolie::runtime {

// The agent's counters and gauges; runtime::Runtime derives from it.
TAOLIE_DECLARE_METRICS(RuntimeMetrics, TAOLIE_RUNTIME_METRICS);

}  // namespace taolie::runtime
