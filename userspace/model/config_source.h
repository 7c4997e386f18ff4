// The embedded default source: a YAML file that declares the clusters, services and endpoints
// of a clusterset, so that xlb runs without Kubernetes (the demo, the tests).
//
// A file holds one or more YAML documents (`---`), each of this shape; their lists are merged,
// so one may keep clusters, services and endpoints in separate documents. Field names follow
// Kubernetes' Service and EndpointSlice, flattened (no metadata/spec nesting):
//
//   apiVersion: xlb.dev/v1alpha1          # required
//   kind: Config                          # required
//   node:                                 # optional, at most once: the node this agent runs on
//     name: node-a1                       # optional: endpoints whose nodeName is this node are
//                                         #   reached directly; the local cluster's others
//                                         #   through the tunnel to their node (xlb-agent
//                                         #   --node-name overrides it). Without a name every
//                                         #   endpoint of the local cluster counts as this node's
//     addresses: [198.18.0.11, 2001:db8::11]  # IPv4 and/or IPv6, at least one: every
//                                         #   service port's nodePort is served on each of
//                                         #   them (xlb-agent --node-addr overrides them)
//     zone: zone-1                        # optional: the Node's topology.kubernetes.io/zone;
//                                         #   default: the zone of the local cluster's node of
//                                         #   this name
//   clusters:
//   - name: cluster-a                     # DNS-1123 label, unique
//     id: 1                               # 1-65535, unique: xlb_backend.cluster_id, the same on
//                                         #   every node, so it is configured, not allocated
//     local: true                         # the cluster of this node; at most one (default false)
//     nodes:                              # nodes that endpoints name (nodeName)
//     - name: node-a1
//       addresses: [198.18.0.11]          # the first is the tunnel endpoint for its pods
//       xlb: false                        # optional (default true): the node runs no xlb, so
//                                         #   its pods are not reached through the tunnel
//       zone: zone-1                      # optional: its topology.kubernetes.io/zone, the zone
//                                         #   of the endpoints on it that give none
//   services:
//   - name: api-service                   # DNS-1123 label
//     namespace: production               # DNS-1123 label; (namespace, name) unique
//     type: ClusterIP                     # ClusterIP | NodePort | LoadBalancer (informational)
//     clusterIP: 198.18.100.10            # spec.clusterIP; "None" = headless
//     clusterIPs: [198.18.100.10, 2001:db8:100::10]   # spec.clusterIPs (merged with clusterIP)
//     clusterSetIPs: [198.18.200.10]      # the ServiceImport's spec.ips
//     externalIPs: [198.18.250.10]        # spec.externalIPs
//     loadBalancerIPs: [198.18.251.10]    # status.loadBalancer.ingress[].ip
//     sessionAffinity: ClientIP           # None (default) | ClientIP
//     sessionAffinityConfig:
//       clientIP:
//         timeoutSeconds: 10800           # 1-86400, default 10800
//     externalTrafficPolicy: Local        # Cluster (default) | Local: external traffic
//                                         #   (externalIPs, loadBalancerIPs, nodePorts) only to
//                                         #   this node's endpoints
//     internalTrafficPolicy: Local        # Cluster (default) | Local: in-cluster traffic
//                                         #   (clusterIPs, clusterSetIPs) only to this node's
//                                         #   endpoints
//     healthCheckNodePort: 32456          # 1-65535, optional: where the agent answers load
//                                         #   balancers' health checks (externalTrafficPolicy
//                                         #   Local)
//     loadBalancerSourceRanges: [198.18.0.0/16]   # CIDRs without host bits, optional: the only
//                                         #   sources the loadBalancerIPs admit
//     trafficDistribution: PreferClose    # PreferClose | PreferSameZone, optional: prefer the
//                                         #   endpoints hinted for this node's zone
//     ports:
//     - name: http                        # required when there is more than one port; unique
//       port: 8080                        # 1-65535, unique per protocol
//       targetPort: 8080                  # 1-65535 or a port name; default: port
//       protocol: TCP                     # TCP (default) | UDP | SCTP
//       nodePort: 30080                   # 1-65535, optional
//       appProtocol: http                 # optional
//   endpointSlices:
//   - service: api-service                # label kubernetes.io/service-name: a declared service
//     namespace: production
//     cluster: cluster-a                  # label multicluster.kubernetes.io/source-cluster
//     addressType: IPv4                   # IPv4 | IPv6, optional: checks the addresses
//     ports:                              # default: one per service port, named like it, with
//     - name: http                        #   its numeric targetPort (or port)
//       port: 8080
//       protocol: TCP
//     endpoints:
//     - addresses: [198.18.1.1]           # at least one
//       nodeName: node-a1                 # optional: a node of the slice's cluster
//       zone: zone-1                      # optional; default: its node's zone
//       hints:                            # optional: the zones it serves under
//         forZones: [{name: zone-1}]      #   trafficDistribution (topology hints)
//       conditions:                       # EndpointSlice semantics: nil ready = ready, nil
//         ready: true                     #   serving = ready's value, nil terminating = false
//         serving: true
//         terminating: false
//
// Unknown fields are errors. Errors name the file, the document (1-based), the field path and
// the line: `cluster.yaml: document 2: services[0].ports[1].port: expected integer 1-65535, got
// "http" (line 14)`. tests/policy/testdata/clusterset.yaml is a complete example.
#ifndef XLB_USERSPACE_MODEL_CONFIG_SOURCE_H
#define XLB_USERSPACE_MODEL_CONFIG_SOURCE_H

#include <string>

#include "userspace/model/config_error.h"
#include "userspace/model/model.h"

namespace xlb {

inline constexpr const char* kConfigApiVersion = "xlb.dev/v1alpha1";
inline constexpr const char* kConfigKind = "Config";

// Parses `text`; `file` names it in errors.
ConfigResult<Model> ParseConfig(const std::string& file, const std::string& text);

// Reads and parses the file at `path`.
ConfigResult<Model> LoadConfigFile(const std::string& path);

}  // namespace xlb

#endif  // XLB_USERSPACE_MODEL_CONFIG_SOURCE_H
