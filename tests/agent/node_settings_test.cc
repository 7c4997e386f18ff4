// Per-node settings (userspace/agent/node_settings.h): one file for a cluster's nodes, the
// first matching entry over the defaults, the command line over both, and every mistake named
// by file and field before anything touches the kernel.
#include "userspace/agent/node_settings.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "userspace/agent/agent_options.h"

namespace xlb {
namespace {

constexpr const char* kSettings = R"(apiVersion: xlb.dev/v1alpha1
kind: NodeSettings
defaults:
  uplink: auto
  podIfaces: ["veth*", "lxc*"]
  encap: vxlan
  tunnelMtu: 1500
nodes:
- names: ["gpu-*"]
  uplink: [bond0, bond1]
  tunnelMtu: 9000
- names: ["gpu-7", "edge-1"]
  uplink: eth1
  encap: gue
)";

class NodeSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/xlb-node-settings-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::remove(path().c_str());
    ::rmdir(dir_.c_str());
  }
  std::string path() const { return dir_ + "/node-settings.yaml"; }
  void Write(const std::string& text) { std::ofstream(path()) << text; }

  // xlb-agent ARGS... --node-settings FILE, on the node `env_node`.
  bool Apply(std::vector<const char*> args, const std::string& env_node, AgentOptions& o,
             std::string& problem) {
    const std::string file = path();
    args.insert(args.begin(), "xlb-agent");
    args.insert(args.end(), {"--config", "c.yaml", "--node-settings", file.c_str()});
    bool help = false;
    if (!ParseAgentOptions(static_cast<int>(args.size()), args.data(), o, problem, help)) {
      return false;
    }
    return ApplyNodeSettings(static_cast<int>(args.size()), args.data(), env_node, o, problem);
  }

  std::string dir_;
};

TEST_F(NodeSettingsTest, DefaultsThenTheFirstMatchingEntryThenTheCommandLine) {
  Write(kSettings);
  std::string problem;
  AgentOptions plain;
  ASSERT_TRUE(Apply({}, "node-a1", plain, problem)) << problem;
  EXPECT_TRUE(plain.uplink_auto);
  EXPECT_EQ(plain.pod_ifaces, (std::vector<std::string>{"veth*", "lxc*"}));
  EXPECT_EQ(plain.datapath.encap, XLB_ENCAP_VXLAN);
  EXPECT_EQ(plain.datapath.tunnel_mtu, 1500);

  // gpu-7 matches both entries: the first one counts, field by field over the defaults.
  AgentOptions gpu;
  ASSERT_TRUE(Apply({}, "gpu-7", gpu, problem)) << problem;
  EXPECT_FALSE(gpu.uplink_auto);
  EXPECT_EQ(gpu.uplinks, (std::vector<std::string>{"bond0", "bond1"}));
  EXPECT_EQ(gpu.datapath.tunnel_mtu, 9000);
  EXPECT_EQ(gpu.datapath.encap, XLB_ENCAP_VXLAN);
  EXPECT_EQ(gpu.pod_ifaces, (std::vector<std::string>{"veth*", "lxc*"}));

  // --node-name names the node over $NODE_NAME; a flag on the command line wins over the file.
  AgentOptions edge;
  ASSERT_TRUE(Apply({"--node-name", "edge-1", "--tunnel-mtu", "1400", "--pod-iface", "cali*"},
                    "node-a1", edge, problem))
      << problem;
  EXPECT_EQ(edge.uplinks, (std::vector<std::string>{"eth1"}));
  EXPECT_EQ(edge.datapath.encap, XLB_ENCAP_GUE);
  EXPECT_EQ(edge.datapath.tunnel_mtu, 1400);
  EXPECT_EQ(edge.pod_ifaces, (std::vector<std::string>{"cali*"}));
  EXPECT_EQ(edge.node_name, "edge-1");
}

TEST_F(NodeSettingsTest, WithoutTheFileNothingChanges) {
  AgentOptions o;
  std::string problem;
  bool help = false;
  const char* args[] = {"xlb-agent", "--config", "c.yaml", "--uplink", "eth0"};
  ASSERT_TRUE(ParseAgentOptions(5, args, o, problem, help)) << problem;
  ASSERT_TRUE(ApplyNodeSettings(5, args, "node-a1", o, problem)) << problem;
  EXPECT_EQ(o.uplinks, (std::vector<std::string>{"eth0"}));
}

TEST_F(NodeSettingsTest, EveryMistakeIsNamedByFileAndField) {
  struct Case {
    std::string text;
    std::string node;
    std::string expect;  // in the problem
  };
  const std::string head = "apiVersion: xlb.dev/v1alpha1\nkind: NodeSettings\n";
  const std::vector<Case> cases = {
      {head + "defaults:\n  uplinks: eth0\n", "n1", "defaults.uplinks: unknown field \"uplinks\""},
      {head + "defaults:\n  encap: geneve\n", "n1", "defaults.encap: expected one of vxlan, gue"},
      {head + "defaults:\n  tunnelMtu: 100\n", "n1", "defaults.tunnelMtu"},
      // An entry for other nodes is checked too: its typo shows on every node.
      {head + "nodes:\n- names: [gpu-*]\n  tunnelMtu: big\n", "n1", "nodes[0].tunnelMtu"},
      {head + "nodes:\n- uplink: eth0\n", "n1", "nodes[0].names: required field is missing"},
      {head + "nodes:\n- names: [n1]\n  uplink: []\n", "n1", "nodes[0].uplink: an empty list"},
      {head + "nodes:\n- names: [n1]\n", "", "this node's name is not known"},
      {"apiVersion: xlb.dev/v1alpha1\nkind: KubeSources\n", "n1", "kind: expected NodeSettings"},
      {head + "defaults: {uplink: ','}\n,\n", "n1", ""},  // yaml-cpp's endless loop, refused
      // A value the flag parser refuses names the file and the node.
      {head + "nodes:\n- names: [n1]\n  uplink: a-name-far-too-long-for-linux\n", "n1",
       "(node n1): --uplink a-name-far-too-long-for-linux: not an interface name"},
  };
  for (const Case& c : cases) {
    Write(c.text);
    AgentOptions o;
    std::string problem;
    EXPECT_FALSE(Apply({}, c.node, o, problem)) << c.text;
    EXPECT_NE(problem.find(path()), std::string::npos) << problem;
    EXPECT_NE(problem.find(c.expect), std::string::npos) << c.text << "\n-> " << problem;
  }
  std::remove(path().c_str());
  AgentOptions o;
  std::string problem;
  EXPECT_FALSE(Apply({}, "n1", o, problem));
  EXPECT_NE(problem.find("cannot open: No such file or directory"), std::string::npos) << problem;
}

}  // namespace
}  // namespace xlb
