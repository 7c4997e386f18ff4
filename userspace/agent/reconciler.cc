#include "userspace/agent/reconciler.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>
#include <vector>

#include "userspace/model/config_source.h"

namespace xlb {
namespace {

std::string StatToken(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return "missing:" + std::to_string(errno);
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%lu:%lu:%lld:%lld.%09ld:%lld.%09ld",
                static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino),
                static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                st.st_mtim.tv_nsec, static_cast<long long>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec);
  return buf;
}

std::string Indent(const ConfigErrors& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    out += "\n  " + e.ToString();
  }
  return out;
}

}  // namespace

std::string Fingerprint(const std::string& path) {
  if (path.empty()) {
    return "";
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return StatToken(path);
  }
  // A directory: its own entry changes when files come and go; each file's when it is
  // rewritten. Names starting with '.' are what ReadPolicyPath() skips.
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') {
        names.emplace_back(e->d_name);
      }
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::string out = "dir " + StatToken(path);
  for (const std::string& name : names) {
    out.append(";").append(name).append("=").append(StatToken(path + "/" + name));
  }
  return out;
}

Reconciler::Reconciler(SourcePaths paths, LogFn log)
    : paths_(std::move(paths)), log_(std::move(log)) {}

ConfigResult<void> Reconciler::Start() {
  if (paths_.config.empty()) {
    return StartWithoutConfig();
  }
  config_seen_ = Fingerprint(paths_.config);
  XLB_ASSIGN_OR_RETURN(model_, LoadConfigFile(paths_.config));
  AdoptNodeIdentity();
  model_.TakeChanges();
  changes_ = {.everything = true, .services = {}, .nodes = true};
  policy_seen_ = Fingerprint(paths_.policy);
  if (!paths_.policy.empty()) {
    XLB_TRY(store_.ReplaceFromPath(paths_.policy, model_));
  }
  const Cluster* local = model_.LocalCluster();
  log_(LogLevel::kInfo, "config " + paths_.config + ": " +
                            std::to_string(model_.clusters().size()) +
                            " clusters (local: " + (local ? local->name : std::string("none")) +
                            "), " + std::to_string(model_.services().size()) + " services" +
                            (paths_.policy.empty() ? "; no policies, every endpoint weighs the same"
                                                   : "; policies from " + paths_.policy));
  if (local == nullptr) {
    // Without a local cluster every endpoint with a node address is tunnelled, even this
    // node's own pods: almost certainly a config meant for another node.
    log_(LogLevel::kWarn, "config " + paths_.config + " marks no cluster `local: true`");
  }
  return {};
}

// The model comes from a source that edits it in place (xlb-agent --kube). The policies cannot
// be resolved against it yet (its services arrive with the first lists), so here they are
// only parsed, to refuse a malformed file before anything is touched; the first Poll() offers
// them against the model the source filled (policy_seen_ is left unset for that).
ConfigResult<void> Reconciler::StartWithoutConfig() {
  changes_ = {.everything = true, .services = {}, .nodes = true};
  if (!paths_.policy.empty()) {
    XLB_ASSIGN_OR_RETURN(auto files, ReadPolicyPath(paths_.policy));
    XLB_TRY(ParsePolicies(files));
  }
  log_(LogLevel::kInfo, std::string("no config file: the model comes from the sources") +
                            (paths_.policy.empty() ? "; no policies, every endpoint weighs the same"
                                                   : "; policies from " + paths_.policy));
  return {};
}

Result<void> Reconciler::Adopt(MapStore& store) {
  syncer_.emplace(store);
  if (auto adopted = syncer_->Adopt(); !adopted.ok()) {
    syncer_.reset();
    return std::move(adopted).take_error();
  }
  const MapContents& held = syncer_->held();
  size_t valid = std::count_if(held.backends.begin(), held.backends.end(), [](const auto& b) {
    return (b.second.flags & XLB_BE_F_VALID) != 0;
  });
  log_(LogLevel::kInfo, "adopted the maps: " + std::to_string(held.services.size()) +
                            " VIP keys, " + std::to_string(held.tables.size()) + " tables, " +
                            std::to_string(valid) + " valid backends");
  return {};
}

bool Reconciler::ReadConfig() {
  auto model = LoadConfigFile(paths_.config);
  if (!model.ok()) {
    ++config_rejected_;
    log_(LogLevel::kWarn,
         "config " + paths_.config +
             " rejected; the last good config stays in force:" + Indent(model.error()));
    return false;
  }
  // The old model goes only after the comparison that says which services changed.
  Model before = std::move(model_);
  model_ = std::move(*model);
  AdoptNodeIdentity();
  model_.TakeChanges();
  changes_.Merge(before.changes());  // edits made in place and not planned yet
  changes_.Merge(DiffModels(before, model_));
  ++config_reloaded_;
  log_(LogLevel::kInfo, "config " + paths_.config +
                            " reloaded: " + std::to_string(model_.services().size()) + " services");
  return true;
}

void Reconciler::AdoptNodeIdentity() {
  if (!node_addrs_.empty() || !node_name_.empty()) {
    LocalNode node = model_.local_node();
    if (!node_addrs_.empty()) {
      node.addresses = node_addrs_;
    }
    if (!node_name_.empty()) {
      node.name = node_name_;
    }
    if (!(node == model_.local_node())) {
      model_.SetLocalNode(std::move(node));
    }
  }
  if (node_ports_noted_ || !model_.local_node().addresses.empty()) {
    return;
  }
  for (const auto& [name, service] : model_.services()) {
    for (const ServicePort& port : service.ports) {
      if (port.node_port != 0) {
        node_ports_noted_ = true;
        log_(LogLevel::kInfo, "service " + name.ToString() + " has nodePort " +
                                  std::to_string(port.node_port) +
                                  ", but no node address is known (config `node.addresses` or "
                                  "--node-addr): NodePorts are not served");
        return;
      }
    }
  }
}

bool Reconciler::ReadPolicies() {
  if (paths_.policy.empty()) {
    return false;
  }
  policy_offered_services_ = model_.services().size();
  auto accepted = store_.ReplaceFromPath(paths_.policy, model_);
  policy_pending_ = !accepted.ok();
  if (!accepted.ok()) {
    log_(LogLevel::kWarn,
         "policies " + paths_.policy +
             " rejected; the last good set stays in force:" + Indent(accepted.error()));
    return false;
  }
  ++policy_reloaded_;
  log_(LogLevel::kInfo, "policies " + paths_.policy + " accepted");
  return true;
}

std::optional<SyncResult> Reconciler::Poll() {
  bool model_changed = false;
  if (!paths_.config.empty()) {
    if (std::string fp = Fingerprint(paths_.config); fp != config_seen_) {
      config_seen_ = std::move(fp);
      model_changed = ReadConfig();
    }
  }
  // A new model may make a policy resolve that did not, or the other way round: offer the
  // policies again against it. A model edited in place (--kube) offers a rejected set again
  // when services came or went (a policy may name a service that was not listed yet).
  const bool services_moved =
      policy_pending_ && model_.services().size() != policy_offered_services_;
  if (std::string fp = Fingerprint(paths_.policy);
      fp != policy_seen_ || model_changed || services_moved) {
    policy_seen_ = std::move(fp);
    if (ReadPolicies()) {
      policy_changed_ = true;
      dirty_ = true;
    }
  }
  dirty_ = dirty_ || model_changed;
  return SyncNow();
}

std::optional<SyncResult> Reconciler::SyncNow() {
  changes_.Merge(model_.TakeChanges());
  dirty_ = dirty_ || !changes_.empty() || policy_changed_;
  if (!dirty_ || !syncer_) {
    return std::nullopt;
  }
  SyncResult r = RunSync();
  dirty_ = !r.ok();
  return r;
}

namespace {

bool SameRoute(const ServiceRoute* a, const ServiceRoute* b) {
  if (a == nullptr || b == nullptr) {
    return a == b;
  }
  auto same_group = [](const DestinationGroup& x, const DestinationGroup& y) {
    return x.service == y.service && x.port == y.port && x.scope == y.scope &&
           x.cluster == y.cluster && x.weight == y.weight && x.label == y.label;
  };
  return a->spillover == b->spillover && a->policy == b->policy &&
         std::equal(a->groups.begin(), a->groups.end(), b->groups.begin(), b->groups.end(),
                    same_group);
}

}  // namespace

std::set<NamespacedName> Reconciler::ChangedServices(const Routes& routes) const {
  std::set<NamespacedName> out;
  if (!syncer_->tracking() || changes_.everything) {
    for (const auto& [name, service] : model_.services()) {
      out.insert(out.end(), name);
    }
    if (const DesiredStateTracker* tracked = syncer_->tracked()) {
      for (NamespacedName& name : tracked->Services()) {
        out.insert(std::move(name));  // gone from the model: its entries go
      }
    }
    return out;
  }
  out = changes_.services;
  if (policy_changed_) {
    // O(service ports), once per accepted policy set: the ports whose route is new, gone or
    // different.
    for (const auto& [name, service] : model_.services()) {
      for (const ServicePort& port : service.ports) {
        if (!SameRoute(routes_.Find(name, port), routes.Find(name, port))) {
          out.insert(name);
          break;
        }
      }
    }
  }
  std::vector<NamespacedName> direct(out.begin(), out.end());
  for (const NamespacedName& name : direct) {
    if (auto it = route_dependents_.find(name); it != route_dependents_.end()) {
      out.insert(it->second.begin(), it->second.end());
    }
  }
  return out;
}

std::vector<ServiceBackends> Reconciler::PlanOne(const NamespacedName& name, const Routes& routes) {
  const Service* service = model_.FindService(name);
  {
    const std::lock_guard lock(routes_mu_);
    TrackRouteSources(name, service, routes);
  }
  if (service == nullptr) {
    return {};
  }
  return PlanService(model_, *service, routes);
}

void Reconciler::TrackRouteSources(const NamespacedName& name, const Service* service,
                                   const Routes& routes) {
  if (auto it = route_sources_.find(name); it != route_sources_.end()) {
    for (const NamespacedName& source : it->second) {
      auto d = route_dependents_.find(source);
      if (d != route_dependents_.end()) {
        d->second.erase(name);
        if (d->second.empty()) {
          route_dependents_.erase(d);
        }
      }
    }
    route_sources_.erase(it);
  }
  if (service == nullptr) {
    return;
  }
  for (const ServicePort& port : service->ports) {
    if (const ServiceRoute* route = routes.Find(name, port)) {
      for (const DestinationGroup& group : route->groups) {
        if (group.service != name) {
          route_dependents_[group.service].insert(name);
          route_sources_[name].insert(group.service);
        }
      }
    }
  }
}

SyncResult Reconciler::RunSync() {
  const uint64_t n = ++syncs_;
  ConfigErrors policy_problems;
  Routes routes = store_.RoutesFor(model_, policy_problems);
  const std::set<NamespacedName> changed = ChangedServices(routes);
  auto planned = syncer_->PlanChanges(
      model_, changed, [&](const NamespacedName& name) { return PlanOne(name, routes); });
  if (!planned.ok()) {
    SyncResult failed;
    failed.error = planned.error();
    log_(LogLevel::kWarn, "sync #" + std::to_string(n) +
                              ": plan failed: " + planned.error().ToString() + "; retrying");
    return failed;
  }
  if (changes_.nodes || changes_.everything) {
    syncer_->PlanNodes(model_);
  }
  changes_ = {};
  policy_changed_ = false;
  routes_ = std::move(routes);
  const DesiredStateTracker& tracked = *syncer_->tracked();
  NameIds(syncer_->unsynced());

  // The problems' text is rebuilt only when some re-planned service's problems changed.
  std::string policy_text = Indent(policy_problems);
  if (policy_text != policy_problems_ || tracked.problems_version() != problems_version_) {
    policy_problems_ = std::move(policy_text);
    problems_version_ = tracked.problems_version();
    std::string problems = policy_problems_;
    const std::vector<std::string> planning = tracked.Problems();
    for (const std::string& p : planning) {
      problems += "\n  " + p;
    }
    plan_problems_ = policy_problems.size() + planning.size();
    if (problems != last_problems_) {
      last_problems_ = problems;
      if (!problems.empty()) {
        log_(LogLevel::kWarn,
             "what the inputs ask for that cannot be had (the rest is synced):" + problems);
      }
    }
  }

  SyncResult r = syncer_->SyncChanges();
  char took[32];
  std::snprintf(took, sizeof(took), "%.2f ms",
                std::chrono::duration<double, std::milli>(r.duration).count());
  std::string line = "sync #" + std::to_string(n) + ": " + std::to_string(r.writes.total()) +
                     " writes (" + r.writes.ToString() + ") in " + took + "; " +
                     std::to_string(tracked.last_group().size()) + " services re-planned; " +
                     std::to_string(tracked.table_count()) + " service tables, " +
                     std::to_string(tracked.maps().backends.size()) + " backends, " +
                     std::to_string(tracked.maps().services.size()) + " VIP keys";
  if (r.ok()) {
    log_(LogLevel::kInfo, line);
  } else {
    log_(LogLevel::kWarn, line + "; FAILED at " + r.error->ToString() + "; retrying");
  }
  return r;
}

void Reconciler::NameIds(const TouchedEntries& touched) {
  const DesiredStateTracker& tracked = *syncer_->tracked();
  if (!touched.tables.empty() || !touched.backends.empty()) {
    ++names_version_;
  }
  for (const uint32_t id : touched.tables) {
    if (const DesiredService* s = tracked.FindById(id)) {
      names_.services[id] =
          ServiceLabel{s->service.ToString(),
                       std::to_string(s->port.port) + "/" + std::string(ToString(s->port.protocol)),
                       std::string(ToString(s->family))};
    } else {
      names_.services.erase(id);
    }
  }
  for (const uint32_t id : touched.backends) {
    auto it = tracked.maps().backends.find(id);
    if (it == tracked.maps().backends.end()) {
      names_.backends.erase(id);
      continue;
    }
    const xlb_backend& b = it->second;
    char text[INET6_ADDRSTRLEN] = {};
    const bool v6 = b.family == XLB_FAMILY_IPV6;
    inet_ntop(v6 ? AF_INET6 : AF_INET, b.addr, text, sizeof(text));
    const std::string port = std::to_string(ntohs(b.port));
    const Cluster* cluster = model_.FindCluster(b.cluster_id);
    names_.backends[id] =
        BackendLabel{v6 ? "[" + std::string(text) + "]:" + port : std::string(text) + ":" + port,
                     cluster != nullptr ? cluster->name : ""};
  }
  planned_backends_ = tracked.maps().backends.size();
  planned_tables_ = tracked.table_count();
}

}  // namespace xlb
