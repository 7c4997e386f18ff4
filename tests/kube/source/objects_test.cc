// The mapping of single Kubernetes objects to model values (kube_objects.h): every field xlb
// reads, Kubernetes' defaults and nil semantics, and what happens to bad parts.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/kube/source/kube_fixtures.h"
#include "userspace/kube/source/kube_objects.h"

namespace xlb::kube {
namespace {

using namespace xlb::kube::testing;  // NOLINT: the fixtures

const ObjectSource kFromB{"cluster-b", "Service"};
const ObjectSource kSliceFromB{"cluster-b", "EndpointSlice"};

IpAddress Ip(const char* s) {
  return *IpAddress::Parse(s);
}

bool HasReason(const std::vector<ObjectProblem>& problems, const std::string& reason) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const ObjectProblem& p) { return p.reason == reason; });
}

TEST(KubeObjects, ServiceEveryField) {
  json s = ServiceObject("production", "api", "198.18.100.10");
  s["spec"]["type"] = "LoadBalancer";
  s["spec"]["clusterIPs"] = {"198.18.100.10", "2001:db8:100::10"};
  s["spec"]["externalIPs"] = {"198.18.250.10"};
  s["status"]["loadBalancer"]["ingress"] = {{{"ip", "198.18.251.10"}},
                                            {{"hostname", "lb.example.com"}}};
  s["spec"]["sessionAffinity"] = "ClientIP";
  s["spec"]["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 600}}}};
  s["spec"]["ports"] = {{{"name", "http"},
                         {"port", 80},
                         {"targetPort", "web"},
                         {"nodePort", 30080},
                         {"appProtocol", "http"}},
                        {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", 5353}}};
  const Mapped<Service> m = MapService(kFromB, s);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << m.problems.front().text;
  const Service& v = *m.value;
  EXPECT_EQ(v.name, (NamespacedName{"production", "api"}));
  EXPECT_EQ(v.cluster_ips, (std::vector<IpAddress>{Ip("198.18.100.10"), Ip("2001:db8:100::10")}));
  EXPECT_TRUE(v.clusterset_ips.empty());
  EXPECT_EQ(v.external_ips, std::vector<IpAddress>{Ip("198.18.250.10")});
  EXPECT_EQ(v.load_balancer_ips, std::vector<IpAddress>{Ip("198.18.251.10")});
  EXPECT_EQ(v.affinity, SessionAffinity::kClientIP);
  EXPECT_EQ(v.affinity_timeout_s, 600u);
  ASSERT_EQ(v.ports.size(), 2u);
  EXPECT_EQ(v.ports[0].name, "http");
  EXPECT_EQ(v.ports[0].port, 80);
  EXPECT_EQ(v.ports[0].protocol, Protocol::kTcp);  // defaulted
  EXPECT_EQ(v.ports[0].target_port, 0);
  EXPECT_EQ(v.ports[0].target_port_name, "web");
  EXPECT_EQ(v.ports[0].node_port, 30080);
  EXPECT_EQ(v.ports[0].app_protocol, "http");
  EXPECT_EQ(v.ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(v.ports[1].target_port, 5353);
}

TEST(KubeObjects, HeadlessServiceHasNoVipAndAffinityDefaults) {
  json s = ServiceObject("default", "db", "None");
  s["spec"]["clusterIPs"] = {"None"};
  s["spec"].erase("sessionAffinity");
  const Mapped<Service> m = MapService(kFromB, s);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.value->cluster_ips.empty());
  EXPECT_EQ(m.value->affinity, SessionAffinity::kNone);
  EXPECT_EQ(m.value->affinity_timeout_s, 10800u);
  EXPECT_TRUE(m.problems.empty());
}

TEST(KubeObjects, ExternalNameServiceIsIgnored) {
  json s = ServiceObject("default", "ext", "");
  s["spec"] = {{"type", "ExternalName"}, {"externalName", "db.example.com"}};
  const Mapped<Service> m = MapService(kFromB, s);
  EXPECT_FALSE(m.usable());
  EXPECT_FALSE(m.invalid());
  EXPECT_EQ(m.ignored, "external_name");
}

TEST(KubeObjects, BadServicePartsAreSkippedAndNamed) {
  json s = ServiceObject("production", "api", "x");
  s["spec"]["clusterIPs"] = {"x"};
  s["spec"]["externalIPs"] = {"198.18.250.10", "not-an-ip"};
  s["spec"]["ports"] = {{{"name", "zero"}, {"port", 0}},
                        {{"name", "big"}, {"port", 70000}},
                        {{"name", "text"}, {"port", "80"}},
                        {{"name", "sctp"}, {"port", 90}, {"protocol", "sctp"}},
                        {{"name", "good"}, {"port", 443}, {"nodePort", -1}},
                        {{"name", "dup"}, {"port", 443}}};
  const Mapped<Service> m = MapService(kFromB, s);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.value->cluster_ips.empty());
  EXPECT_EQ(m.value->external_ips, std::vector<IpAddress>{Ip("198.18.250.10")});
  ASSERT_EQ(m.value->ports.size(), 1u);
  EXPECT_EQ(m.value->ports[0].name, "good");
  EXPECT_EQ(m.value->ports[0].node_port, 0);
  EXPECT_TRUE(HasReason(m.problems, "bad_address"));
  EXPECT_TRUE(HasReason(m.problems, "bad_port"));
  EXPECT_TRUE(HasReason(m.problems, "bad_protocol"));
  EXPECT_TRUE(HasReason(m.problems, "duplicate_port"));
  const auto text = [&](const std::string& needle) {
    return std::any_of(m.problems.begin(), m.problems.end(), [&](const ObjectProblem& p) {
      return p.text.find(needle) != std::string::npos;
    });
  };
  EXPECT_TRUE(
      text("cluster-b: Service production/api: spec.ports[1].port: expected integer "
           "1-65535, got 70000"));
  EXPECT_TRUE(
      text("cluster-b: Service production/api: spec.clusterIP: expected an IPv4 or IPv6 "
           "address, got \"x\""));
  EXPECT_TRUE(text("spec.ports[2].port: expected integer 1-65535, got \"80\""));
}

TEST(KubeObjects, ServiceWithoutNameOrWithBadSpecIsUnusable) {
  json s = ServiceObject("production", "api", "198.18.100.10");
  s["metadata"].erase("name");
  Mapped<Service> m = MapService(kFromB, s);
  EXPECT_TRUE(m.invalid());
  ASSERT_EQ(m.problems.size(), 1u);
  EXPECT_EQ(m.problems[0].reason, "missing_name");
  EXPECT_NE(m.problems[0].text.find("cluster-b: Service (no name): metadata.name"),
            std::string::npos);

  s = ServiceObject("production", "api", "198.18.100.10");
  s["spec"] = "oops";
  m = MapService(kFromB, s);
  EXPECT_TRUE(m.invalid());
  EXPECT_EQ(m.problems.at(0).reason, "bad_spec");

  m = MapService(kFromB, json::array());
  EXPECT_TRUE(m.invalid());
}

TEST(KubeObjects, SliceNilConditionsStayUnset) {
  json eps =
      json::array({EndpointObject("198.18.1.1", "node-b1"),
                   EndpointObject("198.18.1.2", "", {{"ready", false}}),
                   EndpointObject("198.18.1.3", "",
                                  {{"ready", nullptr}, {"serving", true}, {"terminating", true}})});
  const Mapped<SliceInfo> m =
      MapEndpointSlice(kSliceFromB, SliceObject("production", "api-1", "api", eps));
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty());
  const SliceInfo& s = *m.value;
  EXPECT_EQ(s.name, (NamespacedName{"production", "api-1"}));
  EXPECT_EQ(s.service, "api");
  EXPECT_EQ(s.source_cluster, "");
  EXPECT_EQ(s.family, IpFamily::kIPv4);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0], (EndpointPort{"http", 8080, Protocol::kTcp}));
  ASSERT_EQ(s.endpoints.size(), 3u);
  EXPECT_EQ(s.endpoints[0].node_name, "node-b1");
  EXPECT_EQ(s.endpoints[0].conditions, EndpointConditions{});  // all nil
  EXPECT_TRUE(s.endpoints[0].conditions.Ready());
  EXPECT_EQ(s.endpoints[1].conditions.ready, std::optional<bool>(false));
  EXPECT_FALSE(s.endpoints[1].conditions.serving.has_value());
  EXPECT_FALSE(s.endpoints[1].conditions.Serving());  // nil serving follows ready
  EXPECT_FALSE(s.endpoints[2].conditions.ready.has_value());
  EXPECT_EQ(s.endpoints[2].conditions.terminating, std::optional<bool>(true));
}

TEST(KubeObjects, SlicePortsNilNameNilPortAndBadValues) {
  json slice = SliceObject("production", "api-1", "api",
                           json::array({EndpointObject("2001:db8::1")}), "IPv6");
  slice["ports"] = {{{"name", nullptr}, {"port", 8080}},   // "" and TCP
                    {{"name", "all"}, {"port", nullptr}},  // all ports: skipped
                    {{"name", "zero"}, {"port", 0}},       // bad
                    {{"name", "udp"}, {"port", 53}, {"protocol", "UDP"}}};
  const Mapped<SliceInfo> m = MapEndpointSlice(kSliceFromB, slice);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->family, IpFamily::kIPv6);
  EXPECT_EQ(m.value->ports,
            (std::vector<EndpointPort>{{"", 8080, Protocol::kTcp}, {"udp", 53, Protocol::kUdp}}));
  EXPECT_TRUE(HasReason(m.problems, "port_unset"));
  EXPECT_TRUE(HasReason(m.problems, "bad_port"));
}

TEST(KubeObjects, BadEndpointsAreSkippedOthersKept) {
  json eps = json::array({EndpointObject("x"),
                          EndpointObject("198.18.1.2"),
                          EndpointObject("2001:db8::3"),  // wrong family for IPv4
                          {{"addresses", json::array()}},
                          EndpointObject("198.18.1.5", "", {{"ready", "yes"}}),
                          EndpointObject("198.18.1.6")});
  const Mapped<SliceInfo> m =
      MapEndpointSlice(kSliceFromB, SliceObject("production", "api-1", "api", eps));
  ASSERT_TRUE(m.usable());
  ASSERT_EQ(m.value->endpoints.size(), 2u);
  EXPECT_EQ(m.value->endpoints[0].addresses[0], Ip("198.18.1.2"));
  EXPECT_EQ(m.value->endpoints[1].addresses[0], Ip("198.18.1.6"));
  EXPECT_TRUE(HasReason(m.problems, "bad_address"));
  EXPECT_TRUE(HasReason(m.problems, "bad_condition"));
  EXPECT_NE(m.problems[0].text.find("cluster-b: EndpointSlice production/api-1: "
                                    "endpoints[0].addresses[0]: expected an IPv4 address, got "
                                    "\"x\""),
            std::string::npos)
      << m.problems[0].text;
}

TEST(KubeObjects, SliceKinds) {
  json eps = json::array({EndpointObject("198.18.1.1")});
  // FQDN: valid, not for a proxy.
  Mapped<SliceInfo> m =
      MapEndpointSlice(kSliceFromB, SliceObject("production", "a", "api", eps, "FQDN"));
  EXPECT_EQ(m.ignored, "fqdn");
  // No service label: a slice of no service.
  json orphan = SliceObject("production", "b", "api", eps);
  orphan["metadata"].erase("labels");
  m = MapEndpointSlice(kSliceFromB, orphan);
  EXPECT_EQ(m.ignored, "no_service_label");
  // No addressType: unusable.
  json untyped = SliceObject("production", "c", "api", eps);
  untyped.erase("addressType");
  m = MapEndpointSlice(kSliceFromB, untyped);
  EXPECT_TRUE(m.invalid());
  EXPECT_EQ(m.problems.at(0).reason, "bad_address_type");
  // MCS labels.
  m = MapEndpointSlice(kSliceFromB, SliceObject("production", "d", "api", eps, "IPv4", "east"));
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->service, "api");
  EXPECT_EQ(m.value->source_cluster, "east");
}

TEST(KubeObjects, ServiceImportBothShapes) {
  const ObjectSource from{"cluster-a", "ServiceImport"};
  json v1alpha1 = ImportObject("production", "api", {"198.18.200.10"});
  v1alpha1["spec"]["sessionAffinity"] = "ClientIP";
  Mapped<ImportInfo> m = MapServiceImport(from, v1alpha1);
  ASSERT_TRUE(m.usable());
  EXPECT_FALSE(m.value->headless);
  EXPECT_EQ(m.value->ips, std::vector<IpAddress>{Ip("198.18.200.10")});
  ASSERT_EQ(m.value->ports.size(), 1u);
  EXPECT_EQ(m.value->ports[0].port, 80);
  EXPECT_EQ(m.value->affinity, SessionAffinity::kClientIP);

  json root_fields = v1alpha1["spec"];
  root_fields["apiVersion"] = "multicluster.x-k8s.io/v1beta1";
  root_fields["metadata"] = v1alpha1["metadata"];
  m = MapServiceImport(from, root_fields);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->ips, std::vector<IpAddress>{Ip("198.18.200.10")});
  EXPECT_EQ(m.value->ports.size(), 1u);

  m = MapServiceImport(from, ImportObject("production", "db", {}, "Headless"));
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.value->headless);
  EXPECT_TRUE(m.value->ips.empty());
  EXPECT_TRUE(m.problems.empty());
}

TEST(KubeObjects, NodePrefersInternalIp) {
  const ObjectSource from{"cluster-b", "Node"};
  Mapped<NodeInfo> m = MapNode(from, NodeObject("node-b1", "198.18.0.21", "203.0.113.1"));
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->tunnel_address, Ip("198.18.0.21"));
  EXPECT_EQ(m.value->addresses, (std::vector<IpAddress>{Ip("198.18.0.21"), Ip("203.0.113.1")}));
  m = MapNode(from, NodeObject("node-b2", "", "198.18.0.99"));
  EXPECT_EQ(m.value->tunnel_address, Ip("198.18.0.99"));
  m = MapNode(from, NodeObject("node-b3", "x"));
  ASSERT_TRUE(m.usable());
  EXPECT_FALSE(m.value->tunnel_address.has_value());
  EXPECT_TRUE(HasReason(m.problems, "bad_address"));
}

TEST(KubeObjects, NodeLabelledWithoutXlb) {
  const ObjectSource from{"", "Node"};
  nlohmann::json node = NodeObject("node-a3", "198.18.6.2");
  EXPECT_TRUE(MapNode(from, node).value->runs_xlb);
  node["metadata"]["labels"] = {{"xlb.dev/datapath", "none"}, {"kubernetes.io/os", "linux"}};
  EXPECT_FALSE(MapNode(from, node).value->runs_xlb);
  node["metadata"]["labels"]["xlb.dev/datapath"] = "xdp";
  EXPECT_TRUE(MapNode(from, node).value->runs_xlb);
}

TEST(KubeObjects, ClusterProperty) {
  const ObjectSource from{"", "ClusterProperty"};
  Mapped<std::string> m =
      MapClusterProperty(from, ClusterPropertyObject("cluster.clusterset.k8s.io", "cluster-a"));
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(*m.value, "cluster-a");
  m = MapClusterProperty(from, ClusterPropertyObject("clusterset.k8s.io", "set-1"));
  EXPECT_EQ(m.ignored, "other_property");
  m = MapClusterProperty(from, ClusterPropertyObject("cluster.clusterset.k8s.io", "Not A Name"));
  EXPECT_TRUE(m.invalid());
  EXPECT_NE(m.problems.at(0).text.find("local cluster: ClusterProperty "
                                       "cluster.clusterset.k8s.io: spec.value"),
            std::string::npos);
}

}  // namespace
}  // namespace xlb::kube
