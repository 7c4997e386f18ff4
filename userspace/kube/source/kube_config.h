// The configuration of the Kubernetes sources: which clusters the agent follows and how. A
// YAML file in the style of the embedded source (userspace/model/config_source.h), read as
// strictly (unknown fields are errors; errors name file, document, field and line):
//
//   apiVersion: xlb.dev/v1alpha1          # required
//   kind: KubeSources                     # required
//   node:                                 # optional: the node this agent runs on
//     name: node-a1                       # its Node; its InternalIPs and ExternalIPs serve the
//                                         #   NodePorts unless `addresses` are given
//     addresses: [198.18.0.11]            # optional: the NodePort frontends, as written
//   staleAfter: 60s                       # default for remote clusters (default 60s): how long
//                                         #   a cluster's last known endpoints stay in force
//                                         #   after its API server was lost (ms, s, m, h)
//   serviceImports: v1alpha1              # v1alpha1 | v1beta1 | none: the ServiceImport
//                                         #   version to watch in the local cluster; default
//                                         #   v1alpha1 when a cluster has mode mcs, else none
//                                         #   (watching a resource whose CRD is absent fails)
//   local:                                # required: the cluster this agent runs in
//     name: cluster-a                     # optional: else the value of the ClusterProperty
//                                         #   cluster.clusterset.k8s.io (watched)
//     id: 1                               # optional: else ClusterIdOf(name)
//     inCluster: true                     # the pod's service account; or
//     kubeconfig: /etc/xlb/local.kubeconfig   #   a kubeconfig file (exactly one of the two)
//   clusters:                             # the remote clusters
//   - name: cluster-b                     # DNS-1123 label, unique
//     mode: direct                        # direct (default): the agent watches its API server
//                                         #   (Services, EndpointSlices, Nodes);
//                                         # mcs: its endpoints come from the local cluster's
//                                         #   EndpointSlices labelled with its name as
//                                         #   multicluster.kubernetes.io/source-cluster
//     kubeconfig: /etc/xlb/clusters/cluster-b   # direct: required; mcs: not allowed
//     id: 2                               # optional: else ClusterIdOf(name)
//     staleAfter: 30s                     # optional: overrides the default
//   kubeconfigDir: /etc/xlb/clusters      # optional: every regular file is the kubeconfig of a
//                                         #   direct cluster named after the file (an
//                                         #   extension .yaml, .yml, .kubeconfig or .conf is
//                                         #   dropped; hidden files such as a Secret volume's
//                                         #   ..data are skipped); a cluster listed under
//                                         #   `clusters` with the same name takes precedence
//
// Cluster ids go into xlb_backend.cluster_id and must be the same on every node, so they are
// never allocated: configured, or derived from the name alone (ClusterIdOf). Two clusters with
// the same id are an error that names both.
#ifndef XLB_USERSPACE_KUBE_SOURCE_KUBE_CONFIG_H
#define XLB_USERSPACE_KUBE_SOURCE_KUBE_CONFIG_H

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/model/config_error.h"
#include "userspace/model/ip_address.h"

namespace xlb::kube {

inline constexpr const char* kKubeSourcesKind = "KubeSources";
inline constexpr std::chrono::milliseconds kDefaultStaleAfter{60'000};

// The cluster id of a cluster without a configured one: FNV-1a (32 bit, offset basis
// 2166136261, prime 16777619) over the bytes of the name, then 1 + hash % 65535, so 1..65535.
// A pure function of the name: every node of every cluster computes the same id.
// ClusterIdOf("cluster-a") == 60510; "c-air" and "c-dsa" collide (25140).
uint16_t ClusterIdOf(std::string_view cluster_name);

enum class ClusterMode : uint8_t { kDirect, kMcs };

struct ClusterConfig {
  std::string name;            // "" only for a local cluster named by its ClusterProperty
  std::optional<uint16_t> id;  // as configured; see Id()
  ClusterMode mode = ClusterMode::kDirect;
  bool in_cluster = false;  // local only: the pod's service account
  std::string kubeconfig;   // a kubeconfig file (direct clusters, or the local one)
  std::chrono::milliseconds stale_after = kDefaultStaleAfter;

  // The configured id, else ClusterIdOf(name).
  uint16_t Id() const { return id ? *id : ClusterIdOf(name); }
  bool operator==(const ClusterConfig&) const = default;
};

struct KubeSourcesConfig {
  ClusterConfig local;
  std::vector<ClusterConfig> remotes;     // in name order
  std::string node_name;                  // "" when not given
  std::vector<IpAddress> node_addresses;  // configured NodePort frontends
  std::string service_imports;            // "v1alpha1", "v1beta1" or "" (not watched)
  std::string kubeconfig_dir;             // as configured, "" when none

  bool operator==(const KubeSourcesConfig&) const = default;
};

// Parses `text`; `file` names it in errors. A kubeconfigDir is listed now (a Secret that gains
// a cluster takes a restart, as a changed ConfigMap does).
ConfigResult<KubeSourcesConfig> ParseKubeSourcesConfig(const std::string& file,
                                                       const std::string& text);
ConfigResult<KubeSourcesConfig> LoadKubeSourcesConfig(const std::string& path);

// "60s", "200ms", "2m", "1h" (a positive integer and one unit).
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_SOURCE_KUBE_CONFIG_H
