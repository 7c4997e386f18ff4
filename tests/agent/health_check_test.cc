// kube-proxy's health checks without root (health_check.h): the local ready endpoint count,
// a healthCheckNodePort served on loopback that answers 200 with a local endpoint and 503
// without one (body and X-Load-Balancing-Endpoint-Weight as kube-proxy writes them), servers
// that follow the model, the and the node /healthz body.
#include "userspace/agent/health_check.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/free_port.h"

namespace xlb::agent_test {
namespace {

const NamespacedName kWeb{"shop", "web"};

Endpoint At(const std::string& address, const std::string& cluster, const std::string& node,
            EndpointConditions conditions = {}) {
  Endpoint e;
  e.service = kWeb;
  e.cluster = cluster;
  e.addresses = {*IpAddress::Parse(address)};
  e.ports = {{"http", 8080, Protocol::kTcp}};
  e.node_name = node;
  e.node_address = *IpAddress::Parse(node == "node-1" ? "198.18.0.1" : "198.18.0.2");
  e.conditions = conditions;
  return e;
}

// shop/web, externalTrafficPolicy Local, on node-1 of cluster-a: one ready endpoint here, one
// here not ready, one here terminating, one on node-2, one in cluster-b.
Model WebModel(uint16_t health_port) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  m.PutCluster({2, "cluster-b", false});
  m.SetLocalNode({"node-1", {*IpAddress::Parse("198.18.0.1")}, ""});
  Service s;
  s.name = kWeb;
  s.cluster_ips = {*IpAddress::Parse("198.18.100.1")};
  s.load_balancer_ips = {*IpAddress::Parse("198.19.0.1")};
  s.ports = {ServicePort{"http", 80, Protocol::kTcp, 8080, "", 30080, ""}};
  s.external_policy = ServiceTrafficPolicy::kLocal;
  s.health_check_node_port = health_port;
  m.PutService(s);
  m.AddEndpoint(At("198.18.1.1", "cluster-a", "node-1"));
  m.AddEndpoint(At("198.18.1.2", "cluster-a", "node-1", {false, false, false}));
  m.AddEndpoint(At("198.18.1.3", "cluster-a", "node-1", {false, true, true}));
  m.AddEndpoint(At("198.18.1.4", "cluster-a", "node-2"));
  m.AddEndpoint(At("198.18.2.1", "cluster-b", "node-1"));  // a remote cluster's node-1
  return m;
}

TEST(HealthCheck, LocalReadyEndpointsCountsThisNodesReadyOnes) {
  Model m = WebModel(0);
  EXPECT_EQ(LocalReadyEndpoints(m, kWeb), 1u);
  m.AddEndpoint(At("198.18.1.5", "cluster-a", "node-1"));
  EXPECT_EQ(LocalReadyEndpoints(m, kWeb), 2u);
  EXPECT_EQ(LocalReadyEndpoints(m, {"shop", "none"}), 0u);
}

TEST(HealthCheck, AServiceHealthCheckAnswersLikeKubeProxy) {
  const uint16_t port = xlb::testing::FreeLoopbackPort();
  std::atomic<bool> healthy{true};
  ServiceHealthServers servers("127.0.0.1", [&] { return healthy.load(); });
  Model m = WebModel(port);
  ASSERT_TRUE(servers.Sync(m).empty());
  EXPECT_EQ(servers.Ports(), std::vector<uint16_t>{port});
  const std::string at = "127.0.0.1:" + std::to_string(port);

  auto r = HttpGet(at, "/any/path");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->headers.find("X-Load-Balancing-Endpoint-Weight: 1\r\n"), std::string::npos)
      << r->headers;
  EXPECT_NE(r->headers.find("Content-Type: application/json"), std::string::npos);
  const auto body = nlohmann::json::parse(r->body);
  EXPECT_EQ(body["service"]["namespace"], "shop");
  EXPECT_EQ(body["service"]["name"], "web");
  EXPECT_EQ(body["localEndpoints"], 1);
  EXPECT_EQ(body["serviceProxyHealthy"], true);

  // The agent unhealthy: 503, the count still said.
  healthy = false;
  r = HttpGet(at, "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(nlohmann::json::parse(r->body)["serviceProxyHealthy"], false);
  healthy = true;

  // The local endpoint goes: 503, weight 0, on the same server.
  std::vector<Endpoint> rest(m.EndpointsOf(kWeb).begin() + 1, m.EndpointsOf(kWeb).end() - 1);
  m.SetEndpoints(kWeb, "cluster-a", rest);
  ASSERT_TRUE(servers.Sync(m).empty());
  r = HttpGet(at, "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->headers.find("X-Load-Balancing-Endpoint-Weight: 0\r\n"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(r->body)["localEndpoints"], 0);

  // Back to Cluster: the port closes.
  Service s = *m.FindService(kWeb);
  s.external_policy = ServiceTrafficPolicy::kCluster;
  m.PutService(s);
  ASSERT_TRUE(servers.Sync(m).empty());
  EXPECT_TRUE(servers.Ports().empty());
  EXPECT_FALSE(HttpGet(at, "/", std::chrono::milliseconds(500)).ok());
}

TEST(HealthCheck, APortThatCannotBeServedIsAProblemAndIsTriedAgain) {
  const uint16_t port = xlb::testing::FreeLoopbackPort();
  auto squatter = HttpServer::Start("127.0.0.1:" + std::to_string(port),
                                    [](std::string_view) { return HttpResponse{}; });
  ASSERT_TRUE(squatter.ok());
  ServiceHealthServers servers("127.0.0.1", [] { return true; });
  Model m = WebModel(port);
  Service other = *m.FindService(kWeb);
  other.name = {"shop", "other"};
  other.cluster_ips = {*IpAddress::Parse("198.18.100.2")};
  other.load_balancer_ips = {};
  m.PutService(other);  // the same healthCheckNodePort
  const std::vector<std::string> problems = servers.Sync(m);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("already shop/other's"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("bind"), std::string::npos) << problems[1];
  squatter->reset();
  m.RemoveService({"shop", "other"});
  EXPECT_TRUE(servers.Sync(m).empty());
  auto r = HttpGet("127.0.0.1:" + std::to_string(port), "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
}

TEST(HealthCheck, NodeHealthzBody) {
  const HttpResponse ok = NodeHealthResponse(true, 1'780'000'000.0, 1'780'000'005.0);
  EXPECT_EQ(ok.status, 200);
  const auto body = nlohmann::json::parse(ok.body);
  EXPECT_EQ(body["lastUpdated"], "2026-05-28T20:26:40Z");
  EXPECT_EQ(body["currentTime"], "2026-05-28T20:26:45Z");
  EXPECT_EQ(body["nodeEligible"], true);
  EXPECT_EQ(NodeHealthResponse(false, 0, 1'780'000'005.0).status, 503);
}

}  // namespace
}  // namespace xlb::agent_test
