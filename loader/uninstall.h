// Removing xlb from a node (xlbctl uninstall): every xlb program detached from every interface
// of the calling thread's network namespace, the socket LB links under the pin dir detached,
// and everything pinned there removed. What the agent leaves behind on purpose (programs
// attached, maps and links pinned: the datapath outlives the agent) goes with it, so that a
// node without the agent has no stale service table steering its traffic.
#ifndef XLB_LOADER_UNINSTALL_H
#define XLB_LOADER_UNINSTALL_H

#include <cstdint>
#include <string>
#include <vector>

#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "util/result.h"

namespace xlb {

struct DetachedXdp {
  std::string ifname;
  XdpMode mode = XdpMode::kNative;
  uint32_t prog_id = 0;
};

struct DetachedTc {
  std::string ifname;
  TcDirection direction = TcDirection::kIngress;
  uint32_t prog_id = 0;
};

// A bpf link pinned under the pin dir (socket LB's, one per cgroup hook), detached even while
// an agent still holds it.
struct DetachedLink {
  std::string pin;  // its pinned name, "xlb_sk_conn4_v1"
  uint32_t prog_id = 0;
  uint64_t cgroup_id = 0;  // the inode number of the cgroup v2 directory it was attached to
};

struct Uninstalled {
  std::vector<DetachedXdp> xdp;
  std::vector<DetachedTc> tc;
  std::vector<DetachedLink> links;
  std::vector<std::string> pins;  // names removed from the pin dir
  bool removed_pin_dir = false;
  // What was not xlb's (another XDP program on an interface, a TC filter at xlb's handle that
  // runs something else, a subdirectory of the pin dir): left in place, said why.
  std::vector<std::string> left;
  // What could not be removed; the rest was still tried.
  std::vector<Error> failures;

  bool nothing_found() const {
    return xdp.empty() && tc.empty() && links.empty() && pins.empty() && !removed_pin_dir;
  }
};

// Detaches xlb_xdp (any mode), xlb_tc (clsact ingress) and xlb_tc_egress (clsact egress) from
// every interface of this network namespace, then every bpf link pinned under pin_dir
// (BPF_LINK_DETACH), then removes every pin under pin_dir and pin_dir itself. Programs are
// xlb's by name, so this also clears what an earlier xlb left after its pins were removed.
// When a program cannot be detached (or read: that needs CAP_SYS_ADMIN), the pins stay, so
// that nothing runs on maps nobody can reach. Whatever was not there is fine: a second run
// finds nothing. Refuses a pin_dir that is bpffs's own mount point (emptying it would unpin
// every other program's objects).
Result<Uninstalled> Uninstall(const std::string& pin_dir);

}  // namespace xlb

#endif  // XLB_LOADER_UNINSTALL_H
