// What xlb reads of the Kubernetes objects it watches: pure functions from an object as the API
// server sends it (nlohmann::json) to compact model values, so that the caches of KubeSource
// hold a few hundred bytes per endpoint instead of the raw JSON.
//
// Validation follows kube-proxy: the API server validates built-in kinds, so what fails here
// is a broken or foreign writer (a CRD such as ServiceImport is barely validated). A bad part
// (a port of 0 or 70000, an address "x", an endpoint without addresses) is skipped and
// reported, and the rest of the object is used, as kube-proxy skips invalid endpoints. An
// object that is unusable as a whole (no name, no service label, spec of the wrong type) has
// no value; KubeSource then keeps the last good version of it (see kube_source.h).
//
// Every problem names the cluster, the kind, namespace/name and the field:
//   cluster-b: EndpointSlice production/api-7x2: endpoints[2].addresses[0]: expected an IPv4
//   address, got "x"
// and carries a short reason ("bad_port") that KubeSource counts per cluster and kind.
#ifndef XLB_USERSPACE_KUBE_SOURCE_KUBE_OBJECTS_H
#define XLB_USERSPACE_KUBE_SOURCE_KUBE_OBJECTS_H

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/model/ip_address.h"
#include "userspace/model/model.h"

namespace xlb::kube {

// Labels of EndpointSlices: the service of a cluster's own slice, and of the slices an MCS
// controller (Submariner's Lighthouse, the MCS reference controller) writes for the endpoints
// of another cluster.
inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr std::string_view kMcsServiceNameLabel = "multicluster.kubernetes.io/service-name";
inline constexpr std::string_view kMcsSourceClusterLabel =
    "multicluster.kubernetes.io/source-cluster";
// The ClusterProperty (KEP-2149) whose value is this cluster's name in the clusterset.
inline constexpr std::string_view kClusterIdProperty = "cluster.clusterset.k8s.io";
// A Service with this label (any value) belongs to another proxy: kube-proxy's informers select
// `!service.kubernetes.io/service-proxy-name`, so it skips it, and so does xlb.
inline constexpr std::string_view kServiceProxyNameLabel =
    "service.kubernetes.io/service-proxy-name";
// Topology-aware routing by annotation (Auto|auto); the deprecated one wins when both are set,
// as in the EndpointSlice controller.
inline constexpr std::string_view kTopologyModeAnnotation = "service.kubernetes.io/topology-mode";
inline constexpr std::string_view kTopologyAwareHintsAnnotation =
    "service.kubernetes.io/topology-aware-hints";
// The older spelling of spec.loadBalancerSourceRanges, read when the field is empty.
inline constexpr std::string_view kSourceRangesAnnotation =
    "service.beta.kubernetes.io/load-balancer-source-ranges";
// The Node label that names its zone.
inline constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";

// Where an object came from, for messages.
struct ObjectSource {
  std::string cluster;  // the cluster whose API server sent it ("" when not known yet: "local")
  std::string kind;     // "Service", "EndpointSlice", ...
};

// One thing wrong with an object.
struct ObjectProblem {
  std::string reason;  // short and stable, a metrics label: "bad_port", "missing_name", ...
  std::string text;    // the whole message, naming cluster, kind, namespace/name and field

  bool operator==(const ObjectProblem&) const = default;
};

// A problem with the object `name` of `from`, worded as the mappings below word theirs:
//   "cluster-b: EndpointSlice production/api-7x2: FIELD: MESSAGE"
ObjectProblem ProblemWith(const ObjectSource& from, const NamespacedName& name, std::string reason,
                          std::string_view field, std::string_view message);

// What a mapping made of one object.
template <typename T>
struct Mapped {
  std::optional<T> value;  // the object (with any bad parts skipped); nullopt: see below
  // Set when the object is valid but not something xlb proxies (a Service of type
  // ExternalName or of another proxy, an FQDN EndpointSlice, another ClusterProperty): value is
  // nullopt and the object counts as absent. `problems` then says why (with `ignored` as its
  // reason), except for objects that are not for a proxy at all (another ClusterProperty).
  std::string ignored;
  // Parts skipped or not honoured (value set), or why the object is unusable (value nullopt,
  // ignored ""), or why it is ignored.
  std::vector<ObjectProblem> problems;

  bool usable() const { return value.has_value(); }
  bool invalid() const { return !value && ignored.empty(); }
};

// metadata.namespace and metadata.name ("" namespace for cluster-scoped kinds); nullopt when
// the name is missing or not a string.
std::optional<NamespacedName> ObjectName(const nlohmann::json& object);

// A v1 Service: cluster IPs ("None" = headless: none), external IPs, load-balancer ingress
// IPs (not those of ipMode Proxy, which kube-proxy leaves to the load balancer), ports, session
// affinity, the traffic policies ("Global", the legacy spelling, is Cluster),
// healthCheckNodePort, loadBalancerSourceRanges (else the annotation), topology-aware routing
// (spec.trafficDistribution PreferClose or PreferSameZone, or the topology annotations set to
// Auto). `clusterset_ips` stays empty (that is the ServiceImport's).
//
// Ignored: spec.type ExternalName ("external_name"), which no proxy serves; the label
// service.kubernetes.io/service-proxy-name ("service_proxy_name"), another proxy's service.
// Not honoured and reported ("not_honoured"), the rest applies: other trafficDistribution values
// (PreferSameNode is read as PreferClose: the controller writes zone hints for it too), other
// topology annotation values, the externalIPs of a headless service (kube-proxy skips
// headless services). A source range with host bits is read as its network, as kube-proxy's
// iptables and IPVS read it; one that is no CIDR is skipped. When ranges are given and none is
// usable the Service is unusable: an empty list would admit every source.
Mapped<Service> MapService(const ObjectSource& from, const nlohmann::json& object);

// An endpoint of an EndpointSlice, before its node is resolved to an address.
struct SliceEndpoint {
  std::vector<IpAddress> addresses;     // at least one, of the slice's family
  std::string node_name;                // "" when unset
  std::string zone;                     // "" when unset
  std::vector<std::string> zone_hints;  // hints.forZones[].name
  EndpointConditions conditions;        // unset stays unset (EndpointSlice nil semantics)

  bool operator==(const SliceEndpoint&) const = default;
};

// A discovery.k8s.io/v1 EndpointSlice.
struct SliceInfo {
  NamespacedName name;  // the slice's own namespace/name
  std::string service;  // the service's name (namespace: the slice's)
  // The MCS label source-cluster: the endpoints are that cluster's. "" for the cluster's own
  // slices (label kubernetes.io/service-name).
  std::string source_cluster;
  IpFamily family = IpFamily::kIPv4;
  std::vector<EndpointPort> ports;  // ports with a number; a nil port ("all ports") is skipped
  std::vector<SliceEndpoint> endpoints;
  // Annotation endpoints.kubernetes.io/last-change-trigger-time: when the change this version
  // of the slice carries happened (a Pod turning ready, a Service edited), the start of
  // xlb_network_programming_duration_seconds. Unset when absent or not RFC 3339.
  std::optional<std::chrono::system_clock::time_point> trigger_time;

  bool operator==(const SliceInfo&) const = default;
};

inline constexpr const char* kTriggerTimeAnnotation =
    "endpoints.kubernetes.io/last-change-trigger-time";

// Each endpoint's zone and hints.forZones (a bad one is reported and leaves the endpoint
// without hints, which turns topology off for its service, as a missing hint does in
// kube-proxy). Ignored: addressType FQDN ("fqdn"), no service label ("no_service_label").
// Unusable: no name, no addressType.
Mapped<SliceInfo> MapEndpointSlice(const ObjectSource& from, const nlohmann::json& object);

// A multicluster.x-k8s.io ServiceImport (v1alpha1: fields under spec; newer drafts of the MCS
// API move them to the object's root, which is read when there is no spec).
struct ImportInfo {
  NamespacedName name;
  bool headless = false;           // type Headless: no ClusterSet IP
  std::vector<IpAddress> ips;      // spec.ips, empty when headless
  std::vector<ServicePort> ports;  // name, port, protocol, appProtocol
  SessionAffinity affinity = SessionAffinity::kNone;
  uint32_t affinity_timeout_s = 10800;

  bool operator==(const ImportInfo&) const = default;
};

Mapped<ImportInfo> MapServiceImport(const ObjectSource& from, const nlohmann::json& object);

// A v1 Node: its tunnel endpoint (the first InternalIP, else the first ExternalIP), every
// InternalIP and ExternalIP (the NodePort frontends when it is this agent's node) and its zone.
struct NodeInfo {
  std::string name;
  std::optional<IpAddress> tunnel_address;
  std::vector<IpAddress> addresses;
  // False when the Node is labelled `xlb.dev/datapath: none` (the label that keeps the
  // DaemonSet off it): its pods are not reached through the tunnel.
  bool runs_xlb = true;
  std::string zone;  // label topology.kubernetes.io/zone, "" when unset

  bool operator==(const NodeInfo&) const = default;
};

// The label that marks a Node without xlb (value `none`).
inline constexpr const char* kDatapathLabel = "xlb.dev/datapath";

Mapped<NodeInfo> MapNode(const ObjectSource& from, const nlohmann::json& object);

// An about.k8s.io/v1alpha1 ClusterProperty: the value of cluster.clusterset.k8s.io, which must
// be a DNS-1123 label (xlb's cluster names). Other properties are ignored ("other_property").
Mapped<std::string> MapClusterProperty(const ObjectSource& from, const nlohmann::json& object);

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_SOURCE_KUBE_OBJECTS_H
