// The agent's model of the clusterset: clusters, services and their endpoints, as plain values.
// Sources (the embedded config file, later the Kubernetes watches) build a Model; the planner
// reads one. Field names follow Kubernetes (Service, EndpointSlice) and the MCS API
// (ServiceImport's ClusterSet IPs).
#ifndef XLB_USERSPACE_MODEL_MODEL_H
#define XLB_USERSPACE_MODEL_MODEL_H

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/model/ip_address.h"

namespace xlb {

// IANA protocol numbers, as xlb_service_key.proto carries them.
enum class Protocol : uint8_t { kTcp = 6, kUdp = 17, kSctp = 132 };

std::string_view ToString(Protocol protocol);  // "TCP", "UDP", "SCTP"
std::optional<Protocol> ParseProtocol(std::string_view text);

// A cluster of the clusterset. `id` is what xlb_backend.cluster_id carries: it must be the same
// on every node of every cluster, so it is configured, never allocated.
struct Cluster {
  uint16_t id = 0;  // 1..65535
  std::string name;
  bool local = false;  // the cluster this agent's node belongs to

  bool operator==(const Cluster&) const = default;
};

// Kubernetes' types.NamespacedName.
struct NamespacedName {
  std::string ns;
  std::string name;

  std::string ToString() const { return ns + "/" + name; }  // "production/api-service"
  std::string ClusterHost() const { return name + "." + ns + ".svc.cluster.local"; }
  std::string ClusterSetHost() const { return name + "." + ns + ".svc.clusterset.local"; }

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads the defaulted <=>.
  auto operator<=>(const NamespacedName&) const = default;
};

// A Service's spec.ports[] entry.
struct ServicePort {
  std::string name;  // "" only when it is the service's one port
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  // spec.ports[].targetPort, a number or the name of a container port. Informational: the
  // endpoints already carry the resolved port (EndpointSlice ports are named after the
  // service's ports).
  uint16_t target_port = 0;
  std::string target_port_name;
  uint16_t node_port = 0;    // 0: none
  std::string app_protocol;  // spec.ports[].appProtocol, "" when unset

  bool operator==(const ServicePort&) const = default;
};

enum class SessionAffinity : uint8_t { kNone, kClientIP };

// spec.externalTrafficPolicy / spec.internalTrafficPolicy.
enum class ServiceTrafficPolicy : uint8_t {
  kCluster,  // every endpoint (of every cluster the weights reach)
  kLocal,    // only endpoints on this node; none here: the traffic is dropped
};
std::string_view ToString(ServiceTrafficPolicy policy);  // "Cluster", "Local"

// Topology-aware routing: spec.trafficDistribution: PreferClose, or the annotation
// service.kubernetes.io/topology-mode: Auto (kube-proxy honours both the same way, through
// the EndpointSlice controller's zone hints).
enum class TopologyRouting : uint8_t { kNone, kPreferClose };

// A service as the whole clusterset sees it: the Service of each cluster (same namespace and
// name, MCS "namespace sameness") plus its ServiceImport.
struct Service {
  NamespacedName name;
  std::vector<IpAddress> cluster_ips;        // spec.clusterIPs (of this agent's cluster)
  std::vector<IpAddress> clusterset_ips;     // ServiceImport spec.ips
  std::vector<IpAddress> external_ips;       // spec.externalIPs
  std::vector<IpAddress> load_balancer_ips;  // status.loadBalancer.ingress[].ip
  std::vector<ServicePort> ports;
  SessionAffinity affinity = SessionAffinity::kNone;
  uint32_t affinity_timeout_s = 10800;  // sessionAffinityConfig.clientIP.timeoutSeconds
  // External traffic: to external IPs, LoadBalancer IPs and NodePorts. Internal: to the
  // ClusterIPs and ClusterSet IPs.
  ServiceTrafficPolicy external_policy =
      ServiceTrafficPolicy::kCluster;  // spec.externalTrafficPolicy
  ServiceTrafficPolicy internal_policy =
      ServiceTrafficPolicy::kCluster;  // spec.internalTrafficPolicy
  // spec.healthCheckNodePort (type LoadBalancer, externalTrafficPolicy Local); 0: none.
  uint16_t health_check_node_port = 0;
  std::vector<IpPrefix> load_balancer_source_ranges;  // empty: every source
  TopologyRouting topology = TopologyRouting::kNone;

  // Every address the service answers on, in the order above.
  std::vector<IpAddress> Vips() const;
  const ServicePort* FindPort(uint16_t port) const;  // by spec.ports[].port

  bool operator==(const Service&) const = default;
};

// EndpointSlice endpoints[].conditions, unset fields kept unset so their defaults apply.
struct EndpointConditions {
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;

  // EndpointSlice semantics: nil ready means ready; nil serving defers to ready; nil
  // terminating means not terminating.
  bool Ready() const { return ready.value_or(true); }
  bool Serving() const { return serving.value_or(Ready()); }
  bool Terminating() const { return terminating.value_or(false); }

  bool operator==(const EndpointConditions&) const = default;
};

// An EndpointSlice ports[] entry; `name` is the name of the service port it serves.
struct EndpointPort {
  std::string name;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;

  bool operator==(const EndpointPort&) const = default;
};

// One endpoint of a service in one cluster, with the ports of its EndpointSlice.
struct Endpoint {
  NamespacedName service;
  std::string cluster;               // Cluster::name
  std::vector<IpAddress> addresses;  // at least one; Kubernetes uses the first of a family
  std::vector<EndpointPort> ports;
  std::string node_name;                  // "" when unknown
  std::string zone;                       // endpoints[].zone, "" when unset
  std::vector<std::string> zone_hints;    // endpoints[].hints.forZones[].name
  std::optional<IpAddress> node_address;  // the node's address: the tunnel endpoint
  // False when the endpoint's node runs no xlb (config `nodes[].xlb: false`, Node label
  // `xlb.dev/datapath: none`): nothing there can carry its answers back through a tunnel.
  bool node_runs_xlb = true;
  EndpointConditions conditions;

  // May take new flows: ready, as kube-proxy reads it (IsReady()). The EndpointSlice
  // controller writes ready = serving && !terminating, or true for a Service with
  // publishNotReadyAddresses, whose not-ready (serving: false) and terminating pods still take
  // new flows.
  bool TakesNewFlows() const { return conditions.Ready(); }
  // The first address of `family`, if any.
  std::optional<IpAddress> AddressOf(IpFamily family) const;
  // The port that serves the service port named `name` over `protocol`.
  const EndpointPort* FindPort(std::string_view name, Protocol protocol) const;

  bool operator==(const Endpoint&) const = default;
};

// Which endpoints a service hostname stands for (see ParseServiceHost).
enum class HostScope : uint8_t {
  kCluster,     // NAME.NS.svc.cluster.local: the local cluster's
  kClusterSet,  // NAME.NS.svc.clusterset.local: the clusterset's
};

struct ServiceHost {
  NamespacedName service;
  HostScope scope = HostScope::kCluster;

  bool operator==(const ServiceHost&) const = default;
};

// A hostname that names a service, resolved the way Istio resolves a VirtualService's hosts:
//   NAME                           -> NAME.<ns>.svc.cluster.local
//   NAME.NS, NAME.NS.svc           -> NAME.NS.svc.cluster.local
//   NAME.NS.svc.cluster.local      -> as written
//   NAME.NS.svc.clusterset.local   -> as written (MCS)
// where <ns> is `default_namespace`. nullopt for anything else (wildcards, other domains,
// labels that are no DNS-1123 labels).
std::optional<ServiceHost> ParseServiceHost(std::string_view host,
                                            std::string_view default_namespace);

// A DNS-1123 label: 1-63 of [a-z0-9-], starting and ending alphanumeric. Kubernetes names of
// services and namespaces, and xlb's cluster names.
bool IsDnsLabel(std::string_view s);

// The node this agent runs on: kube-proxy serves every NodePort on its addresses.
struct LocalNode {
  std::string name;                  // "" when unknown
  std::vector<IpAddress> addresses;  // IPv4 and/or IPv6; none = no NodePort keys
  std::string zone;                  // label topology.kubernetes.io/zone, "" when unset

  bool operator==(const LocalNode&) const = default;
};

// What changed in a Model since the changes were last taken: the planner re-plans these
// services only. `everything` when a change reaches every service (a cluster, the local
// node), and for a model nothing has been planned from yet.
struct ModelChanges {
  bool everything = false;
  std::set<NamespacedName> services;  // whose Service or endpoints a mutator touched
  bool nodes = false;                 // some cluster's node addresses (SetNodeAddresses)

  bool empty() const { return !everything && services.empty() && !nodes; }
  void Merge(const ModelChanges& other);
};

// A snapshot of the clusterset. Lookups are by name; iteration is in name order, so that
// whatever is computed from a Model does not depend on the order a source added things in.
//
// Every mutator records what it touched (ModelChanges), so that a long-lived Model that a
// source edits in place (the Kubernetes watches) is re-planned service by service. A mutator
// that leaves things as they were still counts as a change: re-planning an unchanged service
// costs one plan and writes nothing.
class Model {
 public:
  // Adds or replaces (by name) a cluster. Marking a cluster local clears the flag elsewhere.
  // Changes everything (cluster ids and locality are in every backend).
  void PutCluster(Cluster cluster);
  // Makes `name` the local cluster (and no other); false if there is no such cluster.
  bool SetLocalCluster(std::string_view name);
  // Adds or replaces (by namespace/name) a service.
  void PutService(Service service);
  // Removes a service and all its endpoints (of every cluster); absent is fine.
  void RemoveService(const NamespacedName& name);
  // This agent's node (its addresses are the NodePort frontends). Changes everything.
  void SetLocalNode(LocalNode node);
  const LocalNode& local_node() const { return local_node_; }
  // Every address of every node of `cluster` (its Nodes, the config's `nodes`), whether or
  // not an endpoint lives there: the sources a tunnel packet may come from, so that a node
  // that only balances (a frontend without pods) is known to the nodes whose pods it reaches.
  // Replaces what the cluster had (none: forgets it). Unlike the other mutators, setting what
  // is already there records no change (and returns false): a Node's status updates rewrite
  // its addresses often.
  bool SetNodeAddresses(std::string_view cluster, std::vector<IpAddress> addresses);
  // Per cluster name, sorted, each address once.
  const std::map<std::string, std::vector<IpAddress>, std::less<>>& node_addresses() const {
    return node_addresses_;
  }
  // Adds an endpoint of `endpoint.service`.
  void AddEndpoint(Endpoint endpoint);
  // Replaces every endpoint of `service` in `cluster` (an EndpointSlice update).
  void SetEndpoints(const NamespacedName& service, std::string_view cluster,
                    std::vector<Endpoint> endpoints);

  // What the mutators changed since the last call (a new Model: everything), and forgets it.
  ModelChanges TakeChanges();
  const ModelChanges& changes() const { return changes_; }

  std::span<const Cluster> clusters() const { return clusters_; }  // by name
  const Cluster* FindCluster(std::string_view name) const;
  const Cluster* FindCluster(uint16_t id) const;
  const Cluster* LocalCluster() const;  // nullptr when none is marked local

  const std::map<NamespacedName, Service>& services() const { return services_; }
  const Service* FindService(const NamespacedName& name) const;
  // The service a hostname names (ParseServiceHost), or nullptr.
  const Service* FindServiceByHost(std::string_view host, std::string_view default_namespace) const;

  // Every endpoint of a service, in the order they were added.
  std::span<const Endpoint> EndpointsOf(const NamespacedName& service) const;

 private:
  std::vector<Cluster> clusters_;
  LocalNode local_node_;
  std::map<std::string, std::vector<IpAddress>, std::less<>> node_addresses_;
  std::map<NamespacedName, Service> services_;
  std::map<NamespacedName, std::vector<Endpoint>> endpoints_;
  ModelChanges changes_{.everything = true, .services = {}, .nodes = true};
};

// The services whose Service or endpoints differ between two models (everything when their
// clusters or local node differ; `nodes` when their node addresses do): what a source that
// replaces the whole Model (the config file) changed. O(services + endpoints + nodes) of both.
ModelChanges DiffModels(const Model& before, const Model& after);

}  // namespace xlb

#endif  // XLB_USERSPACE_MODEL_MODEL_H
