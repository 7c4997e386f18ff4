// libbpf's *_opts structs for C++. LIBBPF_OPTS() is a GNU statement expression around a C
// compound literal, which -Wpedantic rejects in C++. This does what it does: all bytes of
// the object zero, then .sz. It works in place on purpose: libbpf rejects padding bytes
// that are not zero ("has non-zero extra bytes"), and a struct returned or copied by value
// need not carry its padding along (g++ -O2 indeed drops it).
#ifndef XLB_LOADER_LIBBPF_OPTS_H
#define XLB_LOADER_LIBBPF_OPTS_H

#include <cerrno>
#include <cstring>
#include <type_traits>

namespace xlb {

template <typename Opts>
void InitLibbpfOpts(Opts& opts) {
  static_assert(std::is_trivially_copyable_v<Opts>);
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
}

// The kernel's "no batch operations for this map type" (ENOTSUPP, which userspace headers do
// not define), and whether a batch call's return value says that: the caller then falls back
// to one call per element.
inline constexpr int kENOTSUPP = 524;
inline bool BatchUnsupported(int ret) {
  return ret == -kENOTSUPP || ret == -EOPNOTSUPP;
}

}  // namespace xlb

#endif  // XLB_LOADER_LIBBPF_OPTS_H
