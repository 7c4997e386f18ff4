// XdpRedirectTargets (rtnetlink.h) against the kernel (root): a veth is an XDP forwarding
// target only while its peer can take the frames, which is what the agent writes into
// xlb_fwddev and xlb_xdp trusts.
#include <gtest/gtest.h>

#include <set>

#include "loader/xdp_loader.h"
#include "tests/loader/test_env.h"
#include "userspace/agent/rtnetlink.h"

namespace xlb::agent_test {
namespace {

TEST(XdpRedirectTargets, AVethOnlyWhileItsPeerRunsAnXdpProgram) {
  testing::Netns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  ASSERT_TRUE(ns.AddVethPair("fa0", "fa1")) << ns.error();
  auto dp = XdpDatapath::Load({.pin_dir = ""});
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  ASSERT_TRUE(ns.RunInside([&] {
    const int a0 = *IfIndex("fa0"), a1 = *IfIndex("fa1");
    auto before = XdpRedirectTargets();
    ASSERT_TRUE(before.ok()) << before.error().ToString();
    EXPECT_EQ(before->count(a0), 0u) << "a veth whose peer has no NAPI drops XDP frames";
    EXPECT_EQ(before->count(a1), 0u);

    auto attached = (*dp)->Attach(a1, {.allow_generic = false});
    ASSERT_TRUE(attached.ok()) << attached.error().ToString();
    auto during = XdpRedirectTargets();
    ASSERT_TRUE(during.ok()) << during.error().ToString();
    EXPECT_EQ(during->count(a0), 1u) << "fa1 runs XDP: fa0 can send it frames";
    EXPECT_EQ(during->count(a1), 0u) << "fa0 still runs nothing";

    ASSERT_TRUE(attached->Detach().ok());
    auto after = XdpRedirectTargets();
    ASSERT_TRUE(after.ok()) << after.error().ToString();
    EXPECT_EQ(after->count(a0), 0u);
  }));
}

}  // namespace
}  // namespace xlb::agent_test
