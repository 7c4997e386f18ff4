#include "userspace/kube/client/backoff.h"

#include <algorithm>
#include <cmath>

namespace xlb::kube {

std::chrono::milliseconds Backoff::Next() {
  const double initial = static_cast<double>(std::max<int64_t>(policy_.initial.count(), 1));
  const double max = std::max(static_cast<double>(policy_.max.count()), initial);
  // Capped before it can overflow: after ~60 doublings every policy is at its max anyway.
  const int exponent = std::min(attempt_, 60);
  const double base =
      std::min(initial * std::pow(std::max(policy_.multiplier, 1.0), exponent), max);
  ++attempt_;
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> spread(-jitter, jitter);
  const double wait = std::clamp(base * (1.0 + spread(rng_)), 1.0, max);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(wait)));
}

}  // namespace xlb::kube
