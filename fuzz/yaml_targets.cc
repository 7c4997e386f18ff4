// libFuzzer targets for the operator's YAML files: the config (ParseConfig), the weight
// policies (ParsePolicies) and the KubeSources file. One source, three entry points, chosen at
// compile time (XLB_FUZZ_TARGET). Any result is fine; what must not happen is a crash, a
// sanitizer report, a hang (libFuzzer's -timeout) or unbounded memory (-rss_limit_mb).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "userspace/kube/source/kube_config.h"
#include "userspace/model/config_source.h"
#include "userspace/policy/policy_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
#if XLB_FUZZ_TARGET == 1
  (void)xlb::ParseConfig("cluster.yaml", text);
#elif XLB_FUZZ_TARGET == 2
  const std::vector<xlb::PolicyFile> files{{"policy.yaml", text}};
  (void)xlb::ParsePolicies(files);
#elif XLB_FUZZ_TARGET == 3
  (void)xlb::kube::ParseKubeSourcesConfig("kube-sources.yaml", text);
#else
#error "XLB_FUZZ_TARGET: 1 config, 2 policies, 3 KubeSources"
#endif
  return 0;
}
