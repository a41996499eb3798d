#pragma once
// TelemetryStore: what the agent measured — metric samples (metric_samples, gpu_metrics) with
// each rental's running totals (rental_metering), and the health history (health_checks,
// gpu_health_history) — until pushed to the platform, and the retention pruning of every
// table that only grows (these, delivered events, done commands, XIDs). Every method is one
// transaction, except Prune (one short transaction per batch).
#include <cstdint>
#include <optional>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace taolie::store {

class TelemetryStore {
 public:
  virtual ~TelemetryStore() = default;

  // --- metrics and health ---
  virtual Result<int64_t> InsertMetricSample(const MetricSample& s) = 0;
  virtual Result<std::vector<MetricSample>> UnpushedMetricSamples(int limit) = 0;  // oldest first
  virtual Status MarkMetricSamplesPushed(const std::vector<int64_t>& ids) = 0;
  // InsertMetricSample also adds each rented GPU's sample to its rental's running totals;
  // this reads them (all GPUs of the rental together). No sample yet: samples 0, no values.
  virtual Result<domain::RentalMetering> RentalMeteringOf(const std::string& deployment_id) = 0;
  virtual Result<int64_t> InsertHealthReport(const HealthReport& r,
                                             const std::vector<GpuHealthRow>& gpus) = 0;
  virtual Result<std::optional<HealthReport>> LatestHealthReport() = 0;
  virtual Result<std::vector<HealthReport>> UnpushedHealthReports(int limit) = 0;
  virtual Status MarkHealthReportsPushed(const std::vector<int64_t>& ids) = 0;

  // --- retention: deletes pushed metrics/health older than the given ages, delivered events
  // and done commands older than theirs, in batches of `batch_rows` parent rows (with their
  // per-GPU rows), each batch its own short transaction, at most `max_batches` per table and
  // call. A day count <= 0 keeps that table forever.
  struct PruneLimits {
    int metrics_days = 0;
    int health_days = 0;
    int events_days = 0;
    int commands_days = 0;
    int batch_rows = 5000;
    int max_batches = 200;
  };
  struct PruneResult {
    int64_t rows = 0;   // rows deleted, per-GPU rows included
    bool more = false;  // a table stopped at max_batches: call again soon
  };
  virtual Result<PruneResult> Prune(const PruneLimits& limits) = 0;
};

}  // namespace taolie::store
