// kube-proxy's health checks, which cloud load balancers probe to pick the nodes they send to:
//
//   - Service health: for every Service with externalTrafficPolicy Local and a
//     healthCheckNodePort, an HTTP server on that port, on every address of the node. Any path
//     answers with the number of this node's ready endpoints of the service: 200 when there is
//     one and the agent is healthy, else 503, so that a load balancer sends a Local service's
//     traffic only to nodes that keep it. The body and the X-Load-Balancing-Endpoint-Weight
//     header are kube-proxy's (pkg/proxy/healthcheck/service_health.go).
//   - Node health (kube-proxy's --healthz-bind-address, port 10256): /healthz and /livez answer
//     200 while the agent's loop and syncs are current, 503 when not; what load balancers of
//     Cluster services probe.
#ifndef XLB_USERSPACE_AGENT_HEALTH_CHECK_H
#define XLB_USERSPACE_AGENT_HEALTH_CHECK_H

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/agent/http_server.h"
#include "userspace/model/model.h"

namespace xlb {

// Endpoints of `service` on this node that are ready (kube-proxy's LocalReadyEndpoints): in the
// local cluster, on this node (policy/weights.h PathOf), ready and not terminating; each
// endpoint once.
uint32_t LocalReadyEndpoints(const Model& model, const NamespacedName& service);

// The answer of a service health check.
HttpResponse ServiceHealthResponse(const NamespacedName& service, uint32_t local_endpoints,
                                   bool proxy_healthy);

// The answer of the node's /healthz: `last_sync_unix` is when the last sync succeeded (0:
// never), `now_unix` the wall clock.
HttpResponse NodeHealthResponse(bool healthy, double last_sync_unix, double now_unix);

class ServiceHealthServers {
 public:
  // `host`: where the servers listen ("::" takes IPv4 too, unless the node has no IPv6, when
  // "0.0.0.0" is used); `proxy_healthy` is asked on every request.
  ServiceHealthServers(std::string host, std::function<bool()> proxy_healthy);
  ~ServiceHealthServers();
  ServiceHealthServers(const ServiceHealthServers&) = delete;
  ServiceHealthServers& operator=(const ServiceHealthServers&) = delete;

  // Serves the health-check ports the model asks for with their local endpoint counts: starts
  // servers for new ports, stops those of gone ports. What cannot be served (a port two
  // services name, a port that cannot be bound) comes back as problems, and is tried again on
  // the next call.
  std::vector<std::string> Sync(const Model& model);

  // The ports served now (for tests and the log).
  std::vector<uint16_t> Ports() const;

 private:
  struct Shared;  // what the servers' threads read, under a mutex
  std::string host_;
  std::shared_ptr<Shared> shared_;
  std::map<uint16_t, std::unique_ptr<HttpServer>> servers_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_HEALTH_CHECK_H
