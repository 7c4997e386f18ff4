// xlb-demo (`make demo`): the multi-node testbed (two clusters of two xlb nodes each, a node
// without xlb, pods and client pods on every node, a host-address endpoint) with the real
// xlb-agent on every xlb node (AgentFleet, as the DaemonSet runs it), then:
//   1. rounds of new TCP connections from the client to the LoadBalancer IP of "split"
//      (70 % cluster A = podA1 on nodeA, where the IP is routed, and podA21 on nodeA2;
//      30 % cluster B = podB1 on nodeB), printing after each round the share per backend with
//      its node and cluster, beside nodeA's own per-backend new-flow counters;
//   2. one connection group per path (client position x backend position x frontend): where
//      the connections went (backend, node, cluster), whom the backend saw, and how the answers
//      came back, read from the agents' datapath counters (`xlbctl stats`, reason deltas on
//      the balancing node and the backend's node: REVNAT by xlb_tc on the backend's veth,
//      tunnelled back and decapsulated, NodePort answers routed by xlb, ...).
// Everything is torn down at the end, on failure, and on Ctrl-C (the fleet's and the
// testbed's destructors; the testbed's watchdog if this process is killed outright).
//
// Usage: xlb-demo [--rounds N] [--per-round N] [--interval-ms MS] [--ipv6] [--gue]
// Defaults: 12 rounds of 100 connections, one round every 750 ms. Exit status 0 only when
// every connection of the rounds completed, each backend's share is within 5 pp of its
// weight, the backends saw the client's address and the client saw only the LoadBalancer IP;
// the path groups are shown, failed ones marked, but do not decide it.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "agent_fleet.h"
#include "testbed.h"
#include "wire.h"

namespace xlb::testbed {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  g_stop = true;
}

struct DemoOptions {
  long rounds = 12;
  long per_round = 100;
  long interval_ms = 750;  // a round starts this often: slow enough to watch
  Family family = Family::kV4;
  bool gue = false;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(
      stderr,
      "xlb-demo: %s\nusage: xlb-demo [--rounds N] [--per-round N] [--interval-ms MS] [--ipv6] "
      "[--gue]\n",
      why);
  std::exit(2);
}

DemoOptions ParseArgs(int argc, char** argv) {
  DemoOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto number = [&](long lo, long hi) {
      if (i + 1 >= argc) {
        Usage(("missing value for " + a).c_str());
      }
      char* end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < lo || v > hi) {
        Usage(("bad value for " + a).c_str());
      }
      return v;
    };
    if (a == "--rounds") {
      o.rounds = number(1, 1000);
    } else if (a == "--per-round") {
      o.per_round = number(1, 10000);
    } else if (a == "--interval-ms") {
      o.interval_ms = number(0, 60000);
    } else if (a == "--ipv6") {
      o.family = Family::kV6;
    } else if (a == "--gue") {
      o.gue = true;
    } else {
      Usage(("unknown argument " + a).c_str());
    }
  }
  return o;
}

double Pct(long part, long whole) {
  return whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

std::string Where(const std::string& role) {
  return role + "@" + NodeOf(role) + "/" + ClusterOfRole(role);
}

// A group of connections that takes one path.
struct Group {
  std::string label;
  std::string client;    // role the connections start in
  std::string service;   // PathServices() name
  int net;               // which VIP range: 0 clusterIP, 2 LoadBalancer; -1: NodePort
  std::string balancer;  // the node whose xlb balances (for a NodePort: whose address)
  const char* mode;      // the forwarding mode the path needs (multinode_test.cc's names)
};

const std::vector<Group>& Groups() {
  static const std::vector<Group> groups = {
      {"outside -> LB -> pod on nodeA", "client", "to-poda1", 2, "nodeA", "local"},
      {"outside -> LB -> pod on nodeA2", "client", "to-poda21", 2, "nodeA", "tunnel"},
      {"outside -> LB -> pod in cluster B", "client", "to-podb1", 2, "nodeA", "tunnel"},
      {"outside -> LB -> nodeA2's host address", "client", "to-host-a2", 2, "nodeA", "snat"},
      {"outside -> LB -> pod on nodeA3 (no xlb)", "client", "to-poda31", 2, "nodeA", "snat"},
      {"outside -> nodeA2:NodePort -> pod on nodeA2", "client", "to-poda21", -1, "nodeA2", "local"},
      {"outside -> nodeB:NodePort -> pod in cluster A", "client", "to-poda1", -1, "nodeB",
       "tunnel"},
      {"clientA -> ClusterIP -> pod on nodeA", "clientA", "to-poda1", 0, "nodeA", "local"},
      {"clientA -> ClusterIP -> pod on nodeA2", "clientA", "to-poda21", 0, "nodeA", "tunnel"},
      {"clientA2 -> ClusterIP -> pod in cluster B", "clientA2", "to-podb1", 0, "nodeA2", "tunnel"},
      {"clientA -> ClusterIP -> clientA (hairpin)", "clientA", "to-clienta", 0, "nodeA", "snat"},
      {"nodeA host -> ClusterIP -> pod on nodeA", "nodeA", "to-poda1", 0, "nodeA", "host"},
  };
  return groups;
}

const PathService& ServiceNamed(const std::string& name) {
  for (const PathService& s : PathServices()) {
    if (name == s.name) {
      return s;
    }
  }
  throw std::logic_error("no service " + name);
}

// The reasons that tell how a flow and its answers were carried, short.
const std::vector<std::pair<const char*, const char*>>& PathReasons() {
  static const std::vector<std::pair<const char*, const char*>> reasons = {
      {"fwd_new_flow", "new"},
      {"fwd_encap", "encap"},
      {"fwd_decap", "decap"},
      {"fwd_reply_revnat", "revnat"},
      {"fwd_reply_tunnel", "reply-tunnel"},
      {"fwd_reply_routed", "reply-routed"},
      {"fwd_snat", "snat"},
      {"fwd_reply_snat", "reply-snat"},
      {"drop_snat_ports", "DROP-snat-ports"},
      {"pass_reply_kernel", "reply-kernel"},
      {"pass_encap_kernel", "encap-kernel"}};
  return reasons;
}

using Counters = std::map<std::string, uint64_t>;

Counters Delta(const Counters& before, const Counters& after) {
  Counters d;
  for (const auto& [reason, n] : after) {
    const uint64_t was = before.count(reason) ? before.at(reason) : 0;
    if (n > was) {
      d[reason] = n - was;
    }
  }
  return d;
}

std::string DeltaText(const Counters& d) {
  std::string s;
  for (const auto& [reason, label] : PathReasons()) {
    if (d.count(reason)) {
      s += std::string(s.empty() ? "" : " ") + label + " " + std::to_string(d.at(reason));
    }
  }
  for (const auto& [reason, n] : d) {  // whatever was dropped, by its own name
    if (reason.rfind("drop_", 0) == 0) {
      s += std::string(s.empty() ? "" : " ") + reason + " " + std::to_string(n);
    }
  }
  return s.empty() ? "-" : s;
}

// How the answers came back, from the reason deltas of the balancing and the backend's node.
std::string AnswerPath(const std::string& balancer, const std::string& backend_node,
                       const Counters& bal, const Counters& be, long ok, std::string_view mode) {
  if (ok == 0) {
    return "no answer reached the client";
  }
  if (mode == "host") {
    return "straight from the backend: socket LB connected the socket to it, getpeername() "
           "shows the VIP";
  }
  auto n = [](const Counters& m, const char* k) { return m.count(k) ? m.at(k) : 0; };
  if (backend_node != balancer && n(be, "fwd_reply_tunnel") > 0) {
    return "tunnelled back by " + backend_node + ", reverse-NATed on " + balancer;
  }
  if (n(bal, "fwd_reply_snat") > 0) {
    return "to " + balancer + "'s address and SNAT port, turned back to the VIP by xlb_xdp";
  }
  if (mode == "snat" && n(bal, "fwd_snat") > 0 && n(bal, "fwd_reply_routed") > 0) {
    return "hairpin: back into the pod's veth from the VIP, routed by xlb_tc on " + balancer;
  }
  if (n(bal, "fwd_reply_routed") > 0) {
    return "NodePort answer reverse-NATed and routed by xlb on " + balancer;
  }
  if (n(bal, "fwd_reply_revnat") > 0) {
    return "reverse-NATed by xlb_tc on " + balancer + " (the backend's veth)";
  }
  return "reached the client without passing xlb's reverse NAT";
}

int Run(const DemoOptions& o) {
  const Family f = o.family;
  std::printf("xlb demo: two clusters of two xlb nodes each, the real xlb-agent on every one\n\n");
  std::printf("bringing up the multi-node testbed (scripts/testbed.sh plan)...\n");
  std::fflush(stdout);
  Options to;
  to.multi_node = true;
  auto tb = Testbed::Up(to);
  std::printf("  namespaces %s*, xlb-echo on :%u in every pod and in nodeA2's host namespace\n",
              tb->prefix().c_str(), tb->port());
  FleetOptions fo;
  fo.services = PathServicesYaml();
  fo.policy = kSplitPolicy;
  fo.gue = o.gue;
  auto fleet = AgentFleet::Start(*tb, fo);
  std::printf("  xlb-agent on");
  for (const FleetNode& n : FleetNodes()) {
    std::printf(" %s (%s, %s)", n.role.c_str(), n.node_name.c_str(), n.cluster.c_str());
  }
  std::printf(": XDP on eth0, TC on veth-* (and egress on both), socket LB, %s between nodes\n",
              o.gue ? "GUE" : "VXLAN");

  // --- 1. the split, in rounds ---
  const std::string lb = Vip(f, kSplitN, 2);
  const std::vector<std::string> split = {"podA1", "podA21", "podB1"};
  const std::map<std::string, double> weight = {{"podA1", 35}, {"podA21", 35}, {"podB1", 30}};
  std::printf("\nservice split, LoadBalancer IP %s:%u, policy cluster-a 70 / cluster-b 30:\n",
              lb.c_str(), tb->port());
  for (const std::string& p : split) {
    std::printf("  %-28s %-18s %4.1f %%\n", Where(p).c_str(), Address(p, f).c_str(), weight.at(p));
  }
  std::printf("\ntraffic: %ld rounds of %ld new TCP connections from the client (%s)\n\n", o.rounds,
              o.per_round, Address("client", f).c_str());
  std::printf(
      "round  conns failed | share so far: podA1@nodeA podA21@nodeA2 podB1@nodeB | nodeA's "
      "new flows\n%s\n",
      std::string(96, '-').c_str());
  std::map<std::string, long> ids;
  std::set<std::string> clients, peers;
  long ok = 0, failed = 0;
  const auto start = std::chrono::steady_clock::now();
  auto next_round = start;
  for (long round = 1; round <= o.rounds && !g_stop; ++round) {
    std::this_thread::sleep_until(next_round);
    next_round += std::chrono::milliseconds(o.interval_ms);
    ProbeResult r = tb->Probe("client", "tcp", lb, o.per_round, 8, 3000);
    if (g_stop) {
      break;
    }
    ok += r.ok;
    failed += r.count - r.ok;
    for (const auto& [id, n] : r.ids) {
      ids[id] += n;
    }
    for (const auto& [c, n] : r.clients) {
      clients.insert(c);
    }
    for (const auto& [p, n] : r.peers) {
      peers.insert(HostOf(p));
    }
    const auto kernel = fleet->BackendNewFlows("nodeA");
    auto flows = [&](const std::string& pod) {
      const std::string key = HostPort(Address(pod, f), 8080);
      return static_cast<unsigned long long>(kernel.count(key) ? kernel.at(key) : 0);
    };
    std::printf(
        "%5ld %6ld %6ld |          %5.1f %%       %5.1f %%      %5.1f %%   | %llu/%llu/%llu\n",
        round, ok + failed, failed, Pct(ids["podA1"], ok), Pct(ids["podA21"], ok),
        Pct(ids["podB1"], ok), flows("podA1"), flows("podA21"), flows("podB1"));
    std::fflush(stdout);
    if (r.ok == 0) {
      std::printf("\nno connection of this round completed (%s)\n",
                  r.errors.empty() ? "?" : r.errors.begin()->first.c_str());
      break;
    }
  }
  if (g_stop) {
    std::printf("\ninterrupted: tearing down\n");
    return 130;
  }
  const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  bool split_ok = ok > 0;
  for (const auto& [pod, w] : weight) {
    split_ok = split_ok && std::abs(Pct(ids[pod], ok) - w) <= 5.0;
  }
  const std::string client = Address("client", f);
  const bool real_client = clients == std::set<std::string>{client};
  const bool only_vip = peers == std::set<std::string>{lb};
  std::printf("\n%ld connections in %.1f s, %ld failed\n", ok + failed, ms / 1000.0, failed);
  std::printf(
      "  split  podA1 %.1f %% / podA21 %.1f %% / podB1 %.1f %% (35/35/30 within 5 pp: %s)\n",
      Pct(ids["podA1"], ok), Pct(ids["podA21"], ok), Pct(ids["podB1"], ok),
      split_ok ? "yes" : "NO");
  std::printf("  backends saw the client's own address %s: %s\n", client.c_str(),
              real_client ? "yes" : "NO");
  std::printf("  the client only ever talked to %s: %s\n", lb.c_str(), only_vip ? "yes" : "NO");

  // --- 2. one group per path ---
  std::printf("\npaths: 20 connections each; the answers' way back from the agents' counters\n");
  int path_failures = 0;
  for (const Group& g : Groups()) {
    if (g_stop) {
      break;
    }
    const PathService& svc = ServiceNamed(g.service);
    const std::string backend_node = NodeOf(svc.backend);
    const bool node_port = g.net < 0;
    const std::string addr = node_port ? Address(g.balancer, f) : Vip(f, svc.n, g.net);
    const int port = node_port ? kFirstNodePort + svc.n : tb->port();
    const bool backend_has_agent = backend_node == "nodeA" || backend_node == "nodeA2" ||
                                   backend_node == "nodeB" || backend_node == "nodeB2";
    const bool two_nodes = backend_has_agent && backend_node != g.balancer;
    const Counters bal_before = fleet->ReasonPackets(g.balancer);
    const Counters be_before = two_nodes ? fleet->ReasonPackets(backend_node) : Counters{};
    ProbeResult r = tb->ProbePort(g.client, "tcp", addr, port, 20, 4, 1000);
    const Counters bal = Delta(bal_before, fleet->ReasonPackets(g.balancer));
    const Counters be = two_nodes ? Delta(be_before, fleet->ReasonPackets(backend_node)) : bal;
    std::string seen;
    for (const auto& [c, n] : r.clients) {
      seen += (seen.empty() ? "" : ",") + c;
    }
    std::printf("\n  %s  (%s:%d)\n", g.label.c_str(), addr.c_str(), port);
    path_failures += r.ok != 20 ? 1 : 0;
    std::printf("    %2ld/20 %s  backend %s  saw %s  (mode %s)\n", r.ok,
                r.ok == 20 ? "ok    " : "FAILED", Where(svc.backend).c_str(), seen.empty() ? "-" : seen.c_str(), g.mode);
    std::printf("    answers: %s\n",
                AnswerPath(g.balancer, backend_node, bal, be, r.ok, g.mode).c_str());
    std::printf("    counters %s: %s", g.balancer.c_str(), DeltaText(bal).c_str());
    if (two_nodes) {
      std::printf(" | %s: %s", backend_node.c_str(), DeltaText(be).c_str());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return failed == 0 && split_ok && real_client && only_vip && path_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace xlb::testbed

int main(int argc, char** argv) {
  using namespace xlb::testbed;
  DemoOptions o = ParseArgs(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int rc = 1;
  try {
    rc = Run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-demo: %s\n", e.what());
    rc = 1;
  }
  // Run()'s locals -- the agents and their pins, then the testbed -- are gone by now.
  std::printf("testbed torn down\n");
  return rc;
}
