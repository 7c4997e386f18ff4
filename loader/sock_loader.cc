#include "loader/sock_loader.h"

// clang-format off: the skeleton names struct xlb_config without defining it
#include "maps/xlb_abi.h"
#include "xlb_sock.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "loader/libbpf_opts.h"
#include "loader/log.h"
#include "loader/xdp_loader.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace xlb {
namespace {

struct Hook {
  bpf_program* prog;
  bpf_attach_type type;
  const char* pin;
};

std::vector<Hook> Hooks(const xlb_sock* skel) {
  return {
      {skel->progs.xlb_sock_connect4, BPF_CGROUP_INET4_CONNECT, XLB_LINK_SOCK_CONNECT4},
      {skel->progs.xlb_sock_connect6, BPF_CGROUP_INET6_CONNECT, XLB_LINK_SOCK_CONNECT6},
      {skel->progs.xlb_sock_sendmsg4, BPF_CGROUP_UDP4_SENDMSG, XLB_LINK_SOCK_SENDMSG4},
      {skel->progs.xlb_sock_sendmsg6, BPF_CGROUP_UDP6_SENDMSG, XLB_LINK_SOCK_SENDMSG6},
      {skel->progs.xlb_sock_recvmsg4, BPF_CGROUP_UDP4_RECVMSG, XLB_LINK_SOCK_RECVMSG4},
      {skel->progs.xlb_sock_recvmsg6, BPF_CGROUP_UDP6_RECVMSG, XLB_LINK_SOCK_RECVMSG6},
      {skel->progs.xlb_sock_getpeername4, BPF_CGROUP_INET4_GETPEERNAME, XLB_LINK_SOCK_PEER4},
      {skel->progs.xlb_sock_getpeername6, BPF_CGROUP_INET6_GETPEERNAME, XLB_LINK_SOCK_PEER6},
  };
}

// A pinned link a previous agent left, when it is a link of this hook on this cgroup (then
// its program is swapped for ours); otherwise its pin is removed and the link goes with it.
Result<UniqueFd> AdoptPinnedLink(const std::string& path, bpf_attach_type type,
                                 uint64_t cgroup_id) {
  int fd = bpf_obj_get(path.c_str());
  if (fd == -ENOENT) {
    return UniqueFd();
  }
  if (fd < 0) {
    return Error::FromRet(fd, "open pinned link " + path);
  }
  UniqueFd link(fd);
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(link.get(), &info, &len);
  if (ret == 0 && info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.attach_type == type &&
      info.cgroup.cgroup_id == cgroup_id) {
    return link;
  }
  Log(LogLevel::kInfo, path + " is no longer this hook's link on this cgroup: replaced");
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    int err = errno;
    return Error::FromErrno(err, "unlink " + path);
  }
  return UniqueFd();
}

}  // namespace

Result<uint64_t> CurrentNetnsCookie() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    sock.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  }
  if (!sock.valid()) {
    int err = errno;
    return Error::FromErrno(err, "socket() for SO_NETNS_COOKIE");
  }
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0) {
    int err = errno;
    return Error::FromErrno(err, "getsockopt(SO_NETNS_COOKIE) (Linux 5.14 or later)");
  }
  return cookie;
}

bool IsCgroup2(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

Result<std::string> FindCgroup2() {
  for (const char* path : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (IsCgroup2(path)) {
      return std::string(path);
    }
  }
  return Error{ENOENT,
               "no cgroup v2 at /sys/fs/cgroup or /sys/fs/cgroup/unified (mount -t cgroup2 none "
               "/sys/fs/cgroup)"};
}

Result<void> SockAttachment::Detach() {
  for (size_t i = 0; i < links_.size(); ++i) {
    if (!pins_[i].empty() && ::unlink(pins_[i].c_str()) < 0 && errno != ENOENT) {
      int err = errno;
      return Error::FromErrno(err, "unlink " + pins_[i]);
    }
    links_[i].reset();
  }
  links_.clear();
  pins_.clear();
  return {};
}

Result<std::unique_ptr<SockDatapath>> SockDatapath::Load(const XdpDatapath& xdp,
                                                         uint64_t netns_cookie) {
  xlb_sock* raw = xlb_sock__open();
  if (raw == nullptr) {
    int err = errno;
    return Error::FromErrno(err, "open xlb_sock skeleton");
  }
  std::unique_ptr<SockDatapath> dp(new SockDatapath(raw, netns_cookie));
  xlb_sock* skel = dp->skel_;
  skel->rodata->xlb_cfg = xdp.options().config;
  skel->rodata->xlb_sock_cfg.netns_cookie = netns_cookie;

  const std::string& pin_dir = xdp.options().pin_dir;
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) {
      continue;
    }
    const std::string name = bpf_map__name(map);
    const int fd = xdp.map_fd(name);
    if (fd >= 0) {
      // No pin path: libbpf would otherwise open the pin and ignore the fd handed over.
      if (int ret = bpf_map__set_pin_path(map, nullptr); ret < 0) {
        return Error::FromRet(ret, "bpf_map__set_pin_path(" + name + ", none)");
      }
      if (int ret = bpf_map__reuse_fd(map, fd); ret < 0) {
        return Error::FromRet(ret, "bpf_map__reuse_fd(" + name + ")");
      }
      continue;
    }
    if (bpf_map__pin_path(map) == nullptr) {
      continue;  // per program (the node's addresses): the agent writes it after load
    }
    // The reverse map: kept across restarts beside xlb_xdp's maps, so that a UDP socket's
    // answers still show the VIP after the agent was replaced.
    const std::string path = pin_dir + "/" + name;
    if (int ret = bpf_map__set_pin_path(map, pin_dir.empty() ? nullptr : path.c_str()); ret < 0) {
      return Error::FromRet(ret, "bpf_map__set_pin_path(" + name + ")");
    }
  }
  if (int ret = xlb_sock__load(skel); ret < 0) {
    return Error::FromRet(ret, "load xlb_sock (programs and reverse map; libbpf logged why)");
  }
  return dp;
}

SockDatapath::~SockDatapath() {
  xlb_sock__destroy(skel_);
}

Result<void> SockDatapath::SetNode(const xlb_sock_node& node) const {
  const uint32_t zero = 0;
  int ret = bpf_map_update_elem(bpf_map__fd(skel_->maps.xlb_sock_node), &zero, &node, BPF_ANY);
  if (ret < 0) {
    return Error::FromRet(ret, "write the node's addresses into xlb_sock_node");
  }
  return {};
}

TypedMap<xlb_sock_rev_key, xlb_sock_rev> SockDatapath::reverse() const {
  return {bpf_map__fd(skel_->maps.xlb_sockrev_v1), XLB_MAP_SOCK_REV};
}

Result<bool> SockDatapath::RepinReverse(const std::string& pin_dir) const {
  return RepinIfGone(pin_dir, XLB_MAP_SOCK_REV, bpf_map__fd(skel_->maps.xlb_sockrev_v1));
}

Result<std::vector<std::string>> SockAttachment::Repin() const {
  std::vector<std::string> pinned;
  for (size_t i = 0; i < links_.size(); ++i) {
    if (pins_[i].empty()) {
      continue;
    }
    const std::filesystem::path pin(pins_[i]);
    const std::string name = pin.filename();
    auto done = RepinIfGone(pin.parent_path(), name.c_str(), links_[i].get());
    if (!done.ok()) {
      return std::move(done).take_error();
    }
    if (*done) {
      pinned.push_back(name);
    }
  }
  return pinned;
}

Result<SockAttachment> SockDatapath::Attach(const std::string& cgroup,
                                            const std::string& pin_dir) const {
  if (!IsCgroup2(cgroup)) {
    return Error{ENOTSUP, cgroup + " is not a cgroup v2 directory"};
  }
  struct stat st {};
  if (::stat(cgroup.c_str(), &st) < 0) {
    int err = errno;
    return Error::FromErrno(err, "stat " + cgroup);
  }
  UniqueFd cg(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) {
    int err = errno;
    return Error::FromErrno(err, "open " + cgroup);
  }
  SockAttachment a;
  a.cgroup_ = cgroup;
  // A failure half-way leaves the links pinned so far in place (and translating); the next
  // Attach() with this pin directory takes them over.
  for (const Hook& h : Hooks(skel_)) {
    const std::string name = bpf_program__name(h.prog);
    const int prog = bpf_program__fd(h.prog);
    const std::string pin = pin_dir.empty() ? "" : pin_dir + "/" + h.pin;
    UniqueFd link;
    if (!pin.empty()) {
      // On a cgroup v2 directory, the inode number is the cgroup id.
      XLB_ASSIGN_OR_RETURN(link, AdoptPinnedLink(pin, h.type, st.st_ino));
    }
    if (link.valid()) {
      if (int ret = bpf_link_update(link.get(), prog, nullptr); ret < 0) {
        return Error::FromRet(ret, "bpf_link_update(" + pin + ", " + name + ")");
      }
      ++a.reused_;
    } else {
      int fd = bpf_link_create(prog, cg.get(), h.type, nullptr);
      if (fd < 0) {
        return Error::FromRet(fd, "attach " + name + " to cgroup " + cgroup);
      }
      link.reset(fd);
      if (!pin.empty()) {
        if (int ret = bpf_obj_pin(link.get(), pin.c_str()); ret < 0) {
          return Error::FromRet(ret, "pin link of " + name + " at " + pin);
        }
      }
    }
    a.links_.push_back(std::move(link));
    a.pins_.push_back(pin);
  }
  return a;
}

}  // namespace xlb
