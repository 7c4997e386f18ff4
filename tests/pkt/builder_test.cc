// Every builder feature, round-tripped through the independent decoder.
#include "builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "decoder.h"

namespace xlb::pkt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kClientMac[] = "02:00:00:00:00:01";
constexpr char kRouterMac[] = "02:00:00:00:00:02";
constexpr char kClient[] = "198.18.0.1";
constexpr char kVip[] = "198.18.1.10";
constexpr char kClient6[] = "2001:db8::1";
constexpr char kVip6[] = "2001:db8:1::10";

Packet Eth() {
  return Packet().eth(kClientMac, kRouterMac);
}

Decoded Dec(const Packet& p) {
  const Bytes frame = p.build();
  return Decode(frame);
}

TEST(Builder, EthernetAddressesAndEtherType) {
  const Bytes frame = Eth().ipv4(kClient, kVip).udp(40000, 5353).build();
  // Destination first on the wire.
  EXPECT_THAT(Bytes(frame.begin(), frame.begin() + 12),
              ElementsAre(2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1));
  const Decoded d = Decode(frame);
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.eth_src, ParseMac(kClientMac));
  EXPECT_EQ(d.eth_dst, ParseMac(kRouterMac));
  EXPECT_EQ(d.ethertype, kEtherTypeIpv4);
  EXPECT_TRUE(d.vlans.empty());
}

TEST(Builder, MacFromBytesAndNonIpEtherType) {
  const Mac src = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  const Decoded d = Dec(Packet()
                            .eth(src, ParseMac("ff:ff:ff:ff:ff:ff"), {.ethertype = kEtherTypeArp})
                            .payload(Bytes{0, 1, 8, 0, 6, 4, 0, 1}));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.eth_src, src);
  EXPECT_EQ(d.ethertype, kEtherTypeArp);
  EXPECT_EQ(d.version, 0);
  EXPECT_THAT(d.payload, ElementsAre(0, 1, 8, 0, 6, 4, 0, 1));
}

TEST(Builder, RejectsBadAddresses) {
  EXPECT_THROW(ParseMac("02:00:00:00:00"), std::invalid_argument);
  EXPECT_THROW(Packet().ipv4("198.18.0.300", kVip), std::invalid_argument);
  EXPECT_THROW(Packet().ipv6(kClient, kVip6), std::invalid_argument);
  EXPECT_THROW(Packet().ipv4(kClient, kVip, {.frag_offset = 12}), std::invalid_argument);
  EXPECT_THROW(Packet().tcp(1, 2, kTcpSyn).build(), std::logic_error);  // no IP layer
}

TEST(Builder, SingleVlanTag) {
  const Decoded d = Dec(Eth().vlan(100, {.pcp = 5}).ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_THAT(d.vlan_ids, ElementsAre(100));
  EXPECT_THAT(d.vlans, ElementsAre(VlanTag{kTpid8021Q, 100, 5, false}));
  EXPECT_EQ(d.ethertype, kEtherTypeIpv4);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
}

TEST(Builder, QinQTags) {
  const Decoded d = Dec(Eth()
                            .vlan(10, {.tpid = kTpid8021ad, .dei = true})
                            .vlan(4094)
                            .ipv6(kClient6, kVip6)
                            .udp(40000, 53));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_THAT(d.vlans,
              ElementsAre(VlanTag{kTpid8021ad, 10, 0, true}, VlanTag{kTpid8021Q, 4094, 0, false}));
  EXPECT_EQ(d.ethertype, kEtherTypeIpv6);
}

TEST(Builder, ThreeTagsAreBuiltForUnsupportedCases) {
  const Decoded d =
      Dec(Eth().vlan(1, {.tpid = kTpid8021ad}).vlan(2).vlan(3).ipv4(kClient, kVip).udp(1, 2));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_THAT(d.vlan_ids, ElementsAre(1, 2, 3));
}

TEST(Builder, Ipv4HeaderFields) {
  const Decoded d = Dec(Eth()
                            .ipv4(kClient, kVip, {.ttl = 7, .id = 0xbeef, .tos = 0x10, .df = true})
                            .tcp(40000, 80, kTcpSyn)
                            .payload("hi"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.version, 4);
  EXPECT_EQ(d.src, kClient);
  EXPECT_EQ(d.dst, kVip);
  EXPECT_EQ(d.ihl, 5);
  EXPECT_EQ(d.ttl, 7);
  EXPECT_EQ(d.id, 0xbeef);
  EXPECT_EQ(d.tos, 0x10);
  EXPECT_EQ(d.flags, 0x2);
  EXPECT_TRUE(d.df);
  EXPECT_FALSE(d.mf);
  EXPECT_EQ(d.tot_len, 20 + 20 + 2);
  EXPECT_EQ(d.l4_proto, kProtoTcp);
  EXPECT_EQ(d.ip_csum, Csum::kValid);
  EXPECT_EQ(d.trailer, 0u);
}

// The worked example of an IPv4 header checksum (Wikipedia, "Internet checksum"): the
// builder must produce 0xb861 for this header, whatever the decoder thinks.
TEST(Builder, Ipv4HeaderChecksumMatchesKnownValue) {
  const Bytes frame =
      Packet()
          .ipv4("192.168.0.1", "192.168.0.199", {.ttl = 64, .df = true, .protocol = kProtoUdp})
          .payload(Bytes(0x73 - 20, 0))
          .build();
  EXPECT_THAT(Bytes(frame.begin(), frame.begin() + 20),
              ElementsAre(0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
                          0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7));
}

TEST(Builder, Ipv4OptionsArePadded) {
  const Decoded ra = Dec(Eth().ipv4(kClient, kVip, {.options = Ipv4RouterAlert()}).udp(1, 2));
  ASSERT_TRUE(ra.ok()) << ra.error;
  EXPECT_EQ(ra.ihl, 6);
  EXPECT_THAT(ra.ip_options, ElementsAre(0x94, 4, 0, 0));
  EXPECT_EQ(ra.ip_csum, Csum::kValid);
  EXPECT_EQ(ra.l4_csum, Csum::kValid);

  // Three raw bytes (NOP NOP NOP) pad to one word with EOL.
  const Decoded odd =
      Dec(Eth().ipv4(kClient, kVip, {.options = Bytes{1, 1, 1}}).tcp(1, 2, kTcpAck));
  ASSERT_TRUE(odd.ok()) << odd.error;
  EXPECT_THAT(odd.ip_options, ElementsAre(1, 1, 1, 0));
  EXPECT_EQ(odd.l4_csum, Csum::kValid);

  const Decoded max = Dec(Eth().ipv4(kClient, kVip, {.options = Bytes(40, 1)}).udp(1, 2));
  ASSERT_TRUE(max.ok()) << max.error;
  EXPECT_EQ(max.ihl, 15);
  EXPECT_THROW(Eth().ipv4(kClient, kVip, {.options = Bytes(41, 1)}).build(), std::invalid_argument);
}

TEST(Builder, Ipv4FirstFragment) {
  const Decoded d =
      Dec(Eth().ipv4(kClient, kVip, {.id = 9, .mf = true}).udp(40000, 53).payload(Bytes(64, 'x')));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_TRUE(d.mf);
  EXPECT_EQ(d.flags, 0x1);
  EXPECT_EQ(d.frag_offset, 0);
  EXPECT_TRUE(d.is_fragment);
  EXPECT_EQ(d.sport, 40000);  // the first fragment still has the ports
  EXPECT_EQ(d.l4_csum, Csum::kUnverifiable);
}

TEST(Builder, Ipv4LaterFragmentHasNoL4Header) {
  const Decoded d =
      Dec(Eth()
              .ipv4(kClient, kVip, {.id = 9, .frag_offset = 1480, .protocol = kProtoUdp})
              .payload("rest"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.frag_offset, 1480);
  EXPECT_FALSE(d.mf);
  EXPECT_TRUE(d.is_fragment);
  EXPECT_EQ(d.l4_proto, kProtoUdp);
  EXPECT_EQ(d.sport, 0);
  EXPECT_EQ(d.l4_csum, Csum::kNone);
  EXPECT_EQ(std::string(d.payload.begin(), d.payload.end()), "rest");
}

TEST(Builder, Ipv4ReservedFlag) {
  const Decoded d = Dec(Eth().ipv4(kClient, kVip, {.df = true, .reserved_flag = true}).udp(1, 2));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.flags, 0x6);
}

TEST(Builder, Ipv4IhlOverride) {
  const Decoded small = Dec(Eth().ipv4(kClient, kVip, {.ihl = 4}).udp(1, 2));
  EXPECT_EQ(small.ihl, 4);
  EXPECT_THAT(small.error, HasSubstr("IHL 4 < 5"));

  // IHL 15 claims 60 bytes of header in a 28-byte packet.
  const Decoded big = Dec(Eth().ipv4(kClient, kVip, {.ihl = 15}).udp(1, 2));
  EXPECT_THAT(big.error, HasSubstr("beyond the data"));
}

TEST(Builder, Ipv4TotalLengthOverride) {
  const Decoded longer = Dec(Eth().ipv4(kClient, kVip, {.tot_len = 1000}).udp(1, 2));
  EXPECT_EQ(longer.tot_len, 1000);
  EXPECT_EQ(longer.ip_csum, Csum::kValid);  // the header is consistent with itself
  EXPECT_THAT(longer.error, HasSubstr("total length 1000 beyond"));

  const Decoded below_header = Dec(Eth().ipv4(kClient, kVip, {.tot_len = 19}).udp(1, 2));
  EXPECT_THAT(below_header.error, HasSubstr("total length 19 < header length 20"));
}

TEST(Builder, Ipv4VersionOverride) {
  const Decoded d = Dec(Eth().ipv4(kClient, kVip, {.version = 5}).udp(1, 2));
  EXPECT_EQ(d.version, 5);
  EXPECT_THAT(d.error, HasSubstr("IP version 5"));
}

TEST(Builder, Ipv4ChecksumOverrideAndCorruption) {
  const Bytes good = Eth().ipv4(kClient, kVip).udp(1, 2).build();
  const Bytes bad = Eth().ipv4(kClient, kVip, {.corrupt_checksum = true}).udp(1, 2).build();
  EXPECT_EQ(Decode(bad).ip_csum, Csum::kInvalid);
  EXPECT_EQ(Decode(bad).l4_csum, Csum::kValid);
  EXPECT_NE(good[14 + 10] << 8 | good[14 + 11], bad[14 + 10] << 8 | bad[14 + 11]);

  const Bytes fixed = Eth().ipv4(kClient, kVip, {.checksum = 0x1234}).udp(1, 2).build();
  EXPECT_EQ(fixed[14 + 10], 0x12);
  EXPECT_EQ(fixed[14 + 11], 0x34);
  EXPECT_EQ(Decode(fixed).ip_csum, Csum::kInvalid);
}

TEST(Builder, Ipv4ProtocolDefaultsAndOverride) {
  EXPECT_EQ(Dec(Eth().ipv4(kClient, kVip).payload("x")).l4_proto, kProtoExperimental);
  const Decoded sctp = Dec(Eth().ipv4(kClient, kVip, {.protocol = 132}).payload("x"));
  ASSERT_TRUE(sctp.ok()) << sctp.error;
  EXPECT_EQ(sctp.l4_proto, 132);
  EXPECT_EQ(sctp.l4_csum, Csum::kNone);
}

TEST(Builder, Ipv6HeaderFields) {
  const Decoded d =
      Dec(Eth()
              .ipv6(kClient6, kVip6, {.hop_limit = 3, .traffic_class = 0xb8, .flow_label = 0x12345})
              .tcp(40000, 443, kTcpSyn)
              .payload("abc"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.version, 6);
  EXPECT_EQ(d.src, kClient6);
  EXPECT_EQ(d.dst, kVip6);
  EXPECT_EQ(d.ttl, 3);
  EXPECT_EQ(d.traffic_class, 0xb8);
  EXPECT_EQ(d.flow_label, 0x12345u);
  EXPECT_EQ(d.payload_len, 20 + 3);
  EXPECT_THAT(d.next_headers, ElementsAre(kProtoTcp));
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(d.ip_csum, Csum::kNone);
}

TEST(Builder, Ipv6ExtensionHeaderChain) {
  const Decoded d = Dec(Eth()
                            .ipv6(kClient6, kVip6)
                            .hop_by_hop(Ipv6RouterAlert(0))
                            .dest_opts()
                            .routing(0, 0, {"2001:db8::99"})
                            .fragment6({.id = 77})
                            .dest_opts(Bytes{0x1e, 1, 0xaa})  // an unknown option to skip
                            .udp(40000, 53)
                            .payload("q"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_THAT(d.next_headers, ElementsAre(kProtoHopByHop, kProtoDstOpts, kProtoRouting,
                                          kProtoFragment, kProtoDstOpts, kProtoUdp));
  EXPECT_EQ(d.l4_proto, kProtoUdp);
  EXPECT_EQ(d.routing_type, 0);
  EXPECT_TRUE(d.has_frag_header);
  EXPECT_EQ(d.frag_id, 77u);
  EXPECT_FALSE(d.is_fragment);  // atomic fragment: offset 0, no M
  EXPECT_EQ(d.dport, 53);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(d.payload_len, 8 + 8 + 24 + 8 + 8 + 8 + 1);
}

// With segments left, the pseudo-header holds the final destination (RFC 8200 8.1).
TEST(Builder, RoutingHeaderFinalDestination) {
  const Decoded rh0 =
      Dec(Eth().ipv6(kClient6, "2001:db8::50").routing(0, 1, {kVip6}).tcp(40000, 80, kTcpSyn));
  ASSERT_TRUE(rh0.ok()) << rh0.error;
  EXPECT_EQ(rh0.segments_left, 1);
  EXPECT_EQ(rh0.l4_csum, Csum::kValid);

  const Decoded srh = Dec(
      Eth().ipv6(kClient6, "2001:db8::50").routing(4, 1, {kVip6, "2001:db8::50"}).udp(40000, 53));
  ASSERT_TRUE(srh.ok()) << srh.error;
  EXPECT_EQ(srh.routing_type, 4);
  EXPECT_EQ(srh.l4_csum, Csum::kValid);
}

TEST(Builder, Ipv6Fragments) {
  const Decoded first = Dec(Eth()
                                .ipv6(kClient6, kVip6)
                                .fragment6({.offset = 0, .more = true, .id = 0xdeadbeef})
                                .tcp(40000, 80, kTcpAck)
                                .payload(Bytes(100, 1)));
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_TRUE(first.is_fragment);
  EXPECT_TRUE(first.mf);
  EXPECT_EQ(first.frag_id, 0xdeadbeefu);
  EXPECT_EQ(first.dport, 80);
  EXPECT_EQ(first.l4_csum, Csum::kUnverifiable);

  const Decoded later = Dec(Eth()
                                .ipv6(kClient6, kVip6)
                                .fragment6({.offset = 1232, .more = false, .id = 1})
                                .payload("tail"));
  ASSERT_TRUE(later.ok()) << later.error;
  EXPECT_EQ(later.frag_offset, 1232);
  EXPECT_TRUE(later.is_fragment);
  EXPECT_EQ(later.sport, 0);
  EXPECT_THAT(later.next_headers, ElementsAre(kProtoFragment, kProtoNoNext));
}

TEST(Builder, RawExtensionHeader) {
  // A destination options header whose length claims 256 bytes.
  const Decoded d =
      Dec(Eth().ipv6(kClient6, kVip6).ext_header(kProtoDstOpts, {31, 1, 4, 0, 0, 0, 0}).udp(1, 2));
  EXPECT_THAT(d.error, HasSubstr("extension header 60 of 256 bytes beyond"));
}

TEST(Builder, Ipv6PayloadLengthOverride) {
  const Decoded longer = Dec(Eth().ipv6(kClient6, kVip6, {.payload_len = 500}).udp(1, 2));
  EXPECT_THAT(longer.error, HasSubstr("payload length 500 beyond"));

  const Decoded version = Dec(Eth().ipv6(kClient6, kVip6, {.version = 4}).udp(1, 2));
  EXPECT_THAT(version.error, HasSubstr("IP version 4 in an IPv6"));

  const Decoded nh = Dec(Eth().ipv6(kClient6, kVip6, {.next_header = kProtoNoNext}).udp(1, 2));
  ASSERT_TRUE(nh.ok()) << nh.error;
  EXPECT_EQ(nh.l4_proto, kProtoNoNext);
  EXPECT_EQ(nh.payload.size(), 8u);
}

TEST(Builder, TcpFieldsAndOptions) {
  const Bytes options =
      Cat({TcpMss(1460), TcpSackPermitted(), TcpTimestamps(1, 2), TcpNop(), TcpWindowScale(7)});
  const Decoded d = Dec(Eth()
                            .ipv4(kClient, kVip)
                            .tcp(40000, 80, kTcpSyn | kTcpEce | kTcpCwr,
                                 {.seq = 0x01020304,
                                  .ack = 0xa0b0c0d0,
                                  .window = 29200,
                                  .urgent = 0,
                                  .options = options})
                            .payload("GET"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.sport, 40000);
  EXPECT_EQ(d.dport, 80);
  EXPECT_EQ(d.tcp_flags, kTcpSyn | kTcpEce | kTcpCwr);
  EXPECT_EQ(d.seq, 0x01020304u);
  EXPECT_EQ(d.ack, 0xa0b0c0d0u);
  EXPECT_EQ(d.window, 29200);
  EXPECT_EQ(d.doff, 5 + 5);  // 4 + 2 + 10 + 1 + 3 option bytes
  EXPECT_EQ(d.tcp_options, options);
  EXPECT_EQ(std::string(d.payload.begin(), d.payload.end()), "GET");
  EXPECT_EQ(d.l4_csum, Csum::kValid);

  const Decoded v6 =
      Dec(Eth().ipv6(kClient6, kVip6).tcp(1, 2, kTcpFin | kTcpAck, {.options = TcpMss(1220)}));
  ASSERT_TRUE(v6.ok()) << v6.error;
  EXPECT_EQ(v6.doff, 6);

  // Seven option bytes pad with EOL to eight.
  const Decoded padded =
      Dec(Eth()
              .ipv4(kClient, kVip)
              .tcp(1, 2, kTcpSyn, {.options = Cat({TcpMss(1460), TcpWindowScale(7)})}));
  ASSERT_TRUE(padded.ok()) << padded.error;
  EXPECT_EQ(padded.doff, 7);
  EXPECT_THAT(padded.tcp_options, ElementsAre(2, 4, 0x05, 0xb4, 3, 3, 7, 0));
  EXPECT_EQ(v6.l4_csum, Csum::kValid);
}

TEST(Builder, TcpDoffOverride) {
  const Decoded low = Dec(Eth().ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn, {.doff = 4}));
  EXPECT_EQ(low.doff, 4);
  EXPECT_EQ(low.l4_csum, Csum::kValid);  // the checksum covers the real segment
  EXPECT_THAT(low.error, HasSubstr("TCP data offset 4 < 5"));

  const Decoded high = Dec(Eth().ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn, {.doff = 15}));
  EXPECT_THAT(high.error, HasSubstr("TCP header of 60 bytes beyond the segment"));
}

TEST(Builder, TcpChecksumOverrideAndCorruption) {
  EXPECT_EQ(Dec(Eth().ipv4(kClient, kVip).tcp(1, 2, kTcpSyn, {.corrupt_checksum = true})).l4_csum,
            Csum::kInvalid);
  EXPECT_EQ(Dec(Eth().ipv6(kClient6, kVip6).tcp(1, 2, kTcpSyn, {.corrupt_checksum = true})).l4_csum,
            Csum::kInvalid);
  const Decoded fixed = Dec(Eth().ipv4(kClient, kVip).tcp(1, 2, kTcpSyn, {.checksum = 0xabcd}));
  EXPECT_EQ(fixed.l4_checksum, 0xabcd);
  EXPECT_EQ(fixed.l4_csum, Csum::kInvalid);
}

TEST(Builder, UdpLengthAndChecksums) {
  const Decoded d = Dec(Eth().ipv4(kClient, kVip).udp(40000, 53).payload("query"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.udp_len, 8 + 5);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_NE(d.l4_checksum, 0);

  const Decoded v6 = Dec(Eth().ipv6(kClient6, kVip6).udp(40000, 53).payload("query"));
  EXPECT_EQ(v6.l4_csum, Csum::kValid);

  const Decoded zero4 = Dec(Eth().ipv4(kClient, kVip).udp(1, 2, {.zero_checksum = true}));
  ASSERT_TRUE(zero4.ok()) << zero4.error;
  EXPECT_EQ(zero4.l4_checksum, 0);
  EXPECT_EQ(zero4.l4_csum, Csum::kAbsent);

  const Decoded zero6 = Dec(Eth().ipv6(kClient6, kVip6).udp(1, 2, {.zero_checksum = true}));
  EXPECT_EQ(zero6.l4_csum, Csum::kInvalid);

  EXPECT_EQ(Dec(Eth().ipv4(kClient, kVip).udp(1, 2, {.corrupt_checksum = true})).l4_csum,
            Csum::kInvalid);
  EXPECT_EQ(Dec(Eth().ipv6(kClient6, kVip6).udp(1, 2, {.corrupt_checksum = true})).l4_csum,
            Csum::kInvalid);
}

// A UDP checksum that computes to zero is sent as 0xffff (RFC 768). Ports chosen so that
// the sum over pseudo-header and header is 0xffff.
TEST(Builder, UdpChecksumZeroIsSentAsAllOnes) {
  // Without the ports, c612 + 0001 + c612 + 010a + 0011 + 0008 (pseudo-header) + 0008
  // (UDP length) folds to 0x8d51; source port 0x72ae brings the sum to 0xffff.
  const Decoded d = Dec(Eth().ipv4(kClient, kVip).udp(0x72ae, 0));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.l4_checksum, 0xffff);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
}

TEST(Builder, UdpLengthOverride) {
  const Decoded longer = Dec(Eth().ipv4(kClient, kVip).udp(1, 2, {.length = 100}).payload("x"));
  EXPECT_EQ(longer.udp_len, 100);
  EXPECT_THAT(longer.error, HasSubstr("UDP length 100 beyond"));

  const Decoded tiny = Dec(Eth().ipv4(kClient, kVip).udp(1, 2, {.length = 7}));
  EXPECT_THAT(tiny.error, HasSubstr("UDP length 7 < 8"));

  // Shorter than the IP payload: the receiver sums `length` bytes, and so did the builder.
  const Decoded shorter = Dec(Eth().ipv4(kClient, kVip).udp(1, 2, {.length = 10}).payload("abcd"));
  ASSERT_TRUE(shorter.ok()) << shorter.error;
  EXPECT_EQ(shorter.l4_csum, Csum::kValid);
  EXPECT_EQ(std::string(shorter.payload.begin(), shorter.payload.end()), "ab");
}

TEST(Builder, Icmp4Echo) {
  const Decoded req = Dec(Eth().ipv4(kClient, kVip).icmp4_echo_request(0x1234, 7).payload("ping"));
  ASSERT_TRUE(req.ok()) << req.error;
  EXPECT_EQ(req.l4_proto, kProtoIcmp);
  EXPECT_EQ(req.icmp_type, kIcmpEchoRequest);
  EXPECT_EQ(req.icmp_code, 0);
  EXPECT_EQ(req.icmp_id, 0x1234);
  EXPECT_EQ(req.icmp_seq, 7);
  EXPECT_EQ(req.l4_csum, Csum::kValid);
  EXPECT_EQ(std::string(req.payload.begin(), req.payload.end()), "ping");
  EXPECT_FALSE(req.inner.has_value());

  const Decoded rep = Dec(Eth().ipv4(kVip, kClient).icmp4_echo_reply(0x1234, 7));
  EXPECT_EQ(rep.icmp_type, kIcmpEchoReply);
  EXPECT_EQ(rep.l4_csum, Csum::kValid);
}

TEST(Builder, Icmp4DestUnreachQuotesWholeSmallPacket) {
  const Packet inner = Packet().ipv4(kVip, kClient, {.ttl = 1}).udp(53, 40000).payload("answer");
  const Decoded d =
      Dec(Eth().ipv4("198.18.9.9", kClient).icmp4_dest_unreach(kIcmpPortUnreach, inner));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.icmp_type, kIcmpDestUnreach);
  EXPECT_EQ(d.icmp_code, kIcmpPortUnreach);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(d.payload, inner.build());
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_EQ(d.inner->version, 4);
  EXPECT_EQ(d.inner->src, kVip);
  EXPECT_EQ(d.inner->dst, kClient);
  EXPECT_EQ(d.inner->ttl, 1);
  EXPECT_EQ(d.inner->sport, 53);
  EXPECT_EQ(d.inner->dport, 40000);
  EXPECT_EQ(d.inner->ip_csum, Csum::kValid);
  EXPECT_EQ(d.inner->l4_csum, Csum::kValid);  // all of it is quoted
  EXPECT_FALSE(d.inner->truncated);
}

TEST(Builder, Icmp4FragNeededQuotesAsMuchAsFits) {
  const Packet inner = Packet()
                           .ipv4(kVip, kClient, {.df = true})
                           .tcp(80, 40000, kTcpAck | kTcpPsh, {.seq = 42})
                           .payload(Bytes(1400, 'x'));
  const Decoded d = Dec(Eth().ipv4("198.18.9.9", kVip).icmp4_frag_needed(1400, inner));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.icmp_code, kIcmpFragNeeded);
  EXPECT_EQ(d.mtu, 1400u);
  EXPECT_EQ(d.tot_len, 576);  // RFC 1812: the whole error fits in 576 bytes
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_TRUE(d.inner->truncated);
  EXPECT_EQ(d.inner->tot_len, 20 + 20 + 1400);  // the quote keeps its own header
  EXPECT_EQ(d.inner->ip_csum, Csum::kValid);
  EXPECT_EQ(d.inner->sport, 80);
  EXPECT_EQ(d.inner->seq, 42u);
  EXPECT_EQ(d.inner->l4_csum, Csum::kUnverifiable);
}

TEST(Builder, Icmp4QuoteOfNBytes) {
  const Packet inner = Packet().ipv4(kVip, kClient).tcp(80, 40000, kTcpAck).payload("data");
  // RFC 792 minimum: the IP header and 8 bytes of it.
  const Decoded d = Dec(Eth()
                            .ipv4("198.18.9.9", kVip)
                            .icmp4_dest_unreach(kIcmpHostUnreach, inner, {.inner_len = 28}));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.payload.size(), 28u);
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_EQ(d.inner->sport, 80);
  EXPECT_EQ(d.inner->dport, 40000);
  EXPECT_TRUE(d.inner->truncated);

  // More than there is: the whole packet.
  const Decoded all = Dec(Eth()
                              .ipv4("198.18.9.9", kVip)
                              .icmp4_dest_unreach(kIcmpHostUnreach, inner, {.inner_len = 5000}));
  EXPECT_EQ(all.payload.size(), 20u + 20 + 4);
}

TEST(Builder, Icmp4TimeExceededAndGenericMessage) {
  const Packet inner = Packet().ipv4(kClient, kVip, {.ttl = 0}).icmp4_echo_request(1, 1);
  const Decoded d =
      Dec(Eth().ipv4("198.18.9.9", kClient).icmp4_time_exceeded(kIcmpTtlExceeded, inner));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.icmp_type, kIcmpTimeExceeded);
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_EQ(d.inner->l4_proto, kProtoIcmp);
  EXPECT_EQ(d.inner->icmp_type, kIcmpEchoRequest);
  EXPECT_EQ(d.inner->l4_csum, Csum::kValid);

  const Decoded param =
      Dec(Eth().ipv4("198.18.9.9", kClient).icmp4(kIcmpParamProblem, 0, 20u << 24, inner));
  ASSERT_TRUE(param.ok()) << param.error;
  EXPECT_EQ(param.icmp_type, kIcmpParamProblem);
  EXPECT_TRUE(param.inner.has_value());
}

TEST(Builder, IcmpErrorEmbedsRawBytes) {
  const Bytes raw = Packet().ipv4(kVip, kClient).udp(53, 1).build();
  const Decoded d = Dec(Eth().ipv4("198.18.9.9", kVip).icmp4_dest_unreach(kIcmpPortUnreach, raw));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.inner->dport, 1);
}

// The quoted packet keeps the checksums it was built with, bad ones included.
TEST(Builder, QuotedPacketKeepsItsOwnChecksums) {
  const Packet inner = Packet()
                           .ipv4(kVip, kClient, {.corrupt_checksum = true})
                           .udp(53, 1, {.corrupt_checksum = true});
  const Decoded d = Dec(Eth().ipv4("198.18.9.9", kVip).icmp4_dest_unreach(kIcmpPortUnreach, inner));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.ip_csum, Csum::kValid);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(d.inner->ip_csum, Csum::kInvalid);
  EXPECT_EQ(d.inner->l4_csum, Csum::kInvalid);
}

TEST(Builder, IcmpChecksumCorruption) {
  EXPECT_EQ(
      Dec(Eth().ipv4(kClient, kVip).icmp4_echo_request(1, 1, {.corrupt_checksum = true})).l4_csum,
      Csum::kInvalid);
  EXPECT_EQ(
      Dec(Eth().ipv6(kClient6, kVip6).icmp6_echo_request(1, 1, {.corrupt_checksum = true})).l4_csum,
      Csum::kInvalid);
  const Decoded fixed = Dec(Eth().ipv4(kClient, kVip).icmp4_echo_request(1, 1, {.checksum = 0}));
  EXPECT_EQ(fixed.l4_checksum, 0);
  EXPECT_EQ(fixed.l4_csum, Csum::kInvalid);
}

TEST(Builder, Icmp6Echo) {
  const Decoded d = Dec(Eth().ipv6(kClient6, kVip6).icmp6_echo_request(5, 6).payload("ping6"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.l4_proto, kProtoIcmpv6);
  EXPECT_EQ(d.icmp_type, kIcmp6EchoRequest);
  EXPECT_EQ(d.icmp_id, 5);
  EXPECT_EQ(d.icmp_seq, 6);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(Dec(Eth().ipv6(kVip6, kClient6).icmp6_echo_reply(5, 6)).icmp_type, kIcmp6EchoReply);
}

TEST(Builder, Icmp6PacketTooBigQuotesUpTo1280Bytes) {
  const Packet inner =
      Packet().ipv6(kVip6, kClient6).tcp(443, 40000, kTcpAck).payload(Bytes(1400, 'y'));
  const Decoded d = Dec(Eth().ipv6("2001:db8::feed", kVip6).icmp6_packet_too_big(1280, inner));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.icmp_type, kIcmp6PacketTooBig);
  EXPECT_EQ(d.mtu, 1280u);
  EXPECT_EQ(40 + d.payload_len, 1280);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_EQ(d.inner->version, 6);
  EXPECT_EQ(d.inner->src, kVip6);
  EXPECT_EQ(d.inner->dst, kClient6);
  EXPECT_EQ(d.inner->sport, 443);
  EXPECT_EQ(d.inner->dport, 40000);
  EXPECT_TRUE(d.inner->truncated);
  EXPECT_EQ(d.inner->l4_csum, Csum::kUnverifiable);
}

TEST(Builder, Icmp6DestUnreachAndTimeExceeded) {
  const Packet inner = Packet().ipv6(kClient6, kVip6).hop_by_hop().udp(40000, 53).payload("q");
  const Decoded un =
      Dec(Eth().ipv6("2001:db8::feed", kClient6).icmp6_dest_unreach(kIcmp6PortUnreach, inner));
  ASSERT_TRUE(un.ok()) << un.error;
  EXPECT_EQ(un.icmp_type, kIcmp6DestUnreach);
  EXPECT_EQ(un.icmp_code, kIcmp6PortUnreach);
  EXPECT_THAT(un.inner->next_headers, ElementsAre(kProtoHopByHop, kProtoUdp));
  EXPECT_EQ(un.inner->dport, 53);
  EXPECT_EQ(un.inner->l4_csum, Csum::kValid);

  const Decoded te =
      Dec(Eth()
              .ipv6("2001:db8::feed", kClient6)
              .icmp6_time_exceeded(kIcmp6HopLimitExceeded, inner, {.inner_len = 44}));
  ASSERT_TRUE(te.ok()) << te.error;
  EXPECT_EQ(te.icmp_type, kIcmp6TimeExceeded);
  EXPECT_EQ(te.payload.size(), 44u);
  EXPECT_TRUE(te.inner->truncated);
  EXPECT_EQ(te.inner->l4_proto, 0);  // the quote ends inside the extension header chain
}

TEST(Builder, IpInIp) {
  const Decoded d =
      Dec(Eth().ipv4("198.18.0.100", "198.18.0.200").ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.l4_proto, kProtoIpip);
  ASSERT_TRUE(d.inner.has_value());
  EXPECT_EQ(d.inner->dst, kVip);
  EXPECT_EQ(d.inner->dport, 80);
  EXPECT_EQ(d.inner->l4_csum, Csum::kValid);

  const Decoded six = Dec(Eth().ipv6(kClient6, "2001:db8::200").ipv6(kClient6, kVip6).udp(1, 2));
  ASSERT_TRUE(six.ok()) << six.error;
  EXPECT_EQ(six.l4_proto, kProtoIpv6);
  EXPECT_EQ(six.inner->dst, kVip6);
}

TEST(Builder, BareIpPacketWithoutEthernet) {
  const Bytes ip = Packet().ipv4(kClient, kVip).udp(1, 2).build();
  ASSERT_EQ(ip.size(), 28u);
  EXPECT_EQ(ip[0], 0x45);
}

TEST(Builder, PayloadsAppend) {
  const Decoded d = Dec(Eth().ipv4(kClient, kVip).udp(1, 2).payload("ab").payload(Bytes{'c'}));
  EXPECT_EQ(std::string(d.payload.begin(), d.payload.end()), "abc");
}

TEST(Builder, TrailerIsNotCountedInLengths) {
  const Decoded d = Dec(Eth().ipv4(kClient, kVip).udp(1, 2).payload("x").trailer(Bytes(17, 0)));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.tot_len, 29);
  EXPECT_EQ(d.trailer, 17u);
  EXPECT_EQ(d.payload.size(), 1u);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
}

TEST(Builder, TruncateMakesShortFrames) {
  const Packet p = Eth().vlan(5).ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn).payload("hello");
  EXPECT_EQ(p.build().size(), 14u + 4 + 20 + 20 + 5);
  const Packet cut =
      Eth().vlan(5).ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn).truncate(14 + 4 + 20 + 10);
  const Bytes frame = cut.build();
  EXPECT_EQ(frame.size(), 14u + 4 + 20 + 10);
  EXPECT_THAT(Decode(frame).error, HasSubstr("total length 40 beyond the data (30 bytes)"));

  EXPECT_THAT(Dec(Eth().ipv4(kClient, kVip).truncate(10)).error, HasSubstr("no Ethernet header"));
  EXPECT_THAT(Dec(Eth().vlan(1).ipv4(kClient, kVip).truncate(16)).error,
              HasSubstr("VLAN tag 1 truncated"));
  EXPECT_THAT(Dec(Eth().ipv4(kClient, kVip).truncate(30)).error,
              HasSubstr("IPv4 header truncated"));
  EXPECT_THAT(Dec(Eth().ipv6(kClient6, kVip6).truncate(50)).error,
              HasSubstr("IPv6 header truncated"));
  // Longer than the frame: nothing happens.
  EXPECT_EQ(Eth().ipv4(kClient, kVip).truncate(1000).build().size(), 34u);
}

}  // namespace
}  // namespace xlb::pkt
