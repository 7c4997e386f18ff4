// xlb-agent on the two-cluster testbed, as a DaemonSet would run it: one agent per node,
// started inside the node's network namespace (setns, so /sys/fs/bpf and the pins are the
// host's), each with its own pin directory, programming the 70/30 service from a config file
// and a VirtualService. Needs root (CI is root); without it the testbed cannot come up and
// the tests fail, they do not skip.
//
// Teardown, also on failure: the agents are stopped (their Process destructors), then their
// pins removed, then the testbed's namespaces (which detaches the programs with their
// interfaces). If this process is killed, the testbed's watchdog removes the namespaces and
// the next run removes the pin directories of test processes that are gone.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent_fixtures.h"
#include "agent_fleet.h"
#include "loader/xdp_loader.h"
#include "testbed.h"
#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/kube/source/kube_fixtures.h"
#include "userspace/agent/http_server.h"

namespace xlb::agent_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testbed::CommandResult;
using testbed::Family;
using testbed::ProbeResult;
using testbed::Process;
using testbed::Testbed;
using Clock = std::chrono::steady_clock;

constexpr const char* kPinRoot = "/sys/fs/bpf";
constexpr const char* kPinPrefix = "xlb-test-";

std::string ClusterOf(const std::string& pod) {
  return pod.rfind("podA", 0) == 0 ? "cluster-a" : pod.rfind("podB", 0) == 0 ? "cluster-b" : pod;
}

std::map<std::string, double> ClusterShares(const std::map<std::string, long>& ids) {
  long total = 0;
  for (const auto& [id, n] : ids) {
    total += n;
  }
  std::map<std::string, double> shares;
  for (const auto& [id, n] : ids) {
    shares[ClusterOf(id)] += total > 0 ? 100.0 * static_cast<double>(n) / total : 0;
  }
  return shares;
}

std::string SharesText(const std::map<std::string, long>& ids) {
  std::string s;
  char buf[64];
  for (const auto& [cluster, pct] : ClusterShares(ids)) {
    std::snprintf(buf, sizeof(buf), "%s %.1f%% ", cluster.c_str(), pct);
    s += buf;
  }
  for (const auto& [id, n] : ids) {
    s += "| " + id + " " + std::to_string(n) + " ";
  }
  return s;
}

// One xlb-agent on one node, started (and restarted) with the same flags.
class Agent {
 public:
  Agent(Testbed& tb, std::string node, std::string config, std::string policy, std::string pins,
        const std::vector<std::string>& extra_flags = {})
      : tb_(tb), node_(std::move(node)), pin_dir_(std::move(pins)) {
    // `config` is the config file, unless the extra flags name the Kubernetes sources (--kube).
    const bool kube =
        std::find(extra_flags.begin(), extra_flags.end(), "--kube") != extra_flags.end();
    argv_ = {XLB_AGENT_BIN,
             "--policy",
             std::move(policy),
             "--pin-dir",
             pin_dir_,
             "--pod-iface",
             "veth-*",
             "--tunnel-addr",
             testbed::Address(node_, Family::kV4),
             "--tunnel-addr",
             testbed::Address(node_, Family::kV6),
             "--tunnel-mtu",
             std::to_string(tb.transit_mtu())};
    if (!kube) {
      argv_.insert(argv_.end(), {"--config", std::move(config)});
    }
    argv_.insert(argv_.end(), extra_flags.begin(), extra_flags.end());
    if (std::find(extra_flags.begin(), extra_flags.end(), "--uplink") == extra_flags.end()) {
      argv_.insert(argv_.end(), {"--uplink", "eth0"});
    }
  }

  // Starts a new process and waits until it runs: synced, XDP and TC attached.
  void Start() {
    proc_ = tb_.Spawn(node_, argv_);
    ASSERT_NE(proc_, nullptr);
    ++starts_;
    ASSERT_TRUE(WaitFor("xlb-agent info: running:", seconds(60))) << Describe();
  }

  void Kill9() {
    ASSERT_TRUE(proc_ && proc_->Running());
    ::kill(proc_->pid(), SIGKILL);
    CommandResult r = proc_->Wait(seconds(10));
    ASSERT_EQ(r.signal, SIGKILL) << r.Describe();
    previous_logs_ += Log() + "--- killed with SIGKILL ---\n";
  }

  // SIGTERM: the agent exits 0 and leaves the datapath attached.
  CommandResult Stop() { return proc_->Stop(seconds(5)); }

  bool WaitFor(const std::string& needle, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (Log().find(needle) != std::string::npos) {
        return true;
      }
      if (!proc_->Running()) {
        return Log().find(needle) != std::string::npos;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  std::string Log() const { return proc_ ? proc_->ErrSoFar() : ""; }
  std::string Describe() const {
    return "--- " + node_ + " agent, earlier runs ---\n" + previous_logs_ + "--- " + node_ +
           " agent, run " + std::to_string(starts_) + " ---\n" + Log();
  }
  // "sync #N: W writes (...)" of the running process: W, or -1 when there is no such line.
  long Writes(int sync) const {
    const std::string needle = "sync #" + std::to_string(sync) + ": ";
    const std::string log = Log();
    const size_t at = log.find(needle);
    return at == std::string::npos ? -1 : std::atol(log.c_str() + at + needle.size());
  }
  // The program id it attached to the uplink ("attached xlb_xdp (program N)").
  long XdpProgram() const {
    const std::string needle = "attached xlb_xdp (program ";
    const std::string log = Log();
    const size_t at = log.find(needle);
    return at == std::string::npos ? -1 : std::atol(log.c_str() + at + needle.size());
  }

 private:
  Testbed& tb_;
  std::string node_;
  std::string pin_dir_;
  std::vector<std::string> argv_;
  std::unique_ptr<Process> proc_;
  int starts_ = 0;
  std::string previous_logs_;
};

// Removes the pin directories when it goes (after the agents, before the testbed).
struct PinDirs {
  std::vector<std::string> dirs;
  ~PinDirs() {
    for (const std::string& d : dirs) {
      if (auto r = RemovePins(d); !r.ok()) {
        std::fprintf(stderr, "remove pins %s: %s\n", d.c_str(), r.error().ToString().c_str());
      }
    }
  }
};

// The testbed with an agent on nodeA (cluster A, where the VIP is routed) and on nodeB
// (cluster B: decapsulates what nodeA tunnels to its pods and tunnels the answers back).
// Members go in reverse order: agents, then pins, then the namespaces.
struct AgentTestbed {
  std::unique_ptr<Testbed> tb;
  PinDirs pins;
  std::string policy;
  std::unique_ptr<Agent> node_a;
  std::unique_ptr<Agent> node_b;

  // node_ports: the service also has nodePort kNodePort, and each agent is given its node's
  // transit address (--node-addr) to serve it on. `config` replaces the config files' text;
  // `prepare` changes the testbed before the agents start; `node_a_flags` go to nodeA's agent.
  static std::unique_ptr<AgentTestbed> Up(bool node_ports = false,
                                          std::string (*config)(const std::string&) = nullptr,
                                          const std::function<void(Testbed&)>& prepare = {},
                                          const std::vector<std::string>& node_a_flags = {}) {
    testbed::RemoveStalePinDirs(kPinPrefix);
    auto c = std::make_unique<AgentTestbed>();
    c->tb = Testbed::Up();
    const std::string dir = c->tb->state_dir();
    c->policy = dir + "/policy.yaml";
    if (config == nullptr) {
      config = node_ports ? TestbedConfigWithNodePort : TestbedConfig;
    }
    WriteFileAtomically(dir + "/config-a.yaml", config("cluster-a"));
    WriteFileAtomically(dir + "/config-b.yaml", config("cluster-b"));
    if (prepare) {
      prepare(*c->tb);
    }
    WriteFileAtomically(c->policy, VirtualService("70", 30));
    static int n = 0;
    const std::string base = std::string(kPinRoot) + "/" + kPinPrefix + std::to_string(::getpid()) +
                             "-" + std::to_string(n++) + "-";
    c->pins.dirs = {base + "A", base + "B"};
    auto node_addr = [&](const char* node) {
      return node_ports
                 ? std::vector<std::string>{"--node-addr", testbed::Address(node, Family::kV4)}
                 : std::vector<std::string>{};
    };
    c->node_b = std::make_unique<Agent>(*c->tb, "nodeB", dir + "/config-b.yaml", c->policy,
                                        base + "B", node_addr("nodeB"));
    std::vector<std::string> flags_a = node_addr("nodeA");
    flags_a.insert(flags_a.end(), node_a_flags.begin(), node_a_flags.end());
    c->node_a = std::make_unique<Agent>(*c->tb, "nodeA", dir + "/config-a.yaml", c->policy,
                                        base + "A", flags_a);
    c->node_b->Start();
    if (!::testing::Test::HasFatalFailure()) {
      c->node_a->Start();
    }
    return c;
  }

  std::string Logs() const { return node_a->Describe() + node_b->Describe(); }

  // n connections from the client to the VIP; every one must succeed.
  ProbeResult Connect(long n) const {
    ProbeResult r = tb->Probe("client", "tcp", kVip, n, 8, 3000);
    EXPECT_EQ(r.ok, n) << r.Describe() << "\n" << Logs();
    return r;
  }
};

// New short connections, batch after batch, until stopped: the traffic that must not notice
// an agent restart. Every attempt is counted; one that did not complete is a failure.
class ConnectionStream {
 public:
  explicit ConnectionStream(const Testbed& tb) : tb_(tb) {
    thread_ = std::thread([this] {
      while (!stop_) {
        ProbeResult r = tb_.Probe("client", "tcp", kVip, kBatch, 4, 3000);
        std::lock_guard lock(mu_);
        attempts_ += kBatch;
        ok_ += r.ok;
        for (const auto& [id, n] : r.ids) {
          ids_[id] += n;
        }
        if (r.ok != kBatch) {
          failures_ += r.Describe() + "\n";
        }
      }
    });
  }
  ~ConnectionStream() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  long attempts() const {
    std::lock_guard lock(mu_);
    return attempts_;
  }
  long ok() const {
    std::lock_guard lock(mu_);
    return ok_;
  }
  const std::map<std::string, long>& ids() const { return ids_; }
  const std::string& failures() const { return failures_; }

 private:
  static constexpr long kBatch = 40;
  const Testbed& tb_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  long attempts_ = 0;
  long ok_ = 0;
  std::map<std::string, long> ids_;
  std::string failures_;
  std::thread thread_;
};

// Long-lived connections (one line every interval_ms, `lines` times) until at least one has
// landed on each cluster and `min_total` are held. Returns (backend, process) pairs.
std::vector<std::pair<std::string, std::unique_ptr<Process>>> HoldOnBothClusters(Testbed& tb,
                                                                                 size_t min_total,
                                                                                 long lines,
                                                                                 long interval_ms) {
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> holds;
  std::set<std::string> clusters;
  for (int tries = 0; tries < 24 && (holds.size() < min_total || clusters.size() < 2); ++tries) {
    std::unique_ptr<Process> p = tb.StartHold("client", kVip, lines, interval_ms);
    if (!p) {
      break;
    }
    std::string id;
    const auto deadline = Clock::now() + seconds(30);  // a loaded machine is slow, not broken
    while (id.empty() && Clock::now() < deadline && p->Running()) {
      const std::string err = p->ErrSoFar();
      const size_t at = err.find("hold: greeting id=");
      const size_t end = at == std::string::npos ? at : err.find('\n', at);
      if (end != std::string::npos) {
        id = err.substr(at + 18, end - at - 18);
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (id.empty()) {
      ADD_FAILURE() << "a held connection got no greeting: " << p->Stop().Describe();
      break;
    }
    clusters.insert(ClusterOf(id));
    holds.emplace_back(id, std::move(p));
  }
  return holds;
}

// GET http://127.0.0.1:9464/PATH inside `role`'s network namespace, where the agent's
// default --metrics-addr listens: from a thread of our own in that namespace (RunInNetns), so
// the test needs neither curl nor nsenter.
HttpReply NodeGet(const Testbed& tb, const std::string& role, const std::string& path,
                  const std::string& address = "127.0.0.1:9464") {
  HttpReply reply;
  std::string error;
  testbed::RunInNetns(tb.NsPath(role), [&] {
    auto got = HttpGet(address, path);
    if (!got.ok()) {
      error = got.error().ToString();
      return;
    }
    reply = std::move(*got);
  });
  EXPECT_EQ(error, "") << role << " GET " << path;
  return reply;
}

// The value of the sample whose line starts with `series` (name and labels, exactly as
// exposed); -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series) {
  const size_t at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::atof(exposition.c_str() + at + 1 + series.size() + 1);
}

// --- restart without loss ---

TEST(AgentRestart, KillNineAndRestartDropsNoConnectionAndFirstSyncWritesNothing) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  ASSERT_GT(c->node_a->Writes(1), 0) << "the first agent programs the service\n" << c->Logs();
  c->Connect(20);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const long first_program = c->node_a->XdpProgram();

  // 200 lines, one every 100 ms: 20 s, longer than everything below.
  auto holds = HoldOnBothClusters(*c->tb, 6, 200, 100);
  ASSERT_GE(holds.size(), 6u);
  std::string held;
  std::set<std::string> held_clusters;
  for (const auto& [id, p] : holds) {
    held += " " + id;
    held_clusters.insert(ClusterOf(id));
  }
  EXPECT_EQ(held_clusters.size(), 2u) << "held connections on both clusters:" << held;
  ConnectionStream stream(*c->tb);
  std::this_thread::sleep_for(milliseconds(1500));

  c->node_a->Kill9();
  ASSERT_FALSE(::testing::Test::HasFailure());
  const long at_kill = stream.attempts();
  // nodeA stays without an agent for a second, and at least until a batch of the stream has
  // finished meanwhile (on a loaded machine one may take longer than the second).
  const auto killed = Clock::now();
  while ((Clock::now() - killed < seconds(1) || stream.attempts() == at_kill) &&
         Clock::now() - killed < seconds(30)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const auto restart = Clock::now();
  c->node_a->Start();
  ASSERT_FALSE(::testing::Test::HasFailure()) << c->Logs();
  // Batches that finished while nodeA had no agent (roughly: a batch takes tens of ms).
  const long without_agent = stream.attempts() - at_kill;
  const long restart_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - restart).count();
  std::this_thread::sleep_for(seconds(3));

  size_t still_held = 0;
  for (const auto& [id, p] : holds) {
    still_held += p->Running() ? 1 : 0;
  }
  // At least 200 short connections in all, however slowly the machine makes them.
  for (const auto until = Clock::now() + seconds(60);
       stream.attempts() < 200 && Clock::now() < until;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  stream.Stop();

  // The restarted agent found its predecessor's maps, computed the same state, wrote nothing,
  // and replaced the program on the uplink with its own.
  EXPECT_EQ(c->node_a->Writes(1), 0) << c->Logs();
  EXPECT_NE(c->node_a->Log().find("adopted the maps: 1 VIP keys, 1 tables, 4 valid backends"),
            std::string::npos)
      << c->Logs();
  EXPECT_NE(c->node_a->XdpProgram(), first_program) << c->Logs();

  EXPECT_EQ(still_held, holds.size()) << "every held connection outlived the restart by 3 s";
  long lines_ok = 0;
  for (auto& [id, p] : holds) {
    ProbeResult r = testbed::ParseProbe(p->Wait(seconds(60)));
    EXPECT_EQ(r.count, 201) << id << ": " << r.Describe();  // greeting + 200 lines
    EXPECT_EQ(r.ok, r.count) << id << ": " << r.Describe() << "\n" << c->Logs();
    EXPECT_TRUE(r.same_backend) << id << ": " << r.Describe();
    EXPECT_EQ(r.ids, (std::map<std::string, long>{{id, r.count}})) << r.Describe();
    lines_ok += r.ok;
  }
  EXPECT_GE(stream.attempts(), 200) << "the stream ran through the restart";
  EXPECT_GT(without_agent, 0) << "connections were made while nodeA had no agent";
  EXPECT_EQ(stream.ok(), stream.attempts()) << stream.failures() << "\n" << c->Logs();
  EXPECT_EQ(ClusterShares(stream.ids()).size(), 2u) << SharesText(stream.ids());
  std::printf(
      "[ restart ] held%s: %zu connections, %ld lines answered; short connections: "
      "%ld/%ld ok (%s), %ld of them while nodeA had no agent; agent back in %ld ms, first "
      "sync wrote %ld\n",
      held.c_str(), holds.size(), lines_ok, stream.ok(), stream.attempts(),
      SharesText(stream.ids()).c_str(), without_agent, restart_ms, c->node_a->Writes(1));
  std::printf("[ restart ] the restarted agent's log:\n%s", c->node_a->Log().c_str());
}

TEST(AgentRestart, SigtermLeavesTheDatapathServingAndTheNextAgentTakesOver) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  CommandResult stopped = c->node_a->Stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.Describe();
  EXPECT_NE(stopped.err.find("stopping; the datapath stays attached"), std::string::npos)
      << stopped.Describe();

  // No agent on nodeA: the programs and the pinned maps serve on their own.
  CommandResult link = c->tb->Run("nodeA", {"ip", "-details", "link", "show", "eth0"});
  EXPECT_NE(link.out.find("prog/xdp"), std::string::npos) << link.Describe();
  ProbeResult alone = c->Connect(200);
  EXPECT_NEAR(ClusterShares(alone.ids)["cluster-a"], 70.0, 15.0) << SharesText(alone.ids);

  c->node_a->Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  EXPECT_EQ(c->node_a->Writes(1), 0) << c->Logs();
  c->Connect(100);
  std::printf(
      "[ sigterm ] without an agent: %ld/200 ok (%s); the next agent's first sync wrote "
      "%ld\n",
      alone.ok, SharesText(alone.ids).c_str(), c->node_a->Writes(1));
}

TEST(AgentInterfaces, PodInterfaceCreatedLaterGetsXlbTc) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  // A new pod's veth (its peer stays in nodeA too: only the name matters to the agent).
  CommandResult add = c->tb->Run(
      "nodeA", {"ip", "link", "add", "veth-late", "type", "veth", "peer", "name", "late-peer"});
  ASSERT_TRUE(add.ok()) << add.Describe();
  const auto added = Clock::now();
  ASSERT_TRUE(c->node_a->WaitFor(") to veth-late (TC ingress)", seconds(30))) << c->Logs();
  const long ms = std::chrono::duration_cast<milliseconds>(Clock::now() - added).count();
  CommandResult filter =
      c->tb->Run("nodeA", {"tc", "filter", "show", "dev", "veth-late", "ingress"});
  EXPECT_NE(filter.out.find("xlb_tc"), std::string::npos) << filter.Describe();
  EXPECT_EQ(c->node_a->Log().find("late-peer"), std::string::npos) << "only names matching veth-*";
  std::printf("[ iface ] veth-late got xlb_tc %ld ms after it was created\n", ms);
}

// Link events, not the rescan: with the rescan 10 s away, each of 20 new veths (one at a time)
// gets xlb_tc within a second of `ip link add`; only the rtnetlink subscription can do that.
// Figures: from before `ip link add` (an upper bound: the command's own start-up included)
// and from its return (the link exists by then) to the agent's "attached" line, polled every
// millisecond; then `tc filter show` confirms every filter.
TEST(AgentInterfaces, NewVethsGetXlbTcFromTheirLinkEventNotTheRescan) {
  auto c = AgentTestbed::Up(false, nullptr, {}, {"--iface-rescan", "10000"});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  constexpr int kVeths = 20;
  std::vector<double> from_command, after_command;
  for (int i = 0; i < kVeths; ++i) {
    const std::string name = "veth-nl" + std::to_string(i);
    const auto before = Clock::now();
    CommandResult add = c->tb->Run("nodeA", {"ip", "link", "add", name, "type", "veth", "peer",
                                             "name", "nlpeer" + std::to_string(i)});
    const auto created = Clock::now();
    ASSERT_TRUE(add.ok()) << add.Describe();
    const std::string needle = ") to " + name + " (TC ingress)";
    while (c->node_a->Log().find(needle) == std::string::npos &&
           Clock::now() < created + seconds(15)) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    const auto seen = Clock::now();
    ASSERT_NE(c->node_a->Log().find(needle), std::string::npos) << c->Logs();
    auto ms = [](Clock::duration d) {
      return std::max(0.0, std::chrono::duration<double, std::milli>(d).count());
    };
    from_command.push_back(ms(seen - before));
    after_command.push_back(ms(seen - created));
  }
  for (int i = 0; i < kVeths; ++i) {
    const std::string name = "veth-nl" + std::to_string(i);
    CommandResult filter = c->tb->Run("nodeA", {"tc", "filter", "show", "dev", name, "ingress"});
    EXPECT_NE(filter.out.find("xlb_tc"), std::string::npos) << filter.Describe();
  }
  EXPECT_EQ(c->node_a->Log().find(") to nlpeer"), std::string::npos) << "only names matching";
  auto summary = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    char buf[96];
    std::snprintf(buf, sizeof(buf), "min %.1f ms, p50 %.1f ms, p90 %.1f ms, max %.1f ms", v.front(),
                  v[v.size() / 2], v[v.size() * 9 / 10], v.back());
    return std::string(buf);
  };
  // Generous for a loaded 2-core machine, and still ten times under the rescan interval.
  EXPECT_LT(*std::max_element(from_command.begin(), from_command.end()), 1000.0)
      << summary(from_command) << "\n"
      << c->Logs();
  std::printf(
      "[ iface ] %d veths, xlb_tc attached (rescan every 10 s, so by link events):\n"
      "[ iface ]   from before `ip link add`: %s\n"
      "[ iface ]   from its return:           %s\n",
      kVeths, summary(from_command).c_str(), summary(after_command).c_str());
}

// The service with a UDP port beside the TCP one (the echo servers answer both on 8080): what
// a pod's first DNS query to a ClusterIP looks like.
std::string TestbedConfigWithUdp(const std::string& local_cluster) {
  std::string config = TestbedConfig(local_cluster);
  const std::string port = "  - port: 8080\n    protocol: TCP\n";
  config.replace(config.find(port), port.size(),
                 "  - name: tcp\n    port: 8080\n    protocol: TCP\n"
                 "  - name: udp\n    port: 8080\n    protocol: UDP\n");
  return config;
}

// A pod created while the agent runs (namespace, veth, addresses and routes as the testbed's
// CNI-like pods have them): its very first datagram to the VIP, sent as soon as its eth0 is up
// and without waiting for anything, is balanced and answered from the VIP. With the rescan 10
// s away, only the link event can have put xlb_tc on its veth in time; without xlb_tc the
// datagram meets nodeA's "unreachable" route for the VIPs.
TEST(AgentInterfaces, ANewPodsFirstDatagramToTheServiceIsBalanced) {
  auto c = AgentTestbed::Up(false, TestbedConfigWithUdp, {}, {"--iface-rescan", "10000"});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  Testbed& tb = *c->tb;
  // The testbed's prefix: its teardown removes this namespace with the others.
  const std::string pod = "podA9";
  const std::string xdp_pass = testbed::XdpPassObject();
  auto run = [&](const std::string& role, const std::vector<std::string>& argv) {
    CommandResult r = role.empty() ? testbed::RunIn("", argv, seconds(10)) : tb.Run(role, argv);
    EXPECT_TRUE(r.ok()) << r.Describe();
  };
  run("", {"ip", "netns", "add", tb.Ns(pod)});
  const auto created = Clock::now();
  run("nodeA", {"ip", "link", "add", "veth-" + pod, "type", "veth", "peer", "name", "eth0", "netns",
                tb.Ns(pod)});
  run("nodeA", {"ip", "addr", "add", "198.18.10.1/32", "dev", "veth-" + pod});
  run("nodeA", {"ip", "link", "set", "veth-" + pod, "up"});
  run("nodeA", {"ip", "route", "add", "198.18.10.31/32", "dev", "veth-" + pod});
  run(pod, {"ip", "link", "set", "lo", "up"});
  run(pod, {"ip", "addr", "add", "198.18.10.31/32", "dev", "eth0"});
  // Like every testbed pod: an XDP program on eth0, so that frames nodeA's XDP redirects into
  // the veth are received.
  run(pod, {"ip", "link", "set", "dev", "eth0", "xdpdrv", "obj", xdp_pass, "sec", "xdp"});
  run(pod, {"ip", "link", "set", "eth0", "up"});
  run(pod, {"ip", "route", "add", "198.18.10.1/32", "dev", "eth0", "scope", "link"});
  run(pod, {"ip", "route", "add", "198.18.0.0/15", "via", "198.18.10.1", "dev", "eth0", "src",
            "198.18.10.31"});
  ASSERT_FALSE(::testing::Test::HasFailure()) << c->Logs();
  const long ready_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - created).count();
  ProbeResult first = tb.Probe(pod, "udp", kVip, 1, 1, 2000);
  EXPECT_EQ(first.ok, 1) << "the pod's first datagram\n" << first.Describe() << "\n" << c->Logs();
  EXPECT_EQ(first.peers, (std::map<std::string, long>{{std::string(kVip) + ":8080", 1}}))
      << first.Describe();
  EXPECT_EQ(first.clients, (std::map<std::string, long>{{"198.18.10.31", 1}})) << first.Describe();
  EXPECT_NE(c->node_a->Log().find(") to veth-" + pod + " (TC ingress)"), std::string::npos)
      << c->Logs();
  ProbeResult more = tb.Probe(pod, "udp", kVip, 200, 4, 2000);
  EXPECT_EQ(more.ok, 200) << more.Describe() << "\n" << c->Logs();
  EXPECT_NEAR(ClusterShares(more.ids)["cluster-a"], 70.0, 12.0) << SharesText(more.ids);
  std::printf(
      "[ first packet ] pod %s up %ld ms after its veth was created; its first datagram: %s; "
      "then %ld/200 (%s)\n",
      pod.c_str(), ready_ms,
      first.ids.empty() ? "lost" : ("answered by " + first.ids.begin()->first).c_str(), more.ok,
      SharesText(more.ids).c_str());
}

// --- uplinks ---

// A second uplink on nodeA: eth1, 198.18.4.2/24, to the router's eth-nodeA2 (198.18.4.1), which
// gets an XDP program like the router's other node-facing ports. nodeA routes nothing through
// it: only the node address it holds makes it an uplink for --uplink auto.
void AddSecondUplink(Testbed& tb) {
  const std::string mtu = std::to_string(tb.transit_mtu());
  const std::vector<std::pair<std::string, std::vector<std::string>>> steps = {
      {"router",
       {"ip", "link", "add", "eth-nodeA2", "mtu", mtu, "type", "veth", "peer", "name", "eth1",
        "mtu", mtu, "netns", tb.Ns("nodeA")}},
      {"router", {"ip", "addr", "add", "198.18.4.1/24", "dev", "eth-nodeA2"}},
      {"router",
       {"ip", "link", "set", "dev", "eth-nodeA2", "xdpdrv", "obj", testbed::XdpPassObject(), "sec",
        "xdp"}},
      {"router", {"ip", "link", "set", "eth-nodeA2", "up"}},
      {"nodeA", {"ip", "addr", "add", "198.18.4.2/24", "dev", "eth1"}},
      {"nodeA", {"ip", "link", "set", "eth1", "up"}},
  };
  for (const auto& [role, argv] : steps) {
    CommandResult r = tb.Run(role, argv);
    ASSERT_TRUE(r.ok()) << r.Describe();
  }
}

TEST(AgentUplinks, AutoAttachesToBothUplinksAndTheNodePortAnswersOnEachOnesAddress) {
  const std::string second = "198.18.4.2";
  auto c = AgentTestbed::Up(/*node_ports=*/true, nullptr, AddSecondUplink,
                            {"--uplink", "auto", "--node-addr", second});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  const std::string log = c->node_a->Log();
  // eth0 carries 198.18.0.0/15 via the router; eth1 holds a node address; the pod veths hold
  // the pods' gateway address, and are not uplinks.
  EXPECT_NE(log.find("--uplink auto: eth0, eth1 (no default route; routes through a gateway, "
                     "and node addresses)"),
            std::string::npos)
      << log;
  for (const char* uplink : {"eth0", "eth1"}) {
    EXPECT_NE(log.find(std::string(") to ") + uplink + " in "), std::string::npos) << log;
    CommandResult link = c->tb->Run("nodeA", {"ip", "-details", "link", "show", uplink});
    EXPECT_NE(link.out.find("prog/xdp"), std::string::npos) << link.Describe();
  }
  EXPECT_EQ(NodeGet(*c->tb, "nodeA", "/readyz").status, 200) << c->Logs();
  const std::string m = NodeGet(*c->tb, "nodeA", "/metrics").body;
  EXPECT_EQ(MetricValue(m, R"(xlb_agent_xdp_attached{interface="eth0"})"), 1.0) << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_agent_xdp_attached{interface="eth1"})"), 1.0) << m;

  std::string figures;
  for (const std::string& address : {testbed::Address("nodeA", Family::kV4), second}) {
    ProbeResult r = c->tb->ProbePort("client", "tcp", address, kNodePort, 300, 8, 3000);
    EXPECT_EQ(r.ok, 300) << address << ": " << r.Describe() << "\n" << c->Logs();
    EXPECT_NEAR(ClusterShares(r.ids)["cluster-a"], 70.0, 10.0) << address << SharesText(r.ids);
    const std::string peer = address + ":" + std::to_string(kNodePort);
    EXPECT_EQ(r.peers, (std::map<std::string, long>{{peer, r.ok}})) << r.Describe();
    EXPECT_EQ(r.clients,
              (std::map<std::string, long>{{testbed::Address("client", Family::kV4), r.ok}}))
        << r.Describe();
    figures += " " + peer + ": " + std::to_string(r.ok) + "/300 (" + SharesText(r.ids) + ")";
  }
  std::printf("[ uplinks ] eth0 and eth1 by --uplink auto;%s\n", figures.c_str());
}

// --- bad input while running ---

TEST(AgentReload, MalformedPolicyIsRejectedAndTrafficKeepsItsWeights) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  ProbeResult before = c->Connect(400);
  EXPECT_NEAR(ClusterShares(before.ids)["cluster-a"], 70.0, 10.0) << SharesText(before.ids);

  WriteFileAtomically(c->policy, VirtualService("-5", 30));
  ASSERT_TRUE(c->node_a->WaitFor("rejected; the last good set stays in force", seconds(30)))
      << c->Logs();
  const std::string log = c->node_a->Log();
  EXPECT_NE(log.find(c->policy + ": document 1: spec.tcp[0].route[0].weight"), std::string::npos)
      << log;
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(c->node_a->Writes(2), -1) << "no sync after the rejection\n" << c->Logs();

  ProbeResult after = c->Connect(400);
  EXPECT_NEAR(ClusterShares(after.ids)["cluster-a"], 70.0, 10.0) << SharesText(after.ids);
  std::printf("[ reject ] before: %ld/400 ok (%s); after the malformed policy: %ld/400 ok (%s)\n",
              before.ok, SharesText(before.ids).c_str(), after.ok, SharesText(after.ids).c_str());
}

TEST(AgentReload, PolicyChangeTo0To100SendsEveryNewConnectionToClusterB) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  // Synced with XDP attached: ready, and healthy.
  const HttpReply ready = NodeGet(*c->tb, "nodeA", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body << c->Logs();
  EXPECT_EQ(NodeGet(*c->tb, "nodeA", "/healthz").body, "ok\n");
  ProbeResult before = c->Connect(200);
  EXPECT_GT(ClusterShares(before.ids)["cluster-a"], 50.0) << SharesText(before.ids);

  // The counters nodeA's agent exposes match the traffic: every connection went through
  // nodeA's XDP once as a new flow (fresh maps: nothing else was counted), and each backend
  // counted the connections its pod answered.
  const HttpReply scraped = NodeGet(*c->tb, "nodeA", "/metrics");
  ASSERT_EQ(scraped.status, 200) << scraped.body;
  const std::string& m = scraped.body;
  const std::string svc =
      R"({service="xlb-test/echo",port="8080/TCP",family="IPv4",service_id="1"})";
  EXPECT_EQ(MetricValue(m, "xlb_service_new_flows_total" + svc), 200.0) << m;
  EXPECT_GE(MetricValue(m, "xlb_service_packets_total" + svc), 200.0 * 3) << m;
  long by_cluster_a = 0;
  for (const auto& [pod, n] : before.ids) {
    by_cluster_a += ClusterOf(pod) == "cluster-a" ? n : 0;
    const std::string address = testbed::Address(pod, Family::kV4) + ":8080";
    const size_t line = m.find(",address=\"" + address + "\",cluster=\"" + ClusterOf(pod) + "\"} " +
                               std::to_string(n) + "\n");
    EXPECT_NE(line, std::string::npos) << pod << " " << address << " answered " << n << "\n" << m;
  }
  EXPECT_EQ(MetricValue(m, R"(xlb_cluster_new_flows_total{cluster="cluster-a"})"),
            static_cast<double>(by_cluster_a))
      << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_cluster_new_flows_total{cluster="cluster-b"})"),
            static_cast<double>(200 - by_cluster_a))
      << m;
  // established packets to cluster A's pods: forwarded by xlb itself (the testbed's pods take
  // XDP frames) or by the stack
  EXPECT_GT(
      MetricValue(m, R"(xlb_datapath_packets_total{reason="fwd_established",verdict="forward"})") +
          MetricValue(m, R"(xlb_datapath_packets_total{reason="fwd_routed",verdict="forward"})"),
      0.0)
      << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_map_entries{map="maglev_tables"})"), 1.0) << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_map_entries{map="backends"})"), 4.0) << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_map_entries{map="services"})"), 1.0) << m;
  EXPECT_GE(MetricValue(m, R"(xlb_map_entries{map="conntrack"})"), 1.0) << m;
  EXPECT_EQ(MetricValue(m, "xlb_agent_up"), 1.0) << m;
  EXPECT_EQ(MetricValue(m, "xlb_agent_sync_duration_seconds_count"), 1.0) << m;

  const auto written = Clock::now();
  WriteFileAtomically(c->policy, VirtualService("0", 100));
  ASSERT_TRUE(c->node_a->WaitFor("sync #2: ", seconds(30))) << c->Logs();
  const long reload_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - written).count();
  EXPECT_NE(c->node_a->Log().find("sync #2: 2 writes (table=1 service=1)"), std::string::npos)
      << "one table swap and the service entry\n"
      << c->Logs();

  ProbeResult after = c->Connect(400);
  EXPECT_NEAR(ClusterShares(after.ids)["cluster-b"], 100.0, 0.01) << SharesText(after.ids);

  const std::string later = NodeGet(*c->tb, "nodeA", "/metrics").body;
  EXPECT_EQ(MetricValue(later, "xlb_service_new_flows_total" + svc), 600.0) << later;
  EXPECT_EQ(MetricValue(later, R"(xlb_cluster_new_flows_total{cluster="cluster-b"})"),
            static_cast<double>(200 - by_cluster_a + 400))
      << later;
  EXPECT_EQ(MetricValue(later, "xlb_agent_sync_duration_seconds_count"), 2.0) << later;
  EXPECT_EQ(MetricValue(later, R"(xlb_agent_sync_writes_total{kind="table"})"), 2.0) << later;
  EXPECT_EQ(MetricValue(later, R"(xlb_agent_reloads_total{source="policy",result="success"})"), 1.0)
      << later;
  std::printf("[ metrics ] nodeA after 600 connections:\n");
  for (const char* prefix :
       {"xlb_service_new_flows_total", "xlb_cluster_new_flows_total", "xlb_backend_new_flows_total",
        "xlb_map_entries{", "xlb_agent_sync_duration_seconds_count", "xlb_agent_ready"}) {
    for (size_t at = later.find(std::string("\n") + prefix); at != std::string::npos;
         at = later.find(std::string("\n") + prefix, at + 1)) {
      std::printf("  %s\n", later.substr(at + 1, later.find('\n', at + 1) - at - 1).c_str());
    }
  }
  std::printf("[ reload ] 70/30 -> 0/100 in force %ld ms after the write; then %ld/400 ok (%s)\n",
              reload_ms, after.ok, SharesText(after.ids).c_str());
}

// --- NodePort ---

// kube-proxy serves a service's nodePort on every node address: a client that reaches nodeA's
// address on the nodePort is balanced 70/30 over both clusters like the ClusterIP, and the
// answers come from nodeA's address and the nodePort. Backends in cluster B answer through
// the tunnel back to nodeA, whose XDP reverses the NAT to a source that is nodeA's own
// address: the kernel would drop that as a martian if xlb handed it to the stack on eth0.
TEST(AgentNodePort, NodeAddressAndNodePortAreBalancedOverBothClusters) {
  auto c = AgentTestbed::Up(/*node_ports=*/true);
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  const std::string node_a = testbed::Address("nodeA", Family::kV4);
  ProbeResult r = c->tb->ProbePort("client", "tcp", node_a, kNodePort, 400, 8, 3000);
  EXPECT_EQ(r.ok, 400) << r.Describe() << "\n" << c->Logs();
  EXPECT_NEAR(ClusterShares(r.ids)["cluster-a"], 70.0, 8.0) << SharesText(r.ids);
  EXPECT_NEAR(ClusterShares(r.ids)["cluster-b"], 30.0, 8.0) << SharesText(r.ids);
  // Answers of both kinds were routed by xlb: local pods' through TC on their veth, cluster
  // B's decapsulated by XDP on the uplink. Each connection's SYN-ACK and FIN-ACK at least.
  const std::string m = NodeGet(*c->tb, "nodeA", "/metrics").body;
  EXPECT_GE(
      MetricValue(m, R"(xlb_datapath_packets_total{reason="fwd_reply_routed",verdict="forward"})"),
      400.0 * 2)
      << m;
  EXPECT_EQ(
      MetricValue(m, R"(xlb_datapath_packets_total{reason="fwd_reply_revnat",verdict="forward"})"),
      0.0)
      << "no answer went to the stack with the node's address as its source\n"
      << m;
  // The ClusterIP of the same service is unaffected.
  ProbeResult vip = c->Connect(100);
  EXPECT_EQ(vip.ok, 100);
  std::printf("[ nodeport ] %s:%d: %ld/400 ok (%s)\n", node_a.c_str(), kNodePort, r.ok,
              SharesText(r.ids).c_str());
}

// --- the forwarding fast path ---

std::string ForwardReason(const char* reason) {
  return std::string(R"(xlb_datapath_packets_total{reason=")") + reason + R"(",verdict="forward"})";
}

// Real connections through the fast path (bpf/lib/forward.h). The testbed's pods run an
// XDP_PASS program on their eth0, so their veths take XDP frames and xlb_xdp sends the pods
// their packets itself; their answers leave from xlb_tc by fib redirect. When the pods drop
// their XDP program, a frame redirected to them would be lost: the agent's next interface
// rescan takes their veths out of xlb_fwddev and the stack forwards again. GRO on the pod
// side (NAPI without XDP) brings them back. No connection fails at any stage.
TEST(AgentForwarding, XdpForwardsIntoPodsOnlyWhileTheirVethsTakeXdpFrames) {
  auto c = AgentTestbed::Up(false, nullptr, {}, {"--iface-rescan", "200"});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  auto counts = [&] {
    const std::string m = NodeGet(*c->tb, "nodeA", "/metrics").body;
    std::map<std::string, double> n;
    for (const char* r : {"fwd_routed", "fwd_new_flow", "fwd_established", "fwd_reply_routed",
                          "fwd_reply_revnat"}) {
      n[r] = MetricValue(m, ForwardReason(r));
    }
    return std::pair{n, m};
  };
  auto in_pods = [&](const std::vector<std::string>& argv) {
    for (const char* pod : {"podA1", "podA2"}) {
      CommandResult r = c->tb->Run(pod, argv);
      ASSERT_TRUE(r.ok()) << pod << ": " << r.Describe();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // several rescans, loaded or not
  };
  // About 70 of each 100 connections go to cluster A's pods: a SYN, an ACK, data and a FIN
  // at least toward the pod, a SYN-ACK, data and a FIN-ACK back.
  c->Connect(100);
  auto [xdp, m1] = counts();
  EXPECT_GE(xdp["fwd_routed"], 70.0 * 3) << m1;
  EXPECT_GE(xdp["fwd_reply_routed"], 70.0 * 2) << m1;
  EXPECT_EQ(xdp["fwd_reply_revnat"], 0.0) << "a local pod's answer went to the stack\n" << m1;

  in_pods({"ip", "link", "set", "dev", "eth0", "xdpdrv", "off"});
  c->Connect(100);
  auto [stack, m2] = counts();
  EXPECT_LE(stack["fwd_routed"] - xdp["fwd_routed"], 5.0)
      << "redirected into a veth whose peer has no NAPI\n"
      << m2;
  EXPECT_GE(stack["fwd_established"] + stack["fwd_new_flow"] - xdp["fwd_established"] -
                xdp["fwd_new_flow"],
            70.0 * 3)
      << m2;
  EXPECT_GE(stack["fwd_reply_routed"] - xdp["fwd_reply_routed"], 70.0 * 2) << m2;

  in_pods({"ethtool", "-K", "eth0", "gro", "on"});
  c->Connect(100);
  auto [gro, m3] = counts();
  EXPECT_GE(gro["fwd_routed"] - stack["fwd_routed"], 70.0 * 3) << m3;
  EXPECT_LE(gro["fwd_established"] - stack["fwd_established"], 5.0) << m3;
}

// kube-proxy holds the node health check's port until its DaemonSet is deleted: an agent that
// takes over starts anyway, says why the port is not served, and takes it within a second or
// two of it being freed.
TEST(AgentHealthz, TakesTheNodeHealthCheckPortOnceKubeProxyLetsGoOfIt) {
  UniqueFd held;
  auto c = AgentTestbed::Up(
      false, nullptr,
      [&](Testbed& tb) {
        testbed::RunInNetns(tb.NsPath("nodeA"), [&] {
          held = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_port = htons(10256);
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          ASSERT_EQ(::bind(held.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0)
              << std::strerror(errno);
          ASSERT_EQ(::listen(held.get(), 1), 0);
        });
      },
      {"--healthz-addr", "127.0.0.1:10256"});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  EXPECT_NE(c->node_a->Log().find("(kube-proxy still running?); tried again every second"),
            std::string::npos)
      << c->Logs();
  c->Connect(50);  // serving meanwhile
  held.reset();
  ASSERT_TRUE(c->node_a->WaitFor("serving the node health check on 127.0.0.1:10256", seconds(10)))
      << c->Logs();
  const HttpReply health = NodeGet(*c->tb, "nodeA", "/healthz", "127.0.0.1:10256");
  EXPECT_EQ(health.status, 200) << health.body;
}

// The next hop toward each tunnel peer is a managed neighbour entry from the first sync on,
// before any traffic: the first encapsulated packet finds it in bpf_fib_lookup. That is what
// lets an agent without a writable /proc/sys (the unprivileged DaemonSet: no accept_local)
// tunnel from the first packet: with accept_local off again, every connection, half of which go
// to cluster B through the tunnel, completes.
TEST(AgentTunnel, NextHopTowardTheRemoteNodeIsAManagedNeighbourBeforeAnyTraffic) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  const std::string peer = testbed::Address("nodeB", Family::kV4);
  CommandResult route = c->tb->Run("nodeA", {"ip", "-4", "route", "get", peer});
  ASSERT_TRUE(route.ok()) << route.Describe();
  // "198.18.0.21 via 198.18.0.1 dev eth0 src ..." or "198.18.0.21 dev eth0 src ...".
  std::istringstream words(route.out);
  std::string word, hop = peer, dev;
  for (std::string prev; words >> word; prev = word) {
    if (prev == "via") {
      hop = word;
    } else if (prev == "dev") {
      dev = word;
    }
  }
  bool managed = false;
  for (int i = 0; i < 100 && !managed; ++i) {
    CommandResult neigh = c->tb->Run("nodeA", {"ip", "-d", "neigh", "show", "dev", dev, hop});
    managed = neigh.out.find("managed") != std::string::npos &&
              neigh.out.find("lladdr") != std::string::npos;
    if (!managed) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  EXPECT_TRUE(managed) << c->tb->Run("nodeA", {"ip", "-d", "neigh", "show"}).Describe() << "\n"
                       << c->Logs();
  CommandResult off = c->tb->Run(
      "nodeA", {"sysctl", "-w", "net.ipv4.conf." + dev + ".accept_local=0"});
  ASSERT_TRUE(off.ok()) << off.Describe();
  const ProbeResult r = c->Connect(200);
  EXPECT_GT(ClusterShares(r.ids)["cluster-b"], 10.0) << SharesText(r.ids);
}

// A node that balances but hosts no endpoint of any service (a frontend) is a tunnel peer of
// the nodes its flows reach through its cluster's node list alone. With the agent's default
// (--tunnel-peers known), nodeB decapsulates what nodeA sends, although no endpoint lives on
// nodeA; once nodeB's node list has another address for it, nodeB drops what nodeA tunnels,
// counted as drop_tunnel_peer.
TEST(AgentTunnel, AFrontendNodeWithoutEndpointsIsAPeerThroughItsClustersNodeList) {
  auto without_cluster_a_endpoints = [](const std::string& local) {
    std::string config = TestbedConfig(local);
    const size_t from = config.find("- service: echo\n  namespace: xlb-test\n  cluster: cluster-a");
    const size_t to = config.find("- service: echo", from + 1);
    config.erase(from, to - from);
    return config;
  };
  auto c = AgentTestbed::Up(false, without_cluster_a_endpoints);
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  const std::string dropped =
      R"(xlb_datapath_packets_total{reason="drop_tunnel_peer",verdict="drop"})";
  const ProbeResult r = c->Connect(100);
  EXPECT_NEAR(ClusterShares(r.ids)["cluster-b"], 100.0, 0.01) << SharesText(r.ids);
  EXPECT_LE(MetricValue(NodeGet(*c->tb, "nodeB", "/metrics").body, dropped), 0.0);

  // nodeB's list has another address for node-a: nodeA's own is no peer any more.
  std::string config = without_cluster_a_endpoints("cluster-b");
  const std::string address = "addresses: [198.18.1.2]";
  ASSERT_NE(config.find(address), std::string::npos);
  config.replace(config.find(address), address.size(), "addresses: [198.18.1.99]");
  WriteFileAtomically(c->tb->state_dir() + "/config-b.yaml", config);
  ASSERT_TRUE(c->node_b->WaitFor("sync #2: ", seconds(30))) << c->Logs();
  const ProbeResult refused = c->tb->Probe("client", "tcp", kVip, 8, 8, 1000);
  EXPECT_EQ(refused.ok, 0) << refused.Describe();
  const std::string m = NodeGet(*c->tb, "nodeB", "/metrics").body;
  EXPECT_GT(MetricValue(m, dropped), 0.0) << m;
}

// --- faults under live traffic ---
// Each fault, repeated, while connections are held on both clusters and new ones stream in:
// afterwards every held connection still answers from the backend it started on (it kept
// answering after the last fault), and no new connection failed unless the fault itself cuts
// the path (a partition).

// What a held connection has answered so far, from its --verbose progress lines.
struct HeldSoFar {
  long lines = 0;           // the last line answered
  bool one_backend = true;  // every line from the greeting's backend
};
HeldSoFar ReadHeld(const Process& p, const std::string& id) {
  HeldSoFar out;
  std::istringstream err(p.ErrSoFar());
  for (std::string line; std::getline(err, line);) {
    long n = 0;
    char got[128] = {};
    if (std::sscanf(line.c_str(), "hold: line %ld id=%127s", &n, got) == 2) {
      out.lines = n;
      out.one_backend = out.one_backend && id == got;
    }
  }
  return out;
}

class LiveTraffic {
 public:
  // 600 lines, one every 100 ms: a minute, longer than any fault sequence below.
  explicit LiveTraffic(AgentTestbed& c) : c_(c) {
    holds_ = HoldOnBothClusters(*c.tb, 6, 600, 100);
    EXPECT_GE(holds_.size(), 6u);
    stream_ = std::make_unique<ConnectionStream>(*c.tb);
  }

  // Waits until the stream has run a batch since the last call (so that each fault meets
  // new connections, however slow the machine).
  void AwaitBatch() {
    const long seen = stream_->attempts();
    for (const auto until = Clock::now() + seconds(30);
         stream_->attempts() == seen && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }

  // After the faults: every held connection answers on (two more lines at least, from its own
  // backend); the stream stops after 200 attempts or more. A summary for the test's output.
  std::string Check(bool stream_must_not_fail) {
    std::map<std::string, long> after_faults;
    for (const auto& [id, p] : holds_) {
      after_faults[id] = ReadHeld(*p, id).lines;
    }
    std::this_thread::sleep_for(milliseconds(1500));
    long lines = 0;
    for (const auto& [id, p] : holds_) {
      const HeldSoFar now = ReadHeld(*p, id);
      EXPECT_TRUE(p->Running()) << id << ": " << p->ErrSoFar();
      EXPECT_GE(now.lines, after_faults[id] + 2) << id << " stopped answering after the faults\n"
                                                 << p->ErrSoFar() << c_.Logs();
      EXPECT_TRUE(now.one_backend) << id << " moved:\n" << p->ErrSoFar();
      lines += now.lines;
    }
    for (const auto until = Clock::now() + seconds(60);
         stream_->attempts() < 200 && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    stream_->Stop();
    if (stream_must_not_fail) {
      EXPECT_EQ(stream_->ok(), stream_->attempts()) << stream_->failures() << "\n" << c_.Logs();
    }
    EXPECT_EQ(ClusterShares(stream_->ids()).size(), 2u) << SharesText(stream_->ids());
    return std::to_string(holds_.size()) + " held connections (" + std::to_string(lines) +
           " lines answered, none moved), new connections " + std::to_string(stream_->ok()) + "/" +
           std::to_string(stream_->attempts()) + " ok (" + SharesText(stream_->ids()) + ")";
  }

 private:
  AgentTestbed& c_;
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> holds_;
  std::unique_ptr<ConnectionStream> stream_;
};

TEST(AgentChaos, KillNineInALoopOnBothNodesBreaksNoConnection) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  LiveTraffic traffic(*c);
  ASSERT_FALSE(::testing::Test::HasFailure());
  long restarts = 0;
  for (int round = 0; round < 3; ++round) {
    for (Agent* agent : {c->node_a.get(), c->node_b.get()}) {
      agent->Kill9();
      ASSERT_FALSE(::testing::Test::HasFailure());
      traffic.AwaitBatch();  // new connections while the node has no agent
      agent->Start();
      ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
      EXPECT_EQ(agent->Writes(1), 0) << "the restarted agent adopts the maps\n" << c->Logs();
      ++restarts;
    }
  }
  const std::string summary = traffic.Check(/*stream_must_not_fail=*/true);
  std::printf("[ chaos ] kill -9 and restart, %ld times (both nodes, 3 rounds): %s\n", restarts,
              summary.c_str());
}

TEST(AgentChaos, TruncatedConfigAndPolicyWritesAreRejectedAndTheLastGoodStateServes) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  const std::string config_path = c->tb->state_dir() + "/config-a.yaml";
  const std::string config = TestbedConfig("cluster-a");
  const std::string policy = VirtualService("70", 30);
  // Cut inside an address list ("[198.18" ends the file) and inside the second destination
  // (a bare "ho" where a map belongs): what a writer that died half-way leaves.
  const std::string cut_config = config.substr(0, config.find("198.18.20.12") + 6);
  const size_t second = policy.find("- destination:", policy.find("- destination:") + 1);
  const std::string cut_policy = policy.substr(0, policy.find("ho", second) + 2);
  LiveTraffic traffic(*c);
  ASSERT_FALSE(::testing::Test::HasFailure());
  auto rejections = [&](const std::string& what) {
    const std::string log = c->node_a->Log();
    long n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  for (int round = 1; round <= 3; ++round) {
    WriteFileAtomically(config_path, cut_config);
    for (const auto until = Clock::now() + seconds(30);
         rejections(" rejected; the last good config") < round && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    traffic.AwaitBatch();
    WriteFileAtomically(c->policy, cut_policy);
    for (const auto until = Clock::now() + seconds(30);
         rejections(" rejected; the last good set") < round && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    traffic.AwaitBatch();
    WriteFileAtomically(config_path, config);
    WriteFileAtomically(c->policy, policy);
    traffic.AwaitBatch();
  }
  EXPECT_EQ(rejections(" rejected; the last good config"), 3) << c->node_a->Log();
  EXPECT_EQ(rejections(" rejected; the last good set"), 3) << c->node_a->Log();
  const std::string summary = traffic.Check(/*stream_must_not_fail=*/true);
  const std::string m = NodeGet(*c->tb, "nodeA", "/metrics").body;
  EXPECT_EQ(MetricValue(m, R"(xlb_agent_reloads_total{source="config",result="failure"})"), 3.0)
      << m;
  EXPECT_EQ(MetricValue(m, R"(xlb_agent_reloads_total{source="policy",result="failure"})"), 3.0)
      << m;
  // 70/30 all along: no truncated file was ever in force.
  const ProbeResult r = c->Connect(300);
  EXPECT_NEAR(ClusterShares(r.ids)["cluster-a"], 70.0, 10.0) << SharesText(r.ids);
  std::printf("[ chaos ] config and policy truncated, 3 times each: %s; afterwards %s\n",
              summary.c_str(), SharesText(r.ids).c_str());
}

TEST(AgentChaos, PinsRemovedUnderRunningAgentsArePinnedAgainAndTheNextAgentAdoptsThem) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  LiveTraffic traffic(*c);
  ASSERT_FALSE(::testing::Test::HasFailure());
  auto repinned = [](const Agent& agent) {
    const std::string log = agent.Log();
    long n = 0;
    for (size_t at = log.find("were removed; pinned again"); at != std::string::npos;
         at = log.find("were removed; pinned again", at + 1)) {
      ++n;
    }
    return n;
  };
  for (int round = 1; round <= 2; ++round) {
    for (const std::string& dir : c->pins.dirs) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      ASSERT_FALSE(ec) << dir << ": " << ec.message();
    }
    for (const auto until = Clock::now() + seconds(30);
         (repinned(*c->node_a) < 1 || repinned(*c->node_b) < round) && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_EQ(repinned(*c->node_b), round) << c->node_b->Log();
    // The pins are whole again: a kill -9 now loses nothing, the next agent adopts them.
    c->node_a->Kill9();
    ASSERT_FALSE(::testing::Test::HasFailure());
    traffic.AwaitBatch();
    c->node_a->Start();
    ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
    EXPECT_EQ(c->node_a->Writes(1), 0) << c->Logs();
    EXPECT_NE(c->node_a->Log().find("adopted the maps: 1 VIP keys, 1 tables, 4 valid backends"),
              std::string::npos)
        << c->Logs();
  }
  const std::string summary = traffic.Check(/*stream_must_not_fail=*/true);
  const std::string m = NodeGet(*c->tb, "nodeB", "/metrics").body;
  EXPECT_GE(MetricValue(m, "xlb_agent_repins_total"), 2.0 * 14) << m;
  std::printf(
      "[ chaos ] pin directories removed twice under running agents: %s; nodeB "
      "pinned %.0f again\n",
      summary.c_str(), MetricValue(m, "xlb_agent_repins_total"));
}

// Cluster B cut off from everything for a second, twice (the router drops its node's
// traffic): the held connections ride it out on TCP's retransmissions, and new connections
// are only lost while it lasts (xlb does not probe remote nodes; a Kubernetes source would
// mark the cluster stale after staleAfter if its API server were cut off too).
TEST(AgentChaos, ARemoteClusterPartitionedForASecondAndReturningKeepsEveryHeldConnection) {
  auto c = AgentTestbed::Up();
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  LiveTraffic traffic(*c);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string script = c->tb->state_dir() + "/partition.nft";
  auto nft = [&](const std::string& text) {
    WriteFileAtomically(script, text);
    CommandResult r = c->tb->Run("router", {"nft", "-f", script});
    EXPECT_TRUE(r.ok()) << text << "\n" << r.Describe();
  };
  const std::string b4 = testbed::Address("nodeB", Family::kV4);
  const std::string b6 = testbed::Address("nodeB", Family::kV6);
  long dropped = 0;
  for (int round = 0; round < 2; ++round) {
    nft("table inet xlbchaos {\n chain forward {\n  type filter hook forward priority -10;\n"
        "  ip saddr " +
        b4 + " counter drop\n  ip daddr " + b4 + " counter drop\n  ip6 saddr " + b6 +
        " counter drop\n  ip6 daddr " + b6 + " counter drop\n }\n}\n");
    std::this_thread::sleep_for(seconds(1));
    // What the partition dropped: it did cut cluster B off.
    const CommandResult listed = c->tb->Run("router", {"nft", "list", "table", "inet", "xlbchaos"});
    std::istringstream words(listed.out);
    for (std::string prev, word; words >> word; prev = word) {
      if (prev == "packets") {
        dropped += std::atol(word.c_str());
      }
    }
    nft("delete table inet xlbchaos\n");
    traffic.AwaitBatch();
    std::this_thread::sleep_for(seconds(2));
  }
  const std::string summary = traffic.Check(/*stream_must_not_fail=*/false);
  EXPECT_GT(dropped, 0) << "the partition dropped nothing";
  const ProbeResult after = c->Connect(200);  // every one, once the cluster is back
  std::printf(
      "[ chaos ] cluster B partitioned for 1 s, twice (%ld packets dropped): %s; "
      "afterwards %ld/200 ok\n",
      dropped, summary.c_str(), after.ok);
}

// The Kubernetes API servers misbehave while traffic flows: nodeA's agent follows both
// clusters' test API servers (`--kube`; the servers listen inside nodeA's namespace), and each
// fault is repeated on both: connections dropped, every watch ended with 410 Gone, requests
// answered 429 and 503 (Retry-After) and 410, a restart with a new history (an etcd restore).
// The watch client relists and re-watches; the model it rebuilds is the one in force, so no
// sync after the first writes anything, and the datapath never notices.
TEST(AgentChaos, ApiServersDroppingFailingAndRestartingChangeNothingInTheDatapath) {
  xlb::testing::TestApiServer api_a;
  xlb::testing::TestApiServer api_b;
  // The kubeconfigs and kube.yaml, named before the testbed (and its state directory) exist.
  char made[] = "/tmp/xlb-kube-chaos-XXXXXX";
  ASSERT_NE(::mkdtemp(made), nullptr) << std::strerror(errno);
  const std::string dir = made;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_dir{dir};
  const std::string kube_yaml = dir + "/kube.yaml";
  auto serve_in_node_a = [&](Testbed& tb) {
    // Started from a thread in nodeA's namespace: their listeners (127.0.0.1) are nodeA's.
    testbed::RunInNetns(tb.NsPath("nodeA"), [&] {
      api_a.Start();
      api_b.Start();
    });
    auto service = [](const std::string& cluster_ip) {
      nlohmann::json s = kube::testing::ServiceObject("xlb-test", "echo", cluster_ip);
      s["spec"]["ports"][0]["port"] = 8080;
      return s;
    };
    using kube::testing::EndpointObject;
    using kube::testing::NodeObject;
    using kube::testing::SliceObject;
    api_a.Create("/api/v1/services", service(kVip));
    api_a.Create("/apis/discovery.k8s.io/v1/endpointslices",
                 SliceObject("xlb-test", "echo-a", "echo",
                             {EndpointObject("198.18.10.11", "node-a"),
                              EndpointObject("198.18.10.12", "node-a")}));
    api_a.Create("/api/v1/nodes", NodeObject("node-a", "198.18.1.2"));
    api_b.Create("/api/v1/services", service("198.18.110.1"));
    api_b.Create("/apis/discovery.k8s.io/v1/endpointslices",
                 SliceObject("xlb-test", "echo-b", "echo",
                             {EndpointObject("198.18.20.11", "node-b"),
                              EndpointObject("198.18.20.12", "node-b")}));
    api_b.Create("/api/v1/nodes", NodeObject("node-b", "198.18.2.2"));
    api_a.WriteKubeconfig(dir + "/a.kubeconfig", "test-token");
    api_b.WriteKubeconfig(dir + "/b.kubeconfig", "test-token");
    WriteFileAtomically(kube_yaml,
                        "apiVersion: xlb.dev/v1alpha1\nkind: KubeSources\n"
                        "node: {name: node-a}\nstaleAfter: 60s\n"
                        "local: {name: cluster-a, id: 1, kubeconfig: " +
                            dir +
                            "/a.kubeconfig}\n"
                            "clusters:\n- {name: cluster-b, id: 2, kubeconfig: " +
                            dir + "/b.kubeconfig}\n");
  };
  auto c = AgentTestbed::Up(false, nullptr, serve_in_node_a, {"--kube", kube_yaml});
  ASSERT_FALSE(::testing::Test::HasFatalFailure()) << c->Logs();
  ASSERT_TRUE(c->node_a->WaitFor("sync #1: ", seconds(60))) << c->Logs();
  c->Connect(20);
  LiveTraffic traffic(*c);
  ASSERT_FALSE(::testing::Test::HasFailure());
  auto watches_back = [&] {
    EXPECT_TRUE(api_a.WaitForWatches(3, seconds(30))) << c->node_a->Log();
    EXPECT_TRUE(api_b.WaitForWatches(3, seconds(30))) << c->node_a->Log();
  };
  watches_back();
  for (int round = 0; round < 2; ++round) {
    for (auto* api : {&api_a, &api_b}) {
      api->DropConnections();
    }
    watches_back();
    traffic.AwaitBatch();
    for (auto* api : {&api_a, &api_b}) {
      api->ExpireWatches();
    }
    watches_back();
    traffic.AwaitBatch();
    for (int status : {429, 503, 410}) {
      for (auto* api : {&api_a, &api_b}) {
        api->FailNextRequests(2, status);
        api->DropConnections();
      }
      watches_back();
      traffic.AwaitBatch();
    }
    testbed::RunInNetns(c->tb->NsPath("nodeA"), [&] {
      api_a.Restart(/*new_history=*/true);
      api_b.Restart(/*new_history=*/true);
    });
    watches_back();
    traffic.AwaitBatch();
  }
  const std::string summary = traffic.Check(/*stream_must_not_fail=*/true);
  // Every sync after the first wrote nothing: the relisted model is the one in force.
  const std::string log = c->node_a->Log();
  long syncs = 0, writing = 0;
  for (size_t at = log.find("sync #"); at != std::string::npos; at = log.find("sync #", at + 1)) {
    const size_t colon = log.find(": ", at);
    const long n = std::atol(log.c_str() + at + 6);
    const long writes = std::atol(log.c_str() + colon + 2);
    if (n >= 2) {
      ++syncs;
      writing += writes > 0 ? 1 : 0;
    }
  }
  EXPECT_EQ(writing, 0) << log;
  const std::string m = NodeGet(*c->tb, "nodeA", "/metrics").body;
  // The metrics say what happened: every round's expired watches and restarts relisted, and
  // the failed requests and dropped connections were counted as errors.
  for (const char* cluster : {"cluster-a", "cluster-b"}) {
    const std::string label = std::string(R"({cluster=")") + cluster + "\"}";
    EXPECT_GE(MetricValue(m, "xlb_kube_relists_total" + label), 2.0 * 3) << m;
    EXPECT_GT(MetricValue(m, "xlb_kube_errors_total" + label), 0.0) << m;
  }
  std::printf(
      "[ chaos ] API servers: connections dropped, watches expired, 429/503/410, "
      "restarted with a new history, twice each on both: %s; %ld syncs after the first, "
      "%ld with writes; %.0f API requests answered; cluster-a relists %.0f, errors %.0f\n",
      summary.c_str(), syncs, writing,
      static_cast<double>(api_a.requests_served() + api_b.requests_served()),
      MetricValue(m, R"(xlb_kube_relists_total{cluster="cluster-a"})"),
      MetricValue(m, R"(xlb_kube_errors_total{cluster="cluster-a"})"));
}

// --- start-up failures: a clear message, a non-zero status, nothing touched ---

TEST(AgentStartup, FailsClearlyOnBadFlagsMissingFilesBadPolicyAndMissingUplink) {
  char dir_template[] = "/tmp/xlb-agent-startup-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string config = dir + "/config.yaml";
  const std::string policy = dir + "/policy.yaml";
  WriteFileAtomically(config, TestbedConfig("cluster-a"));
  WriteFileAtomically(policy, VirtualService("seventy", 30));
  const std::string pins =
      std::string(kPinRoot) + "/" + kPinPrefix + std::to_string(::getpid()) + "-startup";

  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, 2, "one of --config FILE and --kube FILE is required"},
      {{"--config", config, "--encap", "ipip"}, 2, "--encap ipip: vxlan or gue"},
      {{"--config", config, "--bogus"}, 2, "unknown option --bogus"},
      {{"--config", dir + "/missing.yaml", "--pin-dir", pins}, 1, dir + "/missing.yaml"},
      {{"--config", config, "--policy", policy, "--pin-dir", pins},
       1,
       policy + ": document 1: spec.tcp[0].route[0].weight"},
      {{"--config", config, "--pin-dir", pins, "--uplink", "xlbnosuch0"}, 1, "--uplink xlbnosuch0"},
      {{"--config", config, "--pin-dir", pins, "--cgroup", dir},
       1,
       "--cgroup " + dir + " is not a cgroup v2 directory"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> argv = {XLB_AGENT_BIN};
    argv.insert(argv.end(), k.args.begin(), k.args.end());
    CommandResult r = testbed::RunIn("", argv, seconds(20));
    EXPECT_EQ(r.exit_code, k.status) << r.Describe();
    EXPECT_NE(r.err.find(k.message), std::string::npos) << r.Describe();
  }
  // --log-format json: every line an object a log shipper parses, the message in `msg`.
  {
    CommandResult r = testbed::RunIn(
        "", {XLB_AGENT_BIN, "--log-format", "json", "--config", config, "--policy", policy,
             "--pin-dir", pins},
        seconds(20));
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    std::istringstream lines(r.err);
    std::string line;
    int n = 0;
    bool named = false;
    while (std::getline(lines, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << line;
      EXPECT_EQ(j["logger"], "xlb-agent") << line;
      EXPECT_TRUE(j["level"] == "warn" || j["level"] == "info") << line;
      EXPECT_EQ(j["ts"].get<std::string>().back(), 'Z') << line;
      named |= j["msg"].get<std::string>().find(policy + ": document 1: spec.tcp[0].route[0].weight") != std::string::npos;
      ++n;
    }
    EXPECT_GT(n, 0) << r.Describe();
    EXPECT_TRUE(named) << r.Describe();
  }
  struct stat st {};
  EXPECT_NE(::stat(pins.c_str(), &st), 0) << "nothing was loaded or pinned: " << pins;
  (void)RemovePins(pins);
  std::remove(config.c_str());
  std::remove(policy.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace xlb::agent_test
