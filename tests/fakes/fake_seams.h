#pragma once
// Small hand-written fakes of the GPU, host, platform and readiness seams. Each answers what
// the test set and fails the test loudly on a call it was not set up for.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/readiness_probe.h"
#include "fakes/fake_clock.h"
#include "gpu/gpu_probe.h"
#include "host/host_probe.h"
#include "platform/platform_api.h"

namespace taolie::testing {

class FakeGpuProbe : public gpu::GpuProbe {
 public:
  bool available = true;
  std::vector<gpu::GpuSample> samples;  // what Sample() returns
  bool Available() const override { return available; }
  std::string UnavailableReason() const override { return available ? "" : "no driver"; }
  std::optional<gpu::DriverInfo> driver;          // what Driver() returns; unset: unexpected
  std::optional<std::vector<gpu::GpuInfo>> gpus;  // what ListGpus() returns; unset: unexpected
  Result<gpu::DriverInfo> Driver() override {
    if (driver) return *driver;
    return Unexpected("Driver");
  }
  Result<std::vector<gpu::GpuInfo>> ListGpus() override {
    if (gpus) return *gpus;
    return Unexpected("ListGpus");
  }
  Result<std::vector<gpu::GpuSample>> Sample() override {
    ++sample_calls;
    return samples;
  }
  Result<std::vector<gpu::XidEvent>> DrainXids() override { return Unexpected("DrainXids"); }
  std::atomic<int> sample_calls{0};

 private:
  static Error Unexpected(const char* what) {
    ADD_FAILURE() << "FakeGpuProbe: unexpected call to " << what;
    return Error{ErrorCode::kInternal, what};
  }
};

class FakeHostProbe : public host::HostProbe {
 public:
  host::HostFacts facts{.cpu_logical = 16, .ram_total_bytes = uint64_t{64} << 30};
  std::set<int> ports_in_use;
  std::set<std::pair<uint32_t, std::string>> container_pids;  // (pid, container id)
  std::string boot_id = "boot-1";
  Result<host::HostFacts> Facts() override { return facts; }
  Result<host::HostSample> Sample() override {
    ADD_FAILURE() << "FakeHostProbe: unexpected call to Sample";
    return Error{ErrorCode::kInternal, "Sample"};
  }
  bool PortInUse(int port) override { return ports_in_use.count(port) > 0; }
  bool ProcessInContainer(uint32_t pid, const std::string& container_id) override {
    return container_pids.count({pid, container_id}) > 0;
  }
  std::string BootId() override { return boot_id; }
  std::map<std::string, uint64_t> free_bytes;  // by path; a path not listed is unreadable
  Result<uint64_t> FreeBytes(const std::string& path) override {
    auto it = free_bytes.find(path);
    if (it == free_bytes.end()) return Error{ErrorCode::kUnavailable, "statvfs(" + path + ")"};
    return it->second;
  }
  std::map<std::string, uint64_t> tree_bytes;  // by path; a path not listed is unreadable
  Result<TreeUsage> TreeBytes(const std::string& path, size_t) override {
    auto it = tree_bytes.find(path);
    if (it == tree_bytes.end()) return Error{ErrorCode::kUnavailable, "lstat(" + path + ")"};
    return TreeUsage{it->second, false};
  }
};

// Fails every call: the rental engine never talks to the platform directly (the outbox does).
class StrictPlatformApi : public platform::PlatformApi {
 public:
  Result<platform::Response> Send(platform::Method, const std::string& path, const std::string&,
                                  std::stop_token) override {
    ADD_FAILURE() << "StrictPlatformApi: unexpected request to " << path;
    return Error{ErrorCode::kInternal, "unexpected"};
  }
};

// Ready after `probes_until_ready` rounds of probing (0 = at once; -1 = never).
class FakeReadinessProbe : public engine::ReadinessProbe {
 public:
  int probes_until_ready = 0;
  bool SshBanner(const std::string&, int) override { return Next(); }
  bool HttpAnswers(const std::string&, int) override { return Next(); }
  std::atomic<int> probes{0};

 private:
  bool Next() {
    int n = ++probes;
    return probes_until_ready >= 0 && n > probes_until_ready;
  }
};

}  // namespace taolie::testing
