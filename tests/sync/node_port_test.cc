// NodePorts against the in-memory store: (node address, nodePort, protocol) keys for every
// node address of the port's family, on the table of the port; gone with the nodePort; a
// restart writes nothing; a node address that is another service's VIP is a problem. And the
// config source's `node:` block. No root.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sync_fixtures.h"
#include "userspace/model/config_source.h"

namespace xlb::testing {
namespace {

constexpr uint16_t kNodePort = 30080;

// cluster-a (local) with two dual-stack endpoints of api-service (ClusterIP 198.18.100.10 and
// 2001:db8:100::10, ClusterSet IP 198.18.200.10, port http 8080) with `node_port`, on a node
// with `node_addresses`.
Model NodePortModel(uint16_t node_port, const std::vector<std::string>& node_addresses) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  Service s = ApiService();
  s.cluster_ips.push_back(*IpAddress::Parse("2001:db8:100::10"));
  s.ports.front().node_port = node_port;
  m.PutService(s);
  for (int i = 1; i <= 2; ++i) {
    Endpoint e;
    e.service = kApi;
    e.cluster = "cluster-a";
    e.addresses = {*IpAddress::Parse("198.18.1." + std::to_string(i)),
                   *IpAddress::Parse("2001:db8:1::" + std::to_string(i))};
    e.ports = {{"http", 8080, Protocol::kTcp}};
    m.AddEndpoint(e);
  }
  LocalNode node{"node-a1", {}};
  for (const std::string& a : node_addresses) {
    node.addresses.push_back(*IpAddress::Parse(a));
  }
  m.SetLocalNode(node);
  return m;
}

const std::vector<std::string> kNodeAddresses = {"198.18.0.11", "198.18.0.12", "2001:db8::11"};

class NodePortTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(syncer_.Adopt().ok()); }

  SyncResult SyncModel(const Model& model) {
    auto desired = syncer_.Plan(model, DefaultPlans(model));
    EXPECT_TRUE(desired.ok()) << desired.error().ToString();
    if (!desired.ok()) {
      return SyncResult{{}, {}, desired.error()};
    }
    EXPECT_TRUE(desired->problems.empty()) << desired->problems.front();
    desired_ = std::move(*desired);
    SyncResult r = syncer_.Sync(desired_);
    EXPECT_TRUE(store_.violations().empty()) << store_.violations().front();
    return r;
  }

  uint32_t IdAt(const std::string& address, uint16_t port) const {
    const auto& services = store_.contents().services;
    auto it = services.find(KeyOf(address, port, Protocol::kTcp));
    return it == services.end() ? XLB_ID_NONE : it->second.id;
  }

  CheckingStore store_;
  Syncer syncer_{store_};
  DesiredState desired_;
};

TEST_F(NodePortTest, EachNodeAddressOfTheFamilyIsAFrontendOfThePortsTable) {
  const SyncResult r = SyncModel(NodePortModel(kNodePort, kNodeAddresses));
  ASSERT_TRUE(r.ok()) << r.error->ToString();
  const DesiredService* v4 = desired_.Find(kApi, 8080, IpFamily::kIPv4);
  const DesiredService* v6 = desired_.Find(kApi, 8080, IpFamily::kIPv6);
  ASSERT_TRUE(v4 != nullptr && v6 != nullptr);
  EXPECT_NE(v4->id, v6->id);
  // ClusterIP, ClusterSet IP, then one NodePort key per IPv4 node address.
  EXPECT_EQ(v4->keys.size(), 4u);
  EXPECT_EQ(v6->keys.size(), 2u);  // ClusterIP and the IPv6 node address
  EXPECT_EQ(IdAt("198.18.0.11", kNodePort), v4->id);
  EXPECT_EQ(IdAt("198.18.0.12", kNodePort), v4->id);
  EXPECT_EQ(IdAt("2001:db8::11", kNodePort), v6->id);
  EXPECT_EQ(IdAt("198.18.100.10", 8080), v4->id);
  // Only the nodePort on node addresses, never the service port, and no cross-family key.
  EXPECT_EQ(IdAt("198.18.0.11", 8080), XLB_ID_NONE);
  EXPECT_EQ(store_.contents().services.size(), 6u);
  // The same entry as the port's VIPs (same id, hence the same table and backends), marked as
  // a NodePort so that the datapath routes its answers itself (maps/xlb_abi.h).
  const auto& services = store_.contents().services;
  xlb_service node_port = services.at(KeyOf("198.18.0.11", kNodePort, Protocol::kTcp));
  const xlb_service& vip = services.at(KeyOf("198.18.100.10", 8080, Protocol::kTcp));
  EXPECT_EQ(node_port.flags, vip.flags | XLB_SVC_F_NODE_PORT);
  EXPECT_EQ(vip.flags & XLB_SVC_F_NODE_PORT, 0u);
  node_port.flags = vip.flags;
  EXPECT_TRUE(AbiEqual(node_port, vip));
  EXPECT_EQ(r.writes[WriteKind::kTable], 2u);  // no table of its own
  EXPECT_EQ(r.writes[WriteKind::kService], 6u);
  // The node addresses pass the VIP filter.
  EXPECT_EQ(desired_.maps.vip_filter, VipFilterWords(store_.contents().services));
  EXPECT_EQ(store_.contents(), *desired_.maps.Contents());
}

TEST_F(NodePortTest, NoNodeAddressMeansNoNodePortKeys) {
  ASSERT_TRUE(SyncModel(NodePortModel(kNodePort, {})).ok());
  EXPECT_EQ(store_.contents().services.size(), 3u);  // the VIPs only
  EXPECT_EQ(desired_.Find(kApi, 8080, IpFamily::kIPv4)->keys.size(), 2u);
}

TEST_F(NodePortTest, RemovingTheNodePortErasesItsKeysAndKeepsTheTable) {
  ASSERT_TRUE(SyncModel(NodePortModel(kNodePort, kNodeAddresses)).ok());
  const uint32_t v4 = desired_.Find(kApi, 8080, IpFamily::kIPv4)->id;
  store_.ResetCounts();
  const SyncResult r = SyncModel(NodePortModel(0, kNodeAddresses));
  ASSERT_TRUE(r.ok()) << r.error->ToString();
  EXPECT_EQ(r.writes[WriteKind::kServiceRemoval], 3u) << r.writes.ToString();
  EXPECT_EQ(r.writes[WriteKind::kService], 0u);
  EXPECT_EQ(r.writes[WriteKind::kTable], 0u);
  EXPECT_EQ(r.writes[WriteKind::kBackend], 0u);
  EXPECT_EQ(desired_.Find(kApi, 8080, IpFamily::kIPv4)->id, v4);
  EXPECT_EQ(IdAt("198.18.0.11", kNodePort), XLB_ID_NONE);
  EXPECT_EQ(IdAt("198.18.0.12", kNodePort), XLB_ID_NONE);
  EXPECT_EQ(IdAt("2001:db8::11", kNodePort), XLB_ID_NONE);
  EXPECT_EQ(IdAt("198.18.100.10", 8080), v4);
  EXPECT_EQ(store_.contents().services.size(), 3u);
  EXPECT_EQ(store_.contents(), *desired_.maps.Contents());

  // And back: the keys return on the same table.
  const SyncResult back = SyncModel(NodePortModel(kNodePort, kNodeAddresses));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(IdAt("198.18.0.12", kNodePort), v4);
}

TEST_F(NodePortTest, ARestartWithTheSameStateWritesNothing) {
  const Model m = NodePortModel(kNodePort, kNodeAddresses);
  ASSERT_TRUE(SyncModel(m).ok());
  const MapContents before = store_.contents();
  store_.ResetCounts();

  Syncer restarted(store_);
  ASSERT_TRUE(restarted.Adopt().ok());
  auto desired = restarted.Plan(m, DefaultPlans(m));
  ASSERT_TRUE(desired.ok());
  EXPECT_TRUE(desired->problems.empty());
  const SyncResult r = restarted.Sync(*desired);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.writes.total(), 0u) << r.writes.ToString();
  EXPECT_EQ(store_.writes().total(), 0u);
  EXPECT_EQ(store_.contents(), before);
}

TEST_F(NodePortTest, ANodeAddressThatIsAnotherServicesVipIsAProblem) {
  // web's external IP is the node's address, and api's nodePort is web's port 80.
  Model m = NodePortModel(80, {"198.18.0.11"});
  const NamespacedName web{"production", "web"};
  Service s;
  s.name = web;
  s.cluster_ips = {*IpAddress::Parse("198.18.100.20")};
  s.external_ips = {*IpAddress::Parse("198.18.0.11")};
  s.ports = {ServicePort{"http", 80, Protocol::kTcp, 8080, "", 0, ""}};
  m.PutService(s);
  AddEndpoints(m, web, "cluster-a", 1, 2, {}, 101);

  auto desired = syncer_.Plan(m, DefaultPlans(m));
  ASSERT_TRUE(desired.ok()) << desired.error().ToString();
  ASSERT_EQ(desired->problems.size(), 1u);
  EXPECT_EQ(desired->problems.front(),
            "production/api-service 8080/TCP IPv4: NodePort 198.18.0.11:80 is already another "
            "service's");
  // The VIP stays web's; api keeps its VIPs.
  const DesiredService* w = desired->Find(web, 80);
  const DesiredService* api = desired->Find(kApi, 8080);
  ASSERT_TRUE(w != nullptr && api != nullptr);
  EXPECT_EQ(desired->maps.services.at(KeyOf("198.18.0.11", 80, Protocol::kTcp)).id, w->id);
  EXPECT_EQ(api->keys.size(), 2u);
  ASSERT_TRUE(syncer_.Sync(*desired).ok());
  EXPECT_TRUE(store_.violations().empty());
}

// The config source: `node:` carries the addresses into the model.
const std::string kHeader = "apiVersion: xlb.dev/v1alpha1\nkind: Config\n";

TEST(NodeConfig, ReadsTheNodeBlock) {
  const auto r = ParseConfig("cluster.yaml", kHeader +
                                                 "node:\n"
                                                 "  name: node-a1\n"
                                                 "  addresses: [198.18.0.11, 2001:db8::11]\n"
                                                 "clusters:\n"
                                                 "- {name: cluster-a, id: 1, local: true}\n");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  EXPECT_EQ(r->local_node().name, "node-a1");
  ASSERT_EQ(r->local_node().addresses.size(), 2u);
  EXPECT_EQ(r->local_node().addresses[0].ToString(), "198.18.0.11");
  EXPECT_EQ(r->local_node().addresses[1].ToString(), "2001:db8::11");

  const auto none = ParseConfig("cluster.yaml", kHeader + "clusters:\n- {name: a, id: 1}\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->local_node().addresses.empty());
}

TEST(NodeConfig, RejectsABadNodeAddressNamingTheField) {
  const auto r = ParseConfig("cluster.yaml", kHeader +
                                                 "node:\n"
                                                 "  name: node-a1\n"
                                                 "  addresses:\n"
                                                 "  - 198.18.0.11\n"
                                                 "  - 198.18.0.300\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.error().size(), 1u) << ToString(r.error());
  EXPECT_EQ(r.error().front().ToString(),
            "cluster.yaml: document 1: node.addresses[1]: expected an IPv4 or IPv6 address, got "
            "\"198.18.0.300\" (line 7)");
}

TEST(NodeConfig, RejectsATwiceDeclaredNodeAndAnEmptyOrRepeatedAddressList) {
  const auto twice = ParseConfig("cluster.yaml", kHeader + "node: {addresses: [198.18.0.11]}\n---\n" +
                                                     kHeader + "node: {addresses: [198.18.0.12]}\n");
  ASSERT_FALSE(twice.ok());
  ASSERT_EQ(twice.error().size(), 1u) << ToString(twice.error());
  EXPECT_EQ(twice.error().front().ToString(),
            "cluster.yaml: document 2: node: node declared twice (first at document 1, node) "
            "(line 7)");

  const auto empty = ParseConfig("cluster.yaml", kHeader + "node: {addresses: []}\n");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(ToString(empty.error()).find("node.addresses: expected at least one address"),
            std::string::npos)
      << ToString(empty.error());

  const auto repeated =
      ParseConfig("cluster.yaml", kHeader + "node: {addresses: [198.18.0.11, 198.18.0.11]}\n");
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(ToString(repeated.error()).find("node.addresses[1]: address 198.18.0.11 given twice"),
            std::string::npos)
      << ToString(repeated.error());
}

}  // namespace
}  // namespace xlb::testing
