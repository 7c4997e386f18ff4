#include "golden_cases.h"

#include <linux/bpf.h>
#include <netinet/in.h>

#include <cstdlib>

namespace xlb::testing {
namespace {

using pkt::Bytes;
using pkt::Packet;

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
  const uint32_t verdict = reason >= XLB_DROP_MALFORMED_L4 ? XDP_DROP : XDP_PASS;
  return {std::move(what), std::move(in), verdict, reason, std::move(out), nullptr};
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
}

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
  {
    GoldenStep late = Step("idle past its timeout: reselected", Tcp4(kVip4, 40070, 80, kTcpAck),
                           XLB_FWD_NEW_FLOW, Tcp4("198.18.20.1", 40070, 8080, kTcpAck));
    late.before = [](XdpDatapath& dp, ServiceWriter&) {
      auto ct = dp.conntrack();
      Must(ct.ForEach([&](const xlb_ct_key& k, xlb_ct_value v) {
        if (k.sport == htons(40070)) {
          v.last_seen = 1;  // boot time: older than any timeout
          Must(ct.Update(k, v));
        }
      }));
    };
    add("conntrack_entry_expires",
        {Step("SYN", Tcp4(kVip4, 40070, 80, kTcpSyn), XLB_FWD_NEW_FLOW,
              Tcp4("198.18.20.1", 40070, 8080, kTcpSyn)),
         Step("ACK", Tcp4(kVip4, 40070, 80, kTcpAck), XLB_FWD_ESTABLISHED,
              Tcp4("198.18.20.1", 40070, 8080, kTcpAck)),
         std::move(late)});
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
  }
  return cases;
}

}  // namespace xlb::testing
