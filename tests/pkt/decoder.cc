#include "decoder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace xlb::pkt {
namespace {

using Span = std::span<const uint8_t>;

uint16_t Rd16(Span b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

uint32_t Rd32(Span b, size_t off) {
  return uint32_t{Rd16(b, off)} << 16 | Rd16(b, off + 2);
}

std::string AddrString(Span addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(addr.size() == 4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf));
  return buf;
}

// RFC 1071 4.1 verification: the one's complement sum over everything the checksum covers,
// checksum field included, is all ones.
class Verifier {
 public:
  Verifier& Add(Span data) {
    for (uint8_t byte : data) {
      sum_ += (odd_ ? uint64_t{byte} : uint64_t{byte} << 8);
      odd_ = !odd_;
    }
    return *this;
  }
  Verifier& Add16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    return Add(b);
  }
  Verifier& Add32(uint32_t v) {
    Add16(static_cast<uint16_t>(v >> 16));
    return Add16(static_cast<uint16_t>(v));
  }
  Csum Result() const {
    uint64_t s = sum_;
    while (s >> 16) {
      s = (s & 0xffff) + (s >> 16);
    }
    return s == 0xffff ? Csum::kValid : Csum::kInvalid;
  }

 private:
  uint64_t sum_ = 0;
  bool odd_ = false;
};

struct Pseudo {
  Span src;
  Span dst;  // the final destination for IPv6 with a routing header
};

Verifier WithPseudo(const Pseudo& ph, uint8_t proto, uint32_t len) {
  Verifier v;
  v.Add(ph.src).Add(ph.dst);
  if (ph.src.size() == 4) {
    v.Add16(proto).Add16(static_cast<uint16_t>(len));
  } else {
    v.Add32(len).Add32(proto);
  }
  return v;
}

bool IsIcmp4Error(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

bool IsIcmp6Error(uint8_t type) {
  return type < 128;
}

class IpDecoder {
 public:
  // `quoted`: the packet inside an ICMP error, which may be cut short. `inner`: where an
  // embedded packet goes (nullptr when this is one already).
  IpDecoder(IpPacket& p, bool quoted, std::optional<IpPacket>* inner, std::string prefix)
      : p_(p), quoted_(quoted), inner_(inner), prefix_(std::move(prefix)) {}

  // Decodes the IP packet at the start of `data`; returns its length, or the error.
  size_t Run(Span data, int version) {
    if (version == 4) {
      return Ipv4(data);
    }
    return Ipv6(data);
  }

  const std::string& error() const { return error_; }

 private:
  size_t Fail(std::string msg) {
    if (error_.empty()) {
      error_ = prefix_ + std::move(msg);
    }
    return 0;
  }

  // A quoted packet may end anywhere; a real one may not.
  bool Short(std::string what) {
    if (quoted_) {
      p_.truncated = true;
      return true;
    }
    Fail(std::move(what));
    return false;
  }

  size_t Ipv4(Span b) {
    if (b.size() < 20) {
      return Fail("IPv4 header truncated (" + std::to_string(b.size()) + " bytes)");
    }
    p_.version = b[0] >> 4;
    p_.ihl = b[0] & 0x0f;
    p_.tos = b[1];
    p_.tot_len = Rd16(b, 2);
    p_.id = Rd16(b, 4);
    p_.flags = b[6] >> 5;
    p_.df = (p_.flags & 0x2) != 0;
    p_.mf = (p_.flags & 0x1) != 0;
    p_.frag_offset = static_cast<uint16_t>((Rd16(b, 6) & 0x1fff) * 8);
    p_.is_fragment = p_.mf || p_.frag_offset != 0;
    p_.ttl = b[8];
    p_.l4_proto = b[9];
    p_.src = AddrString(b.subspan(12, 4));
    p_.dst = AddrString(b.subspan(16, 4));
    if (p_.version != 4) {
      return Fail("IP version " + std::to_string(p_.version) + " in an IPv4 packet");
    }
    const size_t hlen = size_t{p_.ihl} * 4;
    if (p_.ihl < 5) {
      return Fail("IPv4 IHL " + std::to_string(p_.ihl) + " < 5");
    }
    if (hlen > b.size()) {
      return Fail("IPv4 header of " + std::to_string(hlen) + " bytes beyond the data (" +
                  std::to_string(b.size()) + " bytes)");
    }
    p_.ip_options.assign(b.begin() + 20, b.begin() + static_cast<ptrdiff_t>(hlen));
    p_.ip_csum = Verifier().Add(b.first(hlen)).Result();
    if (p_.tot_len < hlen) {
      return Fail("IPv4 total length " + std::to_string(p_.tot_len) + " < header length " +
                  std::to_string(hlen));
    }
    size_t end = p_.tot_len;
    if (end > b.size()) {
      if (!Short("IPv4 total length " + std::to_string(p_.tot_len) + " beyond the data (" +
                 std::to_string(b.size()) + " bytes)")) {
        return 0;
      }
      end = b.size();
    }
    const Span l4 = b.subspan(hlen, end - hlen);
    if (p_.frag_offset != 0) {
      p_.payload.assign(l4.begin(), l4.end());
      return end;
    }
    L4(l4, Pseudo{b.subspan(12, 4), b.subspan(16, 4)});
    return error_.empty() ? end : 0;
  }

  size_t Ipv6(Span b) {
    if (b.size() < 40) {
      return Fail("IPv6 header truncated (" + std::to_string(b.size()) + " bytes)");
    }
    p_.version = b[0] >> 4;
    p_.traffic_class = static_cast<uint8_t>(Rd16(b, 0) >> 4);
    p_.flow_label = Rd32(b, 0) & 0xfffff;
    p_.payload_len = Rd16(b, 4);
    p_.ttl = b[7];
    p_.src = AddrString(b.subspan(8, 16));
    p_.dst = AddrString(b.subspan(24, 16));
    if (p_.version != 6) {
      return Fail("IP version " + std::to_string(p_.version) + " in an IPv6 packet");
    }
    size_t end = 40 + size_t{p_.payload_len};
    if (end > b.size()) {
      if (!Short("IPv6 payload length " + std::to_string(p_.payload_len) + " beyond the data (" +
                 std::to_string(b.size() - 40) + " bytes)")) {
        return 0;
      }
      end = b.size();
    }
    Span final_dst = b.subspan(24, 16);
    uint8_t next = b[6];
    p_.next_headers.push_back(next);
    size_t off = 40;
    while (next == kProtoHopByHop || next == kProtoRouting || next == kProtoFragment ||
           next == kProtoDstOpts || next == kProtoAh) {
      const std::string name = "IPv6 extension header " + std::to_string(next);
      if (next == kProtoHopByHop && off != 40) {
        return Fail("IPv6 Hop-by-Hop header not right after the IPv6 header");
      }
      if (off + 8 > end) {
        return Short(name + " truncated") ? end : 0;
      }
      size_t len = 8;
      if (next == kProtoAh) {
        len = (size_t{b[off + 1]} + 2) * 4;
      } else if (next != kProtoFragment) {
        len = (size_t{b[off + 1]} + 1) * 8;
      }
      if (off + len > end) {
        return Short(name + " of " + std::to_string(len) + " bytes beyond the payload") ? end : 0;
      }
      if (next == kProtoRouting) {
        p_.routing_type = b[off + 2];
        p_.segments_left = b[off + 3];
        if (p_.segments_left > 0 && len >= 24) {
          // SRH: Segment List[0] is the final segment; RH0/RH2: the last address.
          final_dst = b.subspan(*p_.routing_type == 4 ? off + 8 : off + len - 16, 16);
        }
      } else if (next == kProtoFragment) {
        p_.has_frag_header = true;
        p_.frag_offset = Rd16(b, off + 2) & 0xfff8;
        p_.mf = (b[off + 3] & 1) != 0;
        p_.frag_id = Rd32(b, off + 4);
        p_.is_fragment = p_.mf || p_.frag_offset != 0;
      }
      next = b[off];
      p_.next_headers.push_back(next);
      off += len;
    }
    p_.l4_proto = next;
    const Span l4 = b.subspan(off, end - off);
    if (p_.frag_offset != 0) {
      p_.payload.assign(l4.begin(), l4.end());
      return end;
    }
    L4(l4, Pseudo{b.subspan(8, 16), final_dst});
    return error_.empty() ? end : 0;
  }

  // A checksum over data we may not fully have.
  Csum Check(Verifier v, Span covered) const {
    if (p_.truncated || p_.is_fragment) {
      return Csum::kUnverifiable;
    }
    return v.Add(covered).Result();
  }

  void L4(Span s, const Pseudo& ph) {
    switch (p_.l4_proto) {
      case kProtoTcp:
        return Tcp(s, ph);
      case kProtoUdp:
        return Udp(s, ph);
      case kProtoIcmp:
        return Icmp(s, ph, false);
      case kProtoIcmpv6:
        return Icmp(s, ph, true);
      case kProtoIpip:
      case kProtoIpv6:
        if (inner_ != nullptr) {
          return Embed(s, false, p_.l4_proto == kProtoIpip ? 4 : 6);
        }
        break;
      default:
        break;
    }
    p_.payload.assign(s.begin(), s.end());
  }

  void Ports(Span s) {
    if (s.size() >= 4) {
      p_.sport = Rd16(s, 0);
      p_.dport = Rd16(s, 2);
    }
  }

  void Tcp(Span s, const Pseudo& ph) {
    Ports(s);
    if (s.size() < 20) {
      // A quote has at least the ports and the sequence number (RFC 792).
      if (s.size() >= 8) {
        p_.seq = Rd32(s, 4);
      }
      Short("TCP header truncated (" + std::to_string(s.size()) + " bytes)");
      p_.l4_csum = p_.truncated ? Csum::kUnverifiable : Csum::kNone;
      return;
    }
    p_.seq = Rd32(s, 4);
    p_.ack = Rd32(s, 8);
    p_.doff = s[12] >> 4;
    p_.tcp_flags = s[13];
    p_.window = Rd16(s, 14);
    p_.l4_checksum = Rd16(s, 16);
    p_.l4_csum = Check(WithPseudo(ph, kProtoTcp, static_cast<uint32_t>(s.size())), s);
    const size_t hlen = size_t{p_.doff} * 4;
    if (p_.doff < 5) {
      Fail("TCP data offset " + std::to_string(p_.doff) + " < 5");
      return;
    }
    if (hlen > s.size()) {
      Short("TCP header of " + std::to_string(hlen) + " bytes beyond the segment (" +
            std::to_string(s.size()) + " bytes)");
      return;
    }
    p_.tcp_options.assign(s.begin() + 20, s.begin() + static_cast<ptrdiff_t>(hlen));
    p_.payload.assign(s.begin() + static_cast<ptrdiff_t>(hlen), s.end());
  }

  void Udp(Span s, const Pseudo& ph) {
    Ports(s);
    if (s.size() < 8) {
      Short("UDP header truncated (" + std::to_string(s.size()) + " bytes)");
      p_.l4_csum = p_.truncated ? Csum::kUnverifiable : Csum::kNone;
      return;
    }
    p_.udp_len = Rd16(s, 4);
    p_.l4_checksum = Rd16(s, 6);
    if (p_.udp_len < 8) {
      Fail("UDP length " + std::to_string(p_.udp_len) + " < 8");
      return;
    }
    size_t len = p_.udp_len;
    if (len > s.size()) {
      if (!Short("UDP length " + std::to_string(p_.udp_len) + " beyond the IP payload (" +
                 std::to_string(s.size()) + " bytes)")) {
        return;
      }
      len = s.size();
    }
    if (p_.l4_checksum == 0) {
      p_.l4_csum = ph.src.size() == 4 ? Csum::kAbsent : Csum::kInvalid;
    } else {
      p_.l4_csum = Check(WithPseudo(ph, kProtoUdp, p_.udp_len), s.first(len));
    }
    p_.payload.assign(s.begin() + 8, s.begin() + static_cast<ptrdiff_t>(len));
  }

  void Icmp(Span s, const Pseudo& ph, bool v6) {
    const char* name = v6 ? "ICMPv6" : "ICMP";
    if (s.size() < 8) {
      if (s.size() >= 2) {
        p_.icmp_type = s[0];
        p_.icmp_code = s[1];
      }
      Short(std::string(name) + " header truncated (" + std::to_string(s.size()) + " bytes)");
      p_.l4_csum = p_.truncated ? Csum::kUnverifiable : Csum::kNone;
      return;
    }
    p_.icmp_type = s[0];
    p_.icmp_code = s[1];
    p_.l4_checksum = Rd16(s, 2);
    p_.l4_csum =
        Check(v6 ? WithPseudo(ph, kProtoIcmpv6, static_cast<uint32_t>(s.size())) : Verifier(), s);
    const Span body = s.subspan(8);
    p_.payload.assign(body.begin(), body.end());
    const bool echo = v6 ? (p_.icmp_type == kIcmp6EchoRequest || p_.icmp_type == kIcmp6EchoReply)
                         : (p_.icmp_type == kIcmpEchoRequest || p_.icmp_type == kIcmpEchoReply);
    if (echo) {
      p_.icmp_id = Rd16(s, 4);
      p_.icmp_seq = Rd16(s, 6);
      return;
    }
    if (!(v6 ? IsIcmp6Error(p_.icmp_type) : IsIcmp4Error(p_.icmp_type))) {
      return;
    }
    if (v6 && p_.icmp_type == kIcmp6PacketTooBig) {
      p_.mtu = Rd32(s, 4);
    } else if (!v6 && p_.icmp_type == kIcmpDestUnreach && p_.icmp_code == kIcmpFragNeeded) {
      p_.mtu = Rd16(s, 6);
    }
    if (inner_ != nullptr) {
      if (body.empty()) {
        Fail(std::string(name) + " error without a quoted packet");
        return;
      }
      Embed(body, true, body[0] >> 4);
    }
  }

  // The packet inside: an ICMP error's quote or an IP-in-IP payload.
  void Embed(Span s, bool quoted, int version) {
    IpPacket& in = inner_->emplace();
    if (version != 4 && version != 6) {
      in.version = static_cast<uint8_t>(version);
      Fail("inner: IP version " + std::to_string(version));
      return;
    }
    IpDecoder d(in, quoted, nullptr, prefix_ + "inner: ");
    d.Run(s, version);
    if (!d.error().empty()) {
      Fail(d.error().substr(prefix_.size()));
    }
  }

  IpPacket& p_;
  bool quoted_;
  std::optional<IpPacket>* inner_;
  std::string prefix_;
  std::string error_;
};

std::string Hex8(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", v & 0xff);
  return buf;
}

void DescribeIp(std::ostringstream& os, const IpPacket& p) {
  if (p.version == 0) {
    return;
  }
  os << " ipv" << int{p.version} << " " << p.src << " > " << p.dst << " ttl " << int{p.ttl};
  if (p.version == 4) {
    os << " id " << p.id << " len " << p.tot_len << " ip_csum " << p.ip_csum;
  } else {
    os << " plen " << p.payload_len << " nh";
    for (uint8_t nh : p.next_headers) {
      os << " " << int{nh};
    }
  }
  if (p.is_fragment) {
    os << " frag off " << p.frag_offset << (p.mf ? " MF" : "");
  }
  switch (p.l4_proto) {
    case kProtoTcp:
      os << " tcp " << p.sport << " > " << p.dport << " flags " << Hex8(p.tcp_flags) << " seq "
         << p.seq;
      break;
    case kProtoUdp:
      os << " udp " << p.sport << " > " << p.dport << " len " << p.udp_len;
      break;
    case kProtoIcmp:
    case kProtoIcmpv6:
      os << (p.l4_proto == kProtoIcmp ? " icmp" : " icmpv6") << " type " << int{p.icmp_type}
         << " code " << int{p.icmp_code};
      break;
    default:
      os << " proto " << int{p.l4_proto};
      break;
  }
  os << " l4_csum " << p.l4_csum << " payload " << p.payload.size();
  if (p.truncated) {
    os << " (truncated)";
  }
}

}  // namespace

std::string_view ToString(Csum c) {
  switch (c) {
    case Csum::kNone:
      return "none";
    case Csum::kValid:
      return "valid";
    case Csum::kInvalid:
      return "invalid";
    case Csum::kAbsent:
      return "absent";
    case Csum::kUnverifiable:
      return "unverifiable";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, Csum c) {
  return os << ToString(c);
}

Decoded Decode(std::span<const uint8_t> frame) {
  Decoded d;
  if (frame.size() < 14) {
    d.error = "frame of " + std::to_string(frame.size()) + " bytes, no Ethernet header";
    return d;
  }
  std::copy_n(frame.begin(), 6, d.eth_dst.begin());
  std::copy_n(frame.begin() + 6, 6, d.eth_src.begin());
  uint16_t type = Rd16(frame, 12);
  size_t off = 14;
  while (type == kTpid8021Q || type == kTpid8021ad || type == 0x9100) {
    if (off + 4 > frame.size()) {
      d.ethertype = type;
      d.error = "VLAN tag " + std::to_string(d.vlans.size() + 1) + " truncated";
      return d;
    }
    const uint16_t tci = Rd16(frame, off);
    d.vlans.push_back(VlanTag{type, static_cast<uint16_t>(tci & 0x0fff),
                              static_cast<uint8_t>(tci >> 13), (tci & 0x1000) != 0});
    d.vlan_ids.push_back(tci & 0x0fff);
    type = Rd16(frame, off + 2);
    off += 4;
  }
  d.ethertype = type;
  const Span rest = frame.subspan(off);
  if (type != kEtherTypeIpv4 && type != kEtherTypeIpv6) {
    d.payload.assign(rest.begin(), rest.end());
    return d;
  }
  IpDecoder ip(d, false, &d.inner, "");
  const size_t len = ip.Run(rest, type == kEtherTypeIpv4 ? 4 : 6);
  d.error = ip.error();
  if (d.ok()) {
    d.trailer = rest.size() - len;
  }
  return d;
}

std::string Describe(const Decoded& d) {
  std::ostringstream os;
  os << "ethertype " << std::hex << "0x" << d.ethertype << std::dec;
  for (const VlanTag& v : d.vlans) {
    os << " vlan[" << v.vid << "]";
  }
  DescribeIp(os, d);
  if (d.inner) {
    os << " | inner:";
    DescribeIp(os, *d.inner);
  }
  if (d.trailer != 0) {
    os << " trailer " << d.trailer;
  }
  if (!d.ok()) {
    os << " ERROR: " << d.error;
  }
  return os.str();
}

}  // namespace xlb::pkt
