// The Kubernetes source behind the real watch client, against two test API servers on
// 127.0.0.1 (HTTPS, bearer tokens, chunked watches): a KubeSources file with the local
// cluster's kubeconfig and a kubeconfigDir for the remote one, objects created, changed and
// deleted on the servers, the remote server stopped past staleAfter and started again.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/kube/source/kube_fixtures.h"
#include "tests/pkt/temp_dir.h"
#include "userspace/kube/client/cluster_watch.h"
#include "userspace/kube/source/kube_source.h"

namespace xlb::kube {
namespace {

using namespace std::chrono_literals;
using namespace xlb::kube::testing;  // NOLINT: the fixtures
using Clock = std::chrono::steady_clock;

const NamespacedName kApi{"production", "api"};
constexpr const char* kServices = "/api/v1/services";
constexpr const char* kSlices = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kNodes = "/api/v1/nodes";

std::vector<std::string> AddressesIn(const Model& m, const std::string& cluster) {
  std::vector<std::string> out;
  for (const Endpoint& e : m.EndpointsOf(kApi)) {
    if (e.cluster == cluster) {
      out.push_back(e.addresses.at(0).ToString());
    }
  }
  return out;
}

class KubeSourceE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.Start();
    b_.Start();
    a_.WriteKubeconfig(dir_.File("local.kubeconfig"), "test-token");
    std::filesystem::create_directory(dir_.File("clusters"));
    b_.WriteKubeconfig(dir_.File("clusters/cluster-b.yaml"), "test-token");
    std::ofstream(dir_.File("kube.yaml"))
        << "apiVersion: xlb.dev/v1alpha1\n"
        << "kind: KubeSources\n"
        << "staleAfter: 300ms\n"
        << "local:\n"
        << "  name: cluster-a\n"
        << "  kubeconfig: " << dir_.File("local.kubeconfig") << "\n"
        << "kubeconfigDir: " << dir_.File("clusters") << "\n";
  }

  void TearDown() override {
    for (auto& [name, watch] : watches_) {
      watch->Stop();  // before the source they report to goes
    }
    watches_.clear();
  }

  // Loads the config and starts one ClusterWatch per cluster, as xlb-agent --kube will.
  void StartSource(const std::string& node_name = "") {
    auto config = LoadKubeSourcesConfig(dir_.File("kube.yaml"));
    ASSERT_TRUE(config.ok()) << ToString(config.error());
    config->node_name = node_name;
    source_ = std::make_unique<KubeSource>(std::move(*config));
    WatchOptions options;
    options.backoff.initial = 20ms;
    options.backoff.max = 200ms;
    options.watch_timeout = 30s;
    for (const KubeWatch& w : source_->Watches()) {
      auto& watch = watches_[w.cluster];
      if (!watch) {
        auto connection = KubeconfigConnection(w.kubeconfig);
        ASSERT_TRUE(connection.ok()) << w.kubeconfig;
        watch = std::make_unique<ClusterWatch>(std::move(*connection), options);
      }
      watch->Add(w.resource, *w.events);
    }
    for (auto& [name, watch] : watches_) {
      watch->Start();
    }
  }

  // Drains until `done` holds for the model, at most `timeout` (generous: a loaded machine is
  // slow, not broken); the time it took.
  std::optional<Clock::duration> DrainUntil(const std::function<bool(const Model&)>& done,
                                            std::chrono::milliseconds timeout = 30s) {
    const Clock::time_point start = Clock::now();
    while (Clock::now() - start < timeout) {
      if (source_->WaitForChange(50ms)) {
        source_->Drain(model_);
      }
      if (done(model_)) {
        return Clock::now() - start;
      }
    }
    return std::nullopt;
  }

  xlb::testing::TestApiServer a_;
  xlb::testing::TestApiServer b_;
  pkt::TempDir dir_{"xlb-kube-source-e2e"};
  std::unique_ptr<KubeSource> source_;
  std::map<std::string, std::unique_ptr<ClusterWatch>> watches_;
  Model model_;
};

TEST_F(KubeSourceE2E, TwoClustersThroughTheWatchClient) {
  a_.Create(kServices, ServiceObject("production", "api", "198.18.100.10"));
  a_.Create(kSlices,
            SliceObject("production", "api-a1", "api", {EndpointObject("198.18.1.1", "node-a1")}));
  a_.Create(kNodes, NodeObject("node-a1", "198.18.0.11"));
  b_.Create(kServices, ServiceObject("production", "api", "198.18.110.10"));
  b_.Create(kSlices,
            SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.1", "node-b1")}));
  b_.Create(kNodes, NodeObject("node-b1", "198.18.0.21"));
  StartSource();

  // The initial lists.
  ASSERT_TRUE(DrainUntil([this](const Model& m) {
    return source_->AllSynced() && AddressesIn(m, "cluster-a").size() == 1 &&
           AddressesIn(m, "cluster-b").size() == 1;
  }));
  ASSERT_EQ(model_.clusters().size(), 2u);
  EXPECT_EQ(model_.LocalCluster()->name, "cluster-a");
  EXPECT_EQ(model_.FindService(kApi)->cluster_ips[0].ToString(), "198.18.100.10");
  for (const Endpoint& e : model_.EndpointsOf(kApi)) {
    if (e.cluster == "cluster-b") {
      EXPECT_EQ(e.node_address->ToString(), "198.18.0.21");
    }
  }

  // A watch event reaches the model.
  ASSERT_TRUE(b_.WaitForWatches(3, 30s));
  b_.Update(kSlices, SliceObject("production", "api-b1", "api",
                                 {EndpointObject("198.18.2.1", "node-b1"),
                                  EndpointObject("198.18.2.2", "node-b1")}));
  const auto took =
      DrainUntil([](const Model& m) { return AddressesIn(m, "cluster-b").size() == 2; });
  ASSERT_TRUE(took);
  RecordProperty(
      "watch_event_to_model_us",
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(*took).count()));

  // A delete, and a relist after 410 Gone that changes nothing.
  a_.Delete("/apis/discovery.k8s.io/v1/namespaces/production/endpointslices", "api-a1");
  ASSERT_TRUE(DrainUntil([](const Model& m) { return AddressesIn(m, "cluster-a").empty(); }));
  a_.Compact();
  a_.ExpireWatches();
  ASSERT_TRUE(a_.WaitForWatches(3, 30s));
  EXPECT_TRUE(AddressesIn(model_, "cluster-a").empty());
  EXPECT_EQ(AddressesIn(model_, "cluster-b").size(), 2u);

  // cluster-b's API server goes away: its endpoints stay for staleAfter, then go.
  // The clock starts before Stop(): the source may see the connection close (and start
  // its staleAfter timer) before Stop() returns.
  const Clock::time_point stopped = Clock::now();
  b_.Stop();
  ASSERT_TRUE(DrainUntil([](const Model& m) { return AddressesIn(m, "cluster-b").empty(); }));
  EXPECT_GE(Clock::now() - stopped, 300ms);
  EXPECT_TRUE(source_->Clusters().at(1).stale);
  // Back: the relist puts them back, with what changed meanwhile.
  b_.Update(kSlices,
            SliceObject("production", "api-b1", "api", {EndpointObject("198.18.2.3", "node-b1")}));
  b_.Start();
  ASSERT_TRUE(DrainUntil([](const Model& m) {
    return AddressesIn(m, "cluster-b") == std::vector<std::string>{"198.18.2.3"};
  }));
  EXPECT_FALSE(source_->Clusters().at(1).stale);
}

// The Service, EndpointSlice and Node fields kube-proxy honours, through the real client: a
// LoadBalancer Service with Local policies, a slice as the EndpointSlice controller writes it,
// the local Node's zone. A Service with a bad value is counted and logged once, also across a
// relist after 410 Gone.
TEST_F(KubeSourceE2E, ServiceTrafficFieldsAndAProblemReportedOnceAcrossRelists) {
  const json api = LocalPoliciesServiceObject("production", "api", "198.18.100.10");
  a_.Create(kServices, api);
  json web = ServiceObject("production", "web", "198.18.100.20");
  web["spec"]["externalTrafficPolicy"] = "Lokal";
  a_.Create(kServices, web);
  a_.Create(kSlices, ControllerSliceObject());
  json node = NodeObject("node-a1", "198.18.0.11");
  node["metadata"]["labels"] = {{"topology.kubernetes.io/zone", "zone-1"}};
  a_.Create(kNodes, node);
  StartSource("node-a1");

  ASSERT_TRUE(DrainUntil([this](const Model& m) {
    return source_->AllSynced() && m.EndpointsOf(kApi).size() == 3 &&
           m.local_node().zone == "zone-1";
  }));
  const Service* s = model_.FindService(kApi);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->external_policy, ServiceTrafficPolicy::kLocal);
  // The rest as the mapping reads it (service_fields_test.cc checks the mapping).
  EXPECT_EQ(*s, *MapService({"cluster-a", "Service"}, api).value);
  const Endpoint& first = model_.EndpointsOf(kApi)[0];
  EXPECT_EQ(first.zone, "zone-1");
  EXPECT_EQ(first.zone_hints, std::vector<std::string>{"zone-1"});
  EXPECT_EQ(first.conditions, (EndpointConditions{true, false, false}));
  ASSERT_NE(model_.FindService({"production", "web"}), nullptr);
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 1u);

  // 410 Gone: every resource of cluster-a is listed again, web with its problem among them
  // (each watch starts after its list's Replace()).
  ASSERT_TRUE(a_.WaitForWatches(3, 30s));
  a_.Compact();
  a_.ExpireWatches();
  const auto relisted = [this] { return watches_.at("cluster-a")->TotalCounters().relists >= 3; };
  for (const Clock::time_point start = Clock::now(); !relisted() && Clock::now() - start < 30s;) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(relisted());
  ASSERT_TRUE(a_.WaitForWatches(3, 30s));
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 1u);

  // A new problem on it is counted.
  web["spec"]["internalTrafficPolicy"] = "Nearby";
  a_.Update(kServices, web);
  const Clock::time_point start = Clock::now();
  while (source_->ProblemCount("cluster-a", "Service", "bad_value") < 2 &&
         Clock::now() - start < 30s) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(source_->ProblemCount("cluster-a", "Service", "bad_value"), 2u);
}

}  // namespace
}  // namespace xlb::kube
