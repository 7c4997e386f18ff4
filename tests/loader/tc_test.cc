// xlb_tc: loaded against the XDP datapath's maps, attached to clsact ingress of a veth in a
// namespace of the test's own, run through BPF_PROG_TEST_RUN. Needs root.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "loader/tc_loader.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

uint32_t MapId(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  return info.id;
}

std::set<uint32_t> ProgMapIds(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(prog_fd, &info, &len), 0);
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info again{};
  again.nr_map_ids = info.nr_map_ids;
  again.map_ids = reinterpret_cast<uintptr_t>(ids.data());
  len = sizeof(again);
  EXPECT_EQ(bpf_obj_get_info_by_fd(prog_fd, &again, &len), 0);
  return {ids.begin(), ids.end()};
}

TEST(TcDatapath, SharesEveryPinnedMapWithXdp) {
  auto xdp = LoadHermetic();
  ASSERT_TRUE(xdp);
  auto tc = TcDatapath::Load(*xdp);
  ASSERT_TRUE(tc.ok()) << tc.error().ToString();
  const std::set<uint32_t> tc_maps = ProgMapIds((*tc)->prog_fd());
  // Every map xlb_tc uses that has an xlb name is the XDP datapath's very map (same id).
  std::set<uint32_t> xdp_maps;
  for (const char* name : kPinnedMaps) {
    xdp_maps.insert(MapId(xdp->map_fd(name)));
  }
  int shared = 0;
  for (uint32_t id : tc_maps) {
    int fd = bpf_map_get_fd_by_id(id);
    ASSERT_GE(fd, 0);
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    close(fd);
    if (std::string(info.name).rfind("xlb_", 0) == 0 &&
        std::string(info.name).find("_v") != std::string::npos) {
      EXPECT_TRUE(xdp_maps.count(id)) << info.name << " is a copy, not the XDP datapath's map";
      ++shared;
    }
  }
  // Conntrack, replies, services, backends, tables and counters at least.
  EXPECT_GE(shared, 5);
}

TEST(TcDatapath, TestRunOfAFrameThatIsNotIpPassesUnchanged) {
  auto xdp = LoadHermetic();
  ASSERT_TRUE(xdp);
  auto tc = TcDatapath::Load(*xdp);
  ASSERT_TRUE(tc.ok()) << tc.error().ToString();
  // An ARP-typed frame: whatever xlb_tc does to IP, this is not its business.
  std::vector<uint8_t> frame(60, 0);
  for (int i = 0; i < 6; ++i) {
    frame[i] = 0xff;
    frame[6 + i] = static_cast<uint8_t>(0x02 + i);
  }
  frame[12] = 0x08;
  frame[13] = 0x06;
  auto run = TestRunTc((*tc)->prog_fd(), frame);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(run->out, frame);
}

TEST(TcDatapath, TestRunRejectsFramesShorterThanEthernet) {
  auto xdp = LoadHermetic();
  ASSERT_TRUE(xdp);
  auto tc = TcDatapath::Load(*xdp);
  ASSERT_TRUE(tc.ok()) << tc.error().ToString();
  std::vector<uint8_t> frame(10, 0);
  auto run = TestRunTc((*tc)->prog_fd(), frame);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().what.find("14 bytes"), std::string::npos) << run.error().what;
}

class TcAttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ns_.ok()) << ns_.error();
    ASSERT_TRUE(ns_.AddVethPair("xlbt0", "xlbt1")) << ns_.error();
    xdp_ = LoadHermetic();
    ASSERT_TRUE(xdp_);
    auto tc = TcDatapath::Load(*xdp_);
    ASSERT_TRUE(tc.ok()) << tc.error().ToString();
    tc_ = std::move(*tc);
  }

  std::string Tc(const std::string& what) const {
    return RunCommand("tc -n " + ns_.name() + " " + what + " show dev xlbt0 ingress 2>&1").output;
  }
  std::string Qdiscs() const {
    return RunCommand("tc -n " + ns_.name() + " qdisc show dev xlbt0 2>&1").output;
  }

  Netns ns_;
  std::unique_ptr<XdpDatapath> xdp_;
  std::unique_ptr<TcDatapath> tc_;
};

TEST_F(TcAttachTest, AttachesToIngressAndTheDestructorRemovesFilterAndTheClsactItMade) {
  ASSERT_TRUE(ns_.RunInside([&] {
    auto a = tc_->Attach("xlbt0");
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_TRUE(a->created_hook());
    EXPECT_NE(a->prog_id(), 0u);
    EXPECT_NE(Tc("filter").find("xlb_tc"), std::string::npos) << Tc("filter");
    EXPECT_NE(Qdiscs().find("clsact"), std::string::npos);
    {
      TcAttachment gone = std::move(*a);
    }
    EXPECT_EQ(Tc("filter").find("xlb_tc"), std::string::npos) << Tc("filter");
    EXPECT_EQ(Qdiscs().find("clsact"), std::string::npos) << Qdiscs();
  }));
}

TEST_F(TcAttachTest, AClsactThatWasThereStaysAndSoDoesAnotherFilter) {
  ASSERT_EQ(RunCommand("tc -n " + ns_.name() + " qdisc add dev xlbt0 clsact").status, 0);
  // Someone else's filter at another priority (u32 is what this kernel has built in).
  ASSERT_EQ(RunCommand("tc -n " + ns_.name() +
                       " filter add dev xlbt0 ingress pref 9 u32 match u32 0 0 classid 1:1")
                .status,
            0);
  ASSERT_TRUE(ns_.RunInside([&] {
    auto a = tc_->Attach("xlbt0");
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_FALSE(a->created_hook());
    auto r = a->Detach();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(Tc("filter").find("xlb_tc"), std::string::npos);
    EXPECT_NE(Tc("filter").find("u32"), std::string::npos) << Tc("filter");
    EXPECT_NE(Qdiscs().find("clsact"), std::string::npos);
  }));
}

TEST_F(TcAttachTest, ARestartedAgentReplacesItsPredecessorAndTheOldHandleLeavesItAlone) {
  ASSERT_TRUE(ns_.RunInside([&] {
    auto first = tc_->Attach("xlbt0");
    ASSERT_TRUE(first.ok()) << first.error().ToString();
    // A second load of the program (the next agent) attaches at the same handle.
    auto tc2 = TcDatapath::Load(*xdp_);
    ASSERT_TRUE(tc2.ok()) << tc2.error().ToString();
    auto second = (*tc2)->Attach("xlbt0");
    ASSERT_TRUE(second.ok()) << second.error().ToString();
    EXPECT_NE(second->prog_id(), first->prog_id());
    // Exactly one xlb filter.
    const std::string filters = Tc("filter");
    size_t count = 0;
    for (size_t at = filters.find("handle 0x786c62"); at != std::string::npos;
         at = filters.find("handle 0x786c62", at + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 1u) << filters;
    // The old agent's handle goes and must not remove the new program.
    auto r = first->Detach();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_NE(Tc("filter").find("xlb_tc"), std::string::npos) << Tc("filter");
    second->release();
  }));
}

TEST(TcAttach, AnInterfaceThatDoesNotExistIsAClearError) {
  auto xdp = LoadHermetic();
  ASSERT_TRUE(xdp);
  auto tc = TcDatapath::Load(*xdp);
  ASSERT_TRUE(tc.ok()) << tc.error().ToString();
  auto a = (*tc)->Attach("xlb-no-such-if");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().what.find("xlb-no-such-if"), std::string::npos) << a.error().what;
}

}  // namespace
}  // namespace xlb::testing
