// xlbctl end to end: load/pin, reasons, attach inside a namespace and detach, unload.
// XLBCTL is the built binary's path. Needs root.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Xlbctl(const std::string& args) {
  return std::string(XLBCTL) + " " + args;
}

TEST(Xlbctl, LoadReasonsUnload) {
  PinDir dir;
  CommandResult r = RunCommand(Xlbctl("load --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* name : kPinnedMaps) {
    EXPECT_TRUE(Exists(dir.Pin(name))) << name;
  }
  r = RunCommand(Xlbctl("load --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(std::to_string(kPinnedMaps.size()) + " re-used"), std::string::npos)
      << r.output;

  r = RunCommand(Xlbctl("reasons --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("pass_not_ip"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("drop_no_table"), std::string::npos) << r.output;

  r = RunCommand(Xlbctl("unload --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(Exists(dir.path()));

  r = RunCommand(Xlbctl("reasons --pin-dir " + dir.path()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("xlb_reasons_v1"), std::string::npos) << r.output;
}

TEST(Xlbctl, AttachStaysAfterExitUntilDetach) {
  PinDir dir;
  Netns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  ASSERT_TRUE(ns.AddVethPair("xlbt0", "xlbt1")) << ns.error();
  // nsenter, not `ip netns exec`: that remounts /sys and hides the pins.
  const std::string in_ns = "nsenter --net=" + ns.Path() + " ";

  CommandResult r =
      RunCommand(in_ns + Xlbctl("load --pin-dir " + dir.path() + " --attach xlbt0 --native-only"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("native mode"), std::string::npos) << r.output;

  CommandResult link = ns.Ip("-d link show dev xlbt0");
  EXPECT_NE(link.output.find("prog/xdp id"), std::string::npos) << link.output;

  // Attached again: occupied without --replace, fine with it.
  r = RunCommand(in_ns + Xlbctl("load --pin-dir " + dir.path() + " --attach xlbt0"));
  EXPECT_EQ(r.status, 1) << r.output;
  r = RunCommand(in_ns + Xlbctl("load --pin-dir " + dir.path() + " --attach xlbt0 --replace"));
  EXPECT_EQ(r.status, 0) << r.output;

  r = RunCommand(in_ns + Xlbctl("detach xlbt0"));
  ASSERT_EQ(r.status, 0) << r.output;
  link = ns.Ip("-d link show dev xlbt0");
  EXPECT_EQ(link.output.find("prog/xdp"), std::string::npos) << link.output;

  r = RunCommand(Xlbctl("unload --pin-dir " + dir.path()));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(Xlbctl, UsageErrors) {
  EXPECT_EQ(RunCommand(Xlbctl("")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("frobnicate")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("load --pin-dir")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("detach")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("help")).status, 0);
}

}  // namespace
}  // namespace xlb::testing
