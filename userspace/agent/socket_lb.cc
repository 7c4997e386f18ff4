#include "userspace/agent/socket_lb.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "loader/xdp_loader.h"

namespace xlb {

Result<std::unique_ptr<SocketLb>> SocketLb::Start(const XdpDatapath& xdp,
                                                  const SocketLbOptions& options,
                                                  const std::vector<IpAddress>& node_addresses,
                                                  LogFn log) {
  if (options.mode == SocketLbOptions::Mode::kOff) {
    log(LogLevel::kInfo, "socket LB off (--socket-lb off): host-namespace clients reach no VIP");
    return std::unique_ptr<SocketLb>();
  }
  std::string cgroup = options.cgroup;
  if (cgroup.empty()) {
    auto found = FindCgroup2();
    if (!found.ok()) {
      if (options.mode == SocketLbOptions::Mode::kOn) {
        return std::move(found).take_error();
      }
      log(LogLevel::kWarn, "socket LB left off: " + found.error().ToString() +
                               "; host-namespace clients (kubelet, hostNetwork pods) reach no "
                               "ClusterIP and no NodePort of this node");
      return std::unique_ptr<SocketLb>();
    }
    cgroup = std::move(*found);
  }
  XLB_ASSIGN_OR_RETURN(const uint64_t cookie, CurrentNetnsCookie());
  XLB_ASSIGN_OR_RETURN(auto dp, SockDatapath::Load(xdp, cookie));
  std::unique_ptr<SocketLb> lb(new SocketLb(std::move(dp)));
  XLB_TRY(lb->SetNodeAddresses(node_addresses));
  XLB_ASSIGN_OR_RETURN(lb->attachment_, lb->dp_->Attach(cgroup, xdp.options().pin_dir));
  log(LogLevel::kInfo, "socket LB attached to cgroup " + cgroup + " for network namespace " +
                           std::to_string(cookie) + " (" +
                           std::to_string(lb->attachment_.reused_links()) +
                           " links taken over from a previous agent)");
  return lb;
}

Result<void> SocketLb::SetNodeAddresses(const std::vector<IpAddress>& addresses) {
  if (addresses_written_ && addresses == addresses_) {
    return {};
  }
  xlb_sock_node node{};
  bool have4 = false;
  bool have6 = false;
  for (const IpAddress& a : addresses) {
    uint32_t words[4];
    a.ToAbiWords(words);
    if (a.family() == IpFamily::kIPv4 && !have4) {
      node.addr4 = words[0];
      have4 = true;
    } else if (a.family() == IpFamily::kIPv6 && !have6) {
      std::copy(std::begin(words), std::end(words), node.addr6);
      have6 = true;
    }
  }
  XLB_TRY(dp_->SetNode(node));
  addresses_ = addresses;
  addresses_written_ = true;
  return {};
}

}  // namespace xlb
