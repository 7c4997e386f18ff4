// Invalid policies: each is rejected with the exact file, document and field, and the
// PolicyStore keeps the last good set in force. Also: reading a directory.
#include "userspace/policy/policy_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fixtures.h"
#include "userspace/model/config_source.h"

namespace xlb::testing {
namespace {

const std::string kGood = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api-service
  namespace: production
spec:
  hosts:
  - api-service
  http:
  - route:
    - destination:
        host: api-service.production.svc.cluster.local
      weight: 70
    - destination:
        host: api-service.production.svc.clusterset.local
      weight: 30
)";

// A store that has accepted kGood (as good.yaml) over ThreeClusters(2, 2, 2) plus a service
// production/web that no policy routes yet.
class PolicyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = ThreeClusters(2, 2, 2);
    Service web = ApiService();
    web.name = {"production", "web"};
    model_.PutService(web);
    ASSERT_TRUE(store_.Replace(std::vector<PolicyFile>{{"good.yaml", kGood}}, model_).ok());
  }

  // Offers good.yaml plus `text` as bad.yaml; expects a rejection with exactly `expected`
  // (one line per error), and that the good set stays in force.
  void ExpectRejected(const std::string& text, const std::string& expected) {
    const std::vector<PolicyFile> files{{"good.yaml", kGood}, {"bad.yaml", text}};
    const auto result = store_.Replace(files, model_);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(ToString(result.error()), expected);
    EXPECT_EQ(ToString(store_.last_errors()), expected);
    ExpectGoodSetInForce();
  }

  void ExpectGoodSetInForce() {
    ASSERT_EQ(store_.current().virtual_services.size(), 1u);
    EXPECT_EQ(store_.current().virtual_services[0].meta.ref.file, "good.yaml");
    ConfigErrors problems;
    const auto shares = Shares(PlanOf(store_.Plan(model_, problems), kApi, 8080));
    EXPECT_TRUE(problems.empty());
    EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.7);
    EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.15);
  }

  Model model_;
  PolicyStore store_;
};

const std::string kVsHead = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: production}
spec:
  hosts: [web]
)";

TEST_F(PolicyStoreTest, AcceptsAGoodSetAndCountsIt) {
  EXPECT_EQ(store_.accepted(), 1u);
  EXPECT_EQ(store_.rejected(), 0u);
  ExpectGoodSetInForce();
}

TEST_F(PolicyStoreTest, RejectsUnknownKind) {
  ExpectRejected("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n",
                 "bad.yaml: document 1: kind: unknown kind: expected VirtualService or "
                 "DestinationRule for networking.istio.io/v1, got \"Gateway\" (line 2)");
  EXPECT_EQ(store_.rejected(), 1u);
  EXPECT_EQ(store_.accepted(), 1u);
}

TEST_F(PolicyStoreTest, RejectsUnknownApiVersion) {
  ExpectRejected("apiVersion: networking.istio.io/v2\nkind: VirtualService\n",
                 "bad.yaml: document 1: apiVersion: unknown apiVersion: expected "
                 "networking.istio.io/v1, networking.istio.io/v1beta1, "
                 "networking.istio.io/v1alpha3 or xlb.dev/v1alpha1, got "
                 "\"networking.istio.io/v2\" (line 1)");
  ExpectRejected("apiVersion: networking.istio.io/v1beta1\nkind: TrafficPolicy\n",
                 "bad.yaml: document 1: apiVersion: a TrafficPolicy is xlb.dev/v1alpha1, got "
                 "\"networking.istio.io/v1beta1\" (line 1)");
}

TEST_F(PolicyStoreTest, RejectsNegativeWeightInTheSecondDocument) {
  ExpectRejected("# first document: fine\n" + kVsHead +
                     "  http:\n  - route:\n    - destination: {host: web}\n"
                     "---\n" +
                     kVsHead +
                     "  http:\n"
                     "  - route:\n"
                     "    - destination: {host: web}\n"
                     "      weight: 70\n"
                     "    - destination: {host: web.production.svc.clusterset.local}\n"
                     "      weight: -30\n",
                 "bad.yaml: document 2: spec.http[0].route[1].weight: weight must not be "
                 "negative, got -30 (line 21)");
}

TEST_F(PolicyStoreTest, RejectsAllZeroWeights) {
  ExpectRejected(kVsHead +
                     "  tcp:\n"
                     "  - route:\n"
                     "    - destination: {host: web}\n"
                     "      weight: 0\n"
                     "    - destination: {host: web.production.svc.clusterset.local}\n",
                 "bad.yaml: document 1: spec.tcp[0].route: every destination has weight 0, so "
                 "the route sends traffic nowhere (line 8)");
  ExpectRejected(
      "apiVersion: xlb.dev/v1alpha1\n"
      "kind: TrafficPolicy\n"
      "metadata: {name: web, namespace: production}\n"
      "spec:\n"
      "  service: web\n"
      "  weights:\n"
      "    cluster-a: 0\n"
      "    cluster-b: 0\n",
      "bad.yaml: document 1: spec.weights: every cluster has weight 0, so the policy "
      "sends traffic nowhere (line 7)");
}

TEST_F(PolicyStoreTest, RejectsWeightsThatAreNoIntegers) {
  const std::string route = kVsHead +
                            "  http:\n"
                            "  - route:\n"
                            "    - destination: {host: web}\n"
                            "      weight: ";
  ExpectRejected(route + "70.5\n",
                 "bad.yaml: document 1: spec.http[0].route[0].weight: expected an integer, got "
                 "\"70.5\" (line 9)");
  ExpectRejected(route + "\"70\"\n",
                 "bad.yaml: document 1: spec.http[0].route[0].weight: expected an integer, got "
                 "\"70\" (a quoted string) (line 9)");
  ExpectRejected(route + "[70]\n",
                 "bad.yaml: document 1: spec.http[0].route[0].weight: expected an integer, got "
                 "a sequence (line 9)");
  ExpectRejected(route + "4294967296\n",
                 "bad.yaml: document 1: spec.http[0].route[0].weight: weight must be at most "
                 "2147483647, got 4294967296 (line 9)");
}

TEST_F(PolicyStoreTest, RejectsAHostThatMatchesNoService) {
  ExpectRejected(
      "apiVersion: networking.istio.io/v1\n"
      "kind: VirtualService\n"
      "metadata: {name: nope, namespace: production}\n"
      "spec:\n"
      "  hosts: [nope]\n"
      "  http:\n"
      "  - route:\n"
      "    - destination: {host: api-service}\n",
      "bad.yaml: document 1: spec.hosts[0]: host \"nope\" matches no service (there "
      "is no service production/nope) (line 5)");
  ExpectRejected(R"(apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [web.production.svc.clusterset.local]
  http:
  - route:
    - destination:
        host: api.production.svc.cluster.local
)",
                 "bad.yaml: document 1: spec.http[0].route[0].destination.host: host "
                 "\"api.production.svc.cluster.local\" matches no service (there is no service "
                 "production/api) (line 9)");
  ExpectRejected(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api.example.com]
  http:
  - route:
    - destination: {host: api-service}
)",
                 "bad.yaml: document 1: spec.hosts[0]: host \"api.example.com\" matches no "
                 "service: expected NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local or "
                 "NAME.NS.svc.clusterset.local (line 5)");
}

TEST_F(PolicyStoreTest, RejectsYamlSyntaxErrorsWithLine) {
  ExpectRejected(kGood + "---\n" + kVsHead + "  http: [\n",
                 "bad.yaml: document 2: YAML syntax error: end of sequence flow not found at "
                 "column 1 (line 24)");
  ExpectRejected("apiVersion: networking.istio.io/v1\nkind: VirtualService\n  metadata: {}\n",
                 "bad.yaml: document 1: YAML syntax error: illegal map value at column 11 "
                 "(line 3)");
}

TEST_F(PolicyStoreTest, RejectsUnknownFieldsAndSaysWhich) {
  ExpectRejected(kVsHead +
                     "  http:\n"
                     "  - timeout: 5s\n"
                     "    route:\n"
                     "    - destination: {host: api-service}\n",
                 "bad.yaml: document 1: spec.http[0].timeout: unknown field \"timeout\" (xlb "
                 "reads: name, match, route) (line 7)");
  ExpectRejected(kVsHead +
                     "  tcp:\n"
                     "  - match:\n"
                     "    - port: 8080\n"
                     "      sourceLabels: {app: client}\n"
                     "    route:\n"
                     "    - destination: {host: api-service}\n",
                 "bad.yaml: document 1: spec.tcp[0].match[0].sourceLabels: unknown field "
                 "\"sourceLabels\" (xlb reads: port) (line 9)");
  ExpectRejected(
      "apiVersion: xlb.dev/v1alpha1\n"
      "kind: TrafficPolicy\n"
      "metadata: {name: api, namespace: production}\n"
      "spec:\n"
      "  service: api-service\n"
      "  weights: {cluster-a: 1}\n"
      "  failvoer: [cluster-a]\n",
      "bad.yaml: document 1: spec.failvoer: unknown field \"failvoer\" (xlb reads: "
      "service, weights, failover, spillover) (line 7)");
}

// A VirtualService whose only rule matches no port of its service would be accepted and change
// nothing: a problem, naming the rule and the service's ports.
TEST_F(PolicyStoreTest, RejectsARuleThatRoutesNoPort) {
  const std::string route = "    route:\n    - destination: {host: api-service}\n";
  ExpectRejected(kVsHead + "  tcp:\n  - match:\n    - port: 9090\n" + route,
                 "bad.yaml: document 1: spec.tcp[0]: matches no port of service production/web "
                 "(8080/TCP): the rule routes nothing (line 7)");
  ExpectRejected(kVsHead + "  http:\n  - match:\n    - port: 8080\n    - port: 9999\n" + route,
                 "bad.yaml: document 1: spec.http[0]: match port 9999 is no port of service "
                 "production/web (8080/TCP): that match routes nothing (line 7)");
  // A second catch-all rule: every port takes the first (Istio's analyzer: IST0130).
  ExpectRejected(kVsHead + "  http:\n  - name: first\n" + route + "  - name: second\n" + route,
                 "bad.yaml: document 1: spec.http[1]: is never used: each port it matches of "
                 "service production/web (8080/TCP) takes an earlier rule (http[0]) (line 10)");
}

// The same found later, when the service's ports change under an accepted policy: reported at
// each plan, and the rest of the policy still applies.
TEST_F(PolicyStoreTest, RuleThatStopsMatchingIsReportedAtPlan) {
  const std::string vs = kVsHead +
                         "  tcp:\n"
                         "  - match:\n"
                         "    - port: 8080\n"
                         "    route:\n"
                         "    - destination: {host: api-service}\n";
  ASSERT_TRUE(
      store_.Replace(std::vector<PolicyFile>{{"good.yaml", kGood}, {"web.yaml", vs}}, model_).ok());
  Service web = *model_.FindService({"production", "web"});
  web.ports[0].port = 8081;
  model_.PutService(web);
  ConfigErrors problems;
  (void)store_.Plan(model_, problems);
  EXPECT_EQ(ToString(problems),
            "web.yaml: document 1: spec.tcp[0]: matches no port of service production/web "
            "(8081/TCP): the rule routes nothing (line 7)");
}

TEST_F(PolicyStoreTest, RejectsBadTrafficPolicies) {
  const std::string head =
      "apiVersion: xlb.dev/v1alpha1\n"
      "kind: TrafficPolicy\n"
      "metadata: {name: web, namespace: production}\n"
      "spec:\n"
      "  service: web\n";
  ExpectRejected(head + "  weights: {cluster-a: 70, cluster-x: 30}\n",
                 "bad.yaml: document 1: spec.weights.cluster-x: no cluster \"cluster-x\" in the "
                 "clusterset (line 6)");
  ExpectRejected(head + "  weights: {cluster-a: 1}\n  spillover: all-or-nothing\n",
                 "bad.yaml: document 1: spec.spillover: expected one of proportional, ordered, "
                 "got \"all-or-nothing\" (line 7)");
  ExpectRejected(
      head + "  weights: {cluster-a: 1}\n  failover: [cluster-a, cluster-b, cluster-a]\n",
      "bad.yaml: document 1: spec.failover[2]: cluster \"cluster-a\" is listed twice "
      "(line 7)");
  ExpectRejected(head + "  weights: {cluster-a: seventy}\n",
                 "bad.yaml: document 1: spec.weights.cluster-a: expected an integer, got "
                 "\"seventy\" (line 6)");
}

TEST_F(PolicyStoreTest, RejectsSubsetsXlbCannotResolve) {
  const std::string vs = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: production}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: production}
spec:
  host: api-service
  subsets:
)";
  // In a store of its own: the good set routes api-service already.
  PolicyStore store;
  const auto reject = [&](const std::string& text, const std::string& expected) {
    const auto r = store.Replace(std::vector<PolicyFile>{{"bad.yaml", text}}, model_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(ToString(r.error()), expected);
  };
  reject(vs + "  - {name: v1, labels: {topology.istio.io/cluster: cluster-a}}\n",
         "bad.yaml: document 1: spec.http[0].route[0].destination.subset: no DestinationRule for "
         "production/api-service defines subset \"v2\" (line 8)");
  reject(vs + "  - {name: v2, labels: {version: v2}}\n",
         "bad.yaml: document 2: spec.subsets[0].labels.version: xlb selects subsets by cluster "
         "only: the one label is topology.istio.io/cluster (line 16)");
  reject(vs + "  - {name: v2, labels: {topology.istio.io/cluster: cluster-z}}\n",
         "bad.yaml: document 2: spec.subsets[0].labels.topology.istio.io/cluster: no cluster "
         "\"cluster-z\" in the clusterset (line 16)");
  EXPECT_TRUE(store.current().empty());
}

TEST_F(PolicyStoreTest, RejectsASecondPolicyForTheSameService) {
  ExpectRejected(
      "apiVersion: xlb.dev/v1alpha1\n"
      "kind: TrafficPolicy\n"
      "metadata: {name: api, namespace: production}\n"
      "spec:\n"
      "  service: api-service.production.svc.clusterset.local\n"
      "  weights: {cluster-a: 1}\n",
      "bad.yaml: document 1: spec.service: service production/api-service already "
      "has a policy: VirtualService production/api-service (good.yaml, document 1) "
      "(line 5)");
}

TEST_F(PolicyStoreTest, ReportsEveryErrorOfTheSet) {
  ExpectRejected(kVsHead +
                     "  http:\n"
                     "  - route:\n"
                     "    - {destination: {host: api-service}, weight: -1}\n"
                     "---\n"
                     "kind: VirtualService\n",
                 "bad.yaml: document 1: spec.http[0].route[0].weight: weight must not be "
                 "negative, got -1 (line 8)\n"
                 "bad.yaml: document 2: apiVersion: required field is missing (line 10)");
}

TEST_F(PolicyStoreTest, AcceptsTheNextGoodSet) {
  ExpectRejected("kind: [\n",
                 "bad.yaml: document 1: YAML syntax error: end of sequence flow "
                 "not found at column 1 (line 2)");
  const auto r = store_.Replace(std::vector<PolicyFile>{{"new.yaml", R"(
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights: {cluster-b: 1}
)"}},
                                model_);
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  EXPECT_TRUE(store_.last_errors().empty());
  EXPECT_EQ(store_.accepted(), 2u);
  ConfigErrors problems;
  EXPECT_DOUBLE_EQ(Shares(PlanOf(store_.Plan(model_, problems), kApi, 8080)).at("cluster-b"), 1.0);
}

TEST_F(PolicyStoreTest, EmptySetIsValidAndMeansDefaults) {
  ASSERT_TRUE(store_.Replace(std::vector<PolicyFile>{}, model_).ok());
  ConfigErrors problems;
  EXPECT_EQ(PlanOf(store_.Plan(model_, problems), kApi, 8080).policy, "default");
}

TEST_F(PolicyStoreTest, PolicyOfAServiceThatLaterVanishesIsReportedAndRoutesNothing) {
  Service web = ApiService();
  web.name = {"production", "web"};
  Model other;
  other.PutCluster({1, "cluster-a", true});
  other.PutService(web);
  ConfigErrors problems;
  const auto plans = store_.Plan(other, problems);
  EXPECT_EQ(ToString(problems),
            "good.yaml: document 1: spec.hosts[0]: host \"api-service\" matches no service "
            "(there is no service production/api-service) (line 8)\n"
            "good.yaml: document 1: spec.http[0].route[0].destination.host: host "
            "\"api-service.production.svc.cluster.local\" matches no service (there is no "
            "service production/api-service) (line 12)\n"
            "good.yaml: document 1: spec.http[0].route[1].destination.host: host "
            "\"api-service.production.svc.clusterset.local\" matches no service (there is no "
            "service production/api-service) (line 15)");
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].policy, "default");
}

TEST(PolicyStore, ClusterThatLaterVanishesSpillsOverAndIsReported) {
  PolicyStore store;
  ASSERT_TRUE(store
                  .Replace(std::vector<PolicyFile>{{"tp.yaml", R"(apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights: {cluster-a: 50, cluster-b: 30, cluster-c: 20}
)"}},
                           ThreeClusters(1, 1, 1))
                  .ok());
  // cluster-c leaves the clusterset: the policy still holds for the others.
  ConfigErrors problems;
  const auto shares = Shares(PlanOf(store.Plan(TwoClusters(), problems), kApi, 8080));
  EXPECT_EQ(ToString(problems),
            "tp.yaml: document 1: spec.weights.cluster-c: no cluster \"cluster-c\" in the "
            "clusterset (line 6)");
  EXPECT_DOUBLE_EQ(shares.at("cluster-a"), 0.625);
  EXPECT_DOUBLE_EQ(shares.at("cluster-b"), 0.375);
}

TEST(PolicyPath, ReadsADirectoryInNameOrderSkippingHiddenAndOtherFiles) {
  const auto files = ReadPolicyPath(XLB_POLICY_TESTDATA "/policies");
  ASSERT_TRUE(files.ok()) << ToString(files.error());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].name, XLB_POLICY_TESTDATA "/policies/api-service.yaml");
  EXPECT_EQ((*files)[1].name, XLB_POLICY_TESTDATA "/policies/web.yaml");

  const auto model = LoadConfigFile(XLB_POLICY_TESTDATA "/clusterset.yaml");
  ASSERT_TRUE(model.ok()) << ToString(model.error());
  PolicyStore store;
  const auto r = store.ReplaceFromPath(XLB_POLICY_TESTDATA "/policies", *model);
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  ConfigErrors problems;
  const auto plans = store.Plan(*model, problems);
  EXPECT_TRUE(problems.empty()) << ToString(problems);
  // api-service: 70 % over cluster-a's two endpoints, 30 % over cluster-b's two ready ones;
  // the terminating third is listed with weight 0.
  const ServiceBackends& api = PlanOf(plans, kApi, 8080);
  EXPECT_EQ(Weights(api), (std::map<std::string, uint32_t>{{"cluster-a/198.18.1.1:8080", 7},
                                                           {"cluster-a/198.18.1.2:8080", 7},
                                                           {"cluster-b/198.18.2.1:8080", 3},
                                                           {"cluster-b/198.18.2.2:8080", 3},
                                                           {"cluster-b/198.18.2.3:8080", 0}}));
  // A rule without a port match routes every port of its host, to the destination port it
  // names, as in Istio: connections to metrics (9090) go to the endpoints' http port too.
  const ServiceBackends& metrics = PlanOf(plans, kApi, 9090);
  EXPECT_EQ(Weights(metrics), Weights(api));
  EXPECT_DOUBLE_EQ(Shares(metrics).at("cluster-a"), 0.7);
  const ServiceBackends& web = PlanOf(plans, {"production", "web"}, 80);
  EXPECT_EQ(web.spillover, Spillover::kOrdered);
  EXPECT_DOUBLE_EQ(Shares(web).at("cluster-a"), 0.8);
}

TEST(PolicyPath, MissingPathIsAnErrorAndKeepsTheSet) {
  PolicyStore store;
  const Model model = TwoClusters();
  ASSERT_TRUE(store.ReplaceFromPath(XLB_POLICY_TESTDATA "/policies/api-service.yaml", model).ok());
  const auto r = store.ReplaceFromPath("/nonexistent/policies", model);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToString(r.error()), "/nonexistent/policies: no such file or directory");
  EXPECT_EQ(store.current().virtual_services.size(), 1u);
}

}  // namespace
}  // namespace xlb::testing
