#include "rules/disk_quota.h"

namespace taolie::rules {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

}  // namespace

DiskQuotaAction DecideDiskQuota(uint64_t used_bytes, int64_t quota_mb, bool warned) {
  if (quota_mb <= 0) return DiskQuotaAction::kNone;
  const auto quota = static_cast<double>(static_cast<uint64_t>(quota_mb) * kMiB);
  const auto used = static_cast<double>(used_bytes);
  if (used >= quota) return DiskQuotaAction::kEnd;
  if (!warned && used >= quota * kDiskQuotaWarnShare) return DiskQuotaAction::kWarn;
  return DiskQuotaAction::kNone;
}

std::string DiskQuotaWarning(uint64_t used_bytes, int64_t quota_mb) {
  return "TAOLIE: this rental uses " + std::to_string(used_bytes / kMiB) + " MiB of its " +
         std::to_string(quota_mb) +
         " MiB disk quota (container files and volumes). It is ended when the quota is "
         "reached: free space now.";
}

}  // namespace taolie::rules
