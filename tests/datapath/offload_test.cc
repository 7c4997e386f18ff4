// xlb_tc on real veths whose senders use TX checksum offload: a pod's segments reach TC as
// CHECKSUM_PARTIAL (the L4 checksum field holds only the pseudo-header sum). The DNAT and
// the reverse NAT must update that field the way the kernel does, or the checksum the
// stack completes later is wrong. The node's links toward the two pods have TX offload off,
// so the node completes every checksum in software and the receiving pod verifies it: a
// wrong update shows as a connection that never completes. Needs root.
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>

#include <string>

#include "lb_fixture.h"
#include "loader/tc_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

bool IpOk(const Netns& ns, const std::string& cmd, std::string* error) {
  const CommandResult r = ns.Ip(cmd);
  if (r.status != 0) *error = "ip -n " + ns.name() + " " + cmd + ": " + r.output;
  return r.status == 0;
}

CommandResult Exec(const Netns& ns, const std::string& cmd) {
  return RunCommand("ip netns exec " + ns.name() + " " + cmd);
}

// node: hA 198.18.60.1/24 (pod A 198.18.60.2), hD 198.18.62.1/24 (pod D 198.18.62.2).
TEST(Offload, TcDnatAndRevnatOfChecksumPartialSegments) {
  Netns node, pod_a, pod_d;
  ASSERT_TRUE(node.ok() && pod_a.ok() && pod_d.ok()) << node.error() << pod_a.error();
  std::string err;
  for (const auto& [ns, cmd] : std::vector<std::pair<const Netns*, std::string>>{
           {&node, "link add hA type veth peer name eth0 netns " + pod_a.name()},
           {&node, "link add hD type veth peer name eth0 netns " + pod_d.name()},
           {&node, "addr add 198.18.60.1/24 dev hA"},
           {&node, "addr add 198.18.62.1/24 dev hD"},
           {&node, "link set hA up"},
           {&node, "link set hD up"},
           {&pod_a, "addr add 198.18.60.2/24 dev eth0"},
           {&pod_a, "link set eth0 up"},
           {&pod_a, "link set lo up"},
           {&pod_a, "route add default via 198.18.60.1"},
           {&pod_d, "addr add 198.18.62.2/24 dev eth0"},
           {&pod_d, "link set eth0 up"},
           {&pod_d, "link set lo up"},
           {&pod_d, "route add default via 198.18.62.1"},
       }) {
    ASSERT_TRUE(IpOk(*ns, cmd, &err)) << err;
  }
  for (const std::string& cmd : {std::string("sysctl -qw net.ipv4.conf.all.forwarding=1"),
                                 std::string("ethtool -K hA tx off"),
                                 std::string("ethtool -K hD tx off")}) {
    const CommandResult r = Exec(node, cmd);
    ASSERT_EQ(r.status, 0) << cmd << ": " << r.output;
  }
  // The pods keep TX checksum offload on (veth's default): their sends are CHECKSUM_PARTIAL.
  ASSERT_NE(Exec(pod_a, "ethtool -k eth0").output.find("tx-checksumming: on"), std::string::npos);

  const bool entered = node.RunInside([&] {
    auto dp = XdpDatapath::Load({.pin_dir = ""});
    ASSERT_TRUE(dp) << dp.error().ToString();
    auto tc = TcDatapath::Load(**dp);
    ASSERT_TRUE(tc) << tc.error().ToString();
    ServiceWriter writer(**dp);
    const xlb_service_key vip = VipKey("198.18.61.1", 80, IPPROTO_TCP);
    const WeightedBackend be{1, Backend("198.18.62.2", 8080)};
    ASSERT_TRUE(writer.AddService(1, std::span(&vip, 1), std::span(&be, 1)));
    auto at_a = (*tc)->Attach(static_cast<int>(if_nametoindex("hA")));
    ASSERT_TRUE(at_a) << at_a.error().ToString();
    auto at_d = (*tc)->Attach(static_cast<int>(if_nametoindex("hD")));
    ASSERT_TRUE(at_d) << at_d.error().ToString();

    // An echo server in pod D (in the background, its output not holding popen's pipe), a
    // client in pod A that talks to the VIP. The client retries until the server listens;
    // the deadlines only end a hung run (a loaded machine may take seconds to start Python).
    const std::string server =
        "timeout 90 /usr/bin/python3 -c \"import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('198.18.62.2', 8080)); s.listen(1); c,_=s.accept()\n"
        "d=b''\nwhile len(d) < 20000:\n  b=c.recv(65536)\n  if not b: break\n  d+=b\n"
        "c.sendall(d); c.close()\" >/dev/null 2>&1 &";
    ASSERT_EQ(RunCommand("ip netns exec " + pod_d.name() + " " + server).status, 0);
    const std::string client =
        "timeout 80 /usr/bin/python3 -c \"import socket, time\n"
        "deadline=time.monotonic()+60\n"
        "while True:\n"
        "  try:\n    c=socket.create_connection(('198.18.61.1', 80), timeout=30); break\n"
        "  except ConnectionRefusedError:\n"
        "    if time.monotonic() > deadline: raise\n"
        "    time.sleep(0.1)\n"
        "c.sendall(b'x'*20000); d=b''\n"
        "while len(d) < 20000:\n  b=c.recv(65536)\n  if not b: break\n  d+=b\n"
        "print(len(d), c.getpeername()[0])\"";
    const CommandResult r = Exec(pod_a, client);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output, "20000 198.18.61.1\n");
    const auto counts = ReasonCounts(**dp);
    // both directions DNATed/reverse-NATed and sent on by xlb_tc itself (fib redirect): the
    // partial checksums stay partial across the redirect and the receiving pod accepts them
    EXPECT_GE(counts[XLB_FWD_ROUTED], 1u);
    EXPECT_GE(counts[XLB_FWD_REPLY_ROUTED], 1u);
  });
  EXPECT_TRUE(entered) << node.error();
}

}  // namespace
}  // namespace xlb::testing
