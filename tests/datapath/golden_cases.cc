#include "golden_cases.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdlib>
#include <tuple>

#include "loader/test_run.h"
#include "maps/xlb_hash.h"
#include "maps/xlb_rules.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

using pkt::Bytes;
using pkt::Cat;
using pkt::kEtherTypeIpv4;
using pkt::kEtherTypeIpv6;
using pkt::kProtoTcp;
using pkt::kProtoUdp;
using pkt::kTcpAck;
using pkt::kTcpSyn;
using pkt::Packet;
using pkt::TcpMss;
using pkt::TcpNop;
using pkt::TcpSackPermitted;
using pkt::TcpWindowScale;

constexpr const char* kClientMac = "02:00:00:00:00:01";
constexpr const char* kNodeMac = "02:00:00:00:00:02";
constexpr const char* kClient4 = "198.18.0.1";
constexpr const char* kRouter4 = "198.18.0.254";
constexpr const char* kClient6 = "2001:db8:1::1";
constexpr const char* kRouter6 = "2001:db8:1::fe";
constexpr const char* kVip4 = "198.18.10.1";
constexpr const char* kVip4AllPorts = "198.18.10.2";
constexpr const char* kVip4NoBackend = "198.18.10.6";
constexpr const char* kVip4Moving = "198.18.10.7";
constexpr const char* kVip4Gone = "198.18.10.8";
constexpr const char* kVip6 = "2001:db8:10::1";

Packet Frame() { return Packet().eth(kClientMac, kNodeMac); }

void Must(Result<void> r) {
  if (!r) {
    std::fprintf(stderr, "golden set-up failed: %s\n", r.error().ToString().c_str());
    std::abort();
  }
}

// A TCP segment of one flow, before (to the VIP) or after DNAT (to the backend).
Bytes Tcp4(const char* dst, uint16_t sport, uint16_t dport, uint8_t flags,
           pkt::Ipv4Opts ip = {}) {
  return Frame().ipv4(kClient4, dst, ip).tcp(sport, dport, flags, {.seq = 1000}).payload("xlb").build();
}
Bytes Tcp6(const char* dst, uint16_t sport, uint16_t dport, uint8_t flags) {
  return Frame().ipv6(kClient6, dst).tcp(sport, dport, flags, {.seq = 1000}).payload("xlb").build();
}

GoldenStep Step(std::string what, Bytes in, xlb_reason reason, std::optional<Bytes> out = {}) {
  const uint32_t verdict = reason >= XLB_DROP_FIRST ? XDP_DROP : XDP_PASS;
  return {std::move(what), std::move(in), verdict, reason, std::move(out), nullptr};
}

// A step with an explicit verdict (XDP_TX, XDP_REDIRECT, TC_ACT_*).
GoldenStep Step(std::string what, Bytes in, uint32_t verdict, xlb_reason reason,
                std::optional<Bytes> out, Hook hook = Hook::kXdp) {
  GoldenStep s{std::move(what), std::move(in), verdict, reason, std::move(out), nullptr};
  s.hook = hook;
  return s;
}


// --- the cross-cluster path ---
constexpr const char* kPodMac = "02:00:00:00:02:01";   // a pod's veth (TC cases)
constexpr const char* kHostVethMac = "02:00:00:00:02:02";
constexpr const char* kPod4 = "198.18.30.5";            // a local pod calling a service
constexpr const char* kPod6 = "2001:db8:30::5";
constexpr const char* kLocalBackend4 = "198.18.30.1";   // a local pod behind a remote node's VIP
constexpr const char* kLocalBackend6 = "2001:db8:30::1";
constexpr const char* kVip4Tun = "198.18.10.9";      // -> 198.18.40.1:8080 via 198.18.100.2
constexpr const char* kVip4Tun6 = "198.18.10.10";    // -> 198.18.40.2:8080 via 2001:db8:100::2
constexpr const char* kVip6Tun4 = "2001:db8:10::11"; // -> [2001:db8:40::1]:8080 via 198.18.100.2
constexpr const char* kVip6Tun = "2001:db8:10::12";  // -> [2001:db8:40::2]:8080 via 2001:db8:100::2
constexpr const char* kVip4TunUdp = "198.18.10.13";  // udp 53 -> 198.18.40.3:5353 via 198.18.100.2
constexpr const char* kVip4NoNeigh = "198.18.10.14"; // -> 198.18.40.4:8080 via 198.18.101.9
constexpr const char* kVip4Unreach = "198.18.10.15"; // -> 198.18.40.5:8080 via 198.18.102.9
constexpr const char* kVip6TunUdp = "2001:db8:10::16"; // udp 53 -> [2001:db8:40::3]:5353 via 2001:db8:100::2
constexpr const char* kVip4TunUdp6 = "198.18.10.17";   // udp 53 -> 198.18.40.6:5353 via 2001:db8:100::2

// SNAT backends: host addresses of the remote node (no xlb answers there).
constexpr const char* kVip4Snat = "198.18.10.18";    // -> 198.18.100.2:8080, SNAT
constexpr const char* kVip6Snat = "2001:db8:10::19"; // -> [2001:db8:100::2]:8080, SNAT

// Service semantics (ids 20-27, see InstallGoldenServices).
constexpr const char* kVip4Affine = "198.18.10.20";      // ClientIP, 100 s: 22 198.18.21.1, 23 .2
constexpr const char* kVip6Affine = "2001:db8:10::20";   // ClientIP, 100 s: 24, 25
constexpr const char* kVip4Ranged = "198.18.10.21";      // source ranges 198.18.0.0/24
constexpr const char* kVip4RangedOpen = "198.18.10.22";  // the same service, a key without them
constexpr const char* kVip6Ranged = "2001:db8:10::21";   // source ranges 2001:db8:1::/64
constexpr const char* kVip4Reject = "198.18.10.23";  // :80/tcp and :53/udp, no endpoints, REJECT
constexpr const char* kVip6Reject = "2001:db8:10::23";
constexpr const char* kVip4Reused = "198.18.10.40";  // added by its case: 40 -> 1 198.18.20.1:8080
constexpr uint32_t kAffinityTimeoutS = 100;
constexpr const char* kOutsider4 = "198.18.5.1";  // in no source range
constexpr const char* kOutsider6 = "2001:db8:5::1";

xlb_backend SnatBackend(std::string_view addr, uint16_t port) {
  xlb_backend b = Backend(addr, port);
  b.flags |= XLB_BE_F_SNAT;
  return b;
}

xlb_backend TunnelBackend(std::string_view addr, uint16_t port, std::string_view tunnel) {
  xlb_backend b = Backend(addr, port, 2);
  const Addr t = ParseAddr(tunnel);
  std::copy(t.words.begin(), t.words.end(), b.tunnel);
  b.tunnel_family = t.family;
  b.flags |= XLB_BE_F_TUNNEL;
  return b;
}

bool IsV6(std::string_view addr) { return addr.find(':') != std::string_view::npos; }

Packet L3(std::string_view src, std::string_view dst) {
  Packet p;
  if (IsV6(src)) {
    p.ipv6(src, dst);
  } else {
    p.ipv4(src, dst);
  }
  return p;
}

// A TCP segment as a bare IP packet (the inner packet of a tunnel), with an MSS option
// (after a NOP when `nop`, so the MSS sits at an odd offset) on SYNs.
Bytes Seg(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
          uint8_t flags, uint16_t mss = 1460, bool nop = false) {
  Bytes opts;
  if (flags & kTcpSyn) {
    opts = nop ? Cat({TcpNop(), TcpMss(mss), TcpNop(), TcpWindowScale(7)})
               : Cat({TcpMss(mss), TcpSackPermitted(), TcpNop(), TcpWindowScale(7)});
  }
  return L3(src, dst).tcp(sport, dport, flags, {.seq = 1000, .options = opts}).payload(
      flags & kTcpSyn ? "" : "xlb").build();
}

// The same packet in an Ethernet frame.
Bytes InFrame(const char* src_mac, const char* dst_mac, const Bytes& ip) {
  Bytes f;
  const pkt::Mac d = pkt::ParseMac(dst_mac), s = pkt::ParseMac(src_mac);
  f.insert(f.end(), d.begin(), d.end());
  f.insert(f.end(), s.begin(), s.end());
  const uint16_t type = (ip[0] >> 4) == 4 ? kEtherTypeIpv4 : kEtherTypeIpv6;
  f.push_back(type >> 8);
  f.push_back(type & 0xff);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

// The flow hash of an original-direction tuple: the outer UDP source port and IPv6 flow
// label come from it.
uint32_t FlowHash(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
                  uint8_t proto) {
  xlb_ct_key k{};
  const Addr s = ParseAddr(src), d = ParseAddr(dst);
  std::copy(s.words.begin(), s.words.end(), k.saddr);
  std::copy(d.words.begin(), d.words.end(), k.daddr);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = s.family;
  return xlb_hash_flow(&k, GoldenConfig().hash_seed);
}

struct Outer {
  std::string_view src;  // outer IP source and destination
  std::string_view dst;
  const char* eth_src;
  const char* eth_dst;
  uint8_t encap = XLB_ENCAP_VXLAN;
  const char* inner_eth_src = kUplinkMac;  // VXLAN: the node's MAC toward the endpoint
  uint32_t hash = 0;                       // FlowHash of the inner flow
  uint16_t sport = 0;                      // 0: from the hash, as xlb sends it
  uint32_t vni = XLB_VXLAN_VNI;
  uint8_t vxlan_flags = 0x08;
  bool zero_udp6_checksum = false;  // IPv6 outer: what xlb sends when it cannot sum the inner
};

Bytes VxlanHeader(uint32_t vni, uint8_t flags = 0x08) {
  return {flags, 0, 0, 0, static_cast<uint8_t>(vni >> 16), static_cast<uint8_t>(vni >> 8),
          static_cast<uint8_t>(vni), 0};
}

// An encapsulated frame built from scratch: outer Ethernet, IP (IPv4: TTL 64, DF, id 0;
// IPv6: hop limit 64, flow label from the hash), UDP (checksum 0 over IPv4, computed in
// full over IPv6), VXLAN header and inner Ethernet (to the VTEP MAC), or GUE's bare inner IP.
Bytes Encap(const Outer& o, const Bytes& inner_ip) {
  Bytes payload;
  if (o.encap == XLB_ENCAP_VXLAN) {
    payload = VxlanHeader(o.vni, o.vxlan_flags);
    const xlb_config cfg = GoldenConfig();
    char vtep[18];
    std::snprintf(vtep, sizeof(vtep), "%02x:%02x:%02x:%02x:%02x:%02x", cfg.vtep_mac[0],
                  cfg.vtep_mac[1], cfg.vtep_mac[2], cfg.vtep_mac[3], cfg.vtep_mac[4],
                  cfg.vtep_mac[5]);
    const Bytes eth = InFrame(o.inner_eth_src, vtep, inner_ip);
    payload.insert(payload.end(), eth.begin(), eth.end());
  } else {
    payload = inner_ip;
  }
  const uint16_t sport = o.sport ? o.sport : static_cast<uint16_t>(0xc000 | (o.hash & 0x3fff));
  const uint16_t dport = o.encap == XLB_ENCAP_VXLAN ? XLB_VXLAN_PORT : XLB_GUE_PORT;
  Packet p;
  p.eth(o.eth_src, o.eth_dst);
  if (IsV6(o.src)) {
    p.ipv6(o.src, o.dst, {.hop_limit = 64, .traffic_class = 0, .flow_label = o.hash & 0xfffff});
    if (o.zero_udp6_checksum) {
      p.udp(sport, dport, {.checksum = 0});
    } else {
      p.udp(sport, dport);  // computed: see udp6_csum_lco in bpf/lib/encap.h
    }
  } else {
    p.ipv4(o.src, o.dst, {.ttl = 64, .id = 0, .df = true});
    p.udp(sport, dport, {.zero_checksum = true});
  }
  return p.payload(payload).build();
}

// What a remote node's xlb sends to this node (the input of decapsulation).
Bytes FromRemote(std::string_view remote, std::string_view local, uint8_t encap,
                 const Bytes& inner_ip, uint32_t vni = XLB_VXLAN_VNI, uint8_t flags = 0x08) {
  return Encap({.src = remote, .dst = local, .eth_src = kRemoteNodeMac, .eth_dst = kUplinkMac,
                .encap = encap, .inner_eth_src = kRemoteNodeMac, .hash = 0, .sport = 51000,
                .vni = vni, .vxlan_flags = flags},
               inner_ip);
}

// The conntrack key of a tuple (also the key of a reply entry: the answer's tuple).
xlb_ct_key TupleKey(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
                    uint8_t proto) {
  xlb_ct_key k{};
  const Addr s = ParseAddr(src), d = ParseAddr(dst);
  std::copy(s.words.begin(), s.words.end(), k.saddr);
  std::copy(d.words.begin(), d.words.end(), k.daddr);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = s.family;
  return k;
}

// The half-open flow a backend's answer (tuple k: backend:port -> client:port) belongs to, as
// reply_find() finds it: under the client's side, its backend the answer's source.
std::optional<xlb_half_open> HalfOpenAnsweredBy(XdpDatapath& dp, const xlb_ct_key& k) {
  xlb_half_key hkey{};
  std::copy(std::begin(k.daddr), std::end(k.daddr), hkey.client);
  hkey.port = k.dport;
  hkey.proto = k.proto;
  hkey.family = k.family;
  auto h = dp.half_open_conntrack().Lookup(hkey);
  if (!h) return std::nullopt;
  auto be = dp.backends().Lookup(h->ct.backend_id);
  if (!be || !std::equal(std::begin(be->addr), std::end(be->addr), k.saddr) ||
      (be->port != 0 ? be->port : h->revnat.port) != k.sport) {
    return std::nullopt;
  }
  return *h;
}

// A reply map entry, read back: an established flow's, a decapsulated SYN's TUNNEL entry, or
// the REVNAT entry inside a half-open flow (a SYN's, which moves over with the client's ACK).
std::optional<xlb_reply> ReplyOf(XdpDatapath& dp, std::string_view src, std::string_view dst,
                                 uint16_t sport, uint16_t dport, uint8_t proto) {
  const xlb_ct_key k = TupleKey(src, dst, sport, dport, proto);
  auto r = dp.replies().Lookup(k);
  if (!r) r = dp.half_open_replies().Lookup(k);
  if (r) return *r;
  if (auto h = HalfOpenAnsweredBy(dp, k)) return h->revnat;
  return std::nullopt;
}

void ExpectReply(XdpDatapath& dp, std::string_view src, std::string_view dst, uint16_t sport,
                 uint16_t dport, uint8_t kind, std::string_view addr, uint16_t port,
                 uint8_t encap) {
  const auto r = ReplyOf(dp, src, dst, sport, dport, kProtoTcp);
  ASSERT_TRUE(r) << "no reply entry for " << src << ":" << sport << " > " << dst << ":" << dport;
  const Addr a = ParseAddr(addr);
  EXPECT_EQ(r->kind, kind);
  EXPECT_EQ(r->family, a.family);
  EXPECT_EQ(r->encap, encap);
  EXPECT_EQ(ntohs(r->port), port);
  EXPECT_TRUE(std::equal(a.words.begin(), a.words.end(), r->addr)) << "reply entry address";
  EXPECT_NE(r->last_seen, 0u);
}

// Which table holds a TCP reply entry: the half-open one (a SYN's) or the established one.
void ExpectReplyHalfOpen(XdpDatapath& dp, std::string_view src, std::string_view dst,
                         uint16_t sport, uint16_t dport, bool half_open) {
  const xlb_ct_key k = TupleKey(src, dst, sport, dport, kProtoTcp);
  EXPECT_EQ(dp.half_open_replies().Lookup(k).ok(), half_open) << "reply entry in xlb_rplhalf_v1";
  EXPECT_EQ(dp.replies().Lookup(k).ok(), !half_open) << "reply entry in xlb_reply_v1";
}

// Every slot of a service's table to one backend: wherever a flow hashes, it lands there.
void PointTableAt(XdpDatapath& dp, uint32_t service_id, uint32_t backend_id) {
  const std::vector<uint32_t> slots(dp.maglev_size(), backend_id);
  Must(dp.InstallMaglevTable(service_id, slots));
}

// Changes one service entry in place (what the agent's syncer would write).
void EditService(XdpDatapath& dp, const xlb_service_key& key,
                 const std::function<void(xlb_service&)>& edit) {
  auto svc = dp.services().Lookup(key);
  if (!svc) {
    std::fprintf(stderr, "golden set-up: no service entry: %s\n", svc.error().ToString().c_str());
    std::abort();
  }
  edit(*svc);
  Must(dp.services().Update(key, *svc));
}

xlb_src_range_key SourceRange(uint32_t service_id, std::string_view addr, uint32_t bits) {
  const Addr a = ParseAddr(addr);
  xlb_src_range_key k{};
  k.prefixlen = XLB_SRC_RANGE_PREFIX_BASE + bits;
  k.service_id = service_id;
  k.family = a.family;
  std::copy(a.words.begin(), a.words.end(), k.addr);
  return k;
}

// Service semantics:
//   20: 198.18.10.20:80/tcp, ClientIP 100 s -> 22: 198.18.21.1:80, 23: 198.18.21.2:80;
//       the table starts with every slot on 22 (cases point it at 23)
//   21: [2001:db8:10::20]:80/tcp, the same -> 24: [2001:db8:21::1]:80, 25: [2001:db8:21::2]:80
//   22: 198.18.10.21:80/tcp with source ranges (198.18.0.0/24), and 198.18.10.22:80/tcp
//       without the flag -> 26: 198.18.22.1:8080
//   23: [2001:db8:10::21]:80/tcp with source ranges (2001:db8:1::/64) -> 27: [2001:db8:22::1]:8080
//   24-27: 198.18.10.23 and 2001:db8:10::23, 80/tcp and 53/udp: no endpoints, REJECT
void InstallSemanticsServices(XdpDatapath& dp, ServiceWriter& w) {
  auto affine = [&](uint32_t id, const char* vip, std::vector<WeightedBackend> bes) {
    const xlb_service_key key = VipKey(vip, 80, IPPROTO_TCP);
    Must(w.AddService(id, std::span(&key, 1), bes, XLB_SVC_F_AFFINITY));
    EditService(dp, key, [](xlb_service& s) { s.affinity_timeout = kAffinityTimeoutS; });
    PointTableAt(dp, id, bes.front().id);
    for (const WeightedBackend& b : bes) {
      Must(dp.affinity_match().Update({.service_id = id, .backend_id = b.id}, 0));
    }
  };
  affine(20, kVip4Affine, {{22, Backend("198.18.21.1", 80)}, {23, Backend("198.18.21.2", 80)}});
  affine(21, kVip6Affine,
         {{24, Backend("2001:db8:21::1", 80)}, {25, Backend("2001:db8:21::2", 80)}});

  const std::vector<xlb_service_key> ranged4 = {VipKey(kVip4Ranged, 80, IPPROTO_TCP),
                                                VipKey(kVip4RangedOpen, 80, IPPROTO_TCP)};
  const WeightedBackend be4{26, Backend("198.18.22.1", 8080)};
  Must(w.AddService(22, ranged4, std::span(&be4, 1)));
  EditService(dp, ranged4[0], [](xlb_service& s) { s.flags |= XLB_SVC_F_SOURCE_RANGES; });
  Must(dp.source_ranges().Update(SourceRange(22, "198.18.0.0", 24), 0));
  const xlb_service_key ranged6 = VipKey(kVip6Ranged, 80, IPPROTO_TCP);
  const WeightedBackend be6{27, Backend("2001:db8:22::1", 8080)};
  Must(w.AddService(23, std::span(&ranged6, 1), std::span(&be6, 1), XLB_SVC_F_SOURCE_RANGES));
  Must(dp.source_ranges().Update(SourceRange(23, "2001:db8:1::", 64), 0));

  uint32_t id = 24;
  for (const char* vip : {kVip4Reject, kVip6Reject}) {
    for (const auto& [port, proto] : {std::pair{80, IPPROTO_TCP}, std::pair{53, IPPROTO_UDP}}) {
      const xlb_service_key key = VipKey(vip, port, proto);
      Must(w.AddService(id++, std::span(&key, 1), {}, XLB_SVC_F_REJECT));
    }
  }
}

// A TCP segment from any source to any destination, in a client frame.
Bytes TcpFrom(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
              uint8_t flags) {
  return InFrame(kClientMac, kNodeMac,
                 L3(src, dst).tcp(sport, dport, flags, {.seq = 1000}).payload("xlb").build());
}

Bytes UdpFrom(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
              size_t payload) {
  return InFrame(kClientMac, kNodeMac,
                 L3(src, dst).udp(sport, dport).payload(std::string(payload, 'q')).build());
}

// The IP packet inside an untagged Ethernet frame.
Bytes IpOf(const Bytes& frame) {
  return Bytes(frame.begin() + 14, frame.end());
}

// ICMP port unreachable from `vip` to the sender of `offending` (an untagged frame), as
// Linux sends it (IPv4: TTL 64, TOS 0xc0; IPv6: hop limit 64), quoting what RFC 1812 and
// RFC 4443 allow (the builder's default), the Ethernet addresses swapped.
Bytes PortUnreach(const Bytes& offending, std::string_view vip, std::string_view client,
                  const char* to_mac, const char* from_mac) {
  Packet p = Packet().eth(from_mac, to_mac);
  if (IsV6(vip)) {
    return p.ipv6(vip, client).icmp6_dest_unreach(pkt::kIcmp6PortUnreach, IpOf(offending)).build();
  }
  return p.ipv4(vip, client, {.ttl = 64, .id = 0, .tos = 0xc0})
      .icmp4_dest_unreach(pkt::kIcmpPortUnreach, IpOf(offending))
      .build();
}

// Moves every ClientIP affinity entry `seconds` into the past.
void AgeAffinity(XdpDatapath& dp, uint64_t seconds) {
  auto aff = dp.affinity();
  Must(aff.ForEach([&](const xlb_affinity_key& k, xlb_affinity v) {
    v.last_seen -= seconds * 1000000000ULL;
    Must(aff.Update(k, v));
  }));
}

// The affinity entry of (service, client) names `backend_id`.
void ExpectAffinity(XdpDatapath& dp, uint32_t service_id, std::string_view client,
                    uint32_t backend_id) {
  xlb_affinity_key k{};
  const Addr a = ParseAddr(client);
  std::copy(a.words.begin(), a.words.end(), k.client);
  k.service_id = service_id;
  k.family = a.family;
  auto v = dp.affinity().Lookup(k);
  ASSERT_TRUE(v) << "no affinity entry for " << client << " of service " << service_id;
  EXPECT_EQ(v->backend_id, backend_id);
  EXPECT_NE(v->last_seen, 0u);
}

// sessionAffinity ClientIP, loadBalancerSourceRanges, reject without endpoints.
void AddSemanticsCases(std::vector<GoldenCase>& cases) {
  auto add = [&](std::string name, std::vector<GoldenStep> steps) {
    cases.push_back({std::move(name), std::move(steps)});
  };
  auto before = [](GoldenStep s, std::function<void(XdpDatapath&, ServiceWriter&)> fn) {
    s.before = std::move(fn);
    return s;
  };
  auto after = [](GoldenStep s, std::function<void(XdpDatapath&)> fn) {
    s.after = std::move(fn);
    return s;
  };

  // --- ClientIP affinity with a timeout ---
  for (const auto& [family, vip, client, svc, first, second, be1, be2] :
       {std::tuple{"4", kVip4Affine, kClient4, 20u, 22u, 23u, "198.18.21.1", "198.18.21.2"},
        std::tuple{"6", kVip6Affine, kClient6, 21u, 24u, 25u, "2001:db8:21::1",
                   "2001:db8:21::2"}}) {
    auto syn = [vip = vip, client = client](uint16_t sport) {
      return TcpFrom(client, vip, sport, 80, kTcpSyn);
    };
    auto to = [client = client](const char* be, uint16_t sport) {
      return TcpFrom(client, be, sport, 80, kTcpSyn);
    };
    const uint32_t s = svc, b1 = first, b2 = second;
    const std::string c(client);
    add(std::string("affinity") + family + "_keeps_backend_until_idle_past_timeout",
        {after(Step("first flow: Maglev (every slot on the first backend)", syn(42000),
                    XLB_FWD_NEW_FLOW, to(be1, 42000)),
               [=](XdpDatapath& dp) { ExpectAffinity(dp, s, c, b1); }),
         after(before(Step("table moved to the second: a new flow keeps the first", syn(42001),
                           XLB_FWD_NEW_FLOW, to(be1, 42001)),
                      [=](XdpDatapath& dp, ServiceWriter&) { PointTableAt(dp, s, b2); }),
               [=](XdpDatapath& dp) { ExpectAffinity(dp, s, c, b1); }),
         before(Step("idle 99 s of 100: still kept", syn(42002), XLB_FWD_NEW_FLOW, to(be1, 42002)),
                [](XdpDatapath& dp, ServiceWriter&) { AgeAffinity(dp, kAffinityTimeoutS - 1); }),
         after(before(
                   Step("idle past the timeout: moves to the table's backend", syn(42003),
                        XLB_FWD_NEW_FLOW, to(be2, 42003)),
                   [](XdpDatapath& dp, ServiceWriter&) { AgeAffinity(dp, kAffinityTimeoutS + 1); }),
               [=](XdpDatapath& dp) { ExpectAffinity(dp, s, c, b2); }),
         Step("and stays there", syn(42004), XLB_FWD_NEW_FLOW, to(be2, 42004))});
  }
  {
    auto syn = [](uint16_t sport) { return TcpFrom(kClient4, kVip4Affine, sport, 80, kTcpSyn); };
    auto to = [](const char* be, uint16_t sport) {
      return TcpFrom(kClient4, be, sport, 80, kTcpSyn);
    };
    add("affinity_moves_when_backend_leaves_the_match_set",
        {Step("first flow", syn(42010), XLB_FWD_NEW_FLOW, to("198.18.21.1", 42010)),
         before(Step("backend no longer takes new flows: Maglev", syn(42011), XLB_FWD_NEW_FLOW,
                     to("198.18.21.2", 42011)),
                [](XdpDatapath& dp, ServiceWriter&) {
                  PointTableAt(dp, 20, 23);
                  Must(dp.affinity_match().Erase({.service_id = 20, .backend_id = 22}));
                })});
    add("affinity_moves_when_backend_invalid",
        {Step("first flow", syn(42020), XLB_FWD_NEW_FLOW, to("198.18.21.1", 42020)),
         before(Step("backend invalid: Maglev", syn(42021), XLB_FWD_NEW_FLOW,
                     to("198.18.21.2", 42021)),
                [](XdpDatapath& dp, ServiceWriter& w) {
                  PointTableAt(dp, 20, 23);
                  xlb_backend dead = Backend("198.18.21.1", 80);
                  dead.flags = 0;
                  Must(w.SetBackend(22, dead));
                })});
    // Conntrack still comes first: an established flow of an affine service is not moved by
    // the table, and the entry is the flow's, not the client's.
    add("affinity_established_flow_follows_conntrack",
        {Step("SYN", syn(42030), XLB_FWD_NEW_FLOW, to("198.18.21.1", 42030)),
         before(Step("ACK after the client's entry expired: conntrack",
                     TcpFrom(kClient4, kVip4Affine, 42030, 80, kTcpAck), XLB_FWD_ESTABLISHED,
                     TcpFrom(kClient4, "198.18.21.1", 42030, 80, kTcpAck)),
                [](XdpDatapath& dp, ServiceWriter&) {
                  PointTableAt(dp, 20, 23);
                  AgeAffinity(dp, kAffinityTimeoutS + 1);
                })});
  }

  // --- loadBalancerSourceRanges ---
  add("source_range4_inside_passes_new_and_established",
      {Step("SYN from inside", TcpFrom(kClient4, kVip4Ranged, 42100, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            TcpFrom(kClient4, "198.18.22.1", 42100, 8080, kTcpSyn)),
       Step("ACK", TcpFrom(kClient4, kVip4Ranged, 42100, 80, kTcpAck), XLB_FWD_ESTABLISHED,
            TcpFrom(kClient4, "198.18.22.1", 42100, 8080, kTcpAck))});
  add("source_range4_outside_dropped",
      {Step("SYN from outside", TcpFrom(kOutsider4, kVip4Ranged, 42101, 80, kTcpSyn),
            XLB_DROP_SOURCE_RANGE),
       Step("and its ACK", TcpFrom(kOutsider4, kVip4Ranged, 42101, 80, kTcpAck),
            XLB_DROP_SOURCE_RANGE)});
  add("source_range4_key_without_the_flag_not_filtered",
      {Step("SYN from outside to the other key of the service",
            TcpFrom(kOutsider4, kVip4RangedOpen, 42102, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            TcpFrom(kOutsider4, "198.18.22.1", 42102, 8080, kTcpSyn))});
  add("source_range4_narrowed_cuts_established_flow",
      {Step("SYN from inside", TcpFrom(kClient4, kVip4Ranged, 42103, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            TcpFrom(kClient4, "198.18.22.1", 42103, 8080, kTcpSyn)),
       before(Step("ranges narrowed to another /32: the ACK drops",
                   TcpFrom(kClient4, kVip4Ranged, 42103, 80, kTcpAck), XLB_DROP_SOURCE_RANGE),
              [](XdpDatapath& dp, ServiceWriter&) {
                Must(dp.source_ranges().Update(SourceRange(22, "198.18.0.2", 32), 0));
                Must(dp.source_ranges().Erase(SourceRange(22, "198.18.0.0", 24)));
              }),
       before(Step("flag removed from the key: the flow goes on",
                   TcpFrom(kClient4, kVip4Ranged, 42103, 80, kTcpAck), XLB_FWD_ESTABLISHED,
                   TcpFrom(kClient4, "198.18.22.1", 42103, 8080, kTcpAck)),
              [](XdpDatapath& dp, ServiceWriter&) {
                EditService(dp, VipKey(kVip4Ranged, 80, IPPROTO_TCP),
                            [](xlb_service& s) { s.flags &= ~XLB_SVC_F_SOURCE_RANGES; });
              })});
  add("source_range6_inside_passes_outside_dropped",
      {Step("SYN from inside", TcpFrom(kClient6, kVip6Ranged, 42110, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            TcpFrom(kClient6, "2001:db8:22::1", 42110, 8080, kTcpSyn)),
       Step("ACK", TcpFrom(kClient6, kVip6Ranged, 42110, 80, kTcpAck), XLB_FWD_ESTABLISHED,
            TcpFrom(kClient6, "2001:db8:22::1", 42110, 8080, kTcpAck)),
       Step("SYN from outside", TcpFrom(kOutsider6, kVip6Ranged, 42111, 80, kTcpSyn),
            XLB_DROP_SOURCE_RANGE)});
  add("tc_source_range_pod_outside_dropped",
      {Step("pod SYN (TC)",
            InFrame(kPodMac, kHostVethMac, Seg(kPod4, kVip4Ranged, 42120, 80, kTcpSyn)),
            TC_ACT_SHOT, XLB_DROP_SOURCE_RANGE, std::nullopt, Hook::kTc)});

  // --- a service port without endpoints rejects ---
  {
    const Bytes syn4 = TcpFrom(kClient4, kVip4Reject, 42200, 80, kTcpSyn);
    const Bytes syn6 = TcpFrom(kClient6, kVip6Reject, 42201, 80, kTcpSyn);
    add("reject_tcp4_syn_port_unreachable",
        {Step("SYN", syn4, XDP_TX, XLB_FWD_REJECT,
              PortUnreach(syn4, kVip4Reject, kClient4, kClientMac, kNodeMac))});
    add("reject_tcp6_syn_port_unreachable",
        {Step("SYN", syn6, XDP_TX, XLB_FWD_REJECT,
              PortUnreach(syn6, kVip6Reject, kClient6, kClientMac, kNodeMac))});
    // Every length modulo 4 (the checksum's last word), and quotes cut at the RFC limits.
    std::vector<GoldenStep> udp4, udp6;
    for (size_t n : {4, 5, 6, 7, 600}) {
      const Bytes d4 = UdpFrom(kClient4, kVip4Reject, 42210, 53, n);
      udp4.push_back(Step("datagram of " + std::to_string(n) + " bytes", d4, XDP_TX, XLB_FWD_REJECT,
                          PortUnreach(d4, kVip4Reject, kClient4, kClientMac, kNodeMac)));
    }
    for (size_t n : {4, 5, 6, 7, 1300}) {
      const Bytes d6 = UdpFrom(kClient6, kVip6Reject, 42211, 53, n);
      udp6.push_back(Step("datagram of " + std::to_string(n) + " bytes", d6, XDP_TX, XLB_FWD_REJECT,
                          PortUnreach(d6, kVip6Reject, kClient6, kClientMac, kNodeMac)));
    }
    add("reject_udp4_port_unreachable", std::move(udp4));
    add("reject_udp6_port_unreachable", std::move(udp6));
    add("reject_vlan_tagged_cannot_be_answered",
        {Step("802.1Q SYN",
              Frame().vlan(100).ipv4(kClient4, kVip4Reject).tcp(42220, 80, kTcpSyn).build(),
              XLB_DROP_REJECT)});
    add("reject_never_answers_a_multicast_or_unspecified_source",
        {Step("from 224.0.0.5", UdpFrom("224.0.0.5", kVip4Reject, 42250, 53, 8), XLB_DROP_REJECT),
         Step("from 0.0.0.0", UdpFrom("0.0.0.0", kVip4Reject, 42250, 53, 8), XLB_DROP_REJECT),
         Step("from ff02::1", UdpFrom("ff02::1", kVip6Reject, 42250, 53, 8), XLB_DROP_REJECT),
         Step("from ::", UdpFrom("::", kVip6Reject, 42250, 53, 8), XLB_DROP_REJECT)});
    add("reject_without_the_flag_drops",
        {before(
            Step("SYN", TcpFrom(kClient4, kVip4Reject, 42230, 80, kTcpSyn), XLB_DROP_NO_BACKEND),
            [](XdpDatapath& dp, ServiceWriter&) {
              EditService(dp, VipKey(kVip4Reject, 80, IPPROTO_TCP),
                          [](xlb_service& s) { s.flags &= ~XLB_SVC_F_REJECT; });
            })});
    const Bytes pod4 = InFrame(kPodMac, kHostVethMac, Seg(kPod4, kVip4Reject, 42240, 80, kTcpSyn));
    const Bytes pod6 = InFrame(kPodMac, kHostVethMac,
                               L3(kPod6, kVip6Reject).udp(42241, 53).payload("query").build());
    add("tc_reject_tcp4_back_into_the_pod",
        {Step("pod SYN (TC)", pod4, TC_ACT_REDIRECT, XLB_FWD_REJECT,
              PortUnreach(pod4, kVip4Reject, kPod4, kPodMac, kHostVethMac), Hook::kTc)});
    add("tc_reject_udp6_back_into_the_pod",
        {Step("pod datagram (TC)", pod6, TC_ACT_REDIRECT, XLB_FWD_REJECT,
              PortUnreach(pod6, kVip6Reject, kPod6, kPodMac, kHostVethMac), Hook::kTc)});
  }
}

}  // namespace

// Services (id: VIP -> backend id: address):
//   1: 198.18.10.1:80/tcp -> 1: 198.18.20.1:8080       2: 198.18.10.1:53/udp -> 2: 198.18.20.2:5353
//   3: [2001:db8:10::1]:80/tcp -> 3: [2001:db8:20::1]:8080
//   4: [2001:db8:10::1]:53/udp -> 4: [2001:db8:20::2] (port kept)
//   5: 198.18.10.2, all TCP ports -> 5: 198.18.20.5 (port kept)
//   6: 198.18.10.6:80/tcp, no backend
//   7: 198.18.10.7:80/tcp -> 7: 198.18.20.7:80 (cases move it to 8: 198.18.20.8)
//   8: 198.18.10.8:80/tcp -> 9: 198.18.20.9:80 (cases remove it for 10: 198.18.20.10)
void InstallGoldenServices(XdpDatapath& dp, ServiceWriter& w) {
  (void)dp;
  auto add = [&](uint32_t id, xlb_service_key vip, std::vector<WeightedBackend> bes) {
    Must(w.AddService(id, std::span(&vip, 1), bes));
  };
  add(1, VipKey(kVip4, 80, IPPROTO_TCP), {{1, Backend("198.18.20.1", 8080)}});
  add(2, VipKey(kVip4, 53, IPPROTO_UDP), {{2, Backend("198.18.20.2", 5353)}});
  add(3, VipKey(kVip6, 80, IPPROTO_TCP), {{3, Backend("2001:db8:20::1", 8080)}});
  add(4, VipKey(kVip6, 53, IPPROTO_UDP), {{4, Backend("2001:db8:20::2", 0)}});
  add(5, VipKey(kVip4AllPorts, 0, IPPROTO_TCP), {{5, Backend("198.18.20.5", 0)}});
  add(6, VipKey(kVip4NoBackend, 80, IPPROTO_TCP), {});
  add(7, VipKey(kVip4Moving, 80, IPPROTO_TCP), {{7, Backend("198.18.20.7", 80)}});
  add(8, VipKey(kVip4Gone, 80, IPPROTO_TCP), {{9, Backend("198.18.20.9", 80)}});
  // Tunnelled backends (remote clusters), see the constants above.
  add(9, VipKey(kVip4Tun, 80, IPPROTO_TCP), {{11, TunnelBackend("198.18.40.1", 8080, kRemoteNode4)}});
  add(10, VipKey(kVip4Tun6, 80, IPPROTO_TCP),
      {{12, TunnelBackend("198.18.40.2", 8080, kRemoteNode6)}});
  add(11, VipKey(kVip6Tun4, 80, IPPROTO_TCP),
      {{13, TunnelBackend("2001:db8:40::1", 8080, kRemoteNode4)}});
  add(12, VipKey(kVip6Tun, 80, IPPROTO_TCP),
      {{14, TunnelBackend("2001:db8:40::2", 8080, kRemoteNode6)}});
  add(13, VipKey(kVip4TunUdp, 53, IPPROTO_UDP),
      {{15, TunnelBackend("198.18.40.3", 5353, kRemoteNode4)}});
  add(14, VipKey(kVip4NoNeigh, 80, IPPROTO_TCP),
      {{16, TunnelBackend("198.18.40.4", 8080, "198.18.101.9")}});
  add(15, VipKey(kVip4Unreach, 80, IPPROTO_TCP),
      {{17, TunnelBackend("198.18.40.5", 8080, "198.18.102.9")}});
  add(16, VipKey(kVip6TunUdp, 53, IPPROTO_UDP),
      {{18, TunnelBackend("2001:db8:40::3", 5353, kRemoteNode6)}});
  add(17, VipKey(kVip4TunUdp6, 53, IPPROTO_UDP),
      {{19, TunnelBackend("198.18.40.6", 5353, kRemoteNode6)}});
  add(18, VipKey(kVip4Snat, 80, IPPROTO_TCP), {{20, SnatBackend(kRemoteNode4, 8080)}});
  add(19, VipKey(kVip6Snat, 80, IPPROTO_TCP), {{21, SnatBackend(kRemoteNode6, 8080)}});
  InstallSemanticsServices(dp, w);
}

xlb_peer_key PeerKey(std::string_view addr) {
  const Addr a = ParseAddr(addr);
  xlb_peer_key k{};
  std::copy(a.words.begin(), a.words.end(), k.addr);
  k.family = a.family;
  return k;
}

void InstallGoldenPeers(XdpDatapath& dp) {
  for (const char* node : {kRemoteNode4, kRemoteNode6}) {
    Must(dp.peers().Update(PeerKey(node), xlb_peer{.cluster_id = 2, .pad = {}}));
  }
}

xlb_config GoldenConfig() {
  xlb_config c = XLB_CONFIG_DEFAULTS;
  // Every golden service has one backend: a small table is the same table, built faster.
  c.maglev_size = 1021;
  c.flags = XLB_CFG_F_TUNNEL_PEERS;  // the spoofed-source cases need the check on
  c.tunnel_addr4 = ParseAddr(kNodeTunnel4).words[0];
  const Addr a6 = ParseAddr(kNodeTunnel6);
  std::copy(a6.words.begin(), a6.words.end(), c.tunnel_addr6);
  return c;
}

namespace {

// The golden network (see golden_cases.h), inside ns.
bool SetUpGoldenNet(Netns& ns, std::string* error) {
  const std::vector<std::string> cmds = {
      "link add up0 address " + std::string(kUplinkMac) + " type veth peer name up1",
      "link set lo up",
      "link set up0 up",
      "link set up1 up",
      "addr add " + std::string(kNodeTunnel4) + "/24 dev up0",
      "addr add " + std::string(kNodeTunnel6) + "/64 dev up0 nodad",
      "neigh add " + std::string(kRemoteNode4) + " lladdr " + kRemoteNodeMac +
          " dev up0 nud permanent",
      "neigh add " + std::string(kRemoteNode6) + " lladdr " + kRemoteNodeMac +
          " dev up0 nud permanent",
      "route add 198.18.101.0/24 via 198.18.100.3 dev up0",
      "route add 2001:db8:101::/64 via 2001:db8:100::3 dev up0",
      "route add unreachable 198.18.102.0/24",
      "route add 198.18.103.0/24 via " + std::string(kRemoteNode4) + " dev up0 mtu lock 1400",
      "route add unreachable 2001:db8:102::/64",
  };
  // bpf_fib_lookup answers as for a forwarded packet: forwarding must be on.
  CommandResult r = RunCommand("ip netns exec " + ns.name() +
                               " sysctl -qw net.ipv4.conf.all.forwarding=1"
                               " net.ipv6.conf.all.forwarding=1");
  if (r.status != 0) {
    *error = "sysctl in " + ns.name() + ": " + r.output;
    return false;
  }
  // One ip process for all of it (ip -batch): the set-up runs once per case.
  std::string batch;
  for (const std::string& cmd : cmds) batch += cmd + "\n";
  r = RunCommand("printf '" + batch + "' | ip -n " + ns.name() + " -batch -");
  if (r.status != 0) {
    *error = "ip -n " + ns.name() + " -batch: " + r.output;
    return false;
  }
  return true;
}

// The golden network, made once per test binary (the cases only read it: each case gets a
// fresh datapath and maps) and deleted by the static's destructor at exit.
Netns* GoldenNet(std::string* error) {
  static Netns ns;
  static const bool set_up = ns.ok() && SetUpGoldenNet(ns, error);
  if (!ns.ok()) *error = ns.error();
  return set_up ? &ns : nullptr;
}

}  // namespace

bool WithGoldenDatapath(const std::function<void(xlb_config&)>& config,
                        const std::function<void(GoldenDatapath&)>& body) {
  std::string error;
  Netns* net = GoldenNet(&error);
  if (net == nullptr) {
    ADD_FAILURE() << "golden network: " << error;
    return false;
  }
  Netns& ns = *net;
  bool ok = false;
  const bool entered = ns.RunInside([&] {
    LoadOptions o;
    o.pin_dir = "";
    // Small LRUs: preallocating the default 256K-entry conntrack and reply maps for every
    // case is most of a case's time.
    o.max_ct_entries = 4096;
    o.config = GoldenConfig();
    if (config) config(o.config);
    auto dp = XdpDatapath::Load(o);
    if (!dp) {
      ADD_FAILURE() << dp.error().ToString();
      return;
    }
    auto tc = TcDatapath::Load(**dp);
    if (!tc) {
      ADD_FAILURE() << tc.error().ToString();
      return;
    }
    ServiceWriter writer(**dp);
    InstallGoldenServices(**dp, writer);
    InstallGoldenPeers(**dp);
    const int uplink = static_cast<int>(if_nametoindex("up0"));
    if (uplink <= 0) {
      ADD_FAILURE() << "no up0 in " << ns.name();
      return;
    }
    GoldenDatapath golden{**dp, **tc, writer, uplink};
    body(golden);
    ok = !::testing::Test::HasFatalFailure();
  });
  if (!entered) ADD_FAILURE() << ns.error();
  return ok && entered;
}

Result<TestRunResult> RunStep(GoldenDatapath& g, const GoldenStep& step, std::span<const uint8_t> in) {
  const int ifindex = step.on_uplink ? g.uplink : 0;
  return step.hook == Hook::kTc ? TestRunTc(g.tc.prog_fd(), in, ifindex)
         : ifindex            ? TestRunXdpOn(g.xdp.prog_fd(), in, ifindex)
                              : TestRunXdp(g.xdp.prog_fd(), in);
}

bool RunGoldenCase(const GoldenCase& c,
                   const std::function<void(const GoldenStep&, const GoldenRun&, XdpDatapath&)>& check) {
  bool ok = false;
  const bool ran = WithGoldenDatapath(c.config, [&](GoldenDatapath& g) {
    for (const GoldenStep& step : c.steps) {
      SCOPED_TRACE(step.what);
      if (step.before) step.before(g.xdp, g.writer);
      GoldenRun run;
      run.before = ReasonCounts(g.xdp);
      auto r = RunStep(g, step, step.in);
      if (!r) {
        ADD_FAILURE() << "BPF_PROG_TEST_RUN: " << r.error().ToString();
        return;
      }
      run.result = {r->retval, std::move(r->out)};
      run.after = ReasonCounts(g.xdp);
      check(step, run, g.xdp);
      if (step.after) step.after(g.xdp);
    }
    ok = true;
  });
  return ok && ran;
}

namespace {

// What the agent writes for an uplink that takes XDP frames: up0 into xlb_fwddev.
void ForwardOntoUp0(XdpDatapath& dp) {
  const auto up0 = static_cast<uint32_t>(*IfIndex("up0"));
  Must(dp.forward_devices().Update(up0, up0));
}

// A step's `before`: every next-hop cache entry rewritten by f.
std::function<void(XdpDatapath&, ServiceWriter&)> EditNexthops(
    std::function<void(xlb_nexthop&)> f) {
  return [f](XdpDatapath& dp, ServiceWriter&) {
    Must(dp.nexthops().ForEach([&](const xlb_nexthop_key& k, xlb_nexthop v) {
      f(v);
      Must(dp.nexthops().Update(k, v));
    }));
  };
}

}  // namespace

std::vector<GoldenCase> GoldenCases() {
  using namespace pkt;  // NOLINT: the builder's constants read best unqualified here
  std::vector<GoldenCase> cases;
  auto add = [&](std::string name, std::vector<GoldenStep> steps) {
    cases.push_back({std::move(name), std::move(steps)});
  };

  // --- DNAT of new and established flows ---
  add("tcp4_syn_then_ack",
      {Step("SYN", Tcp4(kVip4, 40000, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            Tcp4("198.18.20.1", 40000, 8080, kTcpSyn)),
       Step("ACK", Tcp4(kVip4, 40000, 80, kTcpAck), XLB_FWD_ESTABLISHED,
            Tcp4("198.18.20.1", 40000, 8080, kTcpAck))});
  add("tcp6_syn_then_ack",
      {Step("SYN", Tcp6(kVip6, 40000, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            Tcp6("2001:db8:20::1", 40000, 8080, kTcpSyn)),
       Step("ACK", Tcp6(kVip6, 40000, 80, kTcpAck), XLB_FWD_ESTABLISHED,
            Tcp6("2001:db8:20::1", 40000, 8080, kTcpAck))});
  {
    auto udp4 = [](const char* dst, uint16_t dport, UdpOpts o = {}) {
      return Frame().ipv4(kClient4, dst).udp(41000, dport, o).payload("query").build();
    };
    add("udp4", {Step("datagram", udp4(kVip4, 53), XLB_FWD_NEW_FLOW, udp4("198.18.20.2", 5353)),
                 Step("second datagram", udp4(kVip4, 53), XLB_FWD_ESTABLISHED,
                      udp4("198.18.20.2", 5353))});
    auto udp4z = [](const char* dst, uint16_t sport, uint16_t dport) {
      return Frame().ipv4(kClient4, dst).udp(sport, dport, {.zero_checksum = true}).payload("q").build();
    };
    add("udp4_zero_checksum_stays_zero",
        {Step("datagram", udp4z(kVip4, 41001, 53), XLB_FWD_NEW_FLOW,
              udp4z("198.18.20.2", 41001, 5353))});
  }
  {
    auto udp6 = [](const char* dst) {
      return Frame().ipv6(kClient6, dst).udp(41000, 53).payload("query").build();
    };
    add("udp6_port_kept",
        {Step("datagram", udp6(kVip6), XLB_FWD_NEW_FLOW, udp6("2001:db8:20::2"))});
  }
  add("all_ports_service",
      {Step("SYN to any port", Tcp4(kVip4AllPorts, 40000, 12345, kTcpSyn), XLB_FWD_NEW_FLOW,
            Tcp4("198.18.20.5", 40000, 12345, kTcpSyn))});

  // --- header variants that must DNAT and keep everything else ---
  {
    Ipv4Opts opts{.options = Cat({Ipv4RouterAlert(), Ipv4Nop()})};
    add("ipv4_options",
        {Step("SYN with options", Tcp4(kVip4, 40010, 80, kTcpSyn, opts), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40010, 8080, kTcpSyn, opts))});
  }
  {
    auto tagged = [](const char* dst, uint16_t dport) {
      return Frame().vlan(100).ipv4(kClient4, dst).tcp(40020, dport, kTcpSyn).build();
    };
    add("vlan", {Step("802.1Q SYN", tagged(kVip4, 80), XLB_FWD_NEW_FLOW,
                      tagged("198.18.20.1", 8080))});
    auto qinq = [](const char* dst, uint16_t dport) {
      return Frame().vlan(10, {.tpid = kTpid8021ad}).vlan(20).ipv6(kClient6, dst)
          .tcp(40021, dport, kTcpSyn).build();
    };
    add("qinq_ipv6", {Step("802.1ad+802.1Q SYN", qinq(kVip6, 80), XLB_FWD_NEW_FLOW,
                           qinq("2001:db8:20::1", 8080))});
    auto three = Frame().vlan(1, {.tpid = kTpid8021ad}).vlan(2, {.tpid = kTpid8021ad}).vlan(3)
                     .ipv4(kClient4, kVip4).tcp(40022, 80, kTcpSyn).build();
    add("three_vlan_tags_unsupported", {Step("passes untouched", three, XLB_PASS_UNSUPPORTED)});
  }
  {
    auto ext = [](const char* dst, uint16_t dport) {
      return Frame().ipv6(kClient6, dst).hop_by_hop(Ipv6RouterAlert(0)).dest_opts()
          .routing(0, 0, {}).fragment6({.offset = 0, .more = false, .id = 7})
          .tcp(40030, dport, kTcpSyn).payload("ext").build();
    };
    add("ipv6_extension_headers", {Step("HBH+DST+RH(0 left)+atomic frag", ext(kVip6, 80),
                                        XLB_FWD_NEW_FLOW, ext("2001:db8:20::1", 8080))});
    auto rh = Frame().ipv6(kClient6, kVip6).routing(0, 1, {"2001:db8:30::1"})
                  .tcp(40031, 80, kTcpSyn).build();
    add("ipv6_routing_segments_left", {Step("waypoint, not ours", rh, XLB_PASS_UNSUPPORTED)});
    Packet deep = Frame().ipv6(kClient6, kVip6);
    for (int i = 0; i < 7; ++i) deep.dest_opts();
    add("ipv6_too_many_extension_headers",
        {Step("7 headers", deep.tcp(40032, 80, kTcpSyn).build(), XLB_PASS_UNSUPPORTED)});
  }

  // --- not for xlb: byte-for-byte unchanged ---
  add("non_vip_tcp4", {Step("other address", Tcp4("198.18.99.99", 40000, 80, kTcpSyn),
                            XLB_PASS_NO_SERVICE)});
  add("non_vip_tcp6", {Step("other address", Tcp6("2001:db8:99::1", 40000, 80, kTcpSyn),
                            XLB_PASS_NO_SERVICE)});
  add("vip_other_port", {Step("port 81", Tcp4(kVip4, 40000, 81, kTcpSyn), XLB_PASS_NO_SERVICE)});
  add("all_ports_other_proto",
      {Step("UDP to a TCP all-ports VIP",
            Frame().ipv4(kClient4, kVip4AllPorts).udp(1, 2).build(), XLB_PASS_NO_SERVICE)});
  {
    Packet arp = Packet().eth(kClientMac, kNodeMac, {.ethertype = kEtherTypeArp});
    add("arp_ethertype", {Step("ARP request", arp.payload(Bytes(28, 0x01)).build(),
                               XLB_PASS_NOT_IP)});
  }
  add("vip_other_l4", {Step("protocol 253 to a VIP",
                            Frame().ipv4(kClient4, kVip4, {.protocol = kProtoExperimental})
                                .payload("raw").build(),
                            XLB_PASS_NOT_L4)});
  add("ipv4_fragment", {Step("MF set", Tcp4(kVip4, 40000, 80, kTcpSyn, {.mf = true}),
                             XLB_PASS_FRAGMENT)});
  add("ipv6_fragment",
      {Step("offset 8", Frame().ipv6(kClient6, kVip6).fragment6({.offset = 8, .more = false, .id = 9})
                            .payload(Bytes(16, 0xab)).build(),
            XLB_PASS_FRAGMENT)});
  add("icmp_echo_to_vip", {Step("echo request",
                                Frame().ipv4(kClient4, kVip4).icmp4_echo_request(1, 1).build(),
                                XLB_PASS_ICMP)});

  // --- malformed: counted, never rewritten ---
  // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, as drivers drop runts.)
  add("ethernet_header_only",
      {Step("14 bytes, IPv4 ethertype",
            Packet().eth(kClientMac, kNodeMac, {.ethertype = kEtherTypeIpv4}).build(),
            XLB_PASS_MALFORMED_L3)});
  add("truncated_vlan", {Step("tag cut", Frame().vlan(5).ipv4(kClient4, kVip4).tcp(1, 80, kTcpSyn)
                                              .truncate(16).build(),
                              XLB_PASS_MALFORMED_L2)});
  add("truncated_ipv4_header",
      {Step("12 of 20 bytes", Frame().ipv4(kClient4, kVip4).tcp(1, 80, kTcpSyn).truncate(14 + 12).build(),
            XLB_PASS_MALFORMED_L3)});
  add("ihl_below_5", {Step("IHL 4", Tcp4(kVip4, 40000, 80, kTcpSyn, {.ihl = 4}),
                           XLB_PASS_MALFORMED_L3)});
  add("ipv4_version_6_in_ipv4_frame",
      {Step("version 6", Tcp4(kVip4, 40000, 80, kTcpSyn, {.version = 6}), XLB_PASS_MALFORMED_L3)});
  add("ipv4_tot_len_beyond_frame",
      {Step("tot_len 1000", Tcp4(kVip4, 40000, 80, kTcpSyn, {.tot_len = 1000}),
            XLB_PASS_MALFORMED_L3)});
  add("ipv4_tot_len_below_ihl",
      {Step("tot_len 10", Tcp4(kVip4, 40000, 80, kTcpSyn, {.tot_len = 10}),
            XLB_PASS_MALFORMED_L3)});
  add("ipv6_payload_beyond_frame",
      {Step("payload_len 1000",
            Frame().ipv6(kClient6, kVip6, {.payload_len = 1000}).tcp(40000, 80, kTcpSyn).build(),
            XLB_PASS_MALFORMED_L3)});
  add("tcp_doff_below_5",
      {Step("doff 4", Frame().ipv4(kClient4, kVip4).tcp(40000, 80, kTcpSyn, {.doff = 4}).build(),
            XLB_DROP_MALFORMED_L4)});
  add("tcp_doff_beyond_packet",
      {Step("doff 15, no options", Frame().ipv4(kClient4, kVip4).tcp(40000, 80, kTcpSyn, {.doff = 15})
                                       .build(),
            XLB_DROP_MALFORMED_L4)});
  add("tcp_header_truncated",
      {Step("10 of 20 bytes", Frame().ipv4(kClient4, kVip4, {.tot_len = 30}).tcp(40000, 80, kTcpSyn)
                                  .truncate(14 + 30).build(),
            XLB_DROP_MALFORMED_L4)});
  add("l4_too_short_for_ports",
      {Step("2 bytes of TCP", Frame().ipv4(kClient4, kVip4, {.tot_len = 22}).tcp(40000, 80, kTcpSyn)
                                  .truncate(14 + 22).build(),
            XLB_PASS_MALFORMED_L4)});
  add("udp_length_below_8",
      {Step("length 4", Frame().ipv4(kClient4, kVip4).udp(41000, 53, {.length = 4}).build(),
            XLB_DROP_MALFORMED_L4)});
  add("udp_length_beyond_packet",
      {Step("length 400", Frame().ipv4(kClient4, kVip4).udp(41000, 53, {.length = 400}).build(),
            XLB_DROP_MALFORMED_L4)});

  // --- service state ---
  add("service_without_backend",
      {Step("SYN", Tcp4(kVip4NoBackend, 40000, 80, kTcpSyn), XLB_DROP_NO_BACKEND)});
  {
    GoldenStep moved = Step("table moved: ACK stays (conntrack)", Tcp4(kVip4Moving, 40040, 80, kTcpAck),
                            XLB_FWD_ESTABLISHED, Tcp4("198.18.20.7", 40040, 80, kTcpAck));
    moved.before = [](XdpDatapath&, ServiceWriter& w) {
      const WeightedBackend next{8, Backend("198.18.20.8", 80)};
      Must(w.SetBackends(7, std::span(&next, 1)));
    };
    add("conntrack_keeps_flow_when_table_changes",
        {Step("SYN", Tcp4(kVip4Moving, 40040, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.7", 40040, 80, kTcpSyn)),
         std::move(moved),
         Step("a new flow takes the new table", Tcp4(kVip4Moving, 40041, 80, kTcpSyn),
              XLB_FWD_NEW_FLOW, Tcp4("198.18.20.8", 40041, 80, kTcpSyn))});
  }
  {
    GoldenStep gone = Step("backend removed: flow reselects", Tcp4(kVip4Gone, 40050, 80, kTcpAck),
                           XLB_FWD_NEW_FLOW, Tcp4("198.18.20.10", 40050, 80, kTcpAck));
    gone.before = [](XdpDatapath&, ServiceWriter& w) {
      xlb_backend dead = Backend("198.18.20.9", 80);
      dead.flags = 0;
      Must(w.SetBackend(9, dead));
      const WeightedBackend next{10, Backend("198.18.20.10", 80)};
      Must(w.SetBackends(8, std::span(&next, 1)));
    };
    add("conntrack_reselects_when_backend_gone",
        {Step("SYN", Tcp4(kVip4Gone, 40050, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.9", 40050, 80, kTcpSyn)),
         std::move(gone)});
  }
  add("tcp_port_reuse_after_rst",
      {Step("SYN", Tcp4(kVip4, 40060, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
            Tcp4("198.18.20.1", 40060, 8080, kTcpSyn)),
       Step("RST closes", Tcp4(kVip4, 40060, 80, kTcpRst), XLB_FWD_ESTABLISHED,
            Tcp4("198.18.20.1", 40060, 8080, kTcpRst)),
       Step("SYN on the closing tuple is a new flow", Tcp4(kVip4, 40060, 80, kTcpSyn),
            XLB_FWD_NEW_FLOW, Tcp4("198.18.20.1", 40060, 8080, kTcpSyn))});
  // --- half-open flows: a SYN's entries wait apart until the client's ACK (a SYN flood
  // churns through them, never through the established flows) ---
  {
    const xlb_ct_key flow = TupleKey(kClient4, kVip4, 40090, 80, kProtoTcp);
    const xlb_ct_key answer = TupleKey("198.18.20.1", kClient4, 8080, 40090, kProtoTcp);
    // Where the flow's conntrack entry and its answers' REVNAT entry are, and the state: one
    // half-open entry under the client's side holding both, or one of each among the
    // established ones.
    auto tables = [flow, answer](bool half_open, uint8_t state, bool replies = true) {
      return [=](XdpDatapath& dp) {
        xlb_half_key hkey{};
        xlb_half_key_of(&flow, &hkey);
        auto main = dp.conntrack().Lookup(flow);
        auto half = dp.half_open_conntrack().Lookup(hkey);
        EXPECT_EQ(main.ok(), !half_open) << "conntrack entry in xlb_ct_v1";
        EXPECT_EQ(half.ok(), half_open) << "half-open entry in xlb_cthalf_v2";
        if (half_open ? half.ok() : main.ok()) {
          EXPECT_EQ((half_open ? half->ct : *main).state, state);
        }
        if (half.ok()) {
          EXPECT_TRUE(xlb_half_is_flow(&*half, &flow)) << "its REVNAT entry names the VIP";
          EXPECT_EQ(half->revnat.kind, XLB_REPLY_REVNAT);
          EXPECT_TRUE(HalfOpenAnsweredBy(dp, answer)) << "the backend's answer finds it";
        }
        // the half-open table keeps only decapsulated SYNs' TUNNEL entries
        EXPECT_FALSE(dp.half_open_replies().Lookup(answer).ok()) << "entry in xlb_rplhalf_v1";
        if (!replies) return;
        EXPECT_EQ(dp.replies().Lookup(answer).ok(), !half_open) << "reply entry in xlb_reply_v1";
      };
    };
    auto from_backend = [](std::string_view src, uint16_t sport, uint8_t flags) {
      return InFrame(kPodMac, kHostVethMac, Seg(src, kClient4, sport, 40090, flags));
    };
    GoldenStep syn = Step("SYN: half-open", Tcp4(kVip4, 40090, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
                          Tcp4("198.18.20.1", 40090, 8080, kTcpSyn));
    syn.after = tables(true, XLB_CT_SYN_SENT);
    GoldenStep ack = Step("the client's ACK moves both entries", Tcp4(kVip4, 40090, 80, kTcpAck),
                          XLB_FWD_ESTABLISHED, Tcp4("198.18.20.1", 40090, 8080, kTcpAck));
    ack.after = tables(false, XLB_CT_ESTABLISHED);
    GoldenStep reopen = Step("SYN on the closing tuple: half-open again, the old entry gone",
                             Tcp4(kVip4, 40090, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
                             Tcp4("198.18.20.1", 40090, 8080, kTcpSyn));
    // the old flow's reply entry stays: the same answer tuple, the same rewrite
    reopen.after = tables(true, XLB_CT_SYN_SENT, false);
    GoldenStep again = Step("its ACK", Tcp4(kVip4, 40090, 80, kTcpAck), XLB_FWD_ESTABLISHED,
                            Tcp4("198.18.20.1", 40090, 8080, kTcpAck));
    again.after = tables(false, XLB_CT_ESTABLISHED);
    // a SYN does not look at the half-open flows: it writes its own again (the backend chosen
    // now), which is not a new flow
    GoldenStep resyn =
        Step("the SYN retransmitted: its half-open entry renewed", Tcp4(kVip4, 40090, 80, kTcpSyn),
             XLB_FWD_ESTABLISHED, Tcp4("198.18.20.1", 40090, 8080, kTcpSyn));
    resyn.after = tables(true, XLB_CT_SYN_SENT);
    add("tcp4_half_open_until_the_client_acks",
        {std::move(syn), std::move(resyn),
         Step("only a SYN-ACK or an RST answers a half-open flow",
              from_backend("198.18.20.1", 8080, kTcpAck), TC_ACT_OK, XLB_PASS_NO_SERVICE,
              std::nullopt, Hook::kTc),
         Step("backend's SYN-ACK", from_backend("198.18.20.1", 8080, kTcpSyn | kTcpAck), TC_ACT_OK,
              XLB_FWD_REPLY_REVNAT, from_backend(kVip4, 80, kTcpSyn | kTcpAck), Hook::kTc),
         std::move(ack),
         Step("backend's data", from_backend("198.18.20.1", 8080, kTcpAck), TC_ACT_OK,
              XLB_FWD_REPLY_REVNAT, from_backend(kVip4, 80, kTcpAck), Hook::kTc),
         Step("FIN", Tcp4(kVip4, 40090, 80, kTcpFin | kTcpAck), XLB_FWD_ESTABLISHED,
              Tcp4("198.18.20.1", 40090, 8080, kTcpFin | kTcpAck)),
         std::move(reopen), std::move(again)});
  }
  // A second SYN from the same client port to another VIP while the first handshake is still
  // half-open: the client's half-open key stays the first flow's, the second starts among the
  // established flows (maps/xlb_abi.h), and each backend's SYN-ACK finds its own VIP.
  {
    const xlb_ct_key first = TupleKey(kClient4, kVip4, 40097, 80, kProtoTcp);
    const xlb_ct_key second = TupleKey(kClient4, kVip4Moving, 40097, 80, kProtoTcp);
    auto from_backend = [](std::string_view src, uint16_t sport, uint8_t flags) {
      return InFrame(kPodMac, kHostVethMac, Seg(src, kClient4, sport, 40097, flags));
    };
    GoldenStep syn2 =
        Step("a SYN from the same port to another VIP", Tcp4(kVip4Moving, 40097, 80, kTcpSyn),
             XLB_FWD_NEW_FLOW, Tcp4("198.18.20.7", 40097, 80, kTcpSyn));
    syn2.after = [first, second](XdpDatapath& dp) {
      xlb_half_key hkey{};
      xlb_half_key_of(&first, &hkey);
      auto half = dp.half_open_conntrack().Lookup(hkey);
      ASSERT_TRUE(half.ok()) << "the first flow's half-open entry";
      EXPECT_TRUE(xlb_half_is_flow(&*half, &first));
      auto ct = dp.conntrack().Lookup(second);
      ASSERT_TRUE(ct.ok()) << "the second flow in xlb_ct_v1";
      EXPECT_EQ(ct->state, XLB_CT_SYN_SENT);
      ExpectReply(dp, "198.18.20.7", kClient4, 80, 40097, XLB_REPLY_REVNAT, kVip4Moving, 80, 0);
    };
    GoldenStep ack1 = Step("the first flow's ACK", Tcp4(kVip4, 40097, 80, kTcpAck),
                           XLB_FWD_ESTABLISHED, Tcp4("198.18.20.1", 40097, 8080, kTcpAck));
    ack1.after = [first, second](XdpDatapath& dp) {
      xlb_half_key hkey{};
      xlb_half_key_of(&first, &hkey);
      EXPECT_FALSE(dp.half_open_conntrack().Lookup(hkey).ok()) << "moved over";
      EXPECT_TRUE(dp.conntrack().Lookup(first).ok());
      EXPECT_TRUE(dp.conntrack().Lookup(second).ok());
    };
    add("tcp4_two_handshakes_from_one_client_port",
        {Step("SYN", Tcp4(kVip4, 40097, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40097, 8080, kTcpSyn)),
         std::move(syn2),
         Step("the first backend's SYN-ACK answers from the first VIP",
              from_backend("198.18.20.1", 8080, kTcpSyn | kTcpAck), TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              from_backend(kVip4, 80, kTcpSyn | kTcpAck), Hook::kTc),
         Step("the second backend's from the second VIP",
              from_backend("198.18.20.7", 80, kTcpSyn | kTcpAck), TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              from_backend(kVip4Moving, 80, kTcpSyn | kTcpAck), Hook::kTc),
         std::move(ack1),
         Step("the second flow's ACK", Tcp4(kVip4Moving, 40097, 80, kTcpAck), XLB_FWD_ESTABLISHED,
              Tcp4("198.18.20.7", 40097, 80, kTcpAck))});
  }
  // The client reuses its port toward another VIP whose flow lands on the same backend: the
  // backend's answers carry the same tuple as the first flow's, whose established REVNAT entry
  // must not turn the new flow's SYN-ACK back into the first VIP (the client would reset it).
  {
    auto from_backend = [](uint8_t flags, std::string_view as, uint16_t port) {
      return std::pair{
          InFrame(kPodMac, kHostVethMac, Seg("198.18.20.1", kClient4, 8080, 40095, flags)),
          InFrame(kPodMac, kHostVethMac, Seg(as, kClient4, port, 40095, flags))};
    };
    auto answer = [&](std::string what, uint8_t flags, std::string_view as, uint16_t port) {
      auto [in, out] = from_backend(flags, as, port);
      return Step(std::move(what), std::move(in), TC_ACT_OK, XLB_FWD_REPLY_REVNAT, std::move(out),
                  Hook::kTc);
    };
    GoldenStep other = Step("the same client port to another VIP, the same backend",
                            Tcp4(kVip4Reused, 40095, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
                            Tcp4("198.18.20.1", 40095, 8080, kTcpSyn));
    other.before = [](XdpDatapath&, ServiceWriter& w) {
      const xlb_service_key vip = VipKey(kVip4Reused, 80, IPPROTO_TCP);
      const WeightedBackend be{1, Backend("198.18.20.1", 8080)};
      Must(w.AddService(40, std::span(&vip, 1), std::span(&be, 1)));
    };
    add("tcp4_client_port_reused_toward_another_vip",
        {Step("SYN", Tcp4(kVip4, 40095, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40095, 8080, kTcpSyn)),
         answer("backend's SYN-ACK", kTcpSyn | kTcpAck, kVip4, 80),
         Step("ACK: established", Tcp4(kVip4, 40095, 80, kTcpAck), XLB_FWD_ESTABLISHED,
              Tcp4("198.18.20.1", 40095, 8080, kTcpAck)),
         std::move(other),
         answer("its SYN-ACK answers from the new VIP", kTcpSyn | kTcpAck, kVip4Reused, 80),
         Step("its ACK", Tcp4(kVip4Reused, 40095, 80, kTcpAck), XLB_FWD_ESTABLISHED,
              Tcp4("198.18.20.1", 40095, 8080, kTcpAck)),
         answer("and its data too", kTcpAck, kVip4Reused, 80)});
  }
  // The forwarding fast path (bpf/lib/forward.h): a backend the fib reaches (here the
  // on-link 198.18.100.2 behind up0) is forwarded from XDP once up0 is a forwarding device,
  // from TC always, with the TTL decremented and the next hop's MACs; the stack keeps what a
  // router must answer (TTL 1) and what XDP cannot send.
  {
    constexpr const char* kVip4Fwd = "198.18.10.41";
    constexpr const char* kVip6Fwd = "2001:db8:10::41";
    auto services = [](XdpDatapath&, ServiceWriter& w) {
      const xlb_service_key vip4 = VipKey(kVip4Fwd, 80, IPPROTO_TCP);
      const WeightedBackend be4{141, Backend(kRemoteNode4, 8080)};
      Must(w.AddService(41, std::span(&vip4, 1), std::span(&be4, 1)));
      const xlb_service_key vip6 = VipKey(kVip6Fwd, 80, IPPROTO_TCP);
      const WeightedBackend be6{142, Backend(kRemoteNode6, 8080)};
      Must(w.AddService(42, std::span(&vip6, 1), std::span(&be6, 1)));
    };
    auto routed4 = [](const char* src, uint16_t sport, uint8_t flags, uint8_t ttl) {
      return Packet()
          .eth(kUplinkMac, kRemoteNodeMac)
          .ipv4(src, kRemoteNode4, {.ttl = ttl})
          .tcp(sport, 8080, flags, {.seq = 1000})
          .payload("xlb")
          .build();
    };
    GoldenStep first =
        Step("no forwarding device yet: DNATed, to the stack", Tcp4(kVip4Fwd, 40300, 80, kTcpAck),
             XLB_FWD_NEW_FLOW, Tcp4(kRemoteNode4, 40300, 8080, kTcpAck));
    first.before = services;
    GoldenStep xdp =
        Step("up0 takes XDP frames: forwarded from XDP, TTL 63", Tcp4(kVip4Fwd, 40300, 80, kTcpAck),
             XDP_REDIRECT, XLB_FWD_ROUTED, routed4(kClient4, 40300, kTcpAck, 63));
    xdp.before = [](XdpDatapath& dp, ServiceWriter&) { ForwardOntoUp0(dp); };
    const Bytes pod_in = InFrame(kPodMac, kHostVethMac,
                                 Packet()
                                     .ipv4(kPod4, kVip4Fwd)
                                     .tcp(40301, 80, kTcpAck, {.seq = 1000})
                                     .payload("xlb")
                                     .build());
    add("routed_backend_forwarded_from_xdp_and_tc",
        {std::move(first), std::move(xdp),
         Step("TTL 1: the stack answers it (time exceeded)",
              Tcp4(kVip4Fwd, 40300, 80, kTcpAck, {.ttl = 1}), XLB_FWD_ESTABLISHED,
              Frame()
                  .ipv4(kClient4, kRemoteNode4, {.ttl = 1})
                  .tcp(40300, 8080, kTcpAck, {.seq = 1000})
                  .payload("xlb")
                  .build()),
         Step("IPv6: hop limit 63", Tcp6(kVip6Fwd, 40302, 80, kTcpAck), XDP_REDIRECT,
              XLB_FWD_ROUTED,
              Packet()
                  .eth(kUplinkMac, kRemoteNodeMac)
                  .ipv6(kClient6, kRemoteNode6, {.hop_limit = 63})
                  .tcp(40302, 8080, kTcpAck, {.seq = 1000})
                  .payload("xlb")
                  .build()),
         Step("a pod's packet: forwarded from TC", pod_in, TC_ACT_REDIRECT, XLB_FWD_ROUTED,
              routed4(kPod4, 40301, kTcpAck, 63), Hook::kTc)});
    // A local backend's answer to a client the fib reaches: reverse-NATed and sent from TC.
    const Bytes answer_in = InFrame(kPodMac, kHostVethMac,
                                    Packet()
                                        .ipv4("198.18.20.1", kRemoteNode4)
                                        .tcp(8080, 40303, kTcpAck, {.seq = 1000})
                                        .payload("xlb")
                                        .build());
    add("local_backend_answer_forwarded_from_tc",
        {Step("a client behind up0 opens a flow (its backend unroutable here: the stack)",
              Frame()
                  .ipv4(kRemoteNode4, kVip4)
                  .tcp(40303, 80, kTcpAck, {.seq = 1000})
                  .payload("xlb")
                  .build(),
              XLB_FWD_NEW_FLOW,
              Frame()
                  .ipv4(kRemoteNode4, "198.18.20.1")
                  .tcp(40303, 8080, kTcpAck, {.seq = 1000})
                  .payload("xlb")
                  .build()),
         Step("the answer, from the VIP, straight out of up0", answer_in, TC_ACT_REDIRECT,
              XLB_FWD_REPLY_ROUTED,
              Packet()
                  .eth(kUplinkMac, kRemoteNodeMac)
                  .ipv4(kVip4, kRemoteNode4, {.ttl = 63})
                  .tcp(80, 40303, kTcpAck, {.seq = 1000})
                  .payload("xlb")
                  .build(),
              Hook::kTc)});
    GoldenStep told =
        Step("--forwarding stack: to the stack, device or not", Tcp4(kVip4Fwd, 40304, 80, kTcpAck),
             XLB_FWD_NEW_FLOW, Tcp4(kRemoteNode4, 40304, 8080, kTcpAck));
    told.before = [services](XdpDatapath& dp, ServiceWriter& w) {
      services(dp, w);
      ForwardOntoUp0(dp);
    };
    GoldenStep told_tc = Step("and from TC", pod_in, TC_ACT_OK, XLB_FWD_NEW_FLOW,
                              InFrame(kPodMac, kHostVethMac,
                                      Packet()
                                          .ipv4(kPod4, kRemoteNode4)
                                          .tcp(40301, 8080, kTcpAck, {.seq = 1000})
                                          .payload("xlb")
                                          .build()),
                              Hook::kTc);
    add("routed_backend_to_the_stack_when_told", {std::move(told), std::move(told_tc)});
    cases.back().config = [](xlb_config& c) { c.flags |= XLB_CFG_F_STACK_FORWARD; };
  }
  // A route narrower than tunnel_mtu (a pod veth at 1450 on most overlays; here a route with
  // a locked mtu 1400, the only route MTU forwarding honours): its next hop is cached at the
  // route's MTU and serves the packets that fit; a larger one asks the fib at its own size
  // and goes to the stack, which answers it.
  {
    static constexpr const char* kVip4Mtu = "198.18.10.43";
    static constexpr const char* kNarrow4 = "198.18.103.1";
    static constexpr const char* kPlantedMac = "02:00:00:00:01:98";
    auto in = [](size_t payload) {
      return Frame()
          .ipv4(kClient4, kVip4Mtu)
          .tcp(40310, 80, kTcpAck, {.seq = 1000})
          .payload(std::string(payload, 'x'))
          .build();
    };
    auto routed = [](const char* dmac) {
      return Packet()
          .eth(kUplinkMac, dmac)
          .ipv4(kClient4, kNarrow4, {.ttl = 63})
          .tcp(40310, 8080, kTcpAck, {.seq = 1000})
          .payload(std::string(3, 'x'))
          .build();
    };
    GoldenStep first = Step("a small packet: forwarded, its next hop cached at the route's MTU",
                            in(3), XDP_REDIRECT, XLB_FWD_ROUTED, routed(kRemoteNodeMac));
    first.before = [](XdpDatapath& dp, ServiceWriter& w) {
      const xlb_service_key vip = VipKey(kVip4Mtu, 80, IPPROTO_TCP);
      const WeightedBackend be{143, Backend(kNarrow4, 8080)};
      Must(w.AddService(43, std::span(&vip, 1), std::span(&be, 1)));
      ForwardOntoUp0(dp);
    };
    first.after = [](XdpDatapath& dp) {
      const Addr narrow = ParseAddr(kNarrow4);
      int found = 0;
      Must(dp.nexthops().ForEach([&](const xlb_nexthop_key& k, const xlb_nexthop& v) {
        if (k.family == XLB_FAMILY_IPV4 && k.addr[0] == narrow.words[0]) {
          ++found;
          EXPECT_EQ(v.mtu, 1400);
          EXPECT_EQ(pkt::Mac(std::to_array(v.dmac)), pkt::ParseMac(kRemoteNodeMac));
        }
      }));
      EXPECT_EQ(found, 1) << "no next-hop entry for " << kNarrow4;
    };
    // 1,401 bytes of IPv4: one more than the route carries.
    GoldenStep big =
        Step("one byte over the route's MTU: to the stack", in(1361), XLB_FWD_ESTABLISHED,
             Frame()
                 .ipv4(kClient4, kNarrow4)
                 .tcp(40310, 8080, kTcpAck, {.seq = 1000})
                 .payload(std::string(1361, 'x'))
                 .build());
    GoldenStep cached =
        Step("the fresh entry serves the next packet that fits (a MAC planted in it)", in(3),
             XDP_REDIRECT, XLB_FWD_ROUTED, routed(kPlantedMac));
    cached.before = EditNexthops([](xlb_nexthop& v) {
      const pkt::Mac mac = pkt::ParseMac(kPlantedMac);
      std::copy(mac.begin(), mac.end(), v.dmac);
      v.expires = UINT64_MAX;
    });
    // One entry: the key is the whole 16-byte address, zero beyond an IPv4 one.
    cached.after = [](XdpDatapath& dp) {
      int entries = 0;
      Must(dp.nexthops().ForEach([&](const xlb_nexthop_key&, const xlb_nexthop&) { ++entries; }));
      EXPECT_EQ(entries, 1);
    };
    add("routed_backend_behind_a_narrower_route",
        {std::move(first), std::move(big), std::move(cached)});
  }
  {
    GoldenStep late = Step("idle past its timeout: reselected", Tcp4(kVip4, 40070, 80, kTcpAck),
                           XLB_FWD_NEW_FLOW, Tcp4("198.18.20.1", 40070, 8080, kTcpAck));
    late.before = [](XdpDatapath& dp, ServiceWriter&) {
      auto ct = dp.conntrack();
      Must(ct.ForEach([&](const xlb_ct_key& k, xlb_ct_value v) {
        if (k.sport == htons(40070)) {
          v.last_seen = 1;  // boot time: older than the 1 s timeout below
          Must(ct.Update(k, v));
        }
      }));
    };
    // bpf_ktime counts from boot: with the default 3,600 s, an entry last seen at boot would
    // still be fresh on a machine booted less than an hour ago. One second has passed since
    // boot on any machine running this test; the SYN_SENT timeout the ACK step relies on stays.
    cases.push_back({"conntrack_entry_expires",
                     {Step("SYN", Tcp4(kVip4, 40070, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
                           Tcp4("198.18.20.1", 40070, 8080, kTcpSyn)),
                      Step("ACK", Tcp4(kVip4, 40070, 80, kTcpAck), XLB_FWD_ESTABLISHED,
                           Tcp4("198.18.20.1", 40070, 8080, kTcpAck)),
                      std::move(late)},
                     [](xlb_config& cfg) { cfg.ct_tcp_timeout_s = 1; }});
  }

  // --- ICMP errors follow their flow ---
  {
    // The service's reply as it left (VIP -> client), quoted whole by a router's error.
    auto reply4 = [](const char* src, uint16_t sport) {
      return Packet().ipv4(src, kClient4, {.ttl = 1}).tcp(sport, 40080, kTcpSyn | kTcpAck).payload("r");
    };
    add("icmp4_frag_needed_follows_flow",
        {Step("SYN", Tcp4(kVip4, 40080, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40080, 8080, kTcpSyn)),
         Step("frag needed for the reply",
              Frame().ipv4(kRouter4, kVip4).icmp4_frag_needed(1400, reply4(kVip4, 80)).build(),
              XLB_FWD_ICMP_ERROR,
              Frame().ipv4(kRouter4, "198.18.20.1").icmp4_frag_needed(1400, reply4("198.18.20.1", 8080))
                  .build())});
    auto udp_reply = [](const char* src, uint16_t sport) {
      return Packet().ipv4(src, kClient4).udp(sport, 41010).payload("answer");
    };
    auto udp_query = [](const char* dst, uint16_t dport) {
      return Frame().ipv4(kClient4, dst).udp(41010, dport).payload("query").build();
    };
    add("icmp4_port_unreachable_follows_udp_flow",
        {Step("query", udp_query(kVip4, 53), XLB_FWD_NEW_FLOW, udp_query("198.18.20.2", 5353)),
         Step("client's port unreachable for the answer",
              Frame().ipv4(kClient4, kVip4).icmp4_dest_unreach(kIcmpPortUnreach, udp_reply(kVip4, 53))
                  .build(),
              XLB_FWD_ICMP_ERROR,
              Frame().ipv4(kClient4, "198.18.20.2")
                  .icmp4_dest_unreach(kIcmpPortUnreach, udp_reply("198.18.20.2", 5353)).build())});
    add("icmp4_quote_of_8_bytes",
        {Step("SYN", Tcp4(kVip4, 40080, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40080, 8080, kTcpSyn)),
         Step("time exceeded quoting 28 bytes",
              Frame().ipv4(kRouter4, kVip4)
                  .icmp4_time_exceeded(kIcmpTtlExceeded, reply4(kVip4, 80), {.inner_len = 28}).build(),
              XLB_FWD_ICMP_ERROR,
              Frame().ipv4(kRouter4, "198.18.20.1")
                  .icmp4_time_exceeded(kIcmpTtlExceeded, reply4("198.18.20.1", 8080), {.inner_len = 28})
                  .build())});
    add("icmp4_error_of_untracked_flow",
        {Step("no such flow",
              Frame().ipv4(kRouter4, kVip4).icmp4_frag_needed(1400, reply4(kVip4, 80)).build(),
              XLB_PASS_ICMP)});
    auto reply6 = [](const char* src, uint16_t sport) {
      return Packet().ipv6(src, kClient6).tcp(sport, 40090, kTcpSyn | kTcpAck).payload("r6");
    };
    add("icmp6_packet_too_big_follows_flow",
        {Step("SYN", Tcp6(kVip6, 40090, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp6("2001:db8:20::1", 40090, 8080, kTcpSyn)),
         Step("packet too big for the reply",
              Frame().ipv6(kRouter6, kVip6).icmp6_packet_too_big(1280, reply6(kVip6, 80)).build(),
              XLB_FWD_ICMP_ERROR,
              Frame().ipv6(kRouter6, "2001:db8:20::1")
                  .icmp6_packet_too_big(1280, reply6("2001:db8:20::1", 8080)).build())});
    // The other family's ICMP quoting a tracked flow: not an error xlb rewrites (its checksum
    // rules are the other family's), so it passes untouched. ICMP type 3 is "time exceeded"
    // to ICMPv6, and ICMPv6 type 1 is unassigned in ICMP: each reads as an error to the
    // family that carries it.
    add("icmp6_in_ipv4_to_vip_not_rewritten",
        {Step("SYN", Tcp4(kVip4, 40081, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40081, 8080, kTcpSyn)),
         Step("protocol 58 quoting the flow's reply",
              Frame()
                  .ipv4(kRouter4, kVip4, {.protocol = kProtoIcmpv6})
                  .icmp4_dest_unreach(
                      kIcmpPortUnreach,
                      Packet().ipv4(kVip4, kClient4).tcp(80, 40081, kTcpSyn | kTcpAck))
                  .build(),
              XLB_PASS_NOT_L4)});
    add("icmp_in_ipv6_to_vip_not_rewritten",
        {Step("SYN", Tcp6(kVip6, 40091, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp6("2001:db8:20::1", 40091, 8080, kTcpSyn)),
         Step("next header 1 quoting the flow's reply",
              Frame()
                  .ipv6(kRouter6, kVip6, {.next_header = kProtoIcmp})
                  .icmp6_dest_unreach(
                      kIcmp6PortUnreach,
                      Packet().ipv6(kVip6, kClient6).tcp(80, 40091, kTcpSyn | kTcpAck))
                  .build(),
              XLB_PASS_NOT_L4)});
  }

  // --- TC on a pod's veth: east-west balancing, answers of local backends ---
  {
    auto pod = [](std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
                  uint8_t flags) {
      return InFrame(kPodMac, kHostVethMac, Seg(src, dst, sport, dport, flags));
    };
    GoldenStep syn = Step("pod SYN to the VIP", pod(kPod4, kVip4, 41000, 80, kTcpSyn), TC_ACT_OK,
                          XLB_FWD_NEW_FLOW, pod(kPod4, "198.18.20.1", 41000, 8080, kTcpSyn),
                          Hook::kTc);
    syn.after = [](XdpDatapath& dp) {
      ExpectReply(dp, "198.18.20.1", kPod4, 8080, 41000, XLB_REPLY_REVNAT, kVip4, 80, 0);
    };
    add("tc_east_west_dnat_and_reply_revnat",
        {std::move(syn),
         Step("backend's SYN-ACK", pod("198.18.20.1", kPod4, 8080, 41000, kTcpSyn | kTcpAck),
              TC_ACT_OK, XLB_FWD_REPLY_REVNAT, pod(kVip4, kPod4, 80, 41000, kTcpSyn | kTcpAck),
              Hook::kTc),
         Step("pod ACK", pod(kPod4, kVip4, 41000, 80, kTcpAck), TC_ACT_OK, XLB_FWD_ESTABLISHED,
              pod(kPod4, "198.18.20.1", 41000, 8080, kTcpAck), Hook::kTc),
         Step("backend's data", pod("198.18.20.1", kPod4, 8080, 41000, kTcpAck), TC_ACT_OK,
              XLB_FWD_REPLY_REVNAT, pod(kVip4, kPod4, 80, 41000, kTcpAck), Hook::kTc)});
    add("tc_not_a_service",
        {Step("pod to a plain address", pod(kPod4, "198.18.50.1", 41001, 80, kTcpSyn), TC_ACT_OK,
              XLB_PASS_NO_SERVICE, std::nullopt, Hook::kTc)});
    auto udp4z = [](std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport) {
      return Packet().ipv4(src, dst).udp(sport, dport, {.zero_checksum = true}).payload("q").build();
    };
    add("tc_reply_revnat_udp4_zero_checksum",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, udp4z(kClient4, kVip4, 41002, 53)),
              XLB_FWD_NEW_FLOW, InFrame(kClientMac, kNodeMac, udp4z(kClient4, "198.18.20.2", 41002, 5353))),
         Step("answer (TC)", InFrame(kPodMac, kHostVethMac, udp4z("198.18.20.2", kClient4, 5353, 41002)),
              TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              InFrame(kPodMac, kHostVethMac, udp4z(kVip4, kClient4, 53, 41002)), Hook::kTc)});
    auto udp6 = [](std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport) {
      return Packet().ipv6(src, dst).udp(sport, dport).payload("query").build();
    };
    add("tc_reply_revnat_udp6",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, udp6(kClient6, kVip6, 41003, 53)),
              XLB_FWD_NEW_FLOW,
              InFrame(kClientMac, kNodeMac, udp6(kClient6, "2001:db8:20::2", 41003, 53))),
         Step("answer (TC)", InFrame(kPodMac, kHostVethMac, udp6("2001:db8:20::2", kClient6, 53, 41003)),
              TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              InFrame(kPodMac, kHostVethMac, udp6(kVip6, kClient6, 53, 41003)), Hook::kTc)});
  }

  // --- TC: a backend's ICMP error about its flow is reverse-NATed like its answers ---
  {
    auto sent4 = [](std::string_view dst, uint16_t dport) {
      return Packet().ipv4(kClient4, dst).udp(41004, dport).payload("query");
    };
    add("tc_backend_icmp4_error_revnat",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, sent4(kVip4, 53).build()),
              XLB_FWD_NEW_FLOW, InFrame(kClientMac, kNodeMac, sent4("198.18.20.2", 5353).build())),
         Step("backend: port unreachable (TC)",
              InFrame(kPodMac, kHostVethMac,
                      Packet().ipv4("198.18.20.2", kClient4)
                          .icmp4_dest_unreach(kIcmpPortUnreach, sent4("198.18.20.2", 5353)).build()),
              TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              InFrame(kPodMac, kHostVethMac,
                      Packet().ipv4(kVip4, kClient4)
                          .icmp4_dest_unreach(kIcmpPortUnreach, sent4(kVip4, 53)).build()),
              Hook::kTc),
         Step("an error about another flow passes", 
              InFrame(kPodMac, kHostVethMac,
                      Packet().ipv4("198.18.20.2", kClient4)
                          .icmp4_dest_unreach(kIcmpPortUnreach,
                                              Packet().ipv4(kClient4, "198.18.20.2").udp(41099, 5353)).build()),
              TC_ACT_OK, XLB_PASS_NO_SERVICE, std::nullopt, Hook::kTc)});
    auto sent6 = [](std::string_view dst) {
      return Packet().ipv6(kClient6, dst).udp(41005, 53).payload("query");
    };
    add("tc_backend_icmp6_error_revnat",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, sent6(kVip6).build()),
              XLB_FWD_NEW_FLOW, InFrame(kClientMac, kNodeMac, sent6("2001:db8:20::2").build())),
         Step("backend: port unreachable (TC)",
              InFrame(kPodMac, kHostVethMac,
                      Packet().ipv6("2001:db8:20::2", kClient6)
                          .icmp6_dest_unreach(kIcmp6PortUnreach, sent6("2001:db8:20::2")).build()),
              TC_ACT_OK, XLB_FWD_REPLY_REVNAT,
              InFrame(kPodMac, kHostVethMac,
                      Packet().ipv6(kVip6, kClient6).icmp6_dest_unreach(kIcmp6PortUnreach, sent6(kVip6)).build()),
              Hook::kTc)});
    // The other family's ICMP about a tracked flow, from its backend: not reverse-NATed.
    auto sent4b = [](std::string_view dst, uint16_t dport) {
      return Packet().ipv4(kClient4, dst).udp(41006, dport).payload("query");
    };
    add("tc_backend_icmp6_in_ipv4_not_revnat",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, sent4b(kVip4, 53).build()),
              XLB_FWD_NEW_FLOW, InFrame(kClientMac, kNodeMac, sent4b("198.18.20.2", 5353).build())),
         Step("backend: protocol 58 quoting the flow (TC)",
              InFrame(kPodMac, kHostVethMac,
                      Packet()
                          .ipv4("198.18.20.2", kClient4, {.protocol = kProtoIcmpv6})
                          .icmp4_dest_unreach(kIcmpPortUnreach, sent4b("198.18.20.2", 5353))
                          .build()),
              TC_ACT_OK, XLB_PASS_NO_SERVICE, std::nullopt, Hook::kTc)});
    auto sent6b = [](std::string_view dst) {
      return Packet().ipv6(kClient6, dst).udp(41007, 53).payload("query");
    };
    add("tc_backend_icmp_in_ipv6_not_revnat",
        {Step("client datagram (XDP)", InFrame(kClientMac, kNodeMac, sent6b(kVip6).build()),
              XLB_FWD_NEW_FLOW, InFrame(kClientMac, kNodeMac, sent6b("2001:db8:20::2").build())),
         Step("backend: next header 1 quoting the flow (TC)",
              InFrame(kPodMac, kHostVethMac,
                      Packet()
                          .ipv6("2001:db8:20::2", kClient6, {.next_header = kProtoIcmp})
                          .icmp6_dest_unreach(kIcmp6PortUnreach, sent6b("2001:db8:20::2"))
                          .build()),
              TC_ACT_OK, XLB_PASS_NO_SERVICE, std::nullopt, Hook::kTc)});
  }

  // --- UDP over IPv6 with checksum 0 is invalid (RFC 8200 8.1): dropped, never updated ---
  {
    auto udp6z = [](std::string_view src, std::string_view dst) {
      return Packet()
          .ipv6(src, dst)
          .udp(41008, 53, {.zero_checksum = true})
          .payload("query")
          .build();
    };
    add("udp6_zero_checksum_to_vip_dropped",
        {Step("to the VIP", InFrame(kClientMac, kNodeMac, udp6z(kClient6, kVip6)),
              XLB_DROP_UDP6_ZERO_CSUM),
         Step("to another address: not xlb's, untouched",
              InFrame(kClientMac, kNodeMac, udp6z(kClient6, "2001:db8:99::1")),
              XLB_PASS_NO_SERVICE)});
    add("tc_udp6_zero_checksum_from_pod_dropped",
        {Step("pod to the VIP (TC)", InFrame(kPodMac, kHostVethMac, udp6z(kPod6, kVip6)),
              TC_ACT_SHOT, XLB_DROP_UDP6_ZERO_CSUM, std::nullopt, Hook::kTc)});
  }

  // --- encapsulation toward tunnelled backends, every outer x inner family, both formats ---
  {
    struct Enc {
      const char* vip;
      const char* backend;
      const char* tunnel;
      uint16_t mss;  // tunnel_mtu 1500 - overhead - inner IP header - 20
    };
    const std::vector<std::pair<uint8_t, std::vector<std::pair<std::string, Enc>>>> formats = {
        {XLB_ENCAP_VXLAN,
         {{"vxlan4_inner4", {kVip4Tun, "198.18.40.1", kRemoteNode4, 1410}},
          {"vxlan6_inner4", {kVip4Tun6, "198.18.40.2", kRemoteNode6, 1390}},
          {"vxlan4_inner6", {kVip6Tun4, "2001:db8:40::1", kRemoteNode4, 1390}},
          {"vxlan6_inner6", {kVip6Tun, "2001:db8:40::2", kRemoteNode6, 1370}}}},
        {XLB_ENCAP_GUE,
         {{"gue4_inner4", {kVip4Tun, "198.18.40.1", kRemoteNode4, 1432}},
          {"gue6_inner4", {kVip4Tun6, "198.18.40.2", kRemoteNode6, 1412}},
          {"gue4_inner6", {kVip6Tun4, "2001:db8:40::1", kRemoteNode4, 1412}},
          {"gue6_inner6", {kVip6Tun, "2001:db8:40::2", kRemoteNode6, 1392}}}},
    };
    uint16_t sport = 40200;
    for (const auto& [encap, list] : formats) {
      for (const auto& [name, e] : list) {
        const char* client = IsV6(e.vip) ? kClient6 : kClient4;
        const bool nop = sport % 2;  // every other case puts the MSS at an odd offset
        const Outer o{.src = IsV6(e.tunnel) ? kNodeTunnel6 : kNodeTunnel4, .dst = e.tunnel,
                      .eth_src = kUplinkMac, .eth_dst = kRemoteNodeMac, .encap = encap,
                      .inner_eth_src = kUplinkMac,
                      .hash = FlowHash(client, e.vip, sport, 80, kProtoTcp)};
        GoldenCase c{
            "encap_" + name,
            {Step("SYN: DNAT, MSS clamp, encapsulate, redirect",
                  InFrame(kClientMac, kNodeMac, Seg(client, e.vip, sport, 80, kTcpSyn, 1460, nop)),
                  XDP_REDIRECT, XLB_FWD_ENCAP,
                  Encap(o, Seg(client, e.backend, sport, 8080, kTcpSyn, e.mss, nop))),
             Step("ACK: established", InFrame(kClientMac, kNodeMac, Seg(client, e.vip, sport, 80, kTcpAck)),
                  XDP_REDIRECT, XLB_FWD_ENCAP, Encap(o, Seg(client, e.backend, sport, 8080, kTcpAck)))},
            [encap = encap](xlb_config& cfg) { cfg.encap = encap; }};
        cases.push_back(std::move(c));
        ++sport;
      }
    }
  }
  {
    const Outer o{.src = kNodeTunnel4, .dst = kRemoteNode4, .eth_src = kUplinkMac,
                  .eth_dst = kRemoteNodeMac, .hash = FlowHash(kClient4, kVip4Tun, 40250, 80, kProtoTcp)};
    GoldenStep tx = Step("SYN back out of the uplink",
                         InFrame(kClientMac, kNodeMac, Seg(kClient4, kVip4Tun, 40250, 80, kTcpSyn)),
                         XDP_TX, XLB_FWD_ENCAP,
                         Encap(o, Seg(kClient4, "198.18.40.1", 40250, 8080, kTcpSyn, 1410)));
    tx.on_uplink = true;
    add("encap_xdp_tx_on_the_uplink", {std::move(tx)});
  }
  // The next hop toward a tunnel peer is cached (xlb_nexthop_v2) for XLB_NEXTHOP_TTL_NS: the
  // fib's answer is written on the first packet, used while fresh (a MAC planted in the entry
  // goes out), and asked again once the entry expired.
  {
    const Outer o{.src = kNodeTunnel6,
                  .dst = kRemoteNode6,
                  .eth_src = kUplinkMac,
                  .eth_dst = kRemoteNodeMac,
                  .hash = FlowHash(kClient6, kVip6Tun, 40265, 80, kProtoTcp)};
    static constexpr const char* kPlantedMac = "02:00:00:00:01:99";
    Outer planted = o;
    planted.eth_dst = kPlantedMac;
    auto ack = [](std::string what, const Outer& out) {
      return Step(std::move(what),
                  InFrame(kClientMac, kNodeMac, Seg(kClient6, kVip6Tun, 40265, 80, kTcpAck)),
                  XDP_REDIRECT, XLB_FWD_ENCAP,
                  Encap(out, Seg(kClient6, "2001:db8:40::2", 40265, 8080, kTcpAck)));
    };
    // The one entry (toward kRemoteNode6), with the MAC it must carry.
    auto entry_is = [](const char* dmac) {
      return [dmac](XdpDatapath& dp) {
        std::vector<std::pair<xlb_nexthop_key, xlb_nexthop>> all;
        ASSERT_TRUE(dp.nexthops()
                        .ForEach([&](const auto& k, const auto& v) { all.emplace_back(k, v); })
                        .ok());
        ASSERT_EQ(all.size(), 1u);
        const auto& [k, v] = all.front();
        EXPECT_EQ(k.family, XLB_FAMILY_IPV6);
        const Addr peer = ParseAddr(kRemoteNode6);
        EXPECT_TRUE(std::equal(peer.words.begin(), peer.words.end(), k.addr));
        EXPECT_NE(k.ifindex, 0u);
        EXPECT_NE(v.ifindex, 0u);
        EXPECT_GT(v.expires, 1u);
        EXPECT_EQ(pkt::Mac(std::to_array(v.dmac)), pkt::ParseMac(dmac));
        EXPECT_EQ(pkt::Mac(std::to_array(v.smac)), pkt::ParseMac(kUplinkMac));
      };
    };
    GoldenStep first = ack("the fib's next hop, written into the cache", o);
    first.after = entry_is(kRemoteNodeMac);
    GoldenStep cached = ack("a fresh entry is used as it stands", planted);
    cached.before = EditNexthops([](xlb_nexthop& v) {
      const pkt::Mac mac = pkt::ParseMac(kPlantedMac);
      std::copy(mac.begin(), mac.end(), v.dmac);
      v.expires = UINT64_MAX;
    });
    GoldenStep expired = ack("an expired one is asked again", o);
    expired.before = EditNexthops([](xlb_nexthop& v) { v.expires = 1; });
    expired.after = entry_is(kRemoteNodeMac);
    add("encap_next_hop_cached_until_it_expires",
        {std::move(first), std::move(cached), std::move(expired)});
  }
  {
    auto big = [](std::string_view dst, uint16_t dport, size_t n) {
      return Packet().ipv4(kClient4, dst).udp(41100, dport, {.zero_checksum = true})
          .payload(std::string(n, 'x')).build();
    };
    const Outer o{.src = kNodeTunnel4, .dst = kRemoteNode4, .eth_src = kUplinkMac,
                  .eth_dst = kRemoteNodeMac, .hash = FlowHash(kClient4, kVip4TunUdp, 41100, 53, kProtoUdp)};
    add("encap_udp_exactly_the_tunnel_mtu",
        {Step("1450-byte datagram, zero checksum stays zero inside",
              InFrame(kClientMac, kNodeMac, big(kVip4TunUdp, 53, 1422)), XDP_REDIRECT, XLB_FWD_ENCAP,
              Encap(o, big("198.18.40.3", 5353, 1422))),
         Step("one byte more is too big", InFrame(kClientMac, kNodeMac, big(kVip4TunUdp, 53, 1423)),
              XDP_DROP, XLB_DROP_TOO_BIG, std::nullopt)});
  }
  {
    // Too big for the tunnel: XDP answers the client, from the VIP, quoting 512 bytes.
    const Bytes big4 = Packet().ipv4(kClient4, kVip4TunUdp, {.df = true})
                           .udp(41110, 53).payload(std::string(1423, 'x')).build();
    const Bytes big6 = Packet().ipv6(kClient6, kVip6TunUdp).udp(41111, 53)
                           .payload(std::string(1383, 'x')).build();
    const Bytes fits6 = Packet().ipv6(kClient6, kVip6TunUdp).udp(41112, 53)
                            .payload(std::string(1382, 'x')).build();
    add("too_big_ipv4_df_answered_with_frag_needed",
        {Step("1451-byte datagram with DF", InFrame(kClientMac, kNodeMac, big4), XDP_TX,
              XLB_FWD_ICMP_TOO_BIG,
              Packet().eth(kNodeMac, kClientMac).ipv4(kVip4TunUdp, kClient4, {.ttl = 64, .id = 0, .tos = 0xc0})
                  .icmp4_frag_needed(1450, big4, {.inner_len = 512}).build())});
    // In TC the answer goes back into the pod that sent the datagram.
    const Bytes pod_big4 = Packet()
                               .ipv4(kPod4, kVip4TunUdp, {.df = true})
                               .udp(41113, 53)
                               .payload(std::string(1423, 'x'))
                               .build();
    add("tc_too_big_ipv4_df_answered_back_into_the_pod",
        {Step("1451-byte datagram with DF from a pod (TC)",
              InFrame(kPodMac, kHostVethMac, pod_big4), TC_ACT_REDIRECT, XLB_FWD_ICMP_TOO_BIG,
              Packet()
                  .eth(kHostVethMac, kPodMac)
                  .ipv4(kVip4TunUdp, kPod4, {.ttl = 64, .id = 0, .tos = 0xc0})
                  .icmp4_frag_needed(1450, pod_big4, {.inner_len = 512})
                  .build(),
              Hook::kTc)});
    add("too_big_ipv6_answered_with_packet_too_big",
        {Step("1431-byte IPv6 packet", InFrame(kClientMac, kNodeMac, big6), XDP_TX,
              XLB_FWD_ICMP_TOO_BIG,
              Packet().eth(kNodeMac, kClientMac).ipv6(kVip6TunUdp, kClient6)
                  .icmp6_packet_too_big(1430, big6, {.inner_len = 512}).build()),
         Step("one byte less fits", InFrame(kClientMac, kNodeMac, fits6), XDP_REDIRECT, XLB_FWD_ENCAP,
              Encap({.src = kNodeTunnel6, .dst = kRemoteNode6, .eth_src = kUplinkMac,
                     .eth_dst = kRemoteNodeMac,
                     .hash = FlowHash(kClient6, kVip6TunUdp, 41112, 53, kProtoUdp)},
                    Packet().ipv6(kClient6, "2001:db8:40::3").udp(41112, 5353)
                        .payload(std::string(1382, 'x')).build()))});
  }
  {
    // An inner IPv4 datagram without a checksum cannot be summed without reading it: over
    // an IPv6 underlay the outer UDP checksum then stays zero (RFC 6935/6936).
    auto dgram = [](std::string_view dst, uint16_t dport) {
      return Packet().ipv4(kClient4, dst).udp(41120, dport, {.zero_checksum = true})
          .payload("query").build();
    };
    auto csummed = [](std::string_view dst, uint16_t dport) {
      return Packet().ipv4(kClient4, dst).udp(41121, dport).payload("query").build();
    };
    const Outer o{.src = kNodeTunnel6, .dst = kRemoteNode6, .eth_src = kUplinkMac,
                  .eth_dst = kRemoteNodeMac,
                  .hash = FlowHash(kClient4, kVip4TunUdp6, 41120, 53, kProtoUdp),
                  .zero_udp6_checksum = true};
    const Outer o2{.src = kNodeTunnel6, .dst = kRemoteNode6, .eth_src = kUplinkMac,
                   .eth_dst = kRemoteNodeMac,
                   .hash = FlowHash(kClient4, kVip4TunUdp6, 41121, 53, kProtoUdp)};
    add("encap_ipv6_outer_udp_checksum",
        {Step("inner UDP without a checksum: outer checksum zero",
              InFrame(kClientMac, kNodeMac, dgram(kVip4TunUdp6, 53)), XDP_REDIRECT, XLB_FWD_ENCAP,
              Encap(o, dgram("198.18.40.6", 5353))),
         Step("inner UDP with a checksum: outer checksum computed",
              InFrame(kClientMac, kNodeMac, csummed(kVip4TunUdp6, 53)), XDP_REDIRECT, XLB_FWD_ENCAP,
              Encap(o2, csummed("198.18.40.6", 5353)))});
  }
  add("encap_neighbour_unresolved_goes_to_the_kernel",
      {Step("SYN: encapsulated, MACs kept, XDP_PASS",
            InFrame(kClientMac, kNodeMac, Seg(kClient4, kVip4NoNeigh, 40260, 80, kTcpSyn)), XDP_PASS,
            XLB_PASS_ENCAP_KERNEL,
            Encap({.src = kNodeTunnel4, .dst = "198.18.101.9", .eth_src = kClientMac,
                   .eth_dst = kNodeMac, .inner_eth_src = kNodeMac,
                   .hash = FlowHash(kClient4, kVip4NoNeigh, 40260, 80, kProtoTcp)},
                  Seg(kClient4, "198.18.40.4", 40260, 8080, kTcpSyn, 1410)))});
  add("encap_unreachable_endpoint",
      {Step("SYN dropped untouched",
            InFrame(kClientMac, kNodeMac, Seg(kClient4, kVip4Unreach, 40270, 80, kTcpSyn)), XDP_DROP,
            XLB_DROP_FIB, std::nullopt)});
  cases.push_back(
      {"encap_without_a_tunnel_address_of_the_family",
       {Step("SYN toward an IPv6 endpoint, no IPv6 tunnel address",
             InFrame(kClientMac, kNodeMac, Seg(kClient4, kVip4Tun6, 40280, 80, kTcpSyn)), XDP_DROP,
             XLB_DROP_NO_TUNNEL_ADDR, std::nullopt)},
       [](xlb_config& cfg) { std::fill(std::begin(cfg.tunnel_addr6), std::end(cfg.tunnel_addr6), 0); }});

  // --- decapsulation: remote receive (TUNNEL entry, answer tunnelled back by TC) ---
  {
    struct Dec {
      std::string name;
      const char* remote;
      const char* local;
      uint8_t encap;
      const char* client;
      const char* backend;
      uint16_t mss;
    };
    const std::vector<Dec> list = {
        {"vxlan4_inner4", kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, kClient4, kLocalBackend4, 1410},
        {"vxlan4_inner6", kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, kClient6, kLocalBackend6, 1390},
        {"gue6_inner6", kRemoteNode6, kNodeTunnel6, XLB_ENCAP_GUE, kClient6, kLocalBackend6, 1392},
        {"gue6_inner4", kRemoteNode6, kNodeTunnel6, XLB_ENCAP_GUE, kClient4, kLocalBackend4, 1412},
    };
    uint16_t sport = 40400;
    for (const Dec& d : list) {
      GoldenStep in = Step("SYN from the remote node: decapsulated, MSS clamped",
                           FromRemote(d.remote, d.local, d.encap,
                                      Seg(d.client, d.backend, sport, 8080, kTcpSyn, 1460, sport % 2)),
                           XDP_PASS, XLB_FWD_DECAP,
                           InFrame(kRemoteNodeMac, kUplinkMac,
                                   Seg(d.client, d.backend, sport, 8080, kTcpSyn, d.mss, sport % 2)));
      in.after = [d, sport](XdpDatapath& dp) {
        ExpectReply(dp, d.backend, d.client, 8080, sport, XLB_REPLY_TUNNEL, d.remote, 0, d.encap);
        // a flood through the tunnel churns only half-open entries
        ExpectReplyHalfOpen(dp, d.backend, d.client, 8080, sport, true);
      };
      GoldenStep ack = Step(
          "client's ACK: decapsulated, the tunnel entry among the established ones",
          FromRemote(d.remote, d.local, d.encap, Seg(d.client, d.backend, sport, 8080, kTcpAck)),
          XDP_PASS, XLB_FWD_DECAP,
          InFrame(kRemoteNodeMac, kUplinkMac, Seg(d.client, d.backend, sport, 8080, kTcpAck)));
      ack.after = [d, sport](XdpDatapath& dp) {
        ExpectReply(dp, d.backend, d.client, 8080, sport, XLB_REPLY_TUNNEL, d.remote, 0, d.encap);
        ExpectReplyHalfOpen(dp, d.backend, d.client, 8080, sport, false);
      };
      const Outer back{.src = d.local, .dst = d.remote, .eth_src = kUplinkMac,
                       .eth_dst = kRemoteNodeMac, .encap = d.encap, .inner_eth_src = kUplinkMac,
                       .hash = FlowHash(d.backend, d.client, 8080, sport, kProtoTcp)};
      add("decap_" + d.name + "_and_answer_through_the_tunnel",
          {std::move(in),
           Step("pod's SYN-ACK (TC): encapsulated back to the origin node",
                InFrame(kPodMac, kHostVethMac,
                        Seg(d.backend, d.client, 8080, sport, kTcpSyn | kTcpAck)),
                TC_ACT_REDIRECT, XLB_FWD_REPLY_TUNNEL,
                Encap(back, Seg(d.backend, d.client, 8080, sport, kTcpSyn | kTcpAck, d.mss)),
                Hook::kTc),
           std::move(ack),
           Step("pod's data (TC)",
                InFrame(kPodMac, kHostVethMac, Seg(d.backend, d.client, 8080, sport, kTcpAck)),
                TC_ACT_REDIRECT, XLB_FWD_REPLY_TUNNEL,
                Encap(back, Seg(d.backend, d.client, 8080, sport, kTcpAck)), Hook::kTc)});
      ++sport;
    }
  }

  // --- decapsulation: the answer of a flow balanced here (REVNAT after the tunnel) ---
  {
    const Outer o{.src = kNodeTunnel4, .dst = kRemoteNode4, .eth_src = kUplinkMac,
                  .eth_dst = kRemoteNodeMac, .hash = FlowHash(kClient4, kVip4Tun, 40500, 80, kProtoTcp)};
    add("decap_reply_revnat_vxlan4",
        {Step("client SYN: encapsulated", InFrame(kClientMac, kNodeMac, Seg(kClient4, kVip4Tun, 40500, 80, kTcpSyn)),
              XDP_REDIRECT, XLB_FWD_ENCAP, Encap(o, Seg(kClient4, "198.18.40.1", 40500, 8080, kTcpSyn, 1410))),
         Step("backend's SYN-ACK through the tunnel: decapsulated, source back to the VIP",
              FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN,
                         Seg("198.18.40.1", kClient4, 8080, 40500, kTcpSyn | kTcpAck, 1460, true)),
              XDP_PASS, XLB_FWD_REPLY_REVNAT,
              InFrame(kRemoteNodeMac, kUplinkMac, Seg(kVip4Tun, kClient4, 80, 40500, kTcpSyn | kTcpAck, 1410, true)))});
    const Outer o6{.src = kNodeTunnel6, .dst = kRemoteNode6, .eth_src = kUplinkMac,
                   .eth_dst = kRemoteNodeMac, .encap = XLB_ENCAP_GUE,
                   .hash = FlowHash(kClient6, kVip6Tun, 40501, 80, kProtoTcp)};
    cases.push_back(
        {"decap_reply_revnat_gue6",
         {Step("client SYN: encapsulated", InFrame(kClientMac, kNodeMac, Seg(kClient6, kVip6Tun, 40501, 80, kTcpSyn)),
               XDP_REDIRECT, XLB_FWD_ENCAP,
               Encap(o6, Seg(kClient6, "2001:db8:40::2", 40501, 8080, kTcpSyn, 1392))),
          Step("backend's SYN-ACK through the tunnel",
               FromRemote(kRemoteNode6, kNodeTunnel6, XLB_ENCAP_GUE,
                          Seg("2001:db8:40::2", kClient6, 8080, 40501, kTcpSyn | kTcpAck, 1460)),
               XDP_PASS, XLB_FWD_REPLY_REVNAT,
               InFrame(kRemoteNodeMac, kUplinkMac, Seg(kVip6Tun, kClient6, 80, 40501, kTcpSyn | kTcpAck, 1392)))},
         [](xlb_config& cfg) { cfg.encap = XLB_ENCAP_GUE; }});
  }

  // --- TC east-west toward tunnelled backends ---
  add("tc_east_west_encap",
      {Step("pod SYN to a VIP with a remote backend", 
            InFrame(kPodMac, kHostVethMac, Seg(kPod4, kVip4Tun, 41010, 80, kTcpSyn)), TC_ACT_REDIRECT,
            XLB_FWD_ENCAP,
            Encap({.src = kNodeTunnel4, .dst = kRemoteNode4, .eth_src = kUplinkMac,
                   .eth_dst = kRemoteNodeMac, .hash = FlowHash(kPod4, kVip4Tun, 41010, 80, kProtoTcp)},
                  Seg(kPod4, "198.18.40.1", 41010, 8080, kTcpSyn, 1410)),
            Hook::kTc)});
  add("tc_encap_neighbour_unresolved",
      {Step("pod SYN: encapsulated, bpf_redirect_neigh",
            InFrame(kPodMac, kHostVethMac, Seg(kPod4, kVip4NoNeigh, 41020, 80, kTcpSyn)), TC_ACT_REDIRECT,
            XLB_PASS_ENCAP_KERNEL,
            Encap({.src = kNodeTunnel4, .dst = "198.18.101.9", .eth_src = kPodMac,
                   .eth_dst = kHostVethMac, .inner_eth_src = kHostVethMac,
                   .hash = FlowHash(kPod4, kVip4NoNeigh, 41020, 80, kProtoTcp)},
                  Seg(kPod4, "198.18.40.4", 41020, 8080, kTcpSyn, 1410)),
            Hook::kTc)});

  // --- SNAT: DNAT + SNAT to the node's address, sent by xlb; the answer turned back ---
  {
    struct Sn {
      std::string name;
      const char* client;
      const char* vip;
      const char* backend;
      const char* node;
    };
    const std::vector<Sn> list = {{"ipv4", kClient4, kVip4Snat, kRemoteNode4, kNodeTunnel4},
                                  {"ipv6", kClient6, kVip6Snat, kRemoteNode6, kNodeTunnel6}};
    uint16_t cport = 41100;
    for (const Sn& s : list) {
      // An empty SNAT map: the first port tried, the flow's hash, is free.
      const uint16_t port = static_cast<uint16_t>(
          XLB_SNAT_PORT_MIN + FlowHash(s.client, s.vip, cport, 80, kProtoTcp) %
                                  (XLB_SNAT_PORT_MAX - XLB_SNAT_PORT_MIN + 1));
      GoldenStep syn = Step("client SYN: to the backend from the node's address and a SNAT port",
                            InFrame(kClientMac, kNodeMac, Seg(s.client, s.vip, cport, 80, kTcpSyn)),
                            XDP_REDIRECT, XLB_FWD_SNAT,
                            InFrame(kUplinkMac, kRemoteNodeMac,
                                    Seg(s.node, s.backend, port, 8080, kTcpSyn)));
      syn.after = [s, port](XdpDatapath& dp) {
        xlb_ct_key k{};
        const Addr b = ParseAddr(s.backend), n = ParseAddr(s.node);
        std::copy(b.words.begin(), b.words.end(), k.saddr);
        std::copy(n.words.begin(), n.words.end(), k.daddr);
        k.sport = htons(8080);
        k.dport = htons(port);
        k.proto = kProtoTcp;
        k.family = b.family;
        const auto e = dp.snat().Lookup(k);
        ASSERT_TRUE(e) << "no SNAT entry for the answer's tuple";
        EXPECT_EQ(e->vip_port, htons(80));
        EXPECT_EQ(e->flags, 0);
      };
      add("snat_" + s.name,
          {std::move(syn),
           Step("backend's SYN-ACK to the node's port: from the VIP to the client, to the stack",
                InFrame(kRemoteNodeMac, kUplinkMac, Seg(s.backend, s.node, 8080, port, kTcpSyn | kTcpAck)),
                XDP_PASS, XLB_FWD_REPLY_SNAT,
                InFrame(kRemoteNodeMac, kUplinkMac, Seg(s.vip, s.client, 80, cport, kTcpSyn | kTcpAck))),
           Step("client's ACK: the same port",
                InFrame(kClientMac, kNodeMac, Seg(s.client, s.vip, cport, 80, kTcpAck)),
                XDP_REDIRECT, XLB_FWD_SNAT,
                InFrame(kUplinkMac, kRemoteNodeMac, Seg(s.node, s.backend, port, 8080, kTcpAck))),
           Step("an answer to an unknown SNAT port: not xlb's",
                InFrame(kRemoteNodeMac, kUplinkMac,
                        Seg(s.backend, s.node, 8080, static_cast<uint16_t>(port ^ 1), kTcpAck)),
                XLB_PASS_NO_SERVICE)});
      ++cport;
    }
  }

  // --- only known nodes are decapsulated from (xlb_peers_v1) ---
  {
    const Bytes inner4 = Seg(kClient4, kLocalBackend4, 40620, 8080, kTcpSyn);
    const Bytes inner6 = Seg(kClient6, kLocalBackend6, 40621, 8080, kTcpSyn);
    add("tunnel_spoofed_outer_source_dropped",
        {Step("VXLAN over IPv4 from an address that is no node",
              FromRemote("198.18.100.77", kNodeTunnel4, XLB_ENCAP_VXLAN, inner4),
              XLB_DROP_TUNNEL_PEER),
         Step("GUE over IPv6 from an address that is no node",
              FromRemote("2001:db8:100::77", kNodeTunnel6, XLB_ENCAP_GUE, inner6),
              XLB_DROP_TUNNEL_PEER),
         Step("a node's IPv4 address written as IPv4-mapped IPv6 is another address",
              FromRemote("::ffff:198.18.100.2", kNodeTunnel6, XLB_ENCAP_GUE, inner6),
              XLB_DROP_TUNNEL_PEER)});
    GoldenStep removed =
        Step("the same node once it is no peer any more",
             FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, inner4), XLB_DROP_TUNNEL_PEER);
    removed.before = [](XdpDatapath& dp, ServiceWriter&) {
      Must(dp.peers().Erase(PeerKey(kRemoteNode4)));
    };
    add("tunnel_peer_removed",
        {Step("a known node: decapsulated",
              FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, inner4), XDP_PASS,
              XLB_FWD_DECAP,
              InFrame(kRemoteNodeMac, kUplinkMac,
                      Seg(kClient4, kLocalBackend4, 40620, 8080, kTcpSyn, 1410))),
         std::move(removed)});
    add("tunnel_foreign_vni_from_unknown_source_passes",
        {Step("another tunnel on the port: the stack's",
              FromRemote("198.18.100.77", kNodeTunnel4, XLB_ENCAP_VXLAN, inner4, 4243),
              XLB_PASS_TUNNEL_FOREIGN)});
  }

  // --- malformed or foreign tunnel packets pass untouched ---
  {
    const Bytes inner = Seg(kClient4, kLocalBackend4, 40600, 8080, kTcpSyn);
    auto raw = [](uint16_t dport, const Bytes& payload) {
      return Packet().eth(kRemoteNodeMac, kUplinkMac).ipv4(kRemoteNode4, kNodeTunnel4)
          .udp(51000, dport, {.zero_checksum = true}).payload(payload).build();
    };
    Bytes truncated = inner;
    truncated.resize(truncated.size() - 10);
    Bytes arp = VxlanHeader(XLB_VXLAN_VNI);
    const Bytes arp_eth = {0x02, 0x78, 0x6c, 0x62, 0x00, 0x01, 0x02, 0, 0, 0, 1, 2, 0x08, 0x06};
    arp.insert(arp.end(), arp_eth.begin(), arp_eth.end());
    arp.resize(arp.size() + 28);
    const Bytes bad_doff = L3(kClient4, kLocalBackend4).tcp(40600, 8080, kTcpSyn, {.doff = 4}).build();
    add("tunnel_short_vxlan_header",
        {Step("4 bytes of VXLAN", raw(XLB_VXLAN_PORT, {0x08, 0, 0, 0}), XLB_PASS_TUNNEL_MALFORMED)});
    add("tunnel_vxlan_wrong_vni",
        {Step("VNI 4243", FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, inner, 4243),
              XLB_PASS_TUNNEL_FOREIGN)});
    add("tunnel_vxlan_without_i_flag",
        {Step("flags 0", FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, inner, XLB_VXLAN_VNI, 0),
              XLB_PASS_TUNNEL_FOREIGN)});
    add("tunnel_vxlan_inner_not_ip",
        {Step("ARP inside", raw(XLB_VXLAN_PORT, arp), XLB_PASS_TUNNEL_FOREIGN)});
    add("tunnel_inner_truncated",
        {Step("VXLAN, inner IP length beyond the datagram",
              FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_VXLAN, truncated), XLB_PASS_TUNNEL_MALFORMED),
         Step("GUE, the same", FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_GUE, truncated),
              XLB_PASS_TUNNEL_MALFORMED)});
    add("tunnel_inner_bad_tcp_header",
        {Step("doff 4", FromRemote(kRemoteNode4, kNodeTunnel4, XLB_ENCAP_GUE, bad_doff),
              XLB_PASS_TUNNEL_MALFORMED)});
    add("tunnel_gue_not_variant_1",
        {Step("first nibble 0", raw(XLB_GUE_PORT, Bytes(40, 0)), XLB_PASS_TUNNEL_FOREIGN)});
    add("tunnel_udp_length_beyond_packet",
        {Step("UDP length 200 in a shorter packet",
              Packet().eth(kRemoteNodeMac, kUplinkMac).ipv4(kRemoteNode4, kNodeTunnel4)
                  .udp(51000, XLB_VXLAN_PORT, {.length = 200, .zero_checksum = true})
                  .payload(VxlanHeader(XLB_VXLAN_VNI)).build(),
              XLB_PASS_TUNNEL_MALFORMED)});
  }
  AddSemanticsCases(cases);
  return cases;
}

}  // namespace xlb::testing
