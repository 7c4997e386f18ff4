// A flood of spoofed SYNs to a VIP, on the two-cluster testbed with xlb on nodeA and nodeB:
// real TCP connections held through the VIP to a local backend (podA1) and to one behind the
// tunnel (podB1) must keep their backend and keep talking in both directions, and new
// connections must keep being accepted while the flood runs.
//
// The flood is sent from the router's side of nodeA's uplink (AF_PACKET), from sources in
// 198.19.0.0/16 that nothing in the testbed uses, to the held service's port and to the echo
// service's, with eight times as many distinct flows as the nodes' conntrack holds (the nodes
// are loaded with small tables, so this takes well under a second). After it, the held
// service gets two more backends, so a held flow that lost its conntrack entry would be
// placed again by a different Maglev table; then every held connection's server speaks first
// (its answer needs its reverse-NAT or tunnel entry), and then its client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "builder.h"
#include "testbed.h"
#include "xlb_node.h"

namespace xlb::testbed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kHeldPort = 9090;
constexpr uint32_t kCtEntries = 8192;        // conntrack, replies (per node)
constexpr uint32_t kHalfOpenEntries = 4096;  // half-open flows (per node)
constexpr int kHeld = 48;
constexpr uint32_t kFloodFlows = 8 * kCtEntries;
constexpr long kNewConnections = 2000;
// The flood's pace: the tables turn over many times a second, while the testbed's two CPUs
// still have time for the handshakes (at full speed the pods' own SYN handling starves them).
constexpr double kFloodFramesPerSecond = 40000;

// A file descriptor closed with its owner.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// A listener on kHeldPort in a pod's namespace (the socket keeps the namespace it was made in).
Fd Listen(const Testbed& tb, const std::string& pod) {
  Fd l;
  RunInNetns(tb.NsPath(pod), [&] {
    l = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kHeldPort);
    if (::bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 || ::listen(l.fd, 1024) < 0) {
      throw std::runtime_error(Errno("listen in " + pod));
    }
  });
  return l;
}

// One held connection: the client's end, the server's end and the pod that accepted it.
struct Held {
  Fd client;
  Fd server;
  std::string pod;
  uint16_t client_port = 0;
};

// Writes line on every `from` end, then waits (2 s in all) for it on every `to` end; returns
// what each connection got (the line, or why not).
std::vector<std::string> Exchange(std::vector<Held>& held, bool server_first,
                                  const std::string& tag) {
  std::vector<std::string> got(held.size());
  for (size_t i = 0; i < held.size(); ++i) {
    int from = server_first ? held[i].server.fd : held[i].client.fd;
    std::string line = tag + "-" + std::to_string(i) + "\n";
    if (::send(from, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
      got[i] = Errno("send");
    }
  }
  const auto until = Clock::now() + milliseconds(2000);
  std::vector<std::string> buf(held.size());
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t i = 0; i < held.size(); ++i) {
      if (got[i].empty()) {
        fds.push_back({server_first ? held[i].client.fd : held[i].server.fd, POLLIN, 0});
        which.push_back(i);
      }
    }
    auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
    if (fds.empty() || left <= 0) break;
    if (::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0) break;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      size_t i = which[k];
      char b[256];
      ssize_t n = ::recv(fds[k].fd, b, sizeof(b), MSG_DONTWAIT);
      if (n <= 0) {
        got[i] = n == 0 ? "closed" : Errno("recv");
        continue;
      }
      buf[i].append(b, static_cast<size_t>(n));
      if (buf[i].find('\n') != std::string::npos) got[i] = buf[i];
    }
  }
  for (size_t i = 0; i < held.size(); ++i) {
    if (got[i].empty()) got[i] = "nothing within 2 s";
  }
  return got;
}

// How many held connections did not carry the line each way they were asked to.
int Broken(std::vector<Held>& held, bool server_first, const std::string& tag,
           std::string* first_failure) {
  std::vector<std::string> got = Exchange(held, server_first, tag);
  int broken = 0;
  for (size_t i = 0; i < held.size(); ++i) {
    if (got[i] != tag + "-" + std::to_string(i) + "\n") {
      if (broken++ == 0) {
        *first_failure = (server_first ? "server " : "client ") + held[i].pod + " port " +
                         std::to_string(held[i].client_port) + ": " + got[i];
      }
    }
  }
  return broken;
}

std::array<uint8_t, 6> MacOf(const Testbed& tb, const std::string& role, const char* ifname) {
  std::array<uint8_t, 6> mac{};
  RunInNetns(tb.NsPath(role), [&] {
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (::ioctl(s.fd, SIOCGIFHWADDR, &ifr) < 0) throw std::runtime_error(Errno("SIOCGIFHWADDR"));
    std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  });
  return mac;
}

// The flood: spoofed SYNs from 198.19.0.0/16, flow i from address i % 65536 and port
// 1024 + i / 65536, alternately to the held port and the echo port.
std::vector<pkt::Bytes> FloodFrames(const pkt::Mac& src_mac, const pkt::Mac& dst_mac,
                                    const std::string& vip) {
  std::vector<pkt::Bytes> frames;
  frames.reserve(kFloodFlows);
  for (uint32_t i = 0; i < kFloodFlows; ++i) {
    char src[32];
    std::snprintf(src, sizeof(src), "198.19.%u.%u", (i >> 8) & 0xff, i & 0xff);
    auto sport = static_cast<uint16_t>(1024 + (i >> 16));
    uint16_t dport = i % 2 ? kHeldPort : kEchoPort;
    frames.push_back(pkt::Packet()
                         .eth(src_mac, dst_mac)
                         .ipv4(src, vip)
                         .tcp(sport, dport, pkt::kTcpSyn, {.seq = i * 7919u})
                         .build());
  }
  return frames;
}

struct FloodResult {
  uint64_t frames = 0;
  double seconds = 0;
};

// Sends the frames out of the router's port toward nodeA until stop is set and every frame
// has gone once; sent counts them as they go.
FloodResult Flood(const Testbed& tb, const std::vector<pkt::Bytes>& frames,
                  const std::atomic<bool>& stop, std::atomic<uint64_t>& sent) {
  FloodResult r;
  Fd s;
  sockaddr_ll to{};
  RunInNetns(tb.NsPath("router"), [&] {
    s = Fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (s.fd < 0) throw std::runtime_error(Errno("AF_PACKET socket"));
    int one = 1;
    ::setsockopt(s.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(::if_nametoindex("eth-nodeA"));
    to.sll_halen = 6;
  });
  const auto start = Clock::now();
  for (size_t i = 0; !stop || r.frames < frames.size(); ++i) {
    if (i % 256 == 0) {
      std::this_thread::sleep_until(
          start + std::chrono::microseconds(static_cast<int64_t>(1e6 * i / kFloodFramesPerSecond)));
    }
    const pkt::Bytes& f = frames[i % frames.size()];
    if (::sendto(s.fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) > 0) {
      ++r.frames;
      sent.store(r.frames, std::memory_order_relaxed);
    } else if (errno == ENOBUFS || errno == EAGAIN) {
      std::this_thread::yield();
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

TEST(SynFlood, HeldConnectionsKeepTheirBackendAndNewOnesAreAccepted) {
  auto tb = Testbed::Up();
  XlbNodeOptions o;
  o.max_ct_entries = kCtEntries;
  o.max_half_open_entries = kHalfOpenEntries;
  auto node_a = XlbNode::Start(*tb, "nodeA", o);
  auto node_b = XlbNode::Start(*tb, "nodeB", o);
  const std::string vip = Vip(Family::kV4);
  const std::map<std::string, uint32_t> halves = {{"cluster-a", 50}, {"cluster-b", 50}};
  auto set_service = [&](uint16_t port, std::vector<Endpoint> endpoints) {
    ServiceSpec s{.vip = vip, .port = port, .weights = halves, .endpoints = std::move(endpoints)};
    node_a->SetService(s);
    node_b->SetService(s);
  };
  set_service(kEchoPort, {{"podA1"}, {"podB1"}});
  set_service(kHeldPort, {{"podA1"}, {"podB1"}});
  std::map<std::string, Fd> listeners;
  listeners.emplace("podA1", Listen(*tb, "podA1"));
  listeners.emplace("podB1", Listen(*tb, "podB1"));

  // Hold the connections: connect each, then find its server end by the client's port.
  std::vector<Held> held(kHeld);
  RunInNetns(tb->NsPath("client"), [&] {
    for (Held& h : held) {
      h.client = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(kHeldPort);
      ::inet_pton(AF_INET, vip.c_str(), &a.sin_addr);
      if (::connect(h.client.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
        throw std::runtime_error(Errno("connect to " + vip));
      }
      sockaddr_in local{};
      socklen_t len = sizeof(local);
      ::getsockname(h.client.fd, reinterpret_cast<sockaddr*>(&local), &len);
      h.client_port = ntohs(local.sin_port);
    }
  });
  std::map<uint16_t, Held*> by_port;
  for (Held& h : held) by_port[h.client_port] = &h;
  for (size_t accepted = 0; accepted < held.size();) {
    std::vector<pollfd> fds;
    std::vector<std::string> pods;
    for (auto& [pod, l] : listeners) {
      fds.push_back({l.fd, POLLIN, 0});
      pods.push_back(pod);
    }
    ASSERT_GT(::poll(fds.data(), fds.size(), 3000), 0) << "accepted " << accepted;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & POLLIN)) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      Fd c(::accept4(fds[k].fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
      ASSERT_GE(c.fd, 0) << Errno("accept");
      auto it = by_port.find(ntohs(peer.sin_port));
      ASSERT_NE(it, by_port.end()) << "a connection from an unknown port";
      it->second->server = std::move(c);
      it->second->pod = pods[k];
      ++accepted;
    }
  }
  std::map<std::string, int> per_pod;
  for (const Held& h : held) ++per_pod[h.pod];
  ASSERT_EQ(per_pod.size(), 2u) << "every held connection landed on one backend";
  std::string failure;
  ASSERT_EQ(Broken(held, true, "before-server", &failure), 0) << failure;
  ASSERT_EQ(Broken(held, false, "before-client", &failure), 0) << failure;

  // The flood, and new connections to the flooded echo service while it lasts.
  const auto frames =
      FloodFrames(MacOf(*tb, "router", "eth-nodeA"), MacOf(*tb, "nodeA", "eth0"), vip);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  FloodResult flood;
  std::string flood_error;
  std::atomic<bool> flood_over{false};
  std::thread flooder([&] {
    try {
      flood = Flood(*tb, frames, stop, sent);
    } catch (const std::exception& e) {
      flood_error = e.what();
    }
    flood_over = true;
  });
  // the new connections start when the half-open tables are already full of the flood
  while (sent < 2 * kHalfOpenEntries && !flood_over) std::this_thread::sleep_for(milliseconds(5));
  const auto probe_start = Clock::now();
  const uint64_t sent_before = sent;
  ProbeResult fresh = tb->Probe("client", "tcp", vip, kNewConnections, 4, 3000);
  const double probe_s = std::chrono::duration<double>(Clock::now() - probe_start).count();
  const uint64_t during_probe = sent - sent_before;
  stop = true;
  flooder.join();
  ASSERT_EQ(flood_error, "");

  // A held flow without its conntrack entry would now be placed by another table.
  set_service(kHeldPort, {{"podA1"}, {"podA2"}, {"podB1"}, {"podB2"}});
  std::string server_failure, client_failure;
  const int broken_server_first = Broken(held, true, "after-server", &server_failure);
  const int broken_client_first = Broken(held, false, "after-client", &client_failure);

  std::printf(
      "[ flood  ] %llu SYNs (%u distinct flows; %llu while the new connections were made) "
      "in %.2f s = %.0f frames/s; tables: conntrack %u, half-open %u per node\n"
      "[ flood  ] held connections broken: %d/%d with the server speaking first, %d/%d with "
      "the client (%d on podA1, %d on podB1)\n"
      "[ flood  ] new connections during the flood: %ld/%ld ok in %.2f s = %.0f/s\n",
      static_cast<unsigned long long>(flood.frames), kFloodFlows,
      static_cast<unsigned long long>(during_probe), flood.seconds,
      static_cast<double>(flood.frames) / flood.seconds, kCtEntries, kHalfOpenEntries,
      broken_server_first, kHeld, broken_client_first, kHeld, per_pod["podA1"], per_pod["podB1"],
      fresh.ok, fresh.count, probe_s, static_cast<double>(fresh.ok) / probe_s);
  std::printf("[ flood  ] nodeA: %s\n[ flood  ] nodeB: %s\n", node_a->Reasons().c_str(),
              node_b->Reasons().c_str());

  // the half-open tables turned over at least once while the new connections were made
  EXPECT_GE(during_probe, kHalfOpenEntries);
  EXPECT_EQ(broken_server_first, 0) << server_failure;
  EXPECT_EQ(broken_client_first, 0) << client_failure;
  // At 40,000 spoofed SYNs a second the pods' listeners answer with SYN cookies, and now and
  // then one of them drops a handshake's last ACK (TcpExtListenDrops): a connection to a
  // server that speaks first then waits out the probe's 3 s. The same happens without xlb's
  // half-open tables; a datapath that loses new flows loses far more than these.
  EXPECT_GE(fresh.ok, kNewConnections * 995 / 1000) << fresh.Describe();
}

}  // namespace
}  // namespace xlb::testbed
