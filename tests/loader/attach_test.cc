// XDP attach/detach on interfaces inside a namespace of the test's own. Needs root.
#include <gtest/gtest.h>
#include <linux/if_link.h>

#include <mutex>
#include <string>
#include <vector>

#include "loader/log.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

// Collects the loader's log lines for the lifetime of the object.
class LogCapture {
 public:
  LogCapture() {
    previous_ = SetLogSink([this](LogLevel, std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { SetLogSink(previous_); }
  bool Contains(std::string_view needle) {
    std::lock_guard lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(needle) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
  LogSink previous_;
};

class AttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ns_.ok()) << ns_.error();
    ASSERT_TRUE(ns_.AddVethPair("xlbt0", "xlbt1")) << ns_.error();
    dp_ = LoadHermetic();
    ASSERT_TRUE(dp_);
  }

  Netns ns_;  // declared first: destroyed last, after anything attached inside it
  std::unique_ptr<XdpDatapath> dp_;
};

TEST_F(AttachTest, NativeOnVethThenDetachedByDestructor) {
  ASSERT_TRUE(ns_.RunInside([&] {
    auto ifindex = IfIndex("xlbt0");
    ASSERT_TRUE(ifindex.ok()) << ifindex.error().ToString();
    {
      AttachOptions o;
      o.allow_generic = false;
      auto a = dp_->Attach("xlbt0", o);
      ASSERT_TRUE(a.ok()) << a.error().ToString();
      EXPECT_EQ(a->mode(), XdpMode::kNative);
      EXPECT_EQ(a->ifindex(), *ifindex);
      EXPECT_NE(a->prog_id(), 0u);

      auto state = QueryXdp(*ifindex);
      ASSERT_TRUE(state.ok()) << state.error().ToString();
      EXPECT_EQ(state->drv_prog_id, a->prog_id());
      EXPECT_EQ(state->skb_prog_id, 0u);

      CommandResult link = ns_.Ip("-d link show dev xlbt0");
      EXPECT_EQ(link.status, 0) << link.output;
      EXPECT_NE(link.output.find("prog/xdp id " + std::to_string(a->prog_id())), std::string::npos)
          << link.output;
      EXPECT_EQ(link.output.find("xdpgeneric"), std::string::npos) << link.output;
    }  // the attachment's destructor detaches
    auto state = QueryXdp(*ifindex);
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->drv_prog_id, 0u);
    CommandResult link = ns_.Ip("-d link show dev xlbt0");
    EXPECT_EQ(link.output.find("prog/xdp"), std::string::npos) << link.output;
  }));
}

TEST_F(AttachTest, FallsBackToGenericWhereTheDriverHasNoXdp) {
  // Loopback has no native XDP.
  ASSERT_TRUE(ns_.RunInside([&] {
    LogCapture log;
    auto a = dp_->Attach("lo");
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_EQ(a->mode(), XdpMode::kGeneric);
    EXPECT_TRUE(log.Contains("falling back to generic"));
    auto state = QueryXdp(a->ifindex());
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->skb_prog_id, a->prog_id());
    ASSERT_TRUE(a->Detach().ok());
    state = QueryXdp(a->ifindex());
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->skb_prog_id, 0u);

    AttachOptions native_only;
    native_only.allow_generic = false;
    auto refused = dp_->Attach("lo", native_only);
    EXPECT_FALSE(refused.ok());
  }));
}

TEST_F(AttachTest, ReleasedAttachmentOutlivesTheLoaderUntilDetachXdp) {
  ASSERT_TRUE(ns_.RunInside([&] {
    auto ifindex = IfIndex("xlbt1");
    ASSERT_TRUE(ifindex.ok());
    uint32_t prog_id = 0;
    {
      auto a = dp_->Attach(*ifindex);
      ASSERT_TRUE(a.ok()) << a.error().ToString();
      prog_id = a->prog_id();
      a->release();
    }
    dp_.reset();  // the agent exits; the attached program keeps its maps alive
    auto state = QueryXdp(*ifindex);
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->drv_prog_id, prog_id);

    auto mode = DetachXdp(*ifindex);
    ASSERT_TRUE(mode.ok()) << mode.error().ToString();
    EXPECT_EQ(*mode, XdpMode::kNative);
    state = QueryXdp(*ifindex);
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->drv_prog_id, 0u);
    auto again = DetachXdp(*ifindex);
    ASSERT_FALSE(again.ok());
    EXPECT_TRUE(again.error().NotFound());
  }));
}

TEST_F(AttachTest, OccupiedInterfaceNeedsReplaceAndDestructorSparesTheReplacement) {
  auto floor = XdpFloor::Load();
  ASSERT_TRUE(floor.ok()) << floor.error().ToString();
  ASSERT_TRUE(ns_.RunInside([&] {
    auto ours = dp_->Attach("xlbt0");
    ASSERT_TRUE(ours.ok()) << ours.error().ToString();

    // Someone else's program cannot silently take the interface...
    auto busy = AttachXdp((*floor)->prog_fd(), "xlbt0");
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.error().err, EBUSY) << busy.error().ToString();

    // ...but can with replace, and then our attachment must not remove it.
    AttachOptions replace;
    replace.replace = true;
    auto theirs = AttachXdp((*floor)->prog_fd(), "xlbt0", replace);
    ASSERT_TRUE(theirs.ok()) << theirs.error().ToString();
    auto detach = ours->Detach();
    EXPECT_FALSE(detach.ok());
    auto state = QueryXdp(theirs->ifindex());
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->drv_prog_id, theirs->prog_id());

    // DetachXdp only removes xlb's program unless forced.
    auto refused = DetachXdp(theirs->ifindex());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().err, EPERM) << refused.error().ToString();
    theirs->release();
    auto forced = DetachXdp(theirs->ifindex(), /*only_xlb=*/false);
    ASSERT_TRUE(forced.ok()) << forced.error().ToString();
    state = QueryXdp(theirs->ifindex());
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->drv_prog_id, 0u);
  }));
}

TEST(Attach, UnknownInterface) {
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  auto a = dp->Attach("xlb-no-such-if");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().what.find("xlb-no-such-if"), std::string::npos) << a.error().what;
}

}  // namespace
}  // namespace xlb::testing
