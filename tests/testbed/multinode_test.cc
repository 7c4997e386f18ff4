// The path matrix of the multi-node testbed (issue 11): every client position x backend
// position x frontend x family, through the real xlb-agent on every xlb node (AgentFleet).
//
// Each service has exactly one endpoint, so a case exercises exactly one path: which
// backend answers is fixed, and so is the mode the planner must pick for it. Positions are
// relative to the BALANCING node: the node whose xlb sees the client's first packet (nodeA for
// the VIPs from outside, where they are routed; the client pod's own node for VIPs from a
// pod, whose xlb_tc on the pod's veth balances; the node whose address a NodePort names).
//
//   client:   client (outside) | clientA (pod on nodeA) | clientA2 (pod on nodeA2) |
//             hostA (nodeA's own host namespace)
//   backend:  podHere (a pod on the balancing node) | podOtherNode (a pod on another xlb
//             node of its cluster) | hostAddr (nodeA2's host address, no node: the
//             `kubernetes` Service's kind of endpoint) | podRemoteCluster | podNoXlbNode
//             (podA31 on nodeA3, which runs no xlb) | hairpin (the client pod itself) |
//             routedRemote (podB21 as an endpoint without a node: an address the network
//             routes, as Submariner's)
//   frontend: lb (LoadBalancer IP) | extIp (external IP) | clusterIp | clusterSetIp |
//             nodePortA/A2/B/B2 (the node's transit address) | nodePortLoopback (127.0.0.1 or
//             ::1 on the host)
//
// Every case is named <mode>_<client>_<backend>_<frontend>_<family>, where <mode> is what the
// case needs (ISSUE11 design: local, tunnel, routed, snat; host = host-namespace clients), so
// a gtest filter selects the cases of the modes that are built (CMakeLists.txt: the built
// ones together as multinode.paths, each other one as multinode.pending.<mode>, disabled).
// Checks: none fails (a short-timeout pre-check first, so a broken path fails in about a
// second), every reply comes from the address and port the client connected to, the one
// backend answered on its own address, and the backend saw the client's own address where
// the mode promises it (local, tunnel, routed) or an address of the balancing node where it
// does not (snat, host).
//
// One testbed and one fleet serve every case of a process (a gtest Environment): bringing
// them up takes seconds, a 50-connection case a fraction of one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent_fleet.h"
#include "testbed.h"
#include "userspace/agent/http_server.h"
#include "wire.h"

namespace xlb::testbed {
namespace {

using Counts = std::map<std::string, long>;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr double kTolerancePp = 5.0;

// --- one testbed and one fleet per test process ---

struct World {
  std::unique_ptr<Testbed> tb;
  std::unique_ptr<AgentFleet> fleet;  // destroyed first: agents, pins, then the namespaces
};
World* g_world = nullptr;

class WorldEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto w = std::make_unique<World>();
    try {
      Options o;
      o.multi_node = true;
      w->tb = Testbed::Up(o);
      FleetOptions fo;
      fo.services = PathServicesYaml();
      fo.policy = AffinePolicy(70);  // kSplitPolicy and "affine"'s
      w->fleet = AgentFleet::Start(*w->tb, fo);
    } catch (const std::exception& e) {
      GTEST_FAIL() << "multi-node testbed with agents: " << e.what();
    }
    g_world = w.release();
  }
  void TearDown() override {
    if (g_world != nullptr && ::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      PauseForDebugging();
    }
    delete g_world;
    g_world = nullptr;
  }

 private:
  // XLB_E2E_PAUSE=SECONDS: keep the testbed and the agents up that long after a failure.
  static void PauseForDebugging() {
    const char* pause = std::getenv("XLB_E2E_PAUSE");
    if (pause != nullptr && std::atoi(pause) > 0) {
      std::printf("XLB_E2E_PAUSE: testbed %s stays up for %s s\n", g_world->tb->prefix().c_str(),
                  pause);
      std::fflush(stdout);
      std::this_thread::sleep_for(seconds(std::atoi(pause)));
    }
  }
};
[[maybe_unused]] const auto* const kWorldEnvironment =
    ::testing::AddGlobalTestEnvironment(new WorldEnvironment);

Testbed& Tb() {
  return *g_world->tb;
}
AgentFleet& Fleet() {
  return *g_world->fleet;
}

// --- the matrix ---

enum class Mode { kLocal, kTunnel, kRouted, kSnat, kHost };
enum class Backend {
  kPodHere,
  kPodOtherNode,
  kHostAddr,
  kPodRemoteCluster,
  kPodNoXlbNode,
  kHairpin,
  kRoutedRemote
};
enum class Frontend {
  kLb,
  kExtIp,
  kClusterIp,
  kClusterSetIp,
  kNodePortA,
  kNodePortA2,
  kNodePortB,
  kNodePortB2,
  kNodePortLoopback
};

const char* Name(Mode m) {
  constexpr const char* names[] = {"local", "tunnel", "routed", "snat", "host"};
  return names[static_cast<int>(m)];
}
const char* Name(Backend b) {
  constexpr const char* names[] = {"podHere",          "podOtherNode", "hostAddr",
                                   "podRemoteCluster", "podNoXlbNode", "hairpin",
                                   "routedRemote"};
  return names[static_cast<int>(b)];
}
const char* Name(Frontend f) {
  constexpr const char* names[] = {"lb",           "extIp",      "clusterIp",
                                   "clusterSetIp", "nodePortA",  "nodePortA2",
                                   "nodePortB",    "nodePortB2", "nodePortLoopback"};
  return names[static_cast<int>(f)];
}

struct PathCase {
  std::string client;  // the role the probe runs in: client, clientA, clientA2, nodeA
  Backend backend;
  Frontend frontend;
  Family family;
  Mode expect;       // the mode the case needs
  long connections;  // 1,000 for the representative ones
};

std::string CaseName(const PathCase& c) {
  return std::string(Name(c.expect)) + "_" + (c.client == "nodeA" ? "hostA" : c.client) + "_" +
         Name(c.backend) + "_" + Name(c.frontend) + "_" + FamilyName(c.family);
}

// The node whose xlb balances the case's first packet.
std::string BalancingNode(const std::string& client, Frontend f) {
  switch (f) {
    case Frontend::kNodePortA:
      return "nodeA";
    case Frontend::kNodePortA2:
      return "nodeA2";
    case Frontend::kNodePortB:
      return "nodeB";
    case Frontend::kNodePortB2:
      return "nodeB2";
    default:
      return client == "client" ? "nodeA" : NodeOf(client);
  }
}

// The service whose only endpoint is in the case's backend position.
const PathService& ServiceFor(const PathCase& c) {
  const std::string node = BalancingNode(c.client, c.frontend);
  const bool in_a = ClusterOfRole(node) == "cluster-a";
  std::string role;
  bool with_node = true;
  switch (c.backend) {
    case Backend::kPodHere:
      role = node == "nodeA"    ? "podA1"
             : node == "nodeA2" ? "podA21"
             : node == "nodeB"  ? "podB1"
                                : "podB21";
      break;
    case Backend::kPodOtherNode:
      role = node == "nodeA"    ? "podA21"
             : node == "nodeA2" ? "podA1"
             : node == "nodeB"  ? "podB21"
                                : "podB1";
      break;
    case Backend::kHostAddr:
      role = "nodeA2";
      with_node = false;
      break;
    case Backend::kPodRemoteCluster:
      role = in_a ? "podB1" : "podA1";
      break;
    case Backend::kPodNoXlbNode:
      role = "podA31";
      break;
    case Backend::kHairpin:
      role = c.client;
      break;
    case Backend::kRoutedRemote:
      role = "podB21";
      with_node = false;
      break;
  }
  for (const PathService& s : PathServices()) {
    if (s.backend == role && s.with_node == with_node) {
      return s;
    }
  }
  throw std::logic_error("no service for " + CaseName(c));
}

std::string FrontendAddress(const PathCase& c, int n) {
  switch (c.frontend) {
    case Frontend::kLb:
      return Vip(c.family, n, 2);
    case Frontend::kExtIp:
      return Vip(c.family, n, 1);
    case Frontend::kClusterIp:
      return Vip(c.family, n, 0);
    case Frontend::kClusterSetIp:
      return Vip(c.family, n, 3);
    case Frontend::kNodePortLoopback:
      return c.family == Family::kV4 ? "127.0.0.1" : "::1";
    default:
      return Address(BalancingNode(c.client, c.frontend), c.family);
  }
}

bool IsNodePort(Frontend f) {
  return f >= Frontend::kNodePortA;
}

// Addresses a node may put on what it sends: its transit address, the gateway address it
// holds on its pod veths, loopback.
std::set<std::string> NodeAddresses(const std::string& node, Family f) {
  std::set<std::string> a = {Address(node, f), f == Family::kV4 ? "127.0.0.1" : "::1"};
  const std::string pod = node == "nodeA"    ? "podA1"
                          : node == "nodeA2" ? "podA21"
                          : node == "nodeB"  ? "podB1"
                          : node == "nodeB2" ? "podB21"
                                             : "podA31";
  const std::string p = Address(pod, f);
  a.insert(f == Family::kV4 ? p.substr(0, p.rfind('.')) + ".1" : p.substr(0, p.rfind(':')) + ":1");
  return a;
}

Mode ModeOf(const std::string& client, Backend b, Frontend f) {
  if (client == "nodeA") {
    return Mode::kHost;
  }
  switch (b) {
    case Backend::kPodHere:
      return Mode::kLocal;
    case Backend::kPodOtherNode:
    case Backend::kPodRemoteCluster:
      return Mode::kTunnel;
    case Backend::kRoutedRemote:
      return Mode::kRouted;
    case Backend::kHostAddr:
      // nodeA2's own stack answers for its address: DNAT, the answer meets xlb_tc_egress
      return BalancingNode(client, f) == "nodeA2" ? Mode::kLocal : Mode::kSnat;
    default:
      return Mode::kSnat;
  }
}

// The representative cases get 1,000 connections, the rest of the matrix 50.
bool Representative(const std::string& client, Backend b, Frontend f) {
  return (client == "client" && f == Frontend::kLb && b != Backend::kHostAddr) ||
         (client == "client" && f == Frontend::kNodePortA2 && b == Backend::kPodHere) ||
         (client == "clientA" && f == Frontend::kClusterIp) ||
         (client == "nodeA" && f == Frontend::kClusterIp && b == Backend::kPodHere);
}

std::vector<PathCase> Matrix() {
  const std::vector<Backend> all = {Backend::kPodHere,      Backend::kPodOtherNode,
                                    Backend::kHostAddr,     Backend::kPodRemoteCluster,
                                    Backend::kPodNoXlbNode, Backend::kHairpin,
                                    Backend::kRoutedRemote};
  // Outside and host clients have no pod to hairpin through; north-south replies of routed
  // backends do not pass the balancing node here (the design's documented limit).
  const std::vector<Backend> no_pod = {Backend::kPodHere, Backend::kPodOtherNode,
                                       Backend::kHostAddr, Backend::kPodRemoteCluster,
                                       Backend::kPodNoXlbNode};
  struct Row {
    std::string client;
    std::vector<Frontend> frontends;
    const std::vector<Backend>* backends;
  };
  const std::vector<Row> rows = {
      {"client",
       {Frontend::kLb, Frontend::kExtIp, Frontend::kNodePortA, Frontend::kNodePortA2,
        Frontend::kNodePortB, Frontend::kNodePortB2},
       &no_pod},
      {"clientA",
       {Frontend::kClusterIp, Frontend::kClusterSetIp, Frontend::kLb, Frontend::kNodePortA},
       &all},
      {"clientA2", {Frontend::kClusterIp, Frontend::kNodePortA}, &all},
      {"nodeA", {Frontend::kClusterIp, Frontend::kNodePortA, Frontend::kNodePortLoopback}, &no_pod},
  };
  std::vector<PathCase> cases;
  for (Family family : {Family::kV4, Family::kV6}) {
    for (const Row& row : rows) {
      for (Frontend f : row.frontends) {
        for (Backend b : *row.backends) {
          // Cluster B has no host-address endpoint nor a node without xlb of its own.
          const bool in_b = ClusterOfRole(BalancingNode(row.client, f)) == "cluster-b";
          if (in_b && (b == Backend::kHostAddr || b == Backend::kPodNoXlbNode)) {
            continue;
          }
          cases.push_back({row.client, b, f, family, ModeOf(row.client, b, f),
                           Representative(row.client, b, f) ? 1000 : 50});
        }
      }
    }
  }
  return cases;
}

class Path : public ::testing::TestWithParam<PathCase> {};

TEST_P(Path, EveryConnectionCompletesFromTheFrontendToItsOneBackend) {
  ASSERT_NE(g_world, nullptr);
  const PathCase& c = GetParam();
  const PathService& svc = ServiceFor(c);
  const std::string addr = FrontendAddress(c, svc.n);
  const int port = IsNodePort(c.frontend) ? kFirstNodePort + svc.n : 8080;
  const std::string balancer = BalancingNode(c.client, c.frontend);
  const std::string backend = svc.backend;
  SCOPED_TRACE(CaseName(c) + ": " + c.client + " -> " + HostPort(addr, port) + " (" + svc.name +
               ", balanced by " + balancer + ") -> " + backend);

  // Fail fast: a broken path costs 20 x 500 ms in parallel, not 1,000 x 3 s.
  ProbeResult pre = Tb().ProbePort(c.client, "tcp", addr, port, 20, 20, 500);
  ASSERT_EQ(pre.ok, 20) << "pre-check (mode " << Name(c.expect) << "): " << pre.Describe();

  ProbeResult r = Tb().ProbePort(c.client, "tcp", addr, port, c.connections, 8, 3000);
  if (r.ok != c.connections) {
    // where the balancing node's packets went, to tell a drop from a lost answer
    std::string reasons;
    for (const auto& [name, n] : Fleet().ReasonPackets(balancer)) {
      reasons += n != 0 && name.rfind("pass_no_service", 0) != 0
                     ? " " + name + "=" + std::to_string(n)
                     : "";
    }
    ADD_FAILURE() << balancer << "'s reasons:" << reasons;
  }
  EXPECT_EQ(r.ok, c.connections) << r.Describe();
  EXPECT_EQ(r.failed, 0) << r.Describe();
  EXPECT_EQ(r.peers, (Counts{{HostPort(addr, port), r.ok}})) << "every reply from the frontend\n"
                                                             << r.Describe();
  EXPECT_EQ(r.ids, (Counts{{backend, r.ok}})) << r.Describe();
  EXPECT_EQ(r.locals, (Counts{{HostPort(Address(backend, c.family), 8080), r.ok}}))
      << "the backend was reached on its own address\n"
      << r.Describe();
  if (c.expect == Mode::kLocal || c.expect == Mode::kTunnel || c.expect == Mode::kRouted) {
    EXPECT_EQ(r.clients, (Counts{{Address(c.client, c.family), r.ok}}))
        << "the backend saw the client's own address\n"
        << r.Describe();
  } else {
    const std::set<std::string> allowed = NodeAddresses(balancer, c.family);
    for (const auto& [seen, n] : r.clients) {
      EXPECT_TRUE(allowed.count(seen)) << seen << " is no address of " << balancer << "\n"
                                       << r.Describe();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, Path, ::testing::ValuesIn(Matrix()),
                         [](const ::testing::TestParamInfo<PathCase>& info) {
                           return CaseName(info.param);
                         });

// --- 70/30 over a pod on the balancing node, one on another node and a remote cluster ---

class Split : public ::testing::TestWithParam<Family> {};

TEST_P(Split, SeventyThirtyOverLocalOtherNodeAndRemoteClusterWithinFivePoints) {
  ASSERT_NE(g_world, nullptr);
  const Family f = GetParam();
  const std::string lb = Vip(f, kSplitN, 2);
  ProbeResult pre = Tb().Probe("client", "tcp", lb, 20, 20, 500);
  ASSERT_EQ(pre.ok, 20) << "pre-check: " << pre.Describe();
  ProbeResult r = Tb().Probe("client", "tcp", lb, 1000, 8, 3000);
  EXPECT_EQ(r.ok, 1000) << r.Describe();
  EXPECT_EQ(r.peers, (Counts{{HostPort(lb, 8080), r.ok}})) << r.Describe();
  EXPECT_EQ(r.clients, (Counts{{Address("client", f), r.ok}})) << r.Describe();
  const std::map<std::string, double> want = {{"podA1", 35}, {"podA21", 35}, {"podB1", 30}};
  for (const auto& [id, pct] : want) {
    const double got = r.ok > 0 ? 100.0 * static_cast<double>(r.ids[id]) / r.ok : 0;
    EXPECT_NEAR(got, pct, kTolerancePp) << id << "\n" << r.Describe();
  }
  EXPECT_EQ(r.ids.size(), 3u) << r.Describe();
  std::printf("[ split ] %s %s: podA1 %ld, podA21 %ld, podB1 %ld of %ld\n", FamilyName(f),
              lb.c_str(), r.ids["podA1"], r.ids["podA21"], r.ids["podB1"], r.ok);
}

INSTANTIATE_TEST_SUITE_P(Matrix, Split, ::testing::Values(Family::kV4, Family::kV6),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return std::string("tunnel_client_split_lb_") + FamilyName(info.param);
                         });

// --- long-lived connections through kill -9 of the balancing node's and the backend's agent ---

struct KillCase {
  Backend backend;  // kPodRemoteCluster (podB1 on nodeB), kPodOtherNode (podA21 on nodeA2),
                    // kPodNoXlbNode (podA31 on nodeA3, SNAT: only nodeA has an agent to kill)
};

class KillNine : public ::testing::TestWithParam<KillCase> {};

TEST_P(KillNine, HeldConnectionsOfBothFamiliesSurviveBothAgentsKilledAndRestarted) {
  ASSERT_NE(g_world, nullptr);
  const PathCase c{"client",
                   GetParam().backend,
                   Frontend::kLb,
                   Family::kV4,
                   ModeOf("client", GetParam().backend, Frontend::kLb),
                   0};
  const PathService& svc = ServiceFor(c);
  // nodeA3 runs no agent to kill: a SNAT backend's node has no xlb state at all
  std::string backend_node = NodeOf(svc.backend);
  bool backend_runs_xlb = false;
  for (const FleetNode& n : FleetNodes()) {
    backend_runs_xlb = backend_runs_xlb || n.role == backend_node;
  }
  constexpr long kLines = 80;  // one every 100 ms: 8 s, longer than the kills and restarts
  for (Family f : {Family::kV4, Family::kV6}) {
    ProbeResult pre = Tb().Probe("client", "tcp", Vip(f, svc.n, 2), 20, 20, 500);
    ASSERT_EQ(pre.ok, 20) << "pre-check, " << FamilyName(f) << ": " << pre.Describe();
  }
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> holds;
  for (Family f : {Family::kV4, Family::kV6}) {
    for (int i = 0; i < 2; ++i) {
      holds.emplace_back(FamilyName(f), Tb().StartHold("client", Vip(f, svc.n, 2), kLines, 100));
      ASSERT_NE(holds.back().second, nullptr);
    }
  }
  std::this_thread::sleep_for(milliseconds(1000));
  Fleet().KillNine("nodeA");
  if (backend_runs_xlb) {
    Fleet().KillNine(backend_node);
  }
  // No agent on either node: the pinned datapath goes on serving new connections too.
  for (Family f : {Family::kV4, Family::kV6}) {
    ProbeResult r = Tb().Probe("client", "tcp", Vip(f, svc.n, 2), 20, 4, 3000);
    EXPECT_EQ(r.ok, 20) << "without agents, " << FamilyName(f) << ": " << r.Describe();
  }
  std::this_thread::sleep_for(milliseconds(500));
  Fleet().Restart("nodeA");
  if (backend_runs_xlb) {
    Fleet().Restart(backend_node);
  }
  for (auto& [family, p] : holds) {
    ProbeResult r = ParseProbe(p->Wait(seconds(60)));
    EXPECT_EQ(r.count, kLines + 1) << family << ": " << r.Describe();  // greeting + lines
    EXPECT_EQ(r.ok, r.count) << family << ": " << r.Describe() << "\n" << Fleet().Logs();
    EXPECT_TRUE(r.same_backend) << family << ": " << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{svc.backend, r.count}})) << family << ": " << r.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, KillNine,
                         ::testing::Values(KillCase{Backend::kPodRemoteCluster},
                                           KillCase{Backend::kPodOtherNode},
                                           KillCase{Backend::kPodNoXlbNode}),
                         [](const ::testing::TestParamInfo<KillCase>& info) {
                           const Backend b = info.param.backend;
                           return std::string(Name(ModeOf("client", b, Frontend::kLb))) +
                                  "_client_" + Name(b) + "_lb_agentsKilled";
                         });

// --- host-namespace clients through kill -9 of their node's agent ---

// Socket LB lives in cgroup links pinned beside the maps: with nodeA's agent killed, nodeA's
// own sockets still reach the ClusterIP, held ones keep their backend, and the restarted agent
// swaps its programs into the same links.
class HostKillNine : public ::testing::TestWithParam<Backend> {};

TEST_P(HostKillNine, HostClientsKeepReachingTheClusterIpWhileTheAgentIsDeadAndAfterItsRestart) {
  ASSERT_NE(g_world, nullptr);
  const PathCase c{"nodeA", GetParam(), Frontend::kClusterIp, Family::kV4, Mode::kHost, 0};
  const PathService& svc = ServiceFor(c);
  constexpr long kLines = 60;  // one every 100 ms: 6 s, longer than the kill and the restart
  auto probe_all = [&](const char* when) {
    for (Family f : {Family::kV4, Family::kV6}) {
      const std::string vip = Vip(f, svc.n, 0);
      ProbeResult r = Tb().Probe("nodeA", "tcp", vip, 20, 4, 3000);
      EXPECT_EQ(r.ok, 20) << when << ", " << FamilyName(f) << ": " << r.Describe();
      EXPECT_EQ(r.peers, (Counts{{HostPort(vip, 8080), r.ok}})) << when << ": " << r.Describe();
      EXPECT_EQ(r.ids, (Counts{{svc.backend, r.ok}})) << when << ": " << r.Describe();
    }
  };
  probe_all("before");
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> holds;
  for (Family f : {Family::kV4, Family::kV6}) {
    holds.emplace_back(FamilyName(f), Tb().StartHold("nodeA", Vip(f, svc.n, 0), kLines, 100));
    ASSERT_NE(holds.back().second, nullptr);
  }
  std::this_thread::sleep_for(milliseconds(1000));
  Fleet().KillNine("nodeA");
  probe_all("without nodeA's agent");
  Fleet().Restart("nodeA");
  EXPECT_NE(Fleet().Log("nodeA").find("(8 links taken over from a previous agent)"),
            std::string::npos)
      << Fleet().Log("nodeA");
  probe_all("after the restart");
  for (auto& [family, p] : holds) {
    ProbeResult r = ParseProbe(p->Wait(seconds(60)));
    EXPECT_EQ(r.count, kLines + 1) << family << ": " << r.Describe();  // greeting + lines
    EXPECT_EQ(r.ok, r.count) << family << ": " << r.Describe();
    EXPECT_TRUE(r.same_backend) << family << ": " << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{svc.backend, r.count}})) << family << ": " << r.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, HostKillNine, ::testing::Values(Backend::kPodOtherNode),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string("host_hostA_") + Name(info.param) +
                                  "_clusterIp_agentKilled";
                         });

// --- kube-proxy's Service semantics over the fleet ---

namespace semantics {

// GET http://ADDR:PORT/ from inside `role`'s network namespace (RunInNetns: the test's HTTP
// client is the agent's own, HttpGet).
Result<HttpReply> GetFrom(const std::string& role, const std::string& addr, int port) {
  Result<HttpReply> out = Error{EIO, "not run"};
  RunInNetns(Tb().NsPath(role),
             [&] { out = HttpGet(HostPort(addr, port), "/", std::chrono::seconds(3)); });
  return out;
}

long Reason(const std::string& node, const std::string& reason) {
  const auto reasons = Fleet().ReasonPackets(node);
  auto it = reasons.find(reason);
  return it == reasons.end() ? 0 : static_cast<long>(it->second);
}

}  // namespace semantics

// externalTrafficPolicy Local ("local-ext": podA1 on nodeA, podB1 on nodeB): external traffic
// reaches only the balancing node's own endpoint, with the client's address, and never leaves
// the node; in-cluster traffic still reaches both; a node without a local endpoint drops
// external traffic, and each node's healthCheckNodePort says which nodes have one (200/503,
// kube-proxy's body), so a cloud load balancer sends only to those.
TEST(ServiceSemantics, ExternalLocalStaysOnTheNodeAndTheHealthCheckSaysWhichNodes) {
  ASSERT_NE(g_world, nullptr);
  for (const Family f : {Family::kV4, Family::kV6}) {
    SCOPED_TRACE(FamilyName(f));
    const std::string lb = Vip(f, kLocalExtN, 2);  // routed to nodeA
    const long encap_before = semantics::Reason("nodeA", "fwd_encap");
    ProbeResult r = Tb().Probe("client", "tcp", lb, 200, 8, 3000);
    EXPECT_EQ(r.ok, 200) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{"podA1", r.ok}})) << r.Describe();
    EXPECT_EQ(r.clients, (Counts{{Address("client", f), r.ok}})) << r.Describe();
    EXPECT_EQ(semantics::Reason("nodeA", "fwd_encap"), encap_before)
        << "external traffic of a Local service was tunnelled off the node";

    // In-cluster traffic (internalTrafficPolicy Cluster) reaches both endpoints.
    r = Tb().Probe("clientA", "tcp", Vip(f, kLocalExtN, 0), 200, 8, 3000);
    EXPECT_EQ(r.ok, 200) << r.Describe();
    EXPECT_GT(r.ids["podA1"], 0) << r.Describe();
    EXPECT_GT(r.ids["podB1"], 0) << r.Describe();

    // nodeA2 has no endpoint of its own: its NodePort drops external traffic, counted.
    const long dropped_before = semantics::Reason("nodeA2", "drop_no_backend");
    r = Tb().ProbePort("client", "tcp", Address("nodeA2", f), kFirstNodePort + kLocalExtN, 5, 5,
                       500);
    EXPECT_EQ(r.ok, 0) << r.Describe();
    EXPECT_GE(semantics::Reason("nodeA2", "drop_no_backend") - dropped_before, 5);
    // nodeA's NodePort keeps it on nodeA.
    r = Tb().ProbePort("client", "tcp", Address("nodeA", f), kFirstNodePort + kLocalExtN, 50, 8,
                       3000);
    EXPECT_EQ(r.ok, 50) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{"podA1", r.ok}})) << r.Describe();

    // The health checks, as a cloud load balancer probes them from outside.
    const std::map<std::string, int> want = {
        {"nodeA", 1}, {"nodeA2", 0}, {"nodeB", 1}, {"nodeB2", 0}};
    for (const auto& [node, local] : want) {
      auto reply = semantics::GetFrom("client", Address(node, f), kLocalExtHealthPort);
      ASSERT_TRUE(reply.ok()) << node << ": " << reply.error().ToString();
      EXPECT_EQ(reply->status, local > 0 ? 200 : 503) << node << ": " << reply->body;
      EXPECT_NE(reply->headers.find("X-Load-Balancing-Endpoint-Weight: " + std::to_string(local)),
                std::string::npos)
          << node << ": " << reply->headers;
      const auto body = nlohmann::json::parse(reply->body, nullptr, false);
      ASSERT_FALSE(body.is_discarded()) << reply->body;
      EXPECT_EQ(body["service"]["namespace"], "xlb-test");
      EXPECT_EQ(body["service"]["name"], "local-ext");
      EXPECT_EQ(body["localEndpoints"], local) << node;
    }
  }
}

// sessionAffinity ClientIP with timeoutSeconds ("affine": podA1, podA21, podB1 under a
// VirtualService): the outside client keeps its backend across a weight change that moves its
// Maglev slot elsewhere (its backend still takes new flows), while it connects within the
// timeout; idle past the timeout, it goes where the table says. xlbctl explain tells, from
// nodeA's maps, where the table alone would send it.
TEST(ServiceSemantics, AffinityKeepsTheClientsBackendAcrossAWeightChangeUntilItIdlesPastTimeout) {
  ASSERT_NE(g_world, nullptr);
  const Family f = Family::kV4;
  const std::string lb = Vip(f, kAffineN, 2);  // balanced by nodeA
  const std::string client = Address("client", f);
  auto explain = [&] {
    const CommandResult r =
        Fleet().Ctl("nodeA", {"-o", "json", "explain", "tcp", client, "40000", lb, "8080"});
    EXPECT_TRUE(r.ok()) << r.Describe();
    return nlohmann::json::parse(r.out, nullptr, false);
  };
  auto pod_at = [&](const std::string& address) {
    for (const char* pod : {"podA1", "podA21", "podB1"}) {
      if (Address(pod, f) == address) {
        return std::string(pod);
      }
    }
    return "(not a pod: " + address + ")";
  };
  auto one = [&]() -> std::string {
    ProbeResult r = Tb().Probe("client", "tcp", lb, 1, 1, 3000);
    EXPECT_EQ(r.ok, 1) << r.Describe();
    return r.ids.size() == 1 ? r.ids.begin()->first : "(none)";
  };

  // The client's first connection: the table picks X, and the client's entry names X.
  const std::string x = one();
  auto doc = explain();
  ASSERT_EQ(doc.value("decision", ""), "affinity") << doc.dump(2);
  ASSERT_EQ(doc["backend"]["address"], Address(x, f)) << doc.dump(2);

  // Weights that leave X 2 % (then 3, 4, 6 % until the client's slot moves): X still takes
  // new flows, so the entry binds. One connection every 300 ms keeps it fresh meanwhile, and
  // each one must reach X.
  const bool x_local = ClusterOfRole(x) == "cluster-a";
  std::string y;
  for (const int share : {2, 3, 4, 6}) {
    Fleet().SetPolicy(AffinePolicy(x_local ? share : 100 - share));
    const auto deadline = std::chrono::steady_clock::now() + seconds(15);
    while (y.empty() && std::chrono::steady_clock::now() < deadline) {
      ASSERT_EQ(one(), x) << "the client left its backend within the timeout";
      doc = explain();
      ASSERT_EQ(doc.value("decision", ""), "affinity") << doc.dump(2);
      const std::string table = doc["affinity"]["table_backend"].value("address", "");
      if (!table.empty() && table != Address(x, f)) {
        y = pod_at(table);
      }
      std::this_thread::sleep_for(milliseconds(300));
    }
    if (!y.empty()) {
      break;
    }
  }
  ASSERT_FALSE(y.empty()) << "no weight moved the client's Maglev slot off " << x;

  // Within the timeout: every new connection still goes to X.
  ProbeResult r = Tb().Probe("client", "tcp", lb, 10, 1, 3000);
  EXPECT_EQ(r.ids, (Counts{{x, 10}})) << r.Describe();

  // Idle past the timeout: the entry no longer binds, the table's choice takes the client.
  std::this_thread::sleep_for(seconds(kAffineTimeoutS) + milliseconds(1500));
  doc = explain();
  EXPECT_EQ(doc.value("decision", ""), "maglev") << doc.dump(2);
  EXPECT_EQ(doc["backend"]["address"], Address(y, f)) << doc.dump(2);
  r = Tb().Probe("client", "tcp", lb, 5, 1, 3000);
  EXPECT_EQ(r.ids, (Counts{{y, 5}})) << r.Describe();
  std::printf("[ affinity ] client stayed on %s across the weight change, moved to %s after %d s\n",
              x.c_str(), y.c_str(), kAffineTimeoutS);
  Fleet().SetPolicy(AffinePolicy(70));
}

// A Service without any endpoint rejects: a client's connect() fails at once with "connection
// refused" (ICMP port unreachable from the VIP), instead of timing out: from outside through
// nodeA's XDP, and from a pod through its veth's TC, both families.
TEST(ServiceSemantics, AServiceWithoutEndpointsRefusesConnectionsAtOnce) {
  ASSERT_NE(g_world, nullptr);
  for (const Family f : {Family::kV4, Family::kV6}) {
    for (const auto& [client, net] : {std::pair{"client", 2}, std::pair{"clientA", 0}}) {
      SCOPED_TRACE(std::string(client) + " " + FamilyName(f));
      const std::string node = std::string(client) == "client" ? "nodeA" : NodeOf(client);
      const long before = semantics::Reason(node, "fwd_reject");
      const ProbeResult r = Tb().Probe(client, "tcp", Vip(f, kNoEndpointsN, net), 5, 1, 3000);
      EXPECT_EQ(r.ok, 0) << r.Describe();
      EXPECT_EQ(r.errors, (Counts{{"connect: Connection refused", 5}})) << r.Describe();
      EXPECT_GE(semantics::Reason(node, "fwd_reject") - before, 5);
    }
  }
}

}  // namespace
}  // namespace xlb::testbed
