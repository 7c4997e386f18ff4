// Weight policies as read from YAML, before they are resolved against a Model: Istio's
// VirtualService and DestinationRule (the subset of them that an L4 balancer can honour), and
// xlb's own TrafficPolicy. policy_parse.h reads them; routes.h resolves them to per-service
// destination groups; weights.h turns those into weighted backends.
//
// ## Istio kinds (networking.istio.io/v1, v1beta1, v1alpha3; the same schema in all three)
//
//   apiVersion: networking.istio.io/v1
//   kind: VirtualService
//   metadata:
//     name: api-service
//     namespace: production            # optional, see "namespace" below
//     annotations:
//       xlb.dev/spillover: ordered     # optional: proportional (default) | ordered
//   spec:
//     hosts: [api-service]             # the services whose traffic this routes
//     exportTo: ["*"]                  # accepted, ignored
//     http:                            # and/or tcp: the same shape
//     - name: main                     # optional
//       match:                         # optional; only `port` (and `name`) can be honoured at L4
//       - port: 8080
//       route:
//       - destination:
//           host: api-service.production.svc.cluster.local
//           subset: cluster-b          # optional, from a DestinationRule
//           port:
//             number: 8080             # optional when unambiguous
//         weight: 70
//
//   apiVersion: networking.istio.io/v1
//   kind: DestinationRule
//   metadata: {name: api-service, namespace: production}
//   spec:
//     host: api-service
//     exportTo: ["*"]                  # accepted, ignored
//     subsets:
//     - name: cluster-b
//       labels:
//         topology.istio.io/cluster: cluster-b   # the only label: a subset is one cluster
//
// What a destination host means (xlb's clusterset reading of Istio hosts):
//   NAME.NS.svc.cluster.local (and the short forms NAME, NAME.NS, NAME.NS.svc, which Istio
//       expands to it): the endpoints of the local cluster.
//   NAME.NS.svc.clusterset.local: the endpoints of every cluster of the clusterset that no other
//       destination of the same route claims for the same service (the local cluster is claimed
//       by a cluster.local destination, a cluster by a subset naming it). So cluster.local 70 +
//       clusterset.local 30 is "70 % local, 30 % the other clusters", and clusterset.local alone
//       is every cluster.
//   With a subset: the endpoints of the subset's cluster, whatever the suffix.
// A destination's weight is spread evenly over its ready endpoints.
//
// Weights (Istio's semantics): a destination gets weight / (sum of the route's weights); a
// route with one destination and no weight sends it everything; with several destinations an
// unset weight is 0; weight 0 gets no traffic while a weighted destination has a ready
// endpoint (spill-over below); every weight 0 is an error.
//
// xlb is L4, so `http` and `tcp` routes both steer connections. A service port takes the first
// `http` rule and the first `tcp` rule whose match (if any) names its number; when both exist,
// Istio's protocol selection of the port decides (name http, http2, grpc, grpc-web or prefix
// "<that>-", or appProtocol http/http2/grpc/h2c → http; otherwise tcp). A destination without
// a port uses the routed port's number, or the destination's only port.
//
// ## xlb-native kind
//
//   apiVersion: xlb.dev/v1alpha1
//   kind: TrafficPolicy
//   metadata: {name: api-service, namespace: production}
//   spec:
//     service: api-service.production  # a host as above; NAME is relative to the namespace
//     weights:                         # cluster -> weight >= 0, at least one > 0
//       cluster-a: 70
//       cluster-b: 30
//     failover: [cluster-a, cluster-b, cluster-c]   # optional: the spill-over order
//     spillover: proportional          # proportional (default) | ordered
//
// A cluster that is only in `failover` has weight 0: a standby that takes traffic only when
// spill-over sends it some. The order is `failover`, then the clusters of `weights` not in it,
// in the order written.
//
// ## Spill-over: a destination (or cluster) with no ready endpoint
//   proportional: its share is spread over the remaining destinations in proportion to their
//       weights (it simply drops out of the sum).
//   ordered: its whole share goes to the next destination after it in the order (route order
//       for a VirtualService, the failover order for a TrafficPolicy; cyclic) that has a
//       ready endpoint, weight 0 included.
//   In both modes weight 0 is a standby: when no destination with weight > 0 has a ready
//   endpoint, proportional gives everything to the first destination in the order that has
//   one, and ordered hands each share on as above, which reaches the standbys too.
//
// ## Namespace
// A policy's short hosts are relative to metadata.namespace; without one, to
// PolicyOptions::default_namespace if set; without that, for a VirtualService, to the one
// namespace that its qualified destination hosts name (the VirtualService of issue 4 names
// only production); otherwise "default".
//
// One policy per service: a second one for the same service is an error.
#ifndef XLB_USERSPACE_POLICY_POLICY_H
#define XLB_USERSPACE_POLICY_POLICY_H

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace xlb {

inline constexpr const char* kPolicyApiVersion = "xlb.dev/v1alpha1";
inline constexpr const char* kSpilloverAnnotation = "xlb.dev/spillover";
// The DestinationRule subset label that names a cluster (Istio's own cluster label).
inline constexpr const char* kClusterLabel = "topology.istio.io/cluster";

enum class Spillover : uint8_t { kProportional, kOrdered };

const char* ToString(Spillover spillover);  // "proportional", "ordered"

// Where something was written, for messages about it after parsing (a host that names no
// service is found only when the policy meets a Model).
struct SourceRef {
  std::string file;
  int document = 0;   // 1-based
  std::string field;  // "spec.http[0].route[1].destination.host"
  int line = 0;       // 1-based
};

struct PolicyMeta {
  std::string kind;  // "VirtualService", "DestinationRule", "TrafficPolicy"
  std::string name;
  std::string ns;  // "" when metadata.namespace is unset
  SourceRef ref;   // the document

  // "VirtualService production/api-service (policies/api.yaml, document 1)"
  std::string Describe() const;
};

struct RouteDestination {
  std::string host;
  std::string subset;  // "" when unset
  uint16_t port = 0;   // 0 when unset
  std::optional<uint32_t> weight;
  SourceRef ref;  // the route[] entry
  SourceRef host_ref;
  SourceRef subset_ref;
  SourceRef port_ref;
};

struct RouteRule {
  enum class Kind : uint8_t { kHttp, kTcp };
  Kind kind = Kind::kHttp;
  std::string name;
  std::vector<uint16_t> match_ports;  // empty: matches every port
  std::vector<RouteDestination> route;
  SourceRef ref;  // "spec.http[0]"

  bool Matches(uint16_t port) const;
};

struct VirtualService {
  PolicyMeta meta;
  std::vector<std::pair<std::string, SourceRef>> hosts;
  std::vector<RouteRule> http;
  std::vector<RouteRule> tcp;
  Spillover spillover = Spillover::kProportional;
};

struct Subset {
  std::string name;
  std::string cluster;
  SourceRef ref;
  SourceRef cluster_ref;
};

struct DestinationRule {
  PolicyMeta meta;
  std::string host;
  SourceRef host_ref;
  std::vector<Subset> subsets;
};

struct ClusterWeight {
  std::string cluster;
  uint32_t weight = 0;
  SourceRef ref;
};

struct TrafficPolicy {
  PolicyMeta meta;
  std::string service;  // a host
  SourceRef service_ref;
  std::vector<ClusterWeight> weights;  // in the order written
  std::vector<std::pair<std::string, SourceRef>> failover;
  Spillover spillover = Spillover::kProportional;
};

// Every policy of one complete set of files, in file and document order.
struct PolicySet {
  std::vector<VirtualService> virtual_services;
  std::vector<DestinationRule> destination_rules;
  std::vector<TrafficPolicy> traffic_policies;

  bool empty() const {
    return virtual_services.empty() && destination_rules.empty() && traffic_policies.empty();
  }
};

struct PolicyOptions {
  // Namespace of policies without metadata.namespace (see "Namespace" above); "" = infer.
  std::string default_namespace;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_POLICY_POLICY_H
