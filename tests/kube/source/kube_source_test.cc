// KubeSource driven through its ResourceEvents the way the watch client drives them, for two
// directly watched clusters and for MCS, checked on the Model after Drain().
#include "userspace/kube/source/kube_source.h"
#include "util/rfc3339.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "tests/kube/source/kube_fixtures.h"

namespace xlb::kube {
namespace {

using namespace std::chrono_literals;
using namespace xlb::kube::testing;  // NOLINT: the fixtures

const NamespacedName kApi{"production", "api"};

IpAddress Ip(const char* s) {
  return *IpAddress::Parse(s);
}

// Model::RemoveService arrives with the incremental planner; until then a removed service keeps
// its (endpoint-less) entry.
template <typename M>
constexpr bool kModelRemovesServices = requires(M& m, const NamespacedName& n) {
  m.RemoveService(n);
};

ClusterConfig Direct(const std::string& name, std::chrono::milliseconds stale = 60s) {
  ClusterConfig c;
  c.name = name;
  c.kubeconfig = "/k/" + name;
  c.stale_after = stale;
  return c;
}

// cluster-a (local, id 1) and cluster-b (direct, derived id, stale after 200 ms).
KubeSourcesConfig TwoClusters() {
  KubeSourcesConfig c;
  c.local.name = "cluster-a";
  c.local.id = 1;
  c.local.in_cluster = true;
  c.remotes.push_back(Direct("cluster-b", 200ms));
  return c;
}

// cluster-a (local) and cluster-c, seen through cluster-a's MCS objects.
KubeSourcesConfig WithMcs() {
  KubeSourcesConfig c = TwoClusters();
  ClusterConfig mcs;
  mcs.name = "cluster-c";
  mcs.mode = ClusterMode::kMcs;
  c.remotes.push_back(mcs);
  c.service_imports = "v1alpha1";
  return c;
}

// The model's endpoints of `service` in `cluster`, in order.
std::vector<Endpoint> EndpointsIn(const Model& m, const NamespacedName& service,
                                  const std::string& cluster) {
  std::vector<Endpoint> out;
  for (const Endpoint& e : m.EndpointsOf(service)) {
    if (e.cluster == cluster) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<std::string> AddressesIn(const Model& m, const NamespacedName& service,
                                     const std::string& cluster) {
  std::vector<std::string> out;
  for (const Endpoint& e : EndpointsIn(m, service, cluster)) {
    out.push_back(e.addresses.at(0).ToString());
  }
  return out;
}

class KubeSourceTest : public ::testing::Test {
 protected:
  void Start(KubeSourcesConfig config) {
    source_ = std::make_unique<KubeSource>(
        std::move(config),
        KubeSource::Options{[this](const std::string& line) { logs_.push_back(line); }});
  }
  ResourceEvents& Events(const std::string& cluster, KubeResource kind) {
    ResourceEvents* e = source_->EventsFor(cluster, kind);
    EXPECT_NE(e, nullptr) << cluster << " " << ToString(kind);
    return *e;
  }
  DrainResult Drain() { return source_->Drain(model_); }
  bool Logged(const std::string& needle) const {
    return std::any_of(logs_.begin(), logs_.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  }

  // cluster-a: api with 198.18.1.1 (node-a1) and 198.18.1.2; cluster-b: api with 198.18.2.1
  // on node-b1 (198.18.0.21).
  void FillTwoClusters() {
    Start(TwoClusters());
    Events("cluster-a", KubeResource::kServices)
        .Replace({ServiceObject("production", "api", "198.18.100.10")});
    Events("cluster-a", KubeResource::kEndpointSlices)
        .Replace({SliceObject(
            "production", "api-a1", "api",
            {EndpointObject("198.18.1.1", "node-a1"), EndpointObject("198.18.1.2", "node-a1")})});
    Events("cluster-a", KubeResource::kNodes).Replace({NodeObject("node-a1", "198.18.0.11")});
    Events("cluster-b", KubeResource::kServices)
        .Replace({ServiceObject("production", "api", "198.18.110.10")});
    Events("cluster-b", KubeResource::kEndpointSlices)
        .Replace({SliceObject("production", "api-b1", "api",
                              {EndpointObject("198.18.2.1", "node-b1")})});
    Events("cluster-b", KubeResource::kNodes).Replace({NodeObject("node-b1", "198.18.0.21")});
  }

  std::unique_ptr<KubeSource> source_;
  Model model_;
  std::vector<std::string> logs_;
};

TEST_F(KubeSourceTest, TwoDirectClustersReachTheModel) {
  FillTwoClusters();
  EXPECT_TRUE(source_->LocalSynced());
  EXPECT_TRUE(source_->AllSynced());
  const DrainResult r = Drain();
  EXPECT_TRUE(r.clusters);
  EXPECT_EQ(r.services, std::vector<NamespacedName>{kApi});

  ASSERT_EQ(model_.clusters().size(), 2u);
  EXPECT_EQ(model_.clusters()[0], (Cluster{1, "cluster-a", true}));
  EXPECT_EQ(model_.clusters()[1], (Cluster{ClusterIdOf("cluster-b"), "cluster-b", false}));

  const Service* api = model_.FindService(kApi);
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->cluster_ips, std::vector<IpAddress>{Ip("198.18.100.10")});  // the local one
  ASSERT_EQ(api->ports.size(), 1u);
  EXPECT_EQ(api->ports[0].port, 80);

  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a"),
            (std::vector<std::string>{"198.18.1.1", "198.18.1.2"}));
  const std::vector<Endpoint> b = EndpointsIn(model_, kApi, "cluster-b");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].addresses[0], Ip("198.18.2.1"));
  EXPECT_EQ(b[0].node_name, "node-b1");
  EXPECT_EQ(b[0].node_address, Ip("198.18.0.21"));  // the tunnel endpoint
  EXPECT_EQ(b[0].ports, (std::vector<EndpointPort>{{"http", 8080, Protocol::kTcp}}));
  EXPECT_TRUE(b[0].TakesNewFlows());

  // Nothing pending: a second Drain writes nothing.
  EXPECT_FALSE(Drain().changed());
}

TEST_F(KubeSourceTest, WatchesPerClusterAndResource) {
  Start(WithMcs());
  const std::vector<KubeWatch> w = source_->Watches();
  std::vector<std::string> seen;
  for (const KubeWatch& x : w) {
    EXPECT_NE(x.events, nullptr);
    EXPECT_EQ(x.events, source_->EventsFor(x.cluster, x.kind));
    seen.push_back(x.cluster + " " + x.resource.path + " " + x.resource.kind);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "cluster-a /api/v1/services Service",
                      "cluster-a /apis/discovery.k8s.io/v1/endpointslices EndpointSlice",
                      "cluster-a /api/v1/nodes Node",
                      "cluster-a /apis/multicluster.x-k8s.io/v1alpha1/serviceimports ServiceImport",
                      "cluster-b /api/v1/services Service",
                      "cluster-b /apis/discovery.k8s.io/v1/endpointslices EndpointSlice",
                      "cluster-b /api/v1/nodes Node",
                  }));
  EXPECT_TRUE(w[0].local && w[0].in_cluster);
  EXPECT_EQ(w[4].kubeconfig, "/k/cluster-b");
  EXPECT_EQ(source_->EventsFor("cluster-c", KubeResource::kEndpointSlices), nullptr);  // mcs
  EXPECT_EQ(source_->EventsFor("cluster-b", KubeResource::kServiceImports), nullptr);
}

TEST_F(KubeSourceTest, SliceCreateUpdateDelete) {
  FillTwoClusters();
  Drain();
  ResourceEvents& slices_b = Events("cluster-b", KubeResource::kEndpointSlices);
  // A second slice of the same service: the union.
  slices_b.Upsert(SliceObject("production", "api-b2", "api", {EndpointObject("198.18.2.2")}));
  DrainResult r = Drain();
  EXPECT_EQ(r.services, std::vector<NamespacedName>{kApi});
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"),
            (std::vector<std::string>{"198.18.2.1", "198.18.2.2"}));
  // Update: the endpoint stops being ready.
  slices_b.Upsert(SliceObject("production", "api-b2", "api",
                              {EndpointObject("198.18.2.2", "", ReadyConditions(false))}));
  Drain();
  std::vector<Endpoint> b = EndpointsIn(model_, kApi, "cluster-b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_FALSE(b[1].TakesNewFlows());
  EXPECT_EQ(b[1].conditions.ready, std::optional<bool>(false));
  // Delete.
  slices_b.Delete(SliceObject("production", "api-b1", "api", json::array()));
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), (std::vector<std::string>{"198.18.2.2"}));
  // Cluster a untouched throughout.
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a").size(), 2u);
  // The same object again changes nothing.
  slices_b.Upsert(SliceObject("production", "api-b2", "api",
                              {EndpointObject("198.18.2.2", "", ReadyConditions(false))}));
  EXPECT_FALSE(Drain().changed());
}

// The EndpointSlice's last-change-trigger-time reaches the agent with the change it carries:
// the earliest of the changes drained at once, and only for a change that wrote something.
TEST_F(KubeSourceTest, TriggerTimesComeWithTheChangesThatWroteSomething) {
  FillTwoClusters();
  Drain();
  ResourceEvents& slices_b = Events("cluster-b", KubeResource::kEndpointSlices);
  auto with_trigger = [](json slice, const std::string& when) {
    slice["metadata"]["annotations"][kTriggerTimeAnnotation] = when;
    return slice;
  };
  slices_b.Upsert(with_trigger(
      SliceObject("production", "api-b2", "api", {EndpointObject("198.18.2.2")}),
      "2026-12-07T01:00:02.5Z"));
  slices_b.Upsert(with_trigger(
      SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.9", "node-b1")}),
      "2026-12-07T01:00:01Z"));
  DrainResult r = Drain();
  ASSERT_EQ(r.trigger_times.size(), 1u);
  EXPECT_EQ(r.trigger_times.at(kApi), *ParseRfc3339("2026-12-07T01:00:01Z"));
  // The same slices again (a relist): nothing written, nothing to measure.
  slices_b.Upsert(with_trigger(
      SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.9", "node-b1")}),
      "2026-12-07T01:00:01Z"));
  r = Drain();
  EXPECT_FALSE(r.changed());
  EXPECT_TRUE(r.trigger_times.empty());
  // Without the annotation (or with a bad one) a change is applied and not measured.
  slices_b.Upsert(with_trigger(
      SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.8", "node-b1")}),
      "yesterday"));
  r = Drain();
  EXPECT_EQ(r.services, std::vector<NamespacedName>{kApi});
  EXPECT_TRUE(r.trigger_times.empty());
}

TEST_F(KubeSourceTest, NilConditionsReachTheModelUnset) {
  FillTwoClusters();
  Events("cluster-b", KubeResource::kEndpointSlices)
      .Upsert(SliceObject("production", "api-b1", "api",
                          {EndpointObject("198.18.2.1", "node-b1"),
                           EndpointObject("198.18.2.3", "node-b1", {{"serving", false}})}));
  Drain();
  const std::vector<Endpoint> b = EndpointsIn(model_, kApi, "cluster-b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].conditions, EndpointConditions{});
  EXPECT_TRUE(b[0].TakesNewFlows());  // nil ready = ready
  EXPECT_FALSE(b[1].conditions.ready.has_value());
  EXPECT_EQ(b[1].conditions.serving, std::optional<bool>(false));
  EXPECT_TRUE(b[1].TakesNewFlows());  // nil ready = ready, whatever serving says (kube-proxy)
}

TEST_F(KubeSourceTest, FqdnSlicesIgnoredAndCounted) {
  FillTwoClusters();
  Drain();
  ResourceEvents& slices_b = Events("cluster-b", KubeResource::kEndpointSlices);
  slices_b.Upsert(
      SliceObject("production", "api-fqdn", "api", {EndpointObject("db.example.com")}, "FQDN"));
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), (std::vector<std::string>{"198.18.2.1"}));
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "fqdn"), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "EndpointSlice", "fqdn"), 0u);
}

TEST_F(KubeSourceTest, BadObjectsAreCountedAndKeepGoodState) {
  FillTwoClusters();
  Drain();
  ResourceEvents& slices_b = Events("cluster-b", KubeResource::kEndpointSlices);
  ResourceEvents& services_b = Events("cluster-b", KubeResource::kServices);

  // The slice turns unusable as a whole: its last good version stays.
  json broken = SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.9")});
  broken.erase("addressType");
  slices_b.Upsert(broken);
  EXPECT_FALSE(Drain().changed());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), (std::vector<std::string>{"198.18.2.1"}));
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "bad_address_type"), 1u);
  EXPECT_TRUE(
      Logged("cluster-b: EndpointSlice production/api-b1: addressType: expected one of "
             "IPv4, IPv6, FQDN, got nothing"));

  // A relist that still lists it broken keeps it too; one without a name is counted.
  json nameless = SliceObject("production", "x", "api", {EndpointObject("198.18.2.8")});
  nameless["metadata"].erase("name");
  slices_b.Replace({broken, nameless, json("garbage")});
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), (std::vector<std::string>{"198.18.2.1"}));
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "missing_name"), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "bad_object"), 1u);

  // Bad parts: a port of 70000 and an address "x" are skipped, the rest applies.
  json partly = SliceObject("production", "api-b1", "api",
                            {EndpointObject("x", "node-b1"), EndpointObject("198.18.2.4")});
  partly["ports"].push_back({{"name", "big"}, {"port", 70000}});
  slices_b.Upsert(partly);
  Drain();
  const std::vector<Endpoint> b = EndpointsIn(model_, kApi, "cluster-b");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].addresses[0], Ip("198.18.2.4"));
  EXPECT_EQ(b[0].ports.size(), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "bad_port"), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-b", "EndpointSlice", "bad_address"), 1u);

  // A broken Service keeps its last good version; a service without a name changes nothing.
  json bad_service = ServiceObject("production", "api", "198.18.110.10");
  bad_service["spec"] = 42;
  services_b.Upsert(bad_service);
  Events("cluster-a", KubeResource::kServices).Upsert(bad_service);
  EXPECT_FALSE(Drain().changed());
  ASSERT_NE(model_.FindService(kApi), nullptr);
  EXPECT_EQ(model_.FindService(kApi)->cluster_ips, std::vector<IpAddress>{Ip("198.18.100.10")});
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_spec"), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-b", "Service", "bad_spec"), 1u);
  const auto problems = source_->Problems();
  EXPECT_EQ(problems.count(ProblemKey{"cluster-b", "Service", "bad_spec"}), 1u);
}

TEST_F(KubeSourceTest, ReplaceRemovesWhatIsGone) {
  FillTwoClusters();
  Events("cluster-a", KubeResource::kServices)
      .Upsert(ServiceObject("production", "web", "198.18.100.20"));
  Events("cluster-a", KubeResource::kEndpointSlices)
      .Upsert(SliceObject("production", "web-1", "web", {EndpointObject("198.18.1.20")}));
  Drain();
  ASSERT_NE(model_.FindService({"production", "web"}), nullptr);
  ASSERT_EQ(AddressesIn(model_, {"production", "web"}, "cluster-a").size(), 1u);

  // A relist (after 410 Gone) without web's slice and with api's changed.
  Events("cluster-a", KubeResource::kEndpointSlices)
      .Replace({SliceObject("production", "api-a1", "api", {EndpointObject("198.18.1.1")})});
  DrainResult r = Drain();
  EXPECT_EQ(r.services, (std::vector<NamespacedName>{kApi, {"production", "web"}}));
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a"), (std::vector<std::string>{"198.18.1.1"}));
  EXPECT_TRUE(AddressesIn(model_, {"production", "web"}, "cluster-a").empty());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b").size(), 1u);  // other clusters untouched

  // Services: web is gone from the relist.
  Events("cluster-a", KubeResource::kServices)
      .Replace({ServiceObject("production", "api", "198.18.100.10")});
  r = Drain();
  EXPECT_EQ(r.services, (std::vector<NamespacedName>{{"production", "web"}}));
  if constexpr (kModelRemovesServices<Model>) {
    EXPECT_EQ(model_.FindService({"production", "web"}), nullptr);
  }
  EXPECT_TRUE(model_.EndpointsOf({"production", "web"}).empty());
}

TEST_F(KubeSourceTest, StaleAfterUnreachableThenBackOnReplace) {
  FillTwoClusters();
  Drain();
  ASSERT_EQ(AddressesIn(model_, kApi, "cluster-b").size(), 1u);
  const auto lost = std::chrono::steady_clock::now();
  Events("cluster-b", KubeResource::kEndpointSlices).Unreachable("connection refused");
  // Still in force right after.
  EXPECT_FALSE(Drain().changed());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b").size(), 1u);
  // WaitForChange wakes when the 200 ms are up: not before, and not only at its own timeout
  // (by which it would also find the cluster stale). No upper bound tighter than that: a
  // loaded machine may wake it late.
  constexpr auto kWaitTimeout = 60s;
  ASSERT_TRUE(source_->WaitForChange(kWaitTimeout));
  EXPECT_GE(std::chrono::steady_clock::now() - lost, 200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - lost, kWaitTimeout);
  DrainResult r = Drain();
  EXPECT_EQ(r.services, std::vector<NamespacedName>{kApi});
  EXPECT_TRUE(AddressesIn(model_, kApi, "cluster-b").empty());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a").size(), 2u);  // the local one stays
  EXPECT_TRUE(source_->Clusters()[1].stale);
  EXPECT_TRUE(Logged("cluster-b: EndpointSlices unreachable for 200 ms (connection refused)"));
  // Events while stale are cached, not applied.
  Events("cluster-b", KubeResource::kEndpointSlices)
      .Upsert(SliceObject("production", "api-b2", "api", {EndpointObject("198.18.2.2")}));
  Drain();
  EXPECT_TRUE(AddressesIn(model_, kApi, "cluster-b").empty());
  // The relist brings the cluster back.
  Events("cluster-b", KubeResource::kEndpointSlices)
      .Replace({SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.1")})});
  r = Drain();
  EXPECT_EQ(r.services, std::vector<NamespacedName>{kApi});
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), (std::vector<std::string>{"198.18.2.1"}));
  EXPECT_FALSE(source_->Clusters()[1].stale);
}

TEST_F(KubeSourceTest, LocalClusterIsNeverStale) {
  FillTwoClusters();
  Drain();
  Events("cluster-a", KubeResource::kEndpointSlices).Unreachable("apiserver down");
  EXPECT_FALSE(source_->WaitForChange(400ms));
  EXPECT_FALSE(Drain().changed());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a").size(), 2u);
  const auto resources = source_->Resources();
  EXPECT_TRUE(resources[1].unreachable);
  EXPECT_EQ(resources[1].last_error, "apiserver down");
}

// Staleness follows the endpoints' own watch: a remote whose Services or Nodes watch fails
// (say RBAC lost on nodes) keeps its endpoints.
TEST_F(KubeSourceTest, OnlyTheEndpointSliceWatchMakesAClusterStale) {
  FillTwoClusters();
  Drain();
  Events("cluster-b", KubeResource::kServices).Unreachable("403 Forbidden");
  Events("cluster-b", KubeResource::kNodes).Unreachable("403 Forbidden");
  EXPECT_FALSE(source_->WaitForChange(400ms));
  EXPECT_FALSE(Drain().changed());
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b").size(), 1u);
  EXPECT_FALSE(source_->Clusters()[1].stale);
}

TEST_F(KubeSourceTest, NodeAddressChangeMovesTheTunnel) {
  FillTwoClusters();
  Drain();
  Events("cluster-b", KubeResource::kNodes).Upsert(NodeObject("node-b1", "198.18.0.22"));
  EXPECT_EQ(Drain().services, std::vector<NamespacedName>{kApi});
  EXPECT_EQ(EndpointsIn(model_, kApi, "cluster-b").at(0).node_address, Ip("198.18.0.22"));
  // A status update that keeps the address changes nothing.
  json same = NodeObject("node-b1", "198.18.0.22");
  same["metadata"]["resourceVersion"] = "2";
  Events("cluster-b", KubeResource::kNodes).Upsert(same);
  EXPECT_FALSE(Drain().changed());
  // Its Node gone (or not listed yet): a remote pod without its node's address would be
  // planned as routed, so it waits out of the model until the Node is back.
  Events("cluster-b", KubeResource::kNodes).Delete(same);
  Drain();
  EXPECT_TRUE(EndpointsIn(model_, kApi, "cluster-b").empty());
  Events("cluster-b", KubeResource::kNodes).Upsert(NodeObject("node-b1", "198.18.0.23"));
  Drain();
  ASSERT_EQ(EndpointsIn(model_, kApi, "cluster-b").size(), 1u);
  EXPECT_EQ(EndpointsIn(model_, kApi, "cluster-b").at(0).node_address, Ip("198.18.0.23"));
}

// Every address of every Node, with pods or without, is a tunnel peer of its cluster; a status
// update that keeps them writes nothing, a Node's deletion takes its addresses away.
TEST_F(KubeSourceTest, EveryNodesAddressesAreItsClustersNodeAddresses) {
  FillTwoClusters();
  Drain();
  auto nodes_of = [&](const char* cluster) {
    std::vector<std::string> out;
    if (const auto it = model_.node_addresses().find(cluster);
        it != model_.node_addresses().end()) {
      for (const IpAddress& a : it->second) {
        out.push_back(a.ToString());
      }
    }
    return out;
  };
  EXPECT_EQ(nodes_of("cluster-a"), std::vector<std::string>{"198.18.0.11"});
  EXPECT_EQ(nodes_of("cluster-b"), std::vector<std::string>{"198.18.0.21"});
  // A frontend: no pod of any service on it.
  Events("cluster-b", KubeResource::kNodes)
      .Upsert(NodeObject("node-b7", "198.18.0.27", "198.19.0.27"));
  DrainResult r = Drain();
  EXPECT_TRUE(r.node_addresses);
  EXPECT_TRUE(r.services.empty()) << "no endpoint lives there";
  EXPECT_EQ(nodes_of("cluster-b"),
            (std::vector<std::string>{"198.18.0.21", "198.18.0.27", "198.19.0.27"}));
  EXPECT_TRUE(model_.TakeChanges().nodes);
  json same = NodeObject("node-b7", "198.18.0.27", "198.19.0.27");
  same["metadata"]["resourceVersion"] = "2";
  Events("cluster-b", KubeResource::kNodes).Upsert(same);
  EXPECT_FALSE(Drain().changed());
  EXPECT_FALSE(model_.TakeChanges().nodes);
  Events("cluster-b", KubeResource::kNodes).Delete(same);
  EXPECT_TRUE(Drain().node_addresses);
  EXPECT_EQ(nodes_of("cluster-b"), std::vector<std::string>{"198.18.0.21"});
}

// A remote endpoint on an unknown Node waits for it; one without nodeName is routed (an
// inter-cluster network reaches it); a local endpoint stays whatever its Node.
TEST_F(KubeSourceTest, RemoteEndpointWaitsForItsNodeButLocalAndNodelessOnesDoNot) {
  FillTwoClusters();
  Events("cluster-b", KubeResource::kEndpointSlices)
      .Upsert(SliceObject("production", "api-b1", "api",
                          {EndpointObject("198.18.2.1", "node-b1"),
                           EndpointObject("198.18.2.2", "node-b9"), EndpointObject("198.18.2.3")}));
  Events("cluster-a", KubeResource::kEndpointSlices)
      .Upsert(
          SliceObject("production", "api-a1", "api", {EndpointObject("198.18.1.1", "node-a9")}));
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"),
            (std::vector<std::string>{"198.18.2.1", "198.18.2.3"}));
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a"), std::vector<std::string>{"198.18.1.1"});
  Events("cluster-b", KubeResource::kNodes).Upsert(NodeObject("node-b9", "198.18.0.29"));
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"),
            (std::vector<std::string>{"198.18.2.1", "198.18.2.2", "198.18.2.3"}));
}

// The model must not depend on when the source is drained: a remote endpoint waiting for its
// Node, which then appears without any address (or appears so and is deleted again), ends up
// as a fresh source given only the final objects computes it.
TEST_F(KubeSourceTest, WaitingEndpointAgreesWithAFreshSourceWhenItsNodeHasNoAddress) {
  const json waiting_slice = SliceObject(
      "production", "api-b1", "api",
      {EndpointObject("198.18.2.1", "node-b1"), EndpointObject("198.18.2.2", "node-b9")});
  // A source given the final cluster-b Nodes at once, drained once.
  const auto fresh = [&](const std::vector<json>& nodes_b) {
    KubeSource source(TwoClusters(), KubeSource::Options{[](const std::string&) {}});
    const auto events = [&](const std::string& cluster, KubeResource kind) -> ResourceEvents& {
      return *source.EventsFor(cluster, kind);
    };
    events("cluster-a", KubeResource::kServices)
        .Replace({ServiceObject("production", "api", "198.18.100.10")});
    events("cluster-a", KubeResource::kEndpointSlices).Replace({});
    events("cluster-a", KubeResource::kNodes).Replace({});
    events("cluster-b", KubeResource::kServices)
        .Replace({ServiceObject("production", "api", "198.18.110.10")});
    events("cluster-b", KubeResource::kEndpointSlices).Replace({waiting_slice});
    events("cluster-b", KubeResource::kNodes).Replace(nodes_b);
    Model m;
    source.Drain(m);
    return EndpointsIn(m, kApi, "cluster-b");
  };
  FillTwoClusters();
  Events("cluster-a", KubeResource::kEndpointSlices).Replace({});
  Events("cluster-a", KubeResource::kNodes).Replace({});
  Events("cluster-b", KubeResource::kEndpointSlices).Upsert(waiting_slice);
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-b"), std::vector<std::string>{"198.18.2.1"});

  const json addressless = NodeObject("node-b9", "");
  Events("cluster-b", KubeResource::kNodes).Upsert(addressless);
  Drain();
  const std::vector<Endpoint> with_node =
      fresh({NodeObject("node-b1", "198.18.0.21"), addressless});
  EXPECT_EQ(with_node.size(), 2u);
  EXPECT_EQ(EndpointsIn(model_, kApi, "cluster-b"), with_node);

  Events("cluster-b", KubeResource::kNodes).Delete(addressless);
  Drain();
  const std::vector<Endpoint> without_node = fresh({NodeObject("node-b1", "198.18.0.21")});
  EXPECT_EQ(without_node.size(), 1u);
  EXPECT_EQ(EndpointsIn(model_, kApi, "cluster-b"), without_node);
}

TEST_F(KubeSourceTest, ExternalNameCountsAsAbsent) {
  FillTwoClusters();
  Drain();
  json ext = ServiceObject("production", "api", "");
  ext["spec"] = {{"type", "ExternalName"}, {"externalName", "api.example.com"}};
  Events("cluster-a", KubeResource::kServices).Upsert(ext);
  Drain();
  // cluster-b still has the Service: api exists, without the local VIPs.
  const Service* api = model_.FindService(kApi);
  ASSERT_NE(api, nullptr);
  EXPECT_TRUE(api->cluster_ips.empty());
  EXPECT_EQ(api->ports.size(), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "external_name"), 1u);
}

// A problem is counted and logged when it appears on an object, not at every relist or
// update that still has it; a new problem on the object, or the object deleted and written
// again, is reported anew.
TEST_F(KubeSourceTest, ProblemsAreReportedOncePerObject) {
  FillTwoClusters();
  Drain();
  ResourceEvents& services = Events("cluster-a", KubeResource::kServices);
  json bad = ServiceObject("production", "api", "198.18.100.10");
  bad["spec"]["externalTrafficPolicy"] = "Lokal";
  const std::string line =
      "cluster-a: Service production/api: spec.externalTrafficPolicy: expected one of Cluster, "
      "Local, got \"Lokal\"; read as Cluster";
  const auto lines = [&] {
    return std::count_if(logs_.begin(), logs_.end(),
                         [&](const std::string& l) { return l == line; });
  };
  services.Upsert(bad);
  services.Replace({bad});
  bad["metadata"]["resourceVersion"] = "2";  // a status update: the same problem
  services.Upsert(bad);
  services.Replace({bad, ServiceObject("production", "web", "198.18.100.20")});
  Drain();
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 1u);
  EXPECT_EQ(lines(), 1);

  // Another problem on the same object is reported; the one it still has is not.
  bad["spec"]["internalTrafficPolicy"] = "Nearby";
  services.Upsert(bad);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 2u);
  EXPECT_EQ(lines(), 1);

  // Fixed, then broken again: reported again.
  services.Upsert(ServiceObject("production", "api", "198.18.100.10"));
  services.Upsert(bad);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 4u);
  EXPECT_EQ(lines(), 2);

  // Deleted, or listed no more, and written again: reported again.
  services.Delete(bad);
  services.Upsert(bad);
  EXPECT_EQ(lines(), 3);
  services.Replace({ServiceObject("production", "web", "198.18.100.20")});
  services.Replace({bad});
  EXPECT_EQ(lines(), 4);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 8u);

  // The same in another cluster is another object.
  Events("cluster-b", KubeResource::kServices).Replace({bad});
  EXPECT_EQ(source_->ProblemCount("cluster-b", "Service", "bad_value"), 2u);
}

// Ignored objects (another proxy's Service, an FQDN slice) and an MCS slice of a cluster that
// is watched directly: each counted and logged once, however often it is listed.
TEST_F(KubeSourceTest, SkippedObjectsAreReportedOnce) {
  Start(WithMcs());
  json other = ServiceObject("production", "web", "198.18.100.20");
  other["metadata"]["labels"] = {{"service.kubernetes.io/service-proxy-name", "other-proxy"}};
  ResourceEvents& services = Events("cluster-a", KubeResource::kServices);
  ResourceEvents& slices = Events("cluster-a", KubeResource::kEndpointSlices);
  const json copy = SliceObject("production", "api-b-copy", "api", {EndpointObject("198.18.2.1")},
                                "IPv4", "cluster-b");
  for (int relist = 0; relist < 3; ++relist) {
    services.Replace({ServiceObject("production", "api", "198.18.100.10"), other});
    slices.Replace({copy});
  }
  services.Upsert(other);
  Drain();
  EXPECT_EQ(model_.FindService({"production", "web"}), nullptr);
  EXPECT_NE(model_.FindService(kApi), nullptr);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "service_proxy_name"), 1u);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "EndpointSlice", "foreign_source_cluster"), 1u);
  EXPECT_EQ(std::count_if(logs_.begin(), logs_.end(),
                          [](const std::string& l) {
                            return l.find("service-proxy-name") != std::string::npos;
                          }),
            1);
  EXPECT_TRUE(
      Logged("cluster-a: EndpointSlice production/api-b-copy: "
             "metadata.labels[multicluster.kubernetes.io/source-cluster]: \"cluster-b\" is no "
             "cluster of mode mcs here"));

  // The label goes: the service is proxied.
  services.Upsert(ServiceObject("production", "web", "198.18.100.20"));
  Drain();
  EXPECT_NE(model_.FindService({"production", "web"}), nullptr);
}

// The fields kube-proxy honours reach the model: the Service's policies, the endpoints' zones,
// hints and conditions as the EndpointSlice controller wrote them, the local Node's zone.
TEST_F(KubeSourceTest, TrafficFieldsZonesAndConditionsReachTheModel) {
  KubeSourcesConfig config = TwoClusters();
  config.node_name = "node-a1";
  Start(config);
  const json api = LocalPoliciesServiceObject("production", "api", "198.18.100.10");
  Events("cluster-a", KubeResource::kServices).Replace({api});
  Events("cluster-a", KubeResource::kEndpointSlices).Replace({ControllerSliceObject()});
  json node = NodeObject("node-a1", "198.18.0.11");
  node["metadata"]["labels"] = {{"topology.kubernetes.io/zone", "zone-1"}};
  Events("cluster-a", KubeResource::kNodes).Replace({node, NodeObject("node-a2", "198.18.0.12")});
  Drain();

  EXPECT_EQ(model_.local_node().zone, "zone-1");
  const Service* s = model_.FindService(kApi);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->external_policy, ServiceTrafficPolicy::kLocal);
  // The rest as the mapping reads it (service_fields_test.cc checks the mapping).
  EXPECT_EQ(*s, *MapService({"cluster-a", "Service"}, api).value);

  const std::vector<Endpoint> a = EndpointsIn(model_, kApi, "cluster-a");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].zone, "zone-1");
  EXPECT_EQ(a[0].zone_hints, std::vector<std::string>{"zone-1"});
  EXPECT_EQ(a[1].zone_hints, (std::vector<std::string>{"zone-2", "zone-3"}));
  // publishNotReadyAddresses (ready, not serving), terminating and serving, terminating only.
  EXPECT_EQ(a[0].conditions, (EndpointConditions{true, false, false}));
  EXPECT_EQ(a[1].conditions, (EndpointConditions{false, true, true}));
  EXPECT_EQ(a[2].conditions, (EndpointConditions{false, false, true}));
  EXPECT_TRUE(logs_.empty()) << logs_.front();

  // The Node moves zone (labels are mutable): the local node follows.
  node["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-2";
  Events("cluster-a", KubeResource::kNodes).Upsert(node);
  EXPECT_TRUE(Drain().node);
  EXPECT_EQ(model_.local_node().zone, "zone-2");
}

TEST_F(KubeSourceTest, LocalNodeAddressesFromItsNode) {
  KubeSourcesConfig config = TwoClusters();
  config.node_name = "node-a1";
  Start(config);
  Events("cluster-a", KubeResource::kNodes)
      .Replace({NodeObject("node-a1", "198.18.0.11", "203.0.113.11"),
                NodeObject("node-a2", "198.18.0.12")});
  EXPECT_TRUE(Drain().node);
  EXPECT_EQ(model_.local_node().name, "node-a1");
  EXPECT_EQ(model_.local_node().addresses,
            (std::vector<IpAddress>{Ip("198.18.0.11"), Ip("203.0.113.11")}));
  // Configured addresses win.
  config.node_addresses = {Ip("198.18.0.99")};
  Start(config);
  Events("cluster-a", KubeResource::kNodes).Replace({NodeObject("node-a1", "198.18.0.11")});
  Drain();
  EXPECT_EQ(model_.local_node().addresses, std::vector<IpAddress>{Ip("198.18.0.99")});
}

// NodePorts answer on every address of the Node, both families (a dual-stack node lists one
// InternalIP of each, as status.hostIPs does), and on its ExternalIPs.
TEST_F(KubeSourceTest, LocalNodeAddressesOfBothFamilies) {
  KubeSourcesConfig config = TwoClusters();
  config.node_name = "node-a1";
  Start(config);
  json node = NodeObject("node-a1", "198.18.0.11", "198.18.100.11");
  node["status"]["addresses"].push_back({{"type", "InternalIP"}, {"address", "2001:db8::11"}});
  node["status"]["addresses"].push_back({{"type", "ExternalIP"}, {"address", "2001:db8:100::11"}});
  Events("cluster-a", KubeResource::kNodes).Replace({node});
  EXPECT_TRUE(Drain().node);
  EXPECT_EQ(model_.local_node().addresses,
            (std::vector<IpAddress>{Ip("198.18.0.11"), Ip("2001:db8::11"), Ip("198.18.100.11"),
                                    Ip("2001:db8:100::11")}));
}

TEST_F(KubeSourceTest, McsImportsAndSourceClusterSlices) {
  Start(WithMcs());
  ResourceEvents& imports = Events("cluster-a", KubeResource::kServiceImports);
  ResourceEvents& slices_a = Events("cluster-a", KubeResource::kEndpointSlices);
  imports.Replace({ImportObject("production", "api", {"198.18.200.10"})});
  slices_a.Replace({
      // cluster-a's own endpoints
      SliceObject("production", "api-a1", "api", {EndpointObject("198.18.1.1")}),
      // cluster-c's, written by the MCS controller into cluster-a
      SliceObject("production", "api-c-1", "api",
                  {EndpointObject("198.18.3.1", "node-c1"), EndpointObject("198.18.3.2")}, "IPv4",
                  "cluster-c"),
      // the controller's copy of cluster-a's own endpoints: counted twice if taken
      SliceObject("production", "api-a-copy", "api", {EndpointObject("198.18.1.1")}, "IPv4",
                  "cluster-a"),
      // an MCS copy of a directly watched cluster
      SliceObject("production", "api-b-copy", "api", {EndpointObject("198.18.2.1")}, "IPv4",
                  "cluster-b"),
  });
  Drain();
  ASSERT_EQ(model_.clusters().size(), 3u);
  const Service* api = model_.FindService(kApi);
  ASSERT_NE(api, nullptr);
  EXPECT_TRUE(api->cluster_ips.empty());  // no local Service: only the ClusterSet IP
  EXPECT_EQ(api->clusterset_ips, std::vector<IpAddress>{Ip("198.18.200.10")});
  ASSERT_EQ(api->ports.size(), 1u);  // from the import
  EXPECT_EQ(api->ports[0].name, "http");
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-a"), (std::vector<std::string>{"198.18.1.1"}));
  const std::vector<Endpoint> c = EndpointsIn(model_, kApi, "cluster-c");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].node_name, "node-c1");
  EXPECT_FALSE(c[0].node_address.has_value());  // routed
  EXPECT_TRUE(AddressesIn(model_, kApi, "cluster-b").empty());
  EXPECT_EQ(source_->ProblemCount("cluster-a", "EndpointSlice", "foreign_source_cluster"), 2u);

  // The local Service arrives: its VIPs join the import's.
  Events("cluster-a", KubeResource::kServices)
      .Replace({ServiceObject("production", "api", "198.18.100.10")});
  Drain();
  EXPECT_EQ(model_.FindService(kApi)->Vips(),
            (std::vector<IpAddress>{Ip("198.18.100.10"), Ip("198.18.200.10")}));

  // MCS slice update and delete.
  slices_a.Upsert(SliceObject("production", "api-c-1", "api", {EndpointObject("198.18.3.3")},
                              "IPv4", "cluster-c"));
  Drain();
  EXPECT_EQ(AddressesIn(model_, kApi, "cluster-c"), (std::vector<std::string>{"198.18.3.3"}));
  slices_a.Delete(SliceObject("production", "api-c-1", "api", json::array(), "IPv4", "cluster-c"));
  Drain();
  EXPECT_TRUE(AddressesIn(model_, kApi, "cluster-c").empty());

  // The import turns headless, then goes.
  imports.Upsert(ImportObject("production", "api", {}, "Headless"));
  Drain();
  EXPECT_TRUE(model_.FindService(kApi)->clusterset_ips.empty());
  imports.Delete(ImportObject("production", "api", {}));
  Events("cluster-a", KubeResource::kServices).Replace({});
  EXPECT_EQ(Drain().services, std::vector<NamespacedName>{kApi});
  EXPECT_TRUE(model_.EndpointsOf(kApi).empty());
}

TEST_F(KubeSourceTest, ImportWithRootFields) {
  KubeSourcesConfig config = WithMcs();
  config.service_imports = "v1beta1";
  Start(config);
  const auto watches = source_->Watches();
  EXPECT_TRUE(std::any_of(watches.begin(), watches.end(), [](const KubeWatch& w) {
    return w.resource.path == "/apis/multicluster.x-k8s.io/v1beta1/serviceimports";
  }));
  json import = ImportObject("production", "api", {"198.18.200.10"});
  json root = import["spec"];
  root["metadata"] = import["metadata"];
  Events("cluster-a", KubeResource::kServiceImports).Upsert(root);
  Drain();
  ASSERT_NE(model_.FindService(kApi), nullptr);
  EXPECT_EQ(model_.FindService(kApi)->clusterset_ips, std::vector<IpAddress>{Ip("198.18.200.10")});
}

TEST_F(KubeSourceTest, LocalClusterNamedByItsClusterProperty) {
  KubeSourcesConfig config = TwoClusters();
  config.local.name = "";
  config.local.id.reset();
  Start(config);
  ResourceEvents* properties = source_->EventsFor("", KubeResource::kClusterProperties);
  ASSERT_NE(properties, nullptr);
  Events("", KubeResource::kServices)
      .Replace({ServiceObject("production", "api", "198.18.100.10")});
  Events("", KubeResource::kEndpointSlices)
      .Replace({SliceObject("production", "api-a1", "api", {EndpointObject("198.18.1.1")})});
  Events("", KubeResource::kNodes).Replace({});
  EXPECT_FALSE(source_->LocalSynced());
  Drain();
  EXPECT_EQ(model_.clusters().size(), 1u);  // only cluster-b so far
  EXPECT_TRUE(model_.EndpointsOf(kApi).empty());

  properties->Replace({ClusterPropertyObject("clusterset.k8s.io", "set-1"),
                       ClusterPropertyObject("cluster.clusterset.k8s.io", "east")});
  EXPECT_TRUE(source_->LocalSynced());
  EXPECT_TRUE(Drain().clusters);
  ASSERT_NE(model_.LocalCluster(), nullptr);
  EXPECT_EQ(*model_.LocalCluster(), (Cluster{ClusterIdOf("east"), "east", true}));
  EXPECT_EQ(AddressesIn(model_, kApi, "east"), (std::vector<std::string>{"198.18.1.1"}));
  EXPECT_EQ(source_->EventsFor("east", KubeResource::kServices),
            source_->EventsFor("", KubeResource::kServices));

  // Immutable: a new value is counted and ignored, once, however often it is listed.
  properties->Upsert(ClusterPropertyObject("cluster.clusterset.k8s.io", "west"));
  properties->Replace({ClusterPropertyObject("cluster.clusterset.k8s.io", "west")});
  EXPECT_FALSE(Drain().changed());
  EXPECT_EQ(model_.LocalCluster()->name, "east");
  EXPECT_EQ(source_->ProblemCount("east", "ClusterProperty", "cluster_name_changed"), 1u);
  EXPECT_EQ(std::count_if(logs_.begin(), logs_.end(),
                          [](const std::string& l) {
                            return l.find("changed from \"east\" to \"west\"") != std::string::npos;
                          }),
            1);
  // A broken one is reported once too.
  properties->Replace({ClusterPropertyObject("cluster.clusterset.k8s.io", "Not A Name")});
  properties->Replace({ClusterPropertyObject("cluster.clusterset.k8s.io", "Not A Name")});
  EXPECT_EQ(source_->ProblemCount("east", "ClusterProperty", "bad_value"), 1u);
}

TEST_F(KubeSourceTest, ClusterPropertyClashingWithARemoteIsRefused) {
  KubeSourcesConfig config = TwoClusters();
  config.local.name = "";
  config.local.id.reset();
  Start(config);
  ResourceEvents* properties = source_->EventsFor("", KubeResource::kClusterProperties);
  ASSERT_NE(properties, nullptr);
  properties->Upsert(ClusterPropertyObject("cluster.clusterset.k8s.io", "cluster-b"));
  properties->Upsert(ClusterPropertyObject("cluster.clusterset.k8s.io", "c-air"));
  EXPECT_EQ(source_->ProblemCount("", "ClusterProperty", "name_conflict"), 1u);
  // c-air's derived id is not cluster-b's, so it is taken.
  Drain();
  ASSERT_NE(model_.LocalCluster(), nullptr);
  EXPECT_EQ(model_.LocalCluster()->name, "c-air");

  // An id clash: the remote c-dsa has c-air's derived id.
  config.remotes = {Direct("c-dsa")};
  config.remotes[0].id = ClusterIdOf("c-air");
  Start(config);
  source_->EventsFor("", KubeResource::kClusterProperties)
      ->Upsert(ClusterPropertyObject("cluster.clusterset.k8s.io", "c-air"));
  EXPECT_EQ(source_->ProblemCount("", "ClusterProperty", "id_conflict"), 1u);
  EXPECT_TRUE(Logged("has cluster id 25140, as remote cluster \"c-dsa\" has"));
}

TEST_F(KubeSourceTest, WaitForChangeWakesOnAnEventFromAnotherThread) {
  FillTwoClusters();
  Drain();
  EXPECT_FALSE(source_->WaitForChange(50ms));  // nothing pending
  // Woken by the event, WaitForChange returns before its timeout; waiting out the timeout
  // instead would also return true (the event is pending by then). The latency is recorded,
  // not asserted: a loaded machine may schedule the waiter late (bench/kube measures it).
  constexpr auto kWaitTimeout = 60s;
  std::vector<double> latencies_us;
  for (int i = 0; i < 50; ++i) {
    std::atomic<int64_t> sent_ns{0};
    const auto waiting = std::chrono::steady_clock::now();
    std::thread client([&] {
      std::this_thread::sleep_for(2ms);  // most often the agent's thread is waiting by then
      sent_ns = std::chrono::steady_clock::now().time_since_epoch().count();
      Events("cluster-b", KubeResource::kEndpointSlices)
          .Upsert(SliceObject("production", "api-b1", "api",
                              {EndpointObject("198.18.2." + std::to_string(i + 1))}));
    });
    ASSERT_TRUE(source_->WaitForChange(kWaitTimeout));
    ASSERT_LT(std::chrono::steady_clock::now() - waiting, kWaitTimeout)
        << "woke at its timeout, not at the event";
    const DrainResult r = Drain();
    const auto done = std::chrono::steady_clock::now().time_since_epoch().count();
    client.join();
    if (r.services.empty()) {  // woke between the client's lock and its notify: drain again
      ASSERT_TRUE(source_->WaitForChange(kWaitTimeout));
      Drain();
    }
    ASSERT_EQ(AddressesIn(model_, kApi, "cluster-b"),
              std::vector<std::string>{"198.18.2." + std::to_string(i + 1)});
    latencies_us.push_back(static_cast<double>(done - sent_ns.load()) / 1000.0);
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  const double p99 = latencies_us[latencies_us.size() * 99 / 100];
  RecordProperty("event_to_model_p99_us", std::to_string(p99));
}

// Six client threads (three resources of two clusters) and the agent draining at the same
// time: the end state is exactly what the last events say.
TEST_F(KubeSourceTest, ConcurrentClientsAndAgent) {
  Start(TwoClusters());
  constexpr int kCount = 60;
  std::atomic<int> running{0};
  std::vector<std::thread> clients;
  for (const std::string cluster : {"cluster-a", "cluster-b"}) {
    const std::string octet = cluster == "cluster-a" ? "1" : "2";
    running += 3;
    clients.emplace_back([&, cluster, octet] {
      for (int i = 0; i < kCount; ++i) {
        Events(cluster, KubeResource::kServices)
            .Upsert(ServiceObject("production", "svc-" + std::to_string(i),
                                  "198.18.10" + octet + "." + std::to_string(i + 1)));
      }
      --running;
    });
    clients.emplace_back([&, cluster, octet] {
      ResourceEvents& slices = Events(cluster, KubeResource::kEndpointSlices);
      for (int i = 0; i < kCount; ++i) {
        slices.Upsert(SliceObject(
            "production", "svc-" + std::to_string(i) + "-1", "svc-" + std::to_string(i),
            {EndpointObject("198.18." + octet + "." + std::to_string(i + 1), "node-1")}));
      }
      for (int i = 1; i < kCount; i += 2) {
        slices.Delete(SliceObject("production", "svc-" + std::to_string(i) + "-1",
                                  "svc-" + std::to_string(i), json::array()));
      }
      --running;
    });
    clients.emplace_back([&, cluster, octet] {
      for (int i = 0; i < kCount; ++i) {
        Events(cluster, KubeResource::kNodes)
            .Upsert(NodeObject("node-1", "198.18.0." + std::to_string(i + 1)));
      }
      --running;
    });
  }
  while (running > 0) {
    if (source_->WaitForChange(5ms)) {
      Drain();
    }
  }
  for (std::thread& t : clients) {
    t.join();
  }
  Drain();
  ASSERT_EQ(model_.services().size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    const NamespacedName name{"production", "svc-" + std::to_string(i)};
    for (const std::string octet : {"1", "2"}) {
      const std::string cluster = octet == "1" ? "cluster-a" : "cluster-b";
      const std::vector<Endpoint> eps = EndpointsIn(model_, name, cluster);
      if (i % 2 == 1) {
        EXPECT_TRUE(eps.empty()) << name.ToString() << " " << cluster;
        continue;
      }
      ASSERT_EQ(eps.size(), 1u) << name.ToString() << " " << cluster;
      EXPECT_EQ(eps[0].addresses[0].ToString(), "198.18." + octet + "." + std::to_string(i + 1));
      EXPECT_EQ(eps[0].node_address, Ip(("198.18.0." + std::to_string(kCount)).c_str()));
    }
  }
  EXPECT_EQ(model_.FindService({"production", "svc-3"})->cluster_ips,
            std::vector<IpAddress>{Ip("198.18.101.4")});
  EXPECT_FALSE(Drain().changed());
}

}  // namespace
}  // namespace xlb::kube
