// TestRunXdp (BPF_PROG_TEST_RUN) on the floor program and on the datapath. Needs root.
#include "loader/test_run.h"

#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <set>
#include <string_view>
#include <vector>

#include "loader/reasons.h"
#include "loader/xdp_loader.h"

namespace xlb::testing {
namespace {

// Ethernet + IPv4 + UDP, 198.18.0.1:1234 -> 198.18.0.2:80, 64 bytes. Checksums are not
// needed: neither program reads them on this path.
std::vector<uint8_t> UdpFrame() {
  std::vector<uint8_t> f = {
      0x02, 0,    0, 0,  0,   0x02, 0x02, 0, 0,  0,  0, 0x01, 0x08, 0x00,  // eth
      0x45, 0,    0, 50, 0,   0,    0x40, 0, 64, 17, 0, 0,                 // ipv4
      198,  18,   0, 1,  198, 18,   0,    2,                               //
      0x04, 0xd2, 0, 80, 0,   30,   0,    0,                               // udp
  };
  f.resize(64, 0xab);
  return f;
}

TEST(TestRunXdp, FloorPassesTheFrameUnchanged) {
  auto floor = XdpFloor::Load();
  ASSERT_TRUE(floor.ok()) << floor.error().ToString();
  const auto in = UdpFrame();
  auto r = TestRunXdp((*floor)->prog_fd(), in);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(r->out, in);
}

TEST(TestRunXdp, RepeatReportsPerRepetitionDuration) {
  auto floor = XdpFloor::Load();
  ASSERT_TRUE(floor.ok()) << floor.error().ToString();
  const auto in = UdpFrame();
  auto r = TestRunXdp((*floor)->prog_fd(), in, 100000);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->retval, static_cast<uint32_t>(XDP_PASS));
  // The kernel averages: even a slow machine runs XDP_PASS far below 10 us per frame.
  EXPECT_LT(r->duration_ns, 10000u);
}

TEST(TestRunXdp, TooShortFrameIsAnError) {
  auto floor = XdpFloor::Load();
  ASSERT_TRUE(floor.ok());
  const std::vector<uint8_t> in(kMinTestRunFrame - 1, 0);
  auto r = TestRunXdp((*floor)->prog_fd(), in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_NE(r.error().what.find("at least 14 bytes"), std::string::npos) << r.error().what;
  // And the limit is the kernel's: one byte more runs.
  const std::vector<uint8_t> shortest(kMinTestRunFrame, 0);
  EXPECT_TRUE(TestRunXdp((*floor)->prog_fd(), shortest).ok());
}

TEST(TestRunXdp, DatapathCountsItsReason) {
  LoadOptions o;
  o.pin_dir = "";
  auto dp = XdpDatapath::Load(o);
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  std::vector<uint8_t> arp = UdpFrame();
  arp[12] = 0x08;
  arp[13] = 0x06;  // ARP: not IP
  auto r = TestRunXdp((*dp)->prog_fd(), arp, 3);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(r->out, arp);
  for (const ReasonInfo& reason : kReasons) {
    auto sum = (*dp)->reasons().LookupSum(reason.reason);
    ASSERT_TRUE(sum.ok()) << sum.error().ToString();
    const uint64_t want = reason.reason == XLB_PASS_NOT_IP ? 3 : 0;
    EXPECT_EQ(sum->packets, want) << reason.name;
    EXPECT_EQ(sum->bytes, want * arp.size()) << reason.name;
  }
}

TEST(Reasons, NamesAreUniqueAndComplete) {
  std::set<std::string_view> names;
  for (const ReasonInfo& r : kReasons) {
    EXPECT_TRUE(names.insert(r.name).second) << r.name;
    EXPECT_FALSE(r.description.empty()) << r.name;
    // The enum's own grouping: PASS, then FWD, then DROP.
    const Verdict want = r.reason < XLB_FWD_NEW_FLOW        ? Verdict::kPass
                         : r.reason < XLB_DROP_MALFORMED_L4 ? Verdict::kForward
                                                            : Verdict::kDrop;
    EXPECT_EQ(r.verdict, want) << r.name;
    const std::string_view prefix = want == Verdict::kPass      ? "pass_"
                                    : want == Verdict::kForward ? "fwd_"
                                                                : "drop_";
    EXPECT_TRUE(r.name.starts_with(prefix)) << r.name;
  }
  EXPECT_EQ(ReasonName(XLB_REASON_MAX), "unknown");
  EXPECT_EQ(ReasonName(XLB_DROP_NO_TABLE), "drop_no_table");
}

}  // namespace
}  // namespace xlb::testing
