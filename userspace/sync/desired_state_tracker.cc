#include "userspace/sync/desired_state_tracker.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <deque>
#include <thread>

#include "maps/xlb_hash.h"
#include "userspace/planner/maglev.h"

namespace xlb {
namespace {

bool Balanced(const ServicePort& port) {
  return port.protocol == Protocol::kTcp || port.protocol == Protocol::kUdp;
}

bool Contains(const std::vector<xlb_service_key>& keys, const xlb_service_key& key) {
  return std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return AbiEqual(k, key); });
}

// A key a service port asks for, and the address it stands for (named in problems).
struct Frontend {
  xlb_service_key key;
  IpAddress address;
};

// The VIP keys a service port asks for in one family and scope, its own duplicates dropped
// (the ClusterIP also listed as an external IP: internal first).
std::vector<Frontend> VipFrontends(const Service& service, const ServicePort& port, IpFamily family,
                                   FrontendScope scope) {
  std::vector<Frontend> out;
  std::vector<xlb_service_key> seen;
  const auto add = [&](const std::vector<IpAddress>& vips, bool wanted) {
    for (const IpAddress& vip : vips) {
      if (vip.family() != family) {
        continue;
      }
      const xlb_service_key key = ServiceKeyOf(vip, port.protocol, port.port);
      if (Contains(seen, key)) {
        continue;
      }
      seen.push_back(key);
      if (wanted) {
        out.push_back({key, vip});
      }
    }
  };
  const bool internal = scope != FrontendScope::kExternal;
  const bool external = scope != FrontendScope::kInternal;
  add(service.cluster_ips, internal);
  add(service.clusterset_ips, internal);
  add(service.external_ips, external);
  add(service.load_balancer_ips, external);
  return out;
}

// (node address, nodePort, protocol) for every address of the local node in the family.
std::vector<Frontend> NodePortFrontends(const Model& model, const ServicePort& port,
                                        IpFamily family, FrontendScope scope) {
  std::vector<Frontend> out;
  if (port.node_port == 0 || scope == FrontendScope::kInternal) {
    return out;
  }
  for (const IpAddress& address : model.local_node().addresses) {
    if (address.family() == family) {
      out.push_back({ServiceKeyOf(address, port.protocol, port.node_port), address});
    }
  }
  return out;
}

// Every key a service asks for (VIPs and NodePorts of every balanced port and family).
std::vector<xlb_service_key> WantedKeys(const Model& model, const NamespacedName& name) {
  std::vector<xlb_service_key> out;
  const Service* service = model.FindService(name);
  if (service == nullptr) {
    return out;
  }
  const std::vector<IpFamily> families = FamiliesOf(model, *service);
  for (const ServicePort& port : service->ports) {
    if (!Balanced(port)) {
      continue;
    }
    for (const IpFamily family : families) {
      for (const FrontendScope scope : ScopesOf(*service)) {
        for (const Frontend& f : VipFrontends(*service, port, family, scope)) {
          out.push_back(f.key);
        }
        for (const Frontend& f : NodePortFrontends(model, port, family, scope)) {
          out.push_back(f.key);
        }
      }
    }
  }
  return out;
}

// The services-map value of a table: every key of it, VIP or NodePort, gets this.
xlb_peer_key PeerKey(const IpAddress& address) {
  xlb_peer_key key{};
  address.ToAbiWords(key.addr);
  key.family = static_cast<uint8_t>(address.family());
  return key;
}

xlb_peer PeerOf(const Cluster* cluster) {
  return xlb_peer{.cluster_id = cluster != nullptr ? cluster->id : uint16_t{0}, .pad = {}};
}

xlb_service ServiceValue(const Service& service, uint32_t id, uint32_t taking_flows, bool rejects) {
  xlb_service value{};
  value.id = id;
  if (service.affinity == SessionAffinity::kClientIP) {
    value.flags |= XLB_SVC_F_AFFINITY;
    value.affinity_timeout = service.affinity_timeout_s;
  }
  if (taking_flows == 0 && rejects) {
    value.flags |= XLB_SVC_F_REJECT;
  }
  value.backend_count = taking_flows;
  return value;
}

// The loadBalancerSourceRanges of `family` as xlb_srcrange_v1 keys of service `id`. None:
// the LoadBalancer IPs of that family are not filtered (kube-proxy filters each family by
// the ranges of that family).
std::vector<xlb_src_range_key> SourceRangeKeys(const Service& service, uint32_t id,
                                               IpFamily family) {
  std::vector<xlb_src_range_key> out;
  for (const IpPrefix& range : service.load_balancer_source_ranges) {
    if (range.network.family() != family) {
      continue;
    }
    xlb_src_range_key key{};
    key.prefixlen = XLB_SRC_RANGE_PREFIX_BASE + range.length;
    key.service_id = id;
    key.family = static_cast<uint8_t>(family);
    range.network.ToAbiWords(key.addr);
    out.push_back(key);
  }
  return out;
}

bool IsLoadBalancerKey(const Service& service, const xlb_service_key& key) {
  return std::any_of(service.load_balancer_ips.begin(), service.load_balancer_ips.end(),
                     [&](const IpAddress& ip) {
                       const xlb_service_key lb =
                           ServiceKeyOf(ip, static_cast<Protocol>(key.proto), ntohs(key.port));
                       return AbiEqual(lb, key);
                     });
}

// Every entry of `maps` (MapContents or DesiredMaps: the same maps, tables as digests or as
// recipes).
template <typename Maps>
void AddEntriesOf(const Maps& maps, TouchedEntries& touched) {
  for (const auto& [id, backend] : maps.backends) {
    touched.backends.insert(id);
  }
  for (const auto& [id, table] : maps.tables) {
    touched.tables.insert(id);
  }
  for (const auto& [key, service] : maps.services) {
    touched.services.insert(touched.services.end(), key);
  }
  for (const auto& [word, bits] : maps.vip_filter) {
    touched.vip_words.insert(word);
  }
  for (const auto& [key, peer] : maps.peers) {
    touched.peers.insert(touched.peers.end(), key);
  }
  touched.affinity_match.insert(maps.affinity_match.begin(), maps.affinity_match.end());
  touched.source_ranges.insert(maps.source_ranges.begin(), maps.source_ranges.end());
}

}  // namespace

std::vector<ServiceBackends> PlanService(const Model& model, const Service& service,
                                         const Routes& routes) {
  const std::vector<IpFamily> families = FamiliesOf(model, service);
  std::vector<ServiceBackends> out;
  const ServiceRoute fallback = DefaultRoute(service.name);
  for (const ServicePort& port : service.ports) {
    const ServiceRoute* route = routes.Find(service.name, port);
    for (const IpFamily family : families) {
      for (const FrontendScope scope : ScopesOf(service)) {
        out.push_back(PlanServicePort(model, service, port, family,
                                      route != nullptr ? *route : fallback, scope));
      }
    }
  }
  return out;
}

// ---- IdSet ------------------------------------------------------------------------------

void IdSet::Iterator::Settle() {
  const size_t limit = words_->size() * 64;
  while (pos_ < limit) {
    const uint64_t rest = (*words_)[pos_ / 64] >> (pos_ % 64);
    if (rest != 0) {
      pos_ += static_cast<size_t>(std::countr_zero(rest));
      return;
    }
    pos_ = (pos_ / 64 + 1) * 64;
  }
  pos_ = limit;
}

void IdSet::insert(uint32_t id) {
  if (id / 64 >= words_.size()) {
    words_.resize(id / 64 + 1, 0);
  }
  uint64_t& w = words_[id / 64];
  const uint64_t bit = uint64_t{1} << (id % 64);
  count_ += (w & bit) == 0 ? 1 : 0;
  w |= bit;
}

bool IdSet::contains(uint32_t id) const {
  return id / 64 < words_.size() && (words_[id / 64] >> (id % 64) & 1) != 0;
}

void IdSet::Merge(const IdSet& other) {
  if (other.words_.size() > words_.size()) {
    words_.resize(other.words_.size(), 0);
  }
  count_ = 0;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (i < other.words_.size()) {
      words_[i] |= other.words_[i];
    }
    count_ += static_cast<size_t>(std::popcount(words_[i]));
  }
}

// ---- TouchedEntries ---------------------------------------------------------------------

bool TouchedEntries::empty() const {
  return backends.empty() && tables.empty() && services.empty() && vip_words.empty() &&
         peers.empty() && affinity_match.empty() && source_ranges.empty();
}

void TouchedEntries::Merge(const TouchedEntries& other) {
  backends.Merge(other.backends);
  tables.Merge(other.tables);
  services.insert(other.services.begin(), other.services.end());
  vip_words.Merge(other.vip_words);
  peers.insert(other.peers.begin(), other.peers.end());
  affinity_match.insert(other.affinity_match.begin(), other.affinity_match.end());
  source_ranges.insert(other.source_ranges.begin(), other.source_ranges.end());
}

void TouchedEntries::AddAll(const MapContents& contents) {
  AddEntriesOf(contents, *this);
}

void TouchedEntries::AddAll(const DesiredMaps& maps) {
  AddEntriesOf(maps, *this);
}

// ---- DesiredStateTracker ----------------------------------------------------------------

struct DesiredStateTracker::Claim {
  DesiredService table;  // keys: its VIPs, then its NodePorts; id and backend_ids come later
  size_t vip_count = 0;  // keys before this index are VIPs
  size_t plan = 0;       // index into PlanService()'s plans of its service
  bool rejects = false;  // ServiceBackends::rejects
  std::vector<xlb_backend> backends;   // of the plan, in its order
  std::vector<MaglevBackend> members;  // the same, as the table takes them
};

DesiredStateTracker::DesiredStateTracker(const MapContents& held, StoreLimits limits,
                                         const DesiredMaps* pending)
    : maglev_size_(limits.maglev_size),
      ids_(held, pending, limits),
      vip_bits_(XLB_VIP_FILTER_WORDS) {}

const std::vector<DesiredService>* DesiredStateTracker::TablesOf(
    const NamespacedName& service) const {
  auto it = services_.find(service);
  return it == services_.end() ? nullptr : &it->second.tables;
}

const DesiredService* DesiredStateTracker::Find(const NamespacedName& service, uint16_t port,
                                                IpFamily family) const {
  if (const auto* tables = TablesOf(service)) {
    for (const DesiredService& d : *tables) {
      if (d.port.port == port && d.family == family) {
        return &d;
      }
    }
  }
  return nullptr;
}

const DesiredService* DesiredStateTracker::FindById(uint32_t service_id) const {
  auto it = by_id_.find(service_id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<std::string> DesiredStateTracker::Problems() const {
  std::vector<std::string> out;
  for (const auto& [name, tracked] : services_) {
    out.insert(out.end(), tracked.problems.begin(), tracked.problems.end());
  }
  return out;
}

std::vector<NamespacedName> DesiredStateTracker::Services() const {
  std::vector<NamespacedName> out;
  out.reserve(services_.size());
  for (const auto& [name, tracked] : services_) {
    out.push_back(name);
  }
  return out;
}

DesiredState DesiredStateTracker::TakeState() && {
  DesiredState out;
  out.problems = Problems();
  for (auto& [name, tracked] : services_) {
    for (DesiredService& d : tracked.tables) {
      out.services.push_back(std::move(d));
    }
  }
  out.maps = std::move(maps_);
  return out;
}

void DesiredStateTracker::CountVip(const xlb_service_key& key, int delta, TouchedEntries& touched) {
  uint32_t word = 0;
  const uint64_t bit = xlb_vip_filter_pos(key.addr, &word);
  const int pos = std::countr_zero(bit);
  uint32_t& count = vip_bits_[word][pos];
  count = static_cast<uint32_t>(static_cast<int>(count) + delta);
  uint64_t& bits = maps_.vip_filter[word];
  if (count > 0) {
    bits |= bit;
  } else {
    bits &= ~bit;
  }
  if (bits == 0) {
    maps_.vip_filter.erase(word);
  }
  touched.vip_words.insert(word);
}

void DesiredStateTracker::Drop(const NamespacedName& name, TouchedEntries& touched) {
  auto it = services_.find(name);
  if (it == services_.end()) {
    return;
  }
  for (const DesiredService& d : it->second.tables) {
    maps_.tables.erase(d.id);
    by_id_.erase(d.id);
    touched.tables.insert(d.id);
    ids_.ReleaseService(d.id);
    for (const xlb_service_key& key : d.keys) {
      maps_.services.erase(key);
      touched.services.insert(key);
      CountVip(key, -1, touched);
    }
    for (const xlb_affinity_match_key& key : d.affinity_match) {
      maps_.affinity_match.erase(key);
      touched.affinity_match.insert(key);
    }
    for (const xlb_src_range_key& key : d.source_ranges) {
      maps_.source_ranges.erase(key);
      touched.source_ranges.insert(key);
    }
    for (const uint32_t id : d.backend_ids) {
      if (ids_.UnlistBackend(id)) {
        maps_.backends.erase(id);
      }
      touched.backends.insert(id);
    }
  }
  for (const xlb_service_key& key : it->second.wanted) {
    auto w = wanters_.find(key);
    if (w != wanters_.end()) {
      w->second.erase(name);
      if (w->second.empty()) {
        wanters_.erase(w);
      }
    }
  }
  services_.erase(it);
}

Result<TouchedEntries> DesiredStateTracker::Update(const Model& model,
                                                   const std::set<NamespacedName>& changed,
                                                   const ServicePlanner& plan_of) {
  if (!IsPrime(maglev_size_)) {
    return Error{EINVAL, "maglev_size " + std::to_string(maglev_size_) + " is not prime"};
  }
  TouchedEntries touched;
  Group group = GroupOf(model, changed);
  const Before before = DropGroup(group, touched);
  std::vector<Claim> claims = ClaimKeys(model, group);
  XLB_TRY(ReadPlans(plan_of, claims));
  XLB_TRY(AssignBackendIds(claims));
  XLB_TRY(AssignServiceIds(claims, before.ids));
  Emit(model, claims, group, touched);
  Record(model, group, before);
  TrackPeers(model, group, touched);
  return touched;
}

void DesiredStateTracker::TrackPeers(const Model& model, const Group& group,
                                     TouchedEntries& touched) {
  for (const auto& [name, record] : group) {
    // Every node address the service's endpoints name, once, with its cluster's id.
    PeerSet now;
    if (model.FindService(name) != nullptr) {
      for (const Endpoint& e : model.EndpointsOf(name)) {
        if (e.node_address) {
          const Cluster* cluster = model.FindCluster(e.cluster);
          now.emplace(PeerKey(*e.node_address), PeerOf(cluster));
        }
      }
    }
    std::vector<xlb_peer_key>& was = peers_of_[name];
    Repeer(was, now, touched);
    if (was.empty()) {
      peers_of_.erase(name);
    }
  }
}

TouchedEntries DesiredStateTracker::UpdateNodePeers(const Model& model) {
  TouchedEntries touched;
  PeerSet now;
  for (const auto& [cluster, addresses] : model.node_addresses()) {
    for (const IpAddress& address : addresses) {
      now.emplace(PeerKey(address), PeerOf(model.FindCluster(cluster)));
    }
  }
  Repeer(node_peers_, now, touched);
  return touched;
}

void DesiredStateTracker::Repeer(std::vector<xlb_peer_key>& was, const PeerSet& now,
                                 TouchedEntries& touched) {
  for (const auto& [key, peer] : now) {
    if (peer_refs_[key]++ == 0) {
      maps_.peers[key] = peer;  // the first owner to name it says which cluster
      touched.peers.insert(key);
    }
  }
  for (const xlb_peer_key& key : was) {
    auto it = peer_refs_.find(key);
    if (it != peer_refs_.end() && --it->second == 0) {
      peer_refs_.erase(it);
      maps_.peers.erase(key);
      touched.peers.insert(key);
    }
  }
  was.clear();
  for (const auto& [key, peer] : now) {
    was.push_back(key);
  }
}

DesiredStateTracker::Group DesiredStateTracker::GroupOf(
    const Model& model, const std::set<NamespacedName>& changed) const {
  Group group;
  std::deque<NamespacedName> queue(changed.begin(), changed.end());
  auto enqueue_wanters = [&](const xlb_service_key& key) {
    auto w = wanters_.find(key);
    if (w != wanters_.end()) {
      for (const NamespacedName& other : w->second) {
        if (group.count(other) == 0) {
          queue.push_back(other);
        }
      }
    }
  };
  while (!queue.empty()) {
    NamespacedName name = std::move(queue.front());
    queue.pop_front();
    if (group.count(name) != 0) {
      continue;
    }
    const std::vector<xlb_service_key>& keys = group[name].wanted = WantedKeys(model, name);
    for (const xlb_service_key& key : keys) {
      enqueue_wanters(key);
    }
    if (auto old = services_.find(name); old != services_.end()) {
      for (const xlb_service_key& key : old->second.wanted) {
        enqueue_wanters(key);
      }
    }
  }
  return group;
}

DesiredStateTracker::Before DesiredStateTracker::DropGroup(const Group& group,
                                                           TouchedEntries& touched) {
  Before before;
  for (const auto& [name, unused] : group) {
    auto old = services_.find(name);
    if (old == services_.end()) {
      continue;
    }
    // Its ids as the state has them: a failed sync may not have written them to the maps yet.
    for (const DesiredService& d : old->second.tables) {
      for (const xlb_service_key& key : d.keys) {
        before.ids[key] = d.id;
      }
    }
    before.problems[name] = std::move(old->second.problems);
    Drop(name, touched);
  }
  return before;
}

std::vector<DesiredStateTracker::Claim> DesiredStateTracker::ClaimKeys(const Model& model,
                                                                       Group& group) {
  std::vector<Claim> claims;
  std::set<xlb_service_key, AbiLess> claimed;
  for (auto& [name, record] : group) {
    const Service* service = model.FindService(name);
    if (service == nullptr) {
      continue;
    }
    const std::vector<IpFamily> families = FamiliesOf(model, *service);
    size_t plan = 0;
    const std::vector<FrontendScope> scopes = ScopesOf(*service);
    for (const ServicePort& port : service->ports) {
      for (const IpFamily family : families) {
        for (const FrontendScope scope : scopes) {
          Claim c{DesiredService{XLB_ID_NONE, name, port, family, {}, {}, scope, {}, {}},
                  0,
                  plan++,
                  false,
                  {},
                  {}};
          if (!Balanced(port)) {
            if (scope != FrontendScope::kExternal) {  // said once per port and family
              record.problems.push_back(c.table.Name() + ": only TCP and UDP are balanced");
            }
            continue;
          }
          for (const Frontend& vip : VipFrontends(*service, port, family, scope)) {
            if (!claimed.insert(vip.key).second) {
              record.problems.push_back(c.table.Name() + ": VIP " + vip.address.ToString() +
                                        " is already another service's");
              continue;
            }
            c.table.keys.push_back(vip.key);
          }
          // An external scope may have NodePorts alone; they are claimed below.
          if (c.table.keys.empty() && scope != FrontendScope::kExternal) {
            record.problems.push_back(c.table.Name() + ": no VIP of its family");
            continue;
          }
          c.vip_count = c.table.keys.size();
          claims.push_back(std::move(c));
        }
      }
    }
  }
  // After every VIP, so that a VIP always wins over a NodePort key that happens to equal it.
  for (Claim& c : claims) {
    const ServicePort& port = c.table.port;
    for (const Frontend& node : NodePortFrontends(model, port, c.table.family, c.table.scope)) {
      if (Contains(c.table.keys, node.key)) {
        continue;  // a VIP of its own that is also the node's address, on the same port
      }
      if (!claimed.insert(node.key).second) {
        const std::string host = node.address.family() == IpFamily::kIPv6
                                     ? "[" + node.address.ToString() + "]"
                                     : node.address.ToString();
        group[c.table.service].problems.push_back(c.table.Name() + ": NodePort " + host + ":" +
                                                  std::to_string(port.node_port) +
                                                  " is already another service's");
        continue;
      }
      c.table.keys.push_back(node.key);
    }
  }
  // An external scope without a frontend (no external IP, LoadBalancer IP or NodePort).
  std::erase_if(claims, [](const Claim& c) { return c.table.keys.empty(); });
  return claims;
}

Result<void> DesiredStateTracker::ReadPlans(const ServicePlanner& plan_of,
                                            std::vector<Claim>& claims) {
  // One service at a time: only what the tables need is kept of its plans. A long list (the
  // first plan names every service: 10,000 of them took ~280 ms) is read by two planners,
  // each a run of whole services; the claims each fills are its own, so the result does not
  // depend on the threads. When both fail, this thread's error (the earlier claims') is
  // reported.
  auto read = [&](size_t begin, size_t end) -> Result<void> {
    for (size_t i = begin; i < end;) {
      const NamespacedName& name = claims[i].table.service;
      const std::vector<ServiceBackends> plans = plan_of(name);
      for (; i < end && claims[i].table.service == name; ++i) {
        Claim& c = claims[i];
        if (c.plan >= plans.size() || plans[c.plan].port != c.table.port ||
            plans[c.plan].family != c.table.family || plans[c.plan].scope != c.table.scope) {
          return Error{EINVAL, c.table.Name() + ": the planner's plans are not PlanService's"};
        }
        const ServiceBackends& plan = plans[c.plan];
        c.rejects = plan.rejects;
        c.backends.reserve(plan.backends.size());
        c.members.reserve(plan.backends.size());
        for (const WeightedBackend& b : plan.backends) {
          c.backends.push_back(ToAbiBackend(b));
          c.members.push_back(MaglevBackend{XLB_ID_NONE, b.key, b.weight});
        }
      }
    }
    return {};
  };
  constexpr size_t kShared = 512;  // fewer claims are read on this thread alone
  if (claims.size() < kShared) {
    return read(0, claims.size());
  }
  // Claims of one service are next to each other (ClaimKeys): split between two services.
  size_t split = claims.size() / 2;
  while (split < claims.size() && claims[split].table.service == claims[split - 1].table.service) {
    ++split;
  }
  Result<void> other_read;
  std::thread other([&] { other_read = read(split, claims.size()); });
  Result<void> mine = read(0, split);
  other.join();
  XLB_TRY(std::move(mine));
  return other_read;
}

Result<void> DesiredStateTracker::AssignBackendIds(std::vector<Claim>& claims) {
  size_t listed = 0;
  for (const Claim& c : claims) {
    listed += c.backends.size();
  }
  ids_.ReserveBackends(listed);
  // Returning backends first (none on a first plan: nothing owns an id yet).
  if (ids_.KnowsBackends()) {
    for (Claim& c : claims) {
      for (size_t j = 0; j < c.backends.size(); ++j) {
        if (auto id = ids_.ListReturningBackend(BackendIdentity::Of(c.backends[j]))) {
          c.members[j].id = *id;
        }
      }
    }
  }
  for (Claim& c : claims) {
    for (size_t j = 0; j < c.backends.size(); ++j) {
      if (c.members[j].id == XLB_ID_NONE) {
        auto id = ids_.ListBackend(BackendIdentity::Of(c.backends[j]));
        if (!id.ok()) {
          return std::move(id).take_error();
        }
        c.members[j].id = *id;
      }
    }
  }
  return {};
}

Result<void> DesiredStateTracker::AssignServiceIds(std::vector<Claim>& claims,
                                                   const ServiceIdOfKey& before) {
  for (Claim& c : claims) {
    if (auto id = ids_.UseReturningService(c.table.keys, before)) {
      c.table.id = *id;
    }
  }
  for (Claim& c : claims) {
    if (c.table.id == XLB_ID_NONE) {
      auto id = ids_.UseNewService();
      if (!id.ok()) {
        return std::move(id).take_error();
      }
      c.table.id = *id;
    }
  }
  return {};
}

void DesiredStateTracker::Emit(const Model& model, std::vector<Claim>& claims, Group& group,
                               TouchedEntries& touched) {
  for (Claim& c : claims) {
    DesiredService& d = c.table;
    Tracked& record = group[d.service];
    uint32_t taking_flows = 0;
    d.backend_ids.reserve(c.members.size());
    for (size_t j = 0; j < c.members.size(); ++j) {
      const uint32_t id = c.members[j].id;
      // New ids are handed out in ascending order: with the end as the hint, a full plan
      // appends each of its 300,000 backends in constant time instead of looking it up.
      const size_t known = maps_.backends.size();
      const auto listed = maps_.backends.try_emplace(maps_.backends.end(), id, c.backends[j]);
      const bool first = maps_.backends.size() != known;
      if (!first && !AbiEqual(listed->second, c.backends[j])) {
        record.problems.push_back("backend " + c.members[j].key +
                                  ": reached differently by two services");
      }
      touched.backends.insert(id);
      d.backend_ids.push_back(id);
      taking_flows += c.members[j].weight > 0 ? 1 : 0;
    }
    c.backends = {};
    TableRecipe& recipe = maps_.tables[d.id];
    recipe.members = std::move(c.members);
    recipe.size = maglev_size_;
    recipe.Seal();
    touched.tables.insert(d.id);

    const Service& service = *model.FindService(d.service);
    const xlb_service value = ServiceValue(service, d.id, taking_flows, c.rejects);
    const std::vector<xlb_src_range_key> ranges = SourceRangeKeys(service, d.id, d.family);
    bool filtered = false;
    for (size_t k = 0; k < d.keys.size(); ++k) {
      xlb_service& entry = maps_.services[d.keys[k]] = value;
      if (k >= c.vip_count) {
        entry.flags |= XLB_SVC_F_NODE_PORT;  // its answers are routed by xlb (maps/xlb_abi.h)
      } else if (!ranges.empty() && IsLoadBalancerKey(service, d.keys[k])) {
        entry.flags |= XLB_SVC_F_SOURCE_RANGES;
        filtered = true;
      }
      touched.services.insert(d.keys[k]);
      CountVip(d.keys[k], +1, touched);
    }
    if (filtered) {
      for (const xlb_src_range_key& key : ranges) {
        maps_.source_ranges.insert(key);
        touched.source_ranges.insert(key);
        d.source_ranges.push_back(key);
      }
    }
    if (value.flags & XLB_SVC_F_AFFINITY) {
      const TableRecipe& members = maps_.tables[d.id];
      for (const MaglevBackend& m : members.members) {
        if (m.weight > 0) {
          const xlb_affinity_match_key key{d.id, m.id};
          maps_.affinity_match.insert(key);
          touched.affinity_match.insert(key);
          d.affinity_match.push_back(key);
        }
      }
    }
    record.tables.push_back(std::move(d));
  }
}

void DesiredStateTracker::Record(const Model& model, Group& group, const Before& before) {
  last_group_.clear();
  for (auto& [name, record] : group) {
    last_group_.insert(name);
    auto old = before.problems.find(name);
    if (old == before.problems.end() ? !record.problems.empty() : old->second != record.problems) {
      ++problems_version_;
    }
    for (const xlb_service_key& key : record.wanted) {
      wanters_[key].insert(name);
    }
    if (model.FindService(name) == nullptr) {
      continue;  // gone
    }
    Tracked& kept = services_[name] = std::move(record);
    for (const DesiredService& d : kept.tables) {
      by_id_[d.id] = &d;
    }
  }
}

// ---- BuildDesiredState ------------------------------------------------------------------

Result<DesiredState> BuildDesiredState(const Model& model, std::span<const ServiceBackends> plans,
                                       const MapContents& held, const DesiredMaps* pending,
                                       StoreLimits limits) {
  std::map<NamespacedName, std::vector<ServiceBackends>> plans_of;
  std::vector<std::string> strays;
  for (const ServiceBackends& plan : plans) {
    if (model.FindService(plan.service) == nullptr) {
      const DesiredService d{XLB_ID_NONE, plan.service, plan.port, plan.family, {}, {}};
      strays.push_back(d.Name() + ": not in the model");
      continue;
    }
    plans_of[plan.service].push_back(plan);
  }
  std::set<NamespacedName> names;
  for (const auto& [name, unused] : plans_of) {
    names.insert(names.end(), name);
  }
  DesiredStateTracker tracker(held, limits, pending);
  // Update() asks once per service: its plans can move out.
  auto planned = tracker.Update(model, names, [&plans_of](const NamespacedName& name) {
    return std::move(plans_of.at(name));
  });
  if (!planned.ok()) {
    return std::move(planned).take_error();
  }
  tracker.UpdateNodePeers(model);
  DesiredState out = std::move(tracker).TakeState();
  out.problems.insert(out.problems.end(), strays.begin(), strays.end());
  return out;
}

}  // namespace xlb
