#include "builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace xlb::pkt {
namespace {

void Put8(Bytes& out, uint8_t v) {
  out.push_back(v);
}

void Put16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void Put32(Bytes& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}

void Set16(Bytes& out, size_t off, uint16_t v) {
  out[off] = static_cast<uint8_t>(v >> 8);
  out[off + 1] = static_cast<uint8_t>(v);
}

void Append(Bytes& out, const uint8_t* data, size_t len) {
  out.insert(out.end(), data, data + len);
}

void Append(Bytes& out, const Bytes& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// RFC 1071: the 16-bit one's complement of the one's complement sum of all 16-bit words,
// an odd last byte padded with zero. Each call sums a whole header (plus pseudo-header),
// with the checksum field zero.
class Checksum {
 public:
  Checksum& Add(const uint8_t* data, size_t len) {
    for (size_t i = 0; i < len; ++i) {
      // Bytes at even positions of the running stream are the high byte of a word.
      sum_ += (pos_++ % 2 == 0) ? (uint64_t{data[i]} << 8) : uint64_t{data[i]};
    }
    return *this;
  }
  Checksum& Add(const Bytes& data) { return Add(data.data(), data.size()); }
  Checksum& Add16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    return Add(b, 2);
  }
  Checksum& Add32(uint32_t v) {
    Add16(static_cast<uint16_t>(v >> 16));
    return Add16(static_cast<uint16_t>(v));
  }
  uint16_t Finish() const {
    uint64_t s = sum_;
    while (s >> 16) {
      s = (s & 0xffff) + (s >> 16);
    }
    return static_cast<uint16_t>(~s & 0xffff);
  }

 private:
  uint64_t sum_ = 0;
  uint64_t pos_ = 0;
};

// A value that fails verification: one flipped bit never turns a checksum into its other
// one's complement representation (0x0000 <-> 0xffff). For UDP, zero would mean "absent".
uint16_t Corrupt(uint16_t good, bool zero_is_absent) {
  uint16_t bad = good ^ 0x0001;
  if (zero_is_absent && bad == 0) {
    bad = 0x0002;
  }
  return bad;
}

template <size_t N>
std::array<uint8_t, N> ParseAddr(std::string_view text) {
  static_assert(N == 4 || N == 16);
  std::string s(text);
  std::array<uint8_t, N> out{};
  if (inet_pton(N == 4 ? AF_INET : AF_INET6, s.c_str(), out.data()) != 1) {
    throw std::invalid_argument("not an IPv" + std::to_string(N == 4 ? 4 : 6) + " address: " + s);
  }
  return out;
}

Bytes PadOptions(Bytes opts, size_t multiple) {
  opts.resize((opts.size() + multiple - 1) / multiple * multiple, 0);
  return opts;
}

// Hop-by-Hop and Destination Options: pad the TLVs with Pad1/PadN to a multiple of 8.
Bytes Ipv6OptionsBody(const Bytes& options) {
  const size_t unpadded = 2 + options.size();
  const size_t pad = (8 - unpadded % 8) % 8;
  Bytes body;
  Put8(body, static_cast<uint8_t>((unpadded + pad) / 8 - 1));
  Append(body, options);
  if (pad == 1) {
    Put8(body, 0);  // Pad1
  } else if (pad > 1) {
    Put8(body, 1);  // PadN
    Put8(body, static_cast<uint8_t>(pad - 2));
    body.resize(body.size() + pad - 2, 0);
  }
  return body;
}

void CheckFragOffset(uint16_t offset) {
  if (offset % 8 != 0) {
    throw std::invalid_argument("fragment offset must be a multiple of 8 bytes");
  }
}

}  // namespace

Mac ParseMac(std::string_view text) {
  Mac mac{};
  unsigned b[6];
  char tail = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                  &tail) != 6) {
    throw std::invalid_argument("not a MAC address: " + s);
  }
  for (size_t i = 0; i < 6; ++i) {
    mac[i] = static_cast<uint8_t>(b[i]);
  }
  return mac;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) {
    Append(out, p);
  }
  return out;
}

Bytes TcpMss(uint16_t mss) {
  Bytes b = {2, 4};
  Put16(b, mss);
  return b;
}
Bytes TcpWindowScale(uint8_t shift) {
  return {3, 3, shift};
}
Bytes TcpSackPermitted() {
  return {4, 2};
}
Bytes TcpTimestamps(uint32_t value, uint32_t echo_reply) {
  Bytes b = {8, 10};
  Put32(b, value);
  Put32(b, echo_reply);
  return b;
}
Bytes TcpNop() {
  return {1};
}

Bytes Ipv4RouterAlert() {
  return {0x94, 4, 0, 0};
}
Bytes Ipv4Nop() {
  return {1};
}

Bytes Ipv6RouterAlert(uint16_t value) {
  Bytes b = {5, 2};
  Put16(b, value);
  return b;
}

Embedded::Embedded(const Packet& packet) : bytes(packet.build()) {}

Packet& Packet::eth(const Mac& src, const Mac& dst, EthOpts opts) {
  layers_.emplace_back(Eth{src, dst, opts});
  return *this;
}

Packet& Packet::eth(std::string_view src, std::string_view dst, EthOpts opts) {
  return eth(ParseMac(src), ParseMac(dst), opts);
}

Packet& Packet::vlan(uint16_t vid, VlanOpts opts) {
  layers_.emplace_back(Vlan{vid, opts});
  return *this;
}

Packet& Packet::ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts) {
  CheckFragOffset(opts.frag_offset);
  layers_.emplace_back(Ipv4{ParseAddr<4>(src), ParseAddr<4>(dst), std::move(opts)});
  return *this;
}

Packet& Packet::ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts) {
  layers_.emplace_back(Ipv6{ParseAddr<16>(src), ParseAddr<16>(dst), opts});
  return *this;
}

Packet& Packet::hop_by_hop(const Bytes& options) {
  return ext_header(kProtoHopByHop, Ipv6OptionsBody(options));
}

Packet& Packet::dest_opts(const Bytes& options) {
  return ext_header(kProtoDstOpts, Ipv6OptionsBody(options));
}

Packet& Packet::routing(uint8_t type, uint8_t segments_left,
                        const std::vector<std::string>& addresses) {
  std::vector<std::array<uint8_t, 16>> addrs;
  addrs.reserve(addresses.size());
  for (const std::string& a : addresses) {
    addrs.push_back(ParseAddr<16>(a));
  }
  Bytes body;
  Put8(body, static_cast<uint8_t>(2 * addrs.size()));  // (8 + 16n) / 8 - 1
  Put8(body, type);
  Put8(body, segments_left);
  if (type == 4) {
    Put8(body, static_cast<uint8_t>(addrs.empty() ? 0 : addrs.size() - 1));  // Last Entry
    Put8(body, 0);                                                           // Flags
    Put16(body, 0);                                                          // Tag
  } else {
    Put32(body, 0);  // reserved
  }
  for (const auto& a : addrs) {
    Append(body, a.data(), a.size());
  }
  Ext ext{kProtoRouting, std::move(body), std::nullopt};
  if (segments_left > 0 && !addrs.empty()) {
    ext.final_dst = type == 4 ? addrs.front() : addrs.back();
  }
  layers_.emplace_back(std::move(ext));
  return *this;
}

Packet& Packet::fragment6(Ipv6FragOpts opts) {
  CheckFragOffset(opts.offset);
  Bytes body;
  Put8(body, 0);  // reserved
  Put16(body, static_cast<uint16_t>(opts.offset | (opts.more ? 1 : 0)));
  Put32(body, opts.id);
  return ext_header(kProtoFragment, std::move(body));
}

Packet& Packet::ext_header(uint8_t proto, Bytes body) {
  layers_.emplace_back(Ext{proto, std::move(body), std::nullopt});
  return *this;
}

Packet& Packet::tcp(uint16_t sport, uint16_t dport, uint8_t flags, TcpOpts opts) {
  layers_.emplace_back(Tcp{sport, dport, flags, std::move(opts)});
  return *this;
}

Packet& Packet::udp(uint16_t sport, uint16_t dport, UdpOpts opts) {
  layers_.emplace_back(Udp{sport, dport, opts});
  return *this;
}

Packet& Packet::icmp4(uint8_t type, uint8_t code, uint32_t rest, Embedded inner, IcmpOpts opts) {
  layers_.emplace_back(Icmp{false, type, code, rest, std::move(inner.bytes), opts});
  return *this;
}

Packet& Packet::icmp4_echo_request(uint16_t id, uint16_t seq, IcmpOpts opts) {
  return icmp4(kIcmpEchoRequest, 0, uint32_t{id} << 16 | seq, Bytes{}, opts);
}

Packet& Packet::icmp4_echo_reply(uint16_t id, uint16_t seq, IcmpOpts opts) {
  return icmp4(kIcmpEchoReply, 0, uint32_t{id} << 16 | seq, Bytes{}, opts);
}

Packet& Packet::icmp4_dest_unreach(uint8_t code, Embedded inner, IcmpOpts opts) {
  return icmp4(kIcmpDestUnreach, code, 0, std::move(inner), opts);
}

Packet& Packet::icmp4_frag_needed(uint16_t mtu, Embedded inner, IcmpOpts opts) {
  return icmp4(kIcmpDestUnreach, kIcmpFragNeeded, mtu, std::move(inner), opts);  // RFC 1191
}

Packet& Packet::icmp4_time_exceeded(uint8_t code, Embedded inner, IcmpOpts opts) {
  return icmp4(kIcmpTimeExceeded, code, 0, std::move(inner), opts);
}

Packet& Packet::icmp6(uint8_t type, uint8_t code, uint32_t rest, Embedded inner, IcmpOpts opts) {
  layers_.emplace_back(Icmp{true, type, code, rest, std::move(inner.bytes), opts});
  return *this;
}

Packet& Packet::icmp6_echo_request(uint16_t id, uint16_t seq, IcmpOpts opts) {
  return icmp6(kIcmp6EchoRequest, 0, uint32_t{id} << 16 | seq, Bytes{}, opts);
}

Packet& Packet::icmp6_echo_reply(uint16_t id, uint16_t seq, IcmpOpts opts) {
  return icmp6(kIcmp6EchoReply, 0, uint32_t{id} << 16 | seq, Bytes{}, opts);
}

Packet& Packet::icmp6_dest_unreach(uint8_t code, Embedded inner, IcmpOpts opts) {
  return icmp6(kIcmp6DestUnreach, code, 0, std::move(inner), opts);
}

Packet& Packet::icmp6_packet_too_big(uint32_t mtu, Embedded inner, IcmpOpts opts) {
  return icmp6(kIcmp6PacketTooBig, 0, mtu, std::move(inner), opts);
}

Packet& Packet::icmp6_time_exceeded(uint8_t code, Embedded inner, IcmpOpts opts) {
  return icmp6(kIcmp6TimeExceeded, code, 0, std::move(inner), opts);
}

Packet& Packet::payload(std::string_view text) {
  return payload(Bytes(text.begin(), text.end()));
}

Packet& Packet::payload(const Bytes& bytes) {
  if (!layers_.empty()) {
    if (auto* p = std::get_if<Payload>(&layers_.back())) {
      Append(p->bytes, bytes);
      return *this;
    }
  }
  layers_.emplace_back(Payload{bytes});
  return *this;
}

Packet& Packet::trailer(const Bytes& bytes) {
  Append(trailer_, bytes);
  return *this;
}

Packet& Packet::truncate(size_t frame_len) {
  truncate_ = frame_len;
  return *this;
}

uint16_t Packet::NextEtherType(size_t i) const {
  if (i + 1 >= layers_.size()) {
    return kEtherTypeExperimental;
  }
  const Layer& next = layers_[i + 1];
  if (const auto* v = std::get_if<Vlan>(&next)) {
    return v->opts.tpid;
  }
  if (std::holds_alternative<Ipv4>(next)) {
    return kEtherTypeIpv4;
  }
  if (std::holds_alternative<Ipv6>(next)) {
    return kEtherTypeIpv6;
  }
  return kEtherTypeExperimental;
}

uint8_t Packet::NextProto(size_t i) const {
  const bool in_v6 =
      std::holds_alternative<Ipv6>(layers_[i]) || std::holds_alternative<Ext>(layers_[i]);
  const uint8_t none = in_v6 ? kProtoNoNext : kProtoExperimental;
  if (i + 1 >= layers_.size()) {
    return none;
  }
  return std::visit(
      [&](const auto& l) -> uint8_t {
        using T = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<T, Ipv4>) {
          return kProtoIpip;
        } else if constexpr (std::is_same_v<T, Ipv6>) {
          return kProtoIpv6;
        } else if constexpr (std::is_same_v<T, Ext>) {
          return l.proto;
        } else if constexpr (std::is_same_v<T, Tcp>) {
          return kProtoTcp;
        } else if constexpr (std::is_same_v<T, Udp>) {
          return kProtoUdp;
        } else if constexpr (std::is_same_v<T, Icmp>) {
          return l.v6 ? kProtoIcmpv6 : kProtoIcmp;
        } else {
          return none;
        }
      },
      layers_[i + 1]);
}

// The addresses of the pseudo-header for the L4 layer at i: the nearest IP header before
// it, with the final destination of a routing header in between.
Packet::PseudoHeader Packet::PseudoFor(size_t i) const {
  std::optional<std::array<uint8_t, 16>> final_dst;
  for (size_t j = i; j-- > 0;) {
    if (const auto* ext = std::get_if<Ext>(&layers_[j]); ext && ext->final_dst) {
      final_dst = ext->final_dst;
    }
    if (const auto* v4 = std::get_if<Ipv4>(&layers_[j])) {
      return {Bytes(v4->src.begin(), v4->src.end()), Bytes(v4->dst.begin(), v4->dst.end())};
    }
    if (const auto* v6 = std::get_if<Ipv6>(&layers_[j])) {
      const auto& dst = final_dst ? *final_dst : v6->dst;
      return {Bytes(v6->src.begin(), v6->src.end()), Bytes(dst.begin(), dst.end())};
    }
  }
  throw std::logic_error("an L4 layer needs an IP layer before it");
}

// Bytes of the IP header (with IPv4 options or IPv6 extension headers) that carries the
// layer at i.
size_t Packet::L3HeaderLen(size_t i) const {
  size_t len = 0;
  for (size_t j = i; j-- > 0;) {
    if (const auto* ext = std::get_if<Ext>(&layers_[j])) {
      len += 1 + ext->body.size();
    } else if (const auto* v4 = std::get_if<Ipv4>(&layers_[j])) {
      return len + 20 + PadOptions(v4->opts.options, 4).size();
    } else if (std::holds_alternative<Ipv6>(layers_[j])) {
      return len + 40;
    }
  }
  throw std::logic_error("an ICMP layer needs an IP layer before it");
}

Bytes Packet::Emit(size_t i, const Bytes& inner) const {
  return std::visit(
      [&](const auto& l) -> Bytes {
        using T = std::decay_t<decltype(l)>;
        Bytes out;
        if constexpr (std::is_same_v<T, Eth>) {
          Append(out, l.dst.data(), l.dst.size());
          Append(out, l.src.data(), l.src.size());
          Put16(out, l.opts.ethertype.value_or(NextEtherType(i)));
          Append(out, inner);
        } else if constexpr (std::is_same_v<T, Vlan>) {
          // The TPID is the previous layer's EtherType; the tag is TCI + inner EtherType.
          Put16(out, static_cast<uint16_t>((l.opts.pcp & 7) << 13 | (l.opts.dei ? 1 : 0) << 12 |
                                           (l.vid & 0x0fff)));
          Put16(out, l.opts.ethertype.value_or(NextEtherType(i)));
          Append(out, inner);
        } else if constexpr (std::is_same_v<T, Ipv4>) {
          const Ipv4Opts& o = l.opts;
          const Bytes options = PadOptions(o.options, 4);
          const size_t hdr_len = 20 + options.size();
          if (hdr_len > 60) {
            throw std::invalid_argument("IPv4 options longer than 40 bytes");
          }
          Put8(out, static_cast<uint8_t>(o.version.value_or(4) << 4 |
                                         (o.ihl.value_or(hdr_len / 4) & 0x0f)));
          Put8(out, o.tos);
          Put16(out, o.tot_len.value_or(static_cast<uint16_t>(hdr_len + inner.size())));
          Put16(out, o.id);
          Put16(out, static_cast<uint16_t>((o.reserved_flag ? 0x8000 : 0) | (o.df ? 0x4000 : 0) |
                                           (o.mf ? 0x2000 : 0) | (o.frag_offset / 8)));
          Put8(out, o.ttl);
          Put8(out, o.protocol.value_or(NextProto(i)));
          Put16(out, 0);  // checksum, below
          Append(out, l.src.data(), 4);
          Append(out, l.dst.data(), 4);
          Append(out, options);
          uint16_t csum = Checksum().Add(out).Finish();
          if (o.corrupt_checksum) {
            csum = Corrupt(csum, false);
          }
          Set16(out, 10, o.checksum.value_or(csum));
          Append(out, inner);
        } else if constexpr (std::is_same_v<T, Ipv6>) {
          const Ipv6Opts& o = l.opts;
          Put32(out, uint32_t{o.version.value_or(6)} << 28 | uint32_t{o.traffic_class} << 20 |
                         (o.flow_label & 0xfffff));
          Put16(out, o.payload_len.value_or(static_cast<uint16_t>(inner.size())));
          Put8(out, o.next_header.value_or(NextProto(i)));
          Put8(out, o.hop_limit);
          Append(out, l.src.data(), 16);
          Append(out, l.dst.data(), 16);
          Append(out, inner);
        } else if constexpr (std::is_same_v<T, Ext>) {
          Put8(out, NextProto(i));
          Append(out, l.body);
          Append(out, inner);
        } else if constexpr (std::is_same_v<T, Tcp>) {
          const TcpOpts& o = l.opts;
          const Bytes options = PadOptions(o.options, 4);
          const size_t hdr_len = 20 + options.size();
          if (hdr_len > 60) {
            throw std::invalid_argument("TCP options longer than 40 bytes");
          }
          Put16(out, l.sport);
          Put16(out, l.dport);
          Put32(out, o.seq);
          Put32(out, o.ack);
          Put8(out, static_cast<uint8_t>(o.doff.value_or(hdr_len / 4) << 4));
          Put8(out, l.flags);
          Put16(out, o.window);
          Put16(out, 0);  // checksum, below
          Put16(out, o.urgent);
          Append(out, options);
          Append(out, inner);
          const PseudoHeader ph = PseudoFor(i);
          Checksum c;
          c.Add(ph.src).Add(ph.dst);
          if (ph.src.size() == 4) {
            c.Add16(kProtoTcp).Add16(static_cast<uint16_t>(out.size()));
          } else {
            c.Add32(static_cast<uint32_t>(out.size())).Add32(kProtoTcp);
          }
          uint16_t csum = c.Add(out).Finish();
          if (o.corrupt_checksum) {
            csum = Corrupt(csum, false);
          }
          Set16(out, 16, o.checksum.value_or(csum));
        } else if constexpr (std::is_same_v<T, Udp>) {
          const UdpOpts& o = l.opts;
          const uint16_t len = o.length.value_or(static_cast<uint16_t>(8 + inner.size()));
          Put16(out, l.sport);
          Put16(out, l.dport);
          Put16(out, len);
          Put16(out, 0);  // checksum, below
          Append(out, inner);
          // The receiver sums the `len` bytes the header claims (as far as they exist).
          const PseudoHeader ph = PseudoFor(i);
          Checksum c;
          c.Add(ph.src).Add(ph.dst);
          if (ph.src.size() == 4) {
            c.Add16(kProtoUdp).Add16(len);
          } else {
            c.Add32(len).Add32(kProtoUdp);
          }
          uint16_t csum = c.Add(out.data(), std::min<size_t>(len, out.size())).Finish();
          if (csum == 0) {
            csum = 0xffff;  // zero means "no checksum" (RFC 768)
          }
          if (o.corrupt_checksum) {
            csum = Corrupt(csum, true);
          }
          if (o.zero_checksum) {
            csum = 0;
          }
          Set16(out, 6, o.checksum.value_or(csum));
        } else if constexpr (std::is_same_v<T, Icmp>) {
          const IcmpOpts& o = l.opts;
          Put8(out, l.type);
          Put8(out, l.code);
          Put16(out, 0);  // checksum, below
          Put32(out, l.rest);
          // Quote as much as fits in a minimal-MTU datagram, or what the test asked for.
          const size_t limit = l.v6 ? 1280 : 576;
          const size_t used = L3HeaderLen(i) + 8;
          size_t quote = o.inner_len.value_or(limit > used ? limit - used : 0);
          quote = std::min(quote, l.inner.size());
          Append(out, l.inner.data(), quote);
          Append(out, inner);
          Checksum c;
          if (l.v6) {
            const PseudoHeader ph = PseudoFor(i);
            if (ph.src.size() != 16) {
              throw std::logic_error("an ICMPv6 layer needs an IPv6 layer before it");
            }
            c.Add(ph.src).Add(ph.dst).Add32(static_cast<uint32_t>(out.size())).Add32(kProtoIcmpv6);
          }
          uint16_t csum = c.Add(out).Finish();
          if (o.corrupt_checksum) {
            csum = Corrupt(csum, false);
          }
          Set16(out, 2, o.checksum.value_or(csum));
        } else if constexpr (std::is_same_v<T, Payload>) {
          out = l.bytes;
          Append(out, inner);
        }
        return out;
      },
      layers_[i]);
}

Bytes Packet::build() const {
  Bytes out;
  for (size_t i = layers_.size(); i-- > 0;) {
    out = Emit(i, out);
  }
  Append(out, trailer_);
  if (truncate_ && *truncate_ < out.size()) {
    out.resize(*truncate_);
  }
  return out;
}

}  // namespace xlb::pkt
