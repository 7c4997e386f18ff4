// Names of enum xlb_reason (maps/xlb_abi.h): the one table xlbctl, tests and the bench read.
#ifndef XLB_LOADER_REASONS_H
#define XLB_LOADER_REASONS_H

#include <array>
#include <cstdint>
#include <string_view>

#include "maps/xlb_abi.h"

namespace xlb {

enum class Verdict { kPass, kForward, kDrop };

struct ReasonInfo {
  xlb_reason reason;
  std::string_view name;         // stable identifier, as in metrics: "pass_not_ip"
  Verdict verdict;               // what the datapath did with the packet
  std::string_view description;  // for people
};

inline constexpr std::array<ReasonInfo, XLB_REASON_MAX> kReasons = {{
    {XLB_PASS_NOT_IP, "pass_not_ip", Verdict::kPass, "not IPv4/IPv6"},
    {XLB_PASS_NO_SERVICE, "pass_no_service", Verdict::kPass, "not to a VIP/port xlb serves"},
    {XLB_PASS_NOT_L4, "pass_not_l4", Verdict::kPass, "IP protocol xlb does not balance"},
    {XLB_PASS_FRAGMENT, "pass_fragment", Verdict::kPass, "IP fragment"},
    {XLB_PASS_ICMP, "pass_icmp", Verdict::kPass, "ICMP of no tracked flow"},
    {XLB_PASS_MALFORMED_L2, "pass_malformed_l2", Verdict::kPass,
     "frame too short for Ethernet/VLAN"},
    {XLB_PASS_MALFORMED_L3, "pass_malformed_l3", Verdict::kPass, "bad IP header or length"},
    {XLB_PASS_MALFORMED_L4, "pass_malformed_l4", Verdict::kPass, "L4 header too short for ports"},
    {XLB_PASS_UNSUPPORTED, "pass_unsupported", Verdict::kPass,
     "too many VLAN tags or IPv6 extension headers"},
    {XLB_PASS_TUNNEL_MALFORMED, "pass_tunnel_malformed", Verdict::kPass,
     "to the tunnel port, with a bad UDP, VXLAN or inner header"},
    {XLB_PASS_TUNNEL_FOREIGN, "pass_tunnel_foreign", Verdict::kPass,
     "to the tunnel port, but another VNI/flags or a non-IP inner frame"},
    {XLB_PASS_ENCAP_KERNEL, "pass_encap_kernel", Verdict::kPass,
     "encapsulated; the kernel resolves the next hop and sends it"},
    {XLB_PASS_REPLY_KERNEL, "pass_reply_kernel", Verdict::kPass,
     "answer reverse-NATed; the kernel resolves the next hop and sends it"},
    {XLB_PASS_SNAT_KERNEL, "pass_snat_kernel", Verdict::kPass,
     "DNATed and SNATed to this node; the kernel resolves the next hop and sends it"},
    {XLB_FWD_NEW_FLOW, "fwd_new_flow", Verdict::kForward, "new flow, backend chosen by Maglev"},
    {XLB_FWD_ESTABLISHED, "fwd_established", Verdict::kForward, "conntrack hit"},
    {XLB_FWD_ICMP_ERROR, "fwd_icmp_error", Verdict::kForward,
     "ICMP error of a tracked flow, to its backend"},
    {XLB_FWD_ENCAP, "fwd_encap", Verdict::kForward,
     "encapsulated toward a tunnelled backend's node"},
    {XLB_FWD_DECAP, "fwd_decap", Verdict::kForward, "decapsulated for a backend on this node"},
    {XLB_FWD_REPLY_REVNAT, "fwd_reply_revnat", Verdict::kForward,
     "backend's answer, source back to the VIP"},
    {XLB_FWD_REPLY_TUNNEL, "fwd_reply_tunnel", Verdict::kForward,
     "backend's answer, encapsulated back to the origin node"},
    {XLB_FWD_REPLY_ROUTED, "fwd_reply_routed", Verdict::kForward,
     "answer reverse-NATed, routed and sent by xlb (a NodePort's, or back into a pod)"},
    {XLB_FWD_SNAT, "fwd_snat", Verdict::kForward,
     "DNATed and SNATed to this node's address, routed and sent by xlb"},
    {XLB_FWD_REPLY_SNAT, "fwd_reply_snat", Verdict::kForward,
     "answer of a SNATed flow, back to the client from the VIP"},
    {XLB_FWD_ICMP_TOO_BIG, "fwd_icmp_too_big", Verdict::kForward,
     "too big for the tunnel, answered with ICMP fragmentation needed / packet too big"},
    {XLB_FWD_REJECT, "fwd_reject", Verdict::kForward,
     "service port without endpoints, answered with ICMP port unreachable"},
    {XLB_FWD_ROUTED, "fwd_routed", Verdict::kForward,
     "DNATed to a routed backend, forwarded by xlb itself (fib lookup, TTL, MACs, redirect)"},
    {XLB_FWD_DECAP_ROUTED, "fwd_decap_routed", Verdict::kForward,
     "decapsulated for a backend on this node, forwarded to it by xlb itself"},
    {XLB_DROP_MALFORMED_L4, "drop_malformed_l4", Verdict::kDrop,
     "to a VIP, with a bad or truncated L4 header"},
    {XLB_DROP_NO_BACKEND, "drop_no_backend", Verdict::kDrop,
     "no backend takes new flows here (Local traffic policy, no endpoint on this node)"},
    {XLB_DROP_BACKEND_FAMILY, "drop_backend_family", Verdict::kDrop,
     "backend of another address family"},
    {XLB_DROP_NO_TABLE, "drop_no_table", Verdict::kDrop, "service without a Maglev table"},
    {XLB_DROP_NO_TUNNEL_ADDR, "drop_no_tunnel_addr", Verdict::kDrop,
     "no local tunnel (node) address of the endpoint's family"},
    {XLB_DROP_FIB, "drop_fib", Verdict::kDrop, "no usable route to the tunnel endpoint"},
    {XLB_DROP_TOO_BIG, "drop_too_big", Verdict::kDrop,
     "encapsulated, it would exceed the tunnel MTU"},
    {XLB_DROP_ENCAP, "drop_encap", Verdict::kDrop, "no room for the outer headers"},
    {XLB_DROP_SNAT_PORTS, "drop_snat_ports", Verdict::kDrop,
     "SNAT: every port tried toward that backend is taken"},
    {XLB_DROP_UDP6_ZERO_CSUM, "drop_udp6_zero_csum", Verdict::kDrop,
     "UDP over IPv6 with checksum 0, which RFC 8200 has receivers discard"},
    {XLB_DROP_TUNNEL_PEER, "drop_tunnel_peer", Verdict::kDrop,
     "xlb's tunnel packet from an outer source that is no known node"},
    {XLB_DROP_SOURCE_RANGE, "drop_source_range", Verdict::kDrop,
     "to a LoadBalancer IP from outside its loadBalancerSourceRanges"},
    {XLB_DROP_REJECT, "drop_reject", Verdict::kDrop,
     "to be rejected, but no ICMP answer could be built"},
}};

// A reason added to the enum without a row here fails to compile (the array's size) or
// lands on the wrong row (this check).
constexpr bool ReasonsInEnumOrder() {
  for (std::size_t i = 0; i < kReasons.size(); ++i) {
    if (static_cast<std::size_t>(kReasons[i].reason) != i || kReasons[i].name.empty()) {
      return false;
    }
  }
  return true;
}
static_assert(ReasonsInEnumOrder(), "kReasons must list enum xlb_reason in order");

// "unknown" for a value outside the enum (a newer datapath's reason, say).
constexpr std::string_view ReasonName(uint32_t reason) {
  return reason < kReasons.size() ? kReasons[reason].name : std::string_view("unknown");
}

constexpr std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kForward:
      return "forward";
    case Verdict::kDrop:
      return "drop";
  }
  return "?";
}

}  // namespace xlb

#endif  // XLB_LOADER_REASONS_H
