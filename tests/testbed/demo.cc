// xlb-demo (`make demo`): the two-cluster testbed, xlb on nodeA and nodeB (VXLAN between
// them), one service VIP with a 70/30 policy -- 70 % to cluster A's pods (local to nodeA),
// 30 % to cluster B's (through the tunnel to nodeB) -- and real TCP connections from the
// client in rounds, printing after each round the share per cluster and per backend as the
// echo servers report it, beside the datapath's own per-backend new-flow counters.
//
// A program rather than a script: programming services needs the loader (the agent that will
// do it from the command line is a later issue), and this is the same harness the end-to-end
// tests use (xlb_node.h), so the demo shows exactly the path they check. Everything is torn
// down at the end, on failure, and on Ctrl-C (the testbed's destructor; its watchdog if this
// process is killed outright).
//
// Usage: xlb-demo [--rounds N] [--per-round N] [--interval-ms MS] [--ipv6] [--gue]
// Defaults: 20 rounds of 100 connections, one round every 750 ms (about 15 s).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "loader/log.h"
#include "testbed.h"
#include "wire.h"
#include "xlb_node.h"

namespace xlb::testbed {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  g_stop = true;
}

struct DemoOptions {
  long rounds = 20;
  long per_round = 100;
  long interval_ms = 750;  // a round starts this often: slow enough to watch
  Family family = Family::kV4;
  uint8_t encap = XLB_ENCAP_VXLAN;
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
      o.encap = XLB_ENCAP_GUE;
    } else {
      Usage(("unknown argument " + a).c_str());
    }
  }
  return o;
}

double Pct(long part, long whole) {
  return whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

int Run(const DemoOptions& o) {
  const std::vector<std::string> pods = {"podA1", "podA2", "podB1", "podB2"};
  const std::string vip = Vip(o.family);
  std::printf("xlb demo: one service, two clusters, 70 %% local / 30 %% remote\n\n");
  std::printf(
      "bringing up the testbed (client, router, nodeA + podA1/podA2, nodeB + podB1/podB2)...\n");
  std::fflush(stdout);
  auto tb = Testbed::Up();
  std::printf("  namespaces %s*, echo servers on :%u in every pod\n", tb->prefix().c_str(),
              tb->port());
  XlbNodeOptions xo;
  xo.encap = o.encap;
  auto node_a = XlbNode::Start(*tb, "nodeA", xo);
  auto node_b = XlbNode::Start(*tb, "nodeB", xo);
  const char* encap = o.encap == XLB_ENCAP_VXLAN ? "VXLAN" : "GUE";
  std::printf("  xlb on nodeA and nodeB: XDP on eth0, TC on %zu + %zu pod veths, %s tunnel\n",
              node_a->tc_devices().size(), node_b->tc_devices().size(), encap);

  ServiceSpec s;
  s.vip = vip;
  s.weights = {{"cluster-a", 70}, {"cluster-b", 30}};
  for (const auto& p : pods) {
    s.endpoints.push_back({p});
  }
  node_a->SetService(s);
  node_b->SetService(s);
  std::printf("\nservice %s:%u (TCP), policy cluster-a 70 / cluster-b 30:\n", vip.c_str(),
              tb->port());
  const auto weights = node_a->PlannedWeights(vip);
  uint64_t total_weight = 0;
  for (const auto& [pod, w] : weights) {
    total_weight += w;
  }
  for (const auto& p : pods) {
    const bool local = NodeOf(p) == "nodeA";
    std::printf(
        "  %-6s %-16s %-9s weight %u (%4.1f %%)  %s\n", p.c_str(), Address(p, o.family).c_str(),
        ClusterOf(p).c_str(), weights.at(p), Pct(weights.at(p), static_cast<long>(total_weight)),
        local ? "local to nodeA: DNAT" : ("tunnel to nodeB " + Address("nodeB", o.family)).c_str());
  }

  std::printf("\ntraffic: %ld rounds of %ld new TCP connections from the client (%s)\n\n", o.rounds,
              o.per_round, Address("client", o.family).c_str());
  std::printf(
      "            this round    | all so far          | share per backend so far  | xlb on "
      "nodeA:\n"
      "round  conns   A %%   B %%  | failed   A %%   B %% | podA1 podA2 podB1 podB2 %% | "
      "new flows A/B\n");
  std::printf("%s\n", std::string(100, '-').c_str());
  std::map<std::string, long> ids;
  std::set<std::string> clients, peers;
  long ok = 0, failed = 0;
  auto start = std::chrono::steady_clock::now();
  auto next_round = start;
  for (long round = 1; round <= o.rounds && !g_stop; ++round) {
    std::this_thread::sleep_until(next_round);
    next_round += std::chrono::milliseconds(o.interval_ms);
    if (g_stop) {
      break;
    }
    ProbeResult r = tb->Probe("client", "tcp", vip, o.per_round, 8, 3000);
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
    auto in_a = [](std::map<std::string, long>& m) { return m["podA1"] + m["podA2"]; };
    auto in_b = [](std::map<std::string, long>& m) { return m["podB1"] + m["podB2"]; };
    auto kernel = node_a->NewFlowsByPod(vip);
    std::printf(
        "%5ld %6ld %5.1f %5.1f  | %6ld %5.1f %5.1f | %5.1f %5.1f %5.1f %5.1f   | %llu/%llu\n",
        round, ok + failed, Pct(in_a(r.ids), r.ok), Pct(in_b(r.ids), r.ok), failed,
        Pct(in_a(ids), ok), Pct(in_b(ids), ok), Pct(ids["podA1"], ok), Pct(ids["podA2"], ok),
        Pct(ids["podB1"], ok), Pct(ids["podB2"], ok),
        static_cast<unsigned long long>(kernel["podA1"] + kernel["podA2"]),
        static_cast<unsigned long long>(kernel["podB1"] + kernel["podB2"]));
    std::fflush(stdout);
    if (r.ok == 0) {
      std::printf("\nno connection of this round completed: stopping (%s)\n",
                  r.errors.empty() ? "?" : r.errors.begin()->first.c_str());
      break;
    }
  }
  long ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  if (g_stop) {
    std::printf("\ninterrupted: tearing down\n");
    return 130;
  }
  const double a = Pct(ids["podA1"] + ids["podA2"], ok);
  const double b = Pct(ids["podB1"] + ids["podB2"], ok);
  const bool split_ok = std::abs(a - 70.0) <= 5.0;
  const std::string client = Address("client", o.family);
  const bool real_client = clients == std::set<std::string>{client};
  const bool only_vip = peers == std::set<std::string>{vip};
  std::printf("\n%ld connections in %.1f s, %ld failed\n", ok + failed, ms / 1000.0, failed);
  std::printf("  split    cluster-a %.1f %% / cluster-b %.1f %% (policy 70/30, within 5 pp: %s)\n",
              a, b, split_ok ? "yes" : "NO");
  std::printf("  backends saw the client's own address %s: %s\n", client.c_str(),
              real_client ? "yes" : "NO");
  std::printf("  the client only ever talked to the VIP %s: %s\n", vip.c_str(),
              only_vip ? "yes" : "NO");
  std::printf("  %s\n  %s\n", node_a->Reasons().c_str(), node_b->Reasons().c_str());
  return failed == 0 && split_ok && real_client && only_vip ? 0 : 1;
}

}  // namespace
}  // namespace xlb::testbed

int main(int argc, char** argv) {
  using namespace xlb::testbed;
  DemoOptions o = ParseArgs(argc, argv);
  // The loader's notes ("attached XDP program ... in native mode") would interleave with
  // the table; warnings still show.
  xlb::SetLogLevel(xlb::LogLevel::kWarn);
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
  // Run()'s locals -- the xlb nodes, then the testbed -- are gone by now.
  std::printf("testbed torn down\n");
  return rc;
}
