// From the model and the resolved policies to the weighted backend list of every service port:
// what the planner's BuildMaglevTable() takes, and what a syncer needs to fill xlb_backend.
//
// For one service port and one address family (a table holds backends of one family, as the
// datapath drops a flow whose backend has another):
//   1. Each destination group of the port's route (routes.h; a service without a policy has
//      one group: every cluster) collects the endpoints of its clusters that serve the port:
//      the EndpointSlice port named like the destination service's port, with the protocol of
//      the routed port, and an address of the family.
//   2. A ready endpoint takes new flows (kube-proxy's IsReady(); publishNotReadyAddresses
//      makes the controller mark every pod ready). A terminating one that is not ready is
//      listed with weight 0: it takes no new flows, and its backend stays valid for the flows
//      it has. An endpoint neither ready nor terminating is left out.
//   3. A group without an endpoint that takes new flows gives its weight away (policy.h,
//      "Spill-over"), then each group's weight is split evenly over its ready endpoints; an
//      endpoint in two groups adds both parts.
//   4. The weights are made integers that keep the ratios exactly (common denominator, then
//      divided by their greatest common divisor: 70 % local / 30 % remote over 2 + 2 endpoints
//      gives 7, 7, 3, 3). Only when exact integers would not fit 32 bits are they scaled so
//      the largest is 2^31 and rounded, a relative error below 2^-31 * (largest / weight).
// Without any policy every ready endpoint of every cluster weighs the same.
//
// Kubernetes' own rules narrow the endpoints before the weights apply, as kube-proxy's
// pkg/proxy/topology.go does:
//   - Traffic policies: a plan serves the internal frontends (ClusterIPs, ClusterSet IPs:
//     internalTrafficPolicy), the external ones (external IPs, LoadBalancer IPs, NodePorts:
//     externalTrafficPolicy), or both when the two policies agree (FrontendScope). Under
//     Local only endpoints on this node are candidates, so a policy's cross-cluster weights
//     do not apply there: the only cluster left is this node's.
//   - Terminating fallback: when no candidate is ready, the serving terminating ones take new
//     flows (kube-proxy's fallback, so a rolling update of the last pods loses nothing).
//   - Topology (trafficDistribution PreferClose, topology-mode Auto): under a Cluster policy,
//     when every ready candidate of the local cluster carries zone hints and one of them is
//     for this node's zone, the local cluster's share goes to the endpoints hinted for this
//     zone; the others stay listed with weight 0 and keep their flows. Remote clusters' hints
//     name their own zones and are not read.
//   - A plan without a backend that takes new flows rejects (ServiceBackends::rejects) when
//     the service port has no usable endpoint at all; when only the Local policy left none,
//     its traffic is dropped instead, as kube-proxy does.
#ifndef XLB_USERSPACE_POLICY_WEIGHTS_H
#define XLB_USERSPACE_POLICY_WEIGHTS_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"
#include "userspace/model/model.h"
#include "userspace/planner/maglev.h"
#include "userspace/policy/routes.h"

namespace xlb {

// How packets reach a backend and how its answer comes back through a node that knows the
// flow (README "Forwarding modes").
enum class BackendPath : uint8_t {
  kLocal,   // a pod on this node: DNAT; its answer meets xlb_tc on its veth
  kTunnel,  // a pod on another node running xlb: DNAT + encapsulation to that node, which
            // tunnels the answer back
  kRouted,  // an address an existing network routes (an MCS endpoint without a node): DNAT
  kSnat,    // where no xlb runs (a host address, a node without xlb): SNAT to this node
};

// "local", "tunnel", "routed", "snat".
const char* ToString(BackendPath path);

// Which frontends of a service a plan serves (see above).
enum class FrontendScope : uint8_t {
  kAll,       // every frontend: both traffic policies are the same
  kInternal,  // ClusterIPs and ClusterSet IPs
  kExternal,  // external IPs, LoadBalancer IPs and NodePorts
};
const char* ToString(FrontendScope scope);  // "all", "internal", "external"

// kAll when the service's two traffic policies agree, else kInternal then kExternal.
std::vector<FrontendScope> ScopesOf(const Service& service);
// The traffic policy that rules a scope (kAll: both, which agree).
ServiceTrafficPolicy PolicyOf(const Service& service, FrontendScope scope);

struct WeightedBackend {
  // "cluster-a/198.18.1.1:8080", "cluster-b/[2001:db8::1]:8080": the backend's identity, and
  // MaglevBackend::key. Depends on nothing node-local.
  std::string key;
  IpAddress address;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  std::string cluster;
  uint16_t cluster_id = 0;
  bool local = false;  // in this node's cluster
  std::string node_name;
  std::optional<IpAddress> node_address;
  BackendPath path = BackendPath::kLocal;  // depends on this node (PathOf)
  // Share of new flows relative to the list's other backends; 0 takes none.
  uint32_t weight = 0;
  bool terminating = false;  // draining: weight 0, keeps its flows
  bool other_zone = false;   // topology: hinted for other zones; weight 0, keeps its flows

  bool Tunnelled() const { return path == BackendPath::kTunnel; }
};

// The path to an endpoint of `cluster` from the node `here`:
//   - in the local cluster: on this node (its nodeName is this node's name, or either name is
//     unknown, as in a one-node config) -> local; on another node that runs xlb and has an
//     address -> tunnel; anything else (no node: a host address; a node without xlb) -> snat;
//   - in a remote cluster: a node that runs xlb and has an address -> tunnel; no node (an
//     address an inter-cluster network routes) -> routed; a node without xlb -> snat.
// xlb's datapath does not SNAT yet: snat backends are written like routed ones (DNAT only),
// so their answers come back only where the network routes them through this node.
BackendPath PathOf(const Endpoint& endpoint, const Cluster& cluster, const LocalNode& here);

// BackendKey("cluster-a", 198.18.1.1, 8080) = "cluster-a/198.18.1.1:8080".
std::string BackendKey(const std::string& cluster, const IpAddress& address, uint16_t port);

struct ClusterShare {
  std::string cluster;
  uint16_t cluster_id = 0;
  uint32_t ready = 0;  // backends of this list in the cluster that take new flows
  double share = 0;    // fraction of new flows, 0..1
};

// The backends of one service port and address family.
struct ServiceBackends {
  NamespacedName service;
  ServicePort port;
  IpFamily family = IpFamily::kIPv4;
  std::string policy;  // the policy and rule that decided, or "default"
  Spillover spillover = Spillover::kProportional;
  std::vector<ClusterShare> clusters;     // every cluster of the model, by name
  std::vector<WeightedBackend> backends;  // by key; weight 0 for terminating ones
  FrontendScope scope = FrontendScope::kAll;
  bool node_local = false;           // a Local traffic policy: this node's endpoints only
  bool serving_terminating = false;  // no ready endpoint: serving terminating ones took over
  bool zone_filtered = false;        // topology: the local cluster's share went to this zone
  bool rejects = false;              // no backend takes new flows, and none would anywhere

  uint64_t TotalWeight() const;
};

// One service port, family and scope, routed by `route`.
ServiceBackends PlanServicePort(const Model& model, const Service& service, const ServicePort& port,
                                IpFamily family, const ServiceRoute& route,
                                FrontendScope scope = FrontendScope::kAll);

// Every port of every service, in name and port order. A port is planned for each family of
// the service's VIPs (of its endpoints' addresses when it has no VIP), and in each family for
// each of ScopesOf(service).
std::vector<ServiceBackends> PlanBackends(const Model& model, const Routes& routes);

// The families PlanBackends plans a service in: those of its VIPs, else of its endpoints'
// addresses, else IPv4; in order.
std::vector<IpFamily> FamiliesOf(const Model& model, const Service& service);

// The list as BuildMaglevTable() takes it; `id_of` gives each backend's xlb_backends_v1 index
// (never XLB_ID_NONE). Backends of weight 0 are included; they take no slot.
std::vector<MaglevBackend> ToMaglevBackends(
    const ServiceBackends& list, const std::function<uint32_t(const WeightedBackend&)>& id_of);

// The xlb_backends_v1 value of a backend (flags: valid; tunnel when Tunnelled()).
xlb_backend ToAbiBackend(const WeightedBackend& backend);

}  // namespace xlb

#endif  // XLB_USERSPACE_POLICY_WEIGHTS_H
