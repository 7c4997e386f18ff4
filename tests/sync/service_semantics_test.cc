// kube-proxy's Service semantics in the maps (desired_state.h): traffic policies give a service
// an internal and an external table, a port without endpoints carries XLB_SVC_F_REJECT, a
// LoadBalancer IP with source ranges carries XLB_SVC_F_SOURCE_RANGES and its prefixes, and an
// affine service lists the backends that take new flows in xlb_affmatch_v1; all of it leaves
// with the service. Against the in-memory store, no root.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "sync_fixtures.h"

namespace xlb::testing {
namespace {

constexpr uint16_t kNodePort = 30080;

// TwoClusters(2) on cluster-a-node1 (198.18.0.11) with a LoadBalancer IP, an external IP and a
// NodePort.
Model Frontends(ServiceTrafficPolicy internal, ServiceTrafficPolicy external) {
  Model m = TwoClusters(2);
  m.SetLocalNode({"cluster-a-node1", {*IpAddress::Parse("198.18.0.11")}, ""});
  Service s = *m.FindService(kApi);
  s.load_balancer_ips = {*IpAddress::Parse("198.19.0.10")};
  s.external_ips = {*IpAddress::Parse("198.19.1.10")};
  s.ports.front().node_port = kNodePort;
  s.internal_policy = internal;
  s.external_policy = external;
  m.PutService(s);
  return m;
}

class SemanticsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(syncer_.Adopt().ok()); }

  void SyncModel(const Model& model) {
    auto desired = syncer_.Plan(model, DefaultPlans(model));
    ASSERT_TRUE(desired.ok()) << desired.error().ToString();
    EXPECT_TRUE(desired->problems.empty()) << desired->problems.front();
    desired_ = std::move(*desired);
    const SyncResult r = syncer_.Sync(desired_);
    ASSERT_TRUE(r.ok()) << r.error->ToString();
    EXPECT_TRUE(store_.violations().empty()) << store_.violations().front();
    // (Backends stay behind invalid: an ARRAY cannot erase.)
    const MapContents want = *desired_.maps.Contents();
    EXPECT_EQ(store_.contents().services.size(), want.services.size());
    EXPECT_EQ(store_.contents().tables, want.tables);
    EXPECT_EQ(store_.contents().affinity_match.size(), want.affinity_match.size());
    EXPECT_EQ(store_.contents().source_ranges.size(), want.source_ranges.size());
  }

  const xlb_service& At(const std::string& address, uint16_t port) const {
    return store_.contents().services.at(KeyOf(address, port, Protocol::kTcp));
  }

  // Addresses of the valid backends in the table of `service_id` that take slots.
  std::set<std::string> TableBackends(uint32_t service_id) const {
    const auto addresses = BackendAddresses(store_.contents());
    std::set<std::string> out;
    for (const uint32_t id : store_.table(service_id)) {
      if (id != XLB_ID_NONE) {
        out.insert(addresses.at(id));
      }
    }
    return out;
  }

  CheckingStore store_;
  Syncer syncer_{store_};
  DesiredState desired_;
};

TEST_F(SemanticsTest, ExternalLocalPutsExternalFrontendsOnATableOfThisNodesEndpoints) {
  SyncModel(Frontends(ServiceTrafficPolicy::kCluster, ServiceTrafficPolicy::kLocal));
  const uint32_t internal = At("198.18.100.10", 8080).id;
  EXPECT_EQ(At("198.18.200.10", 8080).id, internal);  // ClusterSet IP: internal
  const uint32_t external = At("198.19.0.10", 8080).id;
  EXPECT_NE(external, internal);
  EXPECT_EQ(At("198.19.1.10", 8080).id, external);  // external IP
  EXPECT_EQ(At("198.18.0.11", kNodePort).id, external);
  EXPECT_NE(At("198.18.0.11", kNodePort).flags & XLB_SVC_F_NODE_PORT, 0u);
  EXPECT_EQ(TableBackends(external), std::set<std::string>{"198.18.1.1"});
  EXPECT_EQ(TableBackends(internal).size(), 4u);
  EXPECT_EQ(At("198.19.0.10", 8080).backend_count, 1u);
  ASSERT_NE(desired_.Find(kApi, 8080, IpFamily::kIPv4, FrontendScope::kExternal), nullptr);
  EXPECT_EQ(desired_.Find(kApi, 8080, IpFamily::kIPv4, FrontendScope::kExternal)->Name(),
            "production/api-service 8080/TCP IPv4 external");

  // Back to Cluster: one table again, the external keys join the internal one's id.
  SyncModel(Frontends(ServiceTrafficPolicy::kCluster, ServiceTrafficPolicy::kCluster));
  EXPECT_EQ(At("198.19.0.10", 8080).id, At("198.18.100.10", 8080).id);
  EXPECT_EQ(store_.contents().tables.size(), 1u);
}

TEST_F(SemanticsTest, NoEndpointRejectsNoLocalEndpointDrops) {
  Model m = Frontends(ServiceTrafficPolicy::kCluster, ServiceTrafficPolicy::kLocal);
  m.SetLocalNode({"cluster-a-node9", {*IpAddress::Parse("198.18.0.19")}, ""});
  SyncModel(m);
  const xlb_service& external = At("198.19.0.10", 8080);
  EXPECT_EQ(external.backend_count, 0u);
  EXPECT_EQ(external.flags & XLB_SVC_F_REJECT, 0u);  // dropped, as kube-proxy drops
  EXPECT_EQ(At("198.18.100.10", 8080).flags & XLB_SVC_F_REJECT, 0u);

  m.SetEndpoints(kApi, "cluster-a", {});
  m.SetEndpoints(kApi, "cluster-b", {});
  SyncModel(m);
  for (const char* vip : {"198.18.100.10", "198.18.200.10", "198.19.0.10", "198.19.1.10"}) {
    EXPECT_NE(At(vip, 8080).flags & XLB_SVC_F_REJECT, 0u) << vip;
    EXPECT_EQ(At(vip, 8080).backend_count, 0u) << vip;
  }
  EXPECT_NE(At("198.18.0.19", kNodePort).flags & XLB_SVC_F_REJECT, 0u);
}

TEST_F(SemanticsTest, SourceRangesFilterTheLoadBalancerIpOnly) {
  Model m = Frontends(ServiceTrafficPolicy::kCluster, ServiceTrafficPolicy::kCluster);
  Service s = *m.FindService(kApi);
  s.load_balancer_source_ranges = {*IpPrefix::Parse("198.18.0.0/15"),
                                   *IpPrefix::Parse("203.0.113.0/24"),
                                   *IpPrefix::Parse("2001:db8::/32")};
  m.PutService(s);
  SyncModel(m);
  const xlb_service& lb = At("198.19.0.10", 8080);
  EXPECT_NE(lb.flags & XLB_SVC_F_SOURCE_RANGES, 0u);
  for (const char* other : {"198.18.100.10", "198.18.200.10", "198.19.1.10"}) {
    EXPECT_EQ(At(other, 8080).flags & XLB_SVC_F_SOURCE_RANGES, 0u) << other;
  }
  EXPECT_EQ(At("198.18.0.11", kNodePort).flags & XLB_SVC_F_SOURCE_RANGES, 0u);
  // The IPv4 prefixes under the table's id; the IPv6 one has no IPv6 LoadBalancer IP to guard.
  const auto& ranges = store_.contents().source_ranges;
  ASSERT_EQ(ranges.size(), 2u);
  std::set<std::string> seen;
  for (const xlb_src_range_key& k : ranges) {
    EXPECT_EQ(k.service_id, lb.id);
    EXPECT_EQ(k.family, XLB_FAMILY_IPV4);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &k.addr[0], text, sizeof(text));
    seen.insert(std::string(text) + "/" + std::to_string(k.prefixlen - XLB_SRC_RANGE_PREFIX_BASE));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"198.18.0.0/15", "203.0.113.0/24"}));

  // Ranges removed: the flag and the entries go.
  s.load_balancer_source_ranges.clear();
  m.PutService(s);
  SyncModel(m);
  EXPECT_EQ(At("198.19.0.10", 8080).flags & XLB_SVC_F_SOURCE_RANGES, 0u);
  EXPECT_TRUE(store_.contents().source_ranges.empty());
}

TEST_F(SemanticsTest, AffinityMatchesListTheBackendsTakingNewFlowsAndLeaveWithTheService) {
  Model m = TwoClusters(2);
  Service s = *m.FindService(kApi);
  s.affinity = SessionAffinity::kClientIP;
  s.affinity_timeout_s = 30;
  m.PutService(s);
  std::vector<Endpoint> a(m.EndpointsOf(kApi).begin(), m.EndpointsOf(kApi).begin() + 2);
  a[1].conditions = {false, false, true};  // terminating: listed, no slot, no match
  m.SetEndpoints(kApi, "cluster-a", a);
  SyncModel(m);
  const xlb_service& api = At("198.18.100.10", 8080);
  EXPECT_NE(api.flags & XLB_SVC_F_AFFINITY, 0u);
  EXPECT_EQ(api.affinity_timeout, 30u);
  const auto addresses = BackendAddresses(store_.contents());
  std::set<std::string> matched;
  for (const xlb_affinity_match_key& k : store_.contents().affinity_match) {
    EXPECT_EQ(k.service_id, api.id);
    matched.insert(addresses.at(k.backend_id));
  }
  EXPECT_EQ(matched, (std::set<std::string>{"198.18.1.1", "198.18.2.1", "198.18.2.2"}));

  m.RemoveService(kApi);
  SyncModel(m);
  EXPECT_TRUE(store_.contents().affinity_match.empty());
}

}  // namespace
}  // namespace xlb::testing
