// xlbctl end to end: load/pin, reasons, attach inside a namespace and detach, unload.
// XLBCTL is the built binary's path. Needs root.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
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
  r = RunCommand(Xlbctl("-o json reasons --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto doc = nlohmann::json::parse(r.output);
  ASSERT_EQ(doc.size(), static_cast<size_t>(XLB_REASON_MAX)) << r.output;
  EXPECT_EQ(doc[0]["reason"], "pass_not_ip");
  EXPECT_EQ(doc[0]["packets"], 0);

  r = RunCommand(Xlbctl("unload --pin-dir " + dir.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("removed " + std::to_string(kPinnedMaps.size()) + " xlb pins"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(Exists(dir.path()));

  r = RunCommand(Xlbctl("reasons --pin-dir " + dir.path()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("xlb is not loaded"), std::string::npos) << r.output;
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

TEST(Xlbctl, LoadsTheCrossClusterDatapathAndAttachesTcToPodInterfaces) {
  PinDir dir;
  Netns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  ASSERT_TRUE(ns.AddVethPair("xlbt0", "xlbt1")) << ns.error();
  const std::string in_ns = "nsenter --net=" + ns.Path() + " ";
  auto tc_filters = [&] {
    return RunCommand("tc -n " + ns.name() + " filter show dev xlbt1 ingress").output;
  };

  CommandResult r = RunCommand(
      in_ns + Xlbctl("load --pin-dir " + dir.path() +
                     " --attach xlbt0 --tc xlbt1 --tunnel-addr 198.18.1.2 --tunnel-addr "
                     "2001:db8:1::2 --encap gue --tunnel-mtu 1450"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("to xlbt1 (TC ingress)"), std::string::npos) << r.output;
  EXPECT_NE(tc_filters().find("xlb_tc"), std::string::npos) << tc_filters();
  // The knobs reached the rodata of the program attached to xlbt0.
  const std::string link = ns.Ip("-d link show dev xlbt0").output;
  const size_t at = link.find("prog/xdp id ");
  ASSERT_NE(at, std::string::npos) << link;
  const std::string prog_id = link.substr(at + 12, link.find(' ', at + 12) - at - 12);
  const CommandResult maps = RunCommand("bpftool prog show id " + prog_id + " 2>&1");
  const size_t ids_at = maps.output.find("map_ids ");
  ASSERT_NE(ids_at, std::string::npos) << maps.output;
  std::string rodata;
  std::string ids = maps.output.substr(ids_at + 8);
  ids = ids.substr(0, ids.find_first_of(" \n"));
  for (size_t pos = 0; pos <= ids.size();) {
    const size_t comma = std::min(ids.find(',', pos), ids.size());
    const std::string id = ids.substr(pos, comma - pos);
    const CommandResult dump = RunCommand("bpftool map dump id " + id + " 2>&1");
    if (dump.output.find("xlb_cfg") != std::string::npos) {
      rodata = dump.output;
    }
    pos = comma + 1;
  }
  EXPECT_NE(rodata.find("\"encap\": 2"), std::string::npos) << rodata;
  EXPECT_NE(rodata.find("\"tunnel_mtu\": 1450"), std::string::npos) << rodata;

  r = RunCommand(in_ns + Xlbctl("detach-tc xlbt1"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tc_filters().find("xlb_tc"), std::string::npos) << tc_filters();
  r = RunCommand(in_ns + Xlbctl("detach-tc xlbt1"));
  EXPECT_EQ(r.status, 1) << r.output;  // nothing left to detach
  r = RunCommand(in_ns + Xlbctl("detach xlbt0"));
  EXPECT_EQ(r.status, 0) << r.output;
  r = RunCommand(Xlbctl("unload --pin-dir " + dir.path()));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(Xlbctl, UsageErrors) {
  EXPECT_EQ(RunCommand(Xlbctl("")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("frobnicate")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("load --pin-dir")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("detach")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("detach-tc")).status, 2);
  const CommandResult bad_addr = RunCommand(Xlbctl("load --tunnel-addr 198.18.1"));
  EXPECT_EQ(bad_addr.status, 2);
  EXPECT_NE(bad_addr.output.find("--tunnel-addr 198.18.1"), std::string::npos) << bad_addr.output;
  EXPECT_EQ(RunCommand(Xlbctl("load --encap ipip")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("load --tunnel-mtu 99")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("help")).status, 0);
}

}  // namespace
}  // namespace xlb::testing
