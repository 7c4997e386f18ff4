#include "userspace/agent/socket_lb.h"

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <utility>

#include "loader/xdp_loader.h"

namespace xlb {

Result<std::optional<std::string>> ResolveSocketLbCgroup(const SocketLbOptions& options,
                                                         const SocketLbLogFn& log) {
  if (options.mode == SocketLbOptions::Mode::kOff) {
    log(LogLevel::kInfo, "socket LB off (--socket-lb off): host-namespace clients reach no VIP");
    return std::optional<std::string>();
  }
  if (!options.cgroup.empty()) {
    if (!IsCgroup2(options.cgroup)) {
      return Error{ENOTSUP, "--cgroup " + options.cgroup + " is not a cgroup v2 directory"};
    }
    return std::optional<std::string>(options.cgroup);
  }
  auto found = FindCgroup2();
  if (found.ok()) {
    return std::optional<std::string>(std::move(*found));
  }
  if (options.mode == SocketLbOptions::Mode::kOn) {
    return Error{found.error().err, "--socket-lb on: " + found.error().what};
  }
  log(LogLevel::kWarn, "socket LB left off: " + found.error().ToString() +
                           "; host-namespace clients (kubelet, hostNetwork pods) reach no "
                           "ClusterIP and no NodePort of this node");
  return std::optional<std::string>();
}

Result<std::unique_ptr<SocketLb>> SocketLb::Start(const XdpDatapath& xdp, const std::string& cgroup,
                                                  const std::vector<IpAddress>& node_addresses,
                                                  const SocketLbLogFn& log) {
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

Result<std::vector<std::string>> SocketLb::Repin(const std::string& pin_dir) const {
  auto pinned = attachment_.Repin();
  if (!pinned.ok()) {
    return pinned;
  }
  auto reverse = dp_->RepinReverse(pin_dir);
  if (!reverse.ok()) {
    return std::move(reverse).take_error();
  }
  if (*reverse) {
    pinned->emplace_back(XLB_MAP_SOCK_REV);
  }
  return pinned;
}

}  // namespace xlb
