#include "common/backoff.h"

#include <algorithm>

namespace taolie {

std::chrono::milliseconds Backoff::Ceiling(int attempt) const {
  long double v = static_cast<long double>(base_.count());
  for (int i = 0; i < attempt && v < cap_.count(); ++i) v *= 2;
  return std::chrono::milliseconds(static_cast<long long>(std::min<long double>(v, cap_.count())));
}

std::chrono::milliseconds Backoff::Next() {
  auto ceil = Ceiling(attempt_);
  ++attempt_;
  if (ceil.count() <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<long long> dist(0, ceil.count());
  return std::chrono::milliseconds(dist(rng_));
}

}  // namespace taolie
