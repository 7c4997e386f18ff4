// Small helpers the configuration readers share.
#ifndef XLB_USERSPACE_KUBE_CLIENT_TEXT_UTIL_H
#define XLB_USERSPACE_KUBE_CLIENT_TEXT_UTIL_H

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "userspace/kube/client/kube_error.h"

namespace xlb::kube {

// The whole file; the error names `what` and the path ("ca.crt /x/ca.crt: cannot read: ...").
// Kubeconfigs, tokens, certificates and the service account's files are far smaller; a larger
// file (or /dev/zero) is an error.
inline constexpr size_t kMaxCredentialFileBytes = 16 << 20;
KubeResult<std::string> ReadFileText(const std::string& path, const std::string& what);

// Standard base64 (kubeconfig *-data fields); whitespace is skipped. nullopt when malformed.
std::optional<std::string> Base64Decode(std::string_view text);

std::string TrimWhitespace(std::string_view text);

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_TEXT_UTIL_H
