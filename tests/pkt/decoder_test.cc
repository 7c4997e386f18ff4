// The decoder on frames assembled by hand (checksums computed by a third implementation,
// a few lines of Python, and pasted here as hex), and on malformed input.
#include "decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "builder.h"

namespace xlb::pkt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Bytes FromHex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// 198.18.0.1:40000 > 198.18.1.10:80 SYN, seq 1, window 1024, MSS 1460, id 0x1234, DF.
// IPv4 checksum 0x9b68, TCP checksum 0x6a65.
constexpr std::string_view kSynHex =
    "020000000002020000000001"
    "0800"
    "4500002c1234400040069b68c6120001c612010a"
    "9c4000500000000100000000600204006a650000020405b4";

// 2001:db8::1 > 2001:db8:1::10 ICMPv6 echo request id 0x42 seq 1 "ping"; checksum 0x4521.
constexpr std::string_view kEcho6Hex =
    "020000000002020000000001"
    "86dd"
    "60000000000c3a4020010db800000000000000000000000120010db8000100000000000000000010"
    "800045210042000170696e67";

TEST(Decoder, HandAssembledTcpSyn) {
  const Decoded d = Decode(FromHex(kSynHex));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.ethertype, kEtherTypeIpv4);
  EXPECT_EQ(d.version, 4);
  EXPECT_EQ(d.src, "198.18.0.1");
  EXPECT_EQ(d.dst, "198.18.1.10");
  EXPECT_EQ(d.id, 0x1234);
  EXPECT_TRUE(d.df);
  EXPECT_EQ(d.ip_csum, Csum::kValid);
  EXPECT_EQ(d.l4_proto, kProtoTcp);
  EXPECT_EQ(d.sport, 40000);
  EXPECT_EQ(d.dport, 80);
  EXPECT_EQ(d.seq, 1u);
  EXPECT_EQ(d.tcp_flags, kTcpSyn);
  EXPECT_EQ(d.doff, 6);
  EXPECT_EQ(d.window, 1024);
  EXPECT_EQ(d.l4_checksum, 0x6a65);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_THAT(d.tcp_options, ElementsAre(2, 4, 0x05, 0xb4));
}

TEST(Decoder, HandAssembledIcmp6Echo) {
  const Decoded d = Decode(FromHex(kEcho6Hex));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.src, "2001:db8::1");
  EXPECT_EQ(d.dst, "2001:db8:1::10");
  EXPECT_EQ(d.icmp_type, kIcmp6EchoRequest);
  EXPECT_EQ(d.icmp_id, 0x42);
  EXPECT_EQ(d.icmp_seq, 1);
  EXPECT_EQ(d.l4_checksum, 0x4521);
  EXPECT_EQ(d.l4_csum, Csum::kValid);
  EXPECT_EQ(std::string(d.payload.begin(), d.payload.end()), "ping");
}

// The builder's checksums agree with the hand-assembled frames byte for byte.
TEST(Decoder, BuilderMatchesHandAssembledFrames) {
  const char* client_mac = "02:00:00:00:00:01";
  const char* router_mac = "02:00:00:00:00:02";
  EXPECT_EQ(Packet()
                .eth(client_mac, router_mac)
                .ipv4("198.18.0.1", "198.18.1.10", {.id = 0x1234, .df = true})
                .tcp(40000, 80, kTcpSyn, {.seq = 1, .window = 1024, .options = TcpMss(1460)})
                .build(),
            FromHex(kSynHex));
  EXPECT_EQ(Packet()
                .eth(client_mac, router_mac)
                .ipv6("2001:db8::1", "2001:db8:1::10")
                .icmp6_echo_request(0x42, 1)
                .payload("ping")
                .build(),
            FromHex(kEcho6Hex));
}

// One flipped bit anywhere a checksum covers is caught, pseudo-header included.
TEST(Decoder, EveryCoveredBitMatters) {
  const Bytes syn = FromHex(kSynHex);
  for (size_t byte = 14; byte < syn.size(); ++byte) {
    Bytes bad = syn;
    bad[byte] ^= 0x10;
    const Decoded d = Decode(bad);
    const bool ip_header = byte < 14 + 20;
    if (ip_header && (byte == 14 || byte == 16 || byte == 17)) {
      continue;  // version/IHL and total length: the packet no longer parses the same way
    }
    if (ip_header) {
      EXPECT_EQ(d.ip_csum, Csum::kInvalid) << "byte " << byte;
    }
    const bool in_pseudo = byte >= 14 + 12;  // addresses and TCP (a new protocol changes the parse)
    if (in_pseudo && d.ok()) {
      EXPECT_EQ(d.l4_csum, Csum::kInvalid) << "byte " << byte;
    }
  }
}

TEST(Decoder, EthernetPaddingIsATrailer) {
  Bytes frame = Packet()
                    .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                    .ipv4("198.18.0.1", "198.18.1.10")
                    .udp(1, 2)
                    .build();
  frame.resize(60, 0);  // what a NIC pads a 42-byte frame to
  const Decoded d = Decode(frame);
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.trailer, 18u);
  EXPECT_TRUE(d.payload.empty());
  EXPECT_EQ(d.l4_csum, Csum::kValid);
}

TEST(Decoder, Tag9100IsAVlanTag) {
  const Decoded d = Decode(Packet()
                               .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                               .vlan(7, {.tpid = 0x9100})
                               .ipv4("198.18.0.1", "198.18.1.10")
                               .udp(1, 2)
                               .build());
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_THAT(d.vlans, ElementsAre(VlanTag{0x9100, 7, 0, false}));
}

TEST(Decoder, MalformedL4Headers) {
  // IP lengths consistent, but fewer bytes than the L4 header needs.
  const auto with = [](uint8_t proto, const Bytes& l4) {
    return Decode(Packet()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .ipv4("198.18.0.1", "198.18.1.10", {.protocol = proto})
                      .payload(l4)
                      .build());
  };
  const Decoded tcp = with(kProtoTcp, Bytes(12, 0));
  EXPECT_THAT(tcp.error, HasSubstr("TCP header truncated (12 bytes)"));
  EXPECT_EQ(tcp.l4_csum, Csum::kNone);
  EXPECT_THAT(with(kProtoUdp, Bytes(4, 0)).error, HasSubstr("UDP header truncated (4 bytes)"));
  EXPECT_THAT(with(kProtoIcmp, Bytes{3, 1}).error, HasSubstr("ICMP header truncated (2 bytes)"));
}

TEST(Decoder, IcmpErrorsNeedAQuote) {
  const Decoded none = Decode(Packet()
                                  .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                  .ipv4("198.18.9.9", "198.18.0.1")
                                  .icmp4_dest_unreach(kIcmpHostUnreach, Bytes{})
                                  .build());
  EXPECT_THAT(none.error, HasSubstr("ICMP error without a quoted packet"));

  const Decoded junk = Decode(Packet()
                                  .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                  .ipv6("2001:db8::9", "2001:db8::1")
                                  .icmp6_dest_unreach(kIcmp6NoRoute, Bytes{0x10, 0, 0, 0})
                                  .build());
  EXPECT_THAT(junk.error, HasSubstr("inner: IP version 1"));

  const Decoded short_quote = Decode(Packet()
                                         .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                         .ipv4("198.18.9.9", "198.18.0.1")
                                         .icmp4_dest_unreach(kIcmpHostUnreach, Bytes{0x45, 0, 0})
                                         .build());
  EXPECT_THAT(short_quote.error, HasSubstr("inner: IPv4 header truncated (3 bytes)"));
}

TEST(Decoder, HopByHopMustComeFirst) {
  const Decoded d = Decode(Packet()
                               .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                               .ipv6("2001:db8::1", "2001:db8::2")
                               .dest_opts()
                               .hop_by_hop()
                               .udp(1, 2)
                               .build());
  EXPECT_THAT(d.error, HasSubstr("Hop-by-Hop header not right after the IPv6 header"));
}

TEST(Decoder, TruncatedExtensionHeader) {
  const Decoded d = Decode(Packet()
                               .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                               .ipv6("2001:db8::1", "2001:db8::2", {.next_header = kProtoRouting})
                               .payload(Bytes{17, 0, 0, 0})
                               .build());
  EXPECT_THAT(d.error, HasSubstr("IPv6 extension header 43 truncated"));
}

TEST(Decoder, DescribeAndCsumNames) {
  const Decoded d = Decode(FromHex(kSynHex));
  const std::string s = Describe(d);
  EXPECT_THAT(s, HasSubstr("ipv4 198.18.0.1 > 198.18.1.10"));
  EXPECT_THAT(s, HasSubstr("tcp 40000 > 80 flags 0x02"));
  EXPECT_THAT(s, HasSubstr("l4_csum valid"));
  std::ostringstream os;
  os << Csum::kAbsent << " " << Csum::kUnverifiable << " " << Csum::kInvalid << " " << Csum::kNone;
  EXPECT_EQ(os.str(), "absent unverifiable invalid none");
  EXPECT_THAT(Describe(Decode(Bytes(3, 0))), HasSubstr("ERROR: frame of 3 bytes"));
}

}  // namespace
}  // namespace xlb::pkt
