// What the agent asks rtnetlink (NETLINK_ROUTE) about this node's interfaces, without shelling
// out to `ip`:
//   - link events, so that a pod's veth gets xlb_tc the moment it appears (LinkEventSocket);
//   - links, addresses and routes, from which `--uplink auto` picks the uplinks (ReadNetwork,
//     ChooseUplinks).
#ifndef XLB_USERSPACE_AGENT_RTNETLINK_H
#define XLB_USERSPACE_AGENT_RTNETLINK_H

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "loader/fd.h"
#include "userspace/model/ip_address.h"
#include "util/result.h"

namespace xlb {

// RTM_NEWLINK (an interface appeared, or changed: flags, name, netns) or RTM_DELLINK.
struct LinkEvent {
  bool removed = false;
  int ifindex = 0;
  std::string name;  // IFLA_IFNAME; empty when the message had none
};

// A NETLINK_ROUTE socket subscribed to RTMGRP_LINK, non-blocking: poll() its fd, then Read().
// Open it before listing the interfaces, so that nothing created in between is missed.
class LinkEventSocket {
 public:
  static Result<LinkEventSocket> Open();

  int fd() const { return fd_.get(); }

  struct Batch {
    std::vector<LinkEvent> events;
    // The kernel dropped events (ENOBUFS: the socket's buffer was full); the caller must list
    // the interfaces again to learn what it missed.
    bool overflowed = false;
  };
  // Everything pending now; an empty batch when nothing is.
  Result<Batch> Read();

 private:
  UniqueFd fd_;
};

// The parts of the node's network that say which interfaces are uplinks.
struct InterfaceInfo {
  int ifindex = 0;
  std::string name;
  bool loopback = false;
  std::vector<IpAddress> addresses;
};
struct RouteInfo {
  IpFamily family = IpFamily::kIPv4;
  uint8_t prefix_len = 0;  // 0: a default route
  bool via_gateway = false;
  std::vector<int> ifindexes;  // RTA_OIF, or every nexthop's of a multipath route
};
struct NetworkView {
  std::vector<InterfaceInfo> interfaces;
  std::vector<RouteInfo> routes;  // unicast routes of the main table
};

// Dumps links, addresses and the main table's unicast routes of both families (of the calling
// thread's network namespace).
Result<NetworkView> ReadNetwork();

// Where the main table sends packets to an address: the interface, and the neighbour on it
// (the gateway, or the address itself on a directly connected network).
struct NextHop {
  int ifindex = 0;
  IpAddress neighbour;
  bool local = false;  // the destination is an address of this node: no neighbour at all
};
Result<NextHop> RouteTo(const IpAddress& destination);

// A neighbour entry the kernel resolves and keeps resolved (NTF_EXT_MANAGED, Linux >= 5.16; as
// `ip neigh add ADDR dev DEV managed`): bpf_fib_lookup then finds the next hop of a tunnel
// peer from the first packet on, instead of handing the packet to the stack to resolve it.
// An entry that exists already (managed or learnt) is left as it is. Needs CAP_NET_ADMIN only.
Result<void> AddManagedNeighbour(const NextHop& hop);

// The interfaces that take XDP frames redirected to them now (netdev xdp-features NDO_XMIT,
// through the netdev generic netlink family, Linux >= 6.3). A veth has it only while its peer
// runs NAPI (an XDP program or GRO on the peer); an XDP_REDIRECT to one without it is dropped.
Result<std::set<int>> XdpRedirectTargets();

struct UplinkChoice {
  std::vector<std::string> names;  // by ifindex
  std::string reason;              // why these, for the log
};

// `--uplink auto`. The uplinks are the interfaces through which this node reaches the rest of
// the network, plus those holding a node address (NodePorts are served on each):
//   1. every interface that carries a default route (IPv4 or IPv6; each nexthop of a multipath
//      route), or, only where there is no default route at all (an isolated network such as
//      the test network), every interface that carries a route through a gateway;
//   2. every interface holding one of `node_addrs`.
// Loopback and the pod interfaces (names matching `pod_globs`) are never uplinks: a pod veth
// holds a gateway address and direct routes to its pod, but nothing through a gateway.
UplinkChoice ChooseUplinks(const NetworkView& view, const std::vector<IpAddress>& node_addrs,
                           const std::vector<std::string>& pod_globs);

// Whether `name` matches one of the fnmatch(3) globs.
bool MatchesAny(const std::vector<std::string>& globs, const std::string& name);

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_RTNETLINK_H
