#include "userspace/kube/source/kube_source.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <span>

namespace xlb::kube {
namespace {

using nlohmann::json;

// The slices of one service that carry one cluster's endpoints, within one cluster's cache.
struct GroupKey {
  std::string ns;
  std::string service;
  std::string source;  // the MCS source-cluster label, "" for the cluster's own slices

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads the defaulted <=>.
  auto operator<=>(const GroupKey&) const = default;
};

NamespacedName SameName(const NamespacedName& n) {
  return n;
}
std::string NodeKey(const NamespacedName& n) {
  return n.name;
}

// SetEndpoints, unless the model already holds exactly these (so that its dirty tracking does
// not replan a service for nothing). True when it wrote.
bool SetEndpointsIfChanged(Model& model, const NamespacedName& service, const std::string& cluster,
                           std::vector<Endpoint> endpoints) {
  size_t k = 0;
  bool same = true;
  for (const Endpoint& e : model.EndpointsOf(service)) {
    if (e.cluster != cluster) {
      continue;
    }
    if (k >= endpoints.size() || !(e == endpoints[k])) {
      same = false;
      break;
    }
    ++k;
  }
  if (same && k == endpoints.size()) {
    return false;
  }
  model.SetEndpoints(service, cluster, std::move(endpoints));
  return true;
}

}  // namespace

class KubeSource::Receiver final : public ResourceEvents {
 public:
  Receiver(KubeSource* owner, size_t slot, KubeResource kind)
      : owner_(owner), slot_(slot), kind_(kind) {}

  void Replace(std::vector<json> items) override {
    owner_->OnReplace(slot_, kind_, std::move(items));
  }
  void Upsert(const json& object) override { owner_->OnUpsert(slot_, kind_, object); }
  void Delete(const json& object) override { owner_->OnDelete(slot_, kind_, object); }
  void Unreachable(const std::string& why) override { owner_->OnUnreachable(slot_, kind_, why); }

 private:
  KubeSource* owner_;
  size_t slot_;
  KubeResource kind_;
};

struct KubeSource::Slot {
  struct State {
    bool synced = false;
    std::optional<Clock::time_point> unreachable_since;
    std::string last_error;
  };

  ClusterConfig config;
  std::string name;  // config.name, or the ClusterProperty's value once known
  bool local = false;
  bool stale = false;
  std::map<NamespacedName, Service> services;
  std::map<NamespacedName, SliceInfo> slices;
  std::map<GroupKey, std::set<std::string>> slices_of;  // slice names
  std::map<std::string, NodeInfo> nodes;
  std::map<NamespacedName, ImportInfo> imports;
  std::map<ReportKey, std::vector<ObjectProblem>> reported;  // see Report()
  std::set<std::string> refused_names;  // ClusterProperty values not taken (local slot)
  std::array<std::unique_ptr<Receiver>, kResourceCount> receivers;
  std::array<State, kResourceCount> state;

  bool mcs() const { return config.mode == ClusterMode::kMcs; }
};

// A cluster's id: configured, else derived from its (possibly ClusterProperty-given) name.
uint16_t KubeSource::IdOf(const Slot& slot) {
  return slot.config.id ? *slot.config.id : ClusterIdOf(slot.name);
}

struct KubeSource::Work {
  struct Item {
    NamespacedName name;
    bool view_dirty = false;  // the Service itself is to be written (or removed)
    std::optional<Service> view;
    std::vector<std::pair<std::string, std::vector<Endpoint>>> endpoints;  // per cluster
  };
  std::optional<std::vector<Cluster>> clusters;
  std::optional<LocalNode> node;
  // Per cluster name, every address of its Nodes (Model::SetNodeAddresses), and with them
  // the name of every cluster now (node addresses of any other name are forgotten).
  std::map<std::string, std::vector<IpAddress>> node_addresses;
  std::set<std::string, std::less<>> cluster_names;
  std::vector<Item> items;
  std::map<NamespacedName, std::chrono::system_clock::time_point> trigger_times;
};

// --- the kinds -------------------------------------------------------------------------------
// The events, status and constructor below go through KindOf() only. A new kind is an enum
// value and an entry there; a new field of a Service or an EndpointSlice is read in
// kube_objects.cc and applied by its kind's put (PutService into ViewOf, PutSlice into
// EndpointsOf).

class KubeSource::Kind {
 public:
  struct Names {
    const char* kind;     // of its objects, in problem counts and messages: "EndpointSlice"
    const char* plural;   // the resource in its path: "endpointslices"
    const char* group;    // the API group, "" for the core group
    const char* version;  // nullptr: the configured ServiceImport version
  };
  // Whether a cluster runs a watch of this kind (the slot's config and name are set).
  using WatchedFn = bool (*)(const KubeSource& source, const Slot& slot);

  Kind(Names names, WatchedFn watched) : names(names), watched(watched) {}
  Kind(const Kind&) = delete;
  Kind& operator=(const Kind&) = delete;
  virtual ~Kind() = default;

  // A full list. Parses before taking mu_ (a relist of 100,000 endpoints must not stall the
  // agent), then takes it to apply.
  virtual void Replace(KubeSource& source, size_t slot, const ObjectSource& from,
                       std::vector<json> items, std::vector<std::string>& logs) const = 0;
  // One added or changed object, parsed the same way.
  virtual void Upsert(KubeSource& source, size_t slot, const ObjectSource& from, const json& object,
                      std::vector<std::string>& logs) const = 0;
  // One deleted object (only its name is read); mu_ held.
  virtual void Delete(KubeSource& source, size_t slot, const NamespacedName& name) const = 0;
  // What the cache holds; mu_ held.
  virtual size_t Objects(const Slot& slot) const = 0;

  const Names names;
  const WatchedFn watched;
};

// A kind whose objects each cluster caches by key. Its put and remove keep the cache and mark
// what the change touches (a service, a cluster's endpoints, the local node).
template <typename T, typename Key>
class KubeSource::CachedKind final : public KubeSource::Kind {
 public:
  struct Ops {
    Mapped<T> (*map)(const ObjectSource& from, const json& object);
    Key (*key_of)(const NamespacedName& name);
    std::map<Key, T> Slot::*cache;
    void (KubeSource::*put)(size_t slot, const Key& key, T value);
    void (KubeSource::*remove)(size_t slot, const Key& key);
    // What the source makes of a usable object beyond its own fields (mu_ held): problems
    // added here are reported with the object's. May be nullptr.
    void (KubeSource::*check)(size_t slot, const ObjectSource& from, const NamespacedName& name,
                              const T& value, std::vector<ObjectProblem>& problems) const;
  };

  CachedKind(Names names, WatchedFn watched, Ops ops) : Kind(names, watched), ops_(ops) {}

  // Objects not listed are removed, usable ones put; an unusable object keeps its last good
  // version (it is listed, so not removed), an ignored one counts as absent.
  void Replace(KubeSource& source, size_t slot, const ObjectSource& from, std::vector<json> items,
               std::vector<std::string>& logs) const override {
    std::vector<std::pair<std::optional<NamespacedName>, Mapped<T>>> parsed;
    parsed.reserve(items.size());
    for (const json& item : items) {
      parsed.emplace_back(ObjectName(item), ops_.map(from, item));
    }
    items.clear();

    std::lock_guard lock(source.mu_);
    std::map<Key, T*> next;
    std::set<Key> listed;
    // Objects without a name share one report: they cannot be told apart.
    std::map<NamespacedName, std::vector<ObjectProblem>> reports;
    for (auto& [name, mapped] : parsed) {
      Check(source, slot, from, name, mapped);
      std::vector<ObjectProblem>& report = reports[name.value_or(NamespacedName{})];
      report.insert(report.end(), mapped.problems.begin(), mapped.problems.end());
      if (!name) {
        continue;
      }
      Key key = ops_.key_of(*name);
      if (mapped.usable()) {
        next[key] = &*mapped.value;
        listed.insert(std::move(key));
      } else if (mapped.invalid()) {
        next.erase(key);
        listed.insert(std::move(key));
      } else {
        next.erase(key);
      }
    }
    std::vector<Key> gone;
    for (const auto& [key, value] : (*source.slots_[slot]).*ops_.cache) {
      if (listed.count(key) == 0) {
        gone.push_back(key);
      }
    }
    for (const Key& key : gone) {
      (source.*ops_.remove)(slot, key);
    }
    for (auto& [key, value] : next) {
      PutIfChanged(source, slot, key, std::move(*value));
    }
    source.ReportAll(slot, names.kind, std::move(reports), logs);
  }

  void Upsert(KubeSource& source, size_t slot, const ObjectSource& from, const json& object,
              std::vector<std::string>& logs) const override {
    const std::optional<NamespacedName> name = ObjectName(object);
    Mapped<T> mapped = ops_.map(from, object);
    std::lock_guard lock(source.mu_);
    Check(source, slot, from, name, mapped);
    source.Report(slot, names.kind, name.value_or(NamespacedName{}), std::move(mapped.problems),
                  logs);
    if (mapped.usable()) {
      PutIfChanged(source, slot, ops_.key_of(*name), std::move(*mapped.value));
    } else if (!mapped.invalid() && name) {
      (source.*ops_.remove)(slot, ops_.key_of(*name));
    }
  }

  void Delete(KubeSource& source, size_t slot, const NamespacedName& name) const override {
    (source.*ops_.remove)(slot, ops_.key_of(name));
  }

  size_t Objects(const Slot& slot) const override { return (slot.*ops_.cache).size(); }

 private:
  void Check(const KubeSource& source, size_t slot, const ObjectSource& from,
             const std::optional<NamespacedName>& name, Mapped<T>& mapped) const {
    if (ops_.check != nullptr && name && mapped.usable()) {
      (source.*ops_.check)(slot, from, *name, *mapped.value, mapped.problems);
    }
  }

  // An unchanged object (a resync, a status-only update) touches nothing.
  void PutIfChanged(KubeSource& source, size_t slot, const Key& key, T value) const {
    const std::map<Key, T>& cache = (*source.slots_[slot]).*ops_.cache;
    const auto it = cache.find(key);
    if (it == cache.end() || !(it->second == value)) {
      (source.*ops_.put)(slot, key, std::move(value));
    }
  }

  Ops ops_;
};

// The local cluster's ClusterProperties, not cached: the cluster.clusterset.k8s.io one names
// the cluster, once (KEP-2149: the name is immutable, so a later value or a delete changes
// nothing).
class KubeSource::ClusterPropertyKind final : public KubeSource::Kind {
 public:
  using Kind::Kind;

  void Replace(KubeSource& source, size_t slot, const ObjectSource& from, std::vector<json> items,
               std::vector<std::string>& logs) const override {
    std::vector<std::pair<NamespacedName, Mapped<std::string>>> parsed;
    parsed.reserve(items.size());
    for (const json& item : items) {
      parsed.emplace_back(ObjectName(item).value_or(NamespacedName{}),
                          MapClusterProperty(from, item));
    }
    std::lock_guard lock(source.mu_);
    std::map<NamespacedName, std::vector<ObjectProblem>> reports;
    for (auto& [name, mapped] : parsed) {
      std::vector<ObjectProblem>& report = reports[name];
      report.insert(report.end(), mapped.problems.begin(), mapped.problems.end());
      Apply(source, mapped, logs);
    }
    source.ReportAll(slot, names.kind, std::move(reports), logs);
  }

  void Upsert(KubeSource& source, size_t slot, const ObjectSource& from, const json& object,
              std::vector<std::string>& logs) const override {
    Mapped<std::string> mapped = MapClusterProperty(from, object);
    std::lock_guard lock(source.mu_);
    Apply(source, mapped, logs);
    source.Report(slot, names.kind, ObjectName(object).value_or(NamespacedName{}),
                  std::move(mapped.problems), logs);
  }

  void Delete(KubeSource&, size_t, const NamespacedName&) const override {}

  size_t Objects(const Slot& slot) const override { return slot.name.empty() ? 0 : 1; }

 private:
  static void Apply(KubeSource& source, const Mapped<std::string>& mapped,
                    std::vector<std::string>& logs) {
    if (mapped.usable()) {
      source.TakeClusterName(*mapped.value, logs);
    }
  }
};

const KubeSource::Kind& KubeSource::KindOf(KubeResource resource) {
  const Kind::WatchedFn direct = [](const KubeSource&, const Slot& s) { return !s.mcs(); };
  static const CachedKind<Service, NamespacedName> services(
      {"Service", "services", "", "v1"}, direct,
      {MapService, SameName, &Slot::services, &KubeSource::PutService, &KubeSource::RemoveService,
       nullptr});
  static const CachedKind<SliceInfo, NamespacedName> slices(
      {"EndpointSlice", "endpointslices", "discovery.k8s.io", "v1"}, direct,
      {MapEndpointSlice, SameName, &Slot::slices, &KubeSource::PutSlice, &KubeSource::RemoveSlice,
       &KubeSource::CheckSlice});
  // Nodes are cluster-scoped: keyed by their name alone.
  static const CachedKind<NodeInfo, std::string> nodes(
      {"Node", "nodes", "", "v1"}, direct,
      {MapNode, NodeKey, &Slot::nodes, &KubeSource::PutNode, &KubeSource::RemoveNode, nullptr});
  static const CachedKind<ImportInfo, NamespacedName> imports(
      {"ServiceImport", "serviceimports", "multicluster.x-k8s.io", nullptr},
      [](const KubeSource& source, const Slot& s) {
        return s.local && !source.import_version_.empty();
      },
      {MapServiceImport, SameName, &Slot::imports, &KubeSource::PutImport,
       &KubeSource::RemoveImport, nullptr});
  // Watched when the configuration does not name the local cluster.
  static const ClusterPropertyKind cluster_properties(
      {"ClusterProperty", "clusterproperties", "about.k8s.io", "v1alpha1"},
      [](const KubeSource&, const Slot& s) { return s.local && s.name.empty(); });

  switch (resource) {
    case KubeResource::kServices:
      return services;
    case KubeResource::kEndpointSlices:
      return slices;
    case KubeResource::kNodes:
      return nodes;
    case KubeResource::kServiceImports:
      return imports;
    case KubeResource::kClusterProperties:
      return cluster_properties;
  }
  std::abort();  // not a KubeResource
}

std::string_view ToString(KubeResource resource) {
  return KubeSource::KindOf(resource).names.plural;
}

ResourcePath PathOf(KubeResource resource, std::string_view import_version) {
  const KubeSource::Kind::Names& n = KubeSource::KindOf(resource).names;
  const std::string api = *n.group == '\0' ? "/api" : "/apis/" + std::string(n.group);
  const std::string version = n.version != nullptr ? n.version : std::string(import_version);
  return {api + "/" + version + "/" + n.plural, n.kind};
}

KubeSource::KubeSource(KubeSourcesConfig config, Options options)
    : options_(std::move(options)),
      import_version_(config.service_imports),
      node_name_(config.node_name),
      node_addresses_(config.node_addresses) {
  const auto add = [&](ClusterConfig c, bool local) {
    auto slot = std::make_unique<Slot>();
    const size_t index = slots_.size();
    slot->name = c.name;
    slot->local = local;
    if (local) {
      c.mode = ClusterMode::kDirect;
    }
    slot->config = std::move(c);
    for (size_t r = 0; r < kResourceCount; ++r) {
      const auto resource = static_cast<KubeResource>(r);
      if (KindOf(resource).watched(*this, *slot)) {
        slot->receivers[r] = std::make_unique<Receiver>(this, index, resource);
      }
    }
    slots_.push_back(std::move(slot));
  };
  add(std::move(config.local), true);
  for (ClusterConfig& c : config.remotes) {
    add(std::move(c), false);
  }
}

KubeSource::~KubeSource() = default;

std::vector<KubeWatch> KubeSource::Watches() {
  std::lock_guard lock(mu_);
  std::vector<KubeWatch> out;
  for (const auto& slot : slots_) {
    for (size_t r = 0; r < kResourceCount; ++r) {
      if (!slot->receivers[r]) {
        continue;
      }
      const auto kind = static_cast<KubeResource>(r);
      out.push_back(KubeWatch{slot->config.name, slot->local, slot->config.in_cluster,
                              slot->config.kubeconfig, kind, PathOf(kind, import_version_),
                              slot->receivers[r].get()});
    }
  }
  return out;
}

ResourceEvents* KubeSource::EventsFor(std::string_view cluster, KubeResource kind) {
  std::lock_guard lock(mu_);
  for (const auto& slot : slots_) {
    if ((cluster.empty() && slot->local) || (!cluster.empty() && slot->name == cluster)) {
      return slot->receivers[static_cast<size_t>(kind)].get();
    }
  }
  return nullptr;
}

// --- events (client threads) ---------------------------------------------------------------

ObjectSource KubeSource::SourceOf(size_t slot, const Kind& kind) const {
  std::lock_guard lock(mu_);
  return {slots_[slot]->name, kind.names.kind};
}

void KubeSource::OnReplace(size_t slot, KubeResource resource, std::vector<json> items) {
  const Kind& kind = KindOf(resource);
  std::vector<std::string> logs;
  kind.Replace(*this, slot, SourceOf(slot, kind), std::move(items), logs);
  {
    std::lock_guard lock(mu_);
    Slot& s = *slots_[slot];
    Slot::State& state = s.state[static_cast<size_t>(resource)];
    state.synced = true;
    state.unreachable_since.reset();
    if (resource == KubeResource::kEndpointSlices && s.stale) {
      s.stale = false;
      MarkClusterEndpoints(slot);
      logs.push_back(s.name + ": EndpointSlices listed again: its endpoints are back");
    }
  }
  changed_.notify_all();
  Log(logs);
}

void KubeSource::OnUpsert(size_t slot, KubeResource resource, const json& object) {
  const Kind& kind = KindOf(resource);
  std::vector<std::string> logs;
  kind.Upsert(*this, slot, SourceOf(slot, kind), object, logs);
  changed_.notify_all();
  Log(logs);
}

void KubeSource::OnDelete(size_t slot, KubeResource resource, const json& object) {
  const Kind& kind = KindOf(resource);
  const std::optional<NamespacedName> name = ObjectName(object);
  std::vector<std::string> logs;
  {
    std::lock_guard lock(mu_);
    if (!name) {
      CountReason(slot, kind.names.kind, "missing_name");
      logs.push_back(
          (slots_[slot]->name.empty() ? std::string("local cluster") : slots_[slot]->name) + ": " +
          kind.names.kind + " (no name): metadata.name: deleted object without a name; nothing " +
          "removed");
    } else {
      kind.Delete(*this, slot, *name);
      ForgetReport(slot, kind.names.kind, *name);  // a new object of the name is reported anew
    }
  }
  changed_.notify_all();
  Log(logs);
}

void KubeSource::OnUnreachable(size_t slot, KubeResource resource, const std::string& why) {
  {
    std::lock_guard lock(mu_);
    Slot::State& state = slots_[slot]->state[static_cast<size_t>(resource)];
    if (!state.unreachable_since) {
      state.unreachable_since = Clock::now();
    }
    state.last_error = why;
  }
  changed_.notify_all();  // a staleness deadline may have started
}

// --- the caches (mu_ held) -------------------------------------------------------------------

void KubeSource::Report(size_t slot, const char* kind, const NamespacedName& name,
                        std::vector<ObjectProblem> problems, std::vector<std::string>& logs) {
  auto& reported = slots_[slot]->reported;
  const ReportKey key{kind, name};
  const auto it = reported.find(key);
  for (const ObjectProblem& p : problems) {
    const bool known = it != reported.end() &&
                       std::find(it->second.begin(), it->second.end(), p) != it->second.end();
    if (!known) {
      CountReason(slot, kind, p.reason);
      logs.push_back(p.text);
    }
  }
  if (problems.empty()) {
    if (it != reported.end()) {
      reported.erase(it);
    }
  } else if (it != reported.end()) {
    it->second = std::move(problems);
  } else {
    reported.emplace(key, std::move(problems));
  }
}

void KubeSource::ReportAll(size_t slot, const char* kind,
                           std::map<NamespacedName, std::vector<ObjectProblem>> reports,
                           std::vector<std::string>& logs) {
  auto& reported = slots_[slot]->reported;
  for (auto it = reported.begin(); it != reported.end();) {
    if (it->first.first == kind && reports.count(it->first.second) == 0) {
      it = reported.erase(it);  // not listed any more
    } else {
      ++it;
    }
  }
  for (auto& [name, problems] : reports) {
    Report(slot, kind, name, std::move(problems), logs);
  }
}

void KubeSource::ForgetReport(size_t slot, const char* kind, const NamespacedName& name) {
  slots_[slot]->reported.erase(ReportKey{kind, name});
}

void KubeSource::CountReason(size_t slot, const char* kind, const std::string& reason) {
  ++problems_[ProblemKey{slots_[slot]->name, kind, reason}];
}

void KubeSource::PutService(size_t slot, const NamespacedName& key, Service value) {
  slots_[slot]->services.insert_or_assign(key, std::move(value));
  dirty_services_.insert(key);
}

void KubeSource::RemoveService(size_t slot, const NamespacedName& key) {
  if (slots_[slot]->services.erase(key) != 0) {
    dirty_services_.insert(key);
  }
}

std::optional<size_t> KubeSource::TargetOf(size_t slot, const SliceInfo& slice) const {
  if (slice.source_cluster.empty()) {
    return slot;
  }
  if (!slots_[slot]->local) {
    return std::nullopt;  // the remote's own MCS copies: we see their sources directly or not
  }
  for (size_t i = 1; i < slots_.size(); ++i) {
    if (slots_[i]->mcs() && slots_[i]->name == slice.source_cluster) {
      return i;
    }
  }
  return std::nullopt;
}

void KubeSource::CheckSlice(size_t slot, const ObjectSource& from, const NamespacedName& name,
                            const SliceInfo& value, std::vector<ObjectProblem>& problems) const {
  if (!TargetOf(slot, value)) {
    problems.push_back(ProblemWith(
        from, name, "foreign_source_cluster",
        "metadata.labels[" + std::string(kMcsSourceClusterLabel) + "]",
        "\"" + value.source_cluster +
            "\" is no cluster of mode mcs here: the endpoints of the local cluster and of direct "
            "clusters come from their own slices; skipped"));
  }
}

void KubeSource::PutSlice(size_t slot, const NamespacedName& key, SliceInfo value) {
  RemoveSlice(slot, key);
  const std::optional<size_t> target = TargetOf(slot, value);
  if (!target) {
    return;  // reported by CheckSlice
  }
  Slot& s = *slots_[slot];
  s.slices_of[GroupKey{key.ns, value.service, value.source_cluster}].insert(key.name);
  const NamespacedName service{key.ns, value.service};
  dirty_endpoints_.insert({service, *target});
  if (value.trigger_time) {
    auto [it, added] = trigger_times_.emplace(service, *value.trigger_time);
    if (!added && *value.trigger_time < it->second) {
      it->second = *value.trigger_time;
    }
  }
  s.slices.insert_or_assign(key, std::move(value));
}

void KubeSource::RemoveSlice(size_t slot, const NamespacedName& key) {
  Slot& s = *slots_[slot];
  const auto it = s.slices.find(key);
  if (it == s.slices.end()) {
    return;
  }
  const SliceInfo& old = it->second;
  const GroupKey group{key.ns, old.service, old.source_cluster};
  if (const auto g = s.slices_of.find(group); g != s.slices_of.end()) {
    g->second.erase(key.name);
    if (g->second.empty()) {
      s.slices_of.erase(g);
    }
  }
  if (const std::optional<size_t> target = TargetOf(slot, old)) {
    dirty_endpoints_.insert({NamespacedName{key.ns, old.service}, *target});
  }
  s.slices.erase(it);
}

// What EndpointsOf reads of a Node: its tunnel address, whether it runs xlb, and in a remote
// cluster whether it is listed at all (a remote endpoint on an unlisted Node waits for it).
// An addressless Node appearing in a remote cluster therefore changes endpoints as much as an
// address does.
void KubeSource::PutNode(size_t slot, const std::string& key, NodeInfo value) {
  Slot& s = *slots_[slot];
  const auto it = s.nodes.find(key);
  const bool endpoints_change =
      it == s.nodes.end() ? !s.local || value.tunnel_address.has_value() || !value.runs_xlb
                          : it->second.tunnel_address != value.tunnel_address ||
                                it->second.runs_xlb != value.runs_xlb;
  if (it == s.nodes.end() || it->second.addresses != value.addresses) {
    dirty_node_addresses_.insert(slot);
  }
  s.nodes.insert_or_assign(key, std::move(value));
  if (s.local && key == node_name_) {
    dirty_node_ = true;
  }
  if (endpoints_change) {
    MarkEndpointsOnNode(slot, key);  // status updates that keep the address touch none
  }
}

void KubeSource::RemoveNode(size_t slot, const std::string& key) {
  Slot& s = *slots_[slot];
  const auto it = s.nodes.find(key);
  if (it == s.nodes.end()) {
    return;
  }
  const bool endpoints_change = !s.local || it->second.tunnel_address || !it->second.runs_xlb;
  s.nodes.erase(it);
  dirty_node_addresses_.insert(slot);
  if (endpoints_change) {
    MarkEndpointsOnNode(slot, key);
  }
  if (s.local && key == node_name_) {
    dirty_node_ = true;
  }
}

void KubeSource::MarkEndpointsOnNode(size_t slot, const std::string& node) {
  const Slot& s = *slots_[slot];
  for (const auto& [name, slice] : s.slices) {
    if (!slice.source_cluster.empty()) {
      continue;
    }
    const bool on_node = std::any_of(slice.endpoints.begin(), slice.endpoints.end(),
                                     [&](const SliceEndpoint& e) { return e.node_name == node; });
    if (on_node) {
      dirty_endpoints_.insert({NamespacedName{name.ns, slice.service}, slot});
    }
  }
}

void KubeSource::PutImport(size_t slot, const NamespacedName& key, ImportInfo value) {
  slots_[slot]->imports.insert_or_assign(key, std::move(value));
  dirty_services_.insert(key);
}

void KubeSource::RemoveImport(size_t slot, const NamespacedName& key) {
  if (slots_[slot]->imports.erase(key) != 0) {
    dirty_services_.insert(key);
  }
}

void KubeSource::TakeClusterName(const std::string& name, std::vector<std::string>& logs) {
  Slot& local = *slots_[0];
  if (local.name == name) {
    return;
  }
  // Each refused value is counted and logged once, not at every relist that lists it again.
  const auto refuse = [&](const char* reason, const std::string& why) {
    if (local.refused_names.insert(name).second) {
      CountReason(0, "ClusterProperty", reason);
      logs.push_back("local cluster: ClusterProperty " + std::string(kClusterIdProperty) +
                     ": spec.value: " + why);
    }
  };
  if (!local.name.empty()) {
    refuse("cluster_name_changed", "changed from \"" + local.name + "\" to \"" + name +
                                       "\"; a cluster's name is immutable, \"" + local.name +
                                       "\" stays");
    return;
  }
  const uint16_t id = local.config.id ? *local.config.id : ClusterIdOf(name);
  for (size_t i = 1; i < slots_.size(); ++i) {
    if (slots_[i]->name == name) {
      refuse("name_conflict", "\"" + name + "\" is the name of a remote cluster; not taken");
      return;
    }
    if (IdOf(*slots_[i]) == id) {
      refuse("id_conflict", "\"" + name + "\" has cluster id " + std::to_string(id) +
                                ", as remote cluster \"" + slots_[i]->name +
                                "\" has; not taken: configure local.id");
      return;
    }
  }
  local.name = name;
  MarkAll();
}

void KubeSource::MarkClusterEndpoints(size_t slot) {
  const Slot& t = *slots_[slot];
  const Slot& source = t.mcs() ? *slots_[0] : t;
  const std::string label = t.mcs() ? t.name : "";
  for (const auto& [group, names] : source.slices_of) {
    if (group.source == label) {
      dirty_endpoints_.insert({NamespacedName{group.ns, group.service}, slot});
    }
  }
}

void KubeSource::MarkAll() {
  dirty_clusters_ = true;
  dirty_node_ = true;
  for (size_t i = 0; i < slots_.size(); ++i) {
    dirty_node_addresses_.insert(i);
  }
  for (const auto& slot : slots_) {
    for (const auto& [name, s] : slot->services) {
      dirty_services_.insert(name);
    }
    for (const auto& [name, i] : slot->imports) {
      dirty_services_.insert(name);
    }
    for (const auto& [group, names] : slot->slices_of) {
      dirty_services_.insert(NamespacedName{group.ns, group.service});
    }
  }
}

bool KubeSource::Pending() const {
  return dirty_clusters_ || dirty_node_ || !dirty_node_addresses_.empty() ||
         !dirty_services_.empty() || !dirty_endpoints_.empty();
}

std::optional<KubeSource::Clock::time_point> KubeSource::NextStale() const {
  std::optional<Clock::time_point> next;
  for (size_t i = 1; i < slots_.size(); ++i) {
    const Slot& s = *slots_[i];
    const auto& since =
        s.state[static_cast<size_t>(KubeResource::kEndpointSlices)].unreachable_since;
    if (s.mcs() || s.stale || !since) {
      continue;
    }
    const Clock::time_point due = *since + s.config.stale_after;
    if (!next || due < *next) {
      next = due;
    }
  }
  return next;
}

void KubeSource::UpdateStaleness(Clock::time_point now, std::vector<std::string>& logs) {
  for (size_t i = 1; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    const Slot::State& state = s.state[static_cast<size_t>(KubeResource::kEndpointSlices)];
    if (s.mcs() || s.stale || !state.unreachable_since ||
        now - *state.unreachable_since < s.config.stale_after) {
      continue;
    }
    s.stale = true;
    MarkClusterEndpoints(i);
    logs.push_back(s.name + ": EndpointSlices unreachable for " +
                   std::to_string(s.config.stale_after.count()) + " ms (" + state.last_error +
                   "): its endpoints are out of the model until it is listed again");
  }
}

std::optional<Service> KubeSource::ViewOf(const NamespacedName& name) const {
  const Slot& local = *slots_[0];
  const auto service = local.services.find(name);
  const auto import = local.imports.find(name);
  std::optional<Service> out;
  if (service != local.services.end()) {
    out = service->second;
  } else if (import != local.imports.end()) {
    out.emplace();
    out->name = name;
    out->ports = import->second.ports;
    out->affinity = import->second.affinity;
    out->affinity_timeout_s = import->second.affinity_timeout_s;
  } else {
    for (size_t i = 1; i < slots_.size() && !out; ++i) {
      const auto remote = slots_[i]->services.find(name);
      if (remote != slots_[i]->services.end()) {
        out.emplace();
        out->name = name;
        out->ports = remote->second.ports;  // the remote's VIPs are no VIPs here
        for (ServicePort& p : out->ports) {
          p.node_port = 0;
        }
      }
    }
  }
  if (out && import != local.imports.end()) {
    out->clusterset_ips = import->second.ips;
  }
  return out;
}

bool KubeSource::Exists(const NamespacedName& name) const {
  if (slots_[0]->imports.count(name) != 0) {
    return true;
  }
  return std::any_of(slots_.begin(), slots_.end(), [&](const std::unique_ptr<Slot>& slot) {
    return !slot->mcs() && slot->services.count(name) != 0;
  });
}

std::vector<Endpoint> KubeSource::EndpointsOf(const NamespacedName& service, size_t target) const {
  std::vector<Endpoint> out;
  const Slot& t = *slots_[target];
  if (t.name.empty() || t.stale) {
    return out;
  }
  const Slot& source = t.mcs() ? *slots_[0] : t;
  const auto group =
      source.slices_of.find(GroupKey{service.ns, service.name, t.mcs() ? t.name : std::string()});
  if (group == source.slices_of.end()) {
    return out;
  }
  for (const std::string& slice_name : group->second) {
    const SliceInfo& slice = source.slices.at(NamespacedName{service.ns, slice_name});
    for (const SliceEndpoint& e : slice.endpoints) {
      std::optional<IpAddress> node_address;
      bool node_runs_xlb = true;
      if (!t.mcs() && !e.node_name.empty()) {
        if (const auto node = t.nodes.find(e.node_name); node != t.nodes.end()) {
          node_address = node->second.tunnel_address;
          node_runs_xlb = node->second.runs_xlb;
        } else if (!t.local) {
          // A remote pod on a Node not listed (yet): without the node's address it would be
          // planned as routed, which it is not. It waits for its Node (a Node event marks
          // the cluster's services again).
          continue;
        }
      }
      Endpoint& o = out.emplace_back();
      o.service = service;
      o.cluster = t.name;
      o.addresses = e.addresses;
      o.ports = slice.ports;
      o.node_name = e.node_name;
      o.zone = e.zone;
      o.zone_hints = e.zone_hints;
      o.node_address = node_address;
      o.node_runs_xlb = node_runs_xlb;
      o.conditions = e.conditions;
    }
  }
  return out;
}

KubeSource::Work KubeSource::TakeWork() {
  Work work;
  if (dirty_clusters_) {
    std::vector<Cluster> clusters;
    for (const auto& slot : slots_) {
      if (!slot->name.empty()) {
        clusters.push_back(Cluster{IdOf(*slot), slot->name, slot->local});
      }
    }
    work.clusters = std::move(clusters);
    dirty_clusters_ = false;
  }
  if (dirty_node_) {
    LocalNode node;
    node.name = node_name_;
    node.addresses = node_addresses_;
    if (!node_name_.empty()) {
      if (const auto it = slots_[0]->nodes.find(node_name_); it != slots_[0]->nodes.end()) {
        if (node.addresses.empty()) {
          node.addresses = it->second.addresses;
        }
        node.zone = it->second.zone;
      }
    }
    work.node = std::move(node);
    dirty_node_ = false;
  }
  if (!dirty_node_addresses_.empty()) {
    for (const auto& slot : slots_) {
      work.cluster_names.insert(slot->name);
    }
  }
  for (const size_t slot : dirty_node_addresses_) {
    const Slot& s = *slots_[slot];
    if (s.name.empty() || s.mcs()) {
      continue;  // an MCS slot has no Nodes of its own (its endpoints come from the local slot)
    }
    std::vector<IpAddress>& addresses = work.node_addresses[s.name];
    for (const auto& [name, node] : s.nodes) {
      addresses.insert(addresses.end(), node.addresses.begin(), node.addresses.end());
    }
  }
  dirty_node_addresses_.clear();
  for (const NamespacedName& name : dirty_services_) {
    Work::Item& item = work.items.emplace_back();
    item.name = name;
    item.view_dirty = true;
    item.view = ViewOf(name);
    if (item.view) {
      for (size_t i = 0; i < slots_.size(); ++i) {
        if (!slots_[i]->name.empty()) {
          item.endpoints.emplace_back(slots_[i]->name, EndpointsOf(name, i));
        }
      }
    }
  }
  Work::Item* current = nullptr;
  std::optional<bool> exists;
  for (const auto& [name, slot] : dirty_endpoints_) {
    if (dirty_services_.count(name) != 0 || slots_[slot]->name.empty()) {
      continue;
    }
    if (current == nullptr || current->name != name) {
      if (!Exists(name)) {
        current = nullptr;
        continue;  // no service (yet): its slices wait in the cache
      }
      current = &work.items.emplace_back();
      current->name = name;
    }
    current->endpoints.emplace_back(slots_[slot]->name, EndpointsOf(name, slot));
  }
  dirty_services_.clear();
  dirty_endpoints_.clear();
  work.trigger_times.swap(trigger_times_);
  return work;
}

// --- the agent's thread ----------------------------------------------------------------------

DrainResult KubeSource::Drain(Model& model) {
  std::vector<std::string> logs;
  Work work;
  {
    std::lock_guard lock(mu_);
    UpdateStaleness(Clock::now(), logs);
    work = TakeWork();
  }
  Log(logs);

  DrainResult result;
  if (work.clusters) {
    for (Cluster& c : *work.clusters) {
      const Cluster* have = model.FindCluster(c.name);
      if (have == nullptr || !(*have == c)) {
        model.PutCluster(std::move(c));
        result.clusters = true;
      }
    }
  }
  if (work.node && !(model.local_node() == *work.node)) {
    model.SetLocalNode(std::move(*work.node));
    result.node = true;
  }
  if (!work.node_addresses.empty()) {
    // A cluster that got another name (its ClusterProperty) leaves its old name's behind.
    std::vector<std::string> forgotten;
    for (const auto& [cluster, addresses] : model.node_addresses()) {
      if (work.cluster_names.count(cluster) == 0) {
        forgotten.push_back(cluster);
      }
    }
    for (const std::string& cluster : forgotten) {
      result.node_addresses |= model.SetNodeAddresses(cluster, {});
    }
    for (auto& [cluster, addresses] : work.node_addresses) {
      result.node_addresses |= model.SetNodeAddresses(cluster, std::move(addresses));
    }
  }
  for (Work::Item& item : work.items) {
    bool changed = false;
    if (item.view_dirty) {
      const Service* have = model.FindService(item.name);
      if (!item.view) {
        if (have != nullptr) {
          model.RemoveService(item.name);
          result.services.push_back(item.name);
        }
        continue;
      }
      if (have == nullptr || !(*have == *item.view)) {
        model.PutService(std::move(*item.view));
        changed = true;
      }
    }
    for (auto& [cluster, endpoints] : item.endpoints) {
      changed |= SetEndpointsIfChanged(model, item.name, cluster, std::move(endpoints));
    }
    if (changed) {
      result.services.push_back(item.name);
    }
  }
  std::sort(result.services.begin(), result.services.end());
  result.services.erase(std::unique(result.services.begin(), result.services.end()),
                        result.services.end());
  // A change that wrote nothing (a relist, a field xlb does not read) programs nothing.
  for (auto& [service, when] : work.trigger_times) {
    if (std::binary_search(result.services.begin(), result.services.end(), service)) {
      result.trigger_times.emplace(service, when);
    }
  }
  return result;
}

bool KubeSource::WaitForChange(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (Pending()) {
      return true;
    }
    const std::optional<Clock::time_point> stale = NextStale();
    const Clock::time_point now = Clock::now();
    if (stale && *stale <= now) {
      return true;
    }
    if (now >= deadline) {
      return false;
    }
    changed_.wait_until(lock, stale ? std::min(*stale, deadline) : deadline);
  }
}

bool KubeSource::LocalSynced() const {
  std::lock_guard lock(mu_);
  const Slot& local = *slots_[0];
  if (local.name.empty()) {
    return false;
  }
  for (size_t r = 0; r < kResourceCount; ++r) {
    if (local.receivers[r] && !local.state[r].synced) {
      return false;
    }
  }
  return true;
}

bool KubeSource::AllSynced() const {
  std::lock_guard lock(mu_);
  for (const auto& slot : slots_) {
    if (slot->name.empty()) {
      return false;
    }
    for (size_t r = 0; r < kResourceCount; ++r) {
      if (slot->receivers[r] && !slot->state[r].synced) {
        return false;
      }
    }
  }
  return true;
}

std::map<ProblemKey, uint64_t> KubeSource::Problems() const {
  std::lock_guard lock(mu_);
  return problems_;
}

uint64_t KubeSource::ProblemCount(std::string_view cluster, std::string_view kind,
                                  std::string_view reason) const {
  std::lock_guard lock(mu_);
  const auto it =
      problems_.find(ProblemKey{std::string(cluster), std::string(kind), std::string(reason)});
  return it == problems_.end() ? 0 : it->second;
}

std::vector<ClusterStatus> KubeSource::Clusters() const {
  std::lock_guard lock(mu_);
  std::vector<ClusterStatus> out;
  for (const auto& slot : slots_) {
    out.push_back(ClusterStatus{slot->name, slot->name.empty() ? uint16_t{0} : IdOf(*slot),
                                slot->local, slot->config.mode, slot->stale});
  }
  return out;
}

std::vector<ResourceStatus> KubeSource::Resources() const {
  std::lock_guard lock(mu_);
  std::vector<ResourceStatus> out;
  for (const auto& slot : slots_) {
    for (size_t r = 0; r < kResourceCount; ++r) {
      if (!slot->receivers[r]) {
        continue;
      }
      const auto kind = static_cast<KubeResource>(r);
      out.push_back(ResourceStatus{slot->name, kind, slot->state[r].synced,
                                   slot->state[r].unreachable_since.has_value(),
                                   slot->state[r].last_error, KindOf(kind).Objects(*slot)});
    }
  }
  return out;
}

void KubeSource::Log(const std::vector<std::string>& lines) const {
  if (!options_.log) {
    return;
  }
  for (const std::string& line : lines) {
    options_.log(line);
  }
}

}  // namespace xlb::kube
