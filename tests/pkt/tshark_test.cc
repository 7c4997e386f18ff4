// tshark as the second opinion on what the builder makes: a representative set decodes
// with every checksum Good and the fields as built, and corrupting each kind of checksum
// is caught by tshark and by our decoder alike (so neither check passes vacuously).
#include "tshark.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "builder.h"
#include "decoder.h"
#include "pcap.h"
#include "temp_dir.h"

namespace xlb::pkt {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kClient[] = "198.18.0.1";
constexpr char kVip[] = "198.18.1.10";
constexpr char kRouter[] = "198.18.9.9";
constexpr char kClient6[] = "2001:db8::1";
constexpr char kVip6[] = "2001:db8:1::10";
constexpr char kRouter6[] = "2001:db8::feed";

Packet Eth() {
  return Packet().eth("02:00:00:00:00:01", "02:00:00:00:00:02");
}

struct Case {
  std::string name;
  Bytes frame;
  std::string protocols;  // frame.protocols as tshark prints it
  // Every checksum status tshark prints, in tree order: {layer, status}.
  std::vector<std::pair<std::string, std::string>> status;
};

std::vector<Case> RepresentativeSet() {
  const Packet small_tcp =
      Packet().ipv4(kVip, kClient).tcp(80, 40000, kTcpAck, {.seq = 7}).payload("resp");
  const Packet big_tcp =
      Packet().ipv4(kVip, kClient, {.df = true}).tcp(80, 40000, kTcpAck).payload(Bytes(1400, 'x'));
  const Packet big_udp6 = Packet().ipv6(kVip6, kClient6).udp(53, 40000).payload(Bytes(1400, 'y'));
  const Packet small_tcp6 =
      Packet().ipv6(kClient6, kVip6, {.hop_limit = 1}).tcp(40000, 443, kTcpSyn);
  const Packet small_udp = Packet().ipv4(kClient, kVip, {.ttl = 1}).udp(40000, 53).payload("q");
  return {
      {"vlan_ipv4_options_tcp_syn",
       Eth()
           .vlan(100)
           .ipv4(kClient, kVip, {.ttl = 5, .df = true, .options = Ipv4RouterAlert()})
           .tcp(40000, 80, kTcpSyn, {.seq = 1, .options = Cat({TcpMss(1460), TcpSackPermitted()})})
           .payload("hi")
           .build(),
       "eth:ethertype:vlan:ethertype:ip:tcp:data",
       {{"ip", "Good"}, {"tcp", "Good"}}},
      {"qinq_ipv4_udp",
       Eth()
           .vlan(10, {.tpid = kTpid8021ad})
           .vlan(20)
           .ipv4(kClient, kVip)
           .udp(40000, 53)
           .payload("query")
           .build(),
       "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:udp:data",
       {{"ip", "Good"}, {"udp", "Good"}}},
      {"ipv4_udp_zero_checksum",
       Eth().ipv4(kClient, kVip).udp(40000, 53, {.zero_checksum = true}).payload("q").build(),
       "eth:ethertype:ip:udp:data",
       {{"ip", "Good"}, {"udp", "Not present"}}},
      {"ipv4_udp_checksum_ffff",  // computes to 0, sent as 0xffff
       Eth().ipv4(kClient, kVip).udp(0x72ae, 0).build(),
       "eth:ethertype:ip:udp",
       {{"ip", "Good"}, {"udp", "Good"}}},
      {"ipv4_padded_to_60_bytes",
       Eth().ipv4(kClient, kVip).udp(40000, 53).trailer(Bytes(18, 0)).build(),
       "eth:ethertype:ip:udp",
       {{"ip", "Good"}, {"udp", "Good"}}},
      {"ipv6_ext_headers_tcp",
       Eth()
           .ipv6(kClient6, kVip6)
           .hop_by_hop(Ipv6RouterAlert(0))
           .dest_opts()
           .routing(0, 0, {"2001:db8::99"})
           .fragment6({.id = 5})
           .tcp(40000, 443, kTcpSyn | kTcpAck, {.seq = 100, .ack = 200, .options = TcpMss(1220)})
           .payload("hello")
           .build(),
       "eth:ethertype:ipv6:ipv6.hopopts:ipv6.dstopts:ipv6.routing:ipv6.fraghdr:tcp:data",
       {{"tcp", "Good"}}},
      {"ipv6_srh_segments_left_udp",
       Eth()
           .ipv6(kClient6, "2001:db8::50")
           .routing(4, 1, {kVip6, "2001:db8::50"})
           .udp(40000, 53)
           .payload("q")
           .build(),
       "eth:ethertype:ipv6:ipv6.routing:udp:data",
       {{"udp", "Good"}}},
      {"ipv4_icmp_echo",
       Eth().ipv4(kClient, kVip).icmp4_echo_request(1, 2).payload("ping").build(),
       "eth:ethertype:ip:icmp:data",
       {{"ip", "Good"}, {"icmp", "Good"}}},
      {"ipv6_icmp6_echo",
       Eth().ipv6(kClient6, kVip6).icmp6_echo_request(1, 2).payload("ping").build(),
       "eth:ethertype:ipv6:icmpv6:data",
       {{"icmpv6", "Good"}}},
      {"icmp4_frag_needed_whole_quote",
       Eth().ipv4(kRouter, kVip).icmp4_frag_needed(1400, small_tcp).build(),
       "eth:ethertype:ip:icmp:ip:tcp:data",
       {{"ip", "Good"}, {"icmp", "Good"}, {"icmp/ip", "Good"}, {"icmp/tcp", "Good"}}},
      // tshark 4.0 sums a truncated quoted TCP segment as if whole and calls it Bad; the
      // problem is marked quoted_l4 and not counted.
      {"icmp4_frag_needed_truncated_quote",
       Eth().ipv4(kRouter, kVip).icmp4_frag_needed(1400, big_tcp).build(),
       "eth:ethertype:ip:icmp:ip:tcp:data",
       {{"ip", "Good"}, {"icmp", "Good"}, {"icmp/ip", "Good"}, {"icmp/tcp", "Bad"}}},
      {"icmp4_time_exceeded_udp",
       Eth().ipv4(kRouter, kClient).icmp4_time_exceeded(kIcmpTtlExceeded, small_udp).build(),
       "eth:ethertype:ip:icmp:ip:udp:data",
       {{"ip", "Good"}, {"icmp", "Good"}, {"icmp/ip", "Good"}, {"icmp/udp", "Good"}}},
      {"icmp6_packet_too_big_truncated_quote",
       Eth().ipv6(kRouter6, kVip6).icmp6_packet_too_big(1280, big_udp6).build(),
       "eth:ethertype:ipv6:icmpv6:ipv6:udp:data",
       {{"icmpv6", "Good"}, {"icmpv6/udp", "Unverified"}}},
      {"icmp6_time_exceeded_tcp",
       Eth()
           .ipv6(kRouter6, kClient6)
           .icmp6_time_exceeded(kIcmp6HopLimitExceeded, small_tcp6)
           .build(),
       "eth:ethertype:ipv6:icmpv6:ipv6:tcp",
       {{"icmpv6", "Good"}, {"icmpv6/tcp", "Good"}}},
      {"ipip_tcp",
       Eth()
           .ipv4("198.18.0.100", "198.18.0.200")
           .ipv4(kClient, kVip)
           .tcp(40000, 80, kTcpSyn)
           .build(),
       "eth:ethertype:ip:ip:tcp",
       {{"ip", "Good"}, {"ip", "Good"}, {"tcp", "Good"}}},
  };
}

// What both decoders say about a frame's addresses and ports, outermost first.
struct Fields {
  std::vector<std::string> ip_src, ip_dst, ipv6_src, ipv6_dst;
  std::vector<uint16_t> tcp_sport, tcp_dport, udp_sport, udp_dport;
  bool operator==(const Fields&) const = default;
};

void AddIp(Fields& f, const IpPacket& p) {
  (p.version == 4 ? f.ip_src : f.ipv6_src).push_back(p.src);
  (p.version == 4 ? f.ip_dst : f.ipv6_dst).push_back(p.dst);
  if (p.l4_proto == kProtoTcp) {
    f.tcp_sport.push_back(p.sport);
    f.tcp_dport.push_back(p.dport);
  } else if (p.l4_proto == kProtoUdp) {
    f.udp_sport.push_back(p.sport);
    f.udp_dport.push_back(p.dport);
  }
}

Fields FromDecoder(const Decoded& d) {
  Fields f;
  AddIp(f, d);
  if (d.inner) {
    AddIp(f, *d.inner);
  }
  return f;
}

Fields FromTshark(const TsharkFrame& t) {
  return {t.ip_src,    t.ip_dst,    t.ipv6_src,  t.ipv6_dst,
          t.tcp_sport, t.tcp_dport, t.udp_sport, t.udp_dport};
}

std::ostream& operator<<(std::ostream& os, const Fields& f) {
  const auto list = [&](const char* name, const auto& v) {
    os << name << "=[";
    for (const auto& x : v) {
      os << x << " ";
    }
    os << "] ";
  };
  list("ip_src", f.ip_src);
  list("ip_dst", f.ip_dst);
  list("ipv6_src", f.ipv6_src);
  list("ipv6_dst", f.ipv6_dst);
  list("tcp_sport", f.tcp_sport);
  list("tcp_dport", f.tcp_dport);
  list("udp_sport", f.udp_sport);
  list("udp_dport", f.udp_dport);
  return os;
}

std::vector<TsharkFrame> Tshark(const std::vector<Bytes>& frames) {
  return TsharkDecodeFrames(frames);
}

TEST(Tshark, RepresentativeSetHasNoBadChecksums) {
  const std::vector<Case> cases = RepresentativeSet();
  std::vector<Bytes> frames;
  frames.reserve(cases.size());
  for (const Case& c : cases) {
    frames.push_back(c.frame);
  }
  const std::vector<TsharkFrame> t = Tshark(frames);
  ASSERT_EQ(t.size(), cases.size());
  EXPECT_EQ(CountBadChecksums(t), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const Decoded d = Decode(cases[i].frame);
    ASSERT_TRUE(d.ok()) << d.error;
    EXPECT_EQ(t[i].number, static_cast<int>(i + 1));
    EXPECT_EQ(t[i].protocols, cases[i].protocols);
    EXPECT_THAT(t[i].malformed, IsEmpty());
    // Addresses and ports agree between tshark and our decoder, quote included.
    EXPECT_EQ(FromTshark(t[i]), FromDecoder(d));
    // Checked, not skipped: every status tshark printed is the one expected.
    std::vector<std::pair<std::string, std::string>> printed;
    for (const TsharkChecksum& c : t[i].checksums) {
      printed.emplace_back(c.layer, c.status);
    }
    EXPECT_EQ(printed, cases[i].status);
  }
}

TEST(Tshark, FieldsAsBuilt) {
  const std::vector<TsharkFrame> t = Tshark({
      Eth().vlan(100).ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn).build(),
      Eth().ipv6(kClient6, kVip6).udp(40001, 53).build(),
      Eth()
          .ipv4(kRouter, kVip)
          .icmp4_frag_needed(1400, Packet().ipv4(kVip, kClient).tcp(80, 40000, kTcpAck))
          .build(),
  });
  ASSERT_EQ(t.size(), 3u);
  EXPECT_THAT(t[0].ip_src, ElementsAre(kClient));
  EXPECT_THAT(t[0].ip_dst, ElementsAre(kVip));
  EXPECT_THAT(t[0].tcp_sport, ElementsAre(40000));
  EXPECT_THAT(t[0].tcp_dport, ElementsAre(80));
  EXPECT_THAT(t[1].ipv6_src, ElementsAre(kClient6));
  EXPECT_THAT(t[1].ipv6_dst, ElementsAre(kVip6));
  EXPECT_THAT(t[1].udp_sport, ElementsAre(40001));
  EXPECT_THAT(t[1].udp_dport, ElementsAre(53));
  EXPECT_THAT(t[2].ip_src, ElementsAre(kRouter, kVip));  // outer, then the quote
  EXPECT_THAT(t[2].ip_dst, ElementsAre(kVip, kClient));
  EXPECT_THAT(t[2].tcp_sport, ElementsAre(80));
  EXPECT_THAT(t[2].checksums, ElementsAre(testing::Field(&TsharkChecksum::layer, "ip"),
                                          testing::Field(&TsharkChecksum::layer, "icmp"),
                                          testing::Field(&TsharkChecksum::layer, "icmp/ip"),
                                          testing::Field(&TsharkChecksum::layer, "icmp/tcp")));
}

// Each checksum kind, corrupted alone: exactly one problem in tshark and our decoder.
TEST(Tshark, CorruptedChecksumsAreReportedBad) {
  const Packet quote =
      Packet().ipv4(kVip, kClient, {.corrupt_checksum = true}).udp(53, 40000).payload("a");
  struct C {
    std::string name;
    Bytes frame;
    std::string layer;
    std::string field;
    std::string status;
    bool inner;
    bool ip_header;
  };
  const std::vector<C> cases = {
      {"ipv4_header", Eth().ipv4(kClient, kVip, {.corrupt_checksum = true}).udp(1, 2).build(), "ip",
       "ip.checksum.status", "Bad", false, true},
      {"tcp_over_ipv4",
       Eth().ipv4(kClient, kVip).tcp(1, 2, kTcpSyn, {.corrupt_checksum = true}).build(), "tcp",
       "tcp.checksum.status", "Bad", false, false},
      {"tcp_over_ipv6",
       Eth().ipv6(kClient6, kVip6).tcp(1, 2, kTcpSyn, {.corrupt_checksum = true}).build(), "tcp",
       "tcp.checksum.status", "Bad", false, false},
      {"udp_over_ipv4",
       Eth().ipv4(kClient, kVip).udp(1, 2, {.corrupt_checksum = true}).payload("x").build(), "udp",
       "udp.checksum.status", "Bad", false, false},
      {"udp_over_ipv6",
       Eth().ipv6(kClient6, kVip6).udp(1, 2, {.corrupt_checksum = true}).payload("x").build(),
       "udp", "udp.checksum.status", "Bad", false, false},
      {"udp_zero_over_ipv6", Eth().ipv6(kClient6, kVip6).udp(1, 2, {.zero_checksum = true}).build(),
       "udp", "udp.checksum.status", "Illegal", false, false},
      {"icmp",
       Eth().ipv4(kClient, kVip).icmp4_echo_request(1, 1, {.corrupt_checksum = true}).build(),
       "icmp", "icmp.checksum.status", "Bad", false, false},
      {"icmpv6",
       Eth().ipv6(kClient6, kVip6).icmp6_echo_request(1, 1, {.corrupt_checksum = true}).build(),
       "icmpv6", "icmpv6.checksum.status", "Bad", false, false},
      {"icmp_error",
       Eth()
           .ipv4(kRouter, kVip)
           .icmp4_dest_unreach(kIcmpPortUnreach, Packet().ipv4(kVip, kClient).udp(53, 1),
                               {.corrupt_checksum = true})
           .build(),
       "icmp", "icmp.checksum.status", "Bad", false, false},
      {"quoted_ipv4_header",
       Eth().ipv4(kRouter, kVip).icmp4_dest_unreach(kIcmpPortUnreach, quote).build(), "icmp/ip",
       "ip.checksum.status", "Bad", true, true},
  };
  std::vector<Bytes> frames;
  frames.reserve(cases.size());
  for (const C& c : cases) {
    frames.push_back(c.frame);
  }
  const std::vector<TsharkFrame> t = Tshark(frames);
  ASSERT_EQ(t.size(), cases.size());
  EXPECT_EQ(CountBadChecksums(t), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const C& c = cases[i];
    SCOPED_TRACE(c.name);
    ASSERT_EQ(t[i].checksum_problems.size(), 1u);
    const TsharkChecksumProblem& p = t[i].checksum_problems[0];
    EXPECT_EQ(p.layer, c.layer);
    EXPECT_EQ(p.field, c.field);
    EXPECT_EQ(p.status, c.status);
    EXPECT_FALSE(p.quoted_l4);
    EXPECT_THAT(p.message, Not(IsEmpty()));
    EXPECT_EQ(CountBadChecksums(t[i]), 1u);

    const Decoded d = Decode(c.frame);
    ASSERT_TRUE(d.ok()) << d.error;
    const IpPacket& where = c.inner ? *d.inner : d;
    EXPECT_EQ(c.ip_header ? where.ip_csum : where.l4_csum, Csum::kInvalid) << Describe(d);
    // Nothing else is bad.
    if (c.ip_header) {
      EXPECT_NE(where.l4_csum, Csum::kInvalid);
    } else if (where.version == 4) {
      EXPECT_EQ(where.ip_csum, Csum::kValid);
    }
  }
  // The expert message is the one tshark attaches to a bad checksum.
  EXPECT_THAT(t[1].checksum_problems[0].message, HasSubstr("Bad checksum [should be 0x"));
  EXPECT_EQ(t[5].checksum_problems[0].message, "Illegal checksum value (0)");
}

TEST(Tshark, TruncatedQuotedTcpIsNotCounted) {
  const Packet big = Packet().ipv4(kVip, kClient).tcp(80, 40000, kTcpAck).payload(Bytes(1000, 'z'));
  const Bytes frame = Eth().ipv4(kRouter, kVip).icmp4_frag_needed(1400, big).build();
  const std::vector<TsharkFrame> t = Tshark({frame});
  ASSERT_EQ(t.size(), 1u);
  ASSERT_EQ(t[0].checksum_problems.size(), 1u);
  EXPECT_EQ(t[0].checksum_problems[0].layer, "icmp/tcp");
  EXPECT_TRUE(t[0].checksum_problems[0].quoted_l4);
  EXPECT_EQ(CountBadChecksums(t), 0u);
  EXPECT_EQ(Decode(frame).inner->l4_csum, Csum::kUnverifiable);
}

TEST(Tshark, MalformedFramesAreReported) {
  const std::vector<TsharkFrame> t = Tshark({
      Eth().ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn).truncate(40).build(),
      Eth().ipv4(kClient, kVip).tcp(40000, 80, kTcpSyn, {.doff = 4}).build(),
  });
  ASSERT_EQ(t.size(), 2u);
  EXPECT_THAT(t[0].malformed, ElementsAre("Malformed Packet (Exception occurred)"));
  bool bogus_length = false;
  for (const TsharkExpert& e : t[0].experts) {
    bogus_length |= e.message.find("total length exceeds packet length") != std::string::npos;
  }
  EXPECT_TRUE(bogus_length);
  bool bogus_doff = false;
  for (const TsharkExpert& e : t[1].experts) {
    bogus_doff |= e.layer == "tcp" && e.severity == 0x800000;
  }
  EXPECT_TRUE(bogus_doff);
}

// Application dissectors are off: a junk payload to port 53 is data, not malformed DNS.
TEST(Tshark, NoApplicationDissectors) {
  const std::vector<TsharkFrame> t =
      Tshark({Eth().ipv4(kClient, kVip).udp(40000, 53).payload("not a dns message").build()});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].protocols, "eth:ethertype:ip:udp:data");
  EXPECT_THAT(t[0].malformed, IsEmpty());
}

TEST(Tshark, EmptyPcap) {
  EXPECT_THAT(Tshark({}), IsEmpty());
}

TEST(Tshark, Errors) {
  const TempDir dir;
  EXPECT_THROW(TsharkDecode(dir.File("missing.pcap")), std::runtime_error);
  WritePcap(dir.File("x.pcap"), std::vector<Bytes>{Bytes(60, 0)});
  EXPECT_THROW(TsharkDecode(dir.File("x.pcap"), {.tshark = "/nonexistent/tshark"}),
               std::runtime_error);
  // A file name is an argument, never shell text.
  const std::string odd = dir.File("a b;$(touch pwned)'.pcap");
  WritePcap(odd, std::vector<Bytes>{Eth().ipv4(kClient, kVip).udp(1, 2).build()});
  EXPECT_EQ(TsharkDecode(odd).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists("pwned"));
}

}  // namespace
}  // namespace xlb::pkt
