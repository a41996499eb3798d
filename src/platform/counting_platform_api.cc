#include "platform/counting_platform_api.h"

namespace taolie::platform {

Result<Response> CountingPlatformApi::Send(Method method, const std::string& path,
                                           const std::string& body, std::stop_token stop) {
  Result<Response> r = inner_.Send(method, path, body, stop);
  const std::string request = RequestName(path);
  const std::string outcome = OutcomeName(r);
  std::lock_guard lock(mu_);
  ++counts_[{request, outcome}];
  return r;
}

std::vector<CountingPlatformApi::Count> CountingPlatformApi::Counts() const {
  std::lock_guard lock(mu_);
  std::vector<Count> out;
  out.reserve(counts_.size());
  for (const auto& [key, n] : counts_) out.push_back({key.first, key.second, n});
  return out;
}

std::string CountingPlatformApi::RequestName(const std::string& path) {
  std::string p = path.substr(0, path.find('?'));
  while (!p.empty() && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  std::string last = slash == std::string::npos ? p : p.substr(slash + 1);
  return last.empty() ? "other" : last;
}

std::string CountingPlatformApi::OutcomeName(const Result<Response>& r) {
  if (!r.ok()) return r.error().code == ErrorCode::kCancelled ? "cancelled" : "transport_error";
  if (r->status >= 200 && r->status < 300) return "success";
  if (r->status >= 400 && r->status < 500) return "client_error";
  return "server_error";
}

}  // namespace taolie::platform
