#include "platform/platform_api.h"

namespace taolie::platform {

Disposition Classify(const Result<Response>& r, bool ext_endpoint) {
  if (!r.ok()) {
    switch (r.error().code) {
      case ErrorCode::kUnavailable:
      case ErrorCode::kDeadlineExceeded:
      case ErrorCode::kInternal:
        return Disposition::kRetry;  // connection errors, timeouts, transport trouble
      default:
        return Disposition::kPermanent;  // cancelled, bad request setup: retrying cannot help
    }
  }
  const long s = r->status;
  if (s >= 200 && s < 300) return Disposition::kSuccess;
  if (s == 408 || s == 429 || (s >= 500 && s < 600)) return Disposition::kRetry;
  if (ext_endpoint && (s == 404 || s == 405)) return Disposition::kUnsupported;
  return Disposition::kPermanent;
}

}  // namespace taolie::platform
