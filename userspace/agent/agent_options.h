// The command line of xlb-agent. Parsed before anything touches the kernel, so a bad flag
// costs nothing and is reported with the usage text (exit status 2).
#ifndef XLB_USERSPACE_AGENT_AGENT_OPTIONS_H
#define XLB_USERSPACE_AGENT_AGENT_OPTIONS_H

#include <chrono>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"
#include "userspace/agent/socket_lb.h"
#include "userspace/model/ip_address.h"

namespace xlb {

struct AgentOptions {
  std::string config;  // --config FILE: the embedded YAML source; or
  std::string kube;    // --kube FILE: the Kubernetes sources (exactly one of the two)
  std::string policy;  // --policy PATH: a policy file or directory; "" = no policies
  std::string pin_dir = XLB_PIN_DIR;
  // --uplink IFACE[,IFACE...] (repeatable): xlb_xdp goes on each; none = no XDP attach.
  std::vector<std::string> uplinks;
  bool uplink_auto = false;             // --uplink auto: the uplinks from the routes (rtnetlink.h)
  std::vector<std::string> pod_ifaces;  // --pod-iface GLOB...: xlb_tc goes on every match
  // --tunnel-addr, --encap, --tunnel-mtu, --tunnel-peers (the agent's default: known).
  xlb_config datapath = [] {
    xlb_config c = XLB_CONFIG_DEFAULTS;
    c.flags |= XLB_CFG_F_TUNNEL_PEERS;
    return c;
  }();
  // --node-addr ADDR...: this node's addresses, the NodePort frontends; they replace the
  // config's `node.addresses`. None (and none in the config) = no NodePort keys.
  std::vector<IpAddress> node_addrs;
  // --node-name NAME: this node's name (the DaemonSet passes spec.nodeName); it replaces the
  // config's `node.name` (--kube: the sources' nodeName / $NODE_NAME). Endpoints on this node
  // are reached directly, the local cluster's others through the tunnel to their node.
  std::string node_name;
  // --node-settings FILE: per-node uplinks, pod interfaces, encapsulation, MTU
  // (node_settings.h), applied by ApplyNodeSettings.
  std::string node_settings;
  // --socket-lb on|off, --cgroup PATH: socket LB for the node's own namespace (socket_lb.h).
  SocketLbOptions socket_lb;
  bool once = false;      // --once: one sync, then exit (leaving the datapath running)
  bool log_json = false;  // --log-format json: one JSON object per log line
  // --metrics-addr HOST:PORT of /metrics, /healthz and /readyz; "" (from `off`) = none.
  std::string metrics_addr = "127.0.0.1:9464";
  // --metrics-detail-limit N: per-service and per-backend series only up to N of each
  // (WriteFlowCounters): what one node exports stays bounded at any number of endpoints.
  size_t metrics_detail_limit = 1000;
  // --healthz-addr HOST:PORT of kube-proxy's node health check; "" = none (the default).
  std::string healthz_addr;
  // --health-check-addr HOST the healthCheckNodePorts are served on; "" (from `off`) = none.
  std::string health_check_addr = "::";
  // How often the sources are looked at (mtime poll), and pod interfaces rescanned
  // (--iface-rescan MS; link events attach new ones at once, the rescan is the safety net).
  std::chrono::milliseconds poll_interval{200};
  std::chrono::milliseconds iface_rescan{5000};
};

extern const char* const kAgentUsage;

// argv of main(). False with `problem` set on a bad command line; `help` is set for --help.
bool ParseAgentOptions(int argc, const char* const* argv, AgentOptions& options,
                       std::string& problem, bool& help);

// With --node-settings: the file's flags for this node (named by --node-name, else by
// `env_node_name`, the DaemonSet's $NODE_NAME) are parsed before the command line's, which win
// where both set a flag. False with `problem` naming the file and field, or the flag.
bool ApplyNodeSettings(int argc, const char* const* argv, const std::string& env_node_name,
                       AgentOptions& options, std::string& problem);

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_AGENT_OPTIONS_H
