#pragma once
// TelemetryStore fake: RentalMeteringOf answers what a test put in `metering` (the fake takes
// no samples); metrics, health reports and retention are not the rental engine's business:
// those calls fail the test unless a test overrides them.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_store_tables.h"
#include "store/telemetry_store.h"

namespace taolie::testing {

class FakeTelemetryStore : public virtual FakeStoreTables, public virtual store::TelemetryStore {
 public:
  Result<int64_t> InsertMetricSample(const domain::MetricSample&) override {
    return Unexpected("InsertMetricSample");
  }
  Result<std::vector<domain::MetricSample>> UnpushedMetricSamples(int) override {
    return Unexpected("UnpushedMetricSamples");
  }
  Status MarkMetricSamplesPushed(const std::vector<int64_t>&) override {
    return Unexpected("MarkMetricSamplesPushed");
  }
  // What a test put in `metering` (the fake takes no samples); none: nothing metered.
  Result<domain::RentalMetering> RentalMeteringOf(const std::string& deployment_id) override {
    std::lock_guard l(mu_);
    TAOLIE_RETURN_IF_ERROR(Up());
    auto it = metering.find(deployment_id);
    return it == metering.end() ? domain::RentalMetering{} : it->second;
  }
  Result<int64_t> InsertHealthReport(const domain::HealthReport&,
                                     const std::vector<domain::GpuHealthRow>&) override {
    return Unexpected("InsertHealthReport");
  }
  Result<std::optional<domain::HealthReport>> LatestHealthReport() override {
    return Unexpected("LatestHealthReport");
  }
  Result<std::vector<domain::HealthReport>> UnpushedHealthReports(int) override {
    return Unexpected("UnpushedHealthReports");
  }
  Status MarkHealthReportsPushed(const std::vector<int64_t>&) override {
    return Unexpected("MarkHealthReportsPushed");
  }
  Result<PruneResult> Prune(const PruneLimits&) override { return Unexpected("Prune"); }
};

}  // namespace taolie::testing
