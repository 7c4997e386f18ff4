// The model's value types: addresses, EndpointSlice condition defaults, hostnames, lookups.
#include "userspace/model/model.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace {

using xlb::Endpoint;
using xlb::EndpointConditions;
using xlb::HostScope;
using xlb::IpAddress;
using xlb::IpFamily;
using xlb::Model;
using xlb::NamespacedName;
using xlb::ParseServiceHost;
using xlb::ServiceHost;

TEST(IpAddress, ParsesBothFamiliesAndPrintsThemBack) {
  const auto v4 = IpAddress::Parse("198.18.0.1");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family(), IpFamily::kIPv4);
  EXPECT_EQ(v4->ToString(), "198.18.0.1");
  const auto v6 = IpAddress::Parse("2001:db8:0:0::1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family(), IpFamily::kIPv6);
  EXPECT_EQ(v6->ToString(), "2001:db8::1");
  for (const char* bad : {"", "198.18.0", "198.18.0.256", "2001:db8::1%eth0", "10.0.0.0/8",
                          "api-service", "2001:db8::1::2"}) {
    EXPECT_FALSE(IpAddress::Parse(bad)) << bad;
  }
}

TEST(IpAddress, AbiWordsPutIpv4InWordZeroInNetworkOrder) {
  uint32_t words[4] = {1, 1, 1, 1};
  IpAddress::Parse("198.18.0.1")->ToAbiWords(words);
  EXPECT_EQ(words[0], htonl(0xc6120001));
  EXPECT_EQ(words[1], 0u);
  EXPECT_EQ(words[2], 0u);
  EXPECT_EQ(words[3], 0u);
  IpAddress::Parse("2001:db8::2")->ToAbiWords(words);
  EXPECT_EQ(words[0], htonl(0x20010db8));
  EXPECT_EQ(words[3], htonl(2));
}

TEST(EndpointConditions, FollowEndpointSliceDefaults) {
  // nil ready = ready; nil serving = ready's value; nil terminating = false.
  EndpointConditions unset;
  EXPECT_TRUE(unset.Ready());
  EXPECT_TRUE(unset.Serving());
  EXPECT_FALSE(unset.Terminating());

  EndpointConditions not_ready{false, std::nullopt, std::nullopt};
  EXPECT_FALSE(not_ready.Ready());
  EXPECT_FALSE(not_ready.Serving());

  EndpointConditions draining{false, true, true};
  EXPECT_FALSE(draining.Ready());
  EXPECT_TRUE(draining.Serving());
  EXPECT_TRUE(draining.Terminating());
}

// kube-proxy's IsReady(): ready (nil = ready) is all that counts. publishNotReadyAddresses
// makes the controller write ready: true for pods that are not serving or are terminating.
TEST(Endpoint, TakesNewFlowsWhenReadyAsKubeProxyReadsIt) {
  Endpoint e;
  EXPECT_TRUE(e.TakesNewFlows());
  e.conditions = {true, true, true};  // publishNotReadyAddresses, terminating
  EXPECT_TRUE(e.TakesNewFlows());
  e.conditions = {false, true, true};
  EXPECT_FALSE(e.TakesNewFlows());
  e.conditions = {true, false, std::nullopt};  // publishNotReadyAddresses, not ready
  EXPECT_TRUE(e.TakesNewFlows());
  e.conditions = {false, std::nullopt, std::nullopt};
  EXPECT_FALSE(e.TakesNewFlows());
}

TEST(ParseServiceHost, ResolvesIstioShortAndLongForms) {
  const NamespacedName api{"production", "api-service"};
  EXPECT_EQ(ParseServiceHost("api-service", "production"), (ServiceHost{api, HostScope::kCluster}));
  EXPECT_EQ(ParseServiceHost("api-service.production", "other"),
            (ServiceHost{api, HostScope::kCluster}));
  EXPECT_EQ(ParseServiceHost("api-service.production.svc", "other"),
            (ServiceHost{api, HostScope::kCluster}));
  EXPECT_EQ(ParseServiceHost("api-service.production.svc.cluster.local", "other"),
            (ServiceHost{api, HostScope::kCluster}));
  EXPECT_EQ(ParseServiceHost("api-service.production.svc.clusterset.local", "other"),
            (ServiceHost{api, HostScope::kClusterSet}));
  for (const char* bad : {"", "*", "*.production.svc.cluster.local", "api.example.com",
                          "api-service.production.svc.cluster", "a.b.c.d", "API.production",
                          "api-service.production.svc.elsewhere.local", "a..b"}) {
    EXPECT_FALSE(ParseServiceHost(bad, "production")) << bad;
  }
  EXPECT_FALSE(ParseServiceHost("api-service", ""));
}

TEST(Model, FindsServicesByHostname) {
  Model m;
  xlb::Service s;
  s.name = {"production", "api-service"};
  m.PutService(s);
  EXPECT_NE(m.FindServiceByHost("api-service.production.svc.cluster.local", "x"), nullptr);
  EXPECT_NE(m.FindServiceByHost("api-service.production.svc.clusterset.local", "x"), nullptr);
  EXPECT_NE(m.FindServiceByHost("api-service.production", "x"), nullptr);
  EXPECT_NE(m.FindServiceByHost("api-service", "production"), nullptr);
  EXPECT_EQ(m.FindServiceByHost("api-service", "default"), nullptr);
  EXPECT_EQ(m.FindServiceByHost("web.production", "x"), nullptr);
}

TEST(Model, KeepsOneLocalClusterAndOrdersClustersByName) {
  Model m;
  m.PutCluster({2, "cluster-b", true});
  m.PutCluster({1, "cluster-a", false});
  ASSERT_EQ(m.clusters().size(), 2u);
  EXPECT_EQ(m.clusters()[0].name, "cluster-a");
  EXPECT_EQ(m.LocalCluster()->name, "cluster-b");
  m.PutCluster({1, "cluster-a", true});
  EXPECT_EQ(m.LocalCluster()->name, "cluster-a");
  EXPECT_FALSE(m.FindCluster("cluster-b")->local);
  EXPECT_TRUE(m.SetLocalCluster("cluster-b"));
  EXPECT_EQ(m.LocalCluster()->id, 2);
  EXPECT_FALSE(m.SetLocalCluster("cluster-z"));
  EXPECT_EQ(m.FindCluster(uint16_t{1})->name, "cluster-a");
}

TEST(Model, SetEndpointsReplacesOneClustersEndpointsOnly) {
  Model m;
  const NamespacedName api{"production", "api-service"};
  Endpoint a;
  a.service = api;
  a.cluster = "cluster-a";
  a.addresses = {*IpAddress::Parse("198.18.1.1")};
  Endpoint b = a;
  b.cluster = "cluster-b";
  m.AddEndpoint(a);
  m.AddEndpoint(b);
  Endpoint a2 = a;
  a2.addresses = {*IpAddress::Parse("198.18.1.2")};
  m.SetEndpoints(api, "cluster-a", {a2});
  ASSERT_EQ(m.EndpointsOf(api).size(), 2u);
  EXPECT_EQ(m.EndpointsOf(api)[0].cluster, "cluster-b");
  EXPECT_EQ(m.EndpointsOf(api)[1].addresses[0].ToString(), "198.18.1.2");
  EXPECT_TRUE(m.EndpointsOf({"production", "web"}).empty());
}

}  // namespace
