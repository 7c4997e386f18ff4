#include "userspace/agent/agent_options.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iterator>
#include <set>
#include <string_view>

#include "userspace/agent/http_server.h"
#include "userspace/agent/node_settings.h"
#include "userspace/model/yaml_fields.h"
#include "userspace/model/model.h"

namespace xlb {

const char* const kAgentUsage =
    "usage: xlb-agent (--config FILE | --kube FILE) [--policy PATH] [--pin-dir DIR]\n"
    "                 [--uplink IFACE[,IFACE]...|auto]... [--pod-iface GLOB]...\n"
    "                 [--iface-rescan MS] [--tunnel-addr ADDR]... [--encap vxlan|gue]\n"
    "                 [--tunnel-mtu N] [--node-name NAME] [--node-addr ADDR]...\n"
    "                 [--node-settings FILE]\n"
    "                 [--socket-lb on|off] [--cgroup PATH] [--metrics-addr HOST:PORT|off]\n"
    "                 [--metrics-detail-limit N] [--healthz-addr HOST:PORT|off]\n"
    "                 [--health-check-addr HOST|off] [--forwarding bpf|stack]\n"
    "                 [--log-format text|json] [--once]\n"
    "  --config FILE      clusters, services and endpoints (userspace/model/config_source.h);\n"
    "                     its local cluster is this node's\n"
    "  --kube FILE        follow the Kubernetes API servers of the clusterset instead: which\n"
    "                     clusters and how (userspace/kube/source/kube_config.h)\n"
    "  --policy PATH      a weight policy file, or a directory of them (VirtualService,\n"
    "                     DestinationRule, TrafficPolicy); without it every endpoint weighs\n"
    "                     the same\n"
    "  --pin-dir DIR      bpffs directory of the pinned maps (default " XLB_PIN_DIR
    ");\n"
    "                     a restarted agent adopts what it finds there\n"
    "  --uplink IFACE     attach xlb_xdp (native, else generic) to IFACE, replacing what a\n"
    "                     previous agent attached (repeatable, or a comma-separated list)\n"
    "  --uplink auto      the uplinks are the interfaces of the default routes (none: of the\n"
    "                     routes through a gateway) and those holding a node address\n"
    "  --pod-iface GLOB   attach xlb_tc to every interface matching GLOB (fnmatch), also to\n"
    "                     ones that appear later: at once (link events)\n"
    "  --iface-rescan MS  also rescan the interfaces every MS ms (default 5000), for missed\n"
    "                     events and failed attaches (100-3600000)\n"
    "  --tunnel-addr ADDR this node's IPv4 and/or IPv6 tunnel endpoint\n"
    "  --encap vxlan|gue  encapsulation toward tunnelled backends (default vxlan)\n"
    "  --tunnel-mtu N     underlay MTU for MSS clamping (576-65535, default 1500)\n"
    "  --tunnel-peers known|any  decapsulate only from the nodes of the clusters (known,\n"
    "                     the default: every Node watched or configured), or from any\n"
    "                     source (an underlay xlb does not know the nodes of)\n"
    "  --forwarding bpf|stack  who forwards a packet DNATed to a backend reached by routing\n"
    "                     (a pod here, a routed address) and a local pod's answer: xlb, from\n"
    "                     XDP and TC (bpf, the default; the node's netfilter FORWARD chain\n"
    "                     never sees them), or the kernel's stack (stack)\n"
    "  --node-name NAME   this node's name (replaces the config's node.name): endpoints on\n"
    "                     other nodes of the local cluster are reached through the tunnel\n"
    "  --node-settings FILE  uplinks, pod interfaces, encapsulation and MTU per node, by\n"
    "                     node name (userspace/agent/node_settings.h); flags given here win\n"
    "  --node-addr ADDR   an IPv4 or IPv6 address of this node: every nodePort is served on\n"
    "                     it (repeatable; replaces the config's node.addresses)\n"
    "  --socket-lb on|off translate connect()/sendmsg() of this node's own network namespace\n"
    "                     to VIPs and NodePorts (also on 127.0.0.1) at the socket (default: on\n"
    "                     where cgroup v2 is mounted, else off with a warning; `on` insists)\n"
    "  --cgroup PATH      the cgroup v2 directory socket LB attaches to (default: the cgroup v2\n"
    "                     mount, /sys/fs/cgroup or /sys/fs/cgroup/unified)\n"
    "  --metrics-addr A   serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT\n"
    "                     (default 127.0.0.1:9464; `off` disables; not with --once)\n"
    "  --metrics-detail-limit N  per-service-port and per-backend series only while there are\n"
    "                     at most N of each (default 1000; past it, per-cluster sums only)\n"
    "  --healthz-addr A   kube-proxy's node health check (/healthz, /livez) on HOST:PORT, what\n"
    "                     cloud load balancers probe (kube-proxy uses 0.0.0.0:10256; default\n"
    "                     off, so that xlb can run beside kube-proxy; a port still taken is\n"
    "                     tried again every second, so the agent takes it over from kube-proxy)\n"
    "  --health-check-addr HOST  the address every healthCheckNodePort (Services with\n"
    "                     externalTrafficPolicy Local) is served on (default ::, which takes\n"
    "                     IPv4 too; `off` disables)\n"
    "  --once             sync once and exit\n"
    "Config and policy files are re-read when they change; a bad one is logged and the last\n"
    "good state stays. SIGTERM/SIGINT end the agent but NOT the datapath: programs stay\n"
    "attached and maps pinned, and the next agent takes over. To remove xlb from a node:\n"
    "xlbctl uninstall [--pin-dir DIR].\n";

namespace {

// HOST:PORT of a listening option, or `off` (""). False with `problem` set otherwise.
bool ListenAddressOption(std::string_view flag, const std::string& v, std::string& out,
                         std::string& problem) {
  std::string host;
  uint16_t port = 0;
  if (v == "off") {
    out.clear();
    return true;
  }
  if (!ParseListenAddress(v, host, port, problem)) {
    problem = std::string(flag) + " " + problem;
    return false;
  }
  out = v;
  return true;
}

// A Kubernetes object name of the DNS-1123 subdomain kind (Nodes): dot-separated labels, at
// most 253 characters.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  for (size_t start = 0;;) {
    const size_t dot = s.find('.', start);
    if (!IsDnsLabel(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

bool ParseNumber(std::string_view text, unsigned long min, unsigned long max, unsigned long& out) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(s.c_str(), &end, 10);
  return !s.empty() && end != s.c_str() && *end == '\0' && errno == 0 && out >= min && out <= max &&
         s[0] != '-';
}

// One --uplink value: `auto`, or interface names separated by commas (so that one ConfigMap
// key can name several).
bool AddUplinks(const std::string& value, AgentOptions& o, std::string& problem) {
  if (value == "auto") {
    o.uplink_auto = true;
  } else {
    size_t from = 0;
    for (;;) {
      const size_t comma = value.find(',', from);
      std::string name = value.substr(from, comma == std::string::npos ? comma : comma - from);
      if (name.empty() || name.size() >= IF_NAMESIZE) {
        problem = "--uplink " + value + ": not an interface name or a list of them";
        return false;
      }
      if (std::find(o.uplinks.begin(), o.uplinks.end(), name) != o.uplinks.end()) {
        problem = "--uplink " + name + ": given twice";
        return false;
      }
      o.uplinks.push_back(std::move(name));
      if (comma == std::string::npos) {
        break;
      }
      from = comma + 1;
    }
  }
  if (o.uplink_auto && !o.uplinks.empty()) {
    problem = "--uplink auto picks every uplink itself: not with interface names";
    return false;
  }
  return true;
}

}  // namespace

bool ParseAgentOptions(int argc, const char* const* argv, AgentOptions& o, std::string& problem,
                       bool& help) {
  help = false;
  bool have_addr4 = false;
  bool have_addr6 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        problem = std::string(flag) + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (flag == "--help" || flag == "-h") {
      help = true;
      return true;
    }
    if (flag == "--once") {
      o.once = true;
      continue;
    }
    static constexpr std::string_view kValued[] = {"--config",        "--kube",
                                                   "--policy",        "--pin-dir",
                                                   "--iface-rescan",  "--uplink",
                                                   "--pod-iface",     "--tunnel-addr",
                                                   "--encap",         "--tunnel-mtu",
                                                   "--metrics-addr",  "--node-addr",
                                                   "--node-name",     "--socket-lb",
                                                   "--cgroup",        "--tunnel-peers",
                                                   "--healthz-addr",  "--health-check-addr",
                                                   "--node-settings", "--metrics-detail-limit",
                                                   "--log-format",    "--forwarding"};
    if (std::find(std::begin(kValued), std::end(kValued), flag) == std::end(kValued)) {
      problem = "unknown option " + std::string(flag);
      return false;
    }
    if (!value(v)) {
      return false;
    }
    if (flag == "--config") {
      o.config = v;
    } else if (flag == "--kube") {
      o.kube = v;
    } else if (flag == "--policy") {
      o.policy = v;
    } else if (flag == "--pin-dir") {
      o.pin_dir = v;
    } else if (flag == "--uplink") {
      if (!AddUplinks(v, o, problem)) {
        return false;
      }
    } else if (flag == "--iface-rescan") {
      unsigned long ms = 0;
      if (!ParseNumber(v, 100, 3600000, ms)) {
        problem = "--iface-rescan " + v + ": a number of milliseconds from 100 to 3600000";
        return false;
      }
      o.iface_rescan = std::chrono::milliseconds(ms);
    } else if (flag == "--pod-iface") {
      o.pod_ifaces.push_back(v);
    } else if (flag == "--tunnel-addr") {
      // One of each family: the outer source and the decapsulation address.
      if (inet_pton(AF_INET, v.c_str(), &o.datapath.tunnel_addr4) == 1) {
        if (have_addr4) {
          problem = "--tunnel-addr " + v + ": an IPv4 tunnel address was given already";
          return false;
        }
        have_addr4 = true;
      } else if (inet_pton(AF_INET6, v.c_str(), o.datapath.tunnel_addr6) == 1) {
        if (have_addr6) {
          problem = "--tunnel-addr " + v + ": an IPv6 tunnel address was given already";
          return false;
        }
        have_addr6 = true;
      } else {
        problem = "--tunnel-addr " + v + ": not an IPv4 or IPv6 address";
        return false;
      }
    } else if (flag == "--node-name") {
      if (!IsDnsSubdomain(v)) {
        problem = "--node-name " + v + ": not a Kubernetes node name (DNS-1123 subdomain)";
        return false;
      }
      o.node_name = v;
    } else if (flag == "--metrics-detail-limit") {
      unsigned long n = 0;
      if (!ParseNumber(v, 0, 10000000, n)) {
        problem = "--metrics-detail-limit " + v + ": a number from 0 to 10000000";
        return false;
      }
      o.metrics_detail_limit = n;
    } else if (flag == "--log-format") {
      if (v != "text" && v != "json") {
        problem = "--log-format " + v + ": text or json";
        return false;
      }
      o.log_json = v == "json";
    } else if (flag == "--node-settings") {
      o.node_settings = v;
    } else if (flag == "--node-addr") {
      auto a = IpAddress::Parse(v);
      if (!a) {
        problem = "--node-addr " + v + ": not an IPv4 or IPv6 address";
        return false;
      }
      if (std::find(o.node_addrs.begin(), o.node_addrs.end(), *a) != o.node_addrs.end()) {
        problem = "--node-addr " + v + ": given twice";
        return false;
      }
      o.node_addrs.push_back(*a);
    } else if (flag == "--tunnel-peers") {
      if (v == "known") {
        o.datapath.flags |= XLB_CFG_F_TUNNEL_PEERS;
      } else if (v == "any") {
        o.datapath.flags &= static_cast<uint8_t>(~XLB_CFG_F_TUNNEL_PEERS);
      } else {
        problem = "--tunnel-peers " + v + ": known or any";
        return false;
      }
    } else if (flag == "--forwarding") {
      if (v == "bpf") {
        o.datapath.flags &= static_cast<uint8_t>(~XLB_CFG_F_STACK_FORWARD);
      } else if (v == "stack") {
        o.datapath.flags |= XLB_CFG_F_STACK_FORWARD;
      } else {
        problem = "--forwarding " + v + ": bpf or stack";
        return false;
      }
    } else if (flag == "--encap") {
      if (v == "vxlan") {
        o.datapath.encap = XLB_ENCAP_VXLAN;
      } else if (v == "gue") {
        o.datapath.encap = XLB_ENCAP_GUE;
      } else {
        problem = "--encap " + v + ": vxlan or gue";
        return false;
      }
    } else if (flag == "--metrics-addr" || flag == "--healthz-addr") {
      if (!ListenAddressOption(flag, v, flag == "--metrics-addr" ? o.metrics_addr : o.healthz_addr,
                               problem)) {
        return false;
      }
    } else if (flag == "--health-check-addr") {
      // An address alone: the ports are the Services' healthCheckNodePorts.
      const std::string with_port = v.find(':') != std::string::npos ? "[" + v + "]:1" : v + ":1";
      std::string unused;
      if (v != "off" && !ListenAddressOption(flag, with_port, unused, problem)) {
        problem = "--health-check-addr " + v + ": not a numeric IPv4 or IPv6 address";
        return false;
      }
      o.health_check_addr = v == "off" ? "" : v;
    } else if (flag == "--socket-lb") {
      if (v == "on") {
        o.socket_lb.mode = SocketLbOptions::Mode::kOn;
      } else if (v == "off") {
        o.socket_lb.mode = SocketLbOptions::Mode::kOff;
      } else {
        problem = "--socket-lb " + v + ": on or off";
        return false;
      }
    } else if (flag == "--cgroup") {
      if (v.empty() || v[0] != '/') {
        problem = "--cgroup " + v + ": an absolute path of a cgroup v2 directory";
        return false;
      }
      o.socket_lb.cgroup = v;
    } else if (flag == "--tunnel-mtu") {
      unsigned long mtu = 0;
      if (!ParseNumber(v, 576, 65535, mtu)) {
        problem = "--tunnel-mtu " + v + ": a number from 576 to 65535";
        return false;
      }
      o.datapath.tunnel_mtu = static_cast<uint16_t>(mtu);
    }
  }
  if (o.config.empty() == o.kube.empty()) {
    problem = "one of --config FILE and --kube FILE is required";
    return false;
  }
  if (o.pin_dir.empty()) {
    // Without pins the datapath would die with the agent, and a restart could not adopt it.
    problem = "--pin-dir must not be empty";
    return false;
  }
  return true;
}

bool ApplyNodeSettings(int argc, const char* const* argv, const std::string& env_node_name,
                       AgentOptions& o, std::string& problem) {
  if (o.node_settings.empty()) {
    return true;
  }
  auto text = yaml::ReadFile(o.node_settings);
  if (!text.ok()) {
    problem = ToString(text.error());
    return false;
  }
  std::set<std::string> given;
  for (int i = 1; i < argc; ++i) {
    given.insert(argv[i]);  // values too: harmless, no value looks like a settings flag
  }
  const std::string node = o.node_name.empty() ? env_node_name : o.node_name;
  auto flags = NodeSettingsFlags(o.node_settings, *text, node, given);
  if (!flags.ok()) {
    problem = ToString(flags.error());
    return false;
  }
  std::vector<const char*> args = {argv[0]};
  for (const std::string& f : *flags) {
    args.push_back(f.c_str());
  }
  args.insert(args.end(), argv + 1, argv + argc);
  AgentOptions with;
  bool help = false;
  if (!ParseAgentOptions(static_cast<int>(args.size()), args.data(), with, problem, help)) {
    problem = o.node_settings + " (node " + (node.empty() ? "unnamed" : node) + "): " + problem;
    return false;
  }
  o = std::move(with);
  return true;
}

}  // namespace xlb
