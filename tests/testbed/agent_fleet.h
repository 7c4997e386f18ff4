// The real xlb-agent on every xlb node of the multi-node testbed (Options::multi_node), as the
// DaemonSet runs it: one process per node, started inside the node's network namespace
// (setns: /sys/fs/bpf and the pins stay the host's, unlike `ip netns exec`), each with its
// own pin directory (unique per fleet), its own node block (name and transit addresses: the
// NodePort frontends), its own tunnel addresses, uplink eth0, pod interfaces veth-*, socket LB
// on the machine's cgroup v2 root (each agent translates only its own namespace's sockets), and
// the same clusters, services, endpoints and policies everywhere: only `node:` and which
// cluster is `local: true` differ between the per-node config files.
//
//   auto tb = Testbed::Up({.multi_node = true});
//   auto fleet = AgentFleet::Start(*tb, {.services = kServicesYaml});  // throws on failure
//   fleet->KillNine("nodeA"); fleet->Restart("nodeA");
//
// Teardown (the destructor, also when a test failed or threw): every agent stopped, then
// every pin directory removed; the Testbed, destroyed after the fleet, removes the
// namespaces and with them the attachments. Pin directories of a test process that died
// before its destructors ran are removed by the next Start().
#ifndef XLB_TESTS_TESTBED_AGENT_FLEET_H
#define XLB_TESTS_TESTBED_AGENT_FLEET_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "testbed.h"

namespace xlb::testbed {

// An xlb node of the multi-node testbed: its role, its Kubernetes node name, its cluster.
struct FleetNode {
  std::string role;       // "nodeA2"
  std::string node_name;  // "node-a2"
  std::string cluster;    // "cluster-a"
};
// nodeA, nodeA2 (cluster-a), nodeB, nodeB2 (cluster-b): the nodes that run an agent.
const std::vector<FleetNode>& FleetNodes();
// "node-a3" for nodeA3 and so on: the node name of any node role.
std::string NodeName(std::string_view node_role);
// "cluster-a" for every role of cluster A (nodes, pods, clients), "cluster-b" for B's.
std::string ClusterOfRole(std::string_view role);

// The `clusters:` list of the multi-node testbed with every node and its transit addresses
// (the first, IPv4, is the tunnel endpoint of its pods); nodeA3 is marked as running no xlb
// when the config format knows it. `local` names the cluster that gets `local: true`.
std::string FleetClustersYaml(const std::string& local);

// The services of the path matrix and the demo: one per backend, each with that one endpoint
// (so a connection to it exercises exactly one path), on VIP index n of every range:
// clusterIP Vip(f, n, 0), externalIP Vip(f, n, 1), loadBalancerIP Vip(f, n, 2), clusterSetIP
// Vip(f, n, 3) (both families), TCP port 8080, nodePort kFirstNodePort + n; and "split"
// (n = kSplitN): podA1 + podA21 (cluster A) and podB1 (cluster B), 70/30 with kSplitPolicy.
struct PathService {
  int n;
  const char* name;     // in namespace xlb-test
  const char* backend;  // the role that answers (a pod, or nodeA2: its host address)
  bool with_node;       // the endpoint names its node; false: a host address or a routed one
};
inline constexpr int kFirstNodePort = 30000;
inline constexpr int kSplitN = 20;
// Service semantics (kube-proxy's fields) beside the paths:
//   "local-ext" (n = kLocalExtN): externalTrafficPolicy Local, healthCheckNodePort
//     kLocalExtHealthPort, endpoints podA1 (nodeA) and podB1 (nodeB);
//   "affine" (n = kAffineN): sessionAffinity ClientIP, timeoutSeconds kAffineTimeoutS,
//     endpoints podA1, podA21 and podB1, split by kAffinePolicy's weights (rewritten by tests).
inline constexpr int kLocalExtN = 21;
inline constexpr int kLocalExtHealthPort = 32021;
inline constexpr int kAffineN = 22;
//   "no-endpoints" (n = kNoEndpointsN): a Service without any endpoint (rejects).
inline constexpr int kNoEndpointsN = 23;
inline constexpr int kAffineTimeoutS = 4;
const std::vector<PathService>& PathServices();
// `services:` and `endpointSlices:` of all of them (and of the semantics services), for
// FleetOptions::services.
std::string PathServicesYaml();
// The VirtualService that splits "split" 70 % to the local cluster, 30 % to the other.
extern const char* const kSplitPolicy;
// A VirtualService for "affine": `local` % to the local cluster, the rest to the other.
std::string AffinePolicy(int local);

struct FleetOptions {
  // `services:` and `endpointSlices:` of the config (userspace/model/config_source.h),
  // appended to every node's header (apiVersion, kind, node, clusters).
  std::string services;
  std::string policy;  // the content of the --policy file; empty: no policy
  bool gue = false;    // --encap gue instead of VXLAN
  std::vector<std::string> extra_flags;
};

class AgentFleet {
 public:
  // Writes the per-node configs into the testbed's state directory, starts every agent and
  // waits until each runs (synced, XDP and TC attached). Throws std::runtime_error with the
  // agents' logs when one does not come up.
  static std::unique_ptr<AgentFleet> Start(Testbed& tb, FleetOptions options);
  ~AgentFleet();
  AgentFleet(const AgentFleet&) = delete;
  AgentFleet& operator=(const AgentFleet&) = delete;

  // SIGKILL the node's agent and reap it; the datapath stays (pins, attachments).
  void KillNine(std::string_view role);
  // A new agent process on the node with the same flags; waits until it runs.
  void Restart(std::string_view role);
  // Rewrites every node's config with new services (atomic rename: the agents reload).
  void SetServices(const std::string& services);
  // Rewrites the policy file (atomic rename: the agents reload).
  void SetPolicy(const std::string& policy);

  // xlbctl ARGS... --pin-dir <the node's pins>, inside the node's namespace.
  CommandResult Ctl(std::string_view role, const std::vector<std::string>& args) const;
  const std::string& PinDir(std::string_view role) const;
  std::string Log(std::string_view role) const;  // this run's and the earlier runs' stderr
  std::string Logs() const;                      // every node's
  // From `xlbctl stats -o json`: packets per datapath reason (loader/reasons.h names), and
  // new flows per backend address ("198.18.10.11:8080", "[2001:db8:10::11]:8080").
  std::map<std::string, uint64_t> ReasonPackets(std::string_view role) const;
  std::map<std::string, uint64_t> BackendNewFlows(std::string_view role) const;

 private:
  struct Agent;
  explicit AgentFleet(Testbed& tb, FleetOptions options);
  Agent& Find(std::string_view role) const;
  void WriteConfigs();
  void Spawn(Agent& a);
  void WaitRunning(Agent& a);

  Testbed& tb_;
  FleetOptions options_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

std::string AgentBinary();
std::string CtlBinary();

// Removes /sys/fs/bpf/<prefix><pid>* pin directories whose pid is gone: what a test process
// killed before its destructors left behind.
void RemoveStalePinDirs(const std::string& prefix);

}  // namespace xlb::testbed

#endif  // XLB_TESTS_TESTBED_AGENT_FLEET_H
