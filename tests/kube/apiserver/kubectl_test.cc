// The real kubectl (1.32) against the test API server: if kubectl's discovery, table printing,
// pagination, watch and authentication work, the server speaks the protocol faithfully
// enough for a client-go-shaped client.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/kube/apiserver/test_client.h"

namespace xlb::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const char* kSlicesNs1 = "/apis/discovery.k8s.io/v1/namespaces/ns1/endpointslices";
const char* kSlicesNs2 = "/apis/discovery.k8s.io/v1/namespaces/ns2/endpointslices";

json Slice(const std::string& name) {
  return {{"metadata", {{"name", name}, {"labels", {{"kubernetes.io/service-name", "web"}}}}},
          {"addressType", "IPv4"},
          {"endpoints", {{{"addresses", {"10.1.0.1"}}, {"conditions", {{"ready", true}}}}}},
          {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}}};
}

json Service(const std::string& name, const std::string& cluster_ip) {
  return {{"metadata", {{"name", name}}},
          {"spec",
           {{"type", "ClusterIP"},
            {"clusterIP", cluster_ip},
            {"ports", {{{"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}}}}}}};
}

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    server_.WriteKubeconfig(kubeconfig_, "test-token");
  }

  CommandResult Kubectl(std::vector<std::string> args, const std::string& kubeconfig = "") {
    args.insert(args.begin(), "--request-timeout=20s");
    return RunKubectl(dir_, kubeconfig.empty() ? kubeconfig_ : kubeconfig, args);
  }

  TempDir dir_;
  std::string kubeconfig_ = dir_.File("kubeconfig");
  TestApiServer server_;
};

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

TEST_F(KubectlTest, GetRawReturnsWhatWasStored) {
  json stored = server_.Create("/api/v1/namespaces/default/services", Service("web", "10.0.0.10"));
  auto r = Kubectl({"get", "--raw", "/api/v1/namespaces/default/services"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json list = json::parse(r.out);
  EXPECT_EQ(list["kind"], "ServiceList");
  ASSERT_EQ(list["items"].size(), 1u);
  json item = list["items"][0];
  EXPECT_EQ(item["metadata"], stored["metadata"]);
  EXPECT_EQ(item["spec"], stored["spec"]);
}

TEST_F(KubectlTest, GetEndpointSlicesAllNamespacesAsJson) {
  server_.Create(kSlicesNs1, Slice("web-a"));
  server_.Create(kSlicesNs2, Slice("web-b"));
  server_.Create("/api/v1/namespaces/ns1/services", Service("web", "10.0.0.10"));
  auto r = Kubectl({"get", "endpointslices", "-A", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json list = json::parse(r.out);
  std::set<std::string> seen;
  for (const auto& i : list["items"]) {
    EXPECT_EQ(i["kind"], "EndpointSlice");
    EXPECT_EQ(i["endpoints"][0]["addresses"][0], "10.1.0.1");
    seen.insert(i["metadata"]["namespace"].get<std::string>() + "/" +
                i["metadata"]["name"].get<std::string>());
  }
  EXPECT_EQ(seen, (std::set<std::string>{"ns1/web-a", "ns2/web-b"}));
}

TEST_F(KubectlTest, GetServicesInANamespacePrintsTheServerTable) {
  server_.Create("/api/v1/namespaces/ns1/services", Service("web", "10.0.0.10"));
  server_.Create("/api/v1/namespaces/ns1/services", Service("api", "10.0.0.11"));
  server_.Create("/api/v1/namespaces/ns2/services", Service("other", "10.0.0.12"));
  auto r = Kubectl({"get", "svc", "-n", "ns1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("AGE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("web"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("api"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("other"), std::string::npos) << r.out;

  auto one = Kubectl({"get", "svc", "web", "-n", "ns1", "-o", "jsonpath={.spec.clusterIP}"});
  ASSERT_EQ(one.exit_code, 0) << Describe(one);
  EXPECT_EQ(one.out, "10.0.0.10");
  auto missing = Kubectl({"get", "svc", "nope", "-n", "ns1"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("\"nope\" not found"), std::string::npos) << Describe(missing);
  // Cluster-scoped, all namespaces with the NAMESPACE column from the rows' metadata.
  server_.Create("/api/v1/nodes", {{"metadata", {{"name", "node-1"}}}});
  auto nodes = Kubectl({"get", "nodes"});
  EXPECT_NE(nodes.out.find("node-1"), std::string::npos) << Describe(nodes);
  auto all = Kubectl({"get", "svc", "-A"});
  EXPECT_NE(all.out.find("NAMESPACE"), std::string::npos) << Describe(all);
  EXPECT_NE(all.out.find("ns2"), std::string::npos) << Describe(all);
}

// kubectl 1.32 asks /apis for the aggregated discovery document first; a plain APIGroupList
// must make it fall back to per-group-version documents (the path servers before 1.26 take).
TEST_F(KubectlTest, DiscoveryFallsBackFromAggregatedToLegacy) {
  auto r = Kubectl({"get", "serviceimports.v1beta1.multicluster.x-k8s.io", "-A", "-v=8"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("as=APIGroupDiscoveryList"), std::string::npos)
      << "kubectl did not ask for aggregated discovery";
  EXPECT_NE(r.err.find("GET " + server_.url() + "/apis/multicluster.x-k8s.io/v1beta1"),
            std::string::npos)
      << "kubectl did not fetch the legacy group-version document";
  EXPECT_NE(r.err.find("/apis/multicluster.x-k8s.io/v1beta1/serviceimports"), std::string::npos);
}

TEST_F(KubectlTest, ChunkedListReturnsEveryObject) {
  for (int i = 0; i < 7; ++i) {
    server_.Create(i % 2 ? kSlicesNs1 : kSlicesNs2, Slice("slice-" + std::to_string(i)));
  }
  uint64_t lists_before = server_.lists_served();
  auto r = Kubectl({"get", "endpointslices", "-A", "--chunk-size=2", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json list = json::parse(r.out);
  std::set<std::string> names;
  for (const auto& i : list["items"]) names.insert(i["metadata"]["name"]);
  EXPECT_EQ(names.size(), 7u);
  EXPECT_EQ(server_.lists_served() - lists_before, 4u) << "7 objects in pages of 2";

  auto table = Kubectl({"get", "endpointslices", "-A", "--chunk-size=3"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  for (int i = 0; i < 7; ++i) {
    EXPECT_NE(table.out.find("slice-" + std::to_string(i)), std::string::npos) << table.out;
  }
}

TEST_F(KubectlTest, WrongTokenIsUnauthorized) {
  server_.WriteKubeconfig(dir_.File("bad-kubeconfig"), "not-the-token");
  auto r = Kubectl({"get", "svc", "-A"}, dir_.File("bad-kubeconfig"));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("You must be logged in to the server"), std::string::npos) << Describe(r);
  EXPECT_GT(server_.unauthorized(), 0u);

  // Rotation: the old token stops working, the new one works.
  server_.SetTokens({"rotated"});
  EXPECT_NE(Kubectl({"get", "svc", "-A"}).exit_code, 0);
  server_.WriteKubeconfig(dir_.File("rotated-kubeconfig"), "rotated");
  EXPECT_EQ(Kubectl({"get", "svc", "-A"}, dir_.File("rotated-kubeconfig")).exit_code, 0);
}

bool HasObject(const std::string& out, const std::string& name,
               const std::function<bool(const json&)>& extra = nullptr) {
  for (const auto& doc : JsonDocuments(out)) {
    if (doc["metadata"]["name"] == name && (!extra || extra(doc))) return true;
  }
  return false;
}

TEST_F(KubectlTest, WatchShowsCreationsAndUpdatesAndEndsOnExpiry) {
  server_.Create(kSlicesNs1, Slice("first"));
  KubectlProcess watch(
      dir_, kubeconfig_,
      {"--request-timeout=0", "get", "endpointslices", "-A", "--watch", "-o", "json"});
  ASSERT_TRUE(watch.WaitForOutput([](const std::string& o) { return HasObject(o, "first"); }, 20s))
      << watch.out() << watch.err();
  ASSERT_TRUE(server_.WaitForWatches(1, 20s)) << watch.err();

  server_.Create(kSlicesNs2, Slice("second"));
  ASSERT_TRUE(watch.WaitForOutput([](const std::string& o) { return HasObject(o, "second"); }, 10s))
      << watch.out() << watch.err();
  json changed = *server_.Get(kSlicesNs2, "second");
  changed["endpoints"][0]["addresses"][0] = "10.9.9.9";
  server_.Update(kSlicesNs2, changed);
  ASSERT_TRUE(watch.WaitForOutput(
      [](const std::string& o) {
        return HasObject(o, "second", [](const json& d) {
          return d["endpoints"][0]["addresses"][0] == "10.9.9.9";
        });
      },
      10s))
      << watch.out() << watch.err();

  // kubectl's watch does not relist: on the ERROR event it prints the event's Status (as it
  // does against a real server) and ends, rather than hanging or printing garbage.
  server_.ExpireWatches();
  ASSERT_TRUE(watch.WaitForExit(10s)) << "kubectl kept running after the watch expired";
  auto docs = JsonDocuments(watch.out());
  ASSERT_EQ(docs.size(), 4u) << watch.out();
  EXPECT_EQ(docs[3]["kind"], "Status");
  EXPECT_EQ(docs[3]["code"], 410);
  EXPECT_EQ(docs[3]["reason"], "Expired");
  EXPECT_EQ(watch.exit_code(), 0) << watch.err();
}

// Go's watch decoder against events split across chunks and packed several to a chunk, in the
// human (Table) form kubectl asks for without -o.
TEST(KubectlRandomChunks, TableWatchSeesEveryObject) {
  TestApiServer server({.random_chunks = true, .random_chunks_seed = 3});
  server.Start();
  TempDir dir;
  server.WriteKubeconfig(dir.File("kubeconfig"), "test-token");
  for (int i = 0; i < 5; ++i) server.Create(kSlicesNs1, Slice("before-" + std::to_string(i)));
  KubectlProcess watch(dir, dir.File("kubeconfig"),
                       {"--request-timeout=0", "get", "endpointslices", "-A", "--watch"});
  ASSERT_TRUE(server.WaitForWatches(1, 20s)) << watch.err();
  for (int i = 0; i < 30; ++i) server.Create(kSlicesNs2, Slice("after-" + std::to_string(i)));
  auto all_there = [](const std::string& out) {
    for (int i = 0; i < 30; ++i) {
      if (out.find("after-" + std::to_string(i) + " ") == std::string::npos) return false;
    }
    return out.find("before-4") != std::string::npos;
  };
  EXPECT_TRUE(watch.WaitForOutput(all_there, 20s)) << watch.out() << watch.err();
  EXPECT_NE(watch.out().find("NAMESPACE"), std::string::npos) << watch.out();
  EXPECT_EQ(watch.err().find("rror"), std::string::npos) << watch.err();
}

// The standalone server: loads a file, writes a kubeconfig, prints its URL, serves kubectl,
// ends on SIGTERM.
TEST(StandaloneServer, ServesLoadedObjectsToKubectl) {
  TempDir dir;
  std::ofstream(dir.File("objects.json"))
      << R"([{"apiVersion":"v1","kind":"Node","metadata":{"name":"standalone-node"}}])";
  ChildProcess server({XLB_TEST_APISERVER_BIN, "--token", "tok", "--kubeconfig-out",
                       dir.File("kubeconfig"), "--load", dir.File("objects.json")},
                      {"PATH=/usr/bin:/bin"});
  ASSERT_TRUE(server.WaitForOutput(
      [](const std::string& o) { return o.find('\n') != std::string::npos; }, 10s))
      << server.err();
  EXPECT_EQ(server.out().rfind("https://127.0.0.1:", 0), 0u) << server.out();
  auto r = RunKubectl(dir, dir.File("kubeconfig"),
                      {"--request-timeout=20s", "get", "nodes", "-o", "name"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "node/standalone-node\n");
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.WaitForExit(10s));
  EXPECT_EQ(server.exit_code(), 0) << server.err();

  ChildProcess bad({XLB_TEST_APISERVER_BIN, "--load", dir.File("missing.json")},
                   {"PATH=/usr/bin:/bin"});
  ASSERT_TRUE(bad.WaitForExit(10s));
  EXPECT_NE(bad.exit_code(), 0);
  EXPECT_NE(bad.err().find("missing.json: cannot open"), std::string::npos) << bad.err();
}

TEST_F(KubectlTest, CreateAndDeleteThroughKubectl) {
  std::string file = dir_.File("svc.json");
  std::ofstream(file)
      << R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"made","namespace":"ns1"},
                           "spec":{"ports":[{"port":81}]}})";
  auto created = Kubectl({"create", "-f", file, "--validate=false"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  ASSERT_TRUE(server_.Get("/api/v1/namespaces/ns1/services", "made"));
  auto again = Kubectl({"create", "-f", file, "--validate=false"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("AlreadyExists"), std::string::npos) << Describe(again);
  auto deleted = Kubectl({"delete", "svc", "made", "-n", "ns1", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  EXPECT_FALSE(server_.Get("/api/v1/namespaces/ns1/services", "made"));
}

}  // namespace
}  // namespace xlb::testing
