// The independent check: every frame the datapath rewrote in the golden cases goes into a
// pcap, and tshark (Wireshark's dissectors, checksum validation on) must decode each one
// with no bad checksum, no malformed packet, and the destination the case expects.
#include <gtest/gtest.h>

#include <cstdio>

#include "decoder.h"
#include "golden_cases.h"
#include "pcap.h"
#include "tshark.h"
#include "tunnel_frames.h"

namespace xlb::testing {
namespace {

struct Rewritten {
  std::string where;
  pkt::Bytes frame;
  pkt::Decoded want;
};

// Every golden case, run once for all the tests here.
const std::vector<Rewritten>& AllRewritten();

std::vector<Rewritten> RunGoldenCases(size_t max_cases = SIZE_MAX) {
  std::vector<Rewritten> out;
  std::vector<GoldenCase> cases = GoldenCases();
  if (cases.size() > max_cases) cases.resize(max_cases);
  for (const GoldenCase& c : cases) {
    RunGoldenCase(c, [&](const GoldenStep& step, const GoldenRun& run, XdpDatapath&) {
      if (step.out) out.push_back({c.name + ": " + step.what, run.result.out, pkt::Decode(*step.out)});
    });
  }
  return out;
}

const std::vector<Rewritten>& AllRewritten() {
  static const std::vector<Rewritten> all = RunGoldenCases();
  return all;
}

// Rewritten frames that are not tunnel packets (those have their own test below).
std::vector<Rewritten> Plain() {
  std::vector<Rewritten> out;
  for (const auto& r : AllRewritten()) {
    if (!SplitTunnel(r.frame)) out.push_back(r);
  }
  return out;
}

TEST(Tshark, AcceptsEveryRewrittenFrame) {
  const std::vector<Rewritten> rewritten = Plain();
  ASSERT_GE(rewritten.size(), 30u);
  std::vector<pkt::Bytes> frames;
  for (const auto& r : rewritten) frames.push_back(r.frame);
  // Kept beside the test binary for a person to open in Wireshark.
  pkt::WritePcap("golden_out.pcap", frames);

  const std::vector<pkt::TsharkFrame> seen = pkt::TsharkDecode("golden_out.pcap");
  ASSERT_EQ(seen.size(), rewritten.size());
  EXPECT_EQ(pkt::CountBadChecksums(seen), 0u);
  size_t good = 0;
  for (const auto& t : seen) {
    for (const auto& c : t.checksums) good += c.status == "Good";
  }
  std::printf("tshark: %zu rewritten frames, %zu checksums Good, %zu bad\n", seen.size(), good,
              pkt::CountBadChecksums(seen));
  for (size_t i = 0; i < seen.size(); ++i) {
    SCOPED_TRACE(rewritten[i].where);
    const pkt::TsharkFrame& t = seen[i];
    const pkt::Decoded& want = rewritten[i].want;
    EXPECT_TRUE(t.malformed.empty()) << t.malformed.front();
    for (const auto& c : t.checksums) {
      if (c.layer == "udp" && want.l4_csum == pkt::Csum::kAbsent) {
        EXPECT_EQ(c.status, "Not present") << c.field;  // the zero UDP checksum stayed zero
      } else if (c.layer.find('/') == std::string::npos || c.layer == "icmp/ip") {
        EXPECT_EQ(c.status, "Good") << c.layer << " " << c.field;  // nothing Unverified
      }
    }
    if (want.version == 4) {
      ASSERT_FALSE(t.ip_dst.empty());
      EXPECT_EQ(t.ip_dst[0], want.dst);
      EXPECT_EQ(t.Checksum("ip"), "Good");
    } else {
      ASSERT_FALSE(t.ipv6_dst.empty());
      EXPECT_EQ(t.ipv6_dst[0], want.dst);
    }
    if (want.l4_proto == 6) {
      ASSERT_FALSE(t.tcp_dport.empty());
      EXPECT_EQ(t.tcp_dport[0], want.dport);
      EXPECT_EQ(t.Checksum("tcp"), "Good");
    } else if (want.l4_proto == 17) {
      ASSERT_FALSE(t.udp_dport.empty());
      EXPECT_EQ(t.udp_dport[0], want.dport);
    } else if (want.inner) {
      // ICMP errors: the quoted packet now names the backend as its source.
      const auto& quoted_src = want.version == 4 ? t.ip_src : t.ipv6_src;
      ASSERT_GE(quoted_src.size(), 2u);
      EXPECT_EQ(quoted_src[1], want.inner->src);
      EXPECT_EQ(t.Checksum(want.version == 4 ? "icmp" : "icmpv6"), "Good");
    }
  }
}

// Every encapsulated frame, decoded through the tunnel: VXLAN natively on 4789, GUE as
// IPv4 or IPv6 on 6080 (decode as). Outer, inner IP and inner TCP/UDP checksums all Good;
// the outer UDP checksum is zero over IPv4 ("Not present") and computed over IPv6 (Good).
TEST(Tshark, DecodesEveryTunnelFrame) {
  struct Group {
    std::string name;
    std::vector<std::string> args;
    std::vector<Rewritten> frames;
  };
  std::vector<Group> groups = {
      {"vxlan", {}, {}},
      {"gue/ip", {"-d", "udp.port==6080,ip"}, {}},
      {"gue/ipv6", {"-d", "udp.port==6080,ipv6"}, {}},
  };
  for (const auto& r : AllRewritten()) {
    const std::optional<TunnelFrame> t = SplitTunnel(r.frame);
    if (!t) continue;
    const bool inner4 = t->inner_frame.size() > 14 && (t->inner_frame[14] >> 4) == 4;
    groups[t->vxlan ? 0 : inner4 ? 1 : 2].frames.push_back(r);
  }
  size_t total = 0;
  for (const Group& g : groups) {
    SCOPED_TRACE(g.name);
    ASSERT_GE(g.frames.size(), 4u) << "golden cases lost their " << g.name << " frames";
    total += g.frames.size();
    std::vector<pkt::Bytes> frames;
    for (const auto& r : g.frames) frames.push_back(r.frame);
    pkt::TsharkOptions opts{.extra_protocols = {"vxlan"}, .extra_args = g.args};
    // A zero outer checksum over IPv6 is legal for tunnels (RFC 6935); xlb sends one only
    // when the inner datagram has none itself (checked below).
    opts.extra_args.insert(opts.extra_args.end(), {"-o", "udp.ignore_ipv6_zero_checksum:TRUE"});
    const std::vector<pkt::TsharkFrame> seen = pkt::TsharkDecodeFrames(frames, opts);
    ASSERT_EQ(seen.size(), frames.size());
    EXPECT_EQ(pkt::CountBadChecksums(seen), 0u);
    for (size_t i = 0; i < seen.size(); ++i) {
      SCOPED_TRACE(g.frames[i].where);
      const pkt::TsharkFrame& t = seen[i];
      const pkt::Decoded& outer = g.frames[i].want;
      const pkt::Decoded inner = pkt::Decode(SplitTunnel(g.frames[i].frame)->inner_frame);
      EXPECT_TRUE(t.malformed.empty()) << t.malformed.front();
      ASSERT_FALSE(t.udp_dport.empty());
      EXPECT_EQ(t.udp_dport[0], outer.dport);
      // outer then inner destination, in tree order
      std::vector<std::string> dsts = outer.version == 4 ? t.ip_dst : t.ipv6_dst;
      ASSERT_FALSE(dsts.empty());
      EXPECT_EQ(dsts[0], outer.dst);
      const std::vector<std::string>& inner_dsts = inner.version == 4 ? t.ip_dst : t.ipv6_dst;
      ASSERT_FALSE(inner_dsts.empty()) << "tshark did not decode the inner packet";
      EXPECT_EQ(inner_dsts.back(), inner.dst);
      size_t good = 0;
      for (const auto& c : t.checksums) {
        if (c.layer == "udp" && c.status != "Good") {
          // a zero checksum over IPv4, or over IPv6 around an inner datagram without one
          EXPECT_EQ(c.status, "Not present") << c.field;
          EXPECT_TRUE(outer.version == 4 || inner.l4_csum == pkt::Csum::kAbsent);
        } else {
          EXPECT_EQ(c.status, "Good") << c.layer << " " << c.field;
          ++good;
        }
      }
      // outer IPv4 header or IPv6 UDP, inner IPv4 header, inner TCP: every one verified
      const size_t want_good = (outer.version == 4 || inner.l4_csum != pkt::Csum::kAbsent) +
                               (inner.version == 4) + (inner.l4_proto == 6);
      EXPECT_GE(good, want_good);
      if (inner.l4_proto == 6) {
        ASSERT_FALSE(t.tcp_dport.empty());
        EXPECT_EQ(t.tcp_dport[0], inner.dport);
      }
    }
  }
  std::printf("tshark: %zu tunnel frames decoded through VXLAN/GUE, no bad checksum\n", total);
}

// The tunnel check can fail too: a flipped bit in the inner TCP checksum of a VXLAN frame
// (inner headers start after outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8, Ethernet 14).
TEST(Tshark, SeesACorruptedInnerChecksum) {
  for (const auto& r : AllRewritten()) {
    const std::optional<TunnelFrame> t = SplitTunnel(r.frame);
    if (!t || !t->vxlan || r.want.version != 4 || pkt::Decode(t->inner_frame).l4_proto != 6 ||
        pkt::Decode(t->inner_frame).version != 4) {
      continue;
    }
    pkt::Bytes frame = r.frame;
    frame[14 + 20 + 8 + 8 + 14 + 20 + 16] ^= 0x01;
    const std::vector<pkt::Bytes> one = {frame};
    EXPECT_EQ(pkt::CountBadChecksums(pkt::TsharkDecodeFrames(one, {.extra_protocols = {"vxlan"}})), 1u);
    return;
  }
  FAIL() << "no VXLAN frame with an inner IPv4 TCP segment among the golden outputs";
}

// The check can fail: one flipped bit in a rewritten TCP checksum is one bad checksum.
TEST(Tshark, SeesACorruptedRewrite) {
  std::vector<Rewritten> rewritten = RunGoldenCases(1);
  ASSERT_FALSE(rewritten.empty());
  pkt::Bytes frame = rewritten.front().frame;  // tcp4_syn_then_ack: SYN after DNAT
  ASSERT_EQ(rewritten.front().want.l4_proto, 6);
  frame[14 + 20 + 16] ^= 0x01;
  const std::vector<pkt::Bytes> one = {frame};
  EXPECT_EQ(pkt::CountBadChecksums(pkt::TsharkDecodeFrames(one)), 1u);
}

}  // namespace
}  // namespace xlb::testing
