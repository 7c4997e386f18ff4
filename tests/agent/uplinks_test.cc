// `--uplink auto` over hand-made network views (no root): which interfaces the rule picks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "userspace/agent/rtnetlink.h"

namespace xlb::agent_test {
namespace {

IpAddress Ip(const char* text) {
  return *IpAddress::Parse(text);
}

// A node as a routed CNI leaves it: lo, two NICs, two pod veths that hold the pod CIDR's
// gateway address and a direct route to their pod each.
NetworkView Node() {
  NetworkView v;
  v.interfaces = {{1, "lo", true, {Ip("127.0.0.1"), Ip("::1")}},
                  {2, "eth0", false, {Ip("198.18.1.2"), Ip("2001:db8:1::2")}},
                  {3, "eth1", false, {Ip("198.18.4.2")}},
                  {4, "veth-pod1", false, {Ip("198.18.10.1")}},
                  {5, "veth-pod2", false, {Ip("198.18.10.1")}}};
  v.routes = {{IpFamily::kIPv4, 24, false, {2}},  // connected transit
              {IpFamily::kIPv4, 24, false, {3}},  // connected second NIC
              {IpFamily::kIPv4, 32, false, {4}},  // pod 1
              {IpFamily::kIPv4, 32, false, {5}},  // pod 2
              {IpFamily::kIPv4, 8, false, {1}}};  // lo's
  return v;
}

const std::vector<std::string> kPods = {"veth-*"};

TEST(ChooseUplinks, DefaultRoutesOfBothFamiliesAndEveryNexthop) {
  NetworkView v = Node();
  v.routes.push_back({IpFamily::kIPv4, 0, true, {2}});
  v.routes.push_back({IpFamily::kIPv6, 0, true, {2, 3}});  // multipath over both NICs
  UplinkChoice c = ChooseUplinks(v, {}, kPods);
  EXPECT_EQ(c.names, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.reason, "default routes");
}

TEST(ChooseUplinks, OnlyTheDefaultRoutesInterfacesWhenThereAreAnyEvenWithOtherGatewayRoutes) {
  NetworkView v = Node();
  v.routes.push_back({IpFamily::kIPv6, 0, true, {3}});
  v.routes.push_back({IpFamily::kIPv4, 15, true, {2}});
  EXPECT_EQ(ChooseUplinks(v, {}, kPods).names, std::vector<std::string>{"eth1"});
}

TEST(ChooseUplinks, WithoutADefaultRouteTheInterfacesOfRoutesThroughAGateway) {
  NetworkView v = Node();
  v.routes.push_back({IpFamily::kIPv4, 15, true, {2}});  // 198.18.0.0/15 via the router
  UplinkChoice c = ChooseUplinks(v, {}, kPods);
  EXPECT_EQ(c.names, std::vector<std::string>{"eth0"});
  EXPECT_EQ(c.reason, "no default route; routes through a gateway");
}

TEST(ChooseUplinks, InterfacesHoldingANodeAddressAreUplinksToo) {
  NetworkView v = Node();
  v.routes.push_back({IpFamily::kIPv4, 15, true, {2}});
  UplinkChoice c = ChooseUplinks(v, {Ip("2001:db8:1::2"), Ip("198.18.4.2")}, kPods);
  EXPECT_EQ(c.names, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.reason, "no default route; routes through a gateway, and node addresses");
}

TEST(ChooseUplinks, NeverLoopbackOrAPodInterface) {
  NetworkView v = Node();
  // A default route through lo and a gateway route over a pod veth (neither is an uplink), and
  // the node address 127.0.0.1 and the pods' gateway address.
  v.routes.push_back({IpFamily::kIPv4, 0, true, {1, 4}});
  v.routes.push_back({IpFamily::kIPv4, 16, true, {5}});
  EXPECT_TRUE(ChooseUplinks(v, {Ip("127.0.0.1"), Ip("198.18.10.1")}, kPods).names.empty());
  // Without the pod glob, the veths are interfaces like any other.
  EXPECT_EQ(ChooseUplinks(v, {}, {}).names, std::vector<std::string>{"veth-pod1"});
}

TEST(ChooseUplinks, NothingWhenNoRouteLeavesTheNode) {
  EXPECT_TRUE(ChooseUplinks(Node(), {}, kPods).names.empty());
}

}  // namespace
}  // namespace xlb::agent_test
