// An independent decoder for what the datapath emits: it shares no code with bpf/ and
// verifies every checksum from scratch by summing the whole header (with its checksum
// field) and pseudo-header, which must fold to 0xffff (RFC 1071 4.1). The builder computes
// checksums the other way round (sum with the field zeroed, then complement), so a checksum
// bug would have to be made twice, and tshark checks both.
//
//   Decoded d = Decode(frame);
//   ASSERT_TRUE(d.ok()) << d.error;
//   EXPECT_EQ(d.dst, "198.18.2.7");
//   EXPECT_EQ(d.ip_csum, Csum::kValid);
//   EXPECT_EQ(d.l4_csum, Csum::kValid);
//   EXPECT_EQ(d.inner->sport, 80);  // ICMP error quoting a TCP segment
#ifndef XLB_TESTS_PKT_DECODER_H
#define XLB_TESTS_PKT_DECODER_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "builder.h"

namespace xlb::pkt {

enum class Csum : uint8_t {
  kNone,          // no such checksum in this packet (or decoding stopped before it)
  kValid,         // verified good
  kInvalid,       // verified bad; also a zero UDP checksum over IPv6 (RFC 8200 8.1)
  kAbsent,        // UDP over IPv4 with checksum 0: the sender did not compute one
  kUnverifiable,  // present, but the data it covers is not all here (fragment, ICMP quote)
};
std::string_view ToString(Csum c);
std::ostream& operator<<(std::ostream& os, Csum c);

struct VlanTag {
  uint16_t tpid = 0;  // 0x8100, 0x88a8 (or 0x9100)
  uint16_t vid = 0;
  uint8_t pcp = 0;
  bool dei = false;
  bool operator==(const VlanTag&) const = default;
};

// One IP packet and its L4 header: the frame's packet, or the one an ICMP error quotes.
struct IpPacket {
  uint8_t version = 0;  // 4 or 6; 0 when no IP header was decoded
  std::string src;      // inet_ntop form: "198.18.0.1", "2001:db8::1"
  std::string dst;      // the header's destination (not a routing header's final one)
  uint8_t ttl = 0;      // IPv4 TTL or IPv6 hop limit

  // IPv4
  uint8_t ihl = 0;  // in 32-bit words
  uint8_t tos = 0;
  uint16_t id = 0;
  uint16_t tot_len = 0;
  uint8_t flags = 0;  // the three flag bits: 0x4 reserved, 0x2 DF, 0x1 MF
  bool df = false;
  Bytes ip_options;            // bytes between the fixed header and ihl * 4
  Csum ip_csum = Csum::kNone;  // the IPv4 header checksum

  // IPv6
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  uint16_t payload_len = 0;
  // The fixed header's next header, then each extension header's: {0, 60, 44, 6}.
  std::vector<uint8_t> next_headers;
  std::optional<uint8_t> routing_type;
  uint8_t segments_left = 0;
  bool has_frag_header = false;
  uint32_t frag_id = 0;  // IPv6 fragment header identification

  // Fragmentation, either family
  bool mf = false;           // more fragments
  uint16_t frag_offset = 0;  // in bytes
  bool is_fragment = false;  // mf or frag_offset: L4 checksum cannot be verified

  // L4
  uint8_t l4_proto = 0;  // IPv4 protocol or the last IPv6 next header
  uint16_t sport = 0;    // TCP/UDP
  uint16_t dport = 0;
  uint8_t tcp_flags = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t doff = 0;  // in 32-bit words
  uint16_t window = 0;
  Bytes tcp_options;
  uint16_t udp_len = 0;
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint16_t icmp_id = 0;        // echo
  uint16_t icmp_seq = 0;       // echo
  uint32_t mtu = 0;            // ICMPv4 frag needed, ICMPv6 packet too big
  uint16_t l4_checksum = 0;    // as on the wire
  Csum l4_csum = Csum::kNone;  // TCP, UDP, ICMP or ICMPv6

  // After the L4 header, bounded by the IP length (Ethernet padding excluded). For ICMP
  // errors: the quoted packet's bytes.
  Bytes payload;
  bool truncated = false;  // a quoted packet cut short, as ICMP errors do
};

struct Decoded : IpPacket {
  std::string error;  // empty when the frame is well-formed; else what is wrong where
  Mac eth_dst{};
  Mac eth_src{};
  std::vector<VlanTag> vlans;      // outermost first
  std::vector<uint16_t> vlan_ids;  // the same tags' VIDs, for EXPECT_THAT(..., ElementsAre())
  uint16_t ethertype = 0;          // after the VLAN tags
  // The packet an ICMP error quotes, or the inner packet of IP-in-IP / IPv6-in-IP.
  std::optional<IpPacket> inner;
  size_t trailer = 0;  // frame bytes after the IP packet (Ethernet padding)

  bool ok() const { return error.empty(); }
};

// Decodes an Ethernet frame. Decoding stops at the first malformed or truncated header;
// what came before it is filled in and `error` says what is wrong.
Decoded Decode(std::span<const uint8_t> frame);

// One line for test failure messages: "vlan[100] ipv4 198.18.0.1 > 198.18.1.10 tcp 40000 >
// 80 flags 0x02 ip_csum valid l4_csum valid".
std::string Describe(const Decoded& d);

}  // namespace xlb::pkt

#endif  // XLB_TESTS_PKT_DECODER_H
