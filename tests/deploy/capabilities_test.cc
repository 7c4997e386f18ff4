// The DaemonSet's capability list, proven on the real agent. xlb-agent starts as root with a
// bounding set of exactly the capabilities deploy/base/daemonset.yaml adds (setpriv drops the
// others from every set before exec, as a container runtime does): it must load the datapath,
// pin its maps, sync, attach XDP to an uplink, xlb_tc to a pod interface, xlb_tc_egress to the
// uplink and socket LB to the cgroup. With any one of them missing it must fail at start-up,
// with an error that names what it needs. Root (CI is root: without it this fails, it does not
// skip); in a network namespace of its own (198.18.200.0/24), its pins removed afterwards.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "test_env.h"

namespace xlb::testing {
namespace {

// The capabilities the DaemonSet adds, as setpriv names them ("NET_ADMIN" -> "net_admin").
std::vector<std::string> DaemonSetCapabilities() {
  const YAML::Node ds = YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/base/daemonset.yaml");
  const YAML::Node sc = ds["spec"]["template"]["spec"]["containers"][0]["securityContext"];
  std::vector<std::string> caps;
  for (const YAML::Node& c : sc["capabilities"]["add"]) {
    std::string name = c.as<std::string>();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    caps.push_back(name);
  }
  return caps;
}

std::string BoundingSet(const std::vector<std::string>& caps) {
  std::string s = "-all";
  for (const std::string& c : caps) {
    s += ",+" + c;
  }
  return s;
}

constexpr const char* kConfig = R"(apiVersion: xlb.dev/v1alpha1
kind: Config
clusters:
- name: cluster-a
  id: 1
  local: true
  nodes:
  - name: node-a
    addresses: [198.18.200.1]
services:
- name: echo
  namespace: xlb-test
  clusterIP: 198.18.201.1
  ports:
  - port: 8080
    protocol: TCP
endpointSlices:
- service: echo
  namespace: xlb-test
  cluster: cluster-a
  endpoints:
  - addresses: [198.18.200.11]
    nodeName: node-a
)";

class Capabilities : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ns_.ok()) << ns_.error();
    ASSERT_TRUE(ns_.AddVethPair("up0", "up1")) << ns_.error();
    ASSERT_TRUE(ns_.AddVethPair("pv0", "pv1")) << ns_.error();
    const CommandResult r = ns_.Ip("addr add 198.18.200.1/24 dev up0");
    ASSERT_EQ(r.status, 0) << r.output;
    config_ = "/tmp/" + UniqueName("xlb-caps") + ".yaml";
    std::ofstream(config_) << kConfig;
  }
  void TearDown() override { std::remove(config_.c_str()); }

  // `what` under a bounding set of exactly `caps`, in the namespace.
  CommandResult With(const std::vector<std::string>& caps, const std::string& what) {
    return RunCommand("nsenter --net=" + ns_.Path() + " setpriv --bounding-set " +
                      BoundingSet(caps) + " --inh-caps=-all -- " + what);
  }

  CommandResult Agent(const std::vector<std::string>& caps) {
    RunCommand("rm -rf " + pins_.path());  // each run starts without pins
    return With(caps, std::string(XLB_AGENT_BIN) + " --config " + config_ + " --pin-dir " +
                          pins_.path() +
                          " --uplink up0 --pod-iface 'pv*' --tunnel-addr 198.18.200.1"
                          " --node-addr 198.18.200.1 --node-name node-a --socket-lb on --once");
  }

  Netns ns_;
  PinDir pins_;
  std::string config_;
};

TEST_F(Capabilities, TheDaemonSetsListIsEnoughForEveryAttachment) {
  const std::vector<std::string> caps = DaemonSetCapabilities();
  ASSERT_FALSE(caps.empty());
  // The process really runs with those and no others: CAP_NET_ADMIN 12, CAP_PERFMON 38,
  // CAP_BPF 39 (linux/capability.h).
  const CommandResult eff = With(caps, "grep CapEff /proc/self/status");
  EXPECT_NE(eff.output.find("000000c000001000"), std::string::npos) << eff.output;

  const CommandResult r = Agent(caps);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("sync #1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("socket LB attached"), std::string::npos) << r.output;
  struct stat st {};
  EXPECT_EQ(::stat(pins_.Pin(XLB_MAP_CT).c_str(), &st), 0) << "conntrack is pinned";
  const CommandResult xdp = ns_.Ip("-d link show up0");
  EXPECT_NE(xdp.output.find("xdp"), std::string::npos) << xdp.output;
  const CommandResult tc_in =
      RunCommand("nsenter --net=" + ns_.Path() + " tc filter show dev pv0 ingress");
  EXPECT_NE(tc_in.output.find("xlb_tc"), std::string::npos) << tc_in.output;
  const CommandResult tc_out =
      RunCommand("nsenter --net=" + ns_.Path() + " tc filter show dev up0 egress");
  EXPECT_NE(tc_out.output.find("xlb_tc_egress"), std::string::npos) << tc_out.output;
}

TEST_F(Capabilities, EachOneIsNeededAndItsLackIsExplained) {
  const std::vector<std::string> caps = DaemonSetCapabilities();
  for (const std::string& missing : caps) {
    std::vector<std::string> fewer;
    for (const std::string& c : caps) {
      if (c != missing) {
        fewer.push_back(c);
      }
    }
    const CommandResult r = Agent(fewer);
    EXPECT_NE(r.status, 0) << "without " << missing << ":\n" << r.output;
    EXPECT_NE(r.output.find("cannot start"), std::string::npos) << missing << ":\n" << r.output;
    EXPECT_NE(r.output.find("CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON"), std::string::npos)
        << "without " << missing << " the error does not say what is needed:\n"
        << r.output;
  }
}

}  // namespace
}  // namespace xlb::testing
