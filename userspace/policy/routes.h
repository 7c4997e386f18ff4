// Policies resolved against a Model: for each service port that a policy routes, the groups
// of endpoints its traffic is divided among (a VirtualService destination, a TrafficPolicy
// cluster), with their weights and the spill-over order. policy.h says what each form means.
//
// ResolveRoutes() runs twice in a policy's life: when a new set of policy files arrives
// (PolicyStore rejects the set on any problem), and at every plan, against the Model of the
// moment. There a problem that comes from the model (a service, port or cluster that has gone
// away) is reported and leaves that destination empty, so its share spills over; a problem in
// the policy itself (a subset no DestinationRule defines, two policies for one service) drops
// the policy.
#ifndef XLB_USERSPACE_POLICY_ROUTES_H
#define XLB_USERSPACE_POLICY_ROUTES_H

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "userspace/model/config_error.h"
#include "userspace/model/model.h"
#include "userspace/policy/policy.h"

namespace xlb {

// The endpoints that one destination stands for.
struct DestinationGroup {
  enum class Scope : uint8_t {
    kLocal,       // the local cluster's (NAME.NS.svc.cluster.local and short hosts)
    kRest,        // every cluster no other group of the route claims for this service
                  // (NAME.NS.svc.clusterset.local)
    kCluster,     // the cluster `cluster` (a subset, a TrafficPolicy weight)
    kAllClusters  // every cluster: a service without a policy
  };
  NamespacedName service;  // whose endpoints
  // The port of `service` whose endpoints serve, by number; 0 = the number of the port being
  // routed.
  uint16_t port = 0;
  Scope scope = Scope::kAllClusters;
  std::string cluster;  // kCluster only
  uint32_t weight = 0;
  std::string label;  // how explain output names it: "api-service.production.svc.cluster.local"
};

// How one service port's new flows are divided.
struct ServiceRoute {
  std::vector<DestinationGroup> groups;  // in spill-over order
  Spillover spillover = Spillover::kProportional;
  std::string policy;  // "VirtualService production/api-service (api.yaml, document 1) http[0]"
};

// The route of a service without a policy: every ready endpoint of every cluster alike.
ServiceRoute DefaultRoute(const NamespacedName& service);

class Routes {
 public:
  // The route of a service port, or nullptr when no policy routes it.
  const ServiceRoute* Find(const NamespacedName& service, const ServicePort& port) const;
  void Put(const NamespacedName& service, const ServicePort& port, ServiceRoute route);
  size_t size() const { return routes_.size(); }

 private:
  std::map<std::tuple<NamespacedName, uint16_t, Protocol>, ServiceRoute> routes_;
};

// Resolves every policy of `set` against `model`. Problems go to `errors` (each once); what
// resolves is in the result.
Routes ResolveRoutes(const PolicySet& set, const Model& model, const PolicyOptions& options,
                     ConfigErrors& errors);

// Istio's protocol selection: is `port` an HTTP port (by name prefix or appProtocol)?
bool IsHttpPort(const ServicePort& port);

}  // namespace xlb

#endif  // XLB_USERSPACE_POLICY_ROUTES_H
