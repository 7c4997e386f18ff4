#include "userspace/sync/desired_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "maps/xlb_hash.h"
#include "userspace/planner/maglev.h"

namespace xlb {
namespace {

bool Valid(const xlb_backend& b) {
  return (b.flags & XLB_BE_F_VALID) != 0;
}

// The lowest id in 1..limit-1 that `taken` and `given` both lack, from *cursor on.
std::optional<uint32_t> NextFree(uint32_t* cursor, uint32_t limit, const std::set<uint32_t>& taken,
                                 const std::set<uint32_t>& given) {
  for (; *cursor < limit; ++*cursor) {
    if (taken.count(*cursor) == 0 && given.count(*cursor) == 0) {
      return (*cursor)++;
    }
  }
  return std::nullopt;
}

}  // namespace

xlb_service_key ServiceKeyOf(const IpAddress& address, Protocol protocol, uint16_t port) {
  xlb_service_key key{};
  address.ToAbiWords(key.addr);
  key.port = htons(port);
  key.proto = static_cast<uint8_t>(protocol);
  key.family = static_cast<uint8_t>(address.family());
  return key;
}

BackendIdentity BackendIdentity::Of(const xlb_backend& backend) {
  BackendIdentity id;
  id.cluster_id = backend.cluster_id;
  id.family = backend.family;
  std::copy(std::begin(backend.addr), std::end(backend.addr), id.addr.begin());
  id.port = backend.port;
  return id;
}

IdAllocator::IdAllocator(const MapContents& held, const DesiredMaps* pending, StoreLimits limits)
    : limits_(limits) {
  for (const auto& [id, backend] : held.backends) {
    backend_owner_[id] = BackendIdentity::Of(backend);
    if (Valid(backend)) {
      backends_taken_.insert(id);
    }
  }
  for (const auto& [key, service] : held.services) {
    service_of_key_[key] = service.id;
    services_taken_.insert(service.id);
  }
  for (const auto& [id, digest] : held.tables) {
    services_taken_.insert(id);
  }
  if (pending != nullptr) {
    for (const auto& [id, backend] : pending->backends) {
      backend_owner_[id] = BackendIdentity::Of(backend);
      backends_taken_.insert(id);
    }
    for (const auto& [key, service] : pending->services) {
      service_of_key_[key] = service.id;
      services_taken_.insert(service.id);
    }
    for (const auto& [id, recipe] : pending->tables) {
      services_taken_.insert(id);
    }
  }
}

Result<std::map<BackendIdentity, uint32_t>> IdAllocator::AssignBackends(
    const std::set<BackendIdentity>& identities) {
  // An identity may own several ids (re-added while its old id was still being drained): a
  // taken (valid) one first, then the lowest.
  std::map<BackendIdentity, uint32_t> known;
  for (const auto& [id, identity] : backend_owner_) {
    auto [it, inserted] = known.emplace(identity, id);
    if (!inserted && backends_taken_.count(it->second) == 0 && backends_taken_.count(id) != 0) {
      it->second = id;
    }
  }
  std::map<BackendIdentity, uint32_t> out;
  std::set<uint32_t> given;
  for (const BackendIdentity& identity : identities) {
    auto it = known.find(identity);
    if (it != known.end()) {
      out[identity] = it->second;
      given.insert(it->second);
    }
  }
  uint32_t cursor = 1;
  for (const BackendIdentity& identity : identities) {
    if (out.count(identity) != 0) {
      continue;
    }
    // Free: not valid in the maps, not pending, and not an id whose identity came back.
    const std::optional<uint32_t> id =
        NextFree(&cursor, limits_.max_backends, backends_taken_, given);
    if (!id) {
      return Error{ENOSPC,
                   "backend ids: all " + std::to_string(limits_.max_backends - 1) + " in use"};
    }
    out[identity] = *id;
    given.insert(*id);
  }
  return out;
}

Result<std::vector<uint32_t>> IdAllocator::AssignServices(
    const std::vector<std::vector<xlb_service_key>>& keys) {
  std::vector<uint32_t> out(keys.size(), XLB_ID_NONE);
  std::set<uint32_t> given;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (const xlb_service_key& key : keys[i]) {
      auto it = service_of_key_.find(key);
      if (it != service_of_key_.end() && given.count(it->second) == 0) {
        out[i] = it->second;
        given.insert(it->second);
        break;
      }
    }
  }
  uint32_t cursor = 1;
  for (uint32_t& id : out) {
    if (id != XLB_ID_NONE) {
      continue;
    }
    auto free = NextFree(&cursor, limits_.max_services, services_taken_, given);
    if (!free) {
      return Error{ENOSPC,
                   "service ids: all " + std::to_string(limits_.max_services - 1) + " in use"};
    }
    id = *free;
    given.insert(id);
  }
  return out;
}

void TableRecipe::Seal() {
  // The members in canonical order, so the fingerprint, like the table, does not depend on
  // the order the plan listed them in.
  std::vector<const MaglevBackend*> order;
  order.reserve(members.size());
  for (const MaglevBackend& m : members) {
    order.push_back(&m);
  }
  std::sort(order.begin(), order.end(), [](const MaglevBackend* a, const MaglevBackend* b) {
    return std::tie(a->key, a->id, a->weight) < std::tie(b->key, b->id, b->weight);
  });
  uint64_t h = 0xcbf29ce484222325ULL ^ size;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ULL;
    }
  };
  for (const MaglevBackend* m : order) {
    const uint64_t key_size = m->key.size();  // so "ab"+"c" and "a"+"bc" differ
    mix(&key_size, sizeof(key_size));
    mix(m->key.data(), m->key.size());
    mix(&m->id, sizeof(m->id));
    mix(&m->weight, sizeof(m->weight));
  }
  fingerprint = h;
}

Result<void> TableRecipe::Build(std::span<uint32_t> slots) const {
  return BuildMaglevTable(members, slots);
}

Result<MaglevSlots> TableRecipe::Build() const {
  return BuildMaglevTable(members, size);
}

bool TableRecipe::operator==(const TableRecipe& other) const {
  if (fingerprint != other.fingerprint || size != other.size ||
      members.size() != other.members.size()) {
    return false;
  }
  for (size_t i = 0; i < members.size(); ++i) {
    const MaglevBackend& a = members[i];
    const MaglevBackend& b = other.members[i];
    if (a.id != b.id || a.key != b.key || a.weight != b.weight) {
      return false;
    }
  }
  return true;
}

bool DesiredMaps::operator==(const DesiredMaps& other) const {
  auto same = [](const auto& a, const auto& b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
             return AbiEqual(x.first, y.first) && AbiEqual(x.second, y.second);
           });
  };
  return same(services, other.services) && same(backends, other.backends) &&
         tables == other.tables && vip_filter == other.vip_filter;
}

Result<MapContents> DesiredMaps::Contents() const {
  MapContents out;
  out.services = services;
  out.backends = backends;
  out.vip_filter = vip_filter;
  for (const auto& [id, recipe] : tables) {
    XLB_ASSIGN_OR_RETURN(const MaglevSlots slots, recipe.Build());
    out.tables[id] = TableDigest::Of(slots);
  }
  return out;
}

std::string DesiredService::Name() const {
  return service.ToString() + " " + std::to_string(port.port) + "/" +
         std::string(ToString(port.protocol)) + " " + std::string(ToString(family));
}

const DesiredService* DesiredState::Find(const NamespacedName& service, uint16_t port,
                                         IpFamily family) const {
  for (const DesiredService& s : services) {
    if (s.service == service && s.port.port == port && s.family == family) {
      return &s;
    }
  }
  return nullptr;
}

std::map<uint32_t, uint64_t> VipFilterWords(
    const std::map<xlb_service_key, xlb_service, AbiLess>& services) {
  std::map<uint32_t, uint64_t> words;
  for (const auto& [key, service] : services) {
    uint32_t word = 0;
    const uint64_t bit = xlb_vip_filter_pos(key.addr, &word);
    words[word] |= bit;
  }
  return words;
}

Result<DesiredState> BuildDesiredState(const Model& model, std::span<const ServiceBackends> plans,
                                       IdAllocator& ids, uint32_t maglev_size) {
  if (!IsPrime(maglev_size)) {
    return Error{EINVAL, "maglev_size " + std::to_string(maglev_size) + " is not prime"};
  }
  DesiredState out;

  // The services that get a table, with their VIP keys; a key two of them claim goes to the
  // first (in plan order: by name, port, family).
  std::set<xlb_service_key, AbiLess> claimed;
  std::set<xlb_service_key, AbiLess> node_port_keys;  // XLB_SVC_F_NODE_PORT
  std::vector<const ServiceBackends*> planned;
  std::vector<std::vector<xlb_service_key>> keys;
  for (const ServiceBackends& plan : plans) {
    DesiredService d{XLB_ID_NONE, plan.service, plan.port, plan.family, {}, {}};
    if (plan.port.protocol != Protocol::kTcp && plan.port.protocol != Protocol::kUdp) {
      out.problems.push_back(d.Name() + ": only TCP and UDP are balanced");
      continue;
    }
    const Service* service = model.FindService(plan.service);
    if (service == nullptr) {
      out.problems.push_back(d.Name() + ": not in the model");
      continue;
    }
    std::vector<xlb_service_key> own;
    for (const IpAddress& vip : service->Vips()) {
      if (vip.family() != plan.family) {
        continue;
      }
      const xlb_service_key key = ServiceKeyOf(vip, plan.port.protocol, plan.port.port);
      if (std::any_of(own.begin(), own.end(), [&](const auto& k) { return AbiEqual(k, key); })) {
        continue;  // the same address twice (ClusterIP also listed as external)
      }
      if (!claimed.insert(key).second) {
        out.problems.push_back(d.Name() + ": VIP " + vip.ToString() +
                               " is already another service's");
        continue;
      }
      own.push_back(key);
    }
    if (own.empty()) {
      out.problems.push_back(d.Name() + ": no VIP of its family");
      continue;
    }
    planned.push_back(&plan);
    keys.push_back(std::move(own));
    out.services.push_back(std::move(d));
  }
  // NodePorts: (node address, nodePort, protocol) for every node address of the port's
  // family, one more frontend of the same table. After every VIP, so that a VIP always wins
  // over a NodePort key that happens to equal it.
  for (size_t i = 0; i < planned.size(); ++i) {
    const ServicePort& port = planned[i]->port;
    if (port.node_port == 0) {
      continue;
    }
    for (const IpAddress& address : model.local_node().addresses) {
      if (address.family() != planned[i]->family) {
        continue;
      }
      const xlb_service_key key = ServiceKeyOf(address, port.protocol, port.node_port);
      std::vector<xlb_service_key>& own = keys[i];
      if (std::any_of(own.begin(), own.end(), [&](const auto& k) { return AbiEqual(k, key); })) {
        continue;  // a VIP of its own that is also the node's address, on the same port
      }
      if (!claimed.insert(key).second) {
        const std::string host = address.family() == IpFamily::kIPv6
                                     ? "[" + address.ToString() + "]"
                                     : address.ToString();
        out.problems.push_back(out.services[i].Name() + ": NodePort " + host + ":" +
                               std::to_string(port.node_port) + " is already another service's");
        continue;
      }
      own.push_back(key);
      node_port_keys.insert(key);
    }
  }

  // Backends, by identity; the first plan that lists one says how to reach it.
  std::map<BackendIdentity, xlb_backend> backends;
  for (const ServiceBackends* plan : planned) {
    for (const WeightedBackend& b : plan->backends) {
      const xlb_backend abi = ToAbiBackend(b);
      auto [it, inserted] = backends.emplace(BackendIdentity::Of(abi), abi);
      if (!inserted && !AbiEqual(it->second, abi)) {
        out.problems.push_back("backend " + b.key + ": reached differently by two services");
      }
    }
  }
  // The transient maps go as soon as they are used: at 300,000 backends each is tens of MB,
  // and they would otherwise all be alive at the peak.
  auto backend_ids = [&] {
    std::set<BackendIdentity> identities;
    for (const auto& [identity, abi] : backends) {
      identities.insert(identities.end(), identity);
    }
    return ids.AssignBackends(identities);
  }();
  if (!backend_ids.ok()) {
    return std::move(backend_ids).take_error();
  }
  for (const auto& [identity, abi] : backends) {
    out.maps.backends[backend_ids->at(identity)] = abi;
  }
  backends.clear();

  auto service_ids = ids.AssignServices(keys);
  if (!service_ids.ok()) {
    return std::move(service_ids).take_error();
  }
  for (size_t i = 0; i < planned.size(); ++i) {
    const ServiceBackends& plan = *planned[i];
    DesiredService& d = out.services[i];
    d.id = (*service_ids)[i];
    d.keys = keys[i];
    std::vector<MaglevBackend> members = ToMaglevBackends(plan, [&](const WeightedBackend& b) {
      return backend_ids->at(BackendIdentity::Of(ToAbiBackend(b)));
    });
    uint32_t taking_flows = 0;
    for (const MaglevBackend& m : members) {
      d.backend_ids.push_back(m.id);
      taking_flows += m.weight > 0 ? 1 : 0;
    }
    TableRecipe& recipe = out.maps.tables[d.id];
    recipe.members = std::move(members);
    recipe.size = maglev_size;
    recipe.Seal();

    const Service& service = *model.FindService(plan.service);
    xlb_service value{};
    value.id = d.id;
    if (service.affinity == SessionAffinity::kClientIP) {
      value.flags |= XLB_SVC_F_AFFINITY;
      value.affinity_timeout = service.affinity_timeout_s;
    }
    value.backend_count = taking_flows;
    for (const xlb_service_key& key : d.keys) {
      xlb_service& entry = out.maps.services[key] = value;
      if (node_port_keys.count(key) != 0) {
        entry.flags |= XLB_SVC_F_NODE_PORT;  // its answers are routed by xlb (maps/xlb_abi.h)
      }
    }
  }
  out.maps.vip_filter = VipFilterWords(out.maps.services);
  return out;
}

}  // namespace xlb
