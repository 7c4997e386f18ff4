// End to end across two clusters: real TCP from the client (or from a pod) to a VIP, through
// the real xlb_xdp on the nodes' uplinks and xlb_tc on their pod veths, to echo servers that
// say who they are and whom they saw. Cluster A's pods are local to nodeA, where the VIPs
// are routed; cluster B's are reached through the tunnel to nodeB (VXLAN or GUE), and nodeC
// (no xlb, a stock Linux vxlan device) proves that what xlb sends is standard VXLAN.
//
// Every test checks what a user of the service would: every connection completes, the
// split matches the weights, the backend saw the caller's own address, and the caller only
// ever talked to the VIP. Needs root (CI is root); without it the testbed cannot come up
// and the tests fail. Every namespace goes with the Testbed, also when a test fails.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testbed.h"
#include "tshark.h"
#include "wire.h"
#include "xlb_node.h"

namespace xlb::testbed {
namespace {

using Counts = std::map<std::string, long>;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::map<std::string, uint32_t> k70To30 = {{"cluster-a", 70}, {"cluster-b", 30}};
const std::vector<Endpoint> kFourPods = {{"podA1"}, {"podA2"}, {"podB1"}, {"podB2"}};
constexpr long kConnections = 1000;
constexpr double kTolerancePp = 5.0;

// XLB_E2E_PAUSE=SECONDS: after a failure, keep the testbed (and xlb) up that long, so that
// `testbed.sh exec --prefix PREFIX ROLE -- tcpdump ...` can look at it. Off by default.
void PauseForDebugging(const Testbed& tb) {
  const char* pause = std::getenv("XLB_E2E_PAUSE");
  if (pause != nullptr && std::atoi(pause) > 0) {
    std::printf("XLB_E2E_PAUSE: testbed %s stays up for %s s\n", tb.prefix().c_str(), pause);
    std::fflush(stdout);
    std::this_thread::sleep_for(seconds(std::atoi(pause)));
  }
}

// The testbed with xlb on nodeA and nodeB. Members go in reverse: the nodes detach inside
// their namespaces before the testbed removes them.
struct TwoClusters {
  std::unique_ptr<Testbed> tb;
  std::unique_ptr<XlbNode> node_a;
  std::unique_ptr<XlbNode> node_b;

  TwoClusters() = default;
  TwoClusters(TwoClusters&&) = default;
  ~TwoClusters() {
    if (tb && ::testing::Test::HasFailure()) {
      PauseForDebugging(*tb);
    }
  }

  // Every node's agent programs every service, as the DaemonSet will.
  void SetService(const ServiceSpec& spec) {
    node_a->SetService(spec);
    node_b->SetService(spec);
  }
  std::string Reasons() const { return node_a->Reasons() + "\n" + node_b->Reasons(); }
};

TwoClusters Up(uint8_t encap = XLB_ENCAP_VXLAN) {
  TwoClusters c;
  c.tb = Testbed::Up();
  XlbNodeOptions o;
  o.encap = encap;
  c.node_a = XlbNode::Start(*c.tb, "nodeA", o);
  c.node_b = XlbNode::Start(*c.tb, "nodeB", o);
  return c;
}

ServiceSpec Service7030(Family f) {
  ServiceSpec s;
  s.vip = Vip(f);
  s.weights = k70To30;
  s.endpoints = kFourPods;
  return s;
}

// Replies by cluster, in percent of the successful ones.
std::map<std::string, double> ClusterShares(const ProbeResult& r) {
  std::map<std::string, double> shares;
  for (const auto& [id, n] : r.ids) {
    shares[ClusterOf(id)] += r.ok > 0 ? 100.0 * static_cast<double>(n) / r.ok : 0;
  }
  return shares;
}

std::string SharesText(const ProbeResult& r) {
  std::string s;
  char buf[64];
  for (const auto& [cluster, pct] : ClusterShares(r)) {
    std::snprintf(buf, sizeof(buf), "%s%s %.1f%%", s.empty() ? "" : ", ", cluster.c_str(), pct);
    s += buf;
  }
  s += " |";
  for (const auto& [id, n] : r.ids) {
    std::snprintf(buf, sizeof(buf), " %s %.1f%%", id.c_str(), 100.0 * n / std::max(r.ok, 1L));
    s += buf;
  }
  return s;
}

// What every test asks of every reply: it came from the VIP (the connected socket would
// not take anything else, and the probe records its peer), and the backend saw `from`'s
// own address, not a node's or a NAT's. The backends answered on their own addresses.
void ExpectOnlyVipAndRealClient(const Testbed& tb, const ProbeResult& r, const std::string& from,
                                const std::string& vip, Family f) {
  EXPECT_EQ(r.peers, (Counts{{HostPort(vip, tb.port()), r.ok}})) << r.Describe();
  EXPECT_EQ(r.clients, (Counts{{Address(from, f), r.ok}})) << r.Describe();
  std::set<std::string> backend_addresses, answered_on;
  for (const auto& [id, n] : r.ids) {
    backend_addresses.insert(HostPort(Address(id, f), tb.port()));
  }
  for (const auto& [local, n] : r.locals) {
    answered_on.insert(local);
  }
  EXPECT_EQ(answered_on, backend_addresses) << r.Describe();
}

// n connections from `from` to the VIP: all complete, the clusters' shares are within
// kTolerancePp of `want` (percent by cluster), and the kernel's per-backend new-flow
// counters on the balancing node agree with what the backends reported.
ProbeResult ExpectSplit(TwoClusters& c, const std::string& from, Family f,
                        const std::map<std::string, double>& want, long n = kConnections) {
  const std::string vip = Vip(f);
  // A few first, with a short timeout: a broken path fails here in seconds, not after
  // 1,000 timeouts.
  ProbeResult canary = c.tb->Probe(from, "tcp", vip, 20, 4, 1000);
  if (canary.ok != 20) {
    ADD_FAILURE() << "the first 20 connections: " << canary.Describe() << "\n" << c.Reasons();
    return canary;
  }
  std::map<std::string, uint64_t> before = c.node_a->NewFlowsByPod(vip);
  auto start = std::chrono::steady_clock::now();
  ProbeResult r = c.tb->Probe(from, "tcp", vip, n, 8, 3000);
  long ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ shares ] %s %s -> %s: %ld/%ld ok in %ld ms: %s\n", FamilyName(f), from.c_str(),
              vip.c_str(), r.ok, n, ms, SharesText(r).c_str());
  EXPECT_EQ(r.count, n) << r.Describe();
  EXPECT_EQ(r.ok, n) << r.Describe() << "\n" << c.Reasons();
  EXPECT_TRUE(r.errors.empty()) << r.Describe();
  std::map<std::string, double> shares = ClusterShares(r);
  for (const auto& [cluster, pct] : want) {
    EXPECT_NEAR(shares[cluster], pct, kTolerancePp) << cluster << ": " << SharesText(r);
  }
  for (const auto& [cluster, pct] : shares) {
    EXPECT_TRUE(want.count(cluster)) << "replies from " << cluster << ": " << SharesText(r);
  }
  ExpectOnlyVipAndRealClient(*c.tb, r, from, vip, f);

  // Each connection is one new flow in the node that balanced it (nodeA: the VIP is routed
  // there, and clientA lives there), counted on the backend the echo server names.
  std::map<std::string, uint64_t> after = c.node_a->NewFlowsByPod(vip);
  Counts kernel;
  for (const auto& [pod, flows] : after) {
    if (flows != before[pod]) {
      kernel[pod] = static_cast<long>(flows - before[pod]);
    }
  }
  EXPECT_EQ(kernel, r.ids) << "nodeA's per-backend new_flows vs the echo servers\n" << c.Reasons();
  return r;
}

// tcpdump in a namespace of the testbed, then tshark (checksum validation on) on what it saw.
class Capture {
 public:
  Capture(Testbed& tb, const std::string& role, const std::string& dev, const std::string& filter)
      : pcap_(tb.state_dir() + "/" + role + "-" + dev + ".pcap") {
    // -B: a buffer for a burst of 1,000 connections in well under a second. -Z root: the
    // file goes into the testbed's private directory (gone with it, even after a crash).
    std::vector<std::string> argv = {"tcpdump", "-i",   dev,  "-n", "-U", "-B", "32768",
                                     "-Z",      "root", "-s", "0",  "-w", pcap_};
    std::istringstream words(filter);
    for (std::string w; words >> w;) {
      argv.push_back(w);
    }
    tcpdump_ = tb.Spawn(role, argv);
    auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (tcpdump_ && !Listening() && tcpdump_->Running() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  ~Capture() { std::remove(pcap_.c_str()); }

  bool Listening() const {
    return tcpdump_ && tcpdump_->ErrSoFar().find("listening on") != std::string::npos;
  }
  std::string Describe() const { return tcpdump_ ? tcpdump_->ErrSoFar() : "tcpdump did not start"; }

  // Stops tcpdump and decodes the file. tcpdump drops what it has not read from its buffer
  // when it is told to stop, so it first catches up with the burst: the file (written per
  // packet, -U) has to stay the same size for a second. A fixed pause would be too short on
  // a loaded machine.
  std::vector<pkt::TsharkFrame> Decode(std::vector<std::string> protocols,
                                       std::vector<std::string> args = {}) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(60);
    std::error_code ec;
    uintmax_t size = std::filesystem::file_size(pcap_, ec);
    auto unchanged_since = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - unchanged_since < seconds(1) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
      const uintmax_t now_size = std::filesystem::file_size(pcap_, ec);
      if (now_size != size) {
        size = now_size;
        unchanged_since = std::chrono::steady_clock::now();
      }
    }
    tcpdump_->Stop();
    return pkt::TsharkDecode(pcap_, pkt::TsharkOptions{.extra_protocols = std::move(protocols),
                                                       .extra_args = std::move(args)});
  }

 private:
  std::string pcap_;
  std::unique_ptr<Process> tcpdump_;
};

// --- 1, 3, 6: north-south, 70 % cluster A (local) / 30 % cluster B (tunnelled) ---

TEST(NorthSouth, ThousandConnectionsSplit70To30Ipv4) {
  TwoClusters c = Up();
  c.SetService(Service7030(Family::kV4));
  ExpectSplit(c, "client", Family::kV4, {{"cluster-a", 70}, {"cluster-b", 30}});
}

TEST(NorthSouth, ThousandConnectionsSplit70To30Ipv6) {
  TwoClusters c = Up();
  c.SetService(Service7030(Family::kV6));
  ExpectSplit(c, "client", Family::kV6, {{"cluster-a", 70}, {"cluster-b", 30}});
}

// --- 2: east-west, from a pod of cluster A, balanced by TC on its veth ---

TEST(EastWest, ThousandConnectionsFromAPodOfClusterASplit70To30Ipv4) {
  TwoClusters c = Up();
  c.SetService(Service7030(Family::kV4));
  ExpectSplit(c, "clientA", Family::kV4, {{"cluster-a", 70}, {"cluster-b", 30}});
}

TEST(EastWest, ThousandConnectionsFromAPodOfClusterASplit70To30Ipv6) {
  TwoClusters c = Up();
  c.SetService(Service7030(Family::kV6));
  ExpectSplit(c, "clientA", Family::kV6, {{"cluster-a", 70}, {"cluster-b", 30}});
}

// --- 4: a long-lived connection keeps its backend through weight changes and removals ---

// Starts held connections until one sits on a backend of each cluster; returns them by the
// backend they greeted from.
std::map<std::string, std::unique_ptr<Process>> HoldOnBothClusters(Testbed& tb,
                                                                   const std::string& vip,
                                                                   long lines, long interval_ms) {
  std::map<std::string, std::unique_ptr<Process>> holds;
  std::set<std::string> clusters;
  for (int attempt = 0; attempt < 20 && clusters.size() < 2; ++attempt) {
    std::unique_ptr<Process> p = tb.StartHold("client", vip, lines, interval_ms);
    if (!p) {
      break;
    }
    std::string id;
    auto deadline = std::chrono::steady_clock::now() + seconds(5);
    while (id.empty() && std::chrono::steady_clock::now() < deadline && p->Running()) {
      std::string err = p->ErrSoFar();
      size_t at = err.find("hold: greeting id=");
      if (at != std::string::npos) {
        size_t end = err.find('\n', at);
        if (end != std::string::npos) {
          id = err.substr(at + 18, end - at - 18);
        }
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (id.empty()) {
      ADD_FAILURE() << "a held connection got no greeting: " << p->Stop().Describe();
      break;
    }
    if (clusters.insert(ClusterOf(id)).second) {
      holds.emplace(id, std::move(p));
    }  // else: a second one on that cluster; its destructor ends it
  }
  return holds;
}

void HeldConnectionsSurviveChanges(Family f) {
  TwoClusters c = Up();
  const std::string vip = Vip(f);
  c.SetService(Service7030(f));
  // 80 lines, one every 100 ms: the connections outlive every change below.
  auto holds = HoldOnBothClusters(*c.tb, vip, 80, 100);
  ASSERT_EQ(holds.size(), 2u) << "could not hold a connection on each cluster";
  std::set<std::string> held;
  for (const auto& [id, p] : holds) {
    held.insert(id);
  }
  std::printf("[ hold   ] %s: held on", FamilyName(f));
  for (const auto& id : held) {
    std::printf(" %s", id.c_str());
  }
  std::printf("\n");

  // All new flows to cluster B; the connection on cluster A stays where it is.
  ServiceSpec to_b = Service7030(f);
  to_b.weights = {{"cluster-a", 0}, {"cluster-b", 100}};
  c.SetService(to_b);
  ProbeResult after_weights = c.tb->Probe("client", "tcp", vip, 200, 8, 3000);
  EXPECT_EQ(after_weights.ok, 200) << after_weights.Describe() << "\n" << c.Reasons();
  EXPECT_NEAR(ClusterShares(after_weights)["cluster-b"], 100.0, 0.01) << SharesText(after_weights);

  // Remove a backend that holds none of them (one of cluster B's if it can: the table then
  // really moves slots between the remaining backends of the cluster with all the weight).
  std::string removed;
  for (const char* pod : {"podB1", "podB2", "podA1", "podA2"}) {
    if (!held.count(pod)) {
      removed = pod;
      break;
    }
  }
  ServiceSpec without = to_b;
  std::erase_if(without.endpoints, [&](const Endpoint& e) { return e.pod == removed; });
  c.SetService(without);
  ProbeResult after_removal = c.tb->Probe("client", "tcp", vip, 200, 8, 3000);
  EXPECT_EQ(after_removal.ok, 200) << after_removal.Describe() << "\n" << c.Reasons();
  EXPECT_EQ(after_removal.ids.count(removed), 0u)
      << removed << " was removed; " << SharesText(after_removal);
  EXPECT_NEAR(ClusterShares(after_removal)["cluster-b"], 100.0, 0.01) << SharesText(after_removal);
  std::printf("[ hold   ] %s: after 0/100 %s; after removing %s %s\n", FamilyName(f),
              SharesText(after_weights).c_str(), removed.c_str(),
              SharesText(after_removal).c_str());

  for (auto& [id, p] : holds) {
    EXPECT_TRUE(p->Running()) << "the held connection on " << id
                              << " ended before the changes were done; the test proves nothing";
  }
  for (auto& [id, p] : holds) {
    SCOPED_TRACE("held on " + id);
    ProbeResult r = ParseProbe(p->Wait(seconds(30)));
    EXPECT_EQ(r.count, 81) << r.Describe();  // the greeting and 80 lines
    EXPECT_EQ(r.ok, 81) << r.Describe() << "\n" << c.Reasons();
    EXPECT_TRUE(r.same_backend) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{id, 81}})) << r.Describe();
    EXPECT_EQ(r.clients, (Counts{{Address("client", f), 81}})) << r.Describe();
    EXPECT_EQ(r.peers, (Counts{{HostPort(vip, c.tb->port()), 81}})) << r.Describe();
  }
}

TEST(Hold, LongLivedConnectionsKeepTheirBackendThroughWeightChangeAndRemovalIpv4) {
  HeldConnectionsSurviveChanges(Family::kV4);
}

TEST(Hold, LongLivedConnectionsKeepTheirBackendThroughWeightChangeAndRemovalIpv6) {
  HeldConnectionsSurviveChanges(Family::kV6);
}

// --- 5: no ready endpoint in cluster A: its share goes to cluster B, nothing fails ---

void ClusterANotReady(Family f) {
  TwoClusters c = Up();
  ServiceSpec s = Service7030(f);
  for (Endpoint& e : s.endpoints) {
    e.ready = ClusterOf(e.pod) != "cluster-a";
  }
  c.SetService(s);
  ProbeResult r = ExpectSplit(c, "client", f, {{"cluster-b", 100}}, 500);
  EXPECT_NEAR(100.0 * r.ids["podB1"] / std::max(r.ok, 1L), 50.0, 8.0) << SharesText(r);
}

TEST(Failover, ClusterANotReadySendsEveryNewConnectionToClusterBIpv4) {
  ClusterANotReady(Family::kV4);
}

TEST(Failover, ClusterANotReadySendsEveryNewConnectionToClusterBIpv6) {
  ClusterANotReady(Family::kV6);
}

// --- 8: GUE between two xlb nodes ---

// Also on the wire between the router and nodeB: GUE (UDP port 6080, decoded as the IP packet
// it carries) both ways, the inner packets between the client and cluster B's pods, every
// IPv4 and TCP checksum good and every outer UDP checksum good or absent (zero, which IPv4
// allows).
TEST(Gue, ThousandConnectionsSplit70To30Ipv4) {
  TwoClusters c = Up(XLB_ENCAP_GUE);
  c.SetService(Service7030(Family::kV4));
  Capture capture(*c.tb, "router", "eth-nodeB", "udp port 6080");
  ASSERT_TRUE(capture.Listening()) << capture.Describe();
  ProbeResult r = ExpectSplit(c, "client", Family::kV4, {{"cluster-a", 70}, {"cluster-b", 30}});
  std::vector<pkt::TsharkFrame> frames = capture.Decode({}, {"-d", "udp.port==6080,ip"});
  const std::string client = Address("client", Family::kV4);
  const std::set<std::string> pods = {Address("podB1", Family::kV4), Address("podB2", Family::kV4)};
  long to_b = 0, from_b = 0;
  for (const pkt::TsharkFrame& f : frames) {
    ASSERT_EQ(f.ip_src.size(), 2u) << "frame " << f.number << ": " << f.protocols;
    to_b += f.ip_src[0] == "198.18.1.2" && f.ip_dst[0] == "198.18.2.2" && f.ip_src[1] == client &&
                    pods.count(f.ip_dst[1])
                ? 1
                : 0;
    from_b += f.ip_src[0] == "198.18.2.2" && f.ip_dst[0] == "198.18.1.2" &&
                      pods.count(f.ip_src[1]) && f.ip_dst[1] == client
                  ? 1
                  : 0;
    long tcp = 0;
    for (const pkt::TsharkChecksum& sum : f.checksums) {
      // Outer and inner IPv4 and the inner TCP: verified good; the outer UDP: good or zero.
      const bool zero_ok = sum.layer == "udp" && sum.status == "Not present";
      EXPECT_TRUE(sum.status == "Good" || zero_ok)
          << "frame " << f.number << " " << sum.field << ": " << sum.status;
      tcp += sum.layer == "tcp" ? 1 : 0;
    }
    EXPECT_EQ(tcp, 1) << "frame " << f.number << ": " << f.protocols;
    EXPECT_TRUE(f.malformed.empty()) << "frame " << f.number << ": " << f.malformed[0];
  }
  const long to_cluster_b = r.ids["podB1"] + r.ids["podB2"];
  std::printf(
      "[ gue    ] captured %zu frames on port 6080: %ld nodeA->nodeB, %ld back, %zu bad "
      "checksums\n",
      frames.size(), to_b, from_b, pkt::CountBadChecksums(frames));
  // As in the interop test: at least three segments each way per connection to cluster B.
  EXPECT_GE(to_b, 3 * to_cluster_b);
  EXPECT_GE(from_b, 3 * to_cluster_b);
  EXPECT_EQ(to_b + from_b, static_cast<long>(frames.size()));
  EXPECT_EQ(pkt::CountBadChecksums(frames), 0u);
}

TEST(Gue, ThousandConnectionsSplit70To30Ipv6) {
  TwoClusters c = Up(XLB_ENCAP_GUE);
  c.SetService(Service7030(Family::kV6));
  ExpectSplit(c, "client", Family::kV6, {{"cluster-a", 70}, {"cluster-b", 30}});
}

// --- 9: more than an MTU through the tunnel (the MSS is clamped to fit the encapsulation) ---

// Outer headers the tunnel adds to an inner IP packet (IPv4 outer when the backend is IPv4).
int TunnelOverhead(uint8_t encap, Family f) {
  int outer_ip = f == Family::kV4 ? 20 : 40;
  return outer_ip + 8 + (encap == XLB_ENCAP_VXLAN ? 8 + 14 : 0);
}

// 2 MiB each way between the client and one backend through the VIP, in full-size segments:
// the backend's segments reach xlb_tc as non-linear skbs (and GSO packets), as from any pod.
ProbeResult Bulk(TwoClusters& c, const std::string& pod, Family f, const char* what) {
  ServiceSpec s;
  s.vip = Vip(f);
  s.weights = {{ClusterOf(pod), 100}};
  s.endpoints = {{pod}};
  c.SetService(s);
  constexpr long kBytes = 2 << 20;
  auto start = std::chrono::steady_clock::now();
  ProbeResult r =
      c.tb->Probe("client", "bulk", s.vip, 1, 1, 10000, {"--bytes", std::to_string(kBytes)});
  long ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[ bulk   ] %s %s: up %ld down %ld bytes in %ld ms, client's MSS send %ld receive "
      "%ld\n",
      what, FamilyName(f), r.bytes_up, r.bytes_down, ms, r.snd_mss, r.rcv_mss);
  EXPECT_EQ(r.ok, 3) << r.Describe() << "\n" << c.Reasons();
  EXPECT_GE(r.bytes_up, kBytes) << r.Describe();
  EXPECT_EQ(r.bytes_down, kBytes) << r.Describe();
  EXPECT_EQ(r.ids, (Counts{{pod, 3}})) << r.Describe();
  ExpectOnlyVipAndRealClient(*c.tb, r, "client", s.vip, f);
  return r;
}

TEST(Bulk, LocalBackendAnswersInFullSizeSegmentsIpv4) {
  TwoClusters c = Up();
  Bulk(c, "podA1", Family::kV4, "local");
}

TEST(Bulk, LocalBackendAnswersInFullSizeSegmentsIpv6) {
  TwoClusters c = Up();
  Bulk(c, "podA1", Family::kV6, "local");
}

void BulkThroughTunnel(uint8_t encap, Family f) {
  TwoClusters c = Up(encap);
  ProbeResult r = Bulk(c, "podB1", f, encap == XLB_ENCAP_VXLAN ? "vxlan" : "gue");
  // What the client may put in one segment once the SYN-ACK has come back through xlb:
  // a full-size segment plus the tunnel's headers fits the 1500-byte transit links.
  const int inner_headers = f == Family::kV4 ? 40 : 60;
  EXPECT_GT(r.snd_mss, 0);
  EXPECT_LE(r.snd_mss + inner_headers + TunnelOverhead(encap, f), c.tb->transit_mtu())
      << "the MSS the client uses does not fit the tunnel";
}

TEST(Mss, BulkTransferThroughVxlanTunnelIpv4) {
  BulkThroughTunnel(XLB_ENCAP_VXLAN, Family::kV4);
}

TEST(Mss, BulkTransferThroughVxlanTunnelIpv6) {
  BulkThroughTunnel(XLB_ENCAP_VXLAN, Family::kV6);
}

TEST(Mss, BulkTransferThroughGueTunnelIpv4) {
  BulkThroughTunnel(XLB_ENCAP_GUE, Family::kV4);
}

// --- 7: interop: xlb's VXLAN decapsulated by a stock Linux vxlan device on nodeC ---

void InteropWithStockVxlan(Family f) {
  Options o;
  o.node_c = true;
  auto tb = Testbed::Up(o);
  XlbNodeOptions xo;
  xo.encap = XLB_ENCAP_VXLAN;
  auto node_a = XlbNode::Start(*tb, "nodeA", xo);
  ServiceSpec s;
  s.vip = Vip(f);
  s.weights = {{"cluster-c", 100}};
  s.endpoints = {{"podC1"}};
  node_a->SetService(s);

  // Both directions of the tunnel, on the router's link to nodeC.
  Capture capture(*tb, "router", "eth-nodeC", "udp port 4789");
  ASSERT_TRUE(capture.Listening()) << capture.Describe();

  // A few with a short timeout first: when nodeC refuses everything, the capture below says
  // why within seconds instead of after 200 timeouts.
  ProbeResult r = tb->Probe("client", "tcp", s.vip, 10, 4, 1000);
  if (r.ok == 10) {
    r = tb->Probe("client", "tcp", s.vip, 200, 4, 3000);
  }
  std::printf("[ interop] %s: podC1 behind nodeC's Linux vxlan: %ld/%ld ok\n", FamilyName(f), r.ok,
              r.count);
  EXPECT_EQ(r.ok, 200) << r.Describe() << "\n" << node_a->Reasons();
  EXPECT_EQ(r.ids, (Counts{{"podC1", r.ok}})) << r.Describe();
  ExpectOnlyVipAndRealClient(*tb, r, "client", s.vip, f);

  std::vector<pkt::TsharkFrame> frames = capture.Decode({"vxlan"});
  const std::string inner =
      f == Family::kV4 ? ":vxlan:eth:ethertype:ip:tcp" : ":vxlan:eth:ethertype:ipv6:tcp";
  const std::string node_a_addr = Address("nodeA", f), node_c_addr = Address("nodeC", f);
  const std::string client = Address("client", f), pod = Address("podC1", f);
  long vxlan = 0, to_c = 0, from_c = 0;
  for (const pkt::TsharkFrame& fr : frames) {
    if (fr.protocols.find(inner) == std::string::npos) {
      continue;
    }
    ++vxlan;
    // Outer then inner addresses: nodeA -> nodeC carries client -> podC1 (DNATed), the
    // answer nodeC -> nodeA carries podC1 -> client (reverse NAT is nodeA's, after decap).
    const std::vector<std::string>& src = f == Family::kV4 ? fr.ip_src : fr.ipv6_src;
    const std::vector<std::string>& dst = f == Family::kV4 ? fr.ip_dst : fr.ipv6_dst;
    if (src.size() == 2 && src[0] == node_a_addr && dst[0] == node_c_addr && src[1] == client &&
        dst[1] == pod) {
      ++to_c;
    }
    if (src.size() == 2 && src[0] == node_c_addr && dst[0] == node_a_addr && src[1] == pod &&
        dst[1] == client) {
      ++from_c;
    }
    EXPECT_TRUE(fr.malformed.empty()) << "frame " << fr.number << ": " << fr.malformed[0];
  }
  std::printf(
      "[ interop] %s: captured %zu frames, %ld VXLAN (%ld nodeA->nodeC, %ld back), %zu bad "
      "checksums\n",
      FamilyName(f), frames.size(), vxlan, to_c, from_c, pkt::CountBadChecksums(frames));
  // A completed connection is at least SYN, ACK and FIN toward podC1, and SYN-ACK, the
  // greeting and FIN back from it, each inside VXLAN.
  EXPECT_GE(to_c, 3 * r.ok);
  EXPECT_GE(from_c, 3 * r.ok);
  EXPECT_EQ(vxlan, static_cast<long>(frames.size())) << "frames on port 4789 that are not VXLAN";
  EXPECT_EQ(pkt::CountBadChecksums(frames), 0u);
  for (const pkt::TsharkFrame& fr : frames) {
    if (pkt::CountBadChecksums(fr) != 0) {
      ADD_FAILURE() << "first frame with a bad checksum: " << fr.number << " "
                    << fr.checksum_problems[0].layer << " " << fr.checksum_problems[0].field << " "
                    << fr.checksum_problems[0].status << " " << fr.checksum_problems[0].message;
      break;
    }
  }
}

TEST(Interop, StockLinuxVxlanOnNodeCServesBackendPodC1Ipv4) {
  InteropWithStockVxlan(Family::kV4);
}

// Over an IPv6 underlay, Linux refuses a VXLAN packet whose UDP checksum is zero unless
// told otherwise (udp6zerocsumrx), as RFC 8200 wants of UDP over IPv6.
TEST(Interop, StockLinuxVxlanOnNodeCServesBackendPodC1Ipv6) {
  InteropWithStockVxlan(Family::kV6);
}

}  // namespace
}  // namespace xlb::testbed
