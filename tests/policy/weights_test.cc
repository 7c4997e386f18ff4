// From model + policies to weighted backends, and on to Maglev tables: issue 4's
// VirtualService, its API versions, tcp port matches, subsets, Istio's weight rules,
// spill-over in both modes, terminating endpoints, defaults and integer scaling.
#include "userspace/policy/weights.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "fixtures.h"
#include "maps/xlb_abi.h"
#include "userspace/planner/maglev.h"

namespace xlb::testing {
namespace {

// Slot share of each backend key in a table built from `plan`.
std::map<std::string, double> TableShares(const ServiceBackends& plan) {
  std::map<std::string, uint32_t> ids;
  std::map<uint32_t, std::string> keys;
  const auto backends = ToMaglevBackends(plan, [&](const WeightedBackend& b) {
    const uint32_t id = static_cast<uint32_t>(ids.size()) + 1;
    ids[b.key] = id;
    keys[id] = b.key;
    return id;
  });
  const std::vector<uint32_t> table = *BuildMaglevTable(backends, XLB_MAGLEV_DEFAULT_SIZE);
  std::map<std::string, double> out;
  for (const uint32_t id : table) {
    out[keys.at(id)] += 1.0 / static_cast<double>(table.size());
  }
  return out;
}

TEST(IssueVirtualService, GivesSeventyPercentLocalThirtyRemote) {
  const Model model = TwoClusters();
  const auto plans = PlanText(IssueVirtualService("networking.istio.io/v1"), model);
  const ServiceBackends& plan = PlanOf(plans, kApi, 8080);
  EXPECT_EQ(plan.policy, "VirtualService api-service (policy.yaml, document 1) http[0]");
  EXPECT_EQ(Weights(plan), (std::map<std::string, uint32_t>{{"cluster-a/198.18.1.1:8080", 7},
                                                            {"cluster-a/198.18.1.2:8080", 7},
                                                            {"cluster-b/198.18.2.1:8080", 3},
                                                            {"cluster-b/198.18.2.2:8080", 3}}));
  const auto shares = Shares(plan);
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.7);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.3);
}

TEST(IssueVirtualService, MaglevTableSharesAre35351515) {
  const auto plans = PlanText(IssueVirtualService("networking.istio.io/v1"), TwoClusters());
  const auto table = TableShares(PlanOf(plans, kApi, 8080));
  ASSERT_EQ(table.size(), 4u);
  EXPECT_NEAR(table.at("cluster-a/198.18.1.1:8080"), 0.35, 0.001);
  EXPECT_NEAR(table.at("cluster-a/198.18.1.2:8080"), 0.35, 0.001);
  EXPECT_NEAR(table.at("cluster-b/198.18.2.1:8080"), 0.15, 0.001);
  EXPECT_NEAR(table.at("cluster-b/198.18.2.2:8080"), 0.15, 0.001);
}

TEST(IssueVirtualService, MeansTheLocalClusterOfEachNode) {
  // The same policy on a node of cluster-b: 70 % to cluster-b.
  Model model = TwoClusters();
  ASSERT_TRUE(model.SetLocalCluster("cluster-b"));
  const auto shares =
      Shares(PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), model), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.3);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.7);
}

TEST(IssueVirtualService, SpreadsTheRemoteShareOverEveryOtherClustersEndpoints) {
  // 30 % over the 1 + 3 endpoints of cluster-b and cluster-c: 7.5 % each.
  const Model model = ThreeClusters(2, 1, 3);
  const auto plan =
      PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), model), kApi, 8080);
  const auto shares = Shares(plan);
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.7);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.075);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.225);
}

class IstioVersions : public ::testing::TestWithParam<const char*> {};

TEST_P(IstioVersions, MeanTheSame) {
  const auto v1 =
      PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), TwoClusters()), kApi, 8080);
  const auto other = PlanOf(PlanText(IssueVirtualService(GetParam()), TwoClusters()), kApi, 8080);
  EXPECT_EQ(Weights(other), Weights(v1));
}

INSTANTIATE_TEST_SUITE_P(
    VirtualService, IstioVersions,
    ::testing::Values("networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"),
    [](const auto& info) {
      return std::string(info.param).substr(sizeof("networking.istio.io/") - 1);
    });

TEST(VirtualService, TcpRouteAppliesToTheMatchedPortOnly) {
  Model model = TwoClusters();
  Service api = ApiService();
  api.ports.push_back(ServicePort{"tcp-admin", 9090, Protocol::kTcp, 9090, "", 0, ""});
  model.PutService(api);
  AddEndpoints(model, kApi, "cluster-a", 1, 2, {}, 1, "tcp-admin", 9090);
  AddEndpoints(model, kApi, "cluster-b", 2, 2, {}, 1, "tcp-admin", 9090);
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-admin, namespace: production}
spec:
  hosts: [api-service]
  tcp:
  - match:
    - port: 9090
    route:
    - destination:
        host: api-service.production.svc.clusterset.local
        subset: cluster-b
)" + std::string(R"(---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api, namespace: production}
spec:
  host: api-service
  subsets:
  - name: cluster-b
    labels: {topology.istio.io/cluster: cluster-b}
)"),
                              model);
  // 9090: everything to cluster-b, on the endpoints' 9090 port.
  const ServiceBackends& admin = PlanOf(plans, kApi, 9090);
  EXPECT_EQ(admin.policy, "VirtualService production/api-admin (policy.yaml, document 1) tcp[0]");
  EXPECT_EQ(Weights(admin), (std::map<std::string, uint32_t>{{"cluster-b/198.18.2.1:9090", 1},
                                                             {"cluster-b/198.18.2.2:9090", 1}}));
  // 8080 matches no rule: the default, every endpoint alike.
  const ServiceBackends& http = PlanOf(plans, kApi, 8080);
  EXPECT_EQ(http.policy, "default");
  const auto shares = Shares(http);
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.5);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.5);
}

TEST(VirtualService, HttpOrTcpRuleByIstioProtocolSelection) {
  // Both kinds match port 8080 ("http"): the http rule wins; on "tcp-db" the tcp rule would.
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service}
  tcp:
  - route:
    - destination: {host: api-service.production.svc.clusterset.local}
)",
                              TwoClusters());
  const auto shares = Shares(PlanOf(plans, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 1.0);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.0);
}

TEST(VirtualService, SubsetsResolveThroughDestinationRuleToClusters) {
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-service, namespace: production}
spec:
  host: api-service.production.svc.clusterset.local
  subsets:
  - name: east
    labels:
      topology.istio.io/cluster: cluster-a
  - name: west
    labels:
      topology.istio.io/cluster: cluster-b
  - name: south
    labels:
      topology.istio.io/cluster: cluster-c
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-service, namespace: production}
spec:
  hosts: [api-service.production.svc.clusterset.local]
  http:
  - route:
    - destination: {host: api-service, subset: east}
      weight: 50
    - destination: {host: api-service, subset: west}
      weight: 30
    - destination: {host: api-service, subset: south}
      weight: 20
)",
                              ThreeClusters(2, 3, 4));
  const auto shares = Shares(PlanOf(plans, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.5);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.3);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.2);
}

TEST(VirtualService, ClusterSetAfterASubsetMeansTheClustersNotNamed) {
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-service, namespace: production}
spec:
  host: api-service
  subsets:
  - {name: b, labels: {topology.istio.io/cluster: cluster-b}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-service, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service, subset: b}
      weight: 60
    - destination: {host: api-service.production.svc.clusterset.local}
      weight: 40
)",
                              ThreeClusters(2, 2, 2));
  const auto shares = Shares(PlanOf(plans, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.2);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.6);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.2);
}

TEST(VirtualService, SingleDestinationWithoutWeightTakesEverything) {
  const auto local = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service}
)",
                              TwoClusters());
  auto shares = Shares(PlanOf(local, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 1.0);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.0);

  const auto clusterset = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service.production.svc.clusterset.local}
)",
                                   ThreeClusters(1, 2, 1));
  shares = Shares(PlanOf(clusterset, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.25);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.5);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.25);
}

TEST(VirtualService, WeightZeroGetsNothing) {
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service.production.svc.cluster.local}
      weight: 0
    - destination: {host: api-service.production.svc.clusterset.local}
      weight: 100
)",
                              TwoClusters());
  const ServiceBackends& plan = PlanOf(plans, kApi, 8080);
  EXPECT_EQ(Weights(plan), (std::map<std::string, uint32_t>{{"cluster-a/198.18.1.1:8080", 0},
                                                            {"cluster-a/198.18.1.2:8080", 0},
                                                            {"cluster-b/198.18.2.1:8080", 1},
                                                            {"cluster-b/198.18.2.2:8080", 1}}));
  const auto table = TableShares(plan);
  EXPECT_EQ(table.count("cluster-a/198.18.1.1:8080"), 0u);
  EXPECT_NEAR(table.at("cluster-b/198.18.2.1:8080"), 0.5, 0.001);
}

TEST(VirtualService, UnsetWeightBesideOthersIsZero) {
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service.production.svc.cluster.local}
    - destination: {host: api-service.production.svc.clusterset.local}
      weight: 5
)",
                              TwoClusters());
  const auto shares = Shares(PlanOf(plans, kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.0);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 1.0);
}

// cluster-a (weight 50) has endpoints, none of them ready; b 30, c 20.
Model ClusterADown() {
  Model model = ThreeClusters(0, 2, 2);
  AddEndpoints(model, kApi, "cluster-a", 1, 2, {false, std::nullopt, std::nullopt});
  return model;
}

std::string TrafficPolicy(const std::string& spillover) {
  return R"(
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights: {cluster-a: 50, cluster-b: 30, cluster-c: 20}
  failover: [cluster-a, cluster-b, cluster-c]
  spillover: )" +
         spillover + "\n";
}

TEST(Spillover, ProportionalSpreadsAnEmptyClustersShareByWeight) {
  const ServiceBackends plan =
      PlanOf(PlanText(TrafficPolicy("proportional"), ClusterADown()), kApi, 8080);
  const auto shares = Shares(plan);
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.0);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.6);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.4);
  EXPECT_EQ(plan.spillover, Spillover::kProportional);
  // Not-ready endpoints are no backends at all.
  EXPECT_EQ(plan.backends.size(), 4u);
}

TEST(Spillover, OrderedGivesAnEmptyClustersShareToTheNextInOrder) {
  const auto shares =
      Shares(PlanOf(PlanText(TrafficPolicy("ordered"), ClusterADown()), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.0);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.8);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.2);
}

TEST(Spillover, OrderedIsCyclicAndSkipsEmptyClusters) {
  // cluster-c (last) and cluster-a (first) down: c's share wraps round past a to b.
  Model model = ThreeClusters(0, 2, 0);
  AddEndpoints(model, kApi, "cluster-a", 1, 1, {false, std::nullopt, std::nullopt});
  const auto shares = Shares(PlanOf(PlanText(TrafficPolicy("ordered"), model), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 1.0);
}

TEST(Spillover, DefaultIsProportional) {
  std::string text = TrafficPolicy("x");
  text.erase(text.find("  spillover: x\n"));
  const auto shares = Shares(PlanOf(PlanText(text, ClusterADown()), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.6);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.4);
}

TEST(Spillover, VirtualServiceOrderedByAnnotationFollowsRouteOrder) {
  const std::string policy = R"(
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: production}
spec:
  host: api-service
  subsets:
  - {name: a, labels: {topology.istio.io/cluster: cluster-a}}
  - {name: b, labels: {topology.istio.io/cluster: cluster-b}}
  - {name: c, labels: {topology.istio.io/cluster: cluster-c}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api
  namespace: production
  annotations:
    xlb.dev/spillover: ordered
spec:
  hosts: [api-service]
  http:
  - route:
    - {destination: {host: api-service, subset: a}, weight: 50}
    - {destination: {host: api-service, subset: b}, weight: 30}
    - {destination: {host: api-service, subset: c}, weight: 20}
)";
  const auto shares = Shares(PlanOf(PlanText(policy, ClusterADown()), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.8);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.2);
}

TEST(Spillover, IssueVirtualServiceSendsEverythingRemoteWhenLocalIsEmpty) {
  Model model = TwoClusters();
  model.SetEndpoints(kApi, "cluster-a", {});
  const auto shares =
      Shares(PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), model), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 1.0);
}

TEST(Spillover, WeightZeroClusterInFailoverIsAStandby) {
  const std::string standby = R"(
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service.production
  weights: {cluster-a: 100}
  failover: [cluster-a, cluster-c, cluster-b]
)";
  auto shares = Shares(PlanOf(PlanText(standby, ThreeClusters(2, 2, 2)), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 1.0);
  shares = Shares(PlanOf(PlanText(standby, ClusterADown()), kApi, 8080));
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 1.0);  // first in failover order, not by name
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.0);
}

TEST(Spillover, NothingReadyAnywhereLeavesEveryWeightZero) {
  Model model = ThreeClusters(0, 0, 0);
  // Terminating and no longer serving: draining, so not even the fallback takes it.
  AddEndpoints(model, kApi, "cluster-b", 2, 1, {false, false, true});
  const ServiceBackends plan = PlanOf(PlanText(TrafficPolicy("ordered"), model), kApi, 8080);
  ASSERT_EQ(plan.backends.size(), 1u);
  EXPECT_EQ(plan.TotalWeight(), 0u);
  EXPECT_FALSE(plan.serving_terminating);
  EXPECT_TRUE(plan.rejects);
  EXPECT_EQ(*BuildMaglevTable(ToMaglevBackends(plan, [](const auto&) { return 1u; }), 7),
            std::vector<uint32_t>(7, XLB_ID_NONE));
}

// kube-proxy's fallback: with no ready endpoint, the serving terminating ones take new flows
// (a rolling update of the last pods refuses nothing), through the same weights.
TEST(Spillover, NothingReadyFallsBackToServingTerminating) {
  Model model = ThreeClusters(0, 0, 0);
  AddEndpoints(model, kApi, "cluster-b", 2, 1, {false, true, true});      // serving, terminating
  AddEndpoints(model, kApi, "cluster-c", 3, 1, {false, false, true}, 5);  // draining only
  const ServiceBackends plan = PlanOf(PlanText(TrafficPolicy("ordered"), model), kApi, 8080);
  ASSERT_EQ(plan.backends.size(), 2u);
  EXPECT_TRUE(plan.serving_terminating);
  EXPECT_FALSE(plan.rejects);
  EXPECT_GT(plan.backends[0].weight, 0u);  // cluster-b's
  EXPECT_FALSE(plan.backends[0].terminating);
  EXPECT_EQ(plan.backends[1].weight, 0u);  // cluster-c's: keeps its flows only
  EXPECT_TRUE(plan.backends[1].terminating);
  // One ready endpoint anywhere ends the fallback.
  AddEndpoints(model, kApi, "cluster-a", 1, 1, {}, 9);
  const ServiceBackends ready = PlanOf(PlanText(TrafficPolicy("ordered"), model), kApi, 8080);
  EXPECT_FALSE(ready.serving_terminating);
  for (const WeightedBackend& b : ready.backends) {
    EXPECT_EQ(b.weight > 0, b.cluster == "cluster-a") << b.key;
  }
}

TEST(Endpoints, TerminatingGetWeightZeroAndStayListedNotReadyAreLeftOut) {
  Model model = TwoClusters(2);
  AddEndpoints(model, kApi, "cluster-a", 1, 1, {false, true, true}, 3);  // draining
  // publishNotReadyAddresses: ready though terminating, ready though not serving
  AddEndpoints(model, kApi, "cluster-a", 1, 1, {true, true, true}, 4);
  AddEndpoints(model, kApi, "cluster-a", 1, 1, {false, std::nullopt, std::nullopt},
               5);  // not ready
  AddEndpoints(model, kApi, "cluster-b", 2, 1, {true, false, std::nullopt}, 3);
  const ServiceBackends plan =
      PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), model), kApi, 8080);
  EXPECT_EQ(Weights(plan), (std::map<std::string, uint32_t>{{"cluster-a/198.18.1.1:8080", 7},
                                                            {"cluster-a/198.18.1.2:8080", 7},
                                                            {"cluster-a/198.18.1.3:8080", 0},
                                                            {"cluster-a/198.18.1.4:8080", 7},
                                                            {"cluster-b/198.18.2.1:8080", 3},
                                                            {"cluster-b/198.18.2.2:8080", 3},
                                                            {"cluster-b/198.18.2.3:8080", 3}}));
  for (const WeightedBackend& b : plan.backends) {
    EXPECT_EQ(b.terminating, b.weight == 0) << b.key;
  }
  EXPECT_EQ(plan.clusters[0].ready, 3u);
}

TEST(Defaults, WithoutPolicyEveryReadyEndpointWeighsTheSame) {
  const Model model = ThreeClusters(1, 2, 3);
  ConfigErrors problems;
  const auto plans = PlanBackends(model, ResolveRoutes({}, model, {}, problems));
  ASSERT_TRUE(problems.empty());
  const ServiceBackends& plan = PlanOf(plans, kApi, 8080);
  EXPECT_EQ(plan.policy, "default");
  for (const WeightedBackend& b : plan.backends) {
    EXPECT_EQ(b.weight, 1u) << b.key;
  }
  const auto shares = Shares(plan);
  EXPECT_DOUBLE_EQ(shares.at("cluster-c"), 0.5);
}

TEST(Scaling, KeepsRatiosWhenExactIntegersDoNotFit32Bits) {
  // Near-2^31 weights over 2 and 3 endpoints: the exact common denominator overflows 32 bits.
  const auto plans = PlanText(R"(
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights: {cluster-a: 2147483647, cluster-b: 2147483629}
)",
                              [] {
                                Model m = TwoClusters(0);
                                AddEndpoints(m, kApi, "cluster-a", 1, 2);
                                AddEndpoints(m, kApi, "cluster-b", 2, 3);
                                return m;
                              }());
  const ServiceBackends& plan = PlanOf(plans, kApi, 8080);
  const double a = 2147483647.0 / 2;
  const double b = 2147483629.0 / 3;
  const auto w = Weights(plan);
  EXPECT_NEAR(
      static_cast<double>(w.at("cluster-b/198.18.2.1:8080")) / w.at("cluster-a/198.18.1.1:8080"),
      b / a, b / a * 1e-6);
  const auto shares = Shares(plan);
  EXPECT_NEAR(shares.at("cluster-a"), 2147483647.0 / (2147483647.0 + 2147483629.0), 1e-6);
}

TEST(Scaling, ReducesExactWeightsToLowestTerms) {
  // 3 : 1 over 3 and 2 endpoints: 1/3 : 1/2 per endpoint of 75 : 25 -> 25 : 12.5 -> 2 : 1.
  const auto plans = PlanText(R"(
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights: {cluster-a: 75, cluster-b: 25}
)",
                              [] {
                                Model m = TwoClusters(0);
                                AddEndpoints(m, kApi, "cluster-a", 1, 3);
                                AddEndpoints(m, kApi, "cluster-b", 2, 2);
                                return m;
                              }());
  const auto w = Weights(PlanOf(plans, kApi, 8080));
  EXPECT_EQ(w.at("cluster-a/198.18.1.1:8080"), 2u);
  EXPECT_EQ(w.at("cluster-b/198.18.2.1:8080"), 1u);
}

TEST(Backends, DualStackServiceGetsOneListPerFamily) {
  Model model;
  model.PutCluster({1, "cluster-a", true});
  Service s = ApiService();
  s.cluster_ips.push_back(*IpAddress::Parse("2001:db8:100::10"));
  model.PutService(s);
  Endpoint e;
  e.service = kApi;
  e.cluster = "cluster-a";
  e.addresses = {*IpAddress::Parse("198.18.1.1"), *IpAddress::Parse("2001:db8:1::1")};
  e.ports = {{"http", 8080, Protocol::kTcp}};
  model.AddEndpoint(e);
  ConfigErrors problems;
  const auto plans = PlanBackends(model, ResolveRoutes({}, model, {}, problems));
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[0].family, IpFamily::kIPv4);
  EXPECT_EQ(plans[0].backends.at(0).key, "cluster-a/198.18.1.1:8080");
  EXPECT_EQ(plans[1].family, IpFamily::kIPv6);
  EXPECT_EQ(plans[1].backends.at(0).key, "cluster-a/[2001:db8:1::1]:8080");
}

TEST(Backends, CarryWhatXlbBackendNeeds) {
  const ServiceBackends plan =
      PlanOf(PlanText(IssueVirtualService("networking.istio.io/v1"), TwoClusters()), kApi, 8080);
  const WeightedBackend& local = plan.backends.at(0);
  const WeightedBackend& remote = plan.backends.at(2);
  ASSERT_EQ(remote.key, "cluster-b/198.18.2.1:8080");
  EXPECT_FALSE(local.Tunnelled());
  EXPECT_TRUE(remote.Tunnelled());
  EXPECT_EQ(remote.node_name, "cluster-b-node1");

  const xlb_backend l = ToAbiBackend(local);
  EXPECT_EQ(l.addr[0], htonl(0xc6120101));  // 198.18.1.1
  EXPECT_EQ(l.port, htons(8080));
  EXPECT_EQ(l.family, XLB_FAMILY_IPV4);
  EXPECT_EQ(l.cluster_id, 1);
  EXPECT_EQ(l.flags, XLB_BE_F_VALID);
  EXPECT_EQ(l.tunnel[0], 0u);
  EXPECT_EQ(l.tunnel_family, 0);

  const xlb_backend r = ToAbiBackend(remote);
  EXPECT_EQ(r.cluster_id, 2);
  EXPECT_EQ(r.flags, XLB_BE_F_VALID | XLB_BE_F_TUNNEL);
  EXPECT_EQ(r.tunnel[0], htonl(0xc6120015));  // 198.18.0.21
  EXPECT_EQ(r.tunnel_family, XLB_FAMILY_IPV4);
}

TEST(Backends, DestinationMayBeAnotherService) {
  Model model = TwoClusters();
  Service canary = ApiService();
  canary.name = {"production", "api-canary"};
  model.PutService(canary);
  AddEndpoints(model, canary.name, "cluster-a", 1, 1, {}, 9);
  const auto plans = PlanText(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - {destination: {host: api-service}, weight: 90}
    - {destination: {host: api-canary}, weight: 10}
)",
                              model);
  const auto w = Weights(PlanOf(plans, kApi, 8080));
  EXPECT_EQ(w, (std::map<std::string, uint32_t>{{"cluster-a/198.18.1.1:8080", 9},
                                                {"cluster-a/198.18.1.2:8080", 9},
                                                {"cluster-a/198.18.1.9:8080", 2}}));
}

// Which path reaches an endpoint depends on the node that plans it (README "Forwarding modes").
TEST(Backends, PathDependsOnTheEndpointsNode) {
  const Cluster local{1, "cluster-a", true};
  const Cluster remote{2, "cluster-b", false};
  const LocalNode a1{"node-a1", {}};
  auto endpoint = [](std::string node, std::optional<std::string> node_address,
                     bool runs_xlb = true) {
    Endpoint e;
    e.node_name = std::move(node);
    if (node_address) {
      e.node_address = *IpAddress::Parse(*node_address);
    }
    e.node_runs_xlb = runs_xlb;
    return e;
  };
  // The local cluster, seen from node-a1.
  EXPECT_EQ(PathOf(endpoint("node-a1", "198.18.1.2"), local, a1), BackendPath::kLocal);
  EXPECT_EQ(PathOf(endpoint("node-a2", "198.18.4.2"), local, a1), BackendPath::kTunnel);
  EXPECT_EQ(PathOf(endpoint("node-a3", "198.18.6.2", false), local, a1), BackendPath::kSnat);
  EXPECT_EQ(PathOf(endpoint("node-a2", std::nullopt), local, a1), BackendPath::kSnat);
  EXPECT_EQ(PathOf(endpoint("", std::nullopt), local, a1), BackendPath::kSnat);  // host address
  // A node that does not know its name (a one-node config) takes every local endpoint as its own.
  EXPECT_EQ(PathOf(endpoint("node-a2", "198.18.4.2"), local, LocalNode{}), BackendPath::kLocal);
  EXPECT_EQ(PathOf(endpoint("", std::nullopt), local, LocalNode{}), BackendPath::kLocal);
  // A remote cluster: by its node, whatever this node's name.
  EXPECT_EQ(PathOf(endpoint("node-b1", "198.18.2.2"), remote, a1), BackendPath::kTunnel);
  EXPECT_EQ(PathOf(endpoint("node-b1", "198.18.2.2"), remote, LocalNode{}), BackendPath::kTunnel);
  EXPECT_EQ(PathOf(endpoint("", std::nullopt), remote, a1), BackendPath::kRouted);  // MCS
  EXPECT_EQ(PathOf(endpoint("node-b3", "198.18.5.2", false), remote, a1), BackendPath::kSnat);
}

// Two nodes of one cluster plan the same service: each reaches its own pods directly and the
// other node's through the tunnel, with the same keys and weights (so the tables agree).
TEST(Backends, EachNodeTunnelsToTheOtherNodesPodsOfItsCluster) {
  auto plan_on = [](const std::string& node_name) {
    Model m;
    m.PutCluster({1, "cluster-a", true});
    m.PutService(ApiService());
    for (const auto& [address, node, node_address] :
         {std::tuple{"198.18.10.11", "node-a1", "198.18.1.2"},
          std::tuple{"198.18.11.11", "node-a2", "198.18.4.2"}}) {
      Endpoint e;
      e.service = kApi;
      e.cluster = "cluster-a";
      e.addresses = {*IpAddress::Parse(address)};
      e.ports = {{"http", 8080, Protocol::kTcp}};
      e.node_name = node;
      e.node_address = *IpAddress::Parse(node_address);
      m.AddEndpoint(e);
    }
    m.SetLocalNode(LocalNode{node_name, {}});
    ConfigErrors problems;
    return PlanBackends(m, ResolveRoutes({}, m, {}, problems)).at(0);
  };
  const ServiceBackends on_a1 = plan_on("node-a1");
  const ServiceBackends on_a2 = plan_on("node-a2");
  ASSERT_EQ(on_a1.backends.size(), 2u);
  ASSERT_EQ(on_a2.backends.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(on_a1.backends[i].key, on_a2.backends[i].key);
    EXPECT_EQ(on_a1.backends[i].weight, on_a2.backends[i].weight);
  }
  EXPECT_EQ(on_a1.backends[0].path, BackendPath::kLocal);   // 198.18.10.11 on node-a1
  EXPECT_EQ(on_a1.backends[1].path, BackendPath::kTunnel);  // 198.18.11.11 on node-a2
  EXPECT_EQ(on_a2.backends[0].path, BackendPath::kTunnel);
  EXPECT_EQ(on_a2.backends[1].path, BackendPath::kLocal);

  const xlb_backend tunnelled = ToAbiBackend(on_a1.backends[1]);
  EXPECT_EQ(tunnelled.flags, XLB_BE_F_VALID | XLB_BE_F_TUNNEL);
  EXPECT_EQ(tunnelled.tunnel[0], htonl(0xc6120402));  // 198.18.4.2
  EXPECT_EQ(ToAbiBackend(on_a1.backends[0]).flags, XLB_BE_F_VALID);
}

}  // namespace
}  // namespace xlb::testing
