#include "tunnel_frames.h"

#include "decoder.h"

namespace xlb::testing {

std::optional<TunnelFrame> SplitTunnel(std::span<const uint8_t> frame) {
  const pkt::Decoded d = pkt::Decode(frame);
  if (!d.ok() || d.l4_proto != 17 || (d.dport != 4789 && d.dport != 6080)) return std::nullopt;
  TunnelFrame t;
  t.sport = d.sport;
  t.dport = d.dport;
  const pkt::Bytes& p = d.payload;
  if (d.dport == 4789) {
    if (p.size() < 8 + 14) return std::nullopt;
    t.vxlan = true;
    t.vni = (uint32_t{p[4]} << 16) | (uint32_t{p[5]} << 8) | p[6];
    t.inner_frame.assign(p.begin() + 8, p.end());
  } else {
    if (p.empty()) return std::nullopt;
    t.inner_frame.assign(12, 0);
    const uint16_t type = (p[0] >> 4) == 4 ? 0x0800 : 0x86dd;
    t.inner_frame.push_back(type >> 8);
    t.inner_frame.push_back(type & 0xff);
    t.inner_frame.insert(t.inner_frame.end(), p.begin(), p.end());
  }
  return t;
}

}  // namespace xlb::testing
