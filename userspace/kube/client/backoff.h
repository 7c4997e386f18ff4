// Exponential back-off with jitter between attempts to reach an API server: the first wait is
// `initial`, each next one `multiplier` times longer up to `max`, and each is spread by up to
// ±`jitter` of itself so that the agents of a whole cluster, cut off together, do not come
// back together (client-go's wait.Backoff does the same).
#ifndef XLB_USERSPACE_KUBE_CLIENT_BACKOFF_H
#define XLB_USERSPACE_KUBE_CLIENT_BACKOFF_H

#include <chrono>
#include <cstdint>
#include <random>

namespace xlb::kube {

struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30000};
  double multiplier = 2.0;
  double jitter = 0.2;  // 0 .. 1
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy, uint64_t seed = std::random_device{}())
      : policy_(policy), rng_(seed) {}

  // The wait before the next attempt; every call makes the following one longer.
  std::chrono::milliseconds Next();
  // Back to `initial` (after a success).
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_BACKOFF_H
