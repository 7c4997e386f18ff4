// The Service, EndpointSlice and Node fields kube-proxy honours beyond addresses and ports
// (traffic policies, healthCheckNodePort, source ranges, topology, endpoint conditions, zones),
// read from objects written as the API server and its controllers write them, and each bad or
// unhonoured value named with its object and field.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/kube/source/kube_fixtures.h"
#include "userspace/kube/source/kube_objects.h"

namespace xlb::kube {
namespace {

using namespace xlb::kube::testing;  // NOLINT: the fixtures

const ObjectSource kFromA{"cluster-a", "Service"};
const ObjectSource kSliceFromA{"cluster-a", "EndpointSlice"};

IpPrefix Prefix(const char* s) {
  return *IpPrefix::Parse(s);
}

const ObjectProblem* Find(const std::vector<ObjectProblem>& problems, const std::string& needle) {
  const auto it = std::find_if(problems.begin(), problems.end(), [&](const ObjectProblem& p) {
    return p.text.find(needle) != std::string::npos;
  });
  return it == problems.end() ? nullptr : &*it;
}

std::string Texts(const std::vector<ObjectProblem>& problems) {
  std::string out;
  for (const ObjectProblem& p : problems) {
    out += "\n  [" + p.reason + "] " + p.text;
  }
  return out;
}

::testing::AssertionResult Reported(const std::vector<ObjectProblem>& problems,
                                    const std::string& needle) {
  if (Find(problems, needle) != nullptr) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no problem says \"" << needle << "\"; they are:" << Texts(problems);
}

// `kubectl get svc api -o json` of a LoadBalancer Service with externalTrafficPolicy Local, as a
// 1.31 API server returns it (the API server allocated clusterIP, nodePort and
// healthCheckNodePort; the cloud controller wrote the ingress).
json LoadBalancerService() {
  return json::parse(R"({
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
      "name": "api",
      "namespace": "production",
      "uid": "0c1f3e3a-4e3b-4a51-9a58-2c9e4e0e7a11",
      "resourceVersion": "48211",
      "creationTimestamp": "2026-12-01T10:00:00Z",
      "labels": {"app": "api"},
      "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
    },
    "spec": {
      "type": "LoadBalancer",
      "selector": {"app": "api"},
      "clusterIP": "198.18.100.10",
      "clusterIPs": ["198.18.100.10"],
      "ipFamilies": ["IPv4"],
      "ipFamilyPolicy": "SingleStack",
      "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
                 "nodePort": 30080}],
      "sessionAffinity": "None",
      "externalTrafficPolicy": "Local",
      "internalTrafficPolicy": "Local",
      "healthCheckNodePort": 32456,
      "loadBalancerSourceRanges": ["198.18.0.0/16", "2001:db8:1::/48"],
      "allocateLoadBalancerNodePorts": true,
      "trafficDistribution": "PreferClose"
    },
    "status": {
      "loadBalancer": {"ingress": [{"ip": "198.18.251.10", "ipMode": "VIP"}]}
    }
  })");
}

TEST(ServiceFields, LoadBalancerWithLocalPoliciesFromTheApiServer) {
  const Mapped<Service> m = MapService(kFromA, LoadBalancerService());
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << Texts(m.problems);
  const Service& s = *m.value;
  EXPECT_EQ(s.external_policy, ServiceTrafficPolicy::kLocal);
  EXPECT_EQ(s.internal_policy, ServiceTrafficPolicy::kLocal);
  EXPECT_EQ(s.health_check_node_port, 32456);
  EXPECT_EQ(s.load_balancer_source_ranges,
            (std::vector<IpPrefix>{Prefix("198.18.0.0/16"), Prefix("2001:db8:1::/48")}));
  EXPECT_EQ(s.topology, TopologyRouting::kPreferClose);
  EXPECT_EQ(s.load_balancer_ips, std::vector<IpAddress>{*IpAddress::Parse("198.18.251.10")});
}

TEST(ServiceFields, DefaultsWhenUnset) {
  json svc = LoadBalancerService();
  for (const char* key : {"externalTrafficPolicy", "internalTrafficPolicy", "healthCheckNodePort",
                          "loadBalancerSourceRanges", "trafficDistribution"}) {
    svc["spec"].erase(key);
  }
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << Texts(m.problems);
  EXPECT_EQ(m.value->external_policy, ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(m.value->internal_policy, ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(m.value->health_check_node_port, 0);
  EXPECT_TRUE(m.value->load_balancer_source_ranges.empty());
  EXPECT_EQ(m.value->topology, TopologyRouting::kNone);
}

TEST(ServiceFields, LegacyGlobalIsCluster) {
  json svc = LoadBalancerService();
  svc["spec"]["externalTrafficPolicy"] = "Global";
  svc["spec"]["internalTrafficPolicy"] = "Cluster";
  svc["spec"].erase("healthCheckNodePort");
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << Texts(m.problems);
  EXPECT_EQ(m.value->external_policy, ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(m.value->internal_policy, ServiceTrafficPolicy::kCluster);
}

TEST(ServiceFields, BadValuesAreNamedAndReadAsTheDefault) {
  json svc = LoadBalancerService();
  svc["spec"]["externalTrafficPolicy"] = "Lokal";
  svc["spec"]["internalTrafficPolicy"] = "Global";  // only externalTrafficPolicy had it
  svc["spec"]["healthCheckNodePort"] = 70000;
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->external_policy, ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(m.value->internal_policy, ServiceTrafficPolicy::kCluster);
  EXPECT_EQ(m.value->health_check_node_port, 0);
  const ObjectProblem* etp = Find(
      m.problems,
      "cluster-a: Service production/api: spec.externalTrafficPolicy: expected one of Cluster, "
      "Local, got \"Lokal\"; read as Cluster");
  ASSERT_NE(etp, nullptr) << Texts(m.problems);
  EXPECT_EQ(etp->reason, "bad_value");
  EXPECT_TRUE(Reported(m.problems,
                       "spec.internalTrafficPolicy: expected one of Cluster, Local, got "
                       "\"Global\""));
  const ObjectProblem* hc =
      Find(m.problems, "spec.healthCheckNodePort: expected integer 1-65535, got 70000");
  ASSERT_NE(hc, nullptr) << Texts(m.problems);
  EXPECT_EQ(hc->reason, "bad_port");
  EXPECT_EQ(m.problems.size(), 3u) << Texts(m.problems);
}

TEST(ServiceFields, SourceRangeWithHostBitsIsReadAsItsNetwork) {
  json svc = LoadBalancerService();
  svc["spec"]["loadBalancerSourceRanges"] = {"198.18.0.1/15", " 2001:db8::1/32 ", "not-a-cidr",
                                             "198.18.0.0/33"};
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->load_balancer_source_ranges,
            (std::vector<IpPrefix>{Prefix("198.18.0.0/15"), Prefix("2001:db8::/32")}));
  const ObjectProblem* host_bits =
      Find(m.problems,
           "cluster-a: Service production/api: spec.loadBalancerSourceRanges[0]: "
           "\"198.18.0.1/15\" has host bits set; read as 198.18.0.0/15");
  ASSERT_NE(host_bits, nullptr) << Texts(m.problems);
  EXPECT_EQ(host_bits->reason, "bad_address");
  EXPECT_TRUE(
      Reported(m.problems, "[1]: \" 2001:db8::1/32 \" has host bits set; read as 2001:db8::/32"));
  EXPECT_TRUE(Reported(m.problems,
                       "spec.loadBalancerSourceRanges[2]: expected a CIDR such as "
                       "198.18.0.0/15, got \"not-a-cidr\"; skipped"));
  EXPECT_TRUE(Reported(m.problems, "spec.loadBalancerSourceRanges[3]: expected a CIDR"));
}

// Skipping every range would leave an empty list, which admits every source: the Service is
// unusable instead, so that the last good version (or none) stays in force.
TEST(ServiceFields, NoUsableSourceRangeMakesTheServiceUnusable) {
  json svc = LoadBalancerService();
  svc["spec"]["loadBalancerSourceRanges"] = {"10.0.0.0/8x", ""};
  const Mapped<Service> m = MapService(kFromA, svc);
  EXPECT_TRUE(m.invalid());
  EXPECT_TRUE(
      Reported(m.problems, "spec.loadBalancerSourceRanges: none of the source ranges is usable"));
}

TEST(ServiceFields, SourceRangesFromTheAnnotationWhenTheFieldIsEmpty) {
  json svc = LoadBalancerService();
  svc["spec"]["loadBalancerSourceRanges"] = json::array();
  svc["metadata"]["annotations"]["service.beta.kubernetes.io/load-balancer-source-ranges"] =
      " 198.18.0.0/16 ,2001:db8::/32,, ";
  Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << Texts(m.problems);
  EXPECT_EQ(m.value->load_balancer_source_ranges,
            (std::vector<IpPrefix>{Prefix("198.18.0.0/16"), Prefix("2001:db8::/32")}));

  // The field wins over the annotation.
  svc["spec"]["loadBalancerSourceRanges"] = {"198.19.0.0/16"};
  m = MapService(kFromA, svc);
  EXPECT_EQ(m.value->load_balancer_source_ranges, std::vector<IpPrefix>{Prefix("198.19.0.0/16")});

  svc["spec"].erase("loadBalancerSourceRanges");
  svc["metadata"]["annotations"]["service.beta.kubernetes.io/load-balancer-source-ranges"] =
      "198.18.0.0/16,bogus";
  m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->load_balancer_source_ranges, std::vector<IpPrefix>{Prefix("198.18.0.0/16")});
  EXPECT_TRUE(
      Reported(m.problems,
               "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: "
               "expected a CIDR such as 198.18.0.0/15, got \"bogus\"; skipped"));
}

TEST(ServiceFields, TrafficDistribution) {
  json svc = LoadBalancerService();
  for (const char* value : {"PreferClose", "PreferSameZone"}) {
    svc["spec"]["trafficDistribution"] = value;
    const Mapped<Service> m = MapService(kFromA, svc);
    EXPECT_EQ(m.value->topology, TopologyRouting::kPreferClose) << value;
    EXPECT_TRUE(m.problems.empty()) << value << Texts(m.problems);
  }
  svc["spec"]["trafficDistribution"] = "PreferSameNode";
  Mapped<Service> m = MapService(kFromA, svc);
  EXPECT_EQ(m.value->topology, TopologyRouting::kPreferClose);
  const ObjectProblem* node = Find(m.problems,
                                   "spec.trafficDistribution: PreferSameNode is not "
                                   "honoured: read as PreferSameZone");
  ASSERT_NE(node, nullptr) << Texts(m.problems);
  EXPECT_EQ(node->reason, "not_honoured");

  svc["spec"]["trafficDistribution"] = "example.com/nearest";
  m = MapService(kFromA, svc);
  EXPECT_EQ(m.value->topology, TopologyRouting::kNone);
  EXPECT_TRUE(Reported(m.problems,
                       "cluster-a: Service production/api: spec.trafficDistribution: "
                       "expected PreferClose or PreferSameZone, got "
                       "\"example.com/nearest\"; not honoured"));
}

// The annotations as the EndpointSlice controller reads them (hintsEnabled): "Auto" or "auto";
// the deprecated one wins when present.
TEST(ServiceFields, TopologyAnnotations) {
  const auto topology = [](json annotations, size_t problems = 0) {
    json svc = LoadBalancerService();
    svc["spec"].erase("trafficDistribution");
    svc["metadata"]["annotations"] = std::move(annotations);
    const Mapped<Service> m = MapService(kFromA, svc);
    EXPECT_EQ(m.problems.size(), problems) << Texts(m.problems);
    return m.value->topology;
  };
  constexpr auto kMode = "service.kubernetes.io/topology-mode";
  constexpr auto kHints = "service.kubernetes.io/topology-aware-hints";
  EXPECT_EQ(topology({{kMode, "Auto"}}), TopologyRouting::kPreferClose);
  EXPECT_EQ(topology({{kMode, "auto"}}), TopologyRouting::kPreferClose);
  EXPECT_EQ(topology({{kHints, "Auto"}}), TopologyRouting::kPreferClose);
  EXPECT_EQ(topology({{kMode, "Disabled"}}), TopologyRouting::kNone);
  EXPECT_EQ(topology({{kMode, ""}}), TopologyRouting::kNone);
  EXPECT_EQ(topology({{kMode, "Auto"}, {kHints, "disabled"}}), TopologyRouting::kNone);
  EXPECT_EQ(topology({{kMode, "disabled"}, {kHints, "auto"}}), TopologyRouting::kPreferClose);
  EXPECT_EQ(topology({{kMode, "aUto"}}, 1), TopologyRouting::kNone);

  json svc = LoadBalancerService();
  svc["spec"].erase("trafficDistribution");
  svc["metadata"]["annotations"] = {{kMode, "enabled"}};
  const Mapped<Service> m = MapService(kFromA, svc);
  EXPECT_TRUE(Reported(m.problems,
                       "metadata.annotations[service.kubernetes.io/topology-mode]: "
                       "expected Auto or Disabled, got \"enabled\"; not honoured"));
}

// kube-proxy's informers select `!service.kubernetes.io/service-proxy-name`.
TEST(ServiceFields, ServiceOfAnotherProxyIsIgnored) {
  json svc = LoadBalancerService();
  svc["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] = "other-proxy";
  Mapped<Service> m = MapService(kFromA, svc);
  EXPECT_FALSE(m.usable());
  EXPECT_FALSE(m.invalid());
  EXPECT_EQ(m.ignored, "service_proxy_name");
  ASSERT_EQ(m.problems.size(), 1u);
  EXPECT_EQ(m.problems[0].reason, "service_proxy_name");
  EXPECT_NE(
      m.problems[0].text.find("cluster-a: Service production/api: "
                              "metadata.labels[service.kubernetes.io/service-proxy-name]: set to "
                              "\"other-proxy\": the service of another proxy; skipped"),
      std::string::npos)
      << m.problems[0].text;
  svc["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] = "";
  EXPECT_EQ(MapService(kFromA, svc).ignored, "service_proxy_name");  // the label's presence
}

TEST(ServiceFields, ExternalNameIsIgnoredWithAMessage) {
  json svc = LoadBalancerService();
  svc["spec"] = {{"type", "ExternalName"}, {"externalName", "api.example.com"}};
  const Mapped<Service> m = MapService(kFromA, svc);
  EXPECT_EQ(m.ignored, "external_name");
  ASSERT_EQ(m.problems.size(), 1u);
  EXPECT_NE(m.problems[0].text.find("spec.type: ExternalName"), std::string::npos);
}

// kube-proxy skips a headless service as a whole, so its externalIPs answer nothing there.
TEST(ServiceFields, HeadlessServiceServesNoExternalIps) {
  json svc = LoadBalancerService();
  svc["spec"] = {{"type", "ClusterIP"},
                 {"clusterIP", "None"},
                 {"clusterIPs", {"None"}},
                 {"externalIPs", {"198.18.250.10"}},
                 {"ports", {{{"name", "db"}, {"port", 5432}}}}};
  svc.erase("status");
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.value->Vips().empty());
  const ObjectProblem* p = Find(m.problems, "spec.externalIPs: a headless service");
  ASSERT_NE(p, nullptr) << Texts(m.problems);
  EXPECT_EQ(p->reason, "not_honoured");
}

// status.loadBalancer.ingress[].ipMode Proxy (KEP-1860): the load balancer sends to the nodes,
// not to its address, and kube-proxy leaves that address to it.
TEST(ServiceFields, IngressOfIpModeProxyIsNoVip) {
  json svc = LoadBalancerService();
  svc["status"]["loadBalancer"]["ingress"] = {{{"ip", "198.18.251.10"}, {"ipMode", "Proxy"}},
                                              {{"ip", "198.18.251.11"}, {"ipMode", "VIP"}},
                                              {{"ip", "198.18.251.12"}},
                                              {{"ip", "198.18.251.13"}, {"ipMode", "Tunnel"}}};
  const Mapped<Service> m = MapService(kFromA, svc);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->load_balancer_ips,
            (std::vector<IpAddress>{*IpAddress::Parse("198.18.251.11"),
                                    *IpAddress::Parse("198.18.251.12"),
                                    *IpAddress::Parse("198.18.251.13")}));
  EXPECT_TRUE(Reported(m.problems,
                       "status.loadBalancer.ingress[3].ipMode: expected one of VIP, Proxy, "
                       "got \"Tunnel\"; read as VIP"));
}

TEST(SliceFields, ConditionsZonesAndHintsFromTheController) {
  const Mapped<SliceInfo> m = MapEndpointSlice(kSliceFromA, ControllerSliceObject());
  ASSERT_TRUE(m.usable());
  EXPECT_TRUE(m.problems.empty()) << Texts(m.problems);
  const std::vector<SliceEndpoint>& e = m.value->endpoints;
  ASSERT_EQ(e.size(), 3u);

  // publishNotReadyAddresses: the controller says ready regardless of the pod (serving says
  // the pod's readiness); kube-proxy sends new flows to ready endpoints (IsReady), so this one
  // takes them.
  EXPECT_TRUE(e[0].conditions.Ready());
  EXPECT_FALSE(e[0].conditions.Serving());
  EXPECT_EQ(e[0].zone, "zone-1");
  EXPECT_EQ(e[0].zone_hints, std::vector<std::string>{"zone-1"});

  // Terminating and still serving: no new flows, but the fallback when nothing is ready.
  EXPECT_FALSE(e[1].conditions.Ready());
  EXPECT_TRUE(e[1].conditions.Serving());
  EXPECT_TRUE(e[1].conditions.Terminating());
  EXPECT_EQ(e[1].zone_hints, (std::vector<std::string>{"zone-2", "zone-3"}));

  // Terminating, no longer serving: neither.
  EXPECT_FALSE(e[2].conditions.Ready());
  EXPECT_FALSE(e[2].conditions.Serving());
  EXPECT_TRUE(e[2].zone_hints.empty());
}

// A bad zone or hint costs the endpoint its topology preference, never the endpoint.
TEST(SliceFields, BadZoneAndHintsKeepTheEndpoint) {
  json slice = ControllerSliceObject();
  slice["endpoints"][0]["zone"] = 7;
  slice["endpoints"][0]["hints"] = {{"forZones", {{{"name", "zone-1"}}, {{"name", 3}}}}};
  slice["endpoints"][1]["hints"] = "zone-2";
  slice["endpoints"][2]["hints"] = {{"forZones", {{"name", "zone-2"}}}};  // not a list
  const Mapped<SliceInfo> m = MapEndpointSlice(kSliceFromA, slice);
  ASSERT_TRUE(m.usable());
  ASSERT_EQ(m.value->endpoints.size(), 3u);
  for (const SliceEndpoint& e : m.value->endpoints) {
    EXPECT_TRUE(e.zone_hints.empty());
  }
  EXPECT_EQ(m.value->endpoints[0].zone, "");
  EXPECT_TRUE(Reported(m.problems,
                       "cluster-a: EndpointSlice production/api-x7k2p: endpoints[0].zone: "
                       "expected a string, got 7"));
  const ObjectProblem* hint =
      Find(m.problems, "endpoints[0].hints.forZones[1].name: expected a zone name, got 3");
  ASSERT_NE(hint, nullptr) << Texts(m.problems);
  EXPECT_EQ(hint->reason, "bad_hint");
  EXPECT_TRUE(Reported(m.problems, "endpoints[1].hints: expected an object, got \"zone-2\""));
  EXPECT_TRUE(Reported(m.problems, "endpoints[2].hints.forZones: expected a list, got an object"));
}

TEST(NodeFields, ZoneLabel) {
  const json node = json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "node-a1", "labels": {
      "kubernetes.io/hostname": "node-a1",
      "topology.kubernetes.io/region": "region-1",
      "topology.kubernetes.io/zone": "zone-1"}},
    "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.11"},
                             {"type": "Hostname", "address": "node-a1"}]}
  })");
  const Mapped<NodeInfo> m = MapNode({"cluster-a", "Node"}, node);
  ASSERT_TRUE(m.usable());
  EXPECT_EQ(m.value->zone, "zone-1");
  json unlabelled = node;
  unlabelled["metadata"].erase("labels");
  EXPECT_EQ(MapNode({"cluster-a", "Node"}, unlabelled).value->zone, "");
}

bool ValidUtf8(const std::string& s) {
  try {
    (void)json(s).dump();  // strict: throws on invalid UTF-8
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

// Messages quote at most 64 bytes of a value; the cut falls on a character boundary.
TEST(ObjectProblems, LongValuesAreCutBetweenCharacters) {
  // "\"" + 59 ASCII + "ü" (2 bytes) + ...: byte 61 of the dump is the middle of "ü".
  const std::string value = std::string(59, 'a') + "\xC3\xBC" + "bcdef" + std::string(20, 'x');
  json svc = LoadBalancerService();
  svc["spec"]["externalTrafficPolicy"] = value;
  const Mapped<Service> m = MapService(kFromA, svc);
  const ObjectProblem* p = Find(m.problems, "spec.externalTrafficPolicy");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(ValidUtf8(p->text)) << p->text;
  EXPECT_NE(p->text.find("got \"" + std::string(59, 'a') + "...; read as Cluster"),
            std::string::npos)
      << p->text;

  // A three-byte character across the cut, in an annotation.
  const std::string euro = std::string(58, 'a') + "\xE2\x82\xAC" + std::string(20, 'b');
  svc["metadata"]["annotations"]["service.kubernetes.io/topology-mode"] = euro;
  const Mapped<Service> n = MapService(kFromA, svc);
  const ObjectProblem* q = Find(n.problems, "topology-mode");
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(ValidUtf8(q->text)) << q->text;
}

}  // namespace
}  // namespace xlb::kube
