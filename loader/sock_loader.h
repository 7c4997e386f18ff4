// The socket side of the datapath: xlb_sock (bpf/xlb_sock.bpf.c), cgroup sock_addr programs
// that balance the sockets of the node's own network namespace at connect()/sendmsg() time
// and show them the VIP again at recvmsg()/getpeername(). It shares the services, backends,
// Maglev tables, VIP filter and counters with xlb_xdp, and adds its own reverse map.
#ifndef XLB_LOADER_SOCK_LOADER_H
#define XLB_LOADER_SOCK_LOADER_H

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loader/fd.h"
#include "maps/typed_map.h"
#include "maps/xlb_abi.h"
#include "util/result.h"

struct xlb_sock;  // generated skeleton (xlb_sock.skel.h)

namespace xlb {

class XdpDatapath;

// What xlb_sock pins in the pin directory besides xlb_xdp's maps: its reverse map and one
// cgroup link per hook (RemovePins() removes them too; a removed link pin detaches).
inline constexpr std::array<const char*, 9> kSockLbPins = {
    XLB_MAP_SOCK_REV,       XLB_LINK_SOCK_CONNECT4, XLB_LINK_SOCK_CONNECT6,
    XLB_LINK_SOCK_SENDMSG4, XLB_LINK_SOCK_SENDMSG6, XLB_LINK_SOCK_RECVMSG4,
    XLB_LINK_SOCK_RECVMSG6, XLB_LINK_SOCK_PEER4,    XLB_LINK_SOCK_PEER6,
};

// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE), which is what
// bpf_get_netns_cookie() gives the programs for a socket of that namespace.
Result<uint64_t> CurrentNetnsCookie();

// Whether path is the root of, or a directory in, a cgroup v2 hierarchy.
bool IsCgroup2(const std::string& path);

// Where cgroup v2 is mounted: /sys/fs/cgroup (unified), else /sys/fs/cgroup/unified (systemd's
// hybrid layout). ENOENT when neither is cgroup v2.
Result<std::string> FindCgroup2();

// xlb_sock's eight programs attached to one cgroup through bpf links (several agents may
// attach to the same cgroup: links are always multi-attach). The links' fds are owned here.
// Attached with a pin directory, the links are pinned there as well and outlive this object
// and the agent, like xlb_xdp's attachment: a new agent swaps its programs into them
// (BPF_LINK_UPDATE, no gap), and removing the pins (xlbctl unload, RemovePins) detaches them.
// Without a pin directory, destroying this object detaches them.
class SockAttachment {
 public:
  SockAttachment() = default;
  SockAttachment(SockAttachment&&) noexcept = default;
  SockAttachment& operator=(SockAttachment&&) noexcept = default;
  ~SockAttachment() = default;

  bool attached() const { return !links_.empty(); }
  const std::string& cgroup() const { return cgroup_; }
  // How many links were taken over from pins a previous agent left (updated in place).
  int reused_links() const { return reused_; }

  // Unpins (when pinned) and closes every link: the programs leave the cgroup now.
  Result<void> Detach();
  // Pins again every link whose pin is gone (RepinIfGone): the names pinned again.
  Result<std::vector<std::string>> Repin() const;

 private:
  friend class SockDatapath;
  std::string cgroup_;
  std::vector<std::string> pins_;  // pinned paths of the links, "" when not pinned
  std::vector<UniqueFd> links_;
  int reused_ = 0;
};

// The xlb_sock programs, loaded against the maps of a loaded XdpDatapath.
class SockDatapath {
 public:
  // Re-uses every map of xdp by name, pins the reverse map beside them (xdp's pin
  // directory; none when it has none), and gives the programs xdp's xlb_config and the
  // network namespace whose sockets they translate.
  static Result<std::unique_ptr<SockDatapath>> Load(const XdpDatapath& xdp, uint64_t netns_cookie);
  ~SockDatapath();
  SockDatapath(const SockDatapath&) = delete;
  SockDatapath& operator=(const SockDatapath&) = delete;

  // The node's addresses of each family: loopback NodePorts are looked up under them.
  Result<void> SetNode(const xlb_sock_node& node) const;

  // Attaches the programs to the cgroup v2 directory cgroup. pin_dir: see SockAttachment.
  Result<SockAttachment> Attach(const std::string& cgroup, const std::string& pin_dir) const;

  TypedMap<xlb_sock_rev_key, xlb_sock_rev> reverse() const;
  // Pins the reverse map again in `pin_dir` if its pin is gone: true when it pinned.
  Result<bool> RepinReverse(const std::string& pin_dir) const;
  uint64_t netns_cookie() const { return netns_cookie_; }

 private:
  SockDatapath(xlb_sock* skel, uint64_t netns_cookie) : skel_(skel), netns_cookie_(netns_cookie) {}
  xlb_sock* skel_;
  uint64_t netns_cookie_;
};

}  // namespace xlb

#endif  // XLB_LOADER_SOCK_LOADER_H
