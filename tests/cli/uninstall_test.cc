// xlbctl uninstall on a node the real agent left running: xlb-agent --once attaches xlb_xdp to
// the node's uplink, xlb_tc and xlb_tc_egress to a pod's veth, xlb_tc_egress to the uplink and
// socket LB to a cgroup of its own, pins it all and exits (as a deleted DaemonSet leaves a
// node). A client namespace reaches a pod namespace through the node, by the service's VIP and
// directly. After uninstall, bpftool (not xlbctl) must find no xlb program on any interface
// and no link on the cgroup, the pin dir must be gone, and the client must still reach the pod
// through the kernel alone; a second uninstall finds nothing. An XDP program that is not xlb's
// stays where it is; and deploy/cleanup's capabilities are proven enough, each one needed.
// Root (CI is root: without it this fails, it does not skip); namespaces with 198.18.220.0/22
// only, torn down, with the cgroup, also when the test fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loader/fd.h"
#include "loader/sock_loader.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

constexpr const char* kPod = "198.18.221.2";
constexpr uint16_t kPodPort = 8080;
constexpr const char* kVip = "198.18.223.1";
constexpr uint16_t kVipPort = 80;

constexpr const char* kConfig = R"(apiVersion: xlb.dev/v1alpha1
kind: Config
clusters:
- name: here
  id: 1
  local: true
  nodes:
  - name: node-u
    addresses: [198.18.220.2]
services:
- name: web
  namespace: uninstall-test
  clusterIP: 198.18.223.1
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
endpointSlices:
- service: web
  namespace: uninstall-test
  cluster: here
  endpoints:
  - addresses: [198.18.221.2]
    nodeName: node-u
)";

sockaddr_in Address(const char* addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  return sa;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

class Uninstall : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const Netns* ns : {&client_, &node_, &pod_}) {
      ASSERT_TRUE(ns->ok()) << ns->error();
    }
    // client cl0 <-> up0 node pv0 <-> pod0 pod; other0 is a node interface xlb does not use.
    ASSERT_TRUE(node_.AddVethPair("up0", "cl0")) << node_.error();
    ASSERT_TRUE(node_.AddVethPair("pv0", "pod0")) << node_.error();
    ASSERT_TRUE(node_.AddVethPair("other0", "other1")) << node_.error();
    for (const std::string& step :
         {"link set cl0 netns " + client_.name(), "link set pod0 netns " + pod_.name(),
          std::string("addr add 198.18.220.2/24 dev up0"),
          std::string("addr add 198.18.221.1/24 dev pv0")}) {
      const CommandResult r = node_.Ip(step);
      ASSERT_EQ(r.status, 0) << step << ": " << r.output;
    }
    for (const char* step : {"addr add 198.18.220.1/24 dev cl0", "link set cl0 up",
                             "route add 198.18.221.0/24 via 198.18.220.2",
                             "route add 198.18.223.0/24 via 198.18.220.2"}) {
      const CommandResult r = client_.Ip(step);
      ASSERT_EQ(r.status, 0) << step << ": " << r.output;
    }
    for (const char* step : {"addr add 198.18.221.2/24 dev pod0", "link set pod0 up",
                             "link set lo up", "route add default via 198.18.221.1"}) {
      const CommandResult r = pod_.Ip(step);
      ASSERT_EQ(r.status, 0) << step << ": " << r.output;
    }
    const CommandResult fwd = RunCommand(InNode("sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'"));
    ASSERT_EQ(fwd.status, 0) << fwd.output;

    auto root = FindCgroup2();
    ASSERT_TRUE(root.ok()) << root.error().ToString();
    cgroup_ = *root + "/" + UniqueName("xlbt-uninstall");
    ASSERT_EQ(::mkdir(cgroup_.c_str(), 0755), 0) << cgroup_;
    config_ = "/tmp/" + UniqueName("xlb-uninstall") + ".yaml";
    std::ofstream(config_) << kConfig;
  }

  void TearDown() override {
    std::remove(config_.c_str());
    if (!cgroup_.empty()) {
      ::rmdir(cgroup_.c_str());
    }
  }

  // nsenter keeps the mount namespace (the host's bpffs); `ip netns exec` would hide it.
  std::string InNode(const std::string& command) const {
    return "nsenter --net=" + node_.Path() + " " + command;
  }

  CommandResult Xlbctl(const std::string& args) const {
    return RunCommand(InNode(std::string(XLBCTL) + " " + args + " --pin-dir " + pins_.path()));
  }

  // What a deleted DaemonSet leaves: the agent's one sync, everything attached and pinned.
  void RunAgent() {
    const CommandResult agent = RunCommand(
        InNode(std::string(XLB_AGENT_BIN) + " --config " + config_ + " --pin-dir " + pins_.path() +
               " --uplink up0 --pod-iface 'pv*' --tunnel-addr 198.18.220.2 --node-addr 198.18.220.2"
               " --node-name node-u --socket-lb on --cgroup " +
               cgroup_ + " --once"));
    ASSERT_EQ(agent.status, 0) << agent.output;
  }

  // A TCP connection from the client namespace to dst:port, accepted by a listener in the pod
  // namespace on kPod:kPodPort (the VIP is DNATed to it).
  ::testing::AssertionResult Connects(const char* dst, uint16_t port) {
    UniqueFd listener;
    pod_.RunInside([&] {
      listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      const int one = 1;
      ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      const sockaddr_in sa = Address(kPod, kPodPort);
      if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0 ||
          ::listen(listener.get(), 4) != 0) {
        listener.reset();
      }
    });
    if (!listener.valid()) {
      return ::testing::AssertionFailure() << "no listener on " << kPod << ":" << kPodPort;
    }
    UniqueFd client;
    client_.RunInside([&] {
      client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      const sockaddr_in sa = Address(dst, port);
      ::connect(client.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
    });
    pollfd p{client.get(), POLLOUT, 0};
    int error = ETIMEDOUT;
    socklen_t len = sizeof(error);
    if (::poll(&p, 1, 3000) == 1) {
      ::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &error, &len);
    }
    if (error != 0) {
      return ::testing::AssertionFailure()
             << "connect to " << dst << ":" << port << ": " << std::strerror(error);
    }
    pollfd a{listener.get(), POLLIN, 0};
    if (::poll(&a, 1, 3000) != 1 ||
        UniqueFd(::accept(listener.get(), nullptr, nullptr)).get() < 0) {
      return ::testing::AssertionFailure() << "the pod accepted nothing";
    }
    return ::testing::AssertionSuccess();
  }

  // bpftool's view of the node namespace: "xdp" and "tc" attachments, by interface.
  nlohmann::json BpftoolNet() const {
    const CommandResult r = RunCommand(InNode("bpftool -j net show 2>/dev/null"));
    EXPECT_EQ(r.status, 0) << r.output;
    return nlohmann::json::parse(r.output, nullptr, false)[0];
  }

  // bpftool's links on our cgroup (`bpftool cgroup show` fails on recent kernels with
  // Debian 12's bpftool; `link show` names each link's cgroup by id, its inode number).
  nlohmann::json CgroupLinks() const {
    struct stat st {};
    EXPECT_EQ(::stat(cgroup_.c_str(), &st), 0) << cgroup_;
    const CommandResult r = RunCommand("bpftool -j link show 2>/dev/null");
    EXPECT_EQ(r.status, 0) << r.output;
    nlohmann::json ours = nlohmann::json::array();
    for (const nlohmann::json& link : nlohmann::json::parse(r.output, nullptr, false)) {
      if (link.value("type", "") == "cgroup" && link.value("cgroup_id", 0ull) == st.st_ino) {
        ours.push_back(link);
      }
    }
    return ours;
  }

  Netns client_;
  Netns node_;
  Netns pod_;
  PinDir pins_;
  std::string cgroup_;
  std::string config_;
};

TEST_F(Uninstall, RemovesEveryProgramFilterLinkAndPinAndTrafficStillFlows) {
  RunAgent();
  ASSERT_FALSE(HasFatalFailure());
  // A program that is not xlb's, on an interface xlb does not use.
  auto floor = XdpFloor::Load();
  ASSERT_TRUE(floor.ok()) << floor.error().ToString();
  ASSERT_TRUE(node_.RunInside([&] {
    auto a = AttachXdp((*floor)->prog_fd(), "other0");
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    a->release();
  }));

  // Before: what the agent left, as bpftool sees it, and traffic through it.
  nlohmann::json net = BpftoolNet();
  ASSERT_EQ(net["xdp"].size(), 2u) << net.dump();
  ASSERT_EQ(net["tc"].size(), 3u) << net.dump();  // pv0 ingress + egress, up0 egress
  ASSERT_EQ(CgroupLinks().size(), 8u) << CgroupLinks().dump();
  ASSERT_TRUE(Exists(pins_.Pin(XLB_MAP_SERVICES)));
  EXPECT_TRUE(Connects(kPod, kPodPort));
  EXPECT_TRUE(Connects(kVip, kVipPort)) << "the VIP is served by xlb_xdp";

  CommandResult r = Xlbctl("uninstall");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* said :
       {"detached xlb_xdp", "from up0", "detached xlb_tc (program", "from pv0 (TC ingress)",
        "from pv0 (TC egress)", "from up0 (TC egress)", "detached link xlb_sk_conn4_v1",
        "pins under", "left in place: XDP program"}) {
    EXPECT_NE(r.output.find(said), std::string::npos) << said << "\n" << r.output;
  }

  // After: bpftool finds nothing of xlb; the other program is still on other0.
  net = BpftoolNet();
  ASSERT_EQ(net["xdp"].size(), 1u) << net.dump();
  EXPECT_EQ(net["xdp"][0]["devname"], "other0") << net.dump();
  EXPECT_TRUE(net["tc"].empty()) << net.dump();
  EXPECT_TRUE(CgroupLinks().empty()) << CgroupLinks().dump();
  EXPECT_FALSE(Exists(pins_.path())) << pins_.path();
  EXPECT_TRUE(Connects(kPod, kPodPort)) << "the kernel alone routes client to pod";

  r = Xlbctl("uninstall");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("nothing of xlb here"), std::string::npos) << r.output;
  r = Xlbctl("-o json uninstall");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto doc = nlohmann::json::parse(r.output);
  EXPECT_TRUE(doc["xdp"].empty() && doc["tc"].empty() && doc["links"].empty() &&
              doc["pins"].empty())
      << r.output;
  EXPECT_EQ(doc["left"].size(), 1u) << r.output;
}

// deploy/cleanup runs uninstall with the capabilities its init container adds and no others
// (setpriv drops the rest from every set, as a container runtime does). With one of them
// missing, uninstall fails, says so, and keeps the pins: nothing may keep running on maps
// nobody can reach.
TEST_F(Uninstall, TheCleanupDaemonSetsCapabilitiesAreEnoughAndEachIsNeeded) {
  const YAML::Node cleanup =
      YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/cleanup/daemonset.yaml");
  std::vector<std::string> caps;
  for (const YAML::Node& c : cleanup["spec"]["template"]["spec"]["initContainers"][0]
                                    ["securityContext"]["capabilities"]["add"]) {
    caps.push_back(c.as<std::string>());
  }
  ASSERT_FALSE(caps.empty());
  auto uninstall_with = [&](const std::vector<std::string>& with) {
    std::string bounding = "-all";
    for (std::string c : with) {
      std::transform(c.begin(), c.end(), c.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      bounding += ",+" + c;
    }
    return RunCommand(InNode("setpriv --bounding-set " + bounding + " --inh-caps=-all -- " +
                             XLBCTL + " uninstall --pin-dir " + pins_.path()));
  };

  for (const std::string& missing : caps) {
    std::vector<std::string> fewer;
    std::copy_if(caps.begin(), caps.end(), std::back_inserter(fewer),
                 [&](const std::string& c) { return c != missing; });
    RunAgent();
    ASSERT_FALSE(HasFatalFailure());
    const CommandResult r = uninstall_with(fewer);
    EXPECT_EQ(r.status, 1) << "without " << missing << ":\n" << r.output;
    EXPECT_NE(r.output.find("removed while an xlb program is still attached"), std::string::npos)
        << "without " << missing << ":\n"
        << r.output;
    EXPECT_TRUE(Exists(pins_.Pin(XLB_MAP_SERVICES))) << "without " << missing;
  }

  RunAgent();
  ASSERT_FALSE(HasFatalFailure());
  const CommandResult r = uninstall_with(caps);
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json net = BpftoolNet();
  EXPECT_TRUE(net["xdp"].empty() && net["tc"].empty()) << net.dump();
  EXPECT_TRUE(CgroupLinks().empty()) << CgroupLinks().dump();
  EXPECT_FALSE(Exists(pins_.path()));
}

}  // namespace
}  // namespace xlb::testing
