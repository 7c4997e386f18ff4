#include "userspace/sync/desired_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <tuple>

#include "maps/xlb_hash.h"
#include "userspace/planner/maglev.h"

namespace xlb {

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
  auto same_keys = [](const auto& a, const auto& b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](const auto& x, const auto& y) { return AbiEqual(x, y); });
  };
  return same(services, other.services) && same(backends, other.backends) &&
         tables == other.tables && vip_filter == other.vip_filter && same(peers, other.peers) &&
         same_keys(affinity_match, other.affinity_match) &&
         same_keys(source_ranges, other.source_ranges);
}

Result<MapContents> DesiredMaps::Contents() const {
  MapContents out;
  out.services = services;
  out.backends = backends;
  out.vip_filter = vip_filter;
  out.peers = peers;
  out.affinity_match = affinity_match;
  out.source_ranges = source_ranges;
  for (const auto& [id, recipe] : tables) {
    XLB_ASSIGN_OR_RETURN(const MaglevSlots slots, recipe.Build());
    out.tables[id] = TableDigest::Of(slots);
  }
  return out;
}

std::string DesiredService::Name() const {
  return service.ToString() + " " + std::to_string(port.port) + "/" +
         std::string(ToString(port.protocol)) + " " + std::string(ToString(family)) +
         (scope == FrontendScope::kAll ? "" : std::string(" ") + ToString(scope));
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

const DesiredService* DesiredState::Find(const NamespacedName& service, uint16_t port,
                                         IpFamily family, FrontendScope scope) const {
  for (const DesiredService& s : services) {
    if (s.service == service && s.port.port == port && s.family == family && s.scope == scope) {
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

}  // namespace xlb
