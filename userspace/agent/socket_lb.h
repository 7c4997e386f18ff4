// Socket-level load balancing for the node's own network namespace (loader/sock_loader.h): the
// kubelet, hostNetwork pods and the agent reach ClusterIPs and NodePorts (on the node's
// addresses and on loopback) without kube-proxy, as Cilium's kube-proxy replacement does.
// xlb_xdp and xlb_tc cannot serve them: what the host sends passes neither the uplink's
// ingress nor a pod veth's.
#ifndef XLB_USERSPACE_AGENT_SOCKET_LB_H
#define XLB_USERSPACE_AGENT_SOCKET_LB_H

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loader/log.h"
#include "loader/sock_loader.h"
#include "userspace/model/ip_address.h"
#include "util/result.h"

namespace xlb {

class XdpDatapath;

// --socket-lb and --cgroup.
struct SocketLbOptions {
  enum class Mode {
    kDefault,  // on where the node has cgroup v2; without it, logged and left off
    kOn,       // --socket-lb on: no cgroup v2 fails start-up
    kOff,      // --socket-lb off
  };
  Mode mode = Mode::kDefault;
  // --cgroup PATH: the cgroup v2 directory the programs go on. Empty: where cgroup v2 is
  // mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a systemd hybrid layout); its root
  // covers every process of the node.
  std::string cgroup;
};

using SocketLbLogFn = std::function<void(LogLevel, const std::string&)>;

// Where socket LB goes, decided before anything is loaded (a bad --cgroup costs nothing):
// --cgroup as given (an error unless it is cgroup v2), else the cgroup v2 mount. Empty when it
// is off, or defaulted on where the node has no cgroup v2 (logged); `--socket-lb on` without
// cgroup v2 is an error.
Result<std::optional<std::string>> ResolveSocketLbCgroup(const SocketLbOptions& options,
                                                         const SocketLbLogFn& log);

class SocketLb {
 public:
  // Loads xlb_sock against xdp's maps for the calling thread's network namespace and attaches
  // it to the cgroup v2 directory `cgroup` (links pinned in xdp's pin directory: they stay
  // when the agent goes, and the next agent swaps its programs in), the node's addresses
  // written first.
  static Result<std::unique_ptr<SocketLb>> Start(const XdpDatapath& xdp, const std::string& cgroup,
                                                 const std::vector<IpAddress>& node_addresses,
                                                 const SocketLbLogFn& log);

  // The node's addresses (the first of each family): a NodePort reached through 127.0.0.1 or
  // ::1 is the one on that address. Written only when they changed.
  Result<void> SetNodeAddresses(const std::vector<IpAddress>& addresses);

  // Pins the reverse map and the links again where their pins are gone (see
  // XdpDatapath::Repin): the names pinned again.
  Result<std::vector<std::string>> Repin(const std::string& pin_dir) const;

  const SockAttachment& attachment() const { return attachment_; }

 private:
  explicit SocketLb(std::unique_ptr<SockDatapath> dp) : dp_(std::move(dp)) {}
  std::unique_ptr<SockDatapath> dp_;
  SockAttachment attachment_;
  std::vector<IpAddress> addresses_;
  bool addresses_written_ = false;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_SOCKET_LB_H
