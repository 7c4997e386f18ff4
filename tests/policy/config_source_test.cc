// The embedded default source: the example file, and errors that name file, document, field
// and line.
#include "userspace/model/config_source.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/child_deadline.h"

namespace {

using xlb::ConfigResult;
using xlb::Model;
using xlb::ParseConfig;

const std::string kHeader = "apiVersion: xlb.dev/v1alpha1\nkind: Config\n";

// The single error of parsing `text` as cluster.yaml.
std::string OnlyError(const std::string& text) {
  const ConfigResult<Model> r = ParseConfig("cluster.yaml", text);
  if (r.ok()) {
    return "(parsed)";
  }
  EXPECT_EQ(r.error().size(), 1u) << xlb::ToString(r.error());
  return r.error().front().ToString();
}

TEST(ConfigSource, ReadsTheExampleFile) {
  const auto r = xlb::LoadConfigFile(XLB_POLICY_TESTDATA "/clusterset.yaml");
  ASSERT_TRUE(r.ok()) << xlb::ToString(r.error());
  const Model& m = *r;

  ASSERT_EQ(m.clusters().size(), 2u);
  EXPECT_EQ(m.clusters()[0], (xlb::Cluster{1, "cluster-a", true}));
  EXPECT_EQ(m.clusters()[1], (xlb::Cluster{2, "cluster-b", false}));
  EXPECT_EQ(m.LocalCluster()->name, "cluster-a");

  const xlb::Service* api = m.FindServiceByHost("api-service.production.svc.cluster.local", "");
  ASSERT_NE(api, nullptr);
  ASSERT_EQ(api->cluster_ips.size(), 1u);
  EXPECT_EQ(api->cluster_ips[0].ToString(), "198.18.100.10");
  EXPECT_EQ(api->clusterset_ips[0].ToString(), "198.18.200.10");
  EXPECT_EQ(api->external_ips[0].ToString(), "198.18.250.10");
  EXPECT_EQ(api->load_balancer_ips[0].ToString(), "198.18.251.10");
  EXPECT_EQ(api->Vips().size(), 4u);
  EXPECT_EQ(api->affinity, xlb::SessionAffinity::kClientIP);
  EXPECT_EQ(api->affinity_timeout_s, 600u);
  ASSERT_EQ(api->ports.size(), 2u);
  EXPECT_EQ(api->ports[0],
            (xlb::ServicePort{"http", 8080, xlb::Protocol::kTcp, 8080, "", 30080, "http"}));
  EXPECT_EQ(api->ports[1].target_port_name, "metrics");
  EXPECT_EQ(api->ports[1].target_port, 0);

  const auto endpoints = m.EndpointsOf(api->name);
  ASSERT_EQ(endpoints.size(), 5u);
  const xlb::Endpoint& a1 = endpoints[0];
  EXPECT_EQ(a1.cluster, "cluster-a");
  EXPECT_EQ(a1.addresses[0].ToString(), "198.18.1.1");
  EXPECT_EQ(a1.node_name, "node-a1");
  EXPECT_EQ(a1.node_address->ToString(), "198.18.0.11");
  ASSERT_EQ(a1.ports.size(), 2u);
  EXPECT_EQ(a1.ports[1], (xlb::EndpointPort{"metrics", 9100, xlb::Protocol::kTcp}));
  EXPECT_EQ(a1.conditions.ready, true);
  EXPECT_EQ(a1.conditions.serving, std::nullopt);
  EXPECT_TRUE(a1.TakesNewFlows());
  const xlb::Endpoint& b3 = endpoints[4];
  EXPECT_EQ(b3.cluster, "cluster-b");
  EXPECT_TRUE(b3.conditions.Terminating());
  EXPECT_FALSE(b3.TakesNewFlows());

  // A slice without ports gets one per service port, on the numeric targetPort.
  const auto web = m.EndpointsOf({"production", "web"});
  ASSERT_EQ(web.size(), 2u);
  ASSERT_EQ(web[0].ports.size(), 1u);
  EXPECT_EQ(web[0].ports[0], (xlb::EndpointPort{"", 8080, xlb::Protocol::kTcp}));
}

TEST(ConfigSource, NamesFileDocumentFieldAndLine) {
  const std::string text = kHeader +
                           "clusters:\n"
                           "- {name: cluster-a, id: 1, local: true}\n"
                           "---\n" +
                           kHeader +
                           "services:\n"
                           "- name: api-service\n"
                           "  namespace: production\n"
                           "  ports:\n"
                           "  - {name: http, port: 8080}\n"
                           "  - name: admin\n"
                           "    port: http\n";
  EXPECT_EQ(OnlyError(text),
            "cluster.yaml: document 2: services[0].ports[1].port: expected integer 1-65535, got "
            "\"http\" (line 14)");
}

TEST(ConfigSource, ReportsEveryErrorNotOnlyTheFirst) {
  const std::string text = kHeader +
                           "clusters:\n"
                           "- {name: cluster-a, id: 0}\n"
                           "- {name: Cluster_B, id: 2}\n"
                           "services:\n"
                           "- {name: api, namespace: production, clusterIPs: [198.18.300.1]}\n";
  const auto r = ParseConfig("cluster.yaml", text);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.error().size(), 3u) << xlb::ToString(r.error());
  EXPECT_EQ(r.error()[0].ToString(),
            "cluster.yaml: document 1: clusters[0].id: expected integer 1-65535, got \"0\" "
            "(line 4)");
  EXPECT_EQ(r.error()[1].ToString(),
            "cluster.yaml: document 1: clusters[1].name: expected a DNS-1123 label (1-63 of a-z, "
            "0-9, '-'), got \"Cluster_B\" (line 5)");
  EXPECT_EQ(r.error()[2].ToString(),
            "cluster.yaml: document 1: services[0].clusterIPs[0]: expected an IPv4 or IPv6 "
            "address, got \"198.18.300.1\" (line 7)");
}

TEST(ConfigSource, RejectsUnknownFieldsByName) {
  EXPECT_EQ(OnlyError(kHeader + "clusters:\n- {name: cluster-a, id: 1, region: eu}\n"),
            "cluster.yaml: document 1: clusters[0].region: unknown field \"region\" (xlb reads: "
            "name, id, local, nodes) (line 4)");
  EXPECT_EQ(OnlyError(kHeader + "service:\n- {name: api}\n"),
            "cluster.yaml: document 1: service: unknown field \"service\" (xlb reads: "
            "apiVersion, kind, node, clusters, services, endpointSlices) (line 3)");
}

TEST(ConfigSource, RejectsAWrongHeader) {
  EXPECT_EQ(OnlyError("apiVersion: v1\nkind: Config\n"),
            "cluster.yaml: document 1: apiVersion: expected xlb.dev/v1alpha1, got \"v1\" (line 1)");
  EXPECT_EQ(OnlyError("apiVersion: xlb.dev/v1alpha1\nkind: Service\n"),
            "cluster.yaml: document 1: kind: expected Config, got \"Service\" (line 2)");
  EXPECT_EQ(OnlyError("kind: Config\n"),
            "cluster.yaml: document 1: apiVersion: required field is missing (line 1)");
  EXPECT_EQ(OnlyError("- a\n- b\n"),
            "cluster.yaml: document 1: expected a mapping, got a sequence (line 1)");
  EXPECT_EQ(OnlyError(""), "cluster.yaml: no document in the file");
}

TEST(ConfigSource, ReportsYamlSyntaxErrorsWithLineAndDocument) {
  const std::string text = kHeader + "clusters: []\n---\n" + kHeader +
                           "services:\n"
                           "- name: api\n"
                           "  ports: [{port: 80}\n";
  EXPECT_EQ(OnlyError(text),
            "cluster.yaml: document 2: YAML syntax error: end of sequence flow not found at "
            "column 1 (line 10)");
}

TEST(ConfigSource, ChecksClustersAreUniqueAndOneIsLocal) {
  EXPECT_EQ(
      OnlyError(kHeader + "clusters:\n- {name: cluster-a, id: 1}\n- {name: cluster-a, id: 2}\n"),
      "cluster.yaml: document 1: clusters[1].name: cluster \"cluster-a\" declared twice "
      "(first at document 1, clusters[0]) (line 5)");
  EXPECT_EQ(
      OnlyError(kHeader + "clusters:\n- {name: cluster-a, id: 1}\n- {name: cluster-b, id: 1}\n"),
      "cluster.yaml: document 1: clusters[1].id: cluster id 1 already belongs to cluster "
      "\"cluster-a\" (line 5)");
  EXPECT_EQ(OnlyError(kHeader + "clusters:\n- {name: cluster-a, id: 1, local: true}\n"
                                "- {name: cluster-b, id: 2, local: true}\n"),
            "cluster.yaml: document 1: clusters[1].local: only one cluster may be local, and "
            "\"cluster-a\" is (line 5)");
}

TEST(ConfigSource, ChecksWhatEndpointSlicesName) {
  const std::string base = kHeader +
                           "clusters:\n"
                           "- name: cluster-a\n"
                           "  id: 1\n"
                           "  nodes: [{name: node-a1, addresses: [198.18.0.11]}]\n"
                           "services:\n"
                           "- name: api\n"
                           "  namespace: production\n"
                           "  ports: [{name: http, port: 80}]\n"
                           "endpointSlices:\n";  // line 11
  EXPECT_EQ(OnlyError(base + "- {service: api, namespace: production, cluster: cluster-z}\n"),
            "cluster.yaml: document 1: endpointSlices[0].cluster: no cluster \"cluster-z\" is "
            "declared (line 12)");
  EXPECT_EQ(OnlyError(base + "- {service: web, namespace: production, cluster: cluster-a}\n"),
            "cluster.yaml: document 1: endpointSlices[0].service: no service production/web is "
            "declared (line 12)");
  EXPECT_EQ(OnlyError(base + "- service: api\n"
                             "  namespace: production\n"
                             "  cluster: cluster-a\n"
                             "  ports: [{name: https, port: 8443}]\n"),
            "cluster.yaml: document 1: endpointSlices[0].ports[0].name: service production/api "
            "has no TCP port named \"https\" (line 15)");
  EXPECT_EQ(OnlyError(base + "- service: api\n"
                             "  namespace: production\n"
                             "  cluster: cluster-a\n"
                             "  addressType: IPv4\n"
                             "  endpoints:\n"
                             "  - addresses: [\"2001:db8::1\"]\n"),
            "cluster.yaml: document 1: endpointSlices[0].endpoints[0].addresses[0]: an IPv6 "
            "address in a slice of addressType IPv4 (line 17)");
  EXPECT_EQ(OnlyError(base + "- service: api\n"
                             "  namespace: production\n"
                             "  cluster: cluster-a\n"
                             "  endpoints:\n"
                             "  - addresses: [198.18.1.1]\n"
                             "    nodeName: node-a9\n"),
            "cluster.yaml: document 1: endpointSlices[0].endpoints[0].nodeName: no node "
            "\"node-a9\" in cluster \"cluster-a\" (line 17)");
}

// One service with one endpoint in cluster-a; a test appends fields of the endpoint (line 11).
const std::string kOneEndpoint = kHeader +
                                 "clusters: [{name: cluster-a, id: 1}]\n"
                                 "services: [{name: api, namespace: production, ports: "
                                 "[{port: 80}]}]\n"
                                 "endpointSlices:\n"
                                 "- service: api\n"
                                 "  namespace: production\n"
                                 "  cluster: cluster-a\n"
                                 "  endpoints:\n"
                                 "  - addresses: [198.18.1.1]\n";

TEST(ConfigSource, ReadsConditionsStrictly) {
  EXPECT_EQ(OnlyError(kOneEndpoint + "    conditions: {ready: yes}\n"),
            "cluster.yaml: document 1: endpointSlices[0].endpoints[0].conditions.ready: expected "
            "true or false, got \"yes\" (line 11)");
}

TEST(ConfigSource, MissingFileIsAnError) {
  const auto r = xlb::LoadConfigFile("/nonexistent/xlb.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error()[0].ToString(),
            "/nonexistent/xlb.yaml: cannot open: No such file or directory");
}

// A path that names an endless file (a mistyped ConfigMap key mounted onto a device, a FIFO)
// is an error with the bound, not the node's memory.
TEST(ConfigSource, AnEndlessFileIsAnErrorNotAllOfMemory) {
  const auto r = xlb::LoadConfigFile("/dev/zero");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error()[0].ToString(), "/dev/zero: larger than 268435456 bytes");
}

TEST(ConfigSource, ReadsWhichNodesRunXlb) {
  const std::string text = kHeader +
                           "node: {name: node-a1, addresses: [198.18.1.2]}\n"
                           "clusters:\n"
                           "- name: cluster-a\n"
                           "  id: 1\n"
                           "  local: true\n"
                           "  nodes:\n"
                           "  - {name: node-a1, addresses: [198.18.1.2]}\n"
                           "  - {name: node-a3, addresses: [198.18.6.2], xlb: false}\n"
                           "services:\n"
                           "- {name: api, namespace: production, ports: [{port: 80}]}\n"
                           "endpointSlices:\n"
                           "- service: api\n"
                           "  namespace: production\n"
                           "  cluster: cluster-a\n"
                           "  endpoints:\n"
                           "  - {addresses: [198.18.10.11], nodeName: node-a1}\n"
                           "  - {addresses: [198.18.12.11], nodeName: node-a3}\n";
  const ConfigResult<Model> r = ParseConfig("cluster.yaml", text);
  ASSERT_TRUE(r.ok()) << xlb::ToString(r.error());
  EXPECT_EQ(r->local_node().name, "node-a1");
  std::map<std::string, bool> runs_xlb;
  for (const xlb::Endpoint& e : r->EndpointsOf({"production", "api"})) {
    runs_xlb[e.node_name] = e.node_runs_xlb;
  }
  EXPECT_EQ(runs_xlb, (std::map<std::string, bool>{{"node-a1", true}, {"node-a3", false}}));
  // Every node's addresses are tunnel peers, with xlb or without (a stock vxlan device there).
  EXPECT_EQ(r->node_addresses().at("cluster-a"),
            (std::vector<xlb::IpAddress>{*xlb::IpAddress::Parse("198.18.1.2"),
                                         *xlb::IpAddress::Parse("198.18.6.2")}));
  EXPECT_EQ(OnlyError(kHeader + "clusters:\n- name: cluster-a\n  id: 1\n"
                                "  nodes: [{name: n, addresses: [198.18.1.2], xlb: maybe}]\n"),
            "cluster.yaml: document 1: clusters[0].nodes[0].xlb: expected true or false, got "
            "\"maybe\" (line 6)");
}

TEST(ConfigSource, ReadsTrafficPoliciesSourceRangesAndTopology) {
  const std::string text = kHeader +
                           "node: {name: node-a1, addresses: [198.18.0.11]}\n"
                           "clusters:\n"
                           "- name: cluster-a\n"
                           "  id: 1\n"
                           "  local: true\n"
                           "  nodes:\n"
                           "  - {name: node-a1, addresses: [198.18.0.11], zone: zone-1}\n"
                           "  - {name: node-a2, addresses: [198.18.0.12], zone: zone-2}\n"
                           "services:\n"
                           "- name: api\n"
                           "  namespace: production\n"
                           "  type: LoadBalancer\n"
                           "  clusterIP: 198.18.100.10\n"
                           "  loadBalancerIPs: [198.18.251.10]\n"
                           "  externalTrafficPolicy: Local\n"
                           "  internalTrafficPolicy: Local\n"
                           "  healthCheckNodePort: 32456\n"
                           "  loadBalancerSourceRanges: [198.18.0.0/16, '2001:db8::/32']\n"
                           "  trafficDistribution: PreferSameZone\n"
                           "  ports: [{port: 80, nodePort: 30080}]\n"
                           "- {name: web, namespace: production, ports: [{port: 80}]}\n"
                           "endpointSlices:\n"
                           "- service: api\n"
                           "  namespace: production\n"
                           "  cluster: cluster-a\n"
                           "  endpoints:\n"
                           "  - addresses: [198.18.1.1]\n"
                           "    nodeName: node-a1\n"
                           "    hints: {forZones: [{name: zone-1}]}\n"
                           "  - addresses: [198.18.1.2]\n"
                           "    nodeName: node-a2\n"
                           "    zone: zone-3\n"
                           "    hints:\n"
                           "      forZones: [{name: zone-3}, {name: zone-1}]\n"
                           "  - addresses: [198.18.1.3]\n";
  const ConfigResult<Model> r = ParseConfig("cluster.yaml", text);
  ASSERT_TRUE(r.ok()) << xlb::ToString(r.error());
  EXPECT_EQ(r->local_node().zone, "zone-1");  // from the local cluster's node of its name
  const xlb::Service* api = r->FindService({"production", "api"});
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->external_policy, xlb::ServiceTrafficPolicy::kLocal);
  EXPECT_EQ(api->internal_policy, xlb::ServiceTrafficPolicy::kLocal);
  EXPECT_EQ(api->health_check_node_port, 32456);
  EXPECT_EQ(api->load_balancer_source_ranges,
            (std::vector<xlb::IpPrefix>{*xlb::IpPrefix::Parse("198.18.0.0/16"),
                                        *xlb::IpPrefix::Parse("2001:db8::/32")}));
  EXPECT_EQ(api->topology, xlb::TopologyRouting::kPreferClose);
  const xlb::Service* web = r->FindService({"production", "web"});
  EXPECT_EQ(web->external_policy, xlb::ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(web->internal_policy, xlb::ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(web->health_check_node_port, 0);
  EXPECT_TRUE(web->load_balancer_source_ranges.empty());
  EXPECT_EQ(web->topology, xlb::TopologyRouting::kNone);

  const auto endpoints = r->EndpointsOf(api->name);
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(endpoints[0].zone, "zone-1");  // its node's
  EXPECT_EQ(endpoints[0].zone_hints, std::vector<std::string>{"zone-1"});
  EXPECT_EQ(endpoints[1].zone, "zone-3");  // its own wins
  EXPECT_EQ(endpoints[1].zone_hints, (std::vector<std::string>{"zone-3", "zone-1"}));
  EXPECT_EQ(endpoints[2].zone, "");
  EXPECT_TRUE(endpoints[2].zone_hints.empty());

  // An explicit zone of the node wins over its cluster node's.
  const ConfigResult<Model> explicit_zone = ParseConfig(
      "cluster.yaml", kHeader +
                          "node: {name: node-a1, addresses: [198.18.0.11], zone: z9}\n"
                          "clusters: [{name: cluster-a, id: 1, local: true, nodes: "
                          "[{name: node-a1, addresses: [198.18.0.11], zone: zone-1}]}]\n");
  ASSERT_TRUE(explicit_zone.ok()) << xlb::ToString(explicit_zone.error());
  EXPECT_EQ(explicit_zone->local_node().zone, "z9");
}

TEST(ConfigSource, BadTrafficFieldsAreNamed) {
  const std::string service = kHeader +
                              "services:\n"
                              "- name: api\n"
                              "  namespace: production\n"
                              "  ports: [{port: 80}]\n";
  const std::map<std::string, std::string> errors = {
      {"externalTrafficPolicy: Lokal",
       "externalTrafficPolicy: expected one of Cluster, Local, got \"Lokal\""},
      {"internalTrafficPolicy: Global",
       "internalTrafficPolicy: expected one of Cluster, Local, got \"Global\""},
      {"healthCheckNodePort: 70000",
       "healthCheckNodePort: expected integer 1-65535, got \"70000\""},
      {"loadBalancerSourceRanges: [198.18.0.1/15]",
       "loadBalancerSourceRanges[0]: expected a CIDR such as 198.18.0.0/15, without host bits, "
       "got \"198.18.0.1/15\""},
      {"trafficDistribution: PreferSameNode",
       "trafficDistribution: expected one of PreferClose, PreferSameZone, got "
       "\"PreferSameNode\""},
  };
  for (const auto& [line, error] : errors) {
    EXPECT_EQ(OnlyError(service + "  " + line + "\n"),
              "cluster.yaml: document 1: services[0]." + error + " (line 7)");
  }
  EXPECT_EQ(OnlyError(kOneEndpoint + "    hints: {forZones: [{name: zone-1, weight: 2}]}\n"),
            "cluster.yaml: document 1: endpointSlices[0].endpoints[0].hints.forZones[0].weight: "
            "unknown field \"weight\" (xlb reads: name) (line 11)");
  EXPECT_EQ(OnlyError(kOneEndpoint + "    zone: ''\n"),
            "cluster.yaml: document 1: endpointSlices[0].endpoints[0].zone: expected a zone "
            "name, got \"\" (line 11)");
}

// Quoted values are cut after 64 bytes, between two UTF-8 characters.
TEST(ConfigSource, LongValuesAreCutBetweenCharacters) {
  const std::string value = std::string(63, 'a') + "\xC3\xBC" + std::string(10, 'b');
  const std::string error = OnlyError(kHeader +
                                      "services:\n"
                                      "- name: api\n"
                                      "  namespace: production\n"
                                      "  externalTrafficPolicy: " +
                                      value + "\n");
  EXPECT_NE(error.find("got \"" + std::string(61, 'a') + "...\""), std::string::npos) << error;
  EXPECT_EQ(error.find("\xC3"), std::string::npos) << error;
}

// yaml-cpp 0.7's LoadAll never returns on a ',' where a block-level document starts: it
// yields null documents without consuming it, allocating as it goes. Each input runs in a
// child with a deadline so that a regression fails instead of hanging.
TEST(ConfigSource, AStrayFlowEntryIsASyntaxErrorNotAHang) {
  const std::map<std::string, std::string> expected = {
      {",", "cluster.yaml: document 1: YAML syntax error: unexpected ',' at column 1 (line 1)"},
      {"  ,", "cluster.yaml: document 1: YAML syntax error: unexpected ',' at column 3 (line 1)"},
      {",a", "cluster.yaml: document 1: YAML syntax error: unexpected ',' at column 1 (line 1)"},
      {"{a: b},",
       "cluster.yaml: document 1: YAML syntax error: unexpected ',' at column 7 (line 1)"},
      {"---\n,",
       "cluster.yaml: document 1: YAML syntax error: unexpected ',' at column 1 (line 2)"},
      {kHeader + "clusters: []\n,\n",
       "cluster.yaml: document 1: YAML syntax error: end of map not found at column 1 (line 4)"},
  };
  for (const auto& [text, error] : expected) {
    const std::string outcome = xlb::testing::InChildWithin(
        std::chrono::seconds(5), [&] { return !ParseConfig("cluster.yaml", text).ok(); });
    ASSERT_EQ(outcome, "ok") << "input: " << text;
    EXPECT_EQ(OnlyError(text), error);
  }
}

}  // namespace
