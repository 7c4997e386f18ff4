// Splits an encapsulated frame as xlb sends it (VXLAN on 4789, GUE on 6080, over IPv4 or
// IPv6) into its outer UDP header fields and the inner packet, as an Ethernet frame the
// independent decoder reads. Shares nothing with bpf/.
#ifndef XLB_TESTS_DATAPATH_TUNNEL_FRAMES_H
#define XLB_TESTS_DATAPATH_TUNNEL_FRAMES_H

#include <cstdint>
#include <optional>
#include <span>

#include "builder.h"

namespace xlb::testing {

struct TunnelFrame {
  uint16_t sport = 0;
  uint16_t dport = 0;
  bool vxlan = false;
  uint32_t vni = 0;
  pkt::Bytes inner_frame;  // VXLAN: the inner Ethernet frame; GUE: the inner IP in a zero header
};

std::optional<TunnelFrame> SplitTunnel(std::span<const uint8_t> frame);

}  // namespace xlb::testing

#endif  // XLB_TESTS_DATAPATH_TUNNEL_FRAMES_H
