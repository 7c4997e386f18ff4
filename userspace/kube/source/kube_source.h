// The Kubernetes source: Services, EndpointSlices, ServiceImports, Nodes and the cluster-name
// ClusterProperty of every cluster of the clusterset, turned into the agent's Model.
//
//   KubeSource source(*LoadKubeSourcesConfig("kube.yaml"), {.log = ...});
//   for (const KubeWatch& w : source.Watches())  // one ClusterWatch per w.cluster, connected
//     watch_of(w).Add(w.resource, *w.events);    //   with w.in_cluster or w.kubeconfig
//   for (;;) {
//     source.WaitForChange(200ms);
//     source.Drain(model);                        // always: it is what clears the wake-up
//     if (source.LocalSynced()) plan + sync what model.TakeChanges() says;
//   }
// tests/kube/source/e2e_test.cc does exactly this against two test API servers.
//
// The watch client calls the ResourceEvents of each (cluster, resource) from its own threads;
// the source parses the objects there (kube_objects.h) into one cache per (cluster, resource)
// of compact values, diffs a Replace() against its cache, and notes which services changed.
// Drain() runs on the agent's thread and applies only those to the Model through its public
// mutators. WaitForChange() wakes the agent as soon as something is pending.
//
// What the model sees of a service (namespace/name, MCS namespace sameness):
// - it exists when the local cluster has a Service or a ServiceImport of that name, or a
//   directly watched remote cluster has a Service of it;
// - cluster IPs, external and load-balancer IPs, ports with their nodePorts, affinity, the
//   traffic policies, healthCheckNodePort, source ranges and topology routing come from the
//   local cluster's Service; ClusterSet IPs from the local ServiceImport (type ClusterSetIP).
//   Without a local Service, ports and affinity come from the ServiceImport, else from the first
//   remote cluster (by name) that has the Service (no VIPs then, the rest at its defaults);
// - its endpoints in cluster C (Model::SetEndpoints(service, C, ...)) are the union of C's
//   EndpointSlices of it, in slice-name order. A cluster of mode `direct` is watched itself:
//   its slices labelled kubernetes.io/service-name, each endpoint's node_address its Node's
//   tunnel address (first InternalIP, else ExternalIP), its zone and zone hints the slice's;
//   a remote endpoint whose nodeName
//   names a Node not listed (yet) is left out until it is (it would be planned as routed),
//   one without nodeName is routed. A cluster of mode `mcs` is seen in the
//   local cluster: slices labelled multicluster.kubernetes.io/source-cluster=C (and
//   .../service-name); its endpoints have no node_address (routed, as Lighthouse's are).
//   Slices labelled with a source cluster that is not of mode mcs are ignored and counted
//   (`foreign_source_cluster`): the local cluster's own and direct clusters' endpoints come
//   from their own slices, so an MCS controller's copies would count them twice.
//
// The local node (LocalNode) is the Node named by the configuration's node name: its
// addresses unless configured, and its zone (label topology.kubernetes.io/zone).
//
// Bad objects: a bad part (port 0, address "x") is skipped and counted, the rest applies, as
// kube-proxy skips invalid endpoints. An object that is unusable as a whole (no name, no
// addressType, spec not an object) is counted and its last good version stays in force, also
// across a Replace() that still lists it: a broken writer is not an intent to delete, and
// removing endpoints on a parse error would turn a control-plane bug into an outage. A delete
// needs only the name. Objects that are valid but not proxied (ExternalName Services, FQDN
// slices) count as absent: an update into one removes the old state, as for kube-proxy.
// Services kube-proxy skips (label service.kubernetes.io/service-proxy-name) count as absent
// too. Counts are per (cluster, kind, reason): Problems(). A problem is counted and logged once
// per object when it appears, not at every relist that still lists the object with it.
//
// Staleness: after Unreachable() of a remote direct cluster's EndpointSlices, its last known
// endpoints stay in force for that cluster's staleAfter; then the cluster counts as stale and
// its endpoints are taken out of the model (SetEndpoints(service, C, {})), so that the
// planner's spill-over gives its weight to the clusters that are still seen, instead of
// sending flows to pods that may be gone. The next Replace() relists it and puts them back.
// The local cluster is never stale: its API server being away says nothing about its pods
// (kube-proxy keeps its last state too), and MCS clusters are as fresh as the local cluster's
// MCS controller makes them.
//
// Cluster ids come from the configuration (kube_config.h: configured or ClusterIdOf(name)).
// A local cluster named by its ClusterProperty gets its name at the first such object; until
// then its endpoints wait in the caches. The name is immutable (KEP-2149): a later different
// value is counted (`cluster_name_changed`) and ignored; a name or id that clashes with a
// remote cluster is counted (`name_conflict`, `id_conflict`) and not taken.
//
// Thread safety: ResourceEvents callbacks and the status getters may come from any thread;
// Drain() from one thread at a time. The ResourceEvents handed out live as long as the
// KubeSource: stop the watches before destroying it.
#ifndef XLB_USERSPACE_KUBE_SOURCE_KUBE_SOURCE_H
#define XLB_USERSPACE_KUBE_SOURCE_KUBE_SOURCE_H

#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/kube/resource_events.h"
#include "userspace/kube/source/kube_config.h"
#include "userspace/kube/source/kube_objects.h"
#include "userspace/model/model.h"

namespace xlb::kube {

enum class KubeResource : uint8_t {
  kServices,
  kEndpointSlices,
  kNodes,
  kServiceImports,     // local cluster only, when configured
  kClusterProperties,  // local cluster only, when its name is not configured
};
inline constexpr size_t kResourceCount = 5;

std::string_view ToString(KubeResource resource);  // "services", "endpointslices", ...

// The collection path and item kind of a resource; `import_version` is the ServiceImport API
// version ("v1alpha1", "v1beta1").
ResourcePath PathOf(KubeResource resource, std::string_view import_version = "v1alpha1");

// One list + watch the client is to run.
struct KubeWatch {
  std::string cluster;  // the cluster's configured name; "" for an unnamed local cluster
  bool local = false;
  bool in_cluster = false;  // use the pod's service account
  std::string kubeconfig;   // else this kubeconfig file
  KubeResource kind = KubeResource::kServices;
  ResourcePath resource;
  ResourceEvents* events = nullptr;  // owned by the KubeSource
};

struct ProblemKey {
  std::string cluster;  // "" for an unnamed local cluster
  std::string kind;     // "Service", "EndpointSlice", ...
  std::string reason;   // "bad_port", "fqdn", ...

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads the defaulted <=>.
  auto operator<=>(const ProblemKey&) const = default;
};

struct DrainResult {
  std::vector<NamespacedName> services;  // whose Service or endpoints were written, sorted
  // Of those services, the ones whose endpoint change carried its trigger time (the
  // EndpointSlice annotation; the earliest when several changes were drained at once): the
  // start of the network programming latency.
  std::map<NamespacedName, std::chrono::system_clock::time_point> trigger_times;
  bool clusters = false;                 // the cluster list was written
  bool node = false;                     // the local node was written
  bool node_addresses = false;           // some cluster's node addresses were written

  bool changed() const { return clusters || node || node_addresses || !services.empty(); }
};

struct ResourceStatus {
  std::string cluster;
  KubeResource kind = KubeResource::kServices;
  bool synced = false;       // a Replace() arrived (and the last one is in force)
  bool unreachable = false;  // Unreachable() since the last Replace()
  std::string last_error;    // the last Unreachable()'s reason
  size_t objects = 0;        // in the cache
};

struct ClusterStatus {
  std::string name;  // "" while the local cluster's name is not known
  uint16_t id = 0;
  bool local = false;
  ClusterMode mode = ClusterMode::kDirect;
  bool stale = false;
};

class KubeSource {
 public:
  using LogFn = std::function<void(const std::string&)>;
  struct Options {
    // Problems with objects and clusters, one line each; may be empty. Called from the client
    // threads and from Drain(), never with the source's lock held: it must be thread-safe.
    LogFn log;
  };

  explicit KubeSource(KubeSourcesConfig config, Options options = {});
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  // Every watch to run: the local cluster's Services, EndpointSlices, Nodes, ServiceImports
  // (when configured) and ClusterProperties (when its name is not configured); each direct
  // remote cluster's Services, EndpointSlices and Nodes.
  std::vector<KubeWatch> Watches();
  // The receiver of one watch; `cluster` "" means the local one. nullptr when not watched.
  ResourceEvents* EventsFor(std::string_view cluster, KubeResource kind);

  // Applies every pending change to `model` (clusters, local node, services, endpoints) and
  // says what it wrote. Also where staleness takes effect.
  DrainResult Drain(Model& model);
  // Waits until a change is pending (or a cluster's staleness is due) or `timeout` passes;
  // true when Drain() has something to do.
  bool WaitForChange(std::chrono::milliseconds timeout);

  // Every resource of the local cluster has been listed once: before that an empty cache would
  // read as "no services", so the agent should not plan (client-go's HasSynced).
  bool LocalSynced() const;
  bool AllSynced() const;

  std::map<ProblemKey, uint64_t> Problems() const;
  uint64_t ProblemCount(std::string_view cluster, std::string_view kind,
                        std::string_view reason) const;
  std::vector<ClusterStatus> Clusters() const;
  std::vector<ResourceStatus> Resources() const;

 private:
  class Receiver;
  struct Slot;
  struct Work;
  // Everything that differs between resource kinds: names, which clusters watch it, how its
  // objects are parsed, cached and applied. One entry per KubeResource (KindOf, in the .cc).
  class Kind;
  template <typename T, typename Key>
  class CachedKind;
  class ClusterPropertyKind;
  using Clock = std::chrono::steady_clock;

  static const Kind& KindOf(KubeResource resource);
  friend std::string_view ToString(KubeResource resource);
  friend ResourcePath PathOf(KubeResource resource, std::string_view import_version);

  ObjectSource SourceOf(size_t slot, const Kind& kind) const;
  void OnReplace(size_t slot, KubeResource resource, std::vector<nlohmann::json> items);
  void OnUpsert(size_t slot, KubeResource resource, const nlohmann::json& object);
  void OnDelete(size_t slot, KubeResource resource, const nlohmann::json& object);
  void OnUnreachable(size_t slot, KubeResource resource, const std::string& why);

  // The parts below run with mu_ held. `logs` collects lines to log once mu_ is released.
  //
  // Problems are reported per object (kind, namespace/name): each one is counted and logged
  // when it appears on the object, not again at every relist or update that still has it; an
  // object deleted, or listed no more, is forgotten, so that a new one is reported anew.
  using ReportKey = std::pair<std::string, NamespacedName>;
  void Report(size_t slot, const char* kind, const NamespacedName& name,
              std::vector<ObjectProblem> problems, std::vector<std::string>& logs);
  // A full list's reports: every object of `kind` not in `reports` is forgotten.
  void ReportAll(size_t slot, const char* kind,
                 std::map<NamespacedName, std::vector<ObjectProblem>> reports,
                 std::vector<std::string>& logs);
  void ForgetReport(size_t slot, const char* kind, const NamespacedName& name);
  void CountReason(size_t slot, const char* kind, const std::string& reason);
  void PutService(size_t slot, const NamespacedName& key, Service value);
  void RemoveService(size_t slot, const NamespacedName& key);
  // A slice whose endpoints are no cluster's here (an MCS copy of a cluster seen directly).
  void CheckSlice(size_t slot, const ObjectSource& from, const NamespacedName& name,
                  const SliceInfo& value, std::vector<ObjectProblem>& problems) const;
  void PutSlice(size_t slot, const NamespacedName& key, SliceInfo value);
  void RemoveSlice(size_t slot, const NamespacedName& key);
  void PutNode(size_t slot, const std::string& key, NodeInfo value);
  void RemoveNode(size_t slot, const std::string& key);
  // Marks every service with an endpoint on `node` in `slot` for recomputation.
  void MarkEndpointsOnNode(size_t slot, const std::string& node);
  void PutImport(size_t slot, const NamespacedName& key, ImportInfo value);
  void RemoveImport(size_t slot, const NamespacedName& key);
  void TakeClusterName(const std::string& name, std::vector<std::string>& logs);
  void MarkClusterEndpoints(size_t slot);  // every service with slices of the cluster
  void MarkAll();
  // The cluster whose endpoints a slice of `slot` carries; nullopt: ignored.
  std::optional<size_t> TargetOf(size_t slot, const SliceInfo& slice) const;
  bool Pending() const;
  // The earliest time a remote cluster turns stale, if one is unreachable and not stale yet.
  std::optional<Clock::time_point> NextStale() const;
  void UpdateStaleness(Clock::time_point now, std::vector<std::string>& logs);
  std::optional<Service> ViewOf(const NamespacedName& name) const;
  bool Exists(const NamespacedName& name) const;  // ViewOf(name).has_value(), without the copy
  std::vector<Endpoint> EndpointsOf(const NamespacedName& service, size_t target) const;
  Work TakeWork();
  void Log(const std::vector<std::string>& lines) const;
  static uint16_t IdOf(const Slot& slot);

  Options options_;
  std::string import_version_;
  std::string node_name_;
  std::vector<IpAddress> node_addresses_;
  std::vector<std::unique_ptr<Slot>> slots_;  // [0] is the local cluster

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<ProblemKey, uint64_t> problems_;
  std::set<NamespacedName> dirty_services_;  // view and every cluster's endpoints
  std::set<std::pair<NamespacedName, size_t>> dirty_endpoints_;  // (service, cluster slot)
  // The earliest trigger time of the slices changed since the last Drain(), per service.
  std::map<NamespacedName, std::chrono::system_clock::time_point> trigger_times_;
  bool dirty_clusters_ = true;
  bool dirty_node_ = true;
  std::set<size_t> dirty_node_addresses_;  // slots whose Nodes' addresses changed
};

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_SOURCE_KUBE_SOURCE_H
