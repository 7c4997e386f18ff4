// xlb-bench: nanoseconds per packet of the real xlb_xdp program, through BPF_PROG_TEST_RUN.
//
// BPF_PROG_TEST_RUN with `repeat` runs a program on one buffer again and again, so a program
// that rewrites the packet (DNAT) would see its own output from the second repetition on.
// The benchmark wrapper (bpf/xlb_bench.bpf.c) restores the original frame before every
// repetition, optionally stamps a fresh source address, and tail-calls the program under
// test. Its own cost is measured by pointing it at the floor program instead:
//
//   t(xlb_xdp) = t(wrapper -> xlb_xdp) - t(wrapper -> floor) + t(floor)
//
// where the floor is the cheapest XDP program (return XDP_PASS), run directly. Every number
// comes with proof that the path under test is the one that ran: xlb's per-reason counters
// must rise by exactly `repeat` for the expected reason and not move for any other.
//
// The cross-cluster paths (DNAT + encapsulation toward a remote node, decapsulation, the
// reply's reverse NAT) ask the kernel's fib for the next hop, so the benchmark runs in a
// network namespace of its own (unshare: it disappears with the process), with one veth as
// the node's uplink, a route to the remote node and a static neighbour entry; every run
// names that veth as the ingress interface. The local backends sit behind a second veth, with
// routes and static neighbours, listed in xlb_fwddev as the agent would: their packets take
// the forwarding fast path (fib, MACs, XDP_REDIRECT). Nothing is sent: BPF_PROG_TEST_RUN
// only reports the XDP_TX or XDP_REDIRECT verdict.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "bench_wrapper.h"
#include "builder.h"
#include "decoder.h"
#include "flow_maps.h"
#include "katran_shape.h"
#include "lb_fixture.h"
#include "loader/libbpf_opts.h"
#include "loader/reasons.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "maps/xlb_abi.h"
#include "maps/xlb_hash.h"
#include "tunnel_frames.h"
#include "util/result.h"

namespace xlb::bench {
namespace {

using pkt::Bytes;
using testing::Backend;
using testing::ServiceWriter;
using testing::VipKey;
using testing::WeightedBackend;

// Conntrack is sized so that a new-flow run (one entry per repetition) stays far from LRU
// eviction: the entry count after each run is checked against `repeat`.
constexpr uint32_t kDefaultCtEntries = 1u << 20;
constexpr uint32_t kDefaultNewFlowRepeat = 200'000;
constexpr uint32_t kBackends = 10;
constexpr uint16_t kVipPort = 80;
constexpr uint16_t kBackendPort = 8080;
constexpr uint16_t kClientPort = 40000;
// SNAT backends, each its own address: a new flow claims one of XLB_SNAT_PORTS ports toward
// its backend, so a run of R new flows fills about R / backends of each backend's range.
constexpr uint32_t kDefaultSnatBackends = 1000;
constexpr uint32_t kMaxSnatBackends = 4096;
constexpr uint32_t kSnatPorts = XLB_SNAT_PORT_MAX - XLB_SNAT_PORT_MIN + 1;
constexpr uint16_t kSnatAnswerPort = 62000;  // the port the answer scenario's flow was given

// The private uplink of the cross-cluster scenarios (inside the benchmark's own namespace).
constexpr const char* kUplink = "xlbb0";
constexpr const char* kUplinkPeer = "xlbb1";
constexpr const char* kUplinkMac = "02:00:00:00:00:02";
// The veth toward this node's pods: the local backends' routes and static neighbours, and an
// XDP forwarding target (xlb_fwddev), so that their packets take xlb's fast path.
constexpr const char* kPodVeth = "xlbp0";
constexpr const char* kPodVethPeer = "xlbp1";
constexpr const char* kPodMac = "02:00:00:00:02:01";
constexpr const char* kNextHopMac = "02:00:00:00:01:01";
constexpr const char* kRemoteNodeMac = "02:00:00:00:02:02";
constexpr uint16_t kTunnelSport = 51000;  // what a remote node's xlb would pick

// Katran's published BPF_PROG_TEST_RUN figures, on the same kind of machine.
constexpr double kKatranTrivialNs = 12;

struct Family {
  const char* name;
  uint8_t family;
  const char* client;
  const char* vip;
  const char* not_vip;  // a destination whose VIP filter bit is clear
  uint32_t stamp_off;   // the low 32 bits of the source address in the frame
  uint32_t service_id;
  uint32_t first_backend_id;
  std::string (*backend_addr)(uint32_t i);
  // Cross-cluster: a second service whose backends are pods of a remote cluster behind
  // remote_node; this node's tunnel address is local_node, its next hop next_hop.
  const char* remote_vip;
  uint32_t remote_service_id;
  uint32_t first_remote_backend_id;
  std::string (*remote_backend_addr)(uint32_t i);
  const char* local_node;
  const char* remote_node;
  const char* next_hop;
  const char* uplink_net;  // local_node/prefix, for `ip addr add`
  const char* remote_net;  // the remote node's network, routed via next_hop
  // SNAT: a third service whose backends are hosts without xlb (XLB_BE_F_SNAT) in snat_net,
  // routed via next_hop like the remote node: flows leave from local_node and a SNAT port.
  const char* snat_vip;
  uint32_t snat_service_id;
  std::string (*snat_backend_addr)(uint32_t i);  // i = 1..kMaxSnatBackends
  const char* snat_net;
};

std::string BackendAddr4(uint32_t i) {
  return "198.18.20." + std::to_string(i);
}
std::string BackendAddr6(uint32_t i) {
  return "2001:db8:20::" + std::to_string(i);
}
std::string RemoteBackendAddr4(uint32_t i) {
  return "198.18.40." + std::to_string(i);
}
std::string RemoteBackendAddr6(uint32_t i) {
  return "2001:db8:40::" + std::to_string(i);
}
std::string SnatBackendAddr4(uint32_t i) {
  return "198.19." + std::to_string(i >> 8) + "." + std::to_string(i & 0xff);
}
std::string SnatBackendAddr6(uint32_t i) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "%x", i);
  return std::string("2001:db8:60::") + hex;
}

const Family kIpv4 = {.name = "IPv4",
                      .family = XLB_FAMILY_IPV4,
                      .client = "198.18.0.1",
                      .vip = "198.18.10.1",
                      .not_vip = "198.18.99.1",
                      .stamp_off = 14 + 12,  // Ethernet, then saddr in the IPv4 header
                      .service_id = 1,
                      .first_backend_id = 1,
                      .backend_addr = BackendAddr4,
                      .remote_vip = "198.18.10.2",
                      .remote_service_id = 3,
                      .first_remote_backend_id = 1 + 2 * kBackends,
                      .remote_backend_addr = RemoteBackendAddr4,
                      .local_node = "198.18.1.2",
                      .remote_node = "198.18.2.2",
                      .next_hop = "198.18.1.1",
                      .uplink_net = "198.18.1.2/24",
                      .remote_net = "198.18.2.0/24",
                      .snat_vip = "198.18.10.3",
                      .snat_service_id = 5,
                      .snat_backend_addr = SnatBackendAddr4,
                      .snat_net = "198.19.0.0/16"};
const Family kIpv6 = {.name = "IPv6",
                      .family = XLB_FAMILY_IPV6,
                      .client = "2001:db8:1::1",
                      .vip = "2001:db8:10::1",
                      .not_vip = "2001:db8:99::1",
                      .stamp_off = 14 + 8 + 12,  // the last word of the IPv6 saddr
                      .service_id = 2,
                      .first_backend_id = 1 + kBackends,
                      .backend_addr = BackendAddr6,
                      .remote_vip = "2001:db8:10::2",
                      .remote_service_id = 4,
                      .first_remote_backend_id = 1 + 3 * kBackends,
                      .remote_backend_addr = RemoteBackendAddr6,
                      .local_node = "2001:db8:1::2",
                      .remote_node = "2001:db8:2::2",
                      .next_hop = "2001:db8:1::fe",
                      .uplink_net = "2001:db8:1::2/64",
                      .remote_net = "2001:db8:2::/64",
                      .snat_vip = "2001:db8:10::3",
                      .snat_service_id = 6,
                      .snat_backend_addr = SnatBackendAddr6,
                      .snat_net = "2001:db8:60::/64"};

enum class Kind {
  kNotVip,
  kVipOtherPort,
  kNewFlow,
  kEstablished,
  kRemoteNewFlow,      // to a VIP whose backends are remote: Maglev, CT insert, DNAT, VXLAN
  kRemoteEstablished,  // the same flow again: CT hit, DNAT, VXLAN
  kDecap,              // VXLAN from a remote node to a pod here: decap, tunnel reply entry
  kReply,              // VXLAN reply of a remote backend: decap, reverse NAT to the VIP
  kSnatNewFlow,        // to a VIP of SNAT backends: Maglev, port claim, CT insert, DNAT+SNAT, fib
  kSnatEstablished,    // the same flow again: CT hit, SNAT entry touch, DNAT+SNAT, fib
  kSnatAnswer,         // the backend's answer to node:port: SNAT lookup, back to VIP -> client
  // Not xlb: the Katran-shaped program (bpf/xlb_katran_shape.bpf.c) on the same frames.
  kKatranNewFlow,      // LRU miss, ring, one LRU insert, IPIP, XDP_TX
  kKatranEstablished,  // LRU hit, IPIP, XDP_TX
};

bool IsKatran(Kind k) {
  return k == Kind::kKatranNewFlow || k == Kind::kKatranEstablished;
}

bool IsNewFlow(Kind k) {
  return k == Kind::kNewFlow || k == Kind::kRemoteNewFlow || k == Kind::kSnatNewFlow;
}

struct Scenario {
  std::string name;
  const Family* family;
  Kind kind;
  Bytes frame;
  uint32_t stamp_off = 0;  // 0: the frame is restored unchanged
  xlb_reason expected;
  uint32_t repeat = 0;
  double target_x = 0;   // our goal, as a multiple of the floor; 0: none
  double katran_ns = 0;  // Katran's figure; 0: none
  uint32_t verdict = XDP_PASS;
  uint32_t service_id = 0;  // the service whose counters the packets move; 0: none
  // Bytes the reason counter counts per packet: the frame as xlb hands it on (encapsulated or
  // decapsulated); 0: kFrameLen.
  uint32_t counted_len = 0;
};

// VXLAN's outer headers: IP, UDP, VXLAN and the inner Ethernet header.
uint32_t VxlanOverhead(const Family& f) {
  return (f.family == XLB_FAMILY_IPV6 ? 40 : 20) + 8 + 8 + 14;
}

struct Options {
  uint32_t runs = 7;
  uint32_t repeat = 1'000'000;
  uint32_t new_flow_repeat = 0;  // 0: min(repeat, kDefaultNewFlowRepeat)
  uint32_t ct_entries = kDefaultCtEntries;
  uint32_t snat_backends = kDefaultSnatBackends;
  bool json = false;
  int cpu = -1;        // pin to this CPU; -1: leave scheduling alone
  std::string filter;  // run only the scenarios whose name contains this
};

// One measured run of one scenario: three BPF_PROG_TEST_RUN calls.
struct Sample {
  uint32_t floor_ns = 0;       // floor program, directly
  uint32_t wrap_floor_ns = 0;  // wrapper -> floor
  uint32_t wrap_xlb_ns = 0;    // wrapper -> xlb_xdp
  // xlb_xdp directly, without the wrapper: only where the program leaves the packet as it
  // was (non-service), so that direct repetitions are all alike. 0: not measured.
  uint32_t direct_ns = 0;
  int64_t xlb_ns() const {
    return int64_t{wrap_xlb_ns} - int64_t{wrap_floor_ns} + int64_t{floor_ns};
  }
  int64_t wrapper_ns() const { return int64_t{wrap_floor_ns} - int64_t{floor_ns}; }
  double x_floor() const { return floor_ns > 0 ? static_cast<double>(xlb_ns()) / floor_ns : 0; }
};

struct ScenarioResult {
  const Scenario* scenario;
  std::vector<Sample> samples;
  std::string check;  // the counter proof, for the table
};

// Everything xlb counts that a benchmark run could move.
struct Counters {
  std::array<xlb_counter, XLB_REASON_MAX> reasons{};
  std::array<xlb_flow_counter, 7> services{};  // by service id; 0 unused
};

Result<Counters> ReadCounters(const XdpDatapath& dp) {
  Counters c;
  auto reasons = dp.reasons();
  for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
    XLB_ASSIGN_OR_RETURN(auto sum, reasons.LookupSum(i));
    c.reasons[i] = sum;
  }
  auto services = dp.service_stats();
  for (uint32_t id = 1; id < c.services.size(); ++id) {
    XLB_ASSIGN_OR_RETURN(auto sum, services.LookupSum(id));
    c.services[id] = sum;
  }
  return c;
}

struct FlowEntries {
  uint64_t conntrack = 0;
  uint64_t replies = 0;
  uint64_t snat = 0;
  uint64_t half_open = 0;  // half-open flows (one entry each: conntrack and reply)
  // The most SNAT ports taken toward one backend (address, port, protocol): how full the
  // fullest backend's port range was.
  uint64_t snat_ports_peak = 0;
};

// Empties conntrack, the reply map and the SNAT map, and the half-open tables (a new flow
// writes a conntrack entry and either a reply entry or, toward a SNAT backend, a SNAT entry;
// a SYN's are one half-open entry holding both, counted as one of each and in `half_open`;
// decapsulation writes reply entries only) and returns how many entries each kind held.
Result<FlowEntries> ClearConntrack(const XdpDatapath& dp) {
  FlowEntries e;
  XLB_ASSIGN_OR_RETURN(e.conntrack, ClearFlowMap<xlb_ct_value>(dp.conntrack().fd(), XLB_MAP_CT));
  XLB_ASSIGN_OR_RETURN(e.replies, ClearFlowMap<xlb_reply>(dp.replies().fd(), XLB_MAP_REPLY));
  XLB_ASSIGN_OR_RETURN(e.half_open, (ClearFlowMap<xlb_half_open, xlb_half_key>(
                                        dp.half_open_conntrack().fd(), XLB_MAP_CT_HALF_OPEN)));
  XLB_ASSIGN_OR_RETURN(uint64_t half_replies, ClearFlowMap<xlb_reply>(dp.half_open_replies().fd(),
                                                                      XLB_MAP_REPLY_HALF_OPEN));
  e.conntrack += e.half_open;
  e.replies += e.half_open + half_replies;
  std::vector<xlb_ct_key> snat_keys;
  XLB_ASSIGN_OR_RETURN(e.snat, ClearFlowMap<xlb_snat>(dp.snat().fd(), XLB_MAP_SNAT, &snat_keys));
  // A SNAT key is the answer's tuple: saddr and sport are the backend's.
  std::map<std::tuple<std::array<uint32_t, 4>, uint16_t, uint8_t>, uint64_t> per_backend;
  for (const xlb_ct_key& k : snat_keys) {
    std::array<uint32_t, 4> addr;
    std::copy(std::begin(k.saddr), std::end(k.saddr), addr.begin());
    e.snat_ports_peak = std::max(e.snat_ports_peak, ++per_backend[{addr, k.sport, k.proto}]);
  }
  return e;
}

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// A TCP flow's key as xlb's flow maps keep it.
xlb_ct_key TcpKey(uint8_t family, const std::string& src, const std::string& dst, uint16_t sport,
                  uint16_t dport) {
  xlb_ct_key key{};
  const auto s = testing::ParseAddr(src);
  const auto d = testing::ParseAddr(dst);
  std::copy(s.words.begin(), s.words.end(), key.saddr);
  std::copy(d.words.begin(), d.words.end(), key.daddr);
  key.sport = htons(sport);
  key.dport = htons(dport);
  key.proto = IPPROTO_TCP;
  key.family = family;
  return key;
}

// inet_ntop's form of an address in xlb's words, as pkt::Decode gives addresses.
std::string AddrText(uint8_t family, const uint32_t* words) {
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family == XLB_FAMILY_IPV4 ? AF_INET : AF_INET6, words, text, sizeof(text))) {
    return "?";
  }
  return text;
}

// An IP packet (no Ethernet) of a TCP segment, padded with payload so that the frame it ends
// up in is exactly kFrameLen bytes, given `outer` bytes of headers in front of it.
Bytes Segment(uint8_t family, const std::string& src, const std::string& dst, uint16_t sport,
              uint16_t dport, uint8_t tcp_flags, size_t outer) {
  auto packet = [&] {
    pkt::Packet p;
    if (family == XLB_FAMILY_IPV4) {
      p.ipv4(src, dst);
    } else {
      p.ipv6(src, dst);
    }
    p.tcp(sport, dport, tcp_flags, {.seq = 1000, .ack = (tcp_flags & pkt::kTcpAck) ? 1u : 0u});
    return p;
  };
  const size_t headers = packet().build().size();
  return packet().payload(Bytes(kFrameLen - outer - headers, 'x')).build();
}

// A frame to the uplink: Ethernet, then an IP packet.
Bytes Frame(uint8_t family, const std::string& src, const std::string& dst, uint16_t sport,
            uint16_t dport, uint8_t tcp_flags) {
  Bytes frame = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01,
                 static_cast<uint8_t>(family == XLB_FAMILY_IPV4 ? 0x08 : 0x86),
                 static_cast<uint8_t>(family == XLB_FAMILY_IPV4 ? 0x00 : 0xdd)};
  const Bytes ip = Segment(family, src, dst, sport, dport, tcp_flags, frame.size());
  frame.insert(frame.end(), ip.begin(), ip.end());
  return frame;
}

Bytes Frame(const Family& f, const char* dst, uint16_t dport, uint8_t tcp_flags) {
  return Frame(f.family, f.client, dst, kClientPort, dport, tcp_flags);
}

// What a remote node's xlb sends this node: outer IP between the nodes, UDP (checksum 0)
// to the VXLAN port, the VXLAN header with xlb's VNI, an inner Ethernet header to the VTEP
// MAC, and the inner packet; kFrameLen bytes in all.
Bytes VxlanFromRemote(const Family& f, const std::string& src, const std::string& dst,
                      uint16_t sport, uint16_t dport) {
  const xlb_config cfg = XLB_CONFIG_DEFAULTS;
  const bool v6 = f.family == XLB_FAMILY_IPV6;
  const size_t outer = 14 + (v6 ? 40 : 20) + 8 + 8 + 14;
  const Bytes inner_ip = Segment(f.family, src, dst, sport, dport, pkt::kTcpAck, outer);
  Bytes payload = {0x08, 0, 0, 0, static_cast<uint8_t>(cfg.vni >> 16),
                   static_cast<uint8_t>(cfg.vni >> 8), static_cast<uint8_t>(cfg.vni), 0};
  for (uint8_t b : cfg.vtep_mac) {
    payload.push_back(b);
  }
  const Bytes remote_mac = {0x02, 0, 0, 0, 0x02, 0x02};
  payload.insert(payload.end(), remote_mac.begin(), remote_mac.end());
  payload.push_back(v6 ? 0x86 : 0x08);
  payload.push_back(v6 ? 0xdd : 0x00);
  payload.insert(payload.end(), inner_ip.begin(), inner_ip.end());
  pkt::Packet p;
  p.eth(kRemoteNodeMac, "02:00:00:00:00:02");
  if (v6) {
    p.ipv6(f.remote_node, f.local_node, {.hop_limit = 64});
    p.udp(kTunnelSport, XLB_VXLAN_PORT, {.checksum = 0});
  } else {
    p.ipv4(f.remote_node, f.local_node, {.ttl = 64, .df = true});
    p.udp(kTunnelSport, XLB_VXLAN_PORT, {.zero_checksum = true});
  }
  return p.payload(payload).build();
}

std::vector<Scenario> Scenarios(const Options& o) {
  const uint32_t new_flow_repeat =
      o.new_flow_repeat ? o.new_flow_repeat : std::min(o.repeat, kDefaultNewFlowRepeat);
  std::vector<Scenario> out;
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string fam = f->name;
    out.push_back({fam + " non-service (dst not a VIP)", f, Kind::kNotVip,
                   Frame(*f, f->not_vip, kVipPort, pkt::kTcpAck), 0, XLB_PASS_NO_SERVICE, o.repeat,
                   2.5, 64});
    out.push_back({fam + " non-service (VIP addr, port not served)", f, Kind::kVipOtherPort,
                   Frame(*f, f->vip, 81, pkt::kTcpAck), 0, XLB_PASS_NO_SERVICE, o.repeat, 0, 0});
    out.push_back({fam + " new flow (SYN, CT miss+Maglev+CT insert+DNAT+forward)", f,
                   Kind::kNewFlow, Frame(*f, f->vip, kVipPort, pkt::kTcpSyn), f->stamp_off,
                   XLB_FWD_ROUTED, new_flow_repeat, 12, 330, XDP_REDIRECT, f->service_id});
    out.push_back({fam + " established (ACK, CT hit+DNAT+forward)", f, Kind::kEstablished,
                   Frame(*f, f->vip, kVipPort, pkt::kTcpAck), 0, XLB_FWD_ROUTED, o.repeat, 6, 130,
                   XDP_REDIRECT, f->service_id});
  }
  // Cross-cluster paths: IPv4 and IPv6 inside, the outer header of the same family.
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string fam = f->name;
    out.push_back({fam + " remote new flow (SYN, Maglev+CT insert+DNAT+VXLAN)", f,
                   Kind::kRemoteNewFlow, Frame(*f, f->remote_vip, kVipPort, pkt::kTcpSyn),
                   f->stamp_off, XLB_FWD_ENCAP, new_flow_repeat, 14, 330, XDP_TX,
                   f->remote_service_id, kFrameLen + VxlanOverhead(*f)});
    out.push_back({fam + " remote established (ACK, CT hit+DNAT+VXLAN)", f,
                   Kind::kRemoteEstablished, Frame(*f, f->remote_vip, kVipPort, pkt::kTcpAck), 0,
                   XLB_FWD_ENCAP, o.repeat, 8, 130, XDP_TX, f->remote_service_id,
                   kFrameLen + VxlanOverhead(*f)});
    out.push_back({fam + " decap (VXLAN to a pod here, tunnel reply entry)", f, Kind::kDecap,
                   VxlanFromRemote(*f, f->client, f->backend_addr(1), kClientPort, kBackendPort), 0,
                   XLB_FWD_DECAP_ROUTED, o.repeat, 0, 0, XDP_REDIRECT, 0,
                   kFrameLen - VxlanOverhead(*f)});
    out.push_back({fam + " reply (VXLAN decap+reverse NAT to the VIP)", f, Kind::kReply,
                   VxlanFromRemote(*f, f->remote_backend_addr(1), f->client, kBackendPort,
                                   kClientPort),
                   0, XLB_FWD_REPLY_REVNAT, o.repeat, 0, 0, XDP_PASS, 0,
                   kFrameLen - VxlanOverhead(*f)});
  }
  // SNAT: to backends without xlb, from this node's address; routed by xlb (fib lookup).
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string fam = f->name;
    out.push_back({fam + " SNAT new flow (SYN: CT miss + Maglev + SNAT port claim + CT insert + "
                         "DNAT/SNAT + fib)",
                   f, Kind::kSnatNewFlow, Frame(*f, f->snat_vip, kVipPort, pkt::kTcpSyn),
                   f->stamp_off, XLB_FWD_SNAT, new_flow_repeat, 0, 330, XDP_TX,
                   f->snat_service_id});
    out.push_back({fam + " SNAT established (ACK: CT hit + SNAT entry touch + DNAT/SNAT + fib)", f,
                   Kind::kSnatEstablished, Frame(*f, f->snat_vip, kVipPort, pkt::kTcpAck), 0,
                   XLB_FWD_SNAT, o.repeat, 0, 130, XDP_TX, f->snat_service_id});
    out.push_back({fam + " SNAT answer (backend -> node:port: SNAT lookup + reverse rewrite)", f,
                   Kind::kSnatAnswer,
                   Frame(f->family, f->snat_backend_addr(1), f->local_node, kBackendPort,
                         kSnatAnswerPort, pkt::kTcpAck),
                   0, XLB_FWD_REPLY_SNAT, o.repeat, 0, 0, XDP_PASS, 0});
  }
  // The Katran-shaped program, same frames, connection table as large as conntrack: what one
  // LRU insert per new flow (Katran's design, no reverse NAT) costs on this machine.
  out.push_back({"IPv4 Katran-shaped new flow (SYN: LRU miss + ring + one LRU insert + IPIP)",
                 &kIpv4, Kind::kKatranNewFlow, Frame(kIpv4, kIpv4.vip, kVipPort, pkt::kTcpSyn),
                 kIpv4.stamp_off, XLB_REASON_MAX, new_flow_repeat, 0, 330, XDP_TX, 0,
                 kFrameLen + 20});
  out.push_back({"IPv4 Katran-shaped established (ACK: LRU hit + IPIP)", &kIpv4,
                 Kind::kKatranEstablished, Frame(kIpv4, kIpv4.vip, kVipPort, pkt::kTcpAck), 0,
                 XLB_REASON_MAX, o.repeat, 0, 130, XDP_TX, 0, kFrameLen + 20});
  return out;
}

class Bench {
 public:
  static Result<std::unique_ptr<Bench>> Load(const Options& o, int uplink) {
    auto b = std::unique_ptr<Bench>(new Bench());
    b->uplink_ = uplink;
    // Half-open tables as large as conntrack: a SYN's inserts land there (every new-flow run
    // is a run of SYNs), and the run must not evict them.
    LoadOptions lo{
        .pin_dir = "", .max_ct_entries = o.ct_entries, .max_half_open_entries = o.ct_entries};
    lo.config.tunnel_addr4 = testing::ParseAddr(kIpv4.local_node).words[0];
    const auto local6 = testing::ParseAddr(kIpv6.local_node);
    std::copy(local6.words.begin(), local6.words.end(), lo.config.tunnel_addr6);
    lo.config.encap = XLB_ENCAP_VXLAN;
    XLB_ASSIGN_OR_RETURN(b->dp_, XdpDatapath::Load(lo));
    // What the agent writes for a pod veth whose peer runs NAPI (the peer has none here, and
    // nothing is sent: BPF_PROG_TEST_RUN only reports the verdict).
    const auto pod = static_cast<uint32_t>(if_nametoindex(kPodVeth));
    XLB_TRY(b->dp_->forward_devices().Update(pod, pod));
    XLB_ASSIGN_OR_RETURN(b->floor_, XdpFloor::Load());
    XLB_ASSIGN_OR_RETURN(b->wrapper_, BenchWrapper::Load());
    XLB_ASSIGN_OR_RETURN(b->katran_, KatranShape::Load(o.ct_entries, kIpv4.vip, kVipPort, kBackends,
                                                       kIpv4.backend_addr));
    b->writer_ = std::make_unique<ServiceWriter>(*b->dp_);
    for (const Family* f : {&kIpv4, &kIpv6}) {
      XLB_TRY(b->AddService(*f));
      XLB_TRY(b->AddRemoteService(*f));
      XLB_TRY(b->AddSnatService(*f, o.snat_backends));
    }
    for (const Family* f : {&kIpv4, &kIpv6}) {
      XLB_TRY(b->CheckNotVip(*f));
    }
    return b;
  }

  // Spins the floor program for about `ms` milliseconds before anything is measured: the
  // first scenario otherwise catches the CPU still waking up (floor 10 ns instead of 7).
  Result<void> WarmUp(const Bytes& frame, uint32_t ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      auto r = TestRunXdpOn(floor_->prog_fd(), frame, uplink_, 1'000'000);
      if (!r.ok()) {
        return std::move(r).take_error().Within("warm-up");
      }
    }
    return {};
  }

  // One scenario: optional set-up, a warm-up run (checked, not reported), then `runs` runs.
  // The warm-up is full-sized: a new-flow run empties conntrack, and the kernel puts the
  // deleted entries back on the LRU free list in hash order, so every later run inserts into
  // scattered memory. Without a full warm-up, the first run would still find the free list
  // in allocation order and come out ~30% cheaper than the rest.
  Result<ScenarioResult> Run(const Scenario& s, const Options& o) {
    ScenarioResult r{&s, {}, {}};
    XLB_TRY(CheckFrame(s));
    if (s.kind == Kind::kEstablished || s.kind == Kind::kRemoteEstablished ||
        s.kind == Kind::kSnatEstablished) {
      XLB_TRY(Prime(s));
    }
    if (s.kind == Kind::kSnatEstablished) {
      XLB_TRY(RecordSnatFlow(s));
    }
    if (s.kind == Kind::kReply) {
      XLB_TRY(AddReverseNat(*s.family));
    }
    if (s.kind == Kind::kSnatAnswer) {
      XLB_TRY(AddSnatEntry(*s.family));
    }
    if (s.kind == Kind::kKatranEstablished) {
      XLB_TRY(PrimeKatran(s));
    }
    snat_ports_peak_ = 0;
    auto warm = RunOnce(s, o.repeat, s.repeat);
    if (!warm.ok()) {
      return std::move(warm).take_error().Within("warm-up");
    }
    for (uint32_t i = 0; i < o.runs; ++i) {
      auto sample = RunOnce(s, o.repeat, s.repeat);
      if (!sample.ok()) {
        return std::move(sample).take_error().Within("run " + std::to_string(i + 1));
      }
      r.samples.push_back(*sample);
    }
    const std::string times = o.runs > 1 ? " ×" + std::to_string(o.runs) : "";
    if (IsKatran(s.kind)) {
      r.check = std::string(s.kind == Kind::kKatranNewFlow ? "its new flows" : "its LRU hits") +
                " +" + std::to_string(s.repeat) + times + ", xlb's counters 0";
      if (s.kind == Kind::kKatranNewFlow) {
        r.check += "; LRU +" + std::to_string(s.repeat);
      }
      r.check += "; XDP_TX";
      return r;
    }
    r.check = std::string(ReasonName(s.expected)) + " +" + std::to_string(s.repeat) + times +
              ", others 0";
    if (s.kind == Kind::kSnatNewFlow) {
      // How full the fullest backend's port range was when each run ended (it starts empty).
      r.check += "; CT +" + std::to_string(s.repeat) + ", SNAT +" + std::to_string(s.repeat) +
                 " (" + std::to_string(o.snat_backends) + " backends, at most " +
                 std::to_string(snat_ports_peak_) + " of " + std::to_string(kSnatPorts) +
                 " ports taken toward one = " +
                 Fmt("%.1f", 100.0 * static_cast<double>(snat_ports_peak_) / kSnatPorts) +
                 " % at the run's end)";
    } else if (IsNewFlow(s.kind)) {
      r.check += "; CT +" + std::to_string(s.repeat) + " (half-open: one entry per SYN)";
    }
    if (s.verdict == XDP_TX) {
      r.check += "; XDP_TX";
    }
    return r;
  }

 private:
  Bench() = default;

  // A TCP service at vip:kVipPort of `count` backends with ids from first_id: backend i
  // (1..count) is make(addr(i)), its address recorded in `addrs` for the output checks.
  template <typename MakeBackend>
  Result<void> AddTcpService(const std::string& what, uint32_t service_id, const char* vip_addr,
                             uint32_t first_id, uint32_t count, std::string (*addr)(uint32_t),
                             MakeBackend make, std::set<std::string>& addrs) {
    const xlb_service_key vip = VipKey(vip_addr, kVipPort, IPPROTO_TCP);
    std::vector<WeightedBackend> backends;
    for (uint32_t i = 1; i <= count; ++i) {
      backends.push_back({first_id + i - 1, make(addr(i))});
      addrs.insert(addr(i));
    }
    auto added = writer_->AddService(service_id, std::span(&vip, 1), backends);
    if (!added.ok()) {
      return std::move(added).take_error().Within(what);
    }
    return {};
  }

  Result<void> AddService(const Family& f) {
    return AddTcpService(
        std::string(f.name) + " service", f.service_id, f.vip, f.first_backend_id, kBackends,
        f.backend_addr, [](const std::string& a) { return Backend(a, kBackendPort); },
        backend_addrs_);
  }

  // The non-service scenario measures the VIP filter's fast exit: its bit must be clear once
  // every VIP is in.
  Result<void> CheckNotVip(const Family& f) {
    const auto addr = testing::ParseAddr(f.not_vip);
    uint32_t word = 0;
    const uint64_t bit = xlb_vip_filter_pos(addr.words.data(), &word);
    XLB_ASSIGN_OR_RETURN(auto w, dp_->vip_filter().Lookup(word));
    if (w & bit) {
      return Error{EINVAL, std::string(f.not_vip) +
                               " collides with a VIP in the VIP filter; "
                               "pick another non-service address"};
    }
    return {};
  }

  // The cross-cluster service: its backends are pods of another cluster, reached through
  // the remote node (XLB_BE_F_TUNNEL).
  Result<void> AddRemoteService(const Family& f) {
    const auto node = testing::ParseAddr(f.remote_node);
    // The remote node is a tunnel peer: its VXLAN (the decap scenarios) is decapsulated.
    xlb_peer_key peer{};
    std::copy(node.words.begin(), node.words.end(), peer.addr);
    peer.family = node.family;
    XLB_TRY(dp_->peers().Update(peer, xlb_peer{.cluster_id = 2, .pad = {}}));
    auto tunnelled = [&](const std::string& a) {
      xlb_backend be = Backend(a, kBackendPort, 2);
      be.flags |= XLB_BE_F_TUNNEL;
      std::copy(node.words.begin(), node.words.end(), be.tunnel);
      be.tunnel_family = node.family;
      return be;
    };
    return AddTcpService(std::string(f.name) + " remote service", f.remote_service_id, f.remote_vip,
                         f.first_remote_backend_id, kBackends, f.remote_backend_addr, tunnelled,
                         remote_backend_addrs_);
  }

  // The SNAT service: its backends are hosts without xlb (XLB_BE_F_SNAT), each its own
  // address with a port range of its own, in a network routed via the uplink's next hop.
  Result<void> AddSnatService(const Family& f, uint32_t count) {
    // Backend ids after the local and remote services', the IPv4 service's first.
    const uint32_t first_id = 1 + 4 * kBackends + (f.family == XLB_FAMILY_IPV4 ? 0 : count);
    auto snat = [](const std::string& a) {
      xlb_backend be = Backend(a, kBackendPort);
      be.flags |= XLB_BE_F_SNAT;
      return be;
    };
    return AddTcpService(std::string(f.name) + " SNAT service", f.snat_service_id, f.snat_vip,
                         first_id, count, f.snat_backend_addr, snat, snat_backend_addrs_);
  }

  // The SNAT answer scenario's flow, client -> SNAT VIP, went to SNAT backend 1 from this
  // node's address and kSnatAnswerPort: its SNAT entry, keyed by the answer's tuple.
  Result<void> AddSnatEntry(const Family& f) {
    const xlb_ct_key key =
        TcpKey(f.family, f.snat_backend_addr(1), f.local_node, kBackendPort, kSnatAnswerPort);
    xlb_snat entry{};
    const auto client = testing::ParseAddr(f.client);
    const auto vip = testing::ParseAddr(f.snat_vip);
    std::copy(client.words.begin(), client.words.end(), entry.client);
    std::copy(vip.words.begin(), vip.words.end(), entry.vip);
    entry.client_port = htons(kClientPort);
    entry.vip_port = htons(kVipPort);
    entry.family = f.family;
    return dp_->snat().Update(key, entry);
  }

  // After priming the SNAT established flow: its one SNAT entry, which must answer to the
  // client from the VIP and hold the port the flow's conntrack entry keeps. The output of
  // every run is checked against it.
  Result<void> RecordSnatFlow(const Scenario& s) {
    const Family& f = *s.family;
    XLB_ASSIGN_OR_RETURN(auto keys, dp_->snat().Keys());
    if (keys.size() != 1) {
      return Error{EPROTO, s.name + ": priming left " + std::to_string(keys.size()) +
                               " SNAT entries, expected 1"};
    }
    const xlb_ct_key& key = keys.front();
    XLB_ASSIGN_OR_RETURN(auto entry, dp_->snat().Lookup(key));
    const auto client = testing::ParseAddr(f.client);
    const auto vip = testing::ParseAddr(f.snat_vip);
    if (!std::equal(client.words.begin(), client.words.end(), entry.client) ||
        !std::equal(vip.words.begin(), vip.words.end(), entry.vip) ||
        entry.client_port != htons(kClientPort) || entry.vip_port != htons(kVipPort)) {
      return Error{EPROTO, s.name + ": the SNAT entry does not lead back to the client"};
    }
    XLB_ASSIGN_OR_RETURN(auto ct, dp_->conntrack().Lookup(TcpKey(f.family, f.client, f.snat_vip,
                                                                 kClientPort, kVipPort)));
    if (ct.snat_port != key.dport) {
      return Error{EPROTO, s.name + ": conntrack keeps SNAT port " +
                               std::to_string(ntohs(ct.snat_port)) + ", the SNAT entry names " +
                               std::to_string(ntohs(key.dport))};
    }
    snat_flow_ = SnatFlow{AddrText(f.family, key.saddr), ntohs(key.sport), ntohs(key.dport)};
    return {};
  }

  // The reply scenario's flow was balanced here to remote backend 1: its reverse NAT entry.
  Result<void> AddReverseNat(const Family& f) {
    const xlb_ct_key key =
        TcpKey(f.family, f.remote_backend_addr(1), f.client, kBackendPort, kClientPort);
    xlb_reply reply{};
    const auto vip = testing::ParseAddr(f.remote_vip);
    std::copy(vip.words.begin(), vip.words.end(), reply.addr);
    reply.port = htons(kVipPort);
    reply.kind = XLB_REPLY_REVNAT;
    reply.family = f.family;
    return dp_->replies().Update(key, reply);
  }

  // The frame is what the scenario says: kFrameLen bytes, source address at the stamp.
  Result<void> CheckFrame(const Scenario& s) const {
    if (s.frame.size() != kFrameLen) {
      return Error{EINVAL, s.name + ": frame of " + std::to_string(s.frame.size()) + " bytes"};
    }
    if (s.stamp_off != 0) {
      const auto client = testing::ParseAddr(s.family->client);
      const uint32_t low = client.words[s.family->family == XLB_FAMILY_IPV4 ? 0 : 3];
      if (std::memcmp(&s.frame[s.stamp_off], &low, 4) != 0) {
        return Error{EINVAL, s.name + ": stamp offset " + std::to_string(s.stamp_off) +
                                 " is not the source address's low word"};
      }
    }
    return {};
  }

  // Established: one packet straight through xlb_xdp creates the conntrack entry.
  Result<void> Prime(const Scenario& s) {
    XLB_TRY(ClearConntrack(*dp_));
    XLB_ASSIGN_OR_RETURN(auto before, ReadCounters(*dp_));
    auto run = TestRunXdpOn(dp_->prog_fd(), s.frame, uplink_, 1);
    if (!run.ok()) {
      return std::move(run).take_error().Within(s.name + ": priming");
    }
    XLB_ASSIGN_OR_RETURN(auto after, ReadCounters(*dp_));
    const xlb_reason first = s.expected;
    return CheckDeltas(s, before, after, first, 1, 1, "priming");
  }

  Result<TestRunResult> Measure(int prog_fd, const Scenario& s, uint32_t repeat, const char* what) {
    auto r = TestRunXdpOn(prog_fd, s.frame, uplink_, repeat);
    if (!r.ok()) {
      return std::move(r).take_error().Within(s.name + ": " + what);
    }
    // The floor (and the wrapper around it) always passes; xlb_xdp must give the verdict of
    // the path under test.
    const uint32_t want = prog_fd == floor_->prog_fd() || std::string_view(what) == "wrapper -> floor"
                              ? static_cast<uint32_t>(XDP_PASS)
                              : s.verdict;
    if (r->retval != want) {
      return Error{EPROTO, s.name + ": " + what + " returned XDP verdict " +
                               std::to_string(r->retval) + ", expected " + std::to_string(want)};
    }
    return r;
  }

  // floor, wrapper -> floor (repeat), then wrapper -> xlb_xdp (xlb_repeat) with the proof.
  Result<Sample> RunOnce(const Scenario& s, uint32_t repeat, uint32_t xlb_repeat) {
    Sample sample;
    XLB_ASSIGN_OR_RETURN(auto stamps, BenchWrapper::StampsPerCpu());
    if (s.stamp_off != 0 && std::max(repeat, xlb_repeat) >= stamps) {
      return Error{EINVAL, s.name + ": repeat beyond the " + std::to_string(stamps) +
                               " distinct stamps per CPU"};
    }
    if (IsNewFlow(s.kind)) {
      XLB_TRY(ClearConntrack(*dp_));
    }

    XLB_ASSIGN_OR_RETURN(auto floor, Measure(floor_->prog_fd(), s, repeat, "floor"));
    sample.floor_ns = floor.duration_ns;

    XLB_TRY(wrapper_->SetFrame(s.frame, s.stamp_off));
    XLB_TRY(wrapper_->SetTarget(floor_->prog_fd()));
    XLB_ASSIGN_OR_RETURN(auto wrap_floor,
                         Measure(wrapper_->prog_fd(), s, repeat, "wrapper -> floor"));
    sample.wrap_floor_ns = wrap_floor.duration_ns;

    if (IsKatran(s.kind)) {
      XLB_ASSIGN_OR_RETURN(sample.wrap_xlb_ns, RunKatran(s, xlb_repeat));
      return sample;
    }
    XLB_TRY(wrapper_->SetFrame(s.frame, s.stamp_off));  // restarts the stamps
    XLB_TRY(wrapper_->SetTarget(dp_->prog_fd()));
    XLB_ASSIGN_OR_RETURN(auto before, ReadCounters(*dp_));
    XLB_ASSIGN_OR_RETURN(auto wrap_xlb,
                         Measure(wrapper_->prog_fd(), s, xlb_repeat, "wrapper -> xlb_xdp"));
    XLB_ASSIGN_OR_RETURN(auto after, ReadCounters(*dp_));
    sample.wrap_xlb_ns = wrap_xlb.duration_ns;

    XLB_TRY(CheckDeltas(s, before, after, s.expected, xlb_repeat,
                        IsNewFlow(s.kind) ? xlb_repeat : 0, "wrapper -> xlb_xdp"));
    XLB_TRY(CheckOutput(s, wrap_xlb.out));

    // A cross-check of the subtraction where one is possible: a packet xlb does not touch
    // can be run directly, every repetition seeing the original.
    if (s.expected == XLB_PASS_NO_SERVICE) {
      XLB_ASSIGN_OR_RETURN(auto before_direct, ReadCounters(*dp_));
      XLB_ASSIGN_OR_RETURN(auto direct, Measure(dp_->prog_fd(), s, xlb_repeat, "xlb_xdp direct"));
      XLB_ASSIGN_OR_RETURN(auto after_direct, ReadCounters(*dp_));
      XLB_TRY(
          CheckDeltas(s, before_direct, after_direct, s.expected, xlb_repeat, 0, "xlb_xdp direct"));
      XLB_TRY(CheckOutput(s, direct.out));
      sample.direct_ns = direct.duration_ns;
    }
    if (IsNewFlow(s.kind)) {
      // Every repetition was a new flow: one conntrack entry each, none evicted, and one
      // reply entry each, or one SNAT entry (a claimed port) toward a SNAT backend.
      XLB_ASSIGN_OR_RETURN(auto entries, ClearConntrack(*dp_));
      const bool snat = s.kind == Kind::kSnatNewFlow;
      // A SYN's flow toward a routed or tunnelled backend is one half-open entry (both).
      if (entries.conntrack != xlb_repeat || entries.replies != (snat ? 0 : xlb_repeat) ||
          entries.snat != (snat ? xlb_repeat : 0) || entries.half_open != (snat ? 0 : xlb_repeat)) {
        return Error{EPROTO, s.name + ": conntrack holds " + std::to_string(entries.conntrack) +
                                 " entries (" + std::to_string(entries.half_open) +
                                 " of them half-open), the reply map " +
                                 std::to_string(entries.replies) + " and the SNAT map " +
                                 std::to_string(entries.snat) + " after " +
                                 std::to_string(xlb_repeat) + " new flows"};
      }
      snat_ports_peak_ = std::max(snat_ports_peak_, entries.snat_ports_peak);
    }
    return sample;
  }

  Result<void> ClearKatran() {
    auto cleared = katran_->ClearFlows();
    if (!cleared.ok()) {
      return std::move(cleared).take_error();
    }
    return {};
  }

  // The Katran-shaped program's flow enters its LRU.
  Result<void> PrimeKatran(const Scenario& s) {
    XLB_TRY(ClearKatran());
    auto run = TestRunXdpOn(katran_->prog_fd(), s.frame, uplink_, 1);
    if (!run.ok()) {
      return std::move(run).take_error().Within(s.name + ": priming");
    }
    XLB_ASSIGN_OR_RETURN(auto flows, katran_->Flows());
    if (flows != 1 || run->retval != XDP_TX) {
      return Error{EPROTO, s.name + ": priming left " + std::to_string(flows) + " flows"};
    }
    return {};
  }

  // wrapper -> the Katran-shaped program: its counters prove the path (new flows: one miss
  // and one insert each, and that many flows in its LRU afterwards; established: one hit
  // each), xlb's do not move, and the output is the frame in IPIP toward one of its reals.
  Result<uint32_t> RunKatran(const Scenario& s, uint32_t repeat) {
    const bool fresh = s.kind == Kind::kKatranNewFlow;
    if (fresh) {
      XLB_TRY(ClearKatran());
    }
    XLB_TRY(wrapper_->SetFrame(s.frame, s.stamp_off));
    XLB_TRY(wrapper_->SetTarget(katran_->prog_fd()));
    XLB_ASSIGN_OR_RETURN(auto before, katran_->ReadCounters());
    XLB_ASSIGN_OR_RETURN(auto xlb_before, ReadCounters(*dp_));
    XLB_ASSIGN_OR_RETURN(auto run, Measure(wrapper_->prog_fd(), s, repeat, "wrapper -> katran"));
    XLB_ASSIGN_OR_RETURN(auto after, katran_->ReadCounters());
    XLB_ASSIGN_OR_RETURN(auto xlb_after, ReadCounters(*dp_));
    const uint64_t new_flows = after.new_flows - before.new_flows;
    const uint64_t hits = after.hits - before.hits;
    if (new_flows != (fresh ? repeat : 0) || hits != (fresh ? 0 : repeat)) {
      return Error{EPROTO, s.name + ": " + std::to_string(new_flows) + " new flows and " +
                               std::to_string(hits) + " LRU hits in " + std::to_string(repeat) +
                               " repetitions"};
    }
    XLB_TRY(CheckDeltas(s, xlb_before, xlb_after, XLB_REASON_MAX, 0, 0, "wrapper -> katran"));
    if (fresh) {
      XLB_ASSIGN_OR_RETURN(auto flows, katran_->ClearFlows());
      if (flows != repeat) {
        return Error{EPROTO, s.name + ": its LRU holds " + std::to_string(flows) + " flows after " +
                                 std::to_string(repeat) + " new ones"};
      }
    }
    XLB_TRY(CheckKatranOutput(s, run.out));
    return run.duration_ns;
  }

  // Ethernet, an outer IPv4 header (IPIP, to a real, checksum right), then the frame's own
  // IPv4 packet, to the VIP.
  Result<void> CheckKatranOutput(const Scenario& s, const Bytes& out) const {
    const pkt::Decoded d = pkt::Decode(out);
    if (!d.ok() || out.size() != s.frame.size() + 20 || d.l4_proto != IPPROTO_IPIP ||
        d.ip_csum != pkt::Csum::kValid || katran_->real_addrs().count(d.dst) == 0 || !d.inner ||
        d.inner->dst != s.family->vip || d.inner->dport != kVipPort) {
      return Error{EPROTO, s.name +
                               ": output is not IPIP to a real around the packet to the VIP: " +
                               pkt::Describe(d)};
    }
    return {};
  }

  // The expected reason rose by exactly `repeat` packets of kFrameLen bytes; no other reason
  // moved; the scenario's service (if any) counted `repeat` packets and `new_flows` new
  // flows, and no other service moved.
  Result<void> CheckDeltas(const Scenario& s, const Counters& before, const Counters& after,
                           xlb_reason expected, uint64_t repeat, uint64_t new_flows,
                           const char* what) const {
    std::string moved;
    for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
      const uint64_t dp = after.reasons[i].packets - before.reasons[i].packets;
      const uint64_t db = after.reasons[i].bytes - before.reasons[i].bytes;
      const uint64_t want = i == static_cast<uint32_t>(expected) ? repeat : 0;
      const uint64_t len = s.counted_len != 0 && expected == s.expected ? s.counted_len : kFrameLen;
      if (dp != want || db != want * len) {
        moved += std::string(moved.empty() ? "" : ", ") + std::string(ReasonName(i)) + " +" +
                 std::to_string(dp) + " (" + std::to_string(db) + " bytes; expected +" +
                 std::to_string(want) + ")";
      }
    }
    const bool forwarded =
        expected == XLB_FWD_ROUTED || expected == XLB_FWD_ENCAP || expected == XLB_FWD_SNAT;
    for (uint32_t id = 1; id < after.services.size(); ++id) {
      const uint64_t dp = after.services[id].packets - before.services[id].packets;
      const uint64_t dn = after.services[id].new_flows - before.services[id].new_flows;
      const bool ours = forwarded && id == s.service_id;
      const uint64_t want_p = ours ? repeat : 0;
      const uint64_t want_n = ours ? new_flows : 0;
      if (dp != want_p || dn != want_n) {
        moved += std::string(moved.empty() ? "" : ", ") + "service " + std::to_string(id) +
                 " packets +" + std::to_string(dp) + " new_flows +" + std::to_string(dn) +
                 " (expected +" + std::to_string(want_p) + "/+" + std::to_string(want_n) + ")";
      }
    }
    if (!moved.empty()) {
      return Error{EPROTO, s.name + ": " + what + ": counter check failed, expected " +
                               std::string(ReasonName(expected)) + " +" + std::to_string(repeat) +
                               " and nothing else; moved: " + moved};
    }
    return {};
  }

  // What the last repetition left: untouched for non-service; DNATed to a backend; DNATed and
  // encapsulated toward the remote node; decapsulated; or reverse-NATed to the VIP.
  Result<void> CheckOutput(const Scenario& s, const Bytes& out) const {
    const Family& f = *s.family;
    // Without a stamp the input checksums were right, so the rewritten ones must be too.
    auto checksums_ok = [&](const pkt::Decoded& d) {
      return s.stamp_off != 0 || (d.l4_csum == pkt::Csum::kValid &&
                                  (d.version == 6 || d.ip_csum == pkt::Csum::kValid));
    };
    switch (s.kind) {
      case Kind::kNotVip:
      case Kind::kVipOtherPort:
        if (out != s.frame) {
          return Error{EPROTO, s.name + ": a non-service packet was modified"};
        }
        return {};
      case Kind::kNewFlow:
      case Kind::kEstablished: {
        const pkt::Decoded d = pkt::Decode(out);
        if (!d.ok() || backend_addrs_.count(d.dst) == 0 || d.dport != kBackendPort ||
            d.eth_dst != pkt::ParseMac(kPodMac) || !checksums_ok(d)) {
          return Error{EPROTO, s.name +
                                   ": output is not DNATed to a backend and addressed to "
                                   "the pod with good checksums: " +
                                   pkt::Describe(d)};
        }
        return {};
      }
      case Kind::kRemoteNewFlow:
      case Kind::kRemoteEstablished: {
        const pkt::Decoded outer = pkt::Decode(out);
        const auto tunnel = testing::SplitTunnel(out);
        if (!tunnel || !tunnel->vxlan || outer.dst != f.remote_node || outer.src != f.local_node) {
          return Error{EPROTO, s.name + ": output is not VXLAN from " + f.local_node + " to " +
                                   f.remote_node + ": " + pkt::Describe(outer)};
        }
        const pkt::Decoded d = pkt::Decode(tunnel->inner_frame);
        if (!d.ok() || remote_backend_addrs_.count(d.dst) == 0 || d.dport != kBackendPort ||
            (s.stamp_off == 0 && d.src != f.client) || !checksums_ok(d)) {
          return Error{EPROTO, s.name + ": inner packet is not DNATed to a remote backend with "
                                        "good checksums: " + pkt::Describe(d)};
        }
        return {};
      }
      case Kind::kDecap:
      case Kind::kReply: {
        const pkt::Decoded d = pkt::Decode(out);
        const bool reply = s.kind == Kind::kReply;
        const std::string want_src = reply ? f.remote_vip : f.client;
        const uint16_t want_sport = reply ? kVipPort : kClientPort;
        if (!d.ok() || d.src != want_src || d.sport != want_sport || !checksums_ok(d) ||
            out.size() >= s.frame.size()) {
          return Error{EPROTO, s.name + ": output is not the decapsulated packet from " +
                                   want_src + " with good checksums: " + pkt::Describe(d)};
        }
        return {};
      }
      case Kind::kSnatNewFlow:
      case Kind::kSnatEstablished: {
        // DNATed to a SNAT backend, from this node and a SNAT port (the primed flow's backend
        // and port when established), addressed by the fib to the next hop.
        const pkt::Decoded d = pkt::Decode(out);
        const bool established = s.kind == Kind::kSnatEstablished;
        const bool backend_ok =
            established ? snat_flow_ && d.dst == snat_flow_->backend &&
                              d.dport == snat_flow_->backend_port && d.sport == snat_flow_->port
                        : snat_backend_addrs_.count(d.dst) != 0 && d.dport == kBackendPort &&
                              d.sport >= XLB_SNAT_PORT_MIN;  // MAX: 65535
        if (!d.ok() || !backend_ok || d.src != f.local_node ||
            d.eth_dst != pkt::ParseMac(kNextHopMac) || d.eth_src != pkt::ParseMac(kUplinkMac) ||
            !checksums_ok(d)) {
          return Error{
              EPROTO,
              s.name + ": output is not DNATed to " +
                  (established && snat_flow_
                       ? snat_flow_->backend + ":" + std::to_string(snat_flow_->backend_port) +
                             " from port " + std::to_string(snat_flow_->port)
                       : std::string("a SNAT backend from a SNAT port")) +
                  " of " + f.local_node +
                  ", to the next hop's MAC, with good checksums: " + pkt::Describe(d)};
        }
        return {};
      }
      case Kind::kSnatAnswer: {
        // From the VIP to the client again, handed to the stack.
        const pkt::Decoded d = pkt::Decode(out);
        if (!d.ok() || d.src != f.snat_vip || d.sport != kVipPort || d.dst != f.client ||
            d.dport != kClientPort || !checksums_ok(d)) {
          return Error{EPROTO, s.name + ": output is not from " + f.snat_vip + ":" +
                                   std::to_string(kVipPort) + " to " + f.client + ":" +
                                   std::to_string(kClientPort) +
                                   " with good checksums: " + pkt::Describe(d)};
        }
        return {};
      }
    }
    return {};
  }

  // The primed SNAT flow: the backend it went to and the port it leaves from.
  struct SnatFlow {
    std::string backend;
    uint16_t backend_port;
    uint16_t port;
  };

  std::unique_ptr<XdpDatapath> dp_;
  std::unique_ptr<XdpFloor> floor_;
  std::unique_ptr<BenchWrapper> wrapper_;
  std::unique_ptr<KatranShape> katran_;
  std::unique_ptr<ServiceWriter> writer_;
  std::set<std::string> backend_addrs_;
  std::set<std::string> remote_backend_addrs_;
  std::set<std::string> snat_backend_addrs_;
  std::optional<SnatFlow> snat_flow_;
  uint64_t snat_ports_peak_ = 0;  // of the current scenario's runs
  int uplink_ = 0;  // ifindex of the private uplink: every run's ingress interface
};

// Reporting ----------------------------------------------------------------------------

template <typename T>
double Median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? static_cast<double>(v[n / 2])
               : (static_cast<double>(v[n / 2 - 1]) + static_cast<double>(v[n / 2])) / 2;
}

struct Summary {
  double median_ns, x_floor, floor_ns, wrapper_ns, wrap_xlb_ns, direct_ns;
  int64_t min_ns, max_ns;
};

Summary Summarize(const ScenarioResult& r) {
  std::vector<int64_t> ns, wrapper;
  std::vector<double> x;
  std::vector<uint32_t> floor, wrap_xlb, direct;
  for (const Sample& s : r.samples) {
    ns.push_back(s.xlb_ns());
    x.push_back(s.x_floor());
    floor.push_back(s.floor_ns);
    wrapper.push_back(s.wrapper_ns());
    wrap_xlb.push_back(s.wrap_xlb_ns);
    direct.push_back(s.direct_ns);
  }
  return {Median(ns),
          Median(x),
          Median(floor),
          Median(wrapper),
          Median(wrap_xlb),
          Median(direct),
          *std::min_element(ns.begin(), ns.end()),
          *std::max_element(ns.begin(), ns.end())};
}

struct Machine {
  std::string kernel, cpu;
  long nproc{};
};

Machine ReadMachine() {
  Machine m;
  utsname u{};
  m.kernel = uname(&u) == 0 ? u.release : "?";
  m.cpu = "?";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        m.cpu = line.substr(line.find_first_not_of(" \t", colon + 1));
      }
      break;
    }
  }
  m.nproc = sysconf(_SC_NPROCESSORS_ONLN);
  return m;
}

std::string TargetCell(const Scenario& s, double x) {
  if (s.target_x == 0) {
    return "—";
  }
  const std::string goal = "≤ " + Fmt("%.1f", s.target_x) + "×";
  if (x <= s.target_x) {
    return goal + " met";
  }
  return goal + " MISSED by " + Fmt("%.1f", x / s.target_x) + "×";
}

std::string KatranCell(const Scenario& s) {
  if (s.katran_ns == 0) {
    return "—";
  }
  return Fmt("%.1f", s.katran_ns / kKatranTrivialNs) + "× (" + Fmt("%.0f", s.katran_ns) + " ns)";
}

void PrintMarkdown(const std::vector<ScenarioResult>& results, const Machine& m,
                   const std::string& command, const Options& o, double seconds) {
  std::printf("# xlb datapath benchmark (BPF_PROG_TEST_RUN)\n\n");
  std::printf("machine: kernel %s, CPU %s, nproc %ld\n", m.kernel.c_str(), m.cpu.c_str(), m.nproc);
  std::printf("command: %s\n\n", command.c_str());
  std::printf(
      "ns/packet of xlb_xdp = t(wrapper -> xlb_xdp) - t(wrapper -> floor) + t(floor), per run;\n"
      "every frame %u bytes, restored by the wrapper before each repetition. %u runs per\n"
      "scenario; median/min/max over runs; \"× floor\" is the median over runs of t / t(floor)\n"
      "of the same run. The kernel reports an integer average ns per repetition, so each of\n"
      "the three terms is truncated to 1 ns (floor and wrapper runs use repeat %u).\n\n",
      kFrameLen, o.runs, o.repeat);
  std::printf(
      "| scenario | median ns | min | max | × floor | target | Katran × | counter check |\n"
      "|---|---:|---:|---:|---:|---|---|---|\n");
  for (const ScenarioResult& r : results) {
    const Summary sm = Summarize(r);
    std::printf("| %s | %.1f | %lld | %lld | %.2f× | %s | %s | %s |\n", r.scenario->name.c_str(),
                sm.median_ns, static_cast<long long>(sm.min_ns), static_cast<long long>(sm.max_ns),
                sm.x_floor, TargetCell(*r.scenario, sm.x_floor).c_str(),
                KatranCell(*r.scenario).c_str(), r.check.c_str());
  }
  std::printf(
      "\nWhat was subtracted (medians over runs, ns/packet): wrapper cost = t(wrapper -> floor) "
      "- t(floor).\n\n"
      "| scenario | repeat (xlb) | floor | wrapper cost | wrapper -> xlb_xdp (raw) | "
      "xlb_xdp direct |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  for (const ScenarioResult& r : results) {
    const Summary sm = Summarize(r);
    std::printf("| %s | %u | %.1f | %.1f | %.1f | %s |\n", r.scenario->name.c_str(),
                r.scenario->repeat, sm.floor_ns, sm.wrapper_ns, sm.wrap_xlb_ns,
                sm.direct_ns > 0 ? Fmt("%.1f", sm.direct_ns).c_str() : "—");
  }
  std::printf(
      "\nxlb_xdp direct: the same packet run without the wrapper, possible only where xlb leaves "
      "it\nunchanged (non-service); a check on the subtraction, not used in the first table.\n");
  std::printf(
      "\nKatran × = Katran's BPF_PROG_TEST_RUN figure over its trivial-XDP floor (%.0f ns); its "
      "remote figures include its IPIP encapsulation.\n"
      "Services: per family one VIP with local backends and one with remote (tunnelled) ones, "
      "TCP port %u, %u backends each, Maglev table %u slots; conntrack, reply and SNAT maps "
      "LRU %u entries, emptied before every new-flow run. Remote and reply paths: VXLAN, outer "
      "header of the inner packet's family, fib lookup on a private veth uplink (XDP_TX).\n"
      "SNAT paths: per family a third VIP with %u SNAT backends (each its own address, %u ports "
      "of its own); a new-flow run starts with an empty SNAT map and claims one port per "
      "repetition (the check says how full the fullest backend's range got); DNAT + SNAT to "
      "this node's address, fib lookup, XDP_TX. Katran × of the SNAT rows: its new-flow and "
      "established figures (it has no SNAT).\n",
      kKatranTrivialNs, kVipPort, kBackends, XLB_MAGLEV_DEFAULT_SIZE, o.ct_entries, o.snat_backends,
      kSnatPorts);
  std::printf("total run time: %.1f s\n", seconds);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      continue;
    }
    out += c;
  }
  return out + "\"";
}

void PrintJson(const std::vector<ScenarioResult>& results, const Machine& m,
               const std::string& command, const Options& o, double seconds) {
  std::printf("{\n  \"machine\": {\"kernel\": %s, \"cpu\": %s, \"nproc\": %ld},\n",
              JsonString(m.kernel).c_str(), JsonString(m.cpu).c_str(), m.nproc);
  std::printf("  \"command\": %s,\n  \"runs\": %u,\n  \"repeat\": %u,\n  \"frame_len\": %u,\n",
              JsonString(command).c_str(), o.runs, o.repeat, kFrameLen);
  std::printf("  \"katran_trivial_ns\": %.0f,\n  \"seconds\": %.2f,\n  \"scenarios\": [\n",
              kKatranTrivialNs, seconds);
  for (size_t i = 0; i < results.size(); ++i) {
    const ScenarioResult& r = results[i];
    const Scenario& s = *r.scenario;
    const Summary sm = Summarize(r);
    std::printf(
        "    {\"name\": %s, \"repeat\": %u, \"median_ns\": %.1f, \"min_ns\": %lld, "
        "\"max_ns\": %lld, \"x_floor\": %.3f, \"target_x\": %.1f, \"katran_ns\": %.0f, "
        "\"floor_ns\": %.1f, \"wrapper_ns\": %.1f, \"check\": %s,\n     \"samples\": [",
        JsonString(s.name).c_str(), s.repeat, sm.median_ns, static_cast<long long>(sm.min_ns),
        static_cast<long long>(sm.max_ns), sm.x_floor, s.target_x, s.katran_ns, sm.floor_ns,
        sm.wrapper_ns, JsonString(r.check).c_str());
    for (size_t j = 0; j < r.samples.size(); ++j) {
      const Sample& x = r.samples[j];
      std::printf("%s{\"floor\": %u, \"wrapper_floor\": %u, \"wrapper_xlb\": %u, \"direct\": %u}",
                  j ? ", " : "", x.floor_ns, x.wrap_floor_ns, x.wrap_xlb_ns, x.direct_ns);
    }
    std::printf("]}%s\n", i + 1 < results.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
}

// The private network ---------------------------------------------------------------------

Result<void> Sh(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  if (status != 0) {
    return Error{EIO, "`" + command + "` failed (status " + std::to_string(status) + ")"};
  }
  return {};
}

// A network namespace of the benchmark's own (gone when the process exits, so there is
// nothing to tear down): one veth as the uplink, the node's tunnel addresses on it, a static
// neighbour as the next hop and routes to the remote nodes through it, forwarding on (the
// fib answers xlb's lookups as it would for a forwarded packet). Returns the uplink's
// ifindex.
Result<int> SetUpPrivateUplink() {
  if (unshare(CLONE_NEWNET) != 0) {
    const int err = errno;
    return Error::FromErrno(err, "unshare(CLONE_NEWNET)");
  }
  for (const char* path : {"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}) {
    std::ofstream f(path);
    f << "1\n";
    if (!f) {
      return Error{EIO, std::string("cannot write ") + path};
    }
  }
  const std::string up = kUplink;
  XLB_TRY(Sh("ip link add " + up + " type veth peer name " + kUplinkPeer));
  XLB_TRY(Sh("ip link set " + up + " address " + kUplinkMac + " up"));
  XLB_TRY(Sh(std::string("ip link set ") + kUplinkPeer + " up"));
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string ip = f->family == XLB_FAMILY_IPV6 ? "ip -6 " : "ip ";
    XLB_TRY(Sh(ip + "addr add " + f->uplink_net + " dev " + up +
               (f->family == XLB_FAMILY_IPV6 ? " nodad" : "")));
    XLB_TRY(Sh(ip + "neigh replace " + f->next_hop + " lladdr " + kNextHopMac + " dev " + up +
               " nud permanent"));
    XLB_TRY(Sh(ip + "route add " + f->remote_net + " via " + f->next_hop + " dev " + up));
    XLB_TRY(Sh(ip + "route add " + f->snat_net + " via " + f->next_hop + " dev " + up));
  }
  // The IPv6 client is on the uplink's network: its neighbour resolved, as a client's is
  // once it has talked to the node (unresolved, every answer would ask the fib again).
  XLB_TRY(Sh(std::string("ip -6 neigh replace ") + kIpv6.client + " lladdr " + kNextHopMac +
             " dev " + up + " nud permanent"));
  XLB_TRY(Sh(std::string("ip link add ") + kPodVeth + " type veth peer name " + kPodVethPeer));
  XLB_TRY(Sh(std::string("ip link set ") + kPodVeth + " up"));
  XLB_TRY(Sh(std::string("ip link set ") + kPodVethPeer + " up"));
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string ip = f->family == XLB_FAMILY_IPV6 ? "ip -6 " : "ip ";
    for (uint32_t i = 0; i <= kBackends; ++i) {
      XLB_TRY(Sh(ip + "route add " + f->backend_addr(i) + " dev " + kPodVeth));
      XLB_TRY(Sh(ip + "neigh replace " + f->backend_addr(i) + " lladdr " + kPodMac + " dev " +
                 kPodVeth + " nud permanent"));
    }
  }
  const unsigned ifindex = if_nametoindex(kUplink);
  if (ifindex == 0) {
    const int err = errno;
    return Error::FromErrno(err, std::string("if_nametoindex(") + kUplink + ")");
  }
  return static_cast<int>(ifindex);
}

// Command line -------------------------------------------------------------------------

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: xlb-bench [--runs N] [--repeat N] [--new-flow-repeat N] [--ct-entries N]\n"
               "                 [--cpu N] [--filter TEXT] [--json]\n"
               "  --runs N             measured runs per scenario (default 7)\n"
               "  --repeat N           repetitions per BPF_PROG_TEST_RUN (default 1000000)\n"
               "  --new-flow-repeat N  repetitions of new-flow runs, at most half the conntrack "
               "size\n"
               "                       (default min(repeat, %u))\n"
               "  --ct-entries N       conntrack (LRU) size (default %u)\n"
               "  --snat-backends N    backends of the SNAT services, at most %u (default %u)\n"
               "  --cpu N              pin the benchmark to CPU N\n"
               "  --filter TEXT        only the scenarios whose name contains TEXT\n"
               "  --json               JSON instead of Markdown\n"
               "Needs root (loads BPF programs).\n",
               kDefaultNewFlowRepeat, kDefaultCtEntries, kMaxSnatBackends, kDefaultSnatBackends);
}

std::optional<uint32_t> ParseCount(const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v == 0 || v > UINT32_MAX) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<Options> ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "xlb-bench: %s needs a value\n", argv[i]);
      return std::nullopt;
    }
    // --filter takes text and --cpu takes 0; every other count must be positive.
    const char* value = argv[++i];
    if (arg == "--filter") {
      o.filter = value;
      continue;
    }
    if (arg == "--cpu") {
      char* end = nullptr;
      const long cpu = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) {
        std::fprintf(stderr, "xlb-bench: bad --cpu %s\n", value);
        return std::nullopt;
      }
      o.cpu = static_cast<int>(cpu);
      continue;
    }
    const auto n = ParseCount(value);
    if (!n) {
      std::fprintf(stderr, "xlb-bench: %s wants a positive count, not %s\n", argv[i - 1], value);
      return std::nullopt;
    }
    if (arg == "--runs") {
      o.runs = *n;
    } else if (arg == "--repeat") {
      o.repeat = *n;
    } else if (arg == "--new-flow-repeat") {
      o.new_flow_repeat = *n;
    } else if (arg == "--ct-entries") {
      o.ct_entries = *n;
    } else if (arg == "--snat-backends") {
      if (*n > kMaxSnatBackends) {
        std::fprintf(stderr, "xlb-bench: --snat-backends %u: at most %u\n", *n, kMaxSnatBackends);
        return std::nullopt;
      }
      o.snat_backends = *n;
    } else {
      std::fprintf(stderr, "xlb-bench: unknown option %s\n", argv[i - 1]);
      return std::nullopt;
    }
  }
  const uint32_t new_flow =
      o.new_flow_repeat ? o.new_flow_repeat : std::min(o.repeat, kDefaultNewFlowRepeat);
  if (new_flow > o.ct_entries / 2) {
    std::fprintf(stderr,
                 "xlb-bench: %u new flows per run: every one is a conntrack entry, and at most "
                 "%u (half of --ct-entries %u) stay clear of LRU eviction\n",
                 new_flow, o.ct_entries / 2, o.ct_entries);
    return std::nullopt;
  }
  return o;
}

// The argument as a shell would need it to read it back: 'new flow', not new flow.
std::string ShellQuote(std::string_view arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_./=:,+@%") == std::string_view::npos;
  if (plain) {
    return std::string(arg);
  }
  std::string out = "'";
  for (char c : arg) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

int Main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  const auto options = ParseArgs(argc, argv);
  if (!options) {
    Usage(stderr);
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; ++i) {
    command += (i ? " " : "") + ShellQuote(argv[i]);
  }

  if (options->cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options->cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "xlb-bench: sched_setaffinity(cpu %d): %s\n", options->cpu,
                   std::strerror(errno));
      return 1;
    }
  }

  auto uplink = SetUpPrivateUplink();
  if (!uplink.ok()) {
    std::fprintf(stderr, "xlb-bench: private network: %s\n", uplink.error().ToString().c_str());
    return 1;
  }
  auto bench = Bench::Load(*options, *uplink);
  if (!bench.ok()) {
    std::fprintf(stderr, "xlb-bench: loading: %s\n", bench.error().ToString().c_str());
    return 1;
  }
  const std::vector<Scenario> scenarios = Scenarios(*options);
  if (auto warm = (*bench)->WarmUp(scenarios.front().frame, 300); !warm.ok()) {
    std::fprintf(stderr, "xlb-bench: %s\n", warm.error().ToString().c_str());
    return 1;
  }
  std::vector<ScenarioResult> results;
  for (const Scenario& s : scenarios) {
    if (s.name.find(options->filter) == std::string::npos) {
      continue;
    }
    auto r = (*bench)->Run(s, *options);
    if (!r.ok()) {
      // EPROTO: our own check failed, and the message says all there is to say.
      const Error& e = r.error();
      std::fprintf(stderr, "xlb-bench: FAILED: %s\n",
                   (e.err == EPROTO ? e.what : e.ToString()).c_str());
      return 1;
    }
    results.push_back(std::move(*r));
  }
  if (results.empty()) {
    std::fprintf(stderr, "xlb-bench: no scenario matches --filter %s\n", options->filter.c_str());
    return 2;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Machine machine = ReadMachine();
  if (options->json) {
    PrintJson(results, machine, command, *options, seconds);
  } else {
    PrintMarkdown(results, machine, command, *options, seconds);
  }
  return 0;
}

}  // namespace
}  // namespace xlb::bench

int main(int argc, char** argv) {
  try {
    return xlb::bench::Main(argc, argv);
  } catch (const std::exception& e) {  // only allocation failure can get here
    std::fprintf(stderr, "xlb-bench: %s\n", e.what());
    return 1;
  }
}
