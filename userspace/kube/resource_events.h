// Where the Kubernetes watch client hands over to the Kubernetes source: what one list + watch
// of one resource (say EndpointSlices, all namespaces) of one cluster reports.
//
// The client (userspace/kube/client) calls these in the order things happened, from its own
// thread, never two at once for the same ResourceEvents; the source (userspace/kube/source)
// turns them into Model changes. The split is client-go's: the reflector (list, watch,
// relist on 410, back-off) is the client's, what the objects mean is the source's.
#ifndef XLB_USERSPACE_KUBE_RESOURCE_EVENTS_H
#define XLB_USERSPACE_KUBE_RESOURCE_EVENTS_H

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xlb::kube {

// A resource to list and watch: the URL path of its collection, without query, e.g.
// "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices",
// "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports", "/api/v1/nodes".
struct ResourcePath {
  std::string path;
  // The kind of the items (lists carry no kind per item): "Service", "EndpointSlice", ...
  std::string kind;

  bool operator==(const ResourcePath&) const = default;
};

class ResourceEvents {
 public:
  virtual ~ResourceEvents() = default;

  // A list completed (the first one, or a relist after 410 Gone or a reconnect that could not
  // resume): `items` is the whole state of the resource now; what the receiver had that is not
  // in it is gone. Each item is the object as the server sent it (metadata, spec, ...).
  virtual void Replace(std::vector<nlohmann::json> items) = 0;
  // A watch event: ADDED and MODIFIED both carry the whole new object.
  virtual void Upsert(const nlohmann::json& object) = 0;
  // A watch event DELETED, with the last state of the object.
  virtual void Delete(const nlohmann::json& object) = 0;
  // The client lost the resource (connect, TLS, authentication, HTTP or stream failure) and
  // is backing off: the receiver keeps what it has (it may count it stale after a while). The
  // next Replace() means it is back. `why` is for logs and metrics.
  virtual void Unreachable(const std::string& why) = 0;
};

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_RESOURCE_EVENTS_H
