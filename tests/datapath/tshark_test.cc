// The independent check: every frame the datapath rewrote in the golden cases goes into a
// pcap, and tshark (Wireshark's dissectors, checksum validation on) must decode each one
// with no bad checksum, no malformed packet, and the destination the case expects.
#include <gtest/gtest.h>

#include <cstdio>

#include "decoder.h"
#include "golden_cases.h"
#include "pcap.h"
#include "tshark.h"

namespace xlb::testing {
namespace {

struct Rewritten {
  std::string where;
  pkt::Bytes frame;
  pkt::Decoded want;
};

std::vector<Rewritten> RunGoldenCases(size_t max_cases = SIZE_MAX) {
  std::vector<Rewritten> out;
  std::vector<GoldenCase> cases = GoldenCases();
  if (cases.size() > max_cases) cases.resize(max_cases);
  for (const GoldenCase& c : cases) {
    auto dp = XdpDatapath::Load({.pin_dir = ""});
    if (!dp) {
      ADD_FAILURE() << dp.error().ToString();
      return out;
    }
    ServiceWriter writer(**dp);
    InstallGoldenServices(**dp, writer);
    for (const GoldenStep& step : c.steps) {
      if (step.before) step.before(**dp, writer);
      RunResult r = RunXdp((*dp)->prog_fd(), step.in);
      if (step.out) out.push_back({c.name + ": " + step.what, std::move(r.out), pkt::Decode(*step.out)});
    }
  }
  return out;
}

TEST(Tshark, AcceptsEveryRewrittenFrame) {
  const std::vector<Rewritten> rewritten = RunGoldenCases();
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
