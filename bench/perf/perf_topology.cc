#include "perf_topology.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "flow_maps.h"
#include "lb_fixture.h"
#include "loader/reasons.h"
#include "userspace/agent/rtnetlink.h"
#include "xlb_perf.skel.h"

namespace xlb::perf {

using testing::Netns;

namespace {

constexpr const char* kSvcChain = "KUBE-SVC-XLBPERFUDP80";
constexpr const char* kTcpSvcChain = "KUBE-SVC-XLBPERFTCP80";
constexpr const char* kNftTable = "kube-proxy";
constexpr uint32_t kXlbUdpService = 1;
constexpr uint32_t kXlbTcpService = 2;

void Check(const Result<void>& r, const std::string& what) {
  if (!r.ok()) {
    throw std::runtime_error(what + ": " + r.error().ToString());
  }
}

uint64_t SumCpus(int map_fd, uint32_t key) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> values(ncpu > 0 ? ncpu : 1);
  if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) {
    throw std::runtime_error("lookup in a perf counter map: " + std::string(std::strerror(errno)));
  }
  uint64_t sum = 0;
  for (uint64_t v : values) sum += v;
  return sum;
}

// "[pkts:bytes] -A CHAIN ... -j TARGET" lines of iptables-save -c.
uint64_t IptablesJumpPackets(const std::string& save, const std::string& chain,
                             const std::string& target_prefix) {
  uint64_t sum = 0;
  std::istringstream lines(save);
  std::string line;
  const std::regex rule("^\\[(\\d+):\\d+\\] -A " + chain + " .*-j " + target_prefix);
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, rule)) sum += std::stoull(m[1]);
  }
  return sum;
}

// `conntrack -S`: one line per CPU of "name=value" pairs.
std::map<std::string, uint64_t> ConntrackStats(const Netns& ns) {
  std::map<std::string, uint64_t> sums;
  const std::string out = InNs(ns, "conntrack -S");
  const std::regex pair("(\\w+)=(\\d+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), pair); it != std::sregex_iterator();
       ++it) {
    if ((*it)[1] != "cpu") sums[(*it)[1]] += std::stoull((*it)[2]);
  }
  return sums;
}

uint64_t LinkDrops(const Netns& ns) {
  const auto links = nlohmann::json::parse(MustRun("ip -n " + ns.name() + " -s -j link"));
  uint64_t drops = 0;
  for (const auto& l : links) {
    if (!l.contains("stats64")) continue;
    drops += l["stats64"]["rx"].value("dropped", uint64_t{0});
    drops += l["stats64"]["tx"].value("dropped", uint64_t{0});
  }
  return drops;
}

std::string IptablesRules() {
  // kube-proxy's iptables mode for one ClusterIP service (UDP and TCP port 80, kBackends
  // endpoints), in the chains and rule shapes it writes: portals in PREROUTING and OUTPUT,
  // the masquerade mark for sources outside the pod CIDR, one KUBE-SEP per endpoint picked
  // by `statistic --mode random` with probability 1/(endpoints left), MASQUERADE in
  // KUBE-POSTROUTING, and KUBE-FORWARD in the filter table.
  std::ostringstream r;
  r << "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
       ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
       ":KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n";
  for (const char* proto : {"udp", "tcp"}) {
    const std::string svc = std::string(proto) == "udp" ? kSvcChain : kTcpSvcChain;
    r << ":" << svc << " - [0:0]\n";
    for (uint32_t i = 0; i < kBackends; ++i) r << ":KUBE-SEP-" << proto << i << " - [0:0]\n";
  }
  r << "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
       "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
       "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
       "KUBE-POSTROUTING\n"
       "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
       "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
       "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
       "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
       "-j MASQUERADE --random-fully\n";
  for (const char* proto : {"udp", "tcp"}) {
    const std::string svc = std::string(proto) == "udp" ? kSvcChain : kTcpSvcChain;
    const auto comment = [&](const std::string& more) {
      return std::string("-m comment --comment \"perf/svc:") + proto + more + "\"";
    };
    r << "-A KUBE-SERVICES -d " << kVip << "/32 -p " << proto << " " << comment(" cluster IP")
      << " -m " << proto << " --dport 80 -j " << svc << "\n";
    r << "-A " << svc << " ! -s " << kPodCidr << " -d " << kVip << "/32 -p " << proto << " "
      << comment(" cluster IP") << " -m " << proto << " --dport 80 -j KUBE-MARK-MASQ\n";
    for (uint32_t i = 0; i < kBackends; ++i) {
      r << "-A " << svc << " " << comment(" -> " + BackendAddr(i) + ":8080");
      if (i + 1 < kBackends) {
        char p[32];
        std::snprintf(p, sizeof(p), "%.11f", 1.0 / (kBackends - i));
        r << " -m statistic --mode random --probability " << p;
      }
      r << " -j KUBE-SEP-" << proto << i << "\n";
      r << "-A KUBE-SEP-" << proto << i << " -s " << BackendAddr(i) << "/32 " << comment("")
        << " -j KUBE-MARK-MASQ\n";
      r << "-A KUBE-SEP-" << proto << i << " -p " << proto << " " << comment("") << " -m " << proto
        << " -j DNAT --to-destination " << BackendAddr(i) << ":8080\n";
    }
  }
  r << "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must "
       "be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n"
       "COMMIT\n"
       "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
       ":KUBE-FORWARD - [0:0]\n"
       "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
       "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
       "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
       "0x4000/0x4000 -j ACCEPT\n"
       "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m "
       "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
       "COMMIT\n";
  return r.str();
}

std::string NftRuleset() {
  // kube-proxy's nftables mode (table ip kube-proxy): the service-ips verdict map keyed by
  // address . protocol . port, a service chain that marks outside sources for masquerade
  // and picks an endpoint chain with `numgen random mod N vmap`, endpoint chains that DNAT,
  // masquerading in nat-postrouting, and the new-connection checks in filter-forward. The
  // endpoint chains' `counter` is ours (kube-proxy writes none): it proves the path and is
  // paid once per new connection.
  std::ostringstream r;
  r << "table ip " << kNftTable << " {\n comment \"rules for kube-proxy\"\n"
    << " set nodeport-ips { type ipv4_addr; }\n"
    << " map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }\n"
    << " map service-nodeports { type inet_proto . inet_service : verdict; }\n"
    << " chain mark-for-masquerade { meta mark set meta mark | 0x4000; }\n"
    << " chain masquerading { meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000;"
       " masquerade fully-random; }\n"
    << " chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept;"
       " jump services; }\n"
    << " chain nat-output { type nat hook output priority -100; policy accept;"
       " jump services; }\n"
    << " chain nat-postrouting { type nat hook postrouting priority srcnat; policy accept;"
       " jump masquerading; }\n"
    << " chain service-endpoints-check { ip daddr . meta l4proto . th dport vmap"
       " @no-endpoint-services; }\n"
    << " chain filter-forward { type filter hook forward priority -110; policy accept;"
       " ct state new jump service-endpoints-check; }\n";
  std::string elements;
  for (const char* proto : {"udp", "tcp"}) {
    const std::string svc = std::string("service-XLBPERF-perf/svc/") + proto + "/p80";
    r << " chain " << svc << " {\n  ip daddr " << kVip << " " << proto
      << " dport 80 ip saddr != " << kPodCidr << " jump mark-for-masquerade\n"
      << "  numgen random mod " << kBackends << " vmap {";
    for (uint32_t i = 0; i < kBackends; ++i) {
      r << (i ? ", " : " ") << i << " : goto endpoint-XLBPERF" << i << "-perf/svc/" << proto
        << "/p80__" << BackendAddr(i) << "/8080";
    }
    r << " }\n }\n";
    for (uint32_t i = 0; i < kBackends; ++i) {
      r << " chain endpoint-XLBPERF" << i << "-perf/svc/" << proto << "/p80__" << BackendAddr(i)
        << "/8080 {\n  ip saddr " << BackendAddr(i) << " jump mark-for-masquerade\n"
        << "  counter meta l4proto " << proto << " dnat to " << BackendAddr(i) << ":8080\n }\n";
    }
    elements +=
        std::string(elements.empty() ? "" : ", ") + kVip + " . " + proto + " . 80 : goto " + svc;
  }
  r << " map service-ips { type ipv4_addr . inet_proto . inet_service : verdict;"
    << " elements = { " << elements << " } }\n"
    << " chain services { ip daddr . meta l4proto . th dport vmap @service-ips;"
       " ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports; }\n}\n";
  return r.str();
}

}  // namespace

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kRoute:
      return "route";
    case Mode::kIptables:
      return "iptables";
    case Mode::kNftables:
      return "nftables";
    case Mode::kCeiling:
      return "ceiling";
    case Mode::kXlbLocal:
      return "xlb-local";
    case Mode::kXlbLocalStack:
      return "xlb-local-stack";
    case Mode::kXlbSnat:
      return "xlb-snat";
    case Mode::kXlbRemote:
      return "xlb-remote";
    case Mode::kXlbDecap:
      return "xlb-decap";
  }
  return "?";
}

const char* ModeDescription(Mode m) {
  switch (m) {
    case Mode::kRoute:
      return "node only routes (ip_forward)";
    case Mode::kIptables:
      return "kube-proxy iptables (legacy) DNAT + masquerade";
    case Mode::kNftables:
      return "kube-proxy nftables DNAT + masquerade";
    case Mode::kCeiling:
      return "XDP redirect + MAC rewrite (ceiling)";
    case Mode::kXlbLocal:
      return "xlb, local backends (XDP DNAT, forwarded by xlb: fib, XDP redirect)";
    case Mode::kXlbLocalStack:
      return "xlb, local backends, --forwarding stack (XDP DNAT, stack forwards)";
    case Mode::kXlbSnat:
      return "xlb, backends without xlb (DNAT + SNAT, fib, XDP redirect)";
    case Mode::kXlbRemote:
      return "xlb, remote-cluster backends (DNAT + VXLAN, XDP_TX)";
    case Mode::kXlbDecap:
      return "xlb, VXLAN from a remote node to a local backend (decap, forwarded by xlb)";
  }
  return "?";
}

std::string BackendAddr(uint32_t i) {
  return "198.18.1." + std::to_string(10 + i);
}
std::string RemoteBackendAddr(uint32_t i) {
  return "198.18.40." + std::to_string(10 + i);
}

std::string MustRun(const std::string& command) {
  testing::CommandResult r = testing::RunCommand(command);
  if (r.status != 0) {
    throw std::runtime_error(command + ": " + r.output);
  }
  return r.output;
}

std::string InNs(const Netns& ns, const std::string& command) {
  return MustRun("nsenter --net=" + ns.Path() + " " + command);
}

void RunIn(const Netns& ns, int cpu, const std::function<void()>& fn) {
  std::exception_ptr failure;
  std::thread t([&] {
    try {
      const int fd = ::open(ns.Path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        throw std::runtime_error("setns " + ns.Path() + ": " + std::strerror(errno));
      }
      ::close(fd);
      if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
          throw std::runtime_error("pin to CPU " + std::to_string(cpu));
        }
      }
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  t.join();
  if (failure) std::rethrow_exception(failure);
}

PerfPrograms::PerfPrograms() : skel_(xlb_perf__open_and_load()) {
  if (skel_ == nullptr) {
    throw std::runtime_error("load xlb_perf: " + std::string(std::strerror(errno)));
  }
}
PerfPrograms::~PerfPrograms() {
  xlb_perf__destroy(skel_);
}
int PerfPrograms::gen_fd() const {
  return bpf_program__fd(skel_->progs.perf_gen);
}
int PerfPrograms::sink_fd() const {
  return bpf_program__fd(skel_->progs.perf_sink);
}
int PerfPrograms::pass_fd() const {
  return bpf_program__fd(skel_->progs.perf_pass);
}
int PerfPrograms::fwd_fd() const {
  return bpf_program__fd(skel_->progs.perf_fwd);
}

void PerfPrograms::SetGenerator(const perf_gen_config& config) {
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.perf_gen_cfg), &zero, &config, 0) != 0) {
    throw std::runtime_error("write the generator's template: " +
                             std::string(std::strerror(errno)));
  }
}

void PerfPrograms::SetForwarder(const perf_fwd_config& config) {
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.perf_fwd_cfg), &zero, &config, 0) != 0) {
    throw std::runtime_error("write the forwarder's next hop: " +
                             std::string(std::strerror(errno)));
  }
}

uint64_t PerfPrograms::Sent() const {
  return SumCpus(bpf_map__fd(skel_->maps.perf_gen_sent), 0);
}
uint64_t PerfPrograms::Forwarded() const {
  return SumCpus(bpf_map__fd(skel_->maps.perf_forwarded), 0);
}
std::array<uint64_t, PERF_ARRIVAL_MAX> PerfPrograms::Arrivals() const {
  std::array<uint64_t, PERF_ARRIVAL_MAX> a{};
  for (uint32_t k = 0; k < PERF_ARRIVAL_MAX; ++k) {
    a[k] = SumCpus(bpf_map__fd(skel_->maps.perf_arrivals), k);
  }
  return a;
}

PathCounters operator-(const PathCounters& after, const PathCounters& before) {
  PathCounters d;
  d.sent = after.sent - before.sent;
  for (size_t k = 0; k < d.arrivals.size(); ++k) {
    d.arrivals[k] = after.arrivals[k] - before.arrivals[k];
  }
  d.link_drops = after.link_drops - before.link_drops;
  for (const auto& [name, runs_ns] : after.bpf_runs_ns) {
    auto it = before.bpf_runs_ns.find(name);
    const auto base = it == before.bpf_runs_ns.end() ? std::pair<uint64_t, uint64_t>{} : it->second;
    d.bpf_runs_ns[name] = {runs_ns.first - base.first, runs_ns.second - base.second};
  }
  for (const auto& [name, value] : after.path) {
    auto it = before.path.find(name);
    d.path[name] = value - (it == before.path.end() ? 0 : it->second);
  }
  return d;
}

ModeNet::ModeNet(Mode mode, PerfPrograms& progs)
    : mode_(mode),
      gen_(std::make_unique<Netns>()),
      node_(std::make_unique<Netns>()),
      sink_(std::make_unique<Netns>()) {
  for (const Netns* ns : {gen_.get(), node_.get(), sink_.get()}) {
    if (!ns->ok()) throw std::runtime_error(ns->error());
  }
  Wire();
  Attach(*gen_, "g0", progs.sink_fd());
  Attach(*sink_, "s0", progs.sink_fd());
  switch (mode_) {
    case Mode::kRoute:
      Attach(*node_, "n0", progs.pass_fd());
      break;
    case Mode::kIptables:
      LoadRules("iptables-legacy-restore", IptablesRules());
      Attach(*node_, "n0", progs.pass_fd());
      break;
    case Mode::kNftables:
      LoadRules("nft -f", NftRuleset());
      Attach(*node_, "n0", progs.pass_fd());
      break;
    case Mode::kCeiling:
      SetUpCeiling(progs);
      break;
    case Mode::kXlbLocal:
    case Mode::kXlbLocalStack:
    case Mode::kXlbSnat:
    case Mode::kXlbRemote:
    case Mode::kXlbDecap:
      SetUpXlb();
      break;
  }
}

ModeNet::~ModeNet() {
  // Deleting a namespace takes its veths and everything attached to them along; the TC
  // hook and XDP program xlb attached inside node_ need no detaching first.
  xlb_tc_.reset();
  xlb_.reset();
}

void ModeNet::Attach(const Netns& ns, const char* dev, int prog_fd) {
  RunIn(ns, -1, [&] {
    auto a = AttachXdp(prog_fd, dev, {.allow_generic = false, .replace = true});
    Check(a.ok() ? Result<void>{} : Result<void>(a.error()),
          std::string("attach XDP to ") + dev + " in " + ns.name());
    a->release();
  });
}

std::string ModeNet::MacOf(const Netns& ns, const char* dev) const {
  const auto link = nlohmann::json::parse(MustRun("ip -n " + ns.name() + " -j link show " + dev));
  return link.at(0).at("address").get<std::string>();
}

void ModeNet::Wire() {
  // No IPv6: its router solicitations and DAD would be traffic on the paths the counters
  // account for frame by frame.
  for (const Netns* ns : {gen_.get(), node_.get(), sink_.get()}) {
    InNs(*ns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
  }
  // Two queues a side, so that two generator CPUs each have a ring of their own.
  const std::string q = " numtxqueues 2 numrxqueues 2";
  MustRun("ip link add g0 netns " + gen_->name() + q + " type veth peer n0 netns " + node_->name() +
          q);
  MustRun("ip link add n1 netns " + node_->name() + q + " type veth peer s0 netns " +
          sink_->name() + q);
  const std::string mtu = " mtu " + std::to_string(kUplinkMtu);
  const auto ip = [](const Netns& ns, const std::string& args) {
    MustRun("ip -n " + ns.name() + " " + args);
  };
  ip(*gen_, "link set g0 address 02:00:00:00:00:01" + mtu + " up");
  ip(*node_, "link set n0 address 02:00:00:00:00:02" + mtu + " up");
  ip(*node_, "link set n1 address 02:00:00:00:00:03" + mtu + " up");
  ip(*sink_, "link set s0 address 02:00:00:00:00:04" + mtu + " up");
  for (const Netns* ns : {gen_.get(), node_.get(), sink_.get()}) ip(*ns, "link set lo up");
  // The generator and the sink stand for hosts behind a wire: their TCP segments arrive with
  // complete checksums, as from a NIC. A veth's default checksum offload hands the node
  // partial ones, which an XDP redirect would carry on unfinished (README: forwarding).
  MustRun("ip netns exec " + gen_->name() + " ethtool -K g0 tx off >/dev/null");
  MustRun("ip netns exec " + sink_->name() + " ethtool -K s0 tx off >/dev/null");
  ip(*gen_, std::string("addr add ") + kGenAddr + "/24 dev g0");
  ip(*node_, std::string("addr add ") + kNodeUplinkAddr + "/24 dev n0");
  ip(*node_, std::string("addr add ") + kNodePodSideAddr + "/24 dev n1");
  ip(*sink_, std::string("addr add ") + kSinkAddr + "/24 dev s0");
  for (uint32_t i = 0; i < kBackends; ++i) {
    ip(*sink_, "addr add " + BackendAddr(i) + "/32 dev s0");
  }
  // Static neighbours: the first packets of a run must not wait for ARP (nor the sink's XDP
  // program see ARP as traffic).
  ip(*gen_, std::string("neigh replace ") + kNodeUplinkAddr +
                " lladdr 02:00:00:00:00:02 nud permanent dev g0");
  ip(*node_,
     std::string("neigh replace ") + kGenAddr + " lladdr 02:00:00:00:00:01 nud permanent dev n0");
  ip(*node_,
     std::string("neigh replace ") + kSinkAddr + " lladdr 02:00:00:00:00:04 nud permanent dev n1");
  for (uint32_t i = 0; i < kBackends; ++i) {
    ip(*node_,
       "neigh replace " + BackendAddr(i) + " lladdr 02:00:00:00:00:04 nud permanent dev n1");
  }
  ip(*sink_, std::string("neigh replace ") + kNodePodSideAddr +
                 " lladdr 02:00:00:00:00:03 nud permanent dev s0");
  ip(*gen_, std::string("route add 198.18.0.0/15 via ") + kNodeUplinkAddr);
  ip(*sink_, std::string("route add default via ") + kNodePodSideAddr);
  ip(*node_, std::string("route add ") + kClientNet + " via " + kGenAddr);
  ip(*node_, std::string("route add ") + kRemoteNode + "/32 via " + kGenAddr);
  InNs(*node_, "sysctl -qw net.ipv4.ip_forward=1");
  RunIn(*gen_, -1, [&] { gen_ifindex_ = static_cast<int>(::if_nametoindex("g0")); });
}

// Feeds `rules` to a restore-style command (iptables-legacy-restore FILE, nft -f FILE) in
// the node's namespace, through a file: nsenter passes no stdin through popen.
void ModeNet::LoadRules(const std::string& command, const std::string& rules) {
  const std::string file = "/tmp/" + node_->name() + ".rules";
  FILE* f = std::fopen(file.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("write " + file);
  std::fwrite(rules.data(), 1, rules.size(), f);
  std::fclose(f);
  try {
    InNs(*node_, command + " " + file);
  } catch (...) {
    std::remove(file.c_str());
    throw;
  }
  std::remove(file.c_str());
}

void ModeNet::SetUpCeiling(PerfPrograms& progs) {
  perf_fwd_config fwd{};
  RunIn(*node_, -1, [&] { fwd.ifindex = ::if_nametoindex("n1"); });
  const uint8_t src[6] = {2, 0, 0, 0, 0, 3}, dst[6] = {2, 0, 0, 0, 0, 4};
  std::memcpy(fwd.src_mac, src, 6);
  std::memcpy(fwd.dst_mac, dst, 6);
  progs.SetForwarder(fwd);
  Attach(*node_, "n0", progs.fwd_fd());
}

void ModeNet::SetUpXlb() {
  LoadOptions lo{.pin_dir = ""};
  lo.config.tunnel_addr4 = testing::ParseAddr(kNodeUplinkAddr).words[0];
  lo.config.encap = XLB_ENCAP_VXLAN;
  lo.config.tunnel_mtu = kUplinkMtu;
  if (mode_ == Mode::kXlbLocalStack) lo.config.flags |= XLB_CFG_F_STACK_FORWARD;
  auto dp = XdpDatapath::Load(lo);
  if (!dp.ok()) throw std::runtime_error("load xlb_xdp: " + dp.error().ToString());
  xlb_ = std::move(*dp);
  if (mode_ != Mode::kXlbLocalStack) {
    // What the agent does: every interface the kernel says takes XDP frames (n1 does, since
    // the sink's s0 runs an XDP program) may be forwarded onto.
    RunIn(*node_, -1, [&] {
      auto targets = XdpRedirectTargets();
      if (!targets.ok()) throw std::runtime_error("XDP targets: " + targets.error().ToString());
      auto n1 = IfIndex("n1");
      if (!n1.ok() || targets->count(*n1) == 0)
        throw std::runtime_error("n1 does not take XDP frames (netdev xdp-features)");
      for (int ifindex : *targets) {
        const auto key = static_cast<uint32_t>(ifindex);
        Check(xlb_->forward_devices().Update(key, key), "xlb forwarding device");
      }
    });
  }
  if (mode_ == Mode::kXlbDecap) {
    // What arrives is already balanced by the remote node's xlb: nothing to program but the
    // peer (checked only with XLB_CFG_F_TUNNEL_PEERS; written as the agent would).
    xlb_peer_key peer{};
    peer.addr[0] = testing::ParseAddr(kRemoteNode).words[0];
    peer.family = XLB_FAMILY_IPV4;
    Check(xlb_->peers().Update(peer, xlb_peer{.cluster_id = 2, .pad = {}}), "xlb tunnel peer");
    Attach(*node_, "n0", xlb_->prog_fd());
    return;
  }
  testing::ServiceWriter writer(*xlb_);
  std::vector<testing::WeightedBackend> udp, tcp;
  for (uint32_t i = 0; i < kBackends; ++i) {
    if (mode_ == Mode::kXlbSnat) {
      // Hosts without xlb: their answers must come back to this node, so xlb SNATs to its
      // own address and sends the packet on itself (fib lookup, redirect to n1).
      xlb_backend be = testing::Backend(BackendAddr(i), PERF_BACKEND_PORT);
      be.flags |= XLB_BE_F_SNAT;
      udp.push_back({1 + i, be});
    } else if (IsXlbLocal(mode_)) {
      udp.push_back({1 + i, testing::Backend(BackendAddr(i), PERF_BACKEND_PORT)});
      tcp.push_back({1 + kBackends + i, testing::Backend(BackendAddr(i), PERF_BACKEND_PORT)});
    } else {
      xlb_backend be = testing::Backend(RemoteBackendAddr(i), PERF_BACKEND_PORT, 2);
      be.flags |= XLB_BE_F_TUNNEL;
      be.tunnel[0] = testing::ParseAddr(kRemoteNode).words[0];
      be.tunnel_family = XLB_FAMILY_IPV4;
      udp.push_back({1 + i, be});
    }
  }
  const char* vip = mode_ == Mode::kXlbRemote ? kRemoteVip : kVip;
  const xlb_service_key udp_key = testing::VipKey(vip, PERF_SERVICE_PORT, IPPROTO_UDP);
  Check(writer.AddService(kXlbUdpService, std::span(&udp_key, 1), udp), "xlb UDP service");
  if (IsXlbLocal(mode_)) {
    const xlb_service_key tcp_key = testing::VipKey(vip, kTcpPort, IPPROTO_TCP);
    Check(writer.AddService(kXlbTcpService, std::span(&tcp_key, 1), tcp), "xlb TCP service");
    // The backends' answers enter the node through n1: xlb_tc reverses the DNAT there.
    auto tc = TcDatapath::Load(*xlb_);
    if (!tc.ok()) throw std::runtime_error("load xlb_tc: " + tc.error().ToString());
    xlb_tc_ = std::move(*tc);
    RunIn(*node_, -1, [&] {
      auto a = xlb_tc_->Attach("n1");
      if (!a.ok()) throw std::runtime_error("attach xlb_tc to n1: " + a.error().ToString());
      a->release();
    });
  }
  Attach(*node_, "n0", xlb_->prog_fd());
}

namespace {

uint16_t Checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

void Put16(uint8_t* p, uint16_t host) {
  const uint16_t be = htons(host);
  std::memcpy(p, &be, 2);
}

// Ethernet dst -> src, IPv4 saddr -> daddr (DF, TTL 64), UDP sport -> dport with checksum 0
// (IPv4 allows it), zeros to `size` bytes.
std::vector<uint8_t> UdpFrame(const uint8_t (&dst_mac)[6], const uint8_t (&src_mac)[6],
                              const char* saddr, const char* daddr, uint16_t sport, uint16_t dport,
                              uint32_t size) {
  std::vector<uint8_t> f(size, 0);
  std::memcpy(&f[0], dst_mac, 6);
  std::memcpy(&f[6], src_mac, 6);
  f[12] = 0x08;
  uint8_t* ip = &f[14];
  ip[0] = 0x45;
  Put16(&ip[2], static_cast<uint16_t>(size - 14));
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  const uint32_t s = testing::ParseAddr(saddr).words[0], d = testing::ParseAddr(daddr).words[0];
  std::memcpy(&ip[12], &s, 4);
  std::memcpy(&ip[16], &d, 4);
  const uint16_t check = Checksum(ip, 20);
  std::memcpy(&ip[10], &check, 2);
  Put16(&ip[20], sport);
  Put16(&ip[22], dport);
  Put16(&ip[24], static_cast<uint16_t>(size - 34));
  return f;
}

constexpr uint8_t kGenMac[6] = {2, 0, 0, 0, 0, 1};
constexpr uint8_t kNodeUplinkMac[6] = {2, 0, 0, 0, 0, 2};
constexpr uint8_t kRemoteNodeMac[6] = {2, 0, 0, 0, 2, 2};
constexpr uint32_t kVxlanOverhead = 14 + 20 + 8 + 8;  // outer Ethernet, IPv4, UDP, VXLAN

}  // namespace

std::vector<uint8_t> ModeNet::Frame(uint32_t size) const {
  if (mode_ == Mode::kXlbDecap) {
    // What the remote node's xlb sends after balancing a client's flow to backend 0 here:
    // VXLAN with xlb's VNI around a frame to the VTEP MAC, the packet already DNATed.
    const xlb_config cfg = XLB_CONFIG_DEFAULTS;
    std::vector<uint8_t> inner =
        UdpFrame(cfg.vtep_mac, kRemoteNodeMac, "198.19.0.0", BackendAddr(0).c_str(),
                 PERF_SPORT_BASE, PERF_BACKEND_PORT, size);
    std::vector<uint8_t> f = UdpFrame(kNodeUplinkMac, kGenMac, kRemoteNode, kNodeUplinkAddr, 51000,
                                      PERF_VXLAN_PORT, size + kVxlanOverhead);
    uint8_t* vxlan = &f[14 + 20 + 8];
    vxlan[0] = 0x08;  // I flag: the VNI is valid
    vxlan[4] = static_cast<uint8_t>(cfg.vni >> 16);
    vxlan[5] = static_cast<uint8_t>(cfg.vni >> 8);
    vxlan[6] = static_cast<uint8_t>(cfg.vni);
    std::copy(inner.begin(), inner.end(), f.begin() + kVxlanOverhead);
    return f;
  }
  const char* dst = mode_ == Mode::kXlbRemote                          ? kRemoteVip
                    : mode_ == Mode::kRoute || mode_ == Mode::kCeiling ? "198.18.1.10"
                                                                       : kVip;
  return UdpFrame(kNodeUplinkMac, kGenMac, "198.19.0.0", dst, PERF_SPORT_BASE, PERF_SERVICE_PORT,
                  size);
}

uint16_t ModeNet::StampedIpOffset() const {
  return mode_ == Mode::kXlbDecap ? 14 + kVxlanOverhead : 14;
}

perf_arrival ModeNet::ExpectedArrival() const {
  switch (mode_) {
    case Mode::kRoute:
    case Mode::kCeiling:
      return PERF_ARRIVAL_UNTOUCHED;
    case Mode::kXlbRemote:
      return PERF_ARRIVAL_VXLAN;
    default:
      return PERF_ARRIVAL_DNAT;
  }
}

void ModeNet::ClearFlows() {
  if (mode_ == Mode::kIptables || mode_ == Mode::kNftables) {
    // conntrack -F reports how many it deleted on stderr; an empty table is not an error
    testing::RunCommand("nsenter --net=" + node_->Path() + " conntrack -F");
  }
  if (xlb_) {
    for (auto cleared :
         {ClearFlowMap<xlb_ct_value>(xlb_->conntrack().fd(), XLB_MAP_CT),
          ClearFlowMap<xlb_reply>(xlb_->replies().fd(), XLB_MAP_REPLY),
          ClearFlowMap<xlb_snat>(xlb_->snat().fd(), XLB_MAP_SNAT),
          ClearFlowMap<xlb_half_open, xlb_half_key>(xlb_->half_open_conntrack().fd(),
                                                    XLB_MAP_CT_HALF_OPEN),
          ClearFlowMap<xlb_reply>(xlb_->half_open_replies().fd(), XLB_MAP_REPLY_HALF_OPEN)}) {
      if (!cleared.ok())
        throw std::runtime_error("clear xlb's flows: " + cleared.error().ToString());
    }
  }
}

int ModeNet::NodeProgFd(const PerfPrograms& progs) const {
  if (mode_ == Mode::kCeiling) return progs.fwd_fd();
  return IsXlb(mode_) ? xlb_->prog_fd() : progs.pass_fd();
}

PathCounters ModeNet::Read(const PerfPrograms& progs) const {
  PathCounters c;
  for (const int fd : {progs.gen_fd(), NodeProgFd(progs), progs.sink_fd()}) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      c.bpf_runs_ns[info.name] = {info.run_cnt, info.run_time_ns};
    }
  }
  c.sent = progs.Sent();
  c.arrivals = progs.Arrivals();
  for (const Netns* ns : {gen_.get(), node_.get(), sink_.get()}) c.link_drops += LinkDrops(*ns);
  switch (mode_) {
    case Mode::kIptables: {
      const std::string save = InNs(*node_, "iptables-legacy-save -c -t nat");
      c.path["KUBE-SEP hits"] = IptablesJumpPackets(save, kSvcChain, "KUBE-SEP-");
      c.path["KUBE-MARK-MASQ hits"] = IptablesJumpPackets(save, kSvcChain, "KUBE-MARK-MASQ");
      [[fallthrough]];
    }
    case Mode::kNftables: {
      if (mode_ == Mode::kNftables) {
        const std::string rules = InNs(*node_, std::string("nft list table ip ") + kNftTable);
        uint64_t hits = 0;
        const std::regex udp_counter("counter packets (\\d+) bytes \\d+ meta l4proto udp");
        for (auto it = std::sregex_iterator(rules.begin(), rules.end(), udp_counter);
             it != std::sregex_iterator(); ++it) {
          hits += std::stoull((*it)[1]);
        }
        c.path["endpoint chain hits"] = hits;
      }
      const auto ct = ConntrackStats(*node_);
      for (const char* k : {"drop", "early_drop", "insert_failed", "invalid"}) {
        auto it = ct.find(k);
        c.path[std::string("conntrack ") + k] = it == ct.end() ? 0 : it->second;
      }
      break;
    }
    case Mode::kCeiling:
      c.path["forwarded"] = progs.Forwarded();
      break;
    case Mode::kXlbLocal:
    case Mode::kXlbLocalStack:
    case Mode::kXlbSnat:
    case Mode::kXlbRemote:
    case Mode::kXlbDecap: {
      const auto reasons = testing::ReasonCounts(*xlb_);
      for (uint32_t r = 0; r < XLB_REASON_MAX; ++r) {
        c.path[std::string(ReasonName(r))] = reasons[r];
      }
      break;
    }
    case Mode::kRoute:
      break;
  }
  return c;
}

}  // namespace xlb::perf
