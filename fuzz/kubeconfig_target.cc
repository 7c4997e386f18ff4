// libFuzzer target for kubeconfig files (KubeconfigConnection): the input is written to a
// file in a private directory and read as the kubeconfig. Inputs naming an exec plugin are
// skipped: reading them would run whatever command the mutation spelled.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "userspace/kube/client/cluster_connection.h"

namespace {

// A private directory for the file, removed when the fuzzer exits.
struct ScratchDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("xlb-fuzz-kubeconfig-" + std::to_string(::getpid()));
  std::string config = (dir / "config").string();
  ScratchDir() { std::filesystem::create_directories(dir); }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

const std::string& ConfigPath() {
  static const ScratchDir scratch;
  return scratch.config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("exec") != std::string_view::npos) {
    return -1;  // not added to the corpus
  }
  {
    std::ofstream out(ConfigPath(), std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  (void)xlb::kube::KubeconfigConnection(ConfigPath());
  return 0;
}
