// Errors of the watch client: what failed, said so that an operator can act on it
// ("kubeconfig /root/.kube/config: users[admin].user.client-key: cannot read key.pem: No such
// file or directory", "GET /api/v1/services: HTTP 403 Forbidden: services is forbidden ...").
// The client never throws across its interface; everything that can fail returns a KubeResult.
#ifndef XLB_USERSPACE_KUBE_CLIENT_KUBE_ERROR_H
#define XLB_USERSPACE_KUBE_CLIENT_KUBE_ERROR_H

#include <string>

#include "util/result.h"

namespace xlb::kube {

struct KubeError {
  std::string message;
  // The HTTP status when the server answered (401, 410, 500, ...); 0 when it did not
  // (connect, TLS, parse or configuration errors).
  int http_status = 0;
  // The server's Retry-After (429, 503): wait at least this long before the next attempt.
  int retry_after_seconds = 0;

  // The same error, said from one level up: "GET /api/v1/nodes: " + message.
  KubeError Within(const std::string& context) const {
    return KubeError{context + ": " + message, http_status, retry_after_seconds};
  }
};

// A value or the error that prevented it (util/result.h).
template <typename T>
using KubeResult = Result<T, KubeError>;

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_KUBE_ERROR_H
