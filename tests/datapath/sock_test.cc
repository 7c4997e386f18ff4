// xlb_sock, socket-level load balancing, with real sockets: the programs are attached to the
// machine's cgroup v2 root (what every test namespace's processes share) for ONE network
// namespace of the test's own, whose sockets connect and send to VIPs, NodePorts and loopback
// NodePorts and must reach the backend while seeing the address they asked for; a socket of
// a second namespace, to the same VIP, must be left alone. Links are not pinned: they go with
// the attachment at the end of each test. Needs root and cgroup v2.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lb_fixture.h"
#include "loader/fd.h"
#include "loader/sock_loader.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

constexpr const char* kVip4 = "198.18.77.100";
constexpr const char* kVip6 = "2001:db8:77::100";
constexpr const char* kBackend4 = "198.18.77.2";
constexpr const char* kBackend6 = "2001:db8:77::2";
constexpr const char* kNode4 = "198.18.77.1";
constexpr const char* kNode6 = "2001:db8:77::1";
constexpr uint16_t kTcpPort = 80;
constexpr uint16_t kTcpBackendPort = 8080;
constexpr uint16_t kUdpPort = 53;
constexpr uint16_t kUdpBackendPort = 8053;
constexpr uint16_t kNodePort = 30080;
constexpr uint16_t kRefusedPort = 81;  // a service without a backend
constexpr uint16_t kRejectPort = 82;   // TCP and UDP, no endpoints, XLB_SVC_F_REJECT
constexpr uint16_t kAffinePort = 83;   // ClientIP affinity over kBackend4 and kBackend4b
constexpr const char* kBackend4b = "198.18.77.3";
constexpr uint32_t kAffineFirst = 50;  // backend ids of the affine service
constexpr uint32_t kAffineSecond = 51;
constexpr uint32_t kAffinityTimeoutS = 100;

bool IsV6(const std::string& addr) {
  return addr.find(':') != std::string::npos;
}

sockaddr_storage SockAddr(const std::string& addr, uint16_t port) {
  sockaddr_storage ss{};
  if (IsV6(addr)) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    inet_pton(AF_INET, addr.c_str(), &s4->sin_addr);
  }
  return ss;
}

socklen_t Len(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string Format(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s6->sin6_port));
  }
  const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(s4->sin_port));
}

std::string HostPort(const std::string& addr, uint16_t port) {
  return IsV6(addr) ? "[" + addr + "]:" + std::to_string(port) : addr + ":" + std::to_string(port);
}

UniqueFd Listen(const std::string& addr, uint16_t port, int type) {
  const sockaddr_storage ss = SockAddr(addr, port);
  UniqueFd fd(::socket(ss.ss_family, type | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), Len(ss)) != 0 ||
      (type == SOCK_STREAM && ::listen(fd.get(), 4096) != 0)) {
    ADD_FAILURE() << "bind/listen " << HostPort(addr, port) << ": " << std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

// One TCP connection: what the client saw and where it landed.
struct TcpSeen {
  int connect_errno = 0;
  std::string peer;         // getpeername() of the client
  std::string server_side;  // getsockname() of the accepted socket: the address reached
};

TcpSeen TcpConnect(int listener, const std::string& addr, uint16_t port) {
  TcpSeen seen;
  const sockaddr_storage dst = SockAddr(addr, port);
  UniqueFd c(::socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(c.get(), reinterpret_cast<const sockaddr*>(&dst), Len(dst)) != 0) {
    seen.connect_errno = errno;
    return seen;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getpeername(c.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  seen.peer = Format(ss);
  UniqueFd accepted(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (accepted.valid()) {
    len = sizeof(ss);
    ::getsockname(accepted.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    seen.server_side = Format(ss);
  }
  return seen;
}

// One datagram there and its answer back: where it landed and whom the answer came from.
struct UdpSeen {
  int send_errno = 0;
  std::string server_side;  // the backend socket's address that received it
  std::string answer_from;  // recvfrom() of the client
};

UdpSeen UdpExchange(int backend, const std::string& backend_addr, const std::string& addr,
                    uint16_t port) {
  UdpSeen seen;
  const sockaddr_storage dst = SockAddr(addr, port);
  UniqueFd c(::socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const timeval tv{2, 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(backend, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::sendto(c.get(), "q", 1, 0, reinterpret_cast<const sockaddr*>(&dst), Len(dst)) != 1) {
    seen.send_errno = errno;
    return seen;
  }
  char buf[16];
  sockaddr_storage from{};
  socklen_t len = sizeof(from);
  if (::recvfrom(backend, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len) != 1) {
    return seen;
  }
  seen.server_side = backend_addr;
  ::sendto(backend, "a", 1, 0, reinterpret_cast<const sockaddr*>(&from), len);
  sockaddr_storage answer{};
  len = sizeof(answer);
  if (::recvfrom(c.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&answer), &len) == 1) {
    seen.answer_from = Format(answer);
  }
  return seen;
}

class SockLb : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(client_.ok()) << client_.error();
    ASSERT_TRUE(other_.ok()) << other_.error();
    // The client namespace holds the backends; the other one holds the VIPs themselves, so a
    // socket there that is (wrongly) translated would find no backend, and one that is left
    // alone reaches the VIP's own listener.
    for (const std::string& cmd :
         {std::string("link set lo up"), "addr add " + std::string(kBackend4) + "/32 dev lo",
          "addr add " + std::string(kBackend4b) + "/32 dev lo",
          "addr add " + std::string(kBackend6) + "/128 dev lo nodad"}) {
      ASSERT_EQ(client_.Ip(cmd).status, 0) << cmd;
    }
    for (const std::string& cmd :
         {std::string("link set lo up"), "addr add " + std::string(kVip4) + "/32 dev lo",
          "addr add " + std::string(kVip6) + "/128 dev lo nodad"}) {
      ASSERT_EQ(other_.Ip(cmd).status, 0) << cmd;
    }
    xdp_ = LoadHermetic();
    ASSERT_TRUE(xdp_);
    uint64_t cookie = 0;
    ASSERT_TRUE(client_.RunInside([&] {
      auto c = CurrentNetnsCookie();
      ASSERT_TRUE(c.ok()) << c.error().ToString();
      cookie = *c;
    }));
    auto sock = SockDatapath::Load(*xdp_, cookie);
    ASSERT_TRUE(sock.ok()) << sock.error().ToString();
    sock_ = std::move(*sock);
    xlb_sock_node node{};
    inet_pton(AF_INET, kNode4, &node.addr4);
    inet_pton(AF_INET6, kNode6, node.addr6);
    ASSERT_TRUE(sock_->SetNode(node).ok());

    ServiceWriter w(*xdp_);
    uint32_t id = 1;
    auto add = [&](std::vector<xlb_service_key> keys, const char* backend, uint16_t port,
                   uint32_t flags) {
      const std::vector<WeightedBackend> bes = {{id, Backend(backend, port)}};
      auto r = w.AddService(id, keys, bes, flags);
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      ++id;
    };
    add({VipKey(kVip4, kTcpPort, IPPROTO_TCP)}, kBackend4, kTcpBackendPort, 0);
    add({VipKey(kVip6, kTcpPort, IPPROTO_TCP)}, kBackend6, kTcpBackendPort, 0);
    add({VipKey(kVip4, kUdpPort, IPPROTO_UDP)}, kBackend4, kUdpBackendPort, 0);
    add({VipKey(kVip6, kUdpPort, IPPROTO_UDP)}, kBackend6, kUdpBackendPort, 0);
    add({VipKey(kNode4, kNodePort, IPPROTO_TCP)}, kBackend4, kTcpBackendPort, XLB_SVC_F_NODE_PORT);
    add({VipKey(kNode6, kNodePort, IPPROTO_TCP)}, kBackend6, kTcpBackendPort, XLB_SVC_F_NODE_PORT);
    const std::vector<xlb_service_key> refused = {VipKey(kVip4, kRefusedPort, IPPROTO_TCP)};
    ASSERT_TRUE(w.AddService(id++, refused, {}).ok());
    for (const char* vip : {kVip4, kVip6}) {
      const std::vector<xlb_service_key> rejecting = {VipKey(vip, kRejectPort, IPPROTO_TCP),
                                                      VipKey(vip, kRejectPort, IPPROTO_UDP)};
      ASSERT_TRUE(w.AddService(id++, rejecting, {}, XLB_SVC_F_REJECT).ok());
    }
    // Every slot on the first backend; the affinity test moves the table to the second.
    affine_id_ = id++;
    const xlb_service_key affine = VipKey(kVip4, kAffinePort, IPPROTO_TCP);
    const std::vector<WeightedBackend> pair = {
        {kAffineFirst, Backend(kBackend4, kTcpBackendPort)},
        {kAffineSecond, Backend(kBackend4b, kTcpBackendPort)}};
    ASSERT_TRUE(w.AddService(affine_id_, std::span(&affine, 1), pair, XLB_SVC_F_AFFINITY).ok());
    auto svc = xdp_->services().Lookup(affine);
    ASSERT_TRUE(svc.ok());
    svc->affinity_timeout = kAffinityTimeoutS;
    ASSERT_TRUE(xdp_->services().Update(affine, *svc).ok());
    PointTableAt(kAffineFirst);
    for (const uint32_t be : {kAffineFirst, kAffineSecond}) {
      ASSERT_TRUE(
          xdp_->affinity_match().Update({.service_id = affine_id_, .backend_id = be}, 0).ok());
    }

    auto cgroup = FindCgroup2();
    ASSERT_TRUE(cgroup.ok()) << cgroup.error().ToString();
    auto attached = sock_->Attach(*cgroup, /*pin_dir=*/"");
    ASSERT_TRUE(attached.ok()) << attached.error().ToString();
    attachment_ = std::move(*attached);
  }

  void PointTableAt(uint32_t backend_id) {
    const std::vector<uint32_t> slots(xdp_->maglev_size(), backend_id);
    ASSERT_TRUE(xdp_->InstallMaglevTable(affine_id_, slots).ok());
  }

  Netns client_;
  Netns other_;
  uint32_t affine_id_ = 0;
  std::unique_ptr<XdpDatapath> xdp_;
  std::unique_ptr<SockDatapath> sock_;
  SockAttachment attachment_;  // declared last: detached first
};

// From inside ns: a connection to front:port lands on the backend's listener, and the client
// sees front:port as its peer.
void ExpectTcpReachesBackend(Netns& ns, const std::string& front, uint16_t port,
                             const std::string& backend) {
  ASSERT_TRUE(ns.RunInside([&] {
    UniqueFd listener = Listen(backend, kTcpBackendPort, SOCK_STREAM);
    ASSERT_TRUE(listener.valid());
    const TcpSeen seen = TcpConnect(listener.get(), front, port);
    ASSERT_EQ(seen.connect_errno, 0) << front << ": " << std::strerror(seen.connect_errno);
    EXPECT_EQ(seen.peer, HostPort(front, port));
    EXPECT_EQ(seen.server_side, HostPort(backend, kTcpBackendPort));
  }));
}

TEST_F(SockLb, TcpConnectReachesTheBackendAndGetpeernameShowsTheVip) {
  ExpectTcpReachesBackend(client_, kVip4, kTcpPort, kBackend4);
  ExpectTcpReachesBackend(client_, kVip6, kTcpPort, kBackend6);
  // The translation is a new flow of the service and of its backend, as the packet hooks
  // count them.
  auto stats = xdp_->backend_stats().Lookup(1);
  ASSERT_TRUE(stats.ok());
  uint64_t flows = 0;
  for (const auto& c : *stats) flows += c.new_flows;
  EXPECT_EQ(flows, 1u);
}

TEST_F(SockLb, UdpSendtoReachesTheBackendAndTheAnswerComesFromTheVip) {
  for (const auto& [vip, backend] : {std::pair{kVip4, kBackend4}, std::pair{kVip6, kBackend6}}) {
    ASSERT_TRUE(client_.RunInside([&, vip = vip, backend = backend] {
      UniqueFd server = Listen(backend, kUdpBackendPort, SOCK_DGRAM);
      ASSERT_TRUE(server.valid());
      const UdpSeen seen =
          UdpExchange(server.get(), HostPort(backend, kUdpBackendPort), vip, kUdpPort);
      ASSERT_EQ(seen.send_errno, 0) << vip << ": " << std::strerror(seen.send_errno);
      EXPECT_EQ(seen.server_side, HostPort(backend, kUdpBackendPort)) << vip;
      EXPECT_EQ(seen.answer_from, HostPort(vip, kUdpPort));
    }));
  }
}

// An IPv6 socket that reaches IPv4 through a mapped address (::ffff:a.b.c.d, Java's default)
// is balanced as IPv4, and sees the mapped VIP again.
TEST_F(SockLb, IpV4MappedDestinationsOfIpV6SocketsAreTranslatedToo) {
  const std::string mapped = std::string("::ffff:") + kVip4;
  ExpectTcpReachesBackend(client_, mapped, kTcpPort, kBackend4);
  ASSERT_TRUE(client_.RunInside([&] {
    UniqueFd server = Listen(kBackend4, kUdpBackendPort, SOCK_DGRAM);
    ASSERT_TRUE(server.valid());
    const UdpSeen seen =
        UdpExchange(server.get(), HostPort(kBackend4, kUdpBackendPort), mapped, kUdpPort);
    ASSERT_EQ(seen.send_errno, 0) << std::strerror(seen.send_errno);
    EXPECT_EQ(seen.server_side, HostPort(kBackend4, kUdpBackendPort));
    EXPECT_EQ(seen.answer_from, HostPort(mapped, kUdpPort));
  }));
  ExpectTcpReachesBackend(client_, "::ffff:127.0.0.1", kNodePort, kBackend4);
}

TEST_F(SockLb, NodePortsAnswerOnTheNodeAddressesAndOnLoopback) {
  ExpectTcpReachesBackend(client_, kNode4, kNodePort, kBackend4);
  ExpectTcpReachesBackend(client_, "127.0.0.1", kNodePort, kBackend4);
  ExpectTcpReachesBackend(client_, kNode6, kNodePort, kBackend6);
  ExpectTcpReachesBackend(client_, "::1", kNodePort, kBackend6);
}

TEST_F(SockLb, LoopbackPortsThatAreNoNodePortAreLeftAlone) {
  ASSERT_TRUE(client_.RunInside([&] {
    // The TCP service's port on loopback: a service port, but no NodePort.
    UniqueFd listener = Listen("127.0.0.1", kTcpPort, SOCK_STREAM);
    ASSERT_TRUE(listener.valid());
    const TcpSeen seen = TcpConnect(listener.get(), "127.0.0.1", kTcpPort);
    ASSERT_EQ(seen.connect_errno, 0) << std::strerror(seen.connect_errno);
    EXPECT_EQ(seen.server_side, "127.0.0.1:" + std::to_string(kTcpPort));
  }));
}

TEST_F(SockLb, AServiceWithoutBackendsRefusesTheConnection) {
  ASSERT_TRUE(client_.RunInside([&] {
    UniqueFd listener = Listen(kBackend4, kTcpBackendPort, SOCK_STREAM);
    const TcpSeen seen = TcpConnect(listener.get(), kVip4, kRefusedPort);
    EXPECT_EQ(seen.connect_errno, ECONNREFUSED) << std::strerror(seen.connect_errno);
  }));
}

// XLB_SVC_F_REJECT: what the packet hooks answer with port unreachable, a host socket gets as
// ECONNREFUSED from connect() and from a datagram's sendto(), in both families (without the
// translation the VIP would be unreachable: ENETUNREACH).
TEST_F(SockLb, ARejectingServiceRefusesConnectAndSendto) {
  ASSERT_TRUE(client_.RunInside([&] {
    for (const char* vip : {kVip4, kVip6}) {
      const TcpSeen seen = TcpConnect(-1, vip, kRejectPort);
      EXPECT_EQ(seen.connect_errno, ECONNREFUSED)
          << vip << ": " << std::strerror(seen.connect_errno);
      const UdpSeen dgram = UdpExchange(-1, "", vip, kRejectPort);
      EXPECT_EQ(dgram.send_errno, ECONNREFUSED) << vip << ": " << std::strerror(dgram.send_errno);
    }
  }));
}

// Connects to addr:port and returns the address of the listener that got the connection.
std::string TcpLandsOn(const std::vector<std::pair<int, std::string>>& listeners,
                       const std::string& addr, uint16_t port) {
  const sockaddr_storage dst = SockAddr(addr, port);
  UniqueFd c(::socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(c.get(), reinterpret_cast<const sockaddr*>(&dst), Len(dst)) != 0) {
    return std::string("connect: ") + std::strerror(errno);
  }
  std::vector<pollfd> fds;
  for (const auto& [fd, name] : listeners) fds.push_back({fd, POLLIN, 0});
  if (::poll(fds.data(), fds.size(), 2000) <= 0) return "no listener got it";
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents & POLLIN) {
      UniqueFd accepted(::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
      return listeners[i].second;
    }
  }
  return "?";
}

// sessionAffinity ClientIP at connect() time: the same step as the packet hooks', the client
// being the node's address. A host keeps its backend across a table change until it has been
// idle for the timeout (aged through the map), then moves.
TEST_F(SockLb, ClientIpAffinityHoldsAtConnectUntilIdlePastTheTimeout) {
  ASSERT_TRUE(client_.RunInside([&] {
    UniqueFd first = Listen(kBackend4, kTcpBackendPort, SOCK_STREAM);
    UniqueFd second = Listen(kBackend4b, kTcpBackendPort, SOCK_STREAM);
    ASSERT_TRUE(first.valid() && second.valid());
    const std::vector<std::pair<int, std::string>> both = {{first.get(), kBackend4},
                                                           {second.get(), kBackend4b}};
    EXPECT_EQ(TcpLandsOn(both, kVip4, kAffinePort), kBackend4);
    PointTableAt(kAffineSecond);
    EXPECT_EQ(TcpLandsOn(both, kVip4, kAffinePort), kBackend4) << "kept across the table change";
    EXPECT_EQ(TcpLandsOn(both, kVip4, kAffinePort), kBackend4);
    auto aff = xdp_->affinity();
    ASSERT_TRUE(aff.ForEach([&](const xlb_affinity_key& k, xlb_affinity v) {
                     v.last_seen -= (kAffinityTimeoutS + 1) * 1000000000ULL;
                     ASSERT_TRUE(aff.Update(k, v).ok());
                   })
                    .ok());
    EXPECT_EQ(TcpLandsOn(both, kVip4, kAffinePort), kBackend4b) << "idle past the timeout: moved";
    EXPECT_EQ(TcpLandsOn(both, kVip4, kAffinePort), kBackend4b);
  }));
  xlb_affinity_key key{};
  inet_pton(AF_INET, kNode4, key.client);
  key.service_id = affine_id_;
  key.family = XLB_FAMILY_IPV4;
  auto entry = xdp_->affinity().Lookup(key);
  ASSERT_TRUE(entry.ok()) << "the node's address is the client";
  EXPECT_EQ(entry->backend_id, kAffineSecond);
}

TEST_F(SockLb, SocketsOfAnotherNetworkNamespaceAreLeftAlone) {
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_TRUE(other_.RunInside([&] {
      UniqueFd listener = Listen(vip, kTcpPort, SOCK_STREAM);
      ASSERT_TRUE(listener.valid());
      const TcpSeen seen = TcpConnect(listener.get(), vip, kTcpPort);
      ASSERT_EQ(seen.connect_errno, 0) << vip << ": " << std::strerror(seen.connect_errno);
      EXPECT_EQ(seen.peer, HostPort(vip, kTcpPort));
      EXPECT_EQ(seen.server_side, HostPort(vip, kTcpPort)) << "the VIP's own listener answered";
      UniqueFd udp = Listen(vip, kUdpPort, SOCK_DGRAM);
      ASSERT_TRUE(udp.valid());
      const UdpSeen dgram = UdpExchange(udp.get(), HostPort(vip, kUdpPort), vip, kUdpPort);
      EXPECT_EQ(dgram.answer_from, HostPort(vip, kUdpPort));
    }));
  }
  auto reverse = sock_->reverse().Keys();
  ASSERT_TRUE(reverse.ok());
  EXPECT_TRUE(reverse->empty()) << "a socket of another namespace was translated";
}

TEST_F(SockLb, DetachedProgramsTranslateNothing) {
  ASSERT_TRUE(attachment_.Detach().ok());
  ASSERT_TRUE(client_.RunInside([&] {
    UniqueFd listener = Listen(kBackend4, kTcpBackendPort, SOCK_STREAM);
    const TcpSeen seen = TcpConnect(listener.get(), kVip4, kTcpPort);
    EXPECT_EQ(seen.connect_errno, ENETUNREACH) << "no route to the VIP: nothing translated it";
  }));
}

// What the agent does across restarts: links pinned in the pin directory outlive their
// owner, the next load takes them over in place, and removing the pins detaches them.
TEST_F(SockLb, PinnedLinksOutliveTheirOwnerAreTakenOverAndGoWithTheirPins) {
  ASSERT_TRUE(attachment_.Detach().ok());
  PinDir pins;
  ASSERT_EQ(::mkdir(pins.path().c_str(), 0755), 0) << std::strerror(errno);
  auto cgroup = FindCgroup2();
  ASSERT_TRUE(cgroup.ok());
  auto translated = [&] {
    bool ok = false;
    EXPECT_TRUE(client_.RunInside([&] {
      UniqueFd listener = Listen(kBackend4, kTcpBackendPort, SOCK_STREAM);
      const TcpSeen seen = TcpConnect(listener.get(), kVip4, kTcpPort);
      ok = seen.connect_errno == 0 && seen.server_side == HostPort(kBackend4, kTcpBackendPort);
    }));
    return ok;
  };
  {
    auto first = sock_->Attach(*cgroup, pins.path());
    ASSERT_TRUE(first.ok()) << first.error().ToString();
    EXPECT_EQ(first->reused_links(), 0);
  }
  EXPECT_TRUE(translated()) << "the pins hold the links after their owner is gone";
  {
    auto next = SockDatapath::Load(*xdp_, sock_->netns_cookie());
    ASSERT_TRUE(next.ok()) << next.error().ToString();
    auto second = (*next)->Attach(*cgroup, pins.path());
    ASSERT_TRUE(second.ok()) << second.error().ToString();
    EXPECT_EQ(second->reused_links(), 8) << "every hook's link updated in place";
    EXPECT_TRUE(translated());
  }
  ASSERT_TRUE(RemovePins(pins.path()).ok());
  EXPECT_FALSE(translated()) << "the links went with their pins";
}

// connect() latency through socket LB against a direct connect() to the backend, in the same
// namespace and run, the two interleaved so that both meet the same machine: what the
// translation costs a host client. Printed, not asserted (the machine decides); every
// connection must complete either way.
TEST_F(SockLb, ConnectLatencyThroughSocketLbAndDirect) {
  constexpr int kConnects = 2000;
  struct Series {
    const char* label;
    sockaddr_storage dst;
    std::vector<double> us;
  };
  Series series[] = {{"socket LB", SockAddr(kVip4, kTcpPort), {}},
                     {"direct", SockAddr(kBackend4, kTcpBackendPort), {}}};
  ASSERT_TRUE(client_.RunInside([&] {
    UniqueFd listener = Listen(kBackend4, kTcpBackendPort, SOCK_STREAM);
    ASSERT_TRUE(listener.valid());
    for (int i = 0; i < kConnects; ++i) {
      for (Series& s : series) {
        UniqueFd c(::socket(s.dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const auto t0 = std::chrono::steady_clock::now();
        const int rc = ::connect(c.get(), reinterpret_cast<const sockaddr*>(&s.dst), Len(s.dst));
        const auto t1 = std::chrono::steady_clock::now();
        ASSERT_EQ(rc, 0) << s.label << ": " << std::strerror(errno);
        s.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      }
    }
  }));
  for (Series& s : series) {
    ASSERT_EQ(s.us.size(), static_cast<size_t>(kConnects));
    std::sort(s.us.begin(), s.us.end());
    std::printf("[ connect ] %-9s %d TCP connects: p50 %.1f us, p99 %.1f us\n", s.label, kConnects,
                s.us[s.us.size() / 2], s.us[s.us.size() * 99 / 100]);
  }
}

}  // namespace
}  // namespace xlb::testing
