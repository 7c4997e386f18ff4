// Inputs of the agent tests: the testbed's clusterset as an xlb config file, and the 70/30
// VirtualService. The addresses are the testbed's (scripts/testbed.sh, 198.18.0.0/15 only):
// cluster A = podA1/podA2 on nodeA (transit 198.18.1.2), cluster B = podB1/podB2 on nodeB
// (198.18.2.2, the tunnel endpoint of its pods), the service on VIP 198.18.100.1:8080.
#ifndef XLB_TESTS_AGENT_AGENT_FIXTURES_H
#define XLB_TESTS_AGENT_AGENT_FIXTURES_H

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace xlb::agent_test {

inline constexpr const char* kVip = "198.18.100.1";
inline constexpr const char* kNamespace = "xlb-test";
inline constexpr const char* kService = "echo";

// The same services and endpoints on every node; only the local cluster differs.
inline std::string TestbedConfig(const std::string& local_cluster) {
  auto local = [&](const char* c) { return local_cluster == c ? "true" : "false"; };
  return std::string(R"(# xlb-agent test config: the testbed's two clusters.
apiVersion: xlb.dev/v1alpha1
kind: Config
clusters:
- name: cluster-a
  id: 1
  local: )") +
         local("cluster-a") + R"(
  nodes:
  - name: node-a
    addresses: [198.18.1.2]
- name: cluster-b
  id: 2
  local: )" +
         local("cluster-b") + R"(
  nodes:
  - name: node-b
    addresses: [198.18.2.2]
services:
- name: echo
  namespace: xlb-test
  clusterIP: 198.18.100.1
  ports:
  - port: 8080
    protocol: TCP
endpointSlices:
- service: echo
  namespace: xlb-test
  cluster: cluster-a
  endpoints:
  - addresses: [198.18.10.11]
    nodeName: node-a
  - addresses: [198.18.10.12]
    nodeName: node-a
- service: echo
  namespace: xlb-test
  cluster: cluster-b
  endpoints:
  - addresses: [198.18.20.11]
    nodeName: node-b
  - addresses: [198.18.20.12]
    nodeName: node-b
)";
}

// The same with nodePort 30080 on the service's port (kube-proxy's NodePort: served on every
// node address given to the agent with --node-addr).
inline constexpr int kNodePort = 30080;
inline std::string TestbedConfigWithNodePort(const std::string& local_cluster) {
  std::string config = TestbedConfig(local_cluster);
  const std::string port = "  - port: 8080\n    protocol: TCP\n";
  config.insert(config.find(port) + port.size(),
                "    nodePort: " + std::to_string(kNodePort) + "\n");
  return config;
}

// Istio's shape of "local% to this cluster's endpoints, remote% to the other clusters'".
// `local_weight` is written as given, so a test can make it malformed ("-5", "seventy").
inline std::string VirtualService(const std::string& local_weight, int remote_weight) {
  return R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: xlb-test
spec:
  hosts: [echo]
  tcp:
  - route:
    - destination:
        host: echo.xlb-test.svc.cluster.local
      weight: )" +
         local_weight + R"(
    - destination:
        host: echo.xlb-test.svc.clusterset.local
      weight: )" +
         std::to_string(remote_weight) + "\n";
}

// Writes `text` to a temporary file beside `path`, then renames it over `path`: a reader
// sees the old file or the new one, never half of it (what kubectl's ConfigMap volumes do,
// with a symlink).
inline void WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    throw std::runtime_error("open " + tmp + ": " + std::strerror(errno));
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) {
    throw std::runtime_error("write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
  }
}

}  // namespace xlb::agent_test

#endif  // XLB_TESTS_AGENT_AGENT_FIXTURES_H
