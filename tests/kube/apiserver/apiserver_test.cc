// The test API server over the wire, looked at with an independent HTTP client: lists,
// pagination, watches and every failure mode the watch client must survive.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/kube/apiserver/test_client.h"

namespace xlb::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const char* kSlices = "/apis/discovery.k8s.io/v1/endpointslices";
const char* kSlicesNs1 = "/apis/discovery.k8s.io/v1/namespaces/ns1/endpointslices";

json Slice(const std::string& name, json labels = json::object()) {
  return {{"metadata", {{"name", name}, {"labels", labels}}},
          {"addressType", "IPv4"},
          {"endpoints", {{{"addresses", {"10.1.0.1"}}}}}};
}

class ApiServerTest : public ::testing::Test {
 protected:
  void StartServer(ApiServerOptions options = {}) {
    server_ = std::make_unique<TestApiServer>(options);
    server_->Start();
  }
  void SetUp() override { StartServer(); }

  std::unique_ptr<RawHttpClient> Client() {
    return std::make_unique<RawHttpClient>(server_->port(), server_->ca_pem());
  }
  RawHttpClient::Response Get(const std::string& target, const std::string& token = "test-token") {
    return Client()->Request("GET", target, token);
  }
  // Events until the stream ends or `timeout` passes without one.
  static std::vector<json> Drain(RawHttpClient& c, std::chrono::milliseconds timeout) {
    std::vector<json> out;
    while (auto e = c.NextEvent(timeout)) out.push_back(*e);
    return out;
  }

  std::unique_ptr<TestApiServer> server_;
};

TEST_F(ApiServerTest, ListReturnsStoredObjectsWithListMetadata) {
  server_->Create(kSlicesNs1, Slice("a"));
  server_->Create("/apis/discovery.k8s.io/v1/namespaces/ns2/endpointslices", Slice("b"));
  auto res = Get(kSlices);
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.headers["content-type"], "application/json");
  json list = res.Json();
  EXPECT_EQ(list["kind"], "EndpointSliceList");
  EXPECT_EQ(list["apiVersion"], "discovery.k8s.io/v1");
  EXPECT_EQ(list["metadata"]["resourceVersion"], server_->resource_version());
  ASSERT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "a");
  EXPECT_EQ(list["items"][0]["metadata"]["namespace"], "ns1");
  EXPECT_EQ(list["items"][1]["metadata"]["namespace"], "ns2");
  // Built-in types: no kind/apiVersion per item, like the real server.
  EXPECT_FALSE(list["items"][0].contains("kind"));
  EXPECT_FALSE(list["items"][0]["metadata"]["uid"].get<std::string>().empty());

  auto ns1 = Get(kSlicesNs1).Json();
  ASSERT_EQ(ns1["items"].size(), 1u);
  EXPECT_EQ(ns1["items"][0]["metadata"]["name"], "a");

  auto one = Get(std::string(kSlicesNs1) + "/a");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.Json()["kind"], "EndpointSlice");
  auto missing = Get(std::string(kSlicesNs1) + "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Json()["reason"], "NotFound");
  EXPECT_EQ(missing.Json()["message"], "endpointslices.discovery.k8s.io \"nope\" not found");
  EXPECT_EQ(missing.Json()["details"],
            json({{"name", "nope"}, {"group", "discovery.k8s.io"}, {"kind", "endpointslices"}}));
}

TEST_F(ApiServerTest, CustomResourcesCarryKindInListsAndShareStorageAcrossVersions) {
  server_->Create("/apis/multicluster.x-k8s.io/v1alpha1/namespaces/ns1/serviceimports",
                  {{"metadata", {{"name", "web"}}}, {"spec", {{"type", "ClusterSetIP"}}}});
  auto beta = Get("/apis/multicluster.x-k8s.io/v1beta1/serviceimports").Json();
  ASSERT_EQ(beta["items"].size(), 1u);
  EXPECT_EQ(beta["items"][0]["apiVersion"], "multicluster.x-k8s.io/v1beta1");
  EXPECT_EQ(beta["items"][0]["kind"], "ServiceImport");
  server_->Create("/apis/about.k8s.io/v1alpha1/clusterproperties",
                  {{"metadata", {{"name", "cluster.clusterset.k8s.io"}}}, {"value", "east"}});
  auto props = Get("/apis/about.k8s.io/v1alpha1/clusterproperties").Json();
  ASSERT_EQ(props["items"].size(), 1u);
  EXPECT_FALSE(props["items"][0]["metadata"].contains("namespace"));
  // Cluster-scoped resources have no namespaced path.
  EXPECT_EQ(Get("/apis/about.k8s.io/v1alpha1/namespaces/x/clusterproperties").status, 404);
}

TEST_F(ApiServerTest, WrongOrMissingTokenGets401StatusAndRotationWorks) {
  auto none = Get(kSlices, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.Json()["kind"], "Status");
  EXPECT_EQ(none.Json()["code"], 401);
  EXPECT_EQ(none.Json()["reason"], "Unauthorized");
  EXPECT_EQ(Get(kSlices, "wrong").status, 401);
  EXPECT_EQ(Get("/version", "wrong").status, 401);
  EXPECT_EQ(server_->unauthorized(), 3u);

  server_->SetTokens({"new-token"});
  EXPECT_EQ(Get(kSlices, "test-token").status, 401);
  EXPECT_EQ(Get(kSlices, "new-token").status, 200);
  // A watch is authenticated too.
  auto c = Client();
  EXPECT_EQ(c->StartStream(std::string(kSlices) + "?watch=1", "test-token").status, 401);
}

TEST_F(ApiServerTest, PaginationServesAConsistentSnapshot) {
  for (int i = 0; i < 7; ++i) server_->Create(kSlicesNs1, Slice("s" + std::to_string(i)));
  std::string list_rv = server_->resource_version();
  std::set<std::string> names;
  std::string cont;
  std::vector<long> remaining;
  int pages = 0;
  do {
    std::string target =
        std::string(kSlices) + "?limit=3" + (cont.empty() ? "" : "&continue=" + cont);
    auto res = Get(target);
    ASSERT_EQ(res.status, 200) << res.body;
    json page = res.Json();
    EXPECT_EQ(page["metadata"]["resourceVersion"], list_rv) << "every page is the same snapshot";
    for (const auto& item : page["items"]) names.insert(item["metadata"]["name"]);
    EXPECT_LE(page["items"].size(), 3u);
    cont = page["metadata"].value("continue", "");
    if (!cont.empty()) remaining.push_back(page["metadata"]["remainingItemCount"]);
    if (pages == 0) {
      // Changes after the first page must not show up in the later pages.
      server_->Create(kSlicesNs1, Slice("s9-late"));
      server_->Delete(kSlicesNs1, "s6");
    }
    ++pages;
  } while (!cont.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names.size(), 7u);
  EXPECT_TRUE(names.contains("s6"));
  EXPECT_FALSE(names.contains("s9-late"));
  EXPECT_EQ(remaining, (std::vector<long>{4, 1}));
  EXPECT_EQ(server_->lists_served(), 3u);
}

TEST_F(ApiServerTest, OldContinueTokenAfterCompactIs410Expired) {
  for (int i = 0; i < 4; ++i) server_->Create(kSlicesNs1, Slice("s" + std::to_string(i)));
  json page = Get(std::string(kSlices) + "?limit=2").Json();
  std::string cont = page["metadata"]["continue"];
  ASSERT_EQ(Get(std::string(kSlices) + "?limit=2&continue=" + cont).status, 200);
  server_->Create(kSlicesNs1, Slice("later"));
  server_->Compact();
  auto res = Get(std::string(kSlices) + "?limit=2&continue=" + cont);
  EXPECT_EQ(res.status, 410);
  EXPECT_EQ(res.Json()["reason"], "Expired");
  EXPECT_EQ(res.Json()["code"], 410);
  EXPECT_EQ(Get(std::string(kSlices) + "?limit=2&continue=garbage").status, 400);
}

TEST_F(ApiServerTest, WatchWithoutResourceVersionStartsWithCurrentStateThenChanges) {
  server_->Create(kSlicesNs1, Slice("before"));
  auto c = Client();
  auto head = c->StartStream(std::string(kSlices) + "?watch=1", "test-token");
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["transfer-encoding"], "chunked");
  auto first = c->NextEvent(5s);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["type"], "ADDED");
  EXPECT_EQ((*first)["object"]["metadata"]["name"], "before");
  EXPECT_EQ((*first)["object"]["kind"], "EndpointSlice");
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));

  json created = server_->Create(kSlicesNs1, Slice("after"));
  json changed = created;
  changed["endpoints"] = json::array();
  server_->Update(kSlicesNs1, changed);
  server_->Delete(kSlicesNs1, "before");
  std::vector<std::string> types;
  uint64_t last_rv = 0;
  for (int i = 0; i < 3; ++i) {
    auto e = c->NextEvent(5s);
    ASSERT_TRUE(e) << "event " << i;
    types.push_back((*e)["type"]);
    uint64_t rv = std::stoull((*e)["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(rv, last_rv);
    last_rv = rv;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED"}));
  EXPECT_EQ(std::to_string(last_rv), server_->resource_version());
  EXPECT_EQ(server_->watches_served(), 1u);
}

TEST_F(ApiServerTest, WatchFromAResourceVersionReplaysOnlyLaterChanges) {
  server_->Create(kSlicesNs1, Slice("a"));
  std::string rv = server_->resource_version();
  server_->Create(kSlicesNs1, Slice("b"));
  server_->Create("/api/v1/namespaces/ns1/services", {{"metadata", {{"name", "svc"}}}});
  auto c = Client();
  ASSERT_EQ(c->StartStream(std::string(kSlices) + "?watch=true&resourceVersion=" + rv, "test-token")
                .status,
            200);
  auto e = c->NextEvent(5s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["object"]["metadata"]["name"], "b");
  EXPECT_FALSE(c->NextEvent(300ms)) << "the service and object a must not be sent";
}

TEST_F(ApiServerTest, WatchFromACompactedResourceVersionGetsErrorEvent410) {
  server_->Create(kSlicesNs1, Slice("a"));
  std::string old_rv = server_->resource_version();
  server_->Create(kSlicesNs1, Slice("b"));
  server_->Compact();
  auto c = Client();
  ASSERT_EQ(
      c->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + old_rv, "test-token")
          .status,
      200);
  auto events = Drain(*c, 5s);
  EXPECT_EQ(c->end(), RawHttpClient::End::kClean);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["kind"], "Status");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  EXPECT_EQ(server_->gone(), 1u);
  // From the compaction point on it works.
  auto ok = Client();
  ok->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + server_->resource_version(),
                  "test-token");
  server_->Create(kSlicesNs1, Slice("c"));
  auto e = ok->NextEvent(5s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["type"], "ADDED");
}

TEST_F(ApiServerTest, BookmarksCarryOnlyTheResourceVersion) {
  StartServer({.bookmark_interval_ms = 100});
  server_->Create(kSlicesNs1, Slice("a"));
  std::string rv = server_->resource_version();
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv,
                 "test-token");
  auto e = c->NextEvent(3s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["type"], "BOOKMARK");
  EXPECT_EQ((*e)["object"]["kind"], "EndpointSlice");
  EXPECT_EQ((*e)["object"]["apiVersion"], "discovery.k8s.io/v1");
  EXPECT_EQ((*e)["object"]["metadata"]["resourceVersion"], rv);
  EXPECT_FALSE((*e)["object"]["metadata"].contains("name"));
  EXPECT_FALSE((*e)["object"].contains("endpoints"));
  // A change elsewhere moves the bookmark's resourceVersion without an event for us.
  server_->Create("/api/v1/nodes", {{"metadata", {{"name", "n1"}}}});
  std::string after = server_->resource_version();
  bool seen = false;
  for (int i = 0; i < 10 && !seen; ++i) {
    auto b = c->NextEvent(3s);
    ASSERT_TRUE(b);
    ASSERT_EQ((*b)["type"], "BOOKMARK");
    seen = (*b)["object"]["metadata"]["resourceVersion"] == after;
  }
  EXPECT_TRUE(seen);
}

TEST_F(ApiServerTest, NoBookmarksUnlessAsked) {
  StartServer({.bookmark_interval_ms = 50});
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + server_->resource_version(),
                 "test-token");
  EXPECT_FALSE(c->NextEvent(400ms));
  EXPECT_EQ(c->end(), RawHttpClient::End::kTimeout);
}

TEST_F(ApiServerTest, TimeoutSecondsEndsTheStreamCleanly) {
  auto c = Client();
  auto start = std::chrono::steady_clock::now();
  c->StartStream(std::string(kSlices) + "?watch=1&timeoutSeconds=1", "test-token");
  auto events = Drain(*c, 30s);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(events.empty());
  // Clean, not a timeout: the server ended the stream, not the client's 30 s wait (the only
  // upper bound a loaded machine cannot break). Not before the second is up.
  EXPECT_EQ(c->end(), RawHttpClient::End::kClean);
  EXPECT_GE(took, 900ms);
  // The connection stays usable (keep-alive) after a clean end.
  EXPECT_EQ(c->Request("GET", kSlices, "test-token").status, 200);
}

TEST_F(ApiServerTest, ServerSideWatchTimeoutEndsWatchesCleanly) {
  StartServer({.watch_timeout_ms = 300});
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&timeoutSeconds=100", "test-token");
  EXPECT_TRUE(Drain(*c, 30s).empty());
  // Clean within the client's 30 s: the server's 300 ms, not the asked-for 100 s, ended it.
  EXPECT_EQ(c->end(), RawHttpClient::End::kClean);
}

TEST_F(ApiServerTest, ExpireWatchesSendsError410AndEndsCleanly) {
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1", "test-token");
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));
  server_->ExpireWatches();
  EXPECT_EQ(server_->open_watches(), 0u) << "ExpireWatches() returns once the watch is gone";
  auto events = Drain(*c, 5s);
  EXPECT_EQ(c->end(), RawHttpClient::End::kClean);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  EXPECT_EQ(events[0]["object"]["status"], "Failure");
}

TEST_F(ApiServerTest, DropConnectionsCutsStreamsWithoutTerminator) {
  auto watch = Client();
  watch->StartStream(std::string(kSlices) + "?watch=1", "test-token");
  auto idle = Client();
  ASSERT_EQ(idle->Request("GET", kSlices, "test-token").status, 200);
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));
  EXPECT_EQ(server_->open_connections(), 2u);
  server_->DropConnections();
  EXPECT_EQ(server_->open_watches(), 0u);
  EXPECT_EQ(server_->open_connections(), 0u) << "DropConnections() returns once they are gone";
  EXPECT_FALSE(watch->NextEvent(5s));
  EXPECT_EQ(watch->end(), RawHttpClient::End::kAbrupt);
  EXPECT_THROW(idle->Request("GET", kSlices, "test-token", "", 5s), std::runtime_error);
  // The server itself still serves new connections.
  EXPECT_EQ(Get(kSlices).status, 200);
}

TEST_F(ApiServerTest, RestartWithNewHistoryMovesResourceVersionsAndExpiresOldOnes) {
  json a = server_->Create(kSlicesNs1, Slice("a"));
  uint16_t port = server_->port();
  std::string old_rv = server_->resource_version();
  auto watch = Client();
  watch->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + old_rv, "test-token");
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));

  server_->Restart(/*new_history=*/true);
  EXPECT_FALSE(watch->NextEvent(5s));
  EXPECT_EQ(watch->end(), RawHttpClient::End::kAbrupt);
  EXPECT_EQ(server_->port(), port);
  uint64_t new_rv = std::stoull(server_->resource_version());
  EXPECT_GT(new_rv, std::stoull(old_rv) + 1000);

  json list = Get(kSlices).Json();  // same CA: the client verifies the new server
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["uid"], a["metadata"]["uid"]) << "objects are kept";
  EXPECT_NE(list["items"][0]["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"]);
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + old_rv, "test-token");
  auto e = c->NextEvent(5s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["type"], "ERROR");
  EXPECT_EQ((*e)["object"]["code"], 410);
}

TEST_F(ApiServerTest, RestartKeepingHistoryResumesWatches) {
  server_->Create(kSlicesNs1, Slice("a"));
  std::string rv = server_->resource_version();
  server_->Restart(/*new_history=*/false);
  server_->Create(kSlicesNs1, Slice("b"));
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + rv, "test-token");
  auto e = c->NextEvent(5s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["type"], "ADDED");
  EXPECT_EQ((*e)["object"]["metadata"]["name"], "b");
}

TEST_F(ApiServerTest, RandomChunksSplitAndPackEvents) {
  StartServer({.random_chunks = true, .random_chunks_seed = 7});
  for (int i = 0; i < 20; ++i) server_->Create(kSlicesNs1, Slice("s" + std::to_string(i)));
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1", "test-token");
  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    auto e = c->NextEvent(5s);
    ASSERT_TRUE(e) << i;
    names.insert((*e)["object"]["metadata"]["name"]);
  }
  EXPECT_EQ(names.size(), 20u);
  EXPECT_GT(c->chunks_split_line(), 0) << "some event was split across chunks";
  EXPECT_GT(c->chunks_with_several_lines(), 0) << "some chunk carried several events";
  // Later single changes still arrive whole.
  server_->Create(kSlicesNs1, Slice("late"));
  auto e = c->NextEvent(5s);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["object"]["metadata"]["name"], "late");
}

// Many changes while the watch is writing: every one arrives, once, in revision order.
TEST_F(ApiServerTest, WatchKeepsUpWithThousandsOfChangesInOrder) {
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&resourceVersion=" + server_->resource_version(),
                 "test-token");
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));
  const int kObjects = 2000;
  auto start = std::chrono::steady_clock::now();
  std::thread writer([&] {
    for (int i = 0; i < kObjects; ++i) {
      json s = server_->Create(kSlicesNs1, Slice("s" + std::to_string(i)));
      if (i % 2 == 0) server_->Update(kSlicesNs1, s);
    }
  });
  uint64_t last = 0;
  int received = 0;
  while (received < kObjects * 3 / 2) {
    auto e = c->NextEvent(10s);
    if (!e) break;
    uint64_t rv = std::stoull((*e)["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(rv, last);
    last = rv;
    ++received;
  }
  writer.join();
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(received, kObjects * 3 / 2);
  EXPECT_EQ(std::to_string(last), server_->resource_version());
  std::printf("watch: %d events in %.3f s (%.0f events/s)\n", received, took, received / took);
}

TEST_F(ApiServerTest, LabelAndFieldSelectorsFilterListsAndWatches) {
  server_->Create(kSlicesNs1, Slice("web-1", {{"app", "web"}}));
  server_->Create(kSlicesNs1, Slice("db-1", {{"app", "db"}}));
  server_->Create(kSlicesNs1, Slice("plain"));
  auto names = [&](const std::string& query) {
    std::set<std::string> out;
    auto res = Get(std::string(kSlices) + "?" + query);
    EXPECT_EQ(res.status, 200) << query << ": " << res.body;
    json list = res.Json();
    for (const auto& i : list["items"]) out.insert(i["metadata"]["name"]);
    return out;
  };
  EXPECT_EQ(names("labelSelector=app%3Dweb"), (std::set<std::string>{"web-1"}));
  EXPECT_EQ(names("labelSelector=app%21%3Dweb"), (std::set<std::string>{"db-1", "plain"}));
  EXPECT_EQ(names("labelSelector=app"), (std::set<std::string>{"db-1", "web-1"}));
  EXPECT_EQ(names("labelSelector=%21app"), (std::set<std::string>{"plain"}));
  EXPECT_EQ(names("labelSelector=app%20in%20(web,db)"), (std::set<std::string>{"db-1", "web-1"}));
  EXPECT_EQ(names("fieldSelector=metadata.name%3Dplain"), (std::set<std::string>{"plain"}));
  EXPECT_EQ(names("fieldSelector=metadata.namespace%3Dns2"), (std::set<std::string>{}));
  auto bad = Get(std::string(kSlices) + "?fieldSelector=spec.foo%3Dx");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.Json()["message"].get<std::string>().find("spec.foo"), std::string::npos);

  // A watch with a selector sees an object leave it as DELETED.
  auto c = Client();
  c->StartStream(std::string(kSlices) + "?watch=1&labelSelector=app%3Dweb&resourceVersion=" +
                     server_->resource_version(),
                 "test-token");
  ASSERT_TRUE(server_->WaitForWatches(1, 5s));
  json moved = *server_->Get(kSlicesNs1, "web-1");
  moved["metadata"]["labels"]["app"] = "other";
  server_->Update(kSlicesNs1, moved);
  server_->Create(kSlicesNs1, Slice("db-2", {{"app", "db"}}));
  server_->Create(kSlicesNs1, Slice("web-2", {{"app", "web"}}));
  auto e1 = c->NextEvent(5s);
  auto e2 = c->NextEvent(5s);
  ASSERT_TRUE(e1 && e2);
  EXPECT_EQ((*e1)["type"], "DELETED");
  EXPECT_EQ((*e1)["object"]["metadata"]["name"], "web-1");
  EXPECT_EQ((*e1)["object"]["metadata"]["labels"]["app"], "web") << "the last state that matched";
  EXPECT_EQ((*e1)["object"]["metadata"]["resourceVersion"],
            server_->Get(kSlicesNs1, "web-1")->at("metadata").at("resourceVersion"));
  EXPECT_EQ((*e2)["type"], "ADDED");
  EXPECT_EQ((*e2)["object"]["metadata"]["name"], "web-2");
}

TEST_F(ApiServerTest, DiscoveryDocuments) {
  json api = Get("/api").Json();
  EXPECT_EQ(api["kind"], "APIVersions");
  EXPECT_EQ(api["versions"], json({"v1"}));
  json apis = Get("/apis").Json();
  EXPECT_EQ(apis["kind"], "APIGroupList");
  std::set<std::string> groups;
  for (const auto& g : apis["groups"]) groups.insert(g["name"]);
  EXPECT_EQ(groups,
            (std::set<std::string>{"discovery.k8s.io", "multicluster.x-k8s.io", "about.k8s.io"}));
  json v1 = Get("/api/v1").Json();
  EXPECT_EQ(v1["kind"], "APIResourceList");
  bool found = false;
  for (const auto& r : v1["resources"]) {
    if (r["name"] == "services") {
      found = true;
      EXPECT_EQ(r["kind"], "Service");
      EXPECT_EQ(r["namespaced"], true);
      EXPECT_EQ(r["shortNames"], json({"svc"}));
    }
    if (r["name"] == "nodes") {
      EXPECT_EQ(r["namespaced"], false);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(Get("/apis/multicluster.x-k8s.io").Json()["preferredVersion"]["version"], "v1beta1");
  EXPECT_EQ(Get("/version").Json()["major"], "1");
  EXPECT_EQ(Get("/apis/nope.example.com/v1").status, 404);
}

TEST_F(ApiServerTest, WritesOverHttpWithConflictsAndNotFound) {
  auto c = Client();
  auto created = c->Request("POST", kSlicesNs1, "test-token", Slice("w").dump());
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Json()["metadata"]["namespace"], "ns1");
  EXPECT_EQ(c->Request("POST", kSlicesNs1, "test-token", Slice("w").dump()).Json()["reason"],
            "AlreadyExists");
  json stale = created.Json();
  json fresh = server_->Update(kSlicesNs1, stale);
  auto conflict = c->Request("PUT", std::string(kSlicesNs1) + "/w", "test-token", stale.dump());
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(conflict.Json()["reason"], "Conflict");
  auto put = c->Request("PUT", std::string(kSlicesNs1) + "/w", "test-token", fresh.dump());
  EXPECT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(c->Request("DELETE", std::string(kSlicesNs1) + "/w", "test-token").status, 200);
  EXPECT_EQ(c->Request("DELETE", std::string(kSlicesNs1) + "/w", "test-token").status, 404);
  EXPECT_EQ(c->Request("POST", kSlicesNs1, "test-token", "{not json").status, 400);
  // Odd shapes get an error, and the server keeps serving.
  EXPECT_EQ(c->Request("POST", kSlicesNs1, "test-token", R"({"metadata":"x"})").status, 422);
  EXPECT_EQ(c->Request("POST", kSlicesNs1, "test-token", R"({"metadata":{"name":7}})").status, 422);
  EXPECT_EQ(c->Request("PUT", std::string(kSlicesNs1) + "/w2", "test-token",
                       R"({"metadata":{"name":"w2","labels":"x"}})")
                .status,
            404);
  EXPECT_EQ(
      c->Request("GET", std::string(kSlices) + "?labelSelector=a%20in%20x", "test-token").status,
      400);
  EXPECT_EQ(c->Request("GET", std::string(kSlices) + "?limit=-1", "test-token").status, 200);
  EXPECT_EQ(c->Request("GET", std::string(kSlices) + "?limit=x", "test-token").status, 400);
  EXPECT_EQ(c->Request("GET", kSlices, "test-token").status, 200);
}

TEST_F(ApiServerTest, FailNextRequestsInjectsErrors) {
  server_->FailNextRequests(2, 503);
  auto first = Get(kSlices);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.headers["retry-after"], "1");
  EXPECT_EQ(first.Json()["kind"], "Status");
  EXPECT_EQ(Get(kSlices).status, 503);
  EXPECT_EQ(Get(kSlices).status, 200);
  server_->FailNextRequests(1, 410);
  auto gone = Get(kSlices);
  EXPECT_EQ(gone.status, 410);
  EXPECT_EQ(gone.Json()["reason"], "Expired");
}

TEST_F(ApiServerTest, StoreApiRejectsMistakesClearly) {
  EXPECT_THROW(server_->Create("/apis/nope/v1/things", Slice("x")), std::invalid_argument);
  server_->Create(kSlicesNs1, Slice("x"));
  try {
    server_->Create(kSlicesNs1, Slice("x"));
    FAIL() << "duplicate create accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_THROW(server_->Update(kSlicesNs1, Slice("missing")), std::invalid_argument);
  EXPECT_THROW(server_->Delete(kSlicesNs1, "missing"), std::invalid_argument);
  EXPECT_EQ(Get(kSlices).Json()["items"].size(), 1u);
}

TEST_F(ApiServerTest, LoadFileIsAllOrNothingAndNamesTheBadItem) {
  TempDir dir;
  std::ofstream(dir.File("good.json"))
      << R"({"kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"ns1"}},
            {"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}]})";
  server_->LoadFile(dir.File("good.json"));
  EXPECT_TRUE(server_->Get("/api/v1/namespaces/ns1/services", "s"));
  EXPECT_TRUE(server_->Get("/api/v1/nodes", "n"));

  std::ofstream(dir.File("bad.json"))
      << R"([{"apiVersion":"v1","kind":"Service","metadata":{"name":"t","namespace":"ns1"}},
            {"apiVersion":"v9","kind":"Gadget","metadata":{"name":"g"}}])";
  try {
    server_->LoadFile(dir.File("bad.json"));
    FAIL() << "bad file accepted";
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("bad.json: item 1 (g)"), std::string::npos) << what;
    EXPECT_NE(what.find("v9 Gadget"), std::string::npos) << what;
  }
  EXPECT_FALSE(server_->Get("/api/v1/namespaces/ns1/services", "t")) << "nothing stored";
}

TEST_F(ApiServerTest, PlainHttpModeServesTheSameApi) {
  StartServer({.tls = false});
  EXPECT_EQ(server_->url().rfind("http://127.0.0.1:", 0), 0u);
  server_->Create(kSlicesNs1, Slice("a"));
  RawHttpClient c(server_->port(), "");
  EXPECT_EQ(c.Request("GET", kSlices, "test-token").Json()["items"].size(), 1u);
}

}  // namespace
}  // namespace xlb::testing
