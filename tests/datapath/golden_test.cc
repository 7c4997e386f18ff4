// Golden packets through the real xlb_xdp and xlb_tc programs (BPF_PROG_TEST_RUN): every
// step checks the verdict, that exactly its reason counter moved, and every output byte
// against a frame the test-side builder computed from scratch. Needs root (CI is root).
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include "decoder.h"
#include "golden_cases.h"
#include "loader/reasons.h"
#include "tunnel_frames.h"

namespace xlb::testing {
namespace {

std::string Hex(const std::vector<uint8_t>& b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i && i % 16 == 0) s += '\n';
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
    s += ' ';
  }
  return s;
}

// What the datapath rewrote must decode cleanly with every checksum right, the packet
// inside a tunnel included.
void ExpectCleanIp(const pkt::Decoded& d, bool outer_of_tunnel, bool inner_unsummed = false) {
  EXPECT_TRUE(d.ok()) << d.error;
  if (d.version == 4) {
    EXPECT_EQ(d.ip_csum, pkt::Csum::kValid);
  }
  if (outer_of_tunnel && (d.version == 4 || inner_unsummed)) {
    // xlb sends tunnels over IPv4 with a zero UDP checksum; over IPv6 it is computed, unless
    // the inner packet is an IPv4 UDP datagram without one (RFC 6935/6936 allow zero).
    EXPECT_EQ(d.l4_checksum, 0) << pkt::Describe(d);
  } else if (outer_of_tunnel) {
    EXPECT_EQ(d.l4_csum, pkt::Csum::kValid) << pkt::Describe(d);
  } else {
    EXPECT_TRUE(d.l4_csum == pkt::Csum::kValid || d.l4_csum == pkt::Csum::kAbsent)
        << pkt::Describe(d);
  }
  if (d.inner && d.inner->version == 4) {
    EXPECT_EQ(d.inner->ip_csum, pkt::Csum::kValid);
  }
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, Steps) {
  RunGoldenCase(GetParam(), [](const GoldenStep& step, const GoldenRun& run, XdpDatapath&) {
    const RunResult& r = run.result;
    EXPECT_EQ(r.verdict, step.verdict);
    for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
      EXPECT_EQ(run.after[i] - run.before[i], i == static_cast<uint32_t>(step.reason) ? 1u : 0u)
          << "reason counter " << ReasonName(i);
    }
    const pkt::Bytes& want = step.out ? *step.out : step.in;
    EXPECT_EQ(Hex(r.out), Hex(want)) << "got:  " << pkt::Describe(pkt::Decode(r.out))
                                     << "\nwant: " << pkt::Describe(pkt::Decode(want));
    if (step.out) {
      const pkt::Decoded d = pkt::Decode(r.out);
      const std::optional<TunnelFrame> t = SplitTunnel(r.out);
      const pkt::Decoded inner = t ? pkt::Decode(t->inner_frame) : pkt::Decoded{};
      ExpectCleanIp(d, t.has_value(), t && inner.l4_csum == pkt::Csum::kAbsent);
      if (t) {
        SCOPED_TRACE("inner packet");
        EXPECT_GE(t->sport, 49152) << "outer UDP source port from the flow hash";
        ExpectCleanIp(inner, false);
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest, ::testing::ValuesIn(GoldenCases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace xlb::testing
