// The testbed itself, with plain kernel routing and nothing of xlb attached: every
// namespace reaches every pod over TCP and UDP, IPv4 and IPv6; the echo servers name the
// right pod and the caller's real address; a held connection keeps its backend; and
// nothing is left behind -- not after Down(), not after the owner is SIGKILLed.
// Needs root (CI is root): without it Testbed::Up() throws and the tests fail.
#include "testbed.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "wire.h"

namespace xlb::testbed {
namespace {

using Counts = std::map<std::string, long>;

// Alive and not a zombie (an orphan waits for its new parent to reap it).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  if (!(stat >> pid_field >> comm >> state)) {
    return false;
  }
  return state != "Z" && state != "X";
}

// Namespaces with the prefix are gone within `within`.
::testing::AssertionResult GoneWithin(const std::string& prefix, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  std::vector<std::string> left;
  do {
    left = NamespacesWithPrefix(prefix);
    if (left.empty()) {
      return ::testing::AssertionSuccess();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  std::string names;
  for (const auto& n : left) {
    names += " " + n;
  }
  return ::testing::AssertionFailure() << "still present:" << names;
}

std::vector<pid_t> PidsIn(const std::string& ns) {
  CommandResult r = RunIn("", {"ip", "netns", "pids", ns}, std::chrono::seconds(10));
  std::vector<pid_t> pids;
  std::istringstream in(r.out);
  pid_t pid;
  while (in >> pid) {
    pids.push_back(pid);
  }
  return pids;
}

// --- the reply format (no root needed) ---

TEST(Reply, ParsesFieldsAndRejectsOtherLines) {
  auto f = ParseReply(
      "id=podA1 proto=tcp client=[2001:db8::2]:40000 local=198.18.10.11:8080 "
      "seq=3 echo=hold-3\r\n");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->at("id"), "podA1");
  EXPECT_EQ(f->at("client"), "[2001:db8::2]:40000");
  EXPECT_EQ(f->at("echo"), "hold-3");
  EXPECT_EQ(HostOf(f->at("client")), "2001:db8::2");
  EXPECT_EQ(HostOf(f->at("local")), "198.18.10.11");
  EXPECT_FALSE(ParseReply("HTTP/1.1 200 OK").has_value());
  EXPECT_FALSE(ParseReply("id=x broken").has_value());
  EXPECT_EQ(SanitizeEcho("a b\tc\x01"), "a_b_c_");
}

TEST(Reply, AddressesRoundTrip) {
  sockaddr_storage ss{};
  socklen_t len;
  ASSERT_TRUE(MakeSockaddr("2001:db8:10::11", 8080, &ss, &len));
  EXPECT_EQ(FormatSockaddr(ss), "[2001:db8:10::11]:8080");
  ASSERT_TRUE(MakeSockaddr("198.18.0.2", 40000, &ss, &len));
  EXPECT_EQ(FormatSockaddr(ss), "198.18.0.2:40000");
  EXPECT_FALSE(MakeSockaddr("pod.example", 1, &ss, &len));
  EXPECT_EQ(Vip(Family::kV6, 10), "2001:db8:100::a");
}

// --- the client reaches every pod's real address ---

void ClientReachesEveryPod(const char* mode, Family f) {
  auto tb = Testbed::Up();
  for (const std::string& pod : Pods()) {
    SCOPED_TRACE(std::string(mode) + " " + FamilyName(f) + " to " + pod);
    const std::string target = HostPort(Address(pod, f), tb->port());
    ProbeResult r = tb->Probe("client", mode, Address(pod, f), 20, 4);
    EXPECT_EQ(r.count, 20) << r.Describe();
    EXPECT_EQ(r.ok, 20) << r.Describe();
    EXPECT_TRUE(r.command.ok()) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{pod, 20}})) << r.Describe();
    EXPECT_EQ(r.clients, (Counts{{Address("client", f), 20}})) << r.Describe();
    EXPECT_EQ(r.locals, (Counts{{target, 20}})) << r.Describe();
    EXPECT_EQ(r.peers, (Counts{{target, 20}})) << r.Describe();
  }
}

TEST(ClientToPods, TcpIpv4) {
  ClientReachesEveryPod("tcp", Family::kV4);
}
TEST(ClientToPods, UdpIpv4) {
  ClientReachesEveryPod("udp", Family::kV4);
}
TEST(ClientToPods, TcpIpv6) {
  ClientReachesEveryPod("tcp", Family::kV6);
}
TEST(ClientToPods, UdpIpv6) {
  ClientReachesEveryPod("udp", Family::kV6);
}

// Every namespace -- client, router, both nodes, every pod -- reaches every pod, across
// clusters too; client and pods are seen with their own address.
TEST(Mesh, EveryNamespaceReachesEveryPod) {
  auto tb = Testbed::Up();
  for (Family f : {Family::kV4, Family::kV6}) {
    for (const std::string& from : Roles()) {
      for (const std::string& pod : Pods()) {
        SCOPED_TRACE(::testing::Message() << FamilyName(f) << " " << from << " -> " << pod);
        ProbeResult r = tb->Probe(from, "tcp", Address(pod, f), 1);
        ASSERT_EQ(r.ok, 1) << r.Describe();
        EXPECT_EQ(r.ids, (Counts{{pod, 1}}));
        if (from == "client" || from.rfind("pod", 0) == 0) {
          EXPECT_EQ(r.clients, (Counts{{Address(from, f), 1}}));
        }
      }
    }
  }
}

// The multi-node shape: the client, nodes of both clusters (with and without xlb) and pods on
// three nodes reach every echo server (the pods of all five nodes, the client pods, nodeA2's
// host address) on its own address, across nodes and clusters, routed by the router through
// each node's own pod CIDR; the VIP ranges all end at nodeA.
TEST(MultiNode, SevenPositionsReachEveryEchoServerAndVipsEndAtNodeA) {
  Options o;
  o.multi_node = true;
  auto tb = Testbed::Up(o);
  for (Family f : {Family::kV4, Family::kV6}) {
    for (const std::string from :
         {"client", "nodeA", "nodeA3", "nodeB2", "clientA2", "clientB", "podA31"}) {
      for (const std::string& to : tb->echo_roles()) {
        SCOPED_TRACE(::testing::Message() << FamilyName(f) << " " << from << " -> " << to);
        ProbeResult r = tb->Probe(from, "tcp", Address(to, f), 1);
        ASSERT_EQ(r.ok, 1) << r.Describe();
        EXPECT_EQ(r.ids, (Counts{{to, 1}}));
        if (from.rfind("pod", 0) == 0 || from.rfind("client", 0) == 0) {
          EXPECT_EQ(r.clients, (Counts{{Address(from, f), 1}}));
        }
      }
    }
    for (int net = 0; net <= 3; ++net) {
      CommandResult route = tb->Run("router", {"ip", "route", "get", Vip(f, 7, net)});
      EXPECT_NE(route.out.find(f == Family::kV4 ? "via 198.18.1.2" : "via 2001:db8:1::2"),
                std::string::npos)
          << route.Describe();
    }
  }
  EXPECT_EQ(NodeOf("clientA2"), "nodeA2");
  EXPECT_EQ(NodeOf("podA31"), "nodeA3");
  EXPECT_EQ(NodeOf("nodeB2"), "nodeB2");
  EXPECT_EQ(Vip(Family::kV6, 10, 3), "2001:db8:103::a");
}

// Only 198.18.0.0/15 and 2001:db8::/32 are routed anywhere; VIPs end at nodeA until xlb
// serves them. Route lookups only: nothing is sent.
TEST(Isolation, NoRouteOutsideTheTestRanges) {
  auto tb = Testbed::Up();
  for (const std::string& role : Roles()) {
    SCOPED_TRACE(role);
    CommandResult v4 = tb->Run(role, {"ip", "route", "get", "192.0.2.1"});
    EXPECT_NE(v4.exit_code, 0) << v4.Describe();
    CommandResult v6 = tb->Run(role, {"ip", "-6", "route", "get", "2001:db9::1"});
    EXPECT_NE(v6.exit_code, 0) << v6.Describe();
  }
  CommandResult via_router = tb->Run("router", {"ip", "route", "get", Vip(Family::kV4)});
  EXPECT_NE(via_router.out.find("via 198.18.1.2"), std::string::npos) << via_router.Describe();
  CommandResult at_node = tb->Run("nodeA", {"ip", "-6", "route", "get", Vip(Family::kV6)});
  EXPECT_NE(at_node.exit_code, 0) << at_node.Describe();  // unreachable
}

// A long-lived connection: every line is answered, all by the same pod.
TEST(Hold, LongLivedConnectionKeepsItsBackend) {
  auto tb = Testbed::Up();
  for (Family f : {Family::kV4, Family::kV6}) {
    SCOPED_TRACE(FamilyName(f));
    auto hold = tb->StartHold("client", Address("podB2", f), 10, 20);
    ASSERT_TRUE(hold);
    ProbeResult r = ParseProbe(hold->Wait(std::chrono::seconds(20)));
    EXPECT_EQ(r.count, 11) << r.Describe();  // the greeting and 10 lines
    EXPECT_EQ(r.ok, 11) << r.Describe();
    EXPECT_TRUE(r.same_backend) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{"podB2", 11}})) << r.Describe();
    EXPECT_EQ(r.clients, (Counts{{Address("client", f), 11}})) << r.Describe();
  }
}

// --- the third node: a stock Linux vxlan endpoint, the far side of xlb's interop test ---

// podC1 is reachable only through nodeC's vxlan0 and vxlan6. Stand in for xlb on nodeA with
// Linux vxlan devices of the same VNI (their MAC is nodeA's eth0, where nodeC sends answers):
// then clientA reaches podC1 both ways (its answers to cluster A's pods go back through
// vxlan0 as well), and podC1 sees clientA's address. Without it the router has no way
// there. So when xlb's interop test fails, the plumbing is not why.
TEST(NodeC, PodC1IsReachableOnlyThroughItsVxlanDevices) {
  Options o;
  o.node_c = true;
  auto tb = Testbed::Up(o);
  EXPECT_EQ(NamespacesWithPrefix(tb->prefix()).size(), Roles().size() + NodeCRoles().size());
  CommandResult link = tb->Run("nodeA", {"ip", "-br", "link", "show", "dev", "eth0"});
  ASSERT_TRUE(link.ok()) << link.Describe();
  std::istringstream fields(link.out);
  std::string name, state, eth0_mac;
  fields >> name >> state >> eth0_mac;

  for (Family f : {Family::kV4, Family::kV6}) {
    SCOPED_TRACE(FamilyName(f));
    const std::string pod = Address("podC1", f);
    const std::string ip = f == Family::kV4 ? "ip -4" : "ip -6";
    const std::string dev = f == Family::kV4 ? "vxtest4" : "vxtest6";
    CommandResult no_route = tb->Run("router", {"sh", "-c", ip + " route get " + pod});
    EXPECT_NE(no_route.exit_code, 0) << no_route.Describe();
    ProbeResult before = tb->Probe("clientA", "tcp", pod, 1, 1, 500);
    EXPECT_EQ(before.ok, 0) << before.Describe();

    for (const std::string& cmd : std::vector<std::string>{
             "ip link add " + dev + " type vxlan id 4242 local " + Address("nodeA", f) +
                 " dstport 4789 nolearning",
             "ip link set dev " + dev + " address " + eth0_mac + " mtu 1430 up",
             ip + " neigh add " + pod + " lladdr 02:78:6c:62:00:01 dev " + dev + " nud permanent",
             "bridge fdb add 02:78:6c:62:00:01 dev " + dev + " dst " + Address("nodeC", f) +
                 " self permanent",
             ip + " route add " + pod + " dev " + dev, "ethtool -K " + dev + " tx off"}) {
      CommandResult r = tb->Run("nodeA", {"sh", "-c", cmd});
      ASSERT_TRUE(r.ok()) << cmd << ": " << r.Describe();
    }
    ProbeResult r = tb->Probe("clientA", "tcp", pod, 20, 4);
    EXPECT_EQ(r.ok, 20) << r.Describe();
    EXPECT_EQ(r.ids, (Counts{{"podC1", 20}})) << r.Describe();
    EXPECT_EQ(r.clients, (Counts{{Address("clientA", f), 20}})) << r.Describe();
  }
}

// --- nothing is left behind ---

TEST(Teardown, DownRemovesEveryNamespaceAndStopsServersCleanly) {
  auto tb = Testbed::Up();
  const std::string prefix = tb->prefix();
  EXPECT_EQ(NamespacesWithPrefix(prefix).size(), Roles().size());
  std::vector<pid_t> servers;
  for (const std::string& pod : Pods()) {
    pid_t pid = tb->EchoPid(pod);
    ASSERT_GT(pid, 0);
    EXPECT_EQ(PidsIn(tb->Ns(pod)), std::vector<pid_t>{pid}) << pod;
    servers.push_back(pid);
  }
  for (const auto& [pod, result] : tb->StopEcho()) {
    EXPECT_EQ(result.exit_code, 0) << pod << ": " << result.Describe();  // SIGTERM: clean exit
    EXPECT_NE(result.err.find("exiting on signal"), std::string::npos) << result.Describe();
  }
  EXPECT_TRUE(tb->Down());
  EXPECT_TRUE(GoneWithin(prefix, std::chrono::milliseconds(0)));
  for (pid_t pid : servers) {
    EXPECT_FALSE(Alive(pid)) << pid;
  }
  tb.reset();  // a second Down() through the destructor is a no-op
  EXPECT_TRUE(GoneWithin(prefix, std::chrono::milliseconds(0)));
}

// The owner dies without running a destructor (SIGKILL stands in for a crash, an abort,
// or a timeout of the test runner): the watchdog removes the namespaces and the servers.
TEST(Teardown, WatchdogCleansUpAfterOwnerIsKilled) {
  const std::string prefix = "xlbtb" + std::to_string(::getpid()) + "-crash-";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    ::close(ready[0]);
    char verdict = 'f';
    try {
      Options o;
      o.prefix = prefix;
      auto tb = Testbed::Up(o);
      verdict = 'u';
      (void)!::write(ready[1], &verdict, 1);
      ::pause();  // until SIGKILL
    } catch (const std::exception& e) {
      std::fprintf(stderr, "owner: %s\n", e.what());
      (void)!::write(ready[1], &verdict, 1);
    }
    ::_exit(1);
  }
  ::close(ready[1]);
  pollfd p{ready[0], POLLIN, 0};
  char verdict = 0;
  bool got = ::poll(&p, 1, 30000) == 1 && ::read(ready[0], &verdict, 1) == 1;
  ::close(ready[0]);

  std::vector<pid_t> servers;
  for (const std::string& pod : Pods()) {
    for (pid_t pid : PidsIn(prefix + pod)) {
      servers.push_back(pid);
    }
  }
  ::kill(owner, SIGKILL);
  int status = 0;
  ::waitpid(owner, &status, 0);
  ASSERT_TRUE(got && verdict == 'u') << "the owner did not bring its testbed up";
  EXPECT_EQ(servers.size(), Pods().size());

  EXPECT_TRUE(GoneWithin(prefix, std::chrono::seconds(15)));
  bool state_left = true;
  for (int i = 0; i < 100 && state_left; ++i) {
    state_left = false;
    for (const auto& e :
         std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
      state_left = state_left || e.path().filename().string().rfind(prefix, 0) == 0;
    }
    if (state_left) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_FALSE(state_left) << "the owner's state directory was left in the temp dir";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t pid : servers) {
    while (Alive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_FALSE(Alive(pid)) << "echo server " << pid << " outlived its testbed";
  }
}

// --- the script as users run it ---

// Removes the prefix whatever the test's assertions did.
struct ScriptGuard {
  std::string prefix;
  ~ScriptGuard() {
    RunIn("", {"bash", ScriptPath(), "down", "--prefix", prefix}, std::chrono::seconds(60));
  }
};

CommandResult Script(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"bash", ScriptPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunIn("", argv, std::chrono::seconds(60));
}

TEST(Script, UpIsIdempotentAndDownRemovesEverything) {
  ScriptGuard guard{"xlbtb" + std::to_string(::getpid()) + "-script-"};
  const std::string& prefix = guard.prefix;
  for (int round = 0; round < 2; ++round) {
    CommandResult up = Script({"up", "--prefix", prefix, "--echo", EchoBinary()});
    ASSERT_TRUE(up.ok()) << up.Describe();
    EXPECT_NE(up.out.find("198.18.100.0/24"), std::string::npos) << "prints the plan";
    EXPECT_EQ(NamespacesWithPrefix(prefix).size(), Roles().size());
  }
  CommandResult status = Script({"status", "--prefix", prefix});
  ASSERT_TRUE(status.ok()) << status.Describe();
  EXPECT_NE(status.out.find("9 of 9 namespaces"), std::string::npos) << status.out;

  std::vector<pid_t> servers;
  for (const std::string& pod : Pods()) {
    std::vector<pid_t> pids = PidsIn(prefix + pod);
    ASSERT_EQ(pids.size(), 1u) << pod << ": one xlb-echo after two `up`s";
    servers.push_back(pids[0]);
  }
  CommandResult probe =
      RunIn("/var/run/netns/" + prefix + "client",
            {ProbeBinary(), "udp", Address("podB1", Family::kV6), "8080", "--count", "3", "--json"},
            std::chrono::seconds(30));
  ProbeResult r = ParseProbe(probe);
  EXPECT_EQ(r.ids, (Counts{{"podB1", 3}})) << r.Describe();

  for (int round = 0; round < 2; ++round) {
    CommandResult down = Script({"down", "--prefix", prefix});
    ASSERT_TRUE(down.ok()) << down.Describe();
    EXPECT_TRUE(NamespacesWithPrefix(prefix).empty());
  }
  for (pid_t pid : servers) {
    EXPECT_FALSE(Alive(pid)) << pid;
  }
}

TEST(Script, GcRemovesOnlyTestbedsOfDeadOwners) {
  pid_t dead = ::fork();
  if (dead == 0) {
    ::_exit(0);
  }
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  ScriptGuard stale{"xlbtb" + std::to_string(dead) + "-0-"};
  ScriptGuard live{"xlbtb" + std::to_string(::getpid()) + "-gclive-"};
  for (const std::string& ns :
       {stale.prefix + "client", stale.prefix + "podA1", live.prefix + "client"}) {
    CommandResult add = RunIn("", {"ip", "netns", "add", ns}, std::chrono::seconds(10));
    ASSERT_TRUE(add.ok()) << add.Describe();
  }
  CommandResult gc = Script({"gc"});
  ASSERT_TRUE(gc.ok()) << gc.Describe();
  EXPECT_TRUE(NamespacesWithPrefix(stale.prefix).empty()) << gc.out;
  EXPECT_EQ(NamespacesWithPrefix(live.prefix).size(), 1u) << gc.out;
}

}  // namespace
}  // namespace xlb::testbed
