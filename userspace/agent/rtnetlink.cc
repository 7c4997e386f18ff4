#include "userspace/agent/rtnetlink.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <linux/genetlink.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace xlb {
namespace {

// Big enough for any one message a dump or an event brings (the kernel sizes dump chunks
// to the reader's buffer, up to 32 KiB).
constexpr size_t kReceiveBuffer = 64 * 1024;

// A burst of pods (a node draining onto this one) makes many link events at once; a larger
// socket buffer makes ENOBUFS rarer (the rescan still covers it).
constexpr int kEventSocketBuffer = 1 << 20;

Result<UniqueFd> RouteSocket(uint32_t groups, int extra_type_flags, int protocol = NETLINK_ROUTE) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | extra_type_flags, protocol));
  if (!fd) {
    return Error::FromErrno(errno, "socket(NETLINK " + std::to_string(protocol) + ")");
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
    return Error::FromErrno(errno, "bind(NETLINK_ROUTE)");
  }
  return fd;
}

// Calls `each` with every attribute of a message's payload after its fixed header.
void ForEachAttribute(const void* first, int length,
                      const std::function<void(const rtattr&, const void*, size_t)>& each) {
  for (auto* a = static_cast<const rtattr*>(first); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
    each(*a, RTA_DATA(a), RTA_PAYLOAD(a));
  }
}

std::string StringAttribute(const void* data, size_t size) {
  const auto* s = static_cast<const char*>(data);
  return std::string(s, strnlen(s, size));
}

std::optional<IpAddress> AddressAttribute(int family, const void* data, size_t size) {
  char text[INET6_ADDRSTRLEN];
  if ((family == AF_INET && size != 4) || (family == AF_INET6 && size != 16) ||
      ::inet_ntop(family, data, text, sizeof(text)) == nullptr) {
    return std::nullopt;
  }
  return IpAddress::Parse(text);
}

// RTM_NEWLINK/RTM_DELLINK -> LinkEvent.
LinkEvent ParseLink(const nlmsghdr& h) {
  LinkEvent e;
  e.removed = h.nlmsg_type == RTM_DELLINK;
  const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
  e.ifindex = info->ifi_index;
  ForEachAttribute(IFLA_RTA(info), static_cast<int>(IFLA_PAYLOAD(&h)),
                   [&](const rtattr& a, const void* data, size_t size) {
                     if (a.rta_type == IFLA_IFNAME) {
                       e.name = StringAttribute(data, size);
                     }
                   });
  return e;
}

// One request, NLM_F_ACK added: every answer to `each` until the end of a dump (NLMSG_DONE)
// or the acknowledgement, whose status (the kernel's errno) is the result.
Result<void> Transact(nlmsghdr& request, const std::string& what,
                      const std::function<void(const nlmsghdr&)>& each,
                      int protocol = NETLINK_ROUTE) {
  auto fd = RouteSocket(0, 0, protocol);
  if (!fd.ok()) {
    return std::move(fd).take_error();
  }
  request.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  request.nlmsg_seq = 1;
  if (::send(fd->get(), &request, request.nlmsg_len, 0) < 0) {
    return Error::FromErrno(errno, "send(" + what + ")");
  }
  std::vector<char> buf(kReceiveBuffer);
  for (;;) {
    const ssize_t n = ::recv(fd->get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error::FromErrno(errno, "recv(" + what + ")");
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        return {};
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (err->error == 0) {
          return {};
        }
        return Error::FromRet(err->error, what);
      }
      each(*h);
    }
  }
}

// One dump request (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE for `family`), every answer to
// `each` until NLMSG_DONE.
Result<void> Dump(uint16_t type, uint8_t family, const std::function<void(const nlmsghdr&)>& each) {
  // The family byte is the first of every rt*msg/if*msg header, so one request shape serves
  // all three dumps.
  struct {
    nlmsghdr h;
    rtgenmsg g;
  } request{};
  request.h.nlmsg_len = sizeof(request);
  request.h.nlmsg_type = type;
  request.h.nlmsg_flags = NLM_F_DUMP;
  request.g.rtgen_family = family;
  return Transact(request.h, "rtnetlink dump " + std::to_string(type), each);
}

// A request buffer: a header, the fixed message, then attributes.
template <typename Fixed>
struct Request {
  nlmsghdr h;
  Fixed fixed;
  char attrs[64];

  explicit Request(uint16_t type) : h{}, fixed{}, attrs{} {
    h.nlmsg_type = type;
    h.nlmsg_len = NLMSG_LENGTH(sizeof(Fixed));
  }
  void Add(uint16_t type, const void* data, size_t size) {
    auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(this) + NLMSG_ALIGN(h.nlmsg_len));
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(size));
    std::memcpy(RTA_DATA(a), data, size);
    h.nlmsg_len = NLMSG_ALIGN(h.nlmsg_len) + RTA_ALIGN(a->rta_len);
  }
};

int FamilyOf(const IpAddress& a) {
  return a.family() == IpFamily::kIPv4 ? AF_INET : AF_INET6;
}
size_t SizeOf(const IpAddress& a) {
  return a.family() == IpFamily::kIPv4 ? 4 : 16;
}

}  // namespace

Result<NextHop> RouteTo(const IpAddress& destination) {
  Request<rtmsg> request(RTM_GETROUTE);
  request.fixed.rtm_family = static_cast<uint8_t>(FamilyOf(destination));
  request.fixed.rtm_dst_len = static_cast<uint8_t>(SizeOf(destination) * 8);
  request.Add(RTA_DST, destination.bytes().data(), SizeOf(destination));
  NextHop hop;
  hop.neighbour = destination;
  const std::string what = "route to " + destination.ToString();
  XLB_TRY(Transact(request.h, what, [&](const nlmsghdr& h) {
    if (h.nlmsg_type != RTM_NEWROUTE) {
      return;
    }
    const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(&h));
    hop.local = rt->rtm_type == RTN_LOCAL;
    ForEachAttribute(RTM_RTA(rt), static_cast<int>(RTM_PAYLOAD(&h)),
                     [&](const rtattr& a, const void* data, size_t size) {
                       if (a.rta_type == RTA_OIF && size == sizeof(int)) {
                         std::memcpy(&hop.ifindex, data, sizeof(int));
                       } else if (a.rta_type == RTA_GATEWAY) {
                         if (auto gw = AddressAttribute(rt->rtm_family, data, size)) {
                           hop.neighbour = *gw;
                         }
                       }
                     });
  }));
  if (hop.ifindex == 0 && !hop.local) {
    return Error{ENETUNREACH, what + ": no interface"};
  }
  return hop;
}

Result<void> AddManagedNeighbour(const NextHop& hop) {
  Request<ndmsg> request(RTM_NEWNEIGH);
  request.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  request.fixed.ndm_family = static_cast<uint8_t>(FamilyOf(hop.neighbour));
  request.fixed.ndm_ifindex = hop.ifindex;
  request.fixed.ndm_state = NUD_NONE;
  request.Add(NDA_DST, hop.neighbour.bytes().data(), SizeOf(hop.neighbour));
  const uint32_t managed = NTF_EXT_MANAGED;
  request.Add(NDA_FLAGS_EXT, &managed, sizeof(managed));
  auto added = Transact(request.h, "managed neighbour " + hop.neighbour.ToString() + " on ifindex " +
                                       std::to_string(hop.ifindex),
                        [](const nlmsghdr&) {});
  if (!added.ok() && added.error().err == EEXIST) {
    return {};  // learnt or managed already: resolved, or being resolved
  }
  return added;
}

Result<LinkEventSocket> LinkEventSocket::Open() {
  auto fd = RouteSocket(RTMGRP_LINK, SOCK_NONBLOCK);
  if (!fd.ok()) {
    return std::move(fd).take_error();
  }
  // Best effort: the default buffer still works, with more ENOBUFS rescans under a burst.
  (void)::setsockopt(fd->get(), SOL_SOCKET, SO_RCVBUF, &kEventSocketBuffer,
                     sizeof(kEventSocketBuffer));
  LinkEventSocket s;
  s.fd_ = std::move(*fd);
  return s;
}

Result<LinkEventSocket::Batch> LinkEventSocket::Read() {
  Batch batch;
  std::vector<char> buf(kReceiveBuffer);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return batch;
      }
      if (errno == ENOBUFS) {  // events were lost; the socket goes on with the next ones
        batch.overflowed = true;
        continue;
      }
      return Error::FromErrno(errno, "recv(rtnetlink link events)");
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if ((h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK) &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg))) {
        batch.events.push_back(ParseLink(*h));
      }
    }
  }
}

Result<NetworkView> ReadNetwork() {
  NetworkView view;
  std::map<int, size_t> by_index;
  XLB_TRY(Dump(RTM_GETLINK, AF_UNSPEC, [&](const nlmsghdr& h) {
    if (h.nlmsg_type != RTM_NEWLINK || h.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) {
      return;
    }
    const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
    InterfaceInfo i;
    i.ifindex = info->ifi_index;
    i.name = ParseLink(h).name;
    i.loopback = (info->ifi_flags & IFF_LOOPBACK) != 0;
    by_index[i.ifindex] = view.interfaces.size();
    view.interfaces.push_back(std::move(i));
  }));
  for (uint8_t family : {AF_INET, AF_INET6}) {
    XLB_TRY(Dump(RTM_GETADDR, family, [&](const nlmsghdr& h) {
      if (h.nlmsg_type != RTM_NEWADDR || h.nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) {
        return;
      }
      const auto* info = static_cast<const ifaddrmsg*>(NLMSG_DATA(&h));
      auto it = by_index.find(static_cast<int>(info->ifa_index));
      if (it == by_index.end()) {
        return;
      }
      // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on a
      // point-to-point link); IPv6 sends only IFA_ADDRESS.
      std::optional<IpAddress> local, address;
      ForEachAttribute(IFA_RTA(info), static_cast<int>(IFA_PAYLOAD(&h)),
                       [&](const rtattr& a, const void* data, size_t size) {
                         if (a.rta_type == IFA_LOCAL) {
                           local = AddressAttribute(info->ifa_family, data, size);
                         } else if (a.rta_type == IFA_ADDRESS) {
                           address = AddressAttribute(info->ifa_family, data, size);
                         }
                       });
      if (local || address) {
        view.interfaces[it->second].addresses.push_back(local ? *local : *address);
      }
    }));
    XLB_TRY(Dump(RTM_GETROUTE, family, [&](const nlmsghdr& h) {
      if (h.nlmsg_type != RTM_NEWROUTE || h.nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) {
        return;
      }
      const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(&h));
      uint32_t table = rt->rtm_table;
      RouteInfo r;
      r.family = rt->rtm_family == AF_INET6 ? IpFamily::kIPv6 : IpFamily::kIPv4;
      r.prefix_len = rt->rtm_dst_len;
      ForEachAttribute(RTM_RTA(rt), static_cast<int>(RTM_PAYLOAD(&h)),
                       [&](const rtattr& a, const void* data, size_t size) {
                         switch (a.rta_type) {
                           case RTA_TABLE:
                             std::memcpy(&table, data, sizeof(table));
                             break;
                           case RTA_OIF: {
                             int oif = 0;
                             std::memcpy(&oif, data, sizeof(oif));
                             r.ifindexes.push_back(oif);
                             break;
                           }
                           case RTA_GATEWAY:
                           case RTA_VIA:
                             r.via_gateway = true;
                             break;
                           case RTA_MULTIPATH: {
                             auto* nh = static_cast<const rtnexthop*>(data);
                             int left = static_cast<int>(size);
                             while (left >= static_cast<int>(sizeof(rtnexthop)) &&
                                    nh->rtnh_len >= sizeof(rtnexthop) && nh->rtnh_len <= left) {
                               r.ifindexes.push_back(nh->rtnh_ifindex);
                               ForEachAttribute(RTNH_DATA(nh),
                                                nh->rtnh_len - static_cast<int>(sizeof(rtnexthop)),
                                                [&](const rtattr& na, const void*, size_t) {
                                                  r.via_gateway |= na.rta_type == RTA_GATEWAY ||
                                                                   na.rta_type == RTA_VIA;
                                                });
                               left -= RTNH_ALIGN(nh->rtnh_len);
                               nh = RTNH_NEXT(nh);
                             }
                             break;
                           }
                           default:
                             break;
                         }
                       });
      if (table == RT_TABLE_MAIN && rt->rtm_type == RTN_UNICAST) {
        view.routes.push_back(std::move(r));
      }
    }));
  }
  return view;
}

bool MatchesAny(const std::vector<std::string>& globs, const std::string& name) {
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& glob) {
    return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0;
  });
}

UplinkChoice ChooseUplinks(const NetworkView& view, const std::vector<IpAddress>& node_addrs,
                           const std::vector<std::string>& pod_globs) {
  std::map<int, const InterfaceInfo*> eligible;
  for (const InterfaceInfo& i : view.interfaces) {
    if (!i.loopback && !MatchesAny(pod_globs, i.name)) {
      eligible.emplace(i.ifindex, &i);
    }
  }
  auto route_interfaces = [&](const std::function<bool(const RouteInfo&)>& pick) {
    std::set<int> out;
    for (const RouteInfo& r : view.routes) {
      if (pick(r)) {
        for (int ifindex : r.ifindexes) {
          if (eligible.count(ifindex) != 0) {
            out.insert(ifindex);
          }
        }
      }
    }
    return out;
  };
  UplinkChoice choice;
  std::set<int> chosen = route_interfaces([](const RouteInfo& r) { return r.prefix_len == 0; });
  if (!chosen.empty()) {
    choice.reason = "default routes";
  } else {
    chosen = route_interfaces([](const RouteInfo& r) { return r.via_gateway; });
    choice.reason = "no default route; routes through a gateway";
  }
  bool by_address = false;
  for (const auto& [ifindex, i] : eligible) {
    for (const IpAddress& a : i->addresses) {
      if (std::find(node_addrs.begin(), node_addrs.end(), a) != node_addrs.end()) {
        by_address |= chosen.insert(ifindex).second;
      }
    }
  }
  if (by_address) {
    choice.reason += ", and node addresses";
  }
  for (int ifindex : chosen) {
    choice.names.push_back(eligible.at(ifindex)->name);
  }
  return choice;
}

// The netdev generic netlink family (include/uapi/linux/netdev.h, Linux >= 6.3; Debian 12's
// headers predate it).
namespace netdev {
constexpr uint8_t kCmdDevGet = 1;
constexpr uint16_t kAttrIfindex = 1;
constexpr uint16_t kAttrXdpFeatures = 3;
constexpr uint64_t kXdpActNdoXmit = 4;
}  // namespace netdev

namespace {

// A generic netlink request: header, genlmsghdr, then attributes.
struct GenlRequest {
  nlmsghdr h;
  genlmsghdr g;
  char attrs[64];

  GenlRequest(uint16_t type, uint8_t cmd, uint8_t version) : h{}, g{}, attrs{} {
    h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
    h.nlmsg_type = type;
    g.cmd = cmd;
    g.version = version;
  }
  // False when it does not fit.
  bool AddString(uint16_t type, std::string_view value) {
    if (NLMSG_ALIGN(h.nlmsg_len) + NLA_HDRLEN + value.size() + 1 > sizeof(*this)) {
      return false;
    }
    auto* a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(&h) + NLMSG_ALIGN(h.nlmsg_len));
    a->nla_type = type;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + value.size() + 1);
    std::memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, value.data(), value.size());
    reinterpret_cast<char*>(a)[NLA_HDRLEN + value.size()] = 0;
    h.nlmsg_len = NLMSG_ALIGN(h.nlmsg_len) + NLA_ALIGN(a->nla_len);
    return true;
  }
};

// The attributes of a generic netlink message (nlattr has rtattr's layout and alignment).
void ForEachGenlAttribute(const nlmsghdr& h,
                          const std::function<void(const rtattr&, const void*, size_t)>& each) {
  const auto* g = static_cast<const genlmsghdr*>(NLMSG_DATA(&h));
  const int length = static_cast<int>(h.nlmsg_len) - static_cast<int>(NLMSG_LENGTH(GENL_HDRLEN));
  ForEachAttribute(reinterpret_cast<const char*>(g) + GENL_HDRLEN, length, each);
}

Result<uint16_t> GenlFamilyId(std::string_view name) {
  GenlRequest request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 2);
  if (!request.AddString(CTRL_ATTR_FAMILY_NAME, name)) {
    return Error{EINVAL, "genl family name too long: " + std::string(name)};
  }
  uint16_t id = 0;
  auto done = Transact(
      request.h, "genl family " + std::string(name),
      [&](const nlmsghdr& h) {
        ForEachGenlAttribute(h, [&](const rtattr& a, const void* data, size_t size) {
          if (a.rta_type == CTRL_ATTR_FAMILY_ID && size == sizeof(uint16_t)) {
            std::memcpy(&id, data, sizeof(id));
          }
        });
      },
      NETLINK_GENERIC);
  if (!done.ok()) {
    return std::move(done).take_error();
  }
  if (id == 0) {
    return Error::FromErrno(ENOENT, "genl family " + std::string(name));
  }
  return id;
}

}  // namespace

Result<std::set<int>> XdpRedirectTargets() {
  auto family = GenlFamilyId("netdev");
  if (!family.ok()) {
    return std::move(family).take_error();
  }
  GenlRequest request(*family, netdev::kCmdDevGet, 1);
  request.h.nlmsg_flags = NLM_F_DUMP;
  std::set<int> targets;
  auto done = Transact(
      request.h, "netdev dev-get dump",
      [&](const nlmsghdr& h) {
        uint32_t ifindex = 0;
        uint64_t features = 0;
        ForEachGenlAttribute(h, [&](const rtattr& a, const void* data, size_t size) {
          if (a.rta_type == netdev::kAttrIfindex && size == sizeof(ifindex)) {
            std::memcpy(&ifindex, data, sizeof(ifindex));
          } else if (a.rta_type == netdev::kAttrXdpFeatures && size == sizeof(features)) {
            std::memcpy(&features, data, sizeof(features));
          }
        });
        if (ifindex != 0 && (features & netdev::kXdpActNdoXmit) != 0) {
          targets.insert(static_cast<int>(ifindex));
        }
      },
      NETLINK_GENERIC);
  if (!done.ok()) {
    return std::move(done).take_error();
  }
  return targets;
}

}  // namespace xlb
