// A packet builder for golden-packet tests: Ethernet frames (or bare IP packets) with VLAN
// tags, IPv4/IPv6 (options, extension headers, fragments), TCP/UDP/ICMP, payload, and the
// knobs to make them malformed. Checksums are computed from scratch (RFC 1071 over the whole
// header and pseudo-header), never incrementally, and nothing here shares code with bpf/.
//
//   Bytes frame = Packet()
//                     .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
//                     .vlan(100)
//                     .ipv4("198.18.0.1", "198.18.1.10", {.ttl = 5, .df = true})
//                     .tcp(40000, 80, kTcpSyn, {.seq = 1, .options = TcpMss(1460)})
//                     .payload("hi")
//                     .build();
//
// Layers are written outermost first. Each layer fills in what the one before it needs
// (EtherType, IP protocol / next header, lengths, checksums) unless an option overrides it.
// A packet without eth() builds to a bare IP packet, which is what ICMP errors embed.
#ifndef XLB_TESTS_PKT_BUILDER_H
#define XLB_TESTS_PKT_BUILDER_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace xlb::pkt {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

// "02:00:00:00:00:01" -> bytes; throws std::invalid_argument.
Mac ParseMac(std::string_view text);

// Concatenates byte strings, e.g. Cat({TcpMss(1460), TcpSackPermitted()}).
Bytes Cat(std::initializer_list<Bytes> parts);

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeExperimental = 0x88b5;  // IEEE local experimental
inline constexpr uint16_t kTpid8021Q = 0x8100;
inline constexpr uint16_t kTpid8021ad = 0x88a8;

inline constexpr uint8_t kProtoHopByHop = 0;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpip = 4;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIpv6 = 41;
inline constexpr uint8_t kProtoRouting = 43;
inline constexpr uint8_t kProtoFragment = 44;
inline constexpr uint8_t kProtoAh = 51;
inline constexpr uint8_t kProtoIcmpv6 = 58;
inline constexpr uint8_t kProtoNoNext = 59;
inline constexpr uint8_t kProtoDstOpts = 60;
inline constexpr uint8_t kProtoExperimental = 253;  // RFC 3692

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

// ICMPv4 types and codes (RFC 792, 1191).
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreach = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParamProblem = 12;
inline constexpr uint8_t kIcmpNetUnreach = 0;
inline constexpr uint8_t kIcmpHostUnreach = 1;
inline constexpr uint8_t kIcmpProtoUnreach = 2;
inline constexpr uint8_t kIcmpPortUnreach = 3;
inline constexpr uint8_t kIcmpFragNeeded = 4;
inline constexpr uint8_t kIcmpTtlExceeded = 0;
inline constexpr uint8_t kIcmpReassemblyExceeded = 1;

// ICMPv6 types and codes (RFC 4443).
inline constexpr uint8_t kIcmp6DestUnreach = 1;
inline constexpr uint8_t kIcmp6PacketTooBig = 2;
inline constexpr uint8_t kIcmp6TimeExceeded = 3;
inline constexpr uint8_t kIcmp6ParamProblem = 4;
inline constexpr uint8_t kIcmp6EchoRequest = 128;
inline constexpr uint8_t kIcmp6EchoReply = 129;
inline constexpr uint8_t kIcmp6NoRoute = 0;
inline constexpr uint8_t kIcmp6AdminProhibited = 1;
inline constexpr uint8_t kIcmp6AddrUnreach = 3;
inline constexpr uint8_t kIcmp6PortUnreach = 4;
inline constexpr uint8_t kIcmp6HopLimitExceeded = 0;
inline constexpr uint8_t kIcmp6ReassemblyExceeded = 1;

// TCP options (RFC 9293, 7323, 2018). Padding to a 4-byte multiple is added by tcp().
Bytes TcpMss(uint16_t mss);
Bytes TcpWindowScale(uint8_t shift);
Bytes TcpSackPermitted();
Bytes TcpTimestamps(uint32_t value, uint32_t echo_reply);
Bytes TcpNop();

// IPv4 options (RFC 791, 2113). Padding to a 4-byte multiple is added by ipv4().
Bytes Ipv4RouterAlert();
Bytes Ipv4Nop();

// IPv6 Hop-by-Hop / Destination options (RFC 8200, 2711). Padding to 8 bytes is added.
Bytes Ipv6RouterAlert(uint16_t value);

// Per-layer options, meant for designated initializers: {.ttl = 1, .df = true}. C++ wants
// them in declaration order. Defaults build a well-formed packet; the fields under
// "Overrides" exist to build malformed ones.
struct EthOpts {
  std::optional<uint16_t> ethertype{};  // default: from the next layer
};

struct VlanOpts {
  uint16_t tpid = kTpid8021Q;           // or kTpid8021ad for the outer tag of QinQ
  uint8_t pcp = 0;                      // priority code point, 0..7
  bool dei = false;                     // drop eligible indicator
  std::optional<uint16_t> ethertype{};  // of what follows the tag; default: from the next layer
};

struct Ipv4Opts {
  uint8_t ttl = 64;
  uint16_t id = 0;
  uint8_t tos = 0;
  bool df = false;
  bool mf = false;
  bool reserved_flag = false;  // the "evil bit", must be zero on the wire
  uint16_t frag_offset = 0;    // in bytes; must be a multiple of 8
  Bytes options{};             // raw option bytes, zero-padded (EOL) to a 4-byte multiple
  // Overrides for malformed packets; everything else stays as computed.
  std::optional<uint8_t> protocol{};  // default: from the next layer (253 when none)
  std::optional<uint8_t> version{};
  std::optional<uint8_t> ihl{};        // in 32-bit words
  std::optional<uint16_t> tot_len{};   // the L4 checksum still covers the real segment
  std::optional<uint16_t> checksum{};  // written as is
  bool corrupt_checksum = false;       // write a wrong header checksum
};

struct Ipv6Opts {
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  // Overrides for malformed packets.
  std::optional<uint8_t> next_header{};  // default: from the next layer (59 when none)
  std::optional<uint8_t> version{};
  std::optional<uint16_t> payload_len{};
};

struct Ipv6FragOpts {
  uint16_t offset = 0;  // in bytes; must be a multiple of 8
  bool more = false;    // the M flag
  uint32_t id = 0;
};

struct TcpOpts {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 65535;
  uint16_t urgent = 0;
  Bytes options{};  // e.g. TcpMss(1460); zero-padded to a 4-byte multiple
  // Overrides for malformed packets.
  std::optional<uint8_t> doff{};  // in 32-bit words; the header still holds the real options
  std::optional<uint16_t> checksum{};
  bool corrupt_checksum = false;
};

struct UdpOpts {
  std::optional<uint16_t> length{};  // default: 8 + what follows; the checksum covers `length`
  bool zero_checksum = false;        // IPv4: "no checksum"; IPv6: invalid (RFC 8200 8.1)
  std::optional<uint16_t> checksum{};
  bool corrupt_checksum = false;
};

struct IcmpOpts {
  // ICMP errors: how many bytes of the embedded packet to quote. Default: as much as fits
  // in a 576-byte IPv4 datagram (RFC 1812 4.3.2.3) or a 1280-byte IPv6 packet (RFC 4443
  // 2.4(c)); never more than the embedded packet has.
  std::optional<size_t> inner_len{};
  std::optional<uint16_t> checksum{};
  bool corrupt_checksum = false;
};

class Packet;

// What an ICMP error quotes: a packet built with this builder (usually without eth()), or
// raw bytes.
struct Embedded {
  Embedded(Bytes raw) : bytes(std::move(raw)) {}  // NOLINT(google-explicit-constructor)
  Embedded(const Packet& packet);                 // NOLINT(google-explicit-constructor)
  Bytes bytes{};
};

class Packet {
 public:
  // L2
  Packet& eth(const Mac& src, const Mac& dst, EthOpts opts = {});
  Packet& eth(std::string_view src, std::string_view dst, EthOpts opts = {});
  Packet& vlan(uint16_t vid, VlanOpts opts = {});  // once per tag, outermost first

  // L3. IPv6 extension headers follow ipv6() in wire order.
  Packet& ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts = {});
  Packet& ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts = {});
  Packet& hop_by_hop(const Bytes& options = {});  // TLV options, padded to 8 bytes
  Packet& dest_opts(const Bytes& options = {});   // TLV options, padded to 8 bytes
  // Type 4 lays out a Segment Routing Header (RFC 8754, addresses[0] is the final
  // segment); any other type 4 reserved bytes then the addresses (RH0/RH2 layout, the last
  // address is the final destination). With segments_left > 0 the final destination is
  // what the L4 pseudo-header uses (RFC 8200 8.1).
  Packet& routing(uint8_t type, uint8_t segments_left, const std::vector<std::string>& addresses);
  Packet& fragment6(Ipv6FragOpts opts);
  // Any extension header: `body` is everything after its next-header byte.
  Packet& ext_header(uint8_t proto, Bytes body);

  // L4
  Packet& tcp(uint16_t sport, uint16_t dport, uint8_t flags, TcpOpts opts = {});
  Packet& udp(uint16_t sport, uint16_t dport, UdpOpts opts = {});

  // ICMPv4 (inside ipv4()). Errors quote `inner`, truncated per IcmpOpts::inner_len.
  Packet& icmp4_echo_request(uint16_t id, uint16_t seq, IcmpOpts opts = {});
  Packet& icmp4_echo_reply(uint16_t id, uint16_t seq, IcmpOpts opts = {});
  Packet& icmp4_dest_unreach(uint8_t code, Embedded inner, IcmpOpts opts = {});
  Packet& icmp4_frag_needed(uint16_t mtu, Embedded inner, IcmpOpts opts = {});
  Packet& icmp4_time_exceeded(uint8_t code, Embedded inner, IcmpOpts opts = {});
  // Any ICMPv4 message: `rest` is the second 32-bit word of the header.
  Packet& icmp4(uint8_t type, uint8_t code, uint32_t rest, Embedded inner = Bytes{},
                IcmpOpts opts = {});

  // ICMPv6 (inside ipv6()).
  Packet& icmp6_echo_request(uint16_t id, uint16_t seq, IcmpOpts opts = {});
  Packet& icmp6_echo_reply(uint16_t id, uint16_t seq, IcmpOpts opts = {});
  Packet& icmp6_dest_unreach(uint8_t code, Embedded inner, IcmpOpts opts = {});
  Packet& icmp6_packet_too_big(uint32_t mtu, Embedded inner, IcmpOpts opts = {});
  Packet& icmp6_time_exceeded(uint8_t code, Embedded inner, IcmpOpts opts = {});
  Packet& icmp6(uint8_t type, uint8_t code, uint32_t rest, Embedded inner = Bytes{},
                IcmpOpts opts = {});

  // Bytes after the innermost header; repeated calls append.
  Packet& payload(std::string_view text);
  Packet& payload(const Bytes& bytes);

  // Bytes after the whole packet that no length field counts (Ethernet padding, junk).
  Packet& trailer(const Bytes& bytes);
  // Cut the finished frame to `frame_len` bytes (after lengths and checksums are set).
  Packet& truncate(size_t frame_len);

  Bytes build() const;

 private:
  struct Eth {
    Mac src{};
    Mac dst{};
    EthOpts opts;
  };
  struct Vlan {
    uint16_t vid = 0;
    VlanOpts opts;
  };
  struct Ipv4 {
    std::array<uint8_t, 4> src{};
    std::array<uint8_t, 4> dst{};
    Ipv4Opts opts;
  };
  struct Ipv6 {
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    Ipv6Opts opts;
  };
  struct Ext {  // an IPv6 extension header, encoded except for its next-header byte
    uint8_t proto = 0;
    Bytes body{};
    std::optional<std::array<uint8_t, 16>> final_dst;  // routing headers with segments left
  };
  struct Tcp {
    uint16_t sport = 0;
    uint16_t dport = 0;
    uint8_t flags = 0;
    TcpOpts opts;
  };
  struct Udp {
    uint16_t sport = 0;
    uint16_t dport = 0;
    UdpOpts opts;
  };
  struct Icmp {
    bool v6 = false;
    uint8_t type = 0;
    uint8_t code = 0;
    uint32_t rest = 0;
    Bytes inner{};
    IcmpOpts opts;
  };
  struct Payload {
    Bytes bytes{};
  };
  using Layer = std::variant<Eth, Vlan, Ipv4, Ipv6, Ext, Tcp, Udp, Icmp, Payload>;

  struct PseudoHeader {
    Bytes src{};
    Bytes dst{};
  };

  uint16_t NextEtherType(size_t i) const;
  uint8_t NextProto(size_t i) const;
  PseudoHeader PseudoFor(size_t i) const;
  size_t L3HeaderLen(size_t i) const;
  Bytes Emit(size_t i, const Bytes& inner) const;

  std::vector<Layer> layers_;
  Bytes trailer_{};
  std::optional<size_t> truncate_{};
};

}  // namespace xlb::pkt

#endif  // XLB_TESTS_PKT_BUILDER_H
