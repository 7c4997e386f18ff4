// Reading policy YAML into PolicySet: what each kind keeps, Istio's weight defaults, fields
// that kubectl output carries, and document numbering.
#include "userspace/policy/policy_parse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fixtures.h"
#include "tests/child_deadline.h"

namespace xlb::testing {
namespace {

ConfigResult<PolicySet> Parse(const std::string& text) {
  return ParsePolicies(std::vector<PolicyFile>{{"p.yaml", text}});
}

TEST(ParsePolicies, ReadsAVirtualService) {
  const auto r = Parse(R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: api
  namespace: production
  annotations:
    xlb.dev/spillover: ordered
spec:
  hosts: [api-service, api-service.production.svc.clusterset.local]
  exportTo: ["*"]
  http:
  - name: main
    match:
    - port: 8080
    - name: alt
      port: 8443
    route:
    - destination:
        host: api-service
        subset: east
        port: {number: 8080}
      weight: 90
    - destination: {host: api-canary}
      weight: 10
  tcp:
  - route:
    - destination: {host: api-service}
)");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  ASSERT_EQ(r->virtual_services.size(), 1u);
  const VirtualService& vs = r->virtual_services[0];
  EXPECT_EQ(vs.meta.Describe(), "VirtualService production/api (p.yaml, document 1)");
  EXPECT_EQ(vs.spillover, Spillover::kOrdered);
  ASSERT_EQ(vs.hosts.size(), 2u);
  EXPECT_EQ(vs.hosts[1].first, "api-service.production.svc.clusterset.local");
  EXPECT_EQ(vs.hosts[1].second.field, "spec.hosts[1]");
  ASSERT_EQ(vs.http.size(), 1u);
  const RouteRule& http = vs.http[0];
  EXPECT_EQ(http.name, "main");
  EXPECT_EQ(http.match_ports, (std::vector<uint16_t>{8080, 8443}));
  EXPECT_TRUE(http.Matches(8443));
  EXPECT_FALSE(http.Matches(9090));
  ASSERT_EQ(http.route.size(), 2u);
  EXPECT_EQ(http.route[0].subset, "east");
  EXPECT_EQ(http.route[0].port, 8080);
  EXPECT_EQ(http.route[0].weight, 90u);
  EXPECT_EQ(http.route[1].port, 0);
  EXPECT_EQ(http.route[1].host_ref.field, "spec.http[0].route[1].destination.host");
  EXPECT_EQ(http.route[1].host_ref.line, 23);
  // A sole destination without a weight takes everything.
  ASSERT_EQ(vs.tcp.size(), 1u);
  EXPECT_EQ(vs.tcp[0].route[0].weight, 100u);
  EXPECT_TRUE(vs.tcp[0].Matches(1));
}

TEST(ParsePolicies, ReadsDestinationRulesAndTrafficPolicies) {
  const auto r = Parse(R"(---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: api}
spec:
  host: api-service.production.svc.clusterset.local
  subsets:
  - name: b
    labels: {topology.istio.io/cluster: cluster-b}
---
apiVersion: xlb.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: production}
spec:
  service: api-service
  weights:
    cluster-b: 30
    cluster-a: 70
  failover: [cluster-a]
)");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  ASSERT_EQ(r->destination_rules.size(), 1u);
  EXPECT_EQ(r->destination_rules[0].subsets[0].cluster, "cluster-b");
  ASSERT_EQ(r->traffic_policies.size(), 1u);
  const TrafficPolicy& tp = r->traffic_policies[0];
  EXPECT_EQ(tp.meta.ref.document, 2);  // the leading `---` opens document 1
  ASSERT_EQ(tp.weights.size(), 2u);
  EXPECT_EQ(tp.weights[0].cluster, "cluster-b");  // in the order written
  EXPECT_EQ(tp.weights[1].weight, 70u);
  EXPECT_EQ(tp.spillover, Spillover::kProportional);
}

TEST(ParsePolicies, AcceptsWhatKubectlGetAddsAndSkipsEmptyDocuments) {
  const auto r = Parse(R"(---
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api
  namespace: production
  uid: 0b6e7a5e-0000-4000-8000-000000000000
  resourceVersion: "123"
  generation: 2
  creationTimestamp: "2024-01-01T00:00:00Z"
  labels: {app: api}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service}
status: {}
---
)");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  ASSERT_EQ(r->virtual_services.size(), 1u);
  EXPECT_EQ(r->virtual_services[0].meta.ref.document, 2);
}

TEST(ParsePolicies, NamesTheFieldOfEachProblem) {
  const auto r = Parse(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  namespace: Production
  annotations: {xlb.dev/spillover: all-or-nothing}
spec:
  hosts: ["*.production.svc.cluster.local"]
  http:
  - match:
    - uri: {prefix: /api}
    route: []
  tcp:
  - route:
    - destination:
        host: api-service
        port: {number: 70000}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToString(r.error()),
            "p.yaml: document 1: metadata.name: required field is missing (line 4)\n"
            "p.yaml: document 1: metadata.namespace: expected a DNS-1123 label, got "
            "\"Production\" (line 4)\n"
            "p.yaml: document 1: metadata.annotations.xlb.dev/spillover: expected one of "
            "proportional, ordered, got \"all-or-nothing\" (line 5)");
  // Once metadata is right, the spec's problems show.
  const auto spec = Parse(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: ["*.production.svc.cluster.local"]
  http:
  - match:
    - uri: {prefix: /api}
    route: []
  tcp:
  - route:
    - destination:
        host: api-service
        port: {number: 70000}
)");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(ToString(spec.error()),
            "p.yaml: document 1: spec.hosts[0]: expected a service host (NAME, NAME.NS or "
            "NAME.NS.svc.cluster[set].local), got \"*.production.svc.cluster.local\": wildcards "
            "are not supported (line 5)\n"
            "p.yaml: document 1: spec.http[0].match[0].uri: unknown field \"uri\" (xlb reads: "
            "name, port) (line 8)\n"
            "p.yaml: document 1: spec.http[0].route: expected at least one destination (line 9)\n"
            "p.yaml: document 1: spec.tcp[0].route[0].destination.port.number: expected integer "
            "1-65535, got \"70000\" (line 14)");
}

TEST(ParsePolicies, RejectsAVirtualServiceWithoutRoutesAndADestinationRuleWithoutCluster) {
  const auto r = Parse(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api-service]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api-service
  subsets:
  - name: b
    labels: {}
  - name: b
    labels: {topology.istio.io/cluster: cluster-b}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToString(r.error()),
            "p.yaml: document 1: spec: no http or tcp route: the VirtualService routes nothing "
            "(line 5)\n"
            "p.yaml: document 2: spec.subsets[0].labels.topology.istio.io/cluster: required field "
            "is missing: a subset names its cluster (line 14)\n"
            "p.yaml: document 2: spec.subsets[1].name: subset \"b\" defined twice (line 15)");
}

TEST(ParsePolicies, ShortHostsOfAVirtualServiceWithoutNamespace) {
  // Issue 4's VirtualService names no namespace: its qualified destinations name production.
  const Model model = TwoClusters();
  const auto r = Parse(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-service}
spec:
  hosts: [api-service]
  http:
  - route:
    - destination: {host: api-service.production.svc.cluster.local}
)");
  ASSERT_TRUE(r.ok());
  ConfigErrors errors;
  Routes routes = ResolveRoutes(*r, model, {}, errors);
  EXPECT_TRUE(errors.empty()) << ToString(errors);
  EXPECT_NE(routes.Find(kApi, model.FindService(kApi)->ports[0]), nullptr);
  // An explicit default namespace wins over the inference.
  routes = ResolveRoutes(*r, model, PolicyOptions{"staging"}, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(),
            "p.yaml: document 1: spec.hosts[0]: host \"api-service\" matches no service (there "
            "is no service staging/api-service) (line 5)");
}

// A policy file of one ',' once hung yaml-cpp's LoadAll (config_source_test.cc has the
// details); it is a syntax error naming the file and the position.
TEST(ParsePolicies, AStrayFlowEntryIsASyntaxErrorNotAHang) {
  for (const std::string text : {",", "  ,", ",a", "{a: b},", "---\n,"}) {
    const std::string outcome =
        InChildWithin(std::chrono::seconds(5), [&] { return !Parse(text).ok(); });
    ASSERT_EQ(outcome, "ok") << "input: " << text;
    const auto r = Parse(text);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().size(), 1u);
    EXPECT_EQ(r.error()[0].file, "p.yaml");
    EXPECT_NE(r.error()[0].message.find("unexpected ','"), std::string::npos)
        << r.error()[0].ToString();
  }
}

}  // namespace
}  // namespace xlb::testing
