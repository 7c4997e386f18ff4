// A unique directory under /tmp for one test, removed with everything in it when the test
// ends (also when it fails).
#ifndef XLB_TESTS_KUBE_CLIENT_TEMP_DIR_H
#define XLB_TESTS_KUBE_CLIENT_TEMP_DIR_H

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace xlb::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/xlb-kube-client-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name` (atomically: a temp file renamed over it, as the kubelet does), with
  // `mode`; returns the path.
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const std::string target = File(name);
    const std::string tmp = target + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
      if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    ::chmod(tmp.c_str(), mode);
    std::filesystem::rename(tmp, target);
    return target;
  }

 private:
  std::string path_;
};

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_CLIENT_TEMP_DIR_H
