#include "userspace/agent/kube_feed.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "userspace/kube/source/kube_config.h"

namespace xlb {

ConfigResult<std::unique_ptr<KubeFeed>> KubeFeed::Start(const std::string& path,
                                                        const std::vector<IpAddress>& node_addrs,
                                                        const std::string& node_name, LogFn log,
                                                        kube::WatchOptions options) {
  XLB_ASSIGN_OR_RETURN(auto config, kube::LoadKubeSourcesConfig(path));
  if (!node_addrs.empty()) {
    config.node_addresses = node_addrs;
  }
  if (!node_name.empty()) {
    config.node_name = node_name;
  }
  if (config.node_name.empty()) {
    if (const char* node = std::getenv("NODE_NAME"); node != nullptr) {
      config.node_name = node;
    }
  }
  std::unique_ptr<KubeFeed> feed(new KubeFeed());
  kube::KubeSource::Options source_options;
  source_options.log = [log](const std::string& line) { log(LogLevel::kWarn, line); };
  feed->source_ = std::make_unique<kube::KubeSource>(std::move(config), source_options);

  for (const kube::KubeWatch& w : feed->source_->Watches()) {
    std::unique_ptr<kube::ClusterWatch>& watch = feed->watches_[w.cluster];
    if (!watch) {
      auto connection =
          w.in_cluster ? kube::InClusterConnection() : kube::KubeconfigConnection(w.kubeconfig);
      const std::string who =
          w.cluster.empty() ? std::string("the local cluster") : "cluster " + w.cluster;
      if (!connection.ok()) {
        return ConfigErrors{ConfigError{path, 0, "", who + ": " + connection.error().message, 0}};
      }
      watch = std::make_unique<kube::ClusterWatch>(std::move(*connection), options);
    }
    watch->Add(w.resource, *w.events);
  }
  for (auto& [cluster, watch] : feed->watches_) {
    watch->Start();
    log(LogLevel::kInfo,
        "watching " + (cluster.empty() ? std::string("the local cluster") : cluster) + " at " +
            watch->connection().ServerUrl() + " (" + watch->connection().origin + ")");
  }
  return feed;
}

KubeFeed::~KubeFeed() {
  for (auto& [cluster, watch] : watches_) {
    watch->Stop();
  }
  watches_.clear();
}

std::map<std::string, kube::WatchCounters> KubeFeed::Counters() const {
  std::map<std::string, kube::WatchCounters> out;
  for (const auto& [cluster, watch] : watches_) {
    out[cluster] += watch->TotalCounters();
  }
  return out;
}

kube::DrainResult KubeFeed::Drain(Model& model) {
  kube::DrainResult drained = source_->Drain(model);
  for (const auto& [service, when] : drained.trigger_times) {
    if (when >= started_) {
      unprogrammed_.emplace(service, when);  // the earliest unprogrammed change stays
    }
  }
  return drained;
}

void KubeFeed::Programmed(std::chrono::system_clock::time_point now) {
  if (unprogrammed_.empty()) {
    return;
  }
  std::lock_guard lock(programming_mu_);
  for (const auto& [service, when] : unprogrammed_) {
    // Clocks of the control plane and this node differ by their skew: never below zero.
    programming_seconds_.Observe(std::max(0.0, std::chrono::duration<double>(now - when).count()));
  }
  unprogrammed_.clear();
}

void KubeFeed::WriteMetrics(Exposition& out) const {
  {
    std::lock_guard lock(programming_mu_);
    programming_seconds_.Write(
        out, "xlb_network_programming_duration_seconds",
        "From an EndpointSlice change's trigger time (endpoints.kubernetes.io/"
        "last-change-trigger-time) to the end of the sync that put it in the maps, per service "
        "(kube-proxy's network_programming_duration_seconds).");
  }
  auto cluster_label = [](const std::string& name) { return name.empty() ? "(local)" : name; };
  out.Family("xlb_kube_object_problems_total", "counter",
             "Problems with Kubernetes objects, by cluster, kind and reason: parts skipped as "
             "invalid (the last good state stays in force), objects not for xlb (ExternalName, "
             "another proxy's, FQDN slices) and values xlb does not honour (not_honoured). Each "
             "counts once per object when it appears, not at every relist; the log names the "
             "object and field.");
  for (const auto& [key, n] : source_->Problems()) {
    out.Sample(
        "xlb_kube_object_problems_total",
        {{"cluster", cluster_label(key.cluster)}, {"kind", key.kind}, {"reason", key.reason}}, n);
  }
  const std::vector<kube::ResourceStatus> resources = source_->Resources();
  auto per_resource = [&](const char* name, const char* help, bool kube::ResourceStatus::*flag) {
    out.Family(name, "gauge", help);  // a family's samples stay together
    for (const kube::ResourceStatus& r : resources) {
      out.Sample(name,
                 {{"cluster", cluster_label(r.cluster)},
                  {"resource", std::string(kube::ToString(r.kind))}},
                 uint64_t{r.*flag ? 1u : 0u});
    }
  };
  per_resource("xlb_kube_resource_synced",
               "1 when the resource's last list is in force (0 before the first list).",
               &kube::ResourceStatus::synced);
  per_resource("xlb_kube_resource_unreachable",
               "1 while the resource's API server is lost (since the last list).",
               &kube::ResourceStatus::unreachable);
  out.Family("xlb_kube_cluster_stale", "gauge",
             "1 when a remote cluster's endpoints are out of the model (lost past staleAfter).");
  for (const kube::ClusterStatus& c : source_->Clusters()) {
    out.Sample("xlb_kube_cluster_stale", {{"cluster", cluster_label(c.name)}},
               uint64_t{c.stale ? 1u : 0u});
  }
  const std::map<std::string, kube::WatchCounters> counters = Counters();
  const std::pair<const char*, uint64_t kube::WatchCounters::*> families[] = {
      {"xlb_kube_lists_total", &kube::WatchCounters::lists},
      {"xlb_kube_relists_total", &kube::WatchCounters::relists},
      {"xlb_kube_watch_events_total", &kube::WatchCounters::events},
      {"xlb_kube_errors_total", &kube::WatchCounters::errors},
      {"xlb_kube_unreachable_total", &kube::WatchCounters::unreachable},
  };
  for (const auto& [name, member] : families) {
    out.Family(name, "counter", "The watch client's counts, summed over a cluster's resources.");
    for (const auto& [cluster, c] : counters) {
      out.Sample(name, {{"cluster", cluster_label(cluster)}}, c.*member);
    }
  }
}

}  // namespace xlb
