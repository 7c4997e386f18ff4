// xlb-agent --kube: the Kubernetes sources (userspace/kube/source) fed by one watch client per
// cluster (userspace/kube/client), as the agent's main loop uses them:
//
//   auto feed = KubeFeed::Start("sources.yaml", log);     // config errors: nothing started
//   ...
//   if (feed->WaitForChange(200ms) || ...) feed->Drain(reconciler.model());
//   if (feed->LocalSynced()) reconciler.SyncNow();        // never before the first local list
//
// Before the local cluster's first lists are in, the model is empty and a sync would remove
// every service the pinned maps hold (the previous agent's state, still serving traffic); so
// the agent plans nothing until then, and an API server that is down at start keeps the
// datapath exactly as it was (client-go's HasSynced, kube-proxy's "wait for caches").
#ifndef XLB_USERSPACE_AGENT_KUBE_FEED_H
#define XLB_USERSPACE_AGENT_KUBE_FEED_H

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loader/log.h"
#include "userspace/agent/metrics.h"
#include "userspace/kube/client/cluster_watch.h"
#include "userspace/kube/source/kube_source.h"
#include "userspace/model/config_error.h"
#include "userspace/model/model.h"

namespace xlb {

class KubeFeed {
 public:
  using LogFn = std::function<void(LogLevel, const std::string&)>;

  // Reads the config at `path`, connects (credentials are read now: a bad kubeconfig fails
  // here, naming it) and starts every list and watch. `node_addrs` (--node-addr), when not
  // empty, replace the config's node addresses; `node_name` (--node-name), when not empty,
  // the config's node name; a config without either takes $NODE_NAME (the DaemonSet's
  // downward API), whose Node then gives the NodePort addresses. `options` are the watch
  // client's.
  static ConfigResult<std::unique_ptr<KubeFeed>> Start(const std::string& path,
                                                       const std::vector<IpAddress>& node_addrs,
                                                       const std::string& node_name, LogFn log,
                                                       kube::WatchOptions options = {});
  ~KubeFeed();  // stops the watches first: they report to the source

  bool WaitForChange(std::chrono::milliseconds timeout) { return source_->WaitForChange(timeout); }
  // Also keeps the trigger times of the endpoint changes it applied, until Programmed().
  kube::DrainResult Drain(Model& model);
  bool LocalSynced() const { return source_->LocalSynced(); }
  // A sync succeeded at `now`: every change drained before it is in the maps. Observes, per
  // service, now minus its change's trigger time in xlb_network_programming_duration_seconds
  // (kube-proxy's network_programming_duration_seconds). Changes triggered before this agent
  // started are not observed (the first lists carry old trigger times, as kube-proxy skips
  // them too).
  void Programmed(std::chrono::system_clock::time_point now);

  const kube::KubeSource& source() const { return *source_; }
  // The watch client's counters, summed per cluster ("" = the local cluster before its name
  // is known).
  std::map<std::string, kube::WatchCounters> Counters() const;
  // Prometheus families: objects skipped per cluster, kind and reason; per resource synced
  // and unreachable; per cluster stale, lists, relists, watch events, errors. Thread-safe
  // (the metrics server's thread).
  void WriteMetrics(Exposition& out) const;

 private:
  KubeFeed() = default;

  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::map<NamespacedName, std::chrono::system_clock::time_point> unprogrammed_;  // loop only
  mutable std::mutex programming_mu_;  // the histogram: the loop writes, scrapes read
  Histogram programming_seconds_{NetworkProgrammingBuckets()};
  std::unique_ptr<kube::KubeSource> source_;
  std::map<std::string, std::unique_ptr<kube::ClusterWatch>> watches_;  // by cluster
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_KUBE_FEED_H
