// Reading an operator's file whole (configs, policies, kubeconfigs, tokens), with a bound: a
// path that names /dev/zero, a FIFO someone writes forever or a runaway log must give a clear
// error, not take the node's memory.
#ifndef XLB_UTIL_READ_FILE_H
#define XLB_UTIL_READ_FILE_H

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>

namespace xlb {

// The bytes of `path` when it has at most `max_bytes`; otherwise false, with `error` saying
// why ("cannot open: ...", "read failed", "larger than N bytes").
inline bool ReadFileUpTo(const std::string& path, size_t max_bytes, std::string& out,
                         std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  out.clear();
  char chunk[65536];
  while (in) {
    in.read(chunk, sizeof chunk);
    const size_t got = static_cast<size_t>(in.gcount());
    if (out.size() + got > max_bytes) {
      error = "larger than " + std::to_string(max_bytes) + " bytes";
      out.clear();
      return false;
    }
    out.append(chunk, got);
  }
  if (in.bad()) {
    error = "read failed";
    out.clear();
    return false;
  }
  return true;
}

}  // namespace xlb

#endif  // XLB_UTIL_READ_FILE_H
