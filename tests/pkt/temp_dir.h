// A uniquely named directory under $TMPDIR (or /tmp), removed with everything in it when
// the object goes away -- also when the test that owns it fails.
#ifndef XLB_TESTS_PKT_TEMP_DIR_H
#define XLB_TESTS_PKT_TEMP_DIR_H

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace xlb::pkt {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "xlb-pkt") {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name` atomically (a temporary file renamed over it, as the kubelet
  // updates a mounted Secret), with `mode`; returns the path.
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const std::string target = File(name);
    const std::string tmp = target + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
      if (!out) {
        throw std::runtime_error("cannot write " + tmp);
      }
    }
    ::chmod(tmp.c_str(), mode);
    std::filesystem::rename(tmp, target);
    return target;
  }

 private:
  std::string path_;
};

}  // namespace xlb::pkt

#endif  // XLB_TESTS_PKT_TEMP_DIR_H
