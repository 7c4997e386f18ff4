// The agent's loop body against the in-memory FakeMapStore (no root): it syncs what the files
// say, only when they change, keeps the last good state when they are bad, and a second
// reconciler on the same maps (a restarted agent) writes nothing. Also the command line, and
// the binary's start-up failures (they happen before anything needs root).
#include "userspace/agent/reconciler.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent_fixtures.h"
#include "temp_dir.h"
#include "userspace/agent/agent_options.h"

namespace xlb::agent_test {
namespace {

struct Logged {
  std::vector<std::string> lines;
  Reconciler::LogFn Fn() {
    return [this](LogLevel, const std::string& line) { lines.push_back(line); };
  }
  std::string All() const {
    std::string s;
    for (const auto& l : lines) {
      s += l + "\n";
    }
    return s;
  }
};

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() {
    WriteFileAtomically(config_, TestbedConfig("cluster-a"));
    WriteFileAtomically(policy_, VirtualService("70", 30));
  }

  // Backends that take new flows, by weight: the 70/30 over 2+2 endpoints is 7,7,3,3.
  std::vector<uint32_t> TableShares() const {
    const MapContents& c = store_.contents();
    EXPECT_EQ(c.tables.size(), 1u);
    std::map<uint32_t, uint32_t> slots;
    for (const auto& [id, table] : store_.tables()) {
      for (uint32_t be : table) {
        ++slots[be];
      }
    }
    std::vector<uint32_t> out;
    out.reserve(slots.size());
    for (const auto& [be, n] : slots) {
      out.push_back(n);
    }
    return out;
  }

  pkt::TempDir dir_{"xlb-agent"};
  std::string config_ = dir_.File("config.yaml");
  std::string policy_ = dir_.File("policy.yaml");
  FakeMapStore store_{StoreLimits{.maglev_size = 1021}};
  Logged log_;
};

TEST_F(ReconcilerTest, SyncsOnceThenOnlyWhenAFileChanges) {
  Reconciler r({config_, policy_}, log_.Fn());
  ASSERT_TRUE(r.Start().ok()) << log_.All();
  ASSERT_TRUE(r.Adopt(store_).ok());
  auto first = r.Poll();
  ASSERT_TRUE(first.has_value() && first->ok()) << log_.All();
  EXPECT_EQ(first->writes[WriteKind::kBackend], 4u);
  EXPECT_EQ(first->writes[WriteKind::kTable], 1u);
  EXPECT_EQ(first->writes[WriteKind::kService], 1u);
  EXPECT_FALSE(r.Poll().has_value()) << "nothing changed, nothing to sync";

  // 0/100: a new table, and the service entry's count of backends that hold slots; the
  // backends themselves stay.
  WriteFileAtomically(policy_, VirtualService("0", 100));
  auto second = r.Poll();
  ASSERT_TRUE(second.has_value() && second->ok()) << log_.All();
  EXPECT_EQ(second->writes.ToString(), "table=1 service=1");
  EXPECT_EQ(TableShares().size(), 2u) << "only cluster B's two backends hold slots";
}

TEST_F(ReconcilerTest, ConfigChangeIsSynced) {
  Reconciler r({config_, policy_}, log_.Fn());
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(r.Adopt(store_).ok());
  ASSERT_TRUE(r.Poll().has_value());

  // podB2 goes away: its backend is invalidated, the table and the service's count change.
  std::string config = TestbedConfig("cluster-a");
  const std::string podb2 = "  - addresses: [198.18.20.12]\n    nodeName: node-b\n";
  ASSERT_NE(config.find(podb2), std::string::npos);
  config.erase(config.find(podb2), podb2.size());
  WriteFileAtomically(config_, config);
  auto r2 = r.Poll();
  ASSERT_TRUE(r2.has_value() && r2->ok()) << log_.All();
  EXPECT_EQ(r2->writes.ToString(), "backend=1 table=1 service=1");
  EXPECT_EQ(TableShares().size(), 3u);
}

TEST_F(ReconcilerTest, MalformedPolicyIsRejectedWithFileAndFieldAndChangesNothing) {
  Reconciler r({config_, policy_}, log_.Fn());
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(r.Adopt(store_).ok());
  ASSERT_TRUE(r.Poll().has_value());
  const MapContents before = store_.contents();
  store_.ResetCounts();

  WriteFileAtomically(policy_, VirtualService("-5", 30));
  EXPECT_FALSE(r.Poll().has_value()) << log_.All();
  EXPECT_EQ(r.policy_rejected(), 1u);
  EXPECT_EQ(store_.writes().total(), 0u);
  EXPECT_TRUE(store_.contents() == before);
  const std::string logged = log_.All();
  EXPECT_NE(logged.find(policy_), std::string::npos) << logged;
  EXPECT_NE(logged.find("spec.tcp[0].route[0].weight"), std::string::npos) << logged;

  // A bad config is kept out the same way.
  WriteFileAtomically(config_, TestbedConfig("cluster-a") + "bogus: 1\n");
  EXPECT_FALSE(r.Poll().has_value());
  EXPECT_EQ(r.config_rejected(), 1u);
  EXPECT_NE(log_.All().find("bogus"), std::string::npos) << log_.All();
  EXPECT_EQ(store_.writes().total(), 0u);

  // Fixed again: the policy is read again with the new model, the state is what it was.
  WriteFileAtomically(config_, TestbedConfig("cluster-a"));
  WriteFileAtomically(policy_, VirtualService("70", 30));
  auto fixed = r.Poll();
  ASSERT_TRUE(fixed.has_value() && fixed->ok()) << log_.All();
  EXPECT_EQ(fixed->writes.total(), 0u) << fixed->writes.ToString();
}

TEST_F(ReconcilerTest, RestartedReconcilerAdoptsAndWritesNothing) {
  {
    Reconciler first({config_, policy_}, log_.Fn());
    ASSERT_TRUE(first.Start().ok());
    ASSERT_TRUE(first.Adopt(store_).ok());
    ASSERT_TRUE(first.Poll().has_value());
  }
  store_.ResetCounts();
  Reconciler second({config_, policy_}, log_.Fn());
  ASSERT_TRUE(second.Start().ok());
  ASSERT_TRUE(second.Adopt(store_).ok());
  auto r = second.Poll();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ(r->writes.total(), 0u) << r->writes.ToString();
  EXPECT_EQ(store_.writes().total(), 0u);
}

// A source that edits the model in place (the Kubernetes watches) is synced service by
// service: only what its mutators touched is re-planned and written.
TEST_F(ReconcilerTest, InPlaceModelEditsAreReplannedServiceByService) {
  Reconciler r({config_, policy_}, log_.Fn());
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(r.Adopt(store_).ok());
  ASSERT_TRUE(r.Poll().has_value());
  EXPECT_FALSE(r.SyncNow().has_value()) << "nothing changed";

  const NamespacedName other{"xlb-test", "other"};
  Service s;
  s.name = other;
  s.cluster_ips = {*IpAddress::Parse("198.18.100.99")};
  s.ports = {ServicePort{"", 80, Protocol::kTcp, 80, "", 0, ""}};
  r.model().PutService(s);
  Endpoint e;
  e.service = other;
  e.cluster = "cluster-a";
  e.addresses = {*IpAddress::Parse("198.18.10.50")};
  e.ports = {{"", 80, Protocol::kTcp}};
  r.model().SetEndpoints(other, "cluster-a", {e});
  auto added = r.SyncNow();
  ASSERT_TRUE(added.has_value() && added->ok()) << log_.All();
  EXPECT_EQ(added->writes.ToString(), "backend=1 table=1 service=1 vip_filter_word=1");
  EXPECT_EQ(r.syncer()->tracked()->last_group(), std::set<NamespacedName>{other});
  EXPECT_NE(log_.lines.back().find("1 services re-planned"), std::string::npos) << log_.All();
  EXPECT_EQ(r.planned_tables(), 2u);
  EXPECT_EQ(r.names().services.size(), 2u);
  EXPECT_EQ(r.names().backends.size(), 5u);

  // The new service goes again: its entries are removed, the echo service is not looked at.
  r.model().RemoveService(other);
  auto removed = r.SyncNow();
  ASSERT_TRUE(removed.has_value() && removed->ok()) << log_.All();
  EXPECT_EQ(removed->writes.ToString(),
            "backend=1 table_removal=1 service_removal=1 vip_filter_word=1");
  EXPECT_EQ(r.names().services.size(), 1u);
  EXPECT_EQ(r.names().backends.size(), 4u);
  EXPECT_EQ(store_.contents().tables.size(), 1u);

  // A restarted agent on the same maps writes nothing.
  store_.ResetCounts();
  Reconciler second({config_, policy_}, log_.Fn());
  ASSERT_TRUE(second.Start().ok());
  ASSERT_TRUE(second.Adopt(store_).ok());
  auto again = second.Poll();
  ASSERT_TRUE(again.has_value() && again->ok());
  EXPECT_EQ(again->writes.total(), 0u) << again->writes.ToString();
}

// A new policy set re-plans the service ports whose route changed, not every service.
TEST_F(ReconcilerTest, PolicyChangeReplansOnlyTheServicesItRoutes) {
  Reconciler r({config_, policy_}, log_.Fn());
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(r.Adopt(store_).ok());
  Service s;
  s.name = {"xlb-test", "other"};
  s.cluster_ips = {*IpAddress::Parse("198.18.100.99")};
  s.ports = {ServicePort{"", 80, Protocol::kTcp, 80, "", 0, ""}};
  r.model().PutService(s);
  ASSERT_TRUE(r.Poll().has_value());
  EXPECT_EQ(r.planned_tables(), 2u);

  WriteFileAtomically(policy_, VirtualService("0", 100));
  auto changed = r.Poll();
  ASSERT_TRUE(changed.has_value() && changed->ok()) << log_.All();
  EXPECT_EQ(changed->writes.ToString(), "table=1 service=1");
  EXPECT_EQ(r.syncer()->tracked()->last_group(),
            (std::set<NamespacedName>{NamespacedName{"xlb-test", "echo"}}));
}

TEST_F(ReconcilerTest, StartFailsOnBadOrMissingInput) {
  WriteFileAtomically(policy_, VirtualService("seventy", 30));
  Reconciler bad_policy({config_, policy_}, log_.Fn());
  auto r = bad_policy.Start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(ToString(r.error()).find("spec.tcp[0].route[0].weight"), std::string::npos)
      << ToString(r.error());

  Reconciler missing({dir_.File("nope.yaml"), ""}, log_.Fn());
  EXPECT_FALSE(missing.Start().ok());
}

// --node-addr (SetNodeAddresses) replaces the config's node addresses: the nodePort gets a
// service key on each, on the port's table; without any, one info line says NodePorts are off.
TEST_F(ReconcilerTest, NodeAddressesServeTheNodePort) {
  std::string config = TestbedConfig("cluster-a");
  const std::string port = "  - port: 8080\n    protocol: TCP\n";
  ASSERT_NE(config.find(port), std::string::npos);
  config.insert(config.find(port) + port.size(), "    nodePort: 30080\n");
  WriteFileAtomically(config_, config);

  {
    Logged quiet;
    Reconciler none({config_, policy_}, quiet.Fn());
    ASSERT_TRUE(none.Start().ok()) << quiet.All();
    FakeMapStore store{StoreLimits{.maglev_size = 1021}};
    ASSERT_TRUE(none.Adopt(store).ok());
    auto r = none.Poll();
    ASSERT_TRUE(r.has_value() && r->ok()) << quiet.All();
    EXPECT_EQ(store.contents().services.size(), 1u);  // the ClusterIP only
    EXPECT_NE(quiet.All().find("has nodePort 30080, but no node address is known"),
              std::string::npos)
        << quiet.All();
  }

  Reconciler r({config_, policy_}, log_.Fn());
  r.SetNodeAddresses({*IpAddress::Parse("198.18.1.2"), *IpAddress::Parse("2001:db8:1::2")});
  ASSERT_TRUE(r.Start().ok()) << log_.All();
  ASSERT_TRUE(r.Adopt(store_).ok());
  auto first = r.Poll();
  ASSERT_TRUE(first.has_value() && first->ok()) << log_.All();
  EXPECT_EQ(first->writes[WriteKind::kService], 2u);  // ClusterIP, 198.18.1.2:30080
  const auto& services = store_.contents().services;
  xlb_service_key key{};
  IpAddress::Parse("198.18.1.2")->ToAbiWords(key.addr);
  key.port = htons(30080);
  key.proto = IPPROTO_TCP;
  key.family = XLB_FAMILY_IPV4;
  ASSERT_EQ(services.count(key), 1u);
  xlb_service_key vip = key;
  IpAddress::Parse("198.18.100.1")->ToAbiWords(vip.addr);
  vip.port = htons(8080);
  EXPECT_EQ(services.at(key).id, services.at(vip).id);
  EXPECT_EQ(log_.All().find("no node address is known"), std::string::npos) << log_.All();
}

// --node-name (SetNodeName) says which endpoints of the local cluster are this node's: named
// after another node, the agent reaches cluster A's pods on node-a through the tunnel to
// node-a's address; named node-a, directly.
TEST_F(ReconcilerTest, NodeNameDecidesWhichLocalPodsAreTunnelled) {
  WriteFileAtomically(config_, TestbedConfig("cluster-a"));
  for (const auto& [node, flags] : {std::pair{"node-a", XLB_BE_F_VALID},
                                    std::pair{"node-a2", XLB_BE_F_VALID | XLB_BE_F_TUNNEL}}) {
    Logged log;
    Reconciler r({config_, policy_}, log.Fn());
    r.SetNodeName(node);
    ASSERT_TRUE(r.Start().ok()) << log.All();
    FakeMapStore store{StoreLimits{.maglev_size = 1021}};
    ASSERT_TRUE(r.Adopt(store).ok());
    auto synced = r.Poll();
    ASSERT_TRUE(synced.has_value() && synced->ok()) << log.All();
    int cluster_a = 0;
    for (const auto& [id, b] : store.contents().backends) {
      if (b.cluster_id == 1) {
        ++cluster_a;
        EXPECT_EQ(b.flags, flags) << node;
        EXPECT_EQ(b.tunnel[0], (flags & XLB_BE_F_TUNNEL) != 0 ? htonl(0xc6120102) : 0u) << node;
      } else {
        EXPECT_EQ(b.flags, XLB_BE_F_VALID | XLB_BE_F_TUNNEL) << node;  // cluster B: node-b
      }
    }
    EXPECT_EQ(cluster_a, 2) << node;
  }
}

TEST(AgentOptions, ParsesEveryFlag) {
  // clang-format off: flag and value side by side
  const char* argv[] = {
      "xlb-agent",     "--config",      "c.yaml",   "--policy",      "p/",
      "--pin-dir",     "/sys/fs/bpf/x", "--uplink", "eth0",          "--pod-iface",
      "veth-*",        "--pod-iface",   "lxc*",     "--tunnel-addr", "198.18.1.2",
      "--tunnel-addr", "2001:db8:1::2", "--encap",  "gue",           "--tunnel-mtu",
      "1400",          "--node-addr",   "198.18.1.2", "--node-addr", "2001:db8:1::2",
      "--node-name",   "node-a1.zone-1", "--socket-lb", "on", "--cgroup", "/run/xlb/cgroupv2",
      "--once"};
  // clang-format on
  AgentOptions o;
  std::string problem;
  bool help = false;
  ASSERT_TRUE(ParseAgentOptions(std::size(argv), argv, o, problem, help)) << problem;
  EXPECT_EQ(o.config, "c.yaml");
  EXPECT_EQ(o.policy, "p/");
  EXPECT_EQ(o.pin_dir, "/sys/fs/bpf/x");
  EXPECT_EQ(o.uplinks, std::vector<std::string>{"eth0"});
  EXPECT_EQ(o.pod_ifaces, (std::vector<std::string>{"veth-*", "lxc*"}));
  EXPECT_EQ(o.datapath.tunnel_addr4, htonl(0xc6120102));
  EXPECT_EQ(o.datapath.tunnel_addr6[3], htonl(2));
  EXPECT_EQ(o.datapath.encap, XLB_ENCAP_GUE);
  EXPECT_EQ(o.datapath.tunnel_mtu, 1400);
  ASSERT_EQ(o.node_addrs.size(), 2u);
  EXPECT_EQ(o.node_addrs[0].ToString(), "198.18.1.2");
  EXPECT_EQ(o.node_addrs[1].ToString(), "2001:db8:1::2");
  EXPECT_EQ(o.node_name, "node-a1.zone-1");
  EXPECT_EQ(o.socket_lb.mode, SocketLbOptions::Mode::kOn);
  EXPECT_EQ(o.socket_lb.cgroup, "/run/xlb/cgroupv2");
  EXPECT_TRUE(o.once);
}

TEST(AgentOptions, RejectsBadCommandLines) {
  struct Case {
    std::vector<const char*> argv;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {{"xlb-agent"}, "one of --config FILE and --kube FILE is required"},
      {{"xlb-agent", "--config", "c.yaml", "--kube", "k.yaml"},
       "one of --config FILE and --kube FILE is required"},
      {{"xlb-agent", "--config"}, "--config needs a value"},
      {{"xlb-agent", "--config", "c", "--frobnicate"}, "unknown option --frobnicate"},
      {{"xlb-agent", "--config", "c", "--encap", "ipip"}, "--encap ipip: vxlan or gue"},
      {{"xlb-agent", "--config", "c", "--tunnel-mtu", "99"}, "a number from 576 to 65535"},
      {{"xlb-agent", "--config", "c", "--tunnel-addr", "nodeA"}, "not an IPv4 or IPv6 address"},
      {{"xlb-agent", "--config", "c", "--pin-dir", ""}, "--pin-dir must not be empty"},
      {{"xlb-agent", "--config", "c", "--node-addr", "node-a"},
       "--node-addr node-a: not an IPv4 or IPv6 address"},
      {{"xlb-agent", "--config", "c", "--node-addr", "198.18.1.2", "--node-addr", "198.18.1.2"},
       "--node-addr 198.18.1.2: given twice"},
      {{"xlb-agent", "--config", "c", "--node-name", "Node_A"},
       "--node-name Node_A: not a Kubernetes node name (DNS-1123 subdomain)"},
      {{"xlb-agent", "--config", "c", "--node-name", "a..b"}, "--node-name a..b: not a"},
      {{"xlb-agent", "--config", "c", "--uplink", "eth0", "--uplink", "eth1,eth0"},
       "--uplink eth0: given twice"},
      {{"xlb-agent", "--config", "c", "--uplink", "eth0,"}, "not an interface name"},
      {{"xlb-agent", "--config", "c", "--uplink", "auto", "--uplink", "eth0"},
       "--uplink auto picks every uplink itself"},
      {{"xlb-agent", "--config", "c", "--uplink", "eth0", "--uplink", "auto"},
       "--uplink auto picks every uplink itself"},
      {{"xlb-agent", "--config", "c", "--iface-rescan", "10"}, "from 100 to 3600000"},
      {{"xlb-agent", "--config", "c", "--socket-lb", "yes"}, "--socket-lb yes: on or off"},
      {{"xlb-agent", "--config", "c", "--cgroup", "sys/fs/cgroup"}, "an absolute path"},
  };
  for (const Case& c : cases) {
    AgentOptions o;
    std::string problem;
    bool help = false;
    EXPECT_FALSE(
        ParseAgentOptions(static_cast<int>(c.argv.size()), c.argv.data(), o, problem, help))
        << c.problem;
    EXPECT_NE(problem.find(c.problem), std::string::npos) << problem << " vs " << c.problem;
  }
}

TEST(AgentOptions, TunnelPeersAreCheckedUnlessAnyIsAsked) {
  AgentOptions o;
  std::string problem;
  bool help = false;
  const char* plain[] = {"xlb-agent", "--config", "c.yaml"};
  ASSERT_TRUE(ParseAgentOptions(std::size(plain), plain, o, problem, help)) << problem;
  EXPECT_NE(o.datapath.flags & XLB_CFG_F_TUNNEL_PEERS, 0);
  const char* any[] = {"xlb-agent", "--config", "c.yaml", "--tunnel-peers", "any"};
  AgentOptions o2;
  ASSERT_TRUE(ParseAgentOptions(std::size(any), any, o2, problem, help)) << problem;
  EXPECT_EQ(o2.datapath.flags & XLB_CFG_F_TUNNEL_PEERS, 0);
}

TEST(AgentOptions, XlbForwardsUnlessTheStackIsAsked) {
  std::string problem;
  bool help = false;
  const char* plain[] = {"xlb-agent", "--config", "c.yaml"};
  AgentOptions o;
  ASSERT_TRUE(ParseAgentOptions(std::size(plain), plain, o, problem, help)) << problem;
  EXPECT_EQ(o.datapath.flags & XLB_CFG_F_STACK_FORWARD, 0);
  const char* stack[] = {"xlb-agent", "--config", "c.yaml", "--forwarding", "stack"};
  AgentOptions o2;
  ASSERT_TRUE(ParseAgentOptions(std::size(stack), stack, o2, problem, help)) << problem;
  EXPECT_NE(o2.datapath.flags & XLB_CFG_F_STACK_FORWARD, 0);
  // the other flag is kept
  EXPECT_NE(o2.datapath.flags & XLB_CFG_F_TUNNEL_PEERS, 0);
  const char* bad[] = {"xlb-agent", "--config", "c.yaml", "--forwarding", "xdp"};
  AgentOptions o3;
  EXPECT_FALSE(ParseAgentOptions(std::size(bad), bad, o3, problem, help));
  EXPECT_NE(problem.find("--forwarding xdp: bpf or stack"), std::string::npos) << problem;
}

TEST(AgentOptions, UplinksRepeatedAndAsAListAndTheRescanInterval) {
  const char* argv[] = {"xlb-agent",      "--config", "c.yaml",   "--uplink", "eth1,bond0",
                        "--iface-rescan", "2500",     "--uplink", "eth0"};
  AgentOptions o;
  std::string problem;
  bool help = false;
  ASSERT_TRUE(ParseAgentOptions(std::size(argv), argv, o, problem, help)) << problem;
  EXPECT_EQ(o.uplinks, (std::vector<std::string>{"eth1", "bond0", "eth0"}));
  EXPECT_FALSE(o.uplink_auto);
  EXPECT_EQ(o.iface_rescan, std::chrono::milliseconds(2500));
}

TEST(AgentOptions, UplinkAutoAndTheDefaults) {
  const char* argv[] = {"xlb-agent", "--config", "c.yaml", "--uplink", "auto"};
  AgentOptions o;
  std::string problem;
  bool help = false;
  ASSERT_TRUE(ParseAgentOptions(std::size(argv), argv, o, problem, help)) << problem;
  EXPECT_TRUE(o.uplink_auto);
  EXPECT_TRUE(o.uplinks.empty());
  EXPECT_EQ(o.iface_rescan, std::chrono::milliseconds(5000));
  // Socket LB where the node has cgroup v2, found by the agent.
  EXPECT_EQ(o.socket_lb.mode, SocketLbOptions::Mode::kDefault);
  EXPECT_TRUE(o.socket_lb.cgroup.empty());
}

TEST(AgentOptions, SocketLbOff) {
  const char* argv[] = {"xlb-agent", "--config", "c.yaml", "--socket-lb", "off"};
  AgentOptions o;
  std::string problem;
  bool help = false;
  ASSERT_TRUE(ParseAgentOptions(std::size(argv), argv, o, problem, help)) << problem;
  EXPECT_EQ(o.socket_lb.mode, SocketLbOptions::Mode::kOff);
}

}  // namespace
}  // namespace xlb::agent_test
