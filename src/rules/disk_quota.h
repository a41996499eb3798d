#pragma once
// A rental's disk quota, enforced by measurement: its writable layer plus its bind volumes,
// read at most once per duration-monitor round. Pure: sizes in, what to do out.
#include <cstdint>
#include <string>

namespace taolie::rules {

enum class DiskQuotaAction {
  kNone,
  kWarn,  // at 90% of the quota (once per rental)
  kEnd,   // at 100%: ended with status "failed", reason "disk_quota"
};

inline constexpr double kDiskQuotaWarnShare = 0.9;
inline constexpr char kDiskQuotaReason[] = "disk_quota";

// quota_mb <= 0: no quota. `warned`: the rental has been warned already.
DiskQuotaAction DecideDiskQuota(uint64_t used_bytes, int64_t quota_mb, bool warned);

// What the renter reads inside the container at the warning.
std::string DiskQuotaWarning(uint64_t used_bytes, int64_t quota_mb);

}  // namespace taolie::rules
