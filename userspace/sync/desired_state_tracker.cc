#include "userspace/sync/desired_state_tracker.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <deque>

#include "maps/xlb_hash.h"
#include "userspace/planner/maglev.h"

namespace xlb {
namespace {

bool Balanced(const ServicePort& port) {
  return port.protocol == Protocol::kTcp || port.protocol == Protocol::kUdp;
}

// The VIP keys a service port asks for in one family, in BuildDesiredState's order (its own
// duplicates dropped).
std::vector<xlb_service_key> VipKeys(const Service& service, const ServicePort& port,
                                     IpFamily family) {
  std::vector<xlb_service_key> out;
  for (const IpAddress& vip : service.Vips()) {
    if (vip.family() != family) {
      continue;
    }
    const xlb_service_key key = ServiceKeyOf(vip, port.protocol, port.port);
    if (std::none_of(out.begin(), out.end(), [&](const auto& k) { return AbiEqual(k, key); })) {
      out.push_back(key);
    }
  }
  return out;
}

std::vector<xlb_service_key> NodePortKeys(const Model& model, const ServicePort& port,
                                          IpFamily family) {
  std::vector<xlb_service_key> out;
  if (port.node_port == 0) {
    return out;
  }
  for (const IpAddress& address : model.local_node().addresses) {
    if (address.family() == family) {
      out.push_back(ServiceKeyOf(address, port.protocol, port.node_port));
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
      for (const auto& k : VipKeys(*service, port, family)) {
        out.push_back(k);
      }
      for (const auto& k : NodePortKeys(model, port, family)) {
        out.push_back(k);
      }
    }
  }
  return out;
}

// The VIP of a service a key was made from.
const IpAddress& VipOf(const Service& service, const xlb_service_key& key) {
  for (const auto* list : {&service.cluster_ips, &service.clusterset_ips, &service.external_ips,
                           &service.load_balancer_ips}) {
    for (const IpAddress& address : *list) {
      uint32_t words[4] = {};
      address.ToAbiWords(words);
      if (address.family() == static_cast<IpFamily>(key.family) &&
          std::equal(std::begin(words), std::end(words), std::begin(key.addr))) {
        return address;
      }
    }
  }
  return service.cluster_ips.front();
}

// The local node's address a NodePort key was made from.
const IpAddress& NodeAddressOf(const Model& model, const xlb_service_key& key) {
  for (const IpAddress& address : model.local_node().addresses) {
    uint32_t words[4] = {};
    address.ToAbiWords(words);
    if (std::equal(std::begin(words), std::end(words), std::begin(key.addr))) {
      return address;
    }
  }
  return model.local_node().addresses.front();
}

bool Contains(const std::vector<xlb_service_key>& keys, const xlb_service_key& key) {
  return std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return AbiEqual(k, key); });
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
      out.push_back(
          PlanServicePort(model, service, port, family, route != nullptr ? *route : fallback));
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
  return backends.empty() && tables.empty() && services.empty() && vip_words.empty();
}

void TouchedEntries::Merge(const TouchedEntries& other) {
  backends.Merge(other.backends);
  tables.Merge(other.tables);
  services.insert(other.services.begin(), other.services.end());
  vip_words.Merge(other.vip_words);
}

void TouchedEntries::AddAll(const MapContents& contents) {
  for (const auto& [id, backend] : contents.backends) {
    backends.insert(id);
  }
  for (const auto& [id, digest] : contents.tables) {
    tables.insert(id);
  }
  for (const auto& [key, service] : contents.services) {
    services.insert(services.end(), key);
  }
  for (const auto& [word, bits] : contents.vip_filter) {
    vip_words.insert(word);
  }
}

void TouchedEntries::AddAll(const DesiredMaps& maps) {
  for (const auto& [id, backend] : maps.backends) {
    backends.insert(id);
  }
  for (const auto& [id, recipe] : maps.tables) {
    tables.insert(id);
  }
  for (const auto& [key, service] : maps.services) {
    services.insert(services.end(), key);
  }
  for (const auto& [word, bits] : maps.vip_filter) {
    vip_words.insert(word);
  }
}

// ---- IdPool -----------------------------------------------------------------------------

IdPool::IdPool(uint32_t limit) : words_((limit + 63) / 64, 0), limit_(limit) {
  if (limit_ > 0) {
    words_[0] |= 1;  // id 0 is never handed out
  }
}

bool IdPool::taken(uint32_t id) const {
  return id >= limit_ || (words_[id / 64] >> (id % 64) & 1) != 0;
}

void IdPool::Take(uint32_t id) {
  if (id < limit_) {
    words_[id / 64] |= uint64_t{1} << (id % 64);
  }
}

void IdPool::Free(uint32_t id) {
  if (id == 0 || id >= limit_) {
    return;
  }
  words_[id / 64] &= ~(uint64_t{1} << (id % 64));
  lowest_maybe_free_ = std::min(lowest_maybe_free_, id);
}

std::optional<uint32_t> IdPool::TakeLowest() {
  for (uint32_t w = lowest_maybe_free_ / 64; w < words_.size(); ++w) {
    if (words_[w] == ~uint64_t{0}) {
      continue;
    }
    const uint32_t id = w * 64 + static_cast<uint32_t>(std::countr_one(words_[w]));
    if (id >= limit_) {
      break;
    }
    Take(id);
    lowest_maybe_free_ = id + 1;
    return id;
  }
  lowest_maybe_free_ = limit_;
  return std::nullopt;
}

// ---- DesiredStateTracker ----------------------------------------------------------------

DesiredStateTracker::DesiredStateTracker(const MapContents& held, StoreLimits limits)
    : held_(held),
      limits_(limits),
      backend_refs_(limits.max_backends, 0),
      identity_of_id_(limits.max_backends),
      vip_bits_(XLB_VIP_FILTER_WORDS),
      backend_ids_(limits.max_backends),
      service_ids_(limits.max_services) {
  // IdAllocator's rules: every id the maps hold is taken until a sync has dropped it (so the
  // ids of what the first update no longer wants are released right away); an identity owning
  // several ids keeps a valid one, else the lowest.
  for (const auto& [id, backend] : held_.backends) {
    const BackendIdentity identity = BackendIdentity::Of(backend);
    const bool valid = (backend.flags & XLB_BE_F_VALID) != 0;
    if (id >= identity_of_id_.size()) {
      continue;  // beyond this datapath's limit: never handed out again
    }
    auto [it, inserted] = id_of_identity_.emplace(identity, id);
    if (!inserted) {
      const auto known = held_.backends.find(it->second);
      const bool known_valid =
          known != held_.backends.end() && (known->second.flags & XLB_BE_F_VALID) != 0;
      if (valid && !known_valid) {
        identity_of_id_[it->second] = {};
        it->second = id;
      } else {
        continue;
      }
    }
    identity_of_id_[id] = identity;
  }
  for (const auto& [id, backend] : held_.backends) {
    if ((backend.flags & XLB_BE_F_VALID) != 0) {
      backend_ids_.Take(id);
      released_backends_.push_back(id);
    }
  }
  for (const auto& [key, service] : held_.services) {
    service_ids_.Take(service.id);
    released_services_.push_back(service.id);
  }
  for (const auto& [id, digest] : held_.tables) {
    service_ids_.Take(id);
    released_services_.push_back(id);
  }
}

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
    released_services_.push_back(d.id);
    for (const xlb_service_key& key : d.keys) {
      maps_.services.erase(key);
      touched.services.insert(key);
      CountVip(key, -1, touched);
    }
    for (const uint32_t id : d.backend_ids) {
      if (--backend_refs_[id] == 0) {
        maps_.backends.erase(id);
        released_backends_.push_back(id);
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

Result<uint32_t> DesiredStateTracker::BackendId(const BackendIdentity& identity) {
  auto known = id_of_identity_.find(identity);
  if (known != id_of_identity_.end()) {
    backend_ids_.Take(known->second);  // its own old id: safe to take back
    return known->second;
  }
  const std::optional<uint32_t> id = backend_ids_.TakeLowest();
  if (!id) {
    return Error{ENOSPC,
                 "backend ids: all " + std::to_string(limits_.max_backends - 1) + " in use"};
  }
  // The id may have belonged to an identity that is gone: that one cannot take it back now.
  BackendIdentity& owner = identity_of_id_[*id];
  if (owner != BackendIdentity{}) {
    auto old = id_of_identity_.find(owner);
    if (old != id_of_identity_.end() && old->second == *id) {
      id_of_identity_.erase(old);
    }
  }
  owner = identity;
  id_of_identity_[identity] = *id;
  return *id;
}

size_t DesiredStateTracker::IdentityHash::operator()(const BackendIdentity& id) const {
  uint64_t h =
      0x9e3779b97f4a7c15ULL ^ (uint64_t{id.cluster_id} << 24 | uint64_t{id.family} << 16 | id.port);
  for (const uint32_t w : id.addr) {
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return static_cast<size_t>(h);
}

Result<TouchedEntries> DesiredStateTracker::Update(const Model& model,
                                                   const std::set<NamespacedName>& changed,
                                                   const ServicePlanner& plan_of) {
  const uint32_t maglev_size = limits_.maglev_size;
  if (!IsPrime(maglev_size)) {
    return Error{EINVAL, "maglev_size " + std::to_string(maglev_size) + " is not prime"};
  }
  TouchedEntries touched;

  // 1. The group: the changed services and, transitively, every service that wants or wanted
  // a key one of the group wants or wanted. The keys come from the model alone.
  std::map<NamespacedName, std::vector<xlb_service_key>> group;  // name -> keys it wants
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
    const std::vector<xlb_service_key>& keys = group[name] = WantedKeys(model, name);
    for (const xlb_service_key& key : keys) {
      enqueue_wanters(key);
    }
    if (auto old = services_.find(name); old != services_.end()) {
      for (const xlb_service_key& key : old->second.wanted) {
        enqueue_wanters(key);
      }
    }
  }

  // Prior ids of the group's keys (a failed sync may not have written them yet).
  std::map<xlb_service_key, uint32_t, AbiLess> prior_id;
  for (const auto& [name, unused] : group) {
    if (auto old = services_.find(name); old != services_.end()) {
      for (const DesiredService& d : old->second.tables) {
        for (const xlb_service_key& key : d.keys) {
          prior_id[key] = d.id;
        }
      }
    }
  }

  // 2. What the group contributed goes.
  std::map<NamespacedName, std::vector<std::string>> old_problems;
  for (const auto& [name, unused] : group) {
    if (auto old = services_.find(name); old != services_.end()) {
      old_problems[name] = old->second.problems;
    }
    Drop(name, touched);
  }

  // 3. The group's tables and their keys, as BuildDesiredState claims them: in name, port and
  // family order (the order of PlanService), VIPs first, then NodePorts.
  struct Entry {
    const NamespacedName* name;
    size_t plan;  // index into PlanService's plans of its service
    DesiredService d;
    std::vector<xlb_service_key> keys;
    std::vector<xlb_backend> backends;   // of the plan, in its order
    std::vector<MaglevBackend> members;  // the same, as the table takes them
  };
  std::vector<Entry> entries;
  std::map<NamespacedName, Tracked> fresh;
  std::set<xlb_service_key, AbiLess> claimed;
  for (auto& [name, keys] : group) {
    Tracked& t = fresh[name];
    t.wanted = std::move(keys);
    const Service* service = model.FindService(name);
    if (service == nullptr) {
      continue;
    }
    const std::vector<IpFamily> families = FamiliesOf(model, *service);
    size_t plan = 0;
    for (const ServicePort& port : service->ports) {
      for (const IpFamily family : families) {
        DesiredService d{XLB_ID_NONE, name, port, family, {}, {}};
        const size_t index = plan++;
        if (!Balanced(port)) {
          t.problems.push_back(d.Name() + ": only TCP and UDP are balanced");
          continue;
        }
        std::vector<xlb_service_key> own;
        for (const xlb_service_key& key : VipKeys(*service, port, family)) {
          if (!claimed.insert(key).second) {
            const IpAddress& vip = VipOf(*service, key);
            t.problems.push_back(d.Name() + ": VIP " + vip.ToString() +
                                 " is already another service's");
            continue;
          }
          own.push_back(key);
        }
        if (own.empty()) {
          t.problems.push_back(d.Name() + ": no VIP of its family");
          continue;
        }
        entries.push_back(Entry{&name, index, std::move(d), std::move(own), {}, {}});
      }
    }
  }
  std::set<xlb_service_key, AbiLess> node_port_keys;  // XLB_SVC_F_NODE_PORT
  for (Entry& e : entries) {
    const ServicePort& port = e.d.port;
    for (const xlb_service_key& key : NodePortKeys(model, port, e.d.family)) {
      if (Contains(e.keys, key)) {
        continue;  // a VIP of its own that is also the node's address, on the same port
      }
      if (!claimed.insert(key).second) {
        const IpAddress& address = NodeAddressOf(model, key);
        const std::string host = address.family() == IpFamily::kIPv6
                                     ? "[" + address.ToString() + "]"
                                     : address.ToString();
        fresh[*e.name].problems.push_back(e.d.Name() + ": NodePort " + host + ":" +
                                          std::to_string(port.node_port) +
                                          " is already another service's");
        continue;
      }
      e.keys.push_back(key);
      node_port_keys.insert(key);
    }
  }

  // 4. The plans, one service at a time (only what the tables need is kept).
  for (size_t i = 0; i < entries.size();) {
    const NamespacedName& name = *entries[i].name;
    const std::vector<ServiceBackends> plans = plan_of(name);
    for (; i < entries.size() && *entries[i].name == name; ++i) {
      Entry& e = entries[i];
      if (e.plan >= plans.size() || plans[e.plan].port != e.d.port ||
          plans[e.plan].family != e.d.family) {
        return Error{EINVAL, e.d.Name() + ": the planner's plans are not PlanService's"};
      }
      const ServiceBackends& plan = plans[e.plan];
      e.backends.reserve(plan.backends.size());
      e.members.reserve(plan.backends.size());
      for (const WeightedBackend& b : plan.backends) {
        e.backends.push_back(ToAbiBackend(b));
        e.members.push_back(MaglevBackend{XLB_ID_NONE, b.key, b.weight});
      }
    }
  }

  // 5. Backend ids: returning backends take their own first, then new ones the lowest free.
  for (Entry& e : entries) {
    for (size_t j = 0; j < e.backends.size(); ++j) {
      const BackendIdentity identity = BackendIdentity::Of(e.backends[j]);
      if (id_of_identity_.count(identity) != 0) {
        e.members[j].id = *BackendId(identity);
      }
    }
  }
  for (Entry& e : entries) {
    for (size_t j = 0; j < e.backends.size(); ++j) {
      if (e.members[j].id == XLB_ID_NONE) {
        auto id = BackendId(BackendIdentity::Of(e.backends[j]));
        if (!id.ok()) {
          return std::move(id).take_error();
        }
        e.members[j].id = *id;
      }
    }
  }

  // 6. Service ids: the id of the first of its keys that one was known by, else the lowest
  // free.
  std::set<uint32_t> given;
  std::vector<uint32_t*> unassigned;
  for (Entry& e : entries) {
    for (const xlb_service_key& key : e.keys) {
      uint32_t id = XLB_ID_NONE;
      if (auto p = prior_id.find(key); p != prior_id.end()) {
        id = p->second;
      } else if (auto h = held_.services.find(key); h != held_.services.end()) {
        id = h->second.id;
      }
      if (id != XLB_ID_NONE && given.count(id) == 0 && maps_.tables.count(id) == 0) {
        e.d.id = id;
        given.insert(id);
        service_ids_.Take(id);
        break;
      }
    }
    if (e.d.id == XLB_ID_NONE) {
      unassigned.push_back(&e.d.id);
    }
  }
  for (uint32_t* id : unassigned) {
    const std::optional<uint32_t> free = service_ids_.TakeLowest();
    if (!free) {
      return Error{ENOSPC,
                   "service ids: all " + std::to_string(limits_.max_services - 1) + " in use"};
    }
    *id = *free;
  }

  // 7. Backends, tables and service entries into the state. The first service (in plan order,
  // or outside the group) that lists a backend says how it is reached.
  for (Entry& e : entries) {
    DesiredService& d = e.d;
    uint32_t taking_flows = 0;
    d.backend_ids.reserve(e.members.size());
    for (size_t j = 0; j < e.members.size(); ++j) {
      const uint32_t id = e.members[j].id;
      if (backend_refs_[id] == 0) {
        maps_.backends[id] = e.backends[j];
      } else if (!AbiEqual(maps_.backends[id], e.backends[j])) {
        fresh[*e.name].problems.push_back("backend " + e.members[j].key +
                                          ": reached differently by two services");
      }
      ++backend_refs_[id];
      touched.backends.insert(id);
      d.backend_ids.push_back(id);
      taking_flows += e.members[j].weight > 0 ? 1 : 0;
    }
    e.backends = {};
    TableRecipe& recipe = maps_.tables[d.id];
    recipe.members = std::move(e.members);
    recipe.size = maglev_size;
    recipe.Seal();
    touched.tables.insert(d.id);

    const Service& service = *model.FindService(*e.name);
    xlb_service value{};
    value.id = d.id;
    if (service.affinity == SessionAffinity::kClientIP) {
      value.flags |= XLB_SVC_F_AFFINITY;
      value.affinity_timeout = service.affinity_timeout_s;
    }
    value.backend_count = taking_flows;
    for (const xlb_service_key& key : e.keys) {
      xlb_service& entry = maps_.services[key] = value;
      if (node_port_keys.count(key) != 0) {
        entry.flags |= XLB_SVC_F_NODE_PORT;  // its answers are routed by xlb (maps/xlb_abi.h)
      }
      touched.services.insert(key);
      CountVip(key, +1, touched);
    }
    d.keys = std::move(e.keys);
    fresh[*e.name].tables.push_back(std::move(d));
  }

  // 8. The group's records.
  last_group_.clear();
  for (auto& [name, t] : fresh) {
    last_group_.insert(name);
    auto before = old_problems.find(name);
    if (before == old_problems.end() ? !t.problems.empty() : before->second != t.problems) {
      ++problems_version_;
    }
    for (const xlb_service_key& key : t.wanted) {
      wanters_[key].insert(name);
    }
    if (model.FindService(name) == nullptr) {
      continue;  // gone
    }
    Tracked& kept = services_[name] = std::move(t);
    for (const DesiredService& d : kept.tables) {
      by_id_[d.id] = &d;
    }
  }
  return touched;
}

void DesiredStateTracker::Commit() {
  for (const uint32_t id : released_backends_) {
    if (backend_refs_[id] != 0) {
      continue;  // listed again
    }
    auto held = held_.backends.find(id);
    if (held != held_.backends.end() && (held->second.flags & XLB_BE_F_VALID) != 0) {
      continue;  // still valid in the maps (not synced after all)
    }
    backend_ids_.Free(id);
  }
  released_backends_.clear();
  for (const uint32_t id : released_services_) {
    if (maps_.tables.count(id) == 0 && held_.tables.count(id) == 0) {
      service_ids_.Free(id);
    }
  }
  released_services_.clear();
}

}  // namespace xlb
