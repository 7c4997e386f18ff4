#include "agent_fleet.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "loader/xdp_loader.h"

namespace xlb::testbed {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kPinRoot = "/sys/fs/bpf";
constexpr const char* kPinPrefix = "xlb-fleet-";
constexpr const char* kRunning = "xlb-agent info: running:";

std::atomic<int> g_fleets{0};

void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    if (!f.flush()) {
      throw std::runtime_error("write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
  }
}

std::string AddressList(std::string_view role) {
  return "[" + Address(role, Family::kV4) + ", " + Address(role, Family::kV6) + "]";
}

}  // namespace

void RemoveStalePinDirs(const std::string& prefix) {
  DIR* d = ::opendir(kPinRoot);
  if (d == nullptr) {
    return;
  }
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0) {
      continue;
    }
    const long pid = std::atol(name.c_str() + prefix.size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      stale.push_back(std::string(kPinRoot) + "/" + name);
    }
  }
  ::closedir(d);
  for (const std::string& dir : stale) {
    (void)RemovePins(dir);
  }
}

std::string AgentBinary() {
  return XLB_AGENT_BIN;
}
std::string CtlBinary() {
  return XLBCTL_BIN;
}

const std::vector<FleetNode>& FleetNodes() {
  static const std::vector<FleetNode> nodes = {{"nodeA", "node-a", "cluster-a"},
                                               {"nodeA2", "node-a2", "cluster-a"},
                                               {"nodeB", "node-b", "cluster-b"},
                                               {"nodeB2", "node-b2", "cluster-b"}};
  return nodes;
}

std::string NodeName(std::string_view node_role) {
  std::string name = "node-";
  for (char c : node_role.substr(4)) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string ClusterOfRole(std::string_view role) {
  const std::string node = NodeOf(role);
  if (node.size() < 5) {
    return "";
  }
  return node[4] == 'A' ? "cluster-a" : node[4] == 'B' ? "cluster-b" : "";
}

std::string FleetClustersYaml(const std::string& local) {
  auto cluster = [&](const char* name, int id, std::vector<std::string> nodes) {
    std::string y = std::string("- name: ") + name + "\n  id: " + std::to_string(id) +
                    "\n  local: " + (local == name ? "true" : "false") + "\n  nodes:\n";
    for (const std::string& n : nodes) {
      y += "  - name: " + NodeName(n) + "\n    addresses: " + AddressList(n) + "\n";
      if (n == "nodeA3") {
        y += "    xlb: false\n";
      }
    }
    return y;
  };
  return "clusters:\n" + cluster("cluster-a", 1, {"nodeA", "nodeA2", "nodeA3"}) +
         cluster("cluster-b", 2, {"nodeB", "nodeB2"});
}

const std::vector<PathService>& PathServices() {
  static const std::vector<PathService> services = {
      {1, "to-poda1", "podA1", true},          {2, "to-poda21", "podA21", true},
      {3, "to-host-a2", "nodeA2", false},      {4, "to-podb1", "podB1", true},
      {5, "to-podb21", "podB21", true},        {6, "to-poda31", "podA31", true},
      {7, "to-clienta", "clientA", true},      {8, "to-clienta2", "clientA2", true},
      {9, "to-podb21-routed", "podB21", false}};
  return services;
}

namespace {

// "[198.18.10{net}.n, 2001:db8:10{net}::n]": a dual-stack list of VIPs.
std::string DualStack(int n, int net) {
  return "[" + Vip(Family::kV4, n, net) + ", " + Vip(Family::kV6, n, net) + "]";
}

std::string ServiceYaml(const std::string& name, int n, const std::string& extra = "") {
  return "- name: " + name + extra +
         "\n  namespace: xlb-test\n  type: LoadBalancer\n  clusterIPs: " + DualStack(n, 0) +
         "\n  externalIPs: " + DualStack(n, 1) + "\n  loadBalancerIPs: " + DualStack(n, 2) +
         "\n  clusterSetIPs: " + DualStack(n, 3) +
         "\n  ports:\n  - port: 8080\n    protocol: TCP\n    nodePort: " +
         std::to_string(kFirstNodePort + n) + "\n";
}

std::string SliceYaml(const std::string& service, const std::string& cluster,
                      const std::vector<std::pair<std::string, bool>>& endpoints) {
  std::string y = "- service: " + service + "\n  namespace: xlb-test\n  cluster: " + cluster +
                  "\n  endpoints:\n";
  for (const auto& [role, with_node] : endpoints) {
    const std::string node = NodeOf(role);
    y += "  - addresses: " + AddressList(role) + "\n";
    if (with_node) {
      y += "    nodeName: " + NodeName(node) + "\n";
    }
  }
  return y;
}

}  // namespace

std::string PathServicesYaml() {
  std::string services = "services:\n";
  std::string slices = "endpointSlices:\n";
  for (const PathService& s : PathServices()) {
    services += ServiceYaml(s.name, s.n);
    slices += SliceYaml(s.name, ClusterOfRole(s.backend), {{s.backend, s.with_node}});
  }
  services += ServiceYaml("split", kSplitN);
  slices += SliceYaml("split", "cluster-a", {{"podA1", true}, {"podA21", true}});
  slices += SliceYaml("split", "cluster-b", {{"podB1", true}});
  services += ServiceYaml("local-ext", kLocalExtN,
                          "\n  externalTrafficPolicy: Local\n  healthCheckNodePort: " +
                              std::to_string(kLocalExtHealthPort));
  slices += SliceYaml("local-ext", "cluster-a", {{"podA1", true}});
  slices += SliceYaml("local-ext", "cluster-b", {{"podB1", true}});
  services += ServiceYaml("affine", kAffineN,
                          "\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n"
                          "    clientIP:\n      timeoutSeconds: " +
                              std::to_string(kAffineTimeoutS));
  slices += SliceYaml("affine", "cluster-a", {{"podA1", true}, {"podA21", true}});
  slices += SliceYaml("affine", "cluster-b", {{"podB1", true}});
  services += ServiceYaml("no-endpoints", kNoEndpointsN);
  return services + slices;
}

std::string AffinePolicy(int local) {
  return kSplitPolicy + std::string(R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: affine
  namespace: xlb-test
spec:
  hosts: [affine]
  tcp:
  - route:
    - destination:
        host: affine.xlb-test.svc.cluster.local
      weight: )") +
         std::to_string(local) + R"(
    - destination:
        host: affine.xlb-test.svc.clusterset.local
      weight: )" +
         std::to_string(100 - local) + "\n";
}

const char* const kSplitPolicy = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: split
  namespace: xlb-test
spec:
  hosts: [split]
  tcp:
  - route:
    - destination:
        host: split.xlb-test.svc.cluster.local
      weight: 70
    - destination:
        host: split.xlb-test.svc.clusterset.local
      weight: 30
)";

struct AgentFleet::Agent {
  FleetNode node;
  std::string config;
  std::string pin_dir;
  std::vector<std::string> argv;
  std::unique_ptr<Process> proc;
  std::string earlier;  // stderr of the runs before this one
  int runs = 0;
};

AgentFleet::AgentFleet(Testbed& tb, FleetOptions options) : tb_(tb), options_(std::move(options)) {}

std::unique_ptr<AgentFleet> AgentFleet::Start(Testbed& tb, FleetOptions options) {
  if (!tb.multi_node()) {
    throw std::invalid_argument("AgentFleet needs the multi-node testbed (Options::multi_node)");
  }
  RemoveStalePinDirs(kPinPrefix);
  std::unique_ptr<AgentFleet> fleet(new AgentFleet(tb, std::move(options)));
  const std::string dir = tb.state_dir();
  const std::string pins = std::string(kPinRoot) + "/" + kPinPrefix + std::to_string(::getpid()) +
                           "-" + std::to_string(g_fleets++) + "-";
  std::string policy;
  if (!fleet->options_.policy.empty()) {
    policy = dir + "/fleet-policy.yaml";
    WriteAtomically(policy, fleet->options_.policy);
  }
  for (const FleetNode& n : FleetNodes()) {
    auto a = std::make_unique<Agent>();
    a->node = n;
    a->config = dir + "/fleet-config-" + n.role + ".yaml";
    a->pin_dir = pins + n.role;
    a->argv = {AgentBinary(),
               "--config",
               a->config,
               "--pin-dir",
               a->pin_dir,
               "--uplink",
               "eth0",
               "--pod-iface",
               "veth-*",
               "--tunnel-addr",
               Address(n.role, Family::kV4),
               "--tunnel-addr",
               Address(n.role, Family::kV6),
               "--tunnel-mtu",
               std::to_string(tb.transit_mtu())};
    // The host-namespace clients of the matrix need socket LB: a node without cgroup v2 fails
    // to start instead of leaving it off with a warning.
    a->argv.insert(a->argv.end(), {"--socket-lb", "on"});
    if (!policy.empty()) {
      a->argv.insert(a->argv.end(), {"--policy", policy});
    }
    if (fleet->options_.gue) {
      a->argv.insert(a->argv.end(), {"--encap", "gue"});
    }
    a->argv.insert(a->argv.end(), fleet->options_.extra_flags.begin(),
                   fleet->options_.extra_flags.end());
    fleet->agents_.push_back(std::move(a));
  }
  fleet->WriteConfigs();
  // All at once: loading and attaching take a second or two each.
  for (auto& a : fleet->agents_) {
    fleet->Spawn(*a);
  }
  for (auto& a : fleet->agents_) {
    fleet->WaitRunning(*a);
  }
  return fleet;
}

AgentFleet::~AgentFleet() {
  for (auto& a : agents_) {
    a->proc.reset();  // SIGTERM, then SIGKILL: the datapath stays until the pins go
  }
  for (auto& a : agents_) {
    if (auto r = RemovePins(a->pin_dir); !r.ok()) {
      std::fprintf(stderr, "fleet: remove pins %s: %s\n", a->pin_dir.c_str(),
                   r.error().ToString().c_str());
    }
  }
}

void AgentFleet::WriteConfigs() {
  for (auto& a : agents_) {
    const std::string text = "# xlb-agent config of " + a->node.role +
                             " (AgentFleet): only node: and local: differ between nodes\n"
                             "apiVersion: xlb.dev/v1alpha1\nkind: Config\nnode:\n  name: " +
                             a->node.node_name + "\n  addresses: " + AddressList(a->node.role) +
                             "\n" + FleetClustersYaml(a->node.cluster) + options_.services;
    WriteAtomically(a->config, text);
  }
}

void AgentFleet::SetServices(const std::string& services) {
  options_.services = services;
  WriteConfigs();
}

void AgentFleet::SetPolicy(const std::string& policy) {
  if (options_.policy.empty()) {
    throw std::logic_error("SetPolicy: the fleet was started without --policy");
  }
  options_.policy = policy;
  WriteAtomically(tb_.state_dir() + "/fleet-policy.yaml", policy);
}

void AgentFleet::Spawn(Agent& a) {
  if (a.proc) {
    a.earlier += "--- run " + std::to_string(a.runs) + " ---\n" + a.proc->ErrSoFar();
  }
  a.proc = tb_.Spawn(a.node.role, a.argv);
  ++a.runs;
  if (!a.proc) {
    throw std::runtime_error("could not start xlb-agent on " + a.node.role);
  }
}

void AgentFleet::WaitRunning(Agent& a) {
  const auto deadline = Clock::now() + seconds(60);
  while (a.proc->ErrSoFar().find(kRunning) == std::string::npos) {
    if (!a.proc->Running() || Clock::now() > deadline) {
      throw std::runtime_error("xlb-agent on " + a.node.role + " did not come up:\n" + Logs());
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
}

AgentFleet::Agent& AgentFleet::Find(std::string_view role) const {
  for (const auto& a : agents_) {
    if (a->node.role == role) {
      return *a;
    }
  }
  throw std::invalid_argument("no agent on " + std::string(role));
}

void AgentFleet::KillNine(std::string_view role) {
  Agent& a = Find(role);
  if (!a.proc || !a.proc->Running()) {
    throw std::runtime_error("the agent on " + a.node.role + " is not running:\n" + Log(role));
  }
  ::kill(a.proc->pid(), SIGKILL);
  CommandResult r = a.proc->Wait(seconds(10));
  if (r.signal != SIGKILL) {
    throw std::runtime_error("kill -9 of the agent on " + a.node.role + ": " + r.Describe());
  }
  a.earlier += "--- run " + std::to_string(a.runs) + ", killed with SIGKILL ---\n" + r.err;
  a.proc.reset();
}

void AgentFleet::Restart(std::string_view role) {
  Agent& a = Find(role);
  if (a.proc) {
    a.proc->Stop();
  }
  Spawn(a);
  WaitRunning(a);
}

CommandResult AgentFleet::Ctl(std::string_view role, const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {CtlBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--pin-dir", Find(role).pin_dir});
  return tb_.Run(role, argv, seconds(20));
}

const std::string& AgentFleet::PinDir(std::string_view role) const {
  return Find(role).pin_dir;
}

std::string AgentFleet::Log(std::string_view role) const {
  const Agent& a = Find(role);
  return a.earlier + "--- run " + std::to_string(a.runs) + " ---\n" +
         (a.proc ? a.proc->ErrSoFar() : std::string("(not running)\n"));
}

std::string AgentFleet::Logs() const {
  std::string s;
  for (const auto& a : agents_) {
    s += "=== xlb-agent on " + a->node.role + " ===\n" + Log(a->node.role);
  }
  return s;
}

namespace {

nlohmann::json Stats(const AgentFleet& fleet, std::string_view role) {
  CommandResult r = fleet.Ctl(role, {"stats", "-o", "json"});
  auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!r.ok() || j.is_discarded()) {
    throw std::runtime_error("xlbctl stats on " + std::string(role) + ": " + r.Describe());
  }
  return j;
}

}  // namespace

std::map<std::string, uint64_t> AgentFleet::ReasonPackets(std::string_view role) const {
  std::map<std::string, uint64_t> packets;
  const nlohmann::json stats = Stats(*this, role);  // the loop must not outlive it
  for (const auto& r : stats["reasons"]) {
    packets[r.value("reason", "")] = r.value("packets", uint64_t{0});
  }
  return packets;
}

std::map<std::string, uint64_t> AgentFleet::BackendNewFlows(std::string_view role) const {
  std::map<std::string, uint64_t> flows;
  const nlohmann::json stats = Stats(*this, role);
  for (const auto& b : stats["backends"]) {
    flows[b.value("address", "")] += b.value("new_flows", uint64_t{0});
  }
  return flows;
}

}  // namespace xlb::testbed
