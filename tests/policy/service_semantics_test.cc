// kube-proxy's Service semantics in the planner (weights.h): traffic policies split a service
// into internal and external plans, Local keeps this node's endpoints, a port without any
// endpoint rejects while a Local one without a local endpoint drops, the terminating fallback,
// and topology hints (PreferClose) beside the cross-cluster weights.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "fixtures.h"
#include "userspace/policy/weights.h"

namespace xlb::testing {
namespace {

constexpr const char* kThisNode = "cluster-a-node1";

// TwoClusters(2) seen from cluster-a-node1: 198.18.1.1 is on this node, 198.18.1.2 on
// cluster-a-node2, cluster-b's two remote.
Model OnNode1(int per_cluster = 2) {
  Model m = TwoClusters(per_cluster);
  m.SetLocalNode({kThisNode, {*IpAddress::Parse("198.18.0.11")}, "zone-a"});
  return m;
}

void SetPolicies(Model& m, ServiceTrafficPolicy internal, ServiceTrafficPolicy external) {
  Service s = *m.FindService(kApi);
  s.internal_policy = internal;
  s.external_policy = external;
  s.load_balancer_ips = {*IpAddress::Parse("198.19.0.10")};
  m.PutService(s);
}

const ServiceBackends& Scoped(const std::vector<ServiceBackends>& plans, FrontendScope scope) {
  for (const ServiceBackends& p : plans) {
    if (p.service == kApi && p.scope == scope) {
      return p;
    }
  }
  ADD_FAILURE() << "no " << ToString(scope) << " plan";
  static const ServiceBackends kNone;
  return kNone;
}

// Keys of the backends that take new flows.
std::vector<std::string> Taking(const ServiceBackends& plan) {
  std::vector<std::string> out;
  for (const WeightedBackend& b : plan.backends) {
    if (b.weight > 0) {
      out.push_back(b.key);
    }
  }
  return out;
}

using Keys = std::vector<std::string>;
const ServiceTrafficPolicy kCluster = ServiceTrafficPolicy::kCluster;
const ServiceTrafficPolicy kLocal = ServiceTrafficPolicy::kLocal;

TEST(TrafficPolicy, TwoClusterPoliciesMakeOnePlanForEveryFrontend) {
  Model m = OnNode1();
  SetPolicies(m, kCluster, kCluster);
  const auto plans = PlanText(IssueVirtualService(), m);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].scope, FrontendScope::kAll);
  EXPECT_FALSE(plans[0].node_local);
  EXPECT_EQ(Taking(plans[0]).size(), 4u);
}

// externalTrafficPolicy Local on a ClusterSet service under the 70/30 VirtualService: external
// traffic stays on this node (the weights have one cluster left: this node's), in-cluster
// traffic keeps the weights.
TEST(TrafficPolicy, ExternalLocalKeepsExternalTrafficOnThisNodeAndTheWeightsForTheRest) {
  Model m = OnNode1();
  SetPolicies(m, kCluster, kLocal);
  const auto plans = PlanText(IssueVirtualService(), m);
  ASSERT_EQ(plans.size(), 2u);
  const ServiceBackends& internal = Scoped(plans, FrontendScope::kInternal);
  const ServiceBackends& external = Scoped(plans, FrontendScope::kExternal);
  EXPECT_FALSE(internal.node_local);
  EXPECT_TRUE(external.node_local);
  EXPECT_EQ(Taking(external), Keys{"cluster-a/198.18.1.1:8080"});
  EXPECT_EQ(external.backends.size(), 1u);  // the other node's endpoint is not even listed
  const auto shares = Shares(internal);
  EXPECT_NEAR(shares.at("cluster-a"), 0.7, 1e-9);  // the clusterset destination is the rest
  EXPECT_NEAR(shares.at("cluster-b"), 0.3, 1e-9);
}

TEST(TrafficPolicy, InternalLocalKeepsInClusterTrafficOnThisNode) {
  Model m = OnNode1();
  SetPolicies(m, kLocal, kCluster);
  const auto plans = PlanText(IssueVirtualService(), m);
  EXPECT_EQ(Taking(Scoped(plans, FrontendScope::kInternal)), Keys{"cluster-a/198.18.1.1:8080"});
  EXPECT_EQ(Taking(Scoped(plans, FrontendScope::kExternal)).size(), 4u);
}

TEST(TrafficPolicy, BothLocalMakeOneLocalPlan) {
  Model m = OnNode1();
  SetPolicies(m, kLocal, kLocal);
  const auto plans = PlanText(IssueVirtualService(), m);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].scope, FrontendScope::kAll);
  EXPECT_TRUE(plans[0].node_local);
  EXPECT_EQ(Taking(plans[0]), Keys{"cluster-a/198.18.1.1:8080"});
}

// kube-proxy: "has no local endpoints" drops, "has no endpoints" rejects.
TEST(TrafficPolicy, LocalWithoutALocalEndpointDropsWithoutAnyEndpointRejects) {
  Model m = OnNode1();
  m.SetLocalNode({"cluster-a-node9", {*IpAddress::Parse("198.18.0.19")}, ""});
  SetPolicies(m, kCluster, kLocal);
  auto plans = PlanBackends(m, Routes{});
  const ServiceBackends& external = Scoped(plans, FrontendScope::kExternal);
  EXPECT_EQ(external.TotalWeight(), 0u);
  EXPECT_FALSE(external.rejects);
  EXPECT_FALSE(Scoped(plans, FrontendScope::kInternal).rejects);

  m.SetEndpoints(kApi, "cluster-a", {});
  m.SetEndpoints(kApi, "cluster-b", {});
  plans = PlanBackends(m, Routes{});
  EXPECT_TRUE(Scoped(plans, FrontendScope::kExternal).rejects);
  EXPECT_TRUE(Scoped(plans, FrontendScope::kInternal).rejects);
}

// The fallback runs on what the Local policy left: this node's serving terminating endpoint
// takes new flows, though ready endpoints exist on other nodes.
TEST(TrafficPolicy, LocalFallsBackToThisNodesServingTerminatingEndpoint) {
  Model m = OnNode1(0);
  AddEndpoints(m, kApi, "cluster-a", 1, 1, {false, true, true});  // node1: serving, terminating
  AddEndpoints(m, kApi, "cluster-a", 1, 1, {}, 2);                // node2: ready
  SetPolicies(m, kCluster, kLocal);
  const auto plans = PlanBackends(m, Routes{});
  const ServiceBackends& external = Scoped(plans, FrontendScope::kExternal);
  EXPECT_TRUE(external.serving_terminating);
  EXPECT_EQ(Taking(external), Keys{"cluster-a/198.18.1.1:8080"});
  const ServiceBackends& internal = Scoped(plans, FrontendScope::kInternal);
  EXPECT_FALSE(internal.serving_terminating);
  EXPECT_EQ(Taking(internal), Keys{"cluster-a/198.18.1.2:8080"});
}

// ---- topology ----------------------------------------------------------------------------

// cluster-a: 198.18.1.1 (zone-a), .2 (zone-b), .3 (zone-a); cluster-b: two endpoints, hinted
// for zone-a too (their own zones' names may collide; they are not read).
Model Zoned(TopologyRouting topology) {
  Model m = OnNode1(0);
  AddEndpoints(m, kApi, "cluster-a", 1, 3);
  AddEndpoints(m, kApi, "cluster-b", 2, 2);
  std::vector<Endpoint> a(m.EndpointsOf(kApi).begin(), m.EndpointsOf(kApi).begin() + 3);
  std::vector<Endpoint> b(m.EndpointsOf(kApi).begin() + 3, m.EndpointsOf(kApi).end());
  const char* zones[] = {"zone-a", "zone-b", "zone-a"};
  for (size_t i = 0; i < a.size(); ++i) {
    a[i].zone = zones[i];
    a[i].zone_hints = {zones[i]};
  }
  for (Endpoint& e : b) {
    e.zone_hints = {"zone-b"};
  }
  m.SetEndpoints(kApi, "cluster-a", a);
  m.SetEndpoints(kApi, "cluster-b", b);
  Service s = *m.FindService(kApi);
  s.topology = topology;
  m.PutService(s);
  return m;
}

TEST(Topology, PreferCloseSendsTheLocalClustersShareToThisZone) {
  const Model m = Zoned(TopologyRouting::kPreferClose);
  const auto plans = PlanText(IssueVirtualService(), m);
  const ServiceBackends& plan = PlanOf(plans, kApi, 8080);
  EXPECT_TRUE(plan.zone_filtered);
  EXPECT_EQ(Taking(plan), (Keys{"cluster-a/198.18.1.1:8080", "cluster-a/198.18.1.3:8080",
                                "cluster-b/198.18.2.1:8080", "cluster-b/198.18.2.2:8080"}));
  // The other zone's endpoint stays listed, weight 0: its flows go on.
  const auto other = std::find_if(plan.backends.begin(), plan.backends.end(),
                                  [](const auto& b) { return b.key == "cluster-a/198.18.1.2:8080"; });
  ASSERT_NE(other, plan.backends.end());
  EXPECT_TRUE(other->other_zone);
  EXPECT_EQ(other->weight, 0u);
  // The weights still split 70/30 between the clusters: the 70 over this zone's two.
  const auto shares = Shares(plan);
  EXPECT_NEAR(shares.at("cluster-a"), 0.7, 1e-9);
  EXPECT_NEAR(shares.at("cluster-b"), 0.3, 1e-9);
  EXPECT_EQ(plan.backends[0].weight, plan.backends[2].weight);
}

TEST(Topology, KubeProxysConditionsTurnItOff) {
  // Without PreferClose.
  EXPECT_FALSE(PlanOf(PlanText(IssueVirtualService(), Zoned(TopologyRouting::kNone)), kApi, 8080)
                   .zone_filtered);
  {  // A ready endpoint of the local cluster without hints.
    Model m = Zoned(TopologyRouting::kPreferClose);
    std::vector<Endpoint> a(m.EndpointsOf(kApi).begin(), m.EndpointsOf(kApi).begin() + 3);
    a[1].zone_hints.clear();
    m.SetEndpoints(kApi, "cluster-a", a);
    EXPECT_FALSE(PlanOf(PlanBackends(m, Routes{}), kApi, 8080).zone_filtered);
  }
  {  // No endpoint hinted for this node's zone.
    Model m = Zoned(TopologyRouting::kPreferClose);
    m.SetLocalNode({kThisNode, {*IpAddress::Parse("198.18.0.11")}, "zone-c"});
    EXPECT_FALSE(PlanOf(PlanBackends(m, Routes{}), kApi, 8080).zone_filtered);
  }
  {  // This node has no zone label.
    Model m = Zoned(TopologyRouting::kPreferClose);
    m.SetLocalNode({kThisNode, {*IpAddress::Parse("198.18.0.11")}, ""});
    EXPECT_FALSE(PlanOf(PlanBackends(m, Routes{}), kApi, 8080).zone_filtered);
  }
  {  // A Local policy: this node is closer than any zone.
    Model m = Zoned(TopologyRouting::kPreferClose);
    SetPolicies(m, kLocal, kLocal);
    const auto plans = PlanBackends(m, Routes{});
    EXPECT_FALSE(plans[0].zone_filtered);
    EXPECT_EQ(Taking(plans[0]), Keys{"cluster-a/198.18.1.1:8080"});
  }
}

}  // namespace
}  // namespace xlb::testing
