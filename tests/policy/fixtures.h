// Models and policy files for the policy tests. Addresses: 198.18.0.0/15 only.
#ifndef XLB_TESTS_POLICY_FIXTURES_H
#define XLB_TESTS_POLICY_FIXTURES_H

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "userspace/model/model.h"
#include "userspace/policy/policy_parse.h"
#include "userspace/policy/policy_store.h"
#include "userspace/policy/weights.h"

namespace xlb::testing {

inline const NamespacedName kApi{"production", "api-service"};

// The issue's VirtualService: 70 % to the local cluster, 30 % to the clusterset.
inline std::string IssueVirtualService(const std::string& api_version = "networking.istio.io/v1") {
  return "apiVersion: " + api_version + R"(
kind: VirtualService
metadata:
  name: api-service
spec:
  hosts:
  - api-service
  http:
  - route:
    - destination:
        host: api-service.production.svc.cluster.local
        port:
          number: 8080
      weight: 70
    - destination:
        host: api-service.production.svc.clusterset.local
        port:
          number: 8080
      weight: 30
)";
}

// `n` endpoints of `service` in `cluster` (id `cluster_id`): 198.18.<id>.1.. on port `port`
// (named `port_name`), on nodes 198.18.0.<id * 10 + i>.
inline void AddEndpoints(Model& m, const NamespacedName& service, const std::string& cluster,
                         int cluster_id, int n, EndpointConditions conditions = {}, int first = 1,
                         const std::string& port_name = "http", uint16_t port = 8080) {
  for (int i = first; i < first + n; ++i) {
    Endpoint e;
    e.service = service;
    e.cluster = cluster;
    e.addresses = {
        *IpAddress::Parse("198.18." + std::to_string(cluster_id) + "." + std::to_string(i))};
    e.ports = {{port_name, port, Protocol::kTcp}};
    e.node_name = cluster + "-node" + std::to_string(i);
    e.node_address = *IpAddress::Parse("198.18.0." + std::to_string(cluster_id * 10 + i));
    e.conditions = conditions;
    m.AddEndpoint(std::move(e));
  }
}

inline Service ApiService() {
  Service s;
  s.name = kApi;
  s.cluster_ips = {*IpAddress::Parse("198.18.100.10")};
  s.clusterset_ips = {*IpAddress::Parse("198.18.200.10")};
  s.ports = {ServicePort{"http", 8080, Protocol::kTcp, 8080, "", 0, ""}};
  return s;
}

// cluster-a (local, id 1) and cluster-b (id 2), each with `per_cluster` endpoints of
// production/api-service (port http 8080).
inline Model TwoClusters(int per_cluster = 2) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  m.PutCluster({2, "cluster-b", false});
  m.PutService(ApiService());
  AddEndpoints(m, kApi, "cluster-a", 1, per_cluster);
  AddEndpoints(m, kApi, "cluster-b", 2, per_cluster);
  return m;
}

// cluster-a (local, id 1), cluster-b (2), cluster-c (3); api-service with `a`, `b`, `c` ready
// endpoints.
inline Model ThreeClusters(int a, int b, int c) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  m.PutCluster({2, "cluster-b", false});
  m.PutCluster({3, "cluster-c", false});
  m.PutService(ApiService());
  AddEndpoints(m, kApi, "cluster-a", 1, a);
  AddEndpoints(m, kApi, "cluster-b", 2, b);
  AddEndpoints(m, kApi, "cluster-c", 3, c);
  return m;
}

// The plans of `files` over `model`; fails the test on any error.
inline std::vector<ServiceBackends> PlanFiles(const std::vector<PolicyFile>& files,
                                              const Model& model, PolicyOptions options = {}) {
  PolicyStore store(std::move(options));
  const auto accepted = store.Replace(files, model);
  EXPECT_TRUE(accepted.ok()) << ToString(accepted.error());
  ConfigErrors problems;
  auto plans = store.Plan(model, problems);
  EXPECT_TRUE(problems.empty()) << ToString(problems);
  return plans;
}

inline std::vector<ServiceBackends> PlanText(const std::string& text, const Model& model) {
  return PlanFiles({PolicyFile{"policy.yaml", text}}, model);
}

// The plan of one service port (IPv4).
inline const ServiceBackends& PlanOf(const std::vector<ServiceBackends>& plans,
                                     const NamespacedName& service, uint16_t port) {
  for (const ServiceBackends& p : plans) {
    if (p.service == service && p.port.port == port && p.family == IpFamily::kIPv4) {
      return p;
    }
  }
  ADD_FAILURE() << "no plan for " << service.ToString() << " port " << port;
  static const ServiceBackends kNone;
  return kNone;
}

// Cluster -> share of new flows, from the backends' weights (not from ClusterShare, which the
// tests check against this).
inline std::map<std::string, double> Shares(const ServiceBackends& plan) {
  std::map<std::string, double> out;
  const double total = static_cast<double>(plan.TotalWeight());
  for (const WeightedBackend& b : plan.backends) {
    out[b.cluster] += total == 0 ? 0 : b.weight / total;
  }
  for (const ClusterShare& c : plan.clusters) {
    EXPECT_NEAR(c.share, out[c.cluster], 1e-12) << c.cluster;
  }
  return out;
}

// Backend key -> weight.
inline std::map<std::string, uint32_t> Weights(const ServiceBackends& plan) {
  std::map<std::string, uint32_t> out;
  for (const WeightedBackend& b : plan.backends) {
    out[b.key] = b.weight;
  }
  return out;
}

}  // namespace xlb::testing

#endif  // XLB_TESTS_POLICY_FIXTURES_H
